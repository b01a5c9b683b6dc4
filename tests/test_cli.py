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


def test_info_error_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("promptembed: error: Model") and "tried the local folder" in err


def test_info_old_precision_flag_names_dtype(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--precision", "bfloat16"]) == 2
    assert "--precision bfloat16 is now --dtype bfloat16" in capsys.readouterr().err
