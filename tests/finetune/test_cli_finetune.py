from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from promptembed.cli import main


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    topics = [
        "A carport needs a building permit in most places. The roof area decides whether it does.",
        "Heat pumps lower energy bills for houses. Ground source pumps cost more to install than air pumps.",
        "The contractor must have liability insurance. Ask for the certificate before any work starts.",
        "Drainage must be checked before the foundation is poured. Water damage is expensive to repair later.",
        "Replacing windows with the same look needs no permit. New window openings in a facade need one.",
        "Small sheds under fifteen square metres are often exempt. Larger outbuildings need a building permit.",
    ]
    for i, text in enumerate(topics):
        (folder / f"{i}.md").write_text(f"# Topic {i}\n\n{text}\n")
    return folder


def test_pairs_then_finetune_then_eval(
    docs: Path, tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = tmp_path / "pairs.jsonl"
    assert main(["pairs", str(docs), "-o", str(pairs), "--base", str(tiny_bert_dir)]) == 0
    rows = [json.loads(line) for line in pairs.read_text().splitlines()]
    assert rows and {"query", "positive", "chunk_id", "source"} <= set(rows[0])
    assert "pairs from" in capsys.readouterr().out

    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps({"query": "carport permit", "positive": "A carport needs a building permit in most places."}) + "\n"
        + json.dumps({"query": "heat pump cost", "positive": "Heat pumps lower energy bills for houses."}) + "\n"
    )  # fmt: skip
    out = tmp_path / "model"
    code = main(["finetune", str(docs), "--output", str(out), "--base", str(tiny_bert_dir), "--eval-queries",
                 str(questions), "--max-steps", "2", "--batch-size", "4"])  # fmt: skip
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert code == (0 if report["improved"] else 1)
    assert "eval_queries: 2 queries, 2 passages" in printed and "nDCG@10" in printed and f"plot: {out}" in printed
    assert report["verdict"] in printed
    # the gain's paired-bootstrap interval over the 2 questions: in report.json, the verdict and report.md
    low, high = report["gain_intervals"]["eval_queries"]
    ev = report["evaluations"]["eval_queries"]
    assert low - 1e-9 <= ev["finetuned"]["ndcg_at_10"] - ev["base"]["ndcg_at_10"] <= high + 1e-9
    assert "95% interval" in report["verdict"] and "95% interval (paired bootstrap" in (out / "report.md").read_text()

    assert main(["eval", str(out), "--queries", str(questions)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n_queries"] == 2 and 0.0 <= metrics["ndcg_at_10"] <= 1.0
    assert metrics["ndcg_at_10"] == pytest.approx(report["evaluations"]["eval_queries"]["finetuned"]["ndcg_at_10"])

    distractors = tmp_path / "d.jsonl"
    distractors.write_text(
        json.dumps({"text": "Sheds are small."})
        + "\n"
        + json.dumps({"text": "A carport needs a building permit in most places."})
        + "\n"
    )
    assert main(["eval", str(out), "--queries", str(questions), "--corpus", str(distractors)]) == 0
    assert json.loads(capsys.readouterr().out)["n_corpus"] == 3  # a distractor equal to a gold passage is one
    distractors.write_text(json.dumps({"passage": "no text column"}) + "\n")
    assert main(["eval", str(out), "--queries", str(questions), "--corpus", str(distractors)]) == 1
    assert (
        "d.jsonl:1: each line of the eval corpus needs a JSON object with a text column 'text'"
        in capsys.readouterr().err
    )


def test_finetune_cli_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["finetune", str(empty), "--output", str(tmp_path / "m")]) == 1
    err_lines = capsys.readouterr().err.strip().splitlines()  # progress bars first, then one error line
    assert err_lines[-1].startswith("promptembed: error: No readable documents in")


def test_finetune_cli_epochs_is_a_number_or_auto(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", str(tmp_path), "-o", str(tmp_path / "m"), "--epochs", "two"])
    assert exit_info.value.code == 2
    assert "--epochs: 'two' is not a number or 'auto'" in capsys.readouterr().err


def test_finetune_cli_teacher_and_levers(
    docs: Path, tmp_path: Path, tiny_bert_dir: Path, tiny_gemma_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "student"
    main(["finetune", str(docs), "-o", str(out), "--base", str(tiny_bert_dir), "--teacher", str(tiny_gemma_dir),
          "--max-steps", "1", "--batch-size", "4", "--interpolate", "0.5", "--filter", "both",
          "--filter-top-k", "5", "--train-dtype", "float32", "--epochs", "3"])  # fmt: skip
    printed = capsys.readouterr().out
    config = json.loads((out / "report.json").read_text())["configuration"]
    assert config["teacher"] == str(tiny_gemma_dir) and config["interpolate"] == 0.5 and config["filter"] == "both"
    assert config["train_dtype"] == "float32" and config["epochs"] == 3.0
    assert "teacher" in printed and "time by stage (s): reading_chunking" in printed


def test_finetune_cli_llm_with_concurrency(
    docs: Path, tmp_path: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_llm.py").write_text(
        "import threading\n"
        "barrier = threading.Barrier(2, timeout=10)\n"
        "calls = []\n"
        "def write(prompt):\n"
        "    calls.append(prompt)\n"
        "    if len(calls) <= 2:\n"
        "        barrier.wait()  # two calls in flight at once, or this fails\n"
        "    return '1. ' + ' '.join(prompt.split('Passage:')[1].split()[:4])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "m"
    code = main(["finetune", str(docs), "-o", str(out), "--base", str(tiny_bert_dir), "--llm", "my_llm:write",
                 "--llm-concurrency", "2", "--max-steps", "1", "--batch-size", "4", "--filter", "none"])  # fmt: skip
    assert code in (0, 1)  # 1: not better than the base, which one step on a random tiny model may well be
    report = json.loads((out / "report.json").read_text())
    assert report["configuration"]["llm"] == "function" and report["configuration"]["llm_concurrency"] == 2
    assert report["data"]["pair_stats"]["llm"]["kept"] >= 4
    import my_llm  # the module the CLI loaded: its first two calls met at the barrier, so two ran at once

    assert not my_llm.barrier.broken


def test_pairs_cli_with_an_llm(
    docs: Path, tmp_path: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pairs_llm.py").write_text(
        "import threading\n"
        "barrier = threading.Barrier(3, timeout=10)\n"
        "calls = []\n"
        "def write(prompt):\n"
        "    calls.append(prompt)\n"
        "    if len(calls) <= 3:\n"
        "        barrier.wait()  # three calls in flight at once, or the barrier breaks\n"
        "    return ['what about ' + ' '.join(prompt.split('Passage:')[1].split()[2:4])]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "pairs.jsonl"
    assert main(["pairs", str(docs), "-o", str(out), "--base", str(tiny_bert_dir), "--llm", "pairs_llm:write",
                 "--llm-concurrency", "3"]) == 0  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    written = [r for r in rows if r["source"] == "llm"]
    assert written and all(r["query"].startswith("what about ") for r in written)
    assert {r["source"] for r in rows} - {"llm"} <= {"sentence", "keyphrase"}  # the default strategies beside it
    assert len({r["source"] for r in rows}) >= 2
    import pairs_llm

    assert not pairs_llm.barrier.broken
    with pytest.raises(SystemExit) as exit_info:
        main(["pairs", str(docs), "-o", str(out), "--llm-concurrency", "0"])
    assert exit_info.value.code == 2
    assert "--llm-concurrency: '0' is not a whole number of at least 1" in capsys.readouterr().err


def test_strategy_errors_are_one_line_before_any_model_loads(
    docs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pairs", str(docs), "-o", str(tmp_path / "p.jsonl"), "--strategies", "sentence,llm"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "promptembed: error: The 'llm' strategy needs llm= (--llm in the CLI): a LangChain chat model or a callable "
        "str -> list[str]"
    )
    assert main(["finetune", str(docs), "-o", str(tmp_path / "m"), "--strategies", "sentense"]) == 1
    assert "promptembed: error: Unknown pair strategies ['sentense']; choose from" in capsys.readouterr().err
    assert not (tmp_path / "m").exists() and not (tmp_path / "p.jsonl").exists()


def test_overwrite_never_deletes_a_folder_that_is_not_a_model(
    tmp_path: Path, docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(p.name for p in docs.iterdir())
    assert main(["finetune", str(docs), "--output", str(docs), "--overwrite"]) == 1  # the documents themselves
    assert "holds the documents" in capsys.readouterr().err
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert main(["finetune", str(docs), "--output", str(other), "--overwrite"]) == 1
    assert "holds no sentence-transformers model" in capsys.readouterr().err
    assert sorted(p.name for p in docs.iterdir()) == before and (other / "keep.txt").read_text() == "mine"


def test_pairs_cli_without_documents_and_missing_files_are_one_line_errors(
    tmp_path: Path, docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["pairs", str(tmp_path / "empty"), "-o", str(tmp_path / "p.jsonl")]) == 1
    assert "No readable documents" in capsys.readouterr().err
    assert not (tmp_path / "p.jsonl").exists()
    argv = ["finetune", str(docs), "--output", str(tmp_path / "m"), "--pairs-file", str(tmp_path / "nope.jsonl")]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("promptembed: error: FileNotFoundError") and "Traceback" not in "\n".join(err)
    assert main(["pairs", str(docs), "-o", str(tmp_path / "p.jsonl"), "--llm", "no_such_module_x:llm"]) == 1
    assert "--llm 'no_such_module_x:llm': ModuleNotFoundError" in capsys.readouterr().err


def test_documents_as_an_iterator_and_an_output_inside_them(tmp_path: Path, docs: Path) -> None:
    from promptembed import ConfigError
    from promptembed.finetune import finetune

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=re.escape(str(empty))):  # the iterator is read once, not used up
        finetune((p for p in [empty]), output=tmp_path / "m")
    with pytest.raises(ConfigError, match="lies inside the documents folder"):
        finetune([docs], output=docs / "model")


def test_file_names_that_are_not_utf8_are_read_or_skipped_and_reported(
    docs: Path, tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A latin-1 name (old shares, zip files) is a str with a lone surrogate in Python: chunk ids, pairs.jsonl and
    report.json failed on it, the last after the whole training."""
    import os

    (Path(os.fsdecode(bytes(docs) + b"/caf\xe9.md"))).write_text(
        "# Caf\u00e9\n\nThe caf\u00e9 roof needs a permit too.\n"
    )
    (Path(os.fsdecode(bytes(docs) + b"/na\xefve.docx"))).write_bytes(b"not read")  # an unsupported type: skipped
    pairs = tmp_path / "pairs.jsonl"
    assert main(["pairs", str(docs), "-o", str(pairs), "--base", str(tiny_bert_dir)]) == 0
    rows = [json.loads(line) for line in pairs.read_text(encoding="utf-8").splitlines()]
    assert any("caf\u00e9 roof" in r["positive"] for r in rows)  # the oddly named file was read and used
    assert "na\\xefve.docx: unsupported file type" in capsys.readouterr().out
    (docs / "outline.md").write_text("# Outline\n\n## Part one\n\n## Part two\n")  # read, but no passage in it
    out = tmp_path / "model"
    code = main(["finetune", str(docs), "--output", str(out), "--base", str(tiny_bert_dir), "--max-steps", "1",
                 "--batch-size", "4"])  # fmt: skip
    assert code in (0, 1)  # 1: not better than the base (one step on a tiny model); the model is saved either way
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    skipped = {s["path"].rsplit("/", 1)[-1]: s["reason"] for s in report["data"]["skipped"]}
    assert skipped == {"na\\xefve.docx": "unsupported file type '.docx'", "outline.md": "no text beyond its headings"}
    assert report["data"]["documents"] == 7  # the six topics and the oddly named one, not the outline
    capsys.readouterr()
