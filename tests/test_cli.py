from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptembed.cli import main


def test_info_prints_resolved_prompts(tiny_gemma_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tiny_gemma_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["query_prompt"] == "task: search result | query: "
    assert info["document_prompt"] == "title: none | text: "
    assert info["title_slot"] is True
    assert info["dimension"] == 32 and info["max_seq_length"] == 64
    assert info["device"] == "cpu" and info["dtype"] == "float32"
    assert info["cpu_fast_paths"][0] == "int8"
    assert info["prompts"]["STS"] == "task: sentence similarity | query: "


def test_info_default_model_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "dimension        384" in out and "max_seq_length   256" in out
    assert "cpu_fast_paths   int8" in out


def test_info_error_is_one_line_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("promptembed: error: Model") and "tried the local folder" in err


def test_info_old_precision_flag_names_dtype(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["info", "--precision", "bfloat16"])
    assert exit_info.value.code == 2  # a usage error
    assert "--precision bfloat16 is now --dtype bfloat16" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from promptembed import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"promptembed {__version__}"


def test_usage_error_exits_2_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["info", "--no-such-option"])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "unrecognized arguments: --no-such-option" in captured.err


@pytest.mark.parametrize("argv", [["--help"], ["info", "--help"], ["embed", "--help"], ["finetune", "--help"]])
def test_help_has_no_restructuredtext_markup(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: promptembed")
    for markup in ("``", ":mod:", ":func:", ":class:", ":meth:"):
        assert markup not in out, f"{markup!r} in {argv} help"


def test_python_dash_m_runs_the_cli() -> None:
    import subprocess
    import sys

    argv = [sys.executable, "-m", "promptembed", "--version"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.startswith("promptembed ")


def test_ctrl_c_is_one_line_and_exit_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import promptembed.cli.embed as embed

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(embed, "_run", interrupted)
    assert main(["embed", str(tmp_path), "-o", str(tmp_path / "out")]) == 130  # a traceback before
    err = capsys.readouterr().err
    assert err == "promptembed embed: interrupted; rerun the same command to resume\n"
