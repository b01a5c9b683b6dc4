from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from sentence_transformers import SentenceTransformer

from promptembed import PromptEmbedder
from promptembed.cli import main


def _corpus(folder: Path, n_jsonl: int = 25) -> dict[str, tuple[str, str | None]]:
    """A JSONL, a CSV (with a quoted newline) and a Parquet file with 3 row groups; returns id -> (text, title)."""
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, tuple[str, str | None]] = {}
    with (folder / "a.jsonl").open("w", encoding="utf-8") as f:
        for i in range(n_jsonl):
            row = {"id": f"j{i}", "text": f"Passage {i} about the red planet", "title": None if i % 2 else f"T{i}"}
            expected[row["id"]] = (row["text"], row["title"])
            f.write(json.dumps({**row, "meta": {"n": i}}) + "\n")
        f.write("\n")  # a blank line is not a row
    with (folder / "b.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "title"])
        for i in range(7):
            w.writerow([f"c{i}", f"CSV row {i}\nsecond line", f"CT{i}"])
            expected[f"c{i}"] = (f"CSV row {i}\nsecond line", f"CT{i}")
    texts = [f"Parquet passage {i}" for i in range(13)]
    (folder / "sub").mkdir()
    table = pa.table({"id": [f"p{i}" for i in range(13)], "text": texts, "title": pa.nulls(13, pa.string())})
    pq.write_table(table, folder / "sub" / "c.parquet", row_group_size=5)
    expected.update({f"p{i}": (t, None) for i, t in enumerate(texts)})
    return expected


def _read(out: Path) -> pa.Table:
    parts = [pq.read_table(pa.OSFile(os.fsencode(p))) for p in sorted(out.glob("part-*.parquet"))]
    return pa.concat_tables(parts, promote_options="permissive")  # files with other columns: nulls


def test_folder_in_process_vectors_equal_promptembedder(
    tmp_path: Path, tiny_gemma_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = _corpus(tmp_path / "in")
    out = tmp_path / "out"
    argv = ["embed", str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_gemma_dir), "--id-column", "id",
            "--title-column", "title", "--part-rows", "10", "--max-batch-tokens", "24"]  # fmt: skip
    assert main(argv) == 0
    table = _read(out)
    ids = table.column("id").to_pylist()
    assert sorted(ids) == sorted(expected) and len(ids) == len(set(ids))  # every row once
    assert ids[:3] == ["j0", "j1", "j2"] and table.column("meta").to_pylist()[1] == {"n": 1}  # order, columns kept
    assert str(table.schema.field("embedding").type) == "fixed_size_list<element: float>[32]"
    with PromptEmbedder(model=tiny_gemma_dir) as emb:
        ref = emb.embed_documents([expected[i][0] for i in ids], titles=[expected[i][1] for i in ids])
        prompt = emb.document_prompt
    got = table.column("embedding").combine_chunks().values.to_numpy().reshape(-1, 32)
    np.testing.assert_allclose(got, ref, atol=2e-6, rtol=0)
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["rows"] == manifest["input_rows"] == 45 and manifest["dimension"] == 32
    assert manifest["prompt"] == {"role": "document", "prompt_name": None, "text": prompt, "title_column": "title",
                                  "title_slot": True}  # fmt: skip
    assert manifest["model"]["source"] == str(tiny_gemma_dir) and len(manifest["model"]["weights_sha256"]) == 64
    names = ["part-00000-000000", "part-00000-000001", "part-00000-000002", "part-00001-000000", "part-00002-000000"]
    assert [p["name"] for p in manifest["parts"]] == [*names, "part-00002-000001"]
    assert pq.read_table(out).num_rows == 45  # "_" files are skipped by Parquet readers of the folder
    assert "45 rows embedded into 6 parts" in capsys.readouterr().out


def test_bad_rows_fail_naming_row_and_column_or_skip(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": "ok1", "text": "fine"}), json.dumps({"id": "n1", "text": None}),
             json.dumps({"id": "num", "text": 42}), json.dumps({"id": "lst", "text": ["a", "b"]}), "{not json",
             json.dumps({"id": "ok2", "text": "also fine"}), json.dumps(["an", "array"])]  # fmt: skip
    src.write_text("\n".join(lines) + "\n")
    base = ["embed", str(src), "--model", str(tiny_bert_dir), "--id-column", "id"]
    assert main([*base, "-o", str(tmp_path / "fail")]) == 1
    err = capsys.readouterr().err
    assert "promptembed: error: Row id='n1' (in.jsonl line 2): column 'text' is NoneType (None), not str" in err
    assert "--on-bad-row skip" in err
    assert not (tmp_path / "fail").exists()  # checked before anything is written

    assert main([*base, "-o", str(tmp_path / "skip"), "--on-bad-row", "skip"]) == 0
    assert _read(tmp_path / "skip").column("id").to_pylist() == ["ok1", "ok2"]
    manifest = json.loads((tmp_path / "skip" / "_manifest.json").read_text())
    assert manifest["rows"] == 2 and manifest["input_rows"] == 7
    assert manifest["skipped_rows"] == [
        {"row": "id='n1'", "reason": "column 'text' is NoneType (None), not str"},
        {"row": "id='num'", "reason": "column 'text' is int (42), not str"},
        {"row": "id='lst'", "reason": "column 'text' is list (['a', 'b']), not str"},
        {"row": "in.jsonl line 5", "reason": "not valid JSON (Expecting property name enclosed in double quotes)"},
        {"row": "in.jsonl line 7", "reason": "is a JSON list, not an object"},
    ]
    assert (
        "skipped 5 bad row(s): id='n1', id='num', id='lst', in.jsonl line 5, in.jsonl line 7" in capsys.readouterr().out
    )


def test_no_overwrite_without_flag(tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.csv"
    src.write_text("text\nhello\nworld\n")
    out = tmp_path / "out"
    argv = ["embed", str(src), "-o", str(out), "--model", str(tiny_bert_dir)]
    assert main(argv) == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(argv) == 1
    assert f"--output {out} already holds a finished job; pass --overwrite to replace it" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert main([*argv, "--overwrite"]) == 0
    other = tmp_path / "not-ours"
    other.mkdir()
    (other / "keep.txt").write_text("precious")
    assert main(["embed", str(src), "-o", str(other), "--model", str(tiny_bert_dir), "--overwrite"]) == 1
    assert "refusing to delete it with --overwrite" in capsys.readouterr().err
    assert (other / "keep.txt").read_text() == "precious"


def test_sigkill_halfway_then_rerun_gives_every_row_once(tmp_path: Path, minilm_dir: Path) -> None:
    n = 320
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": f"Document {i}: " + "words " * 20}) + "\n" for i in range(n)))
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "promptembed", "embed", str(src), "-o", str(out), "--model", str(minilm_dir),
            "--id-column", "id", "--part-rows", "20"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while len(list(out.glob("part-*.parquet"))) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = {p.name: p.stat().st_ino for p in out.glob("part-*.parquet")}
    assert 2 <= len(kept) < n // 20, f"the kill did not land halfway ({len(kept)} of {n // 20} parts)"
    assert not (out / "_manifest.json").exists()

    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    ids = _read(out).column("id").to_pylist()
    assert sorted(ids) == list(range(n))  # exactly the input rows, each once
    assert {name: (out / name).stat().st_ino for name in kept} == kept  # finished parts were kept, not redone
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["rows"] == n and set(manifest["resumed_parts"]) == {Path(k).stem for k in kept}
    assert not list(out.glob(".*tmp*"))


def test_rerun_with_other_options_is_refused(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.csv"
    src.write_text("text\nhello\nworld\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "_job.json").write_text(json.dumps({"inputs": [], "job": {}, "embedder": {}, "part_rows": 1}))
    assert main(["embed", str(src), "-o", str(out), "--model", str(tiny_bert_dir)]) == 1
    err = capsys.readouterr().err
    assert re.search(
        r"holds an unfinished job with other embedder, inputs, job, model_weights_sha256, part_rows, plan; rerun with",
        err,
    )


def test_a_resume_after_new_weights_were_saved_under_the_model_path_is_refused(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _finished_job(tmp_path, tiny_bert_dir)
    (out / "_manifest.json").unlink()  # as if killed after its last part
    model = SentenceTransformer(str(tiny_bert_dir), device="cpu")
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05)
    model.save(str(tiny_bert_dir))  # e.g. a new finetune saved to the same folder
    argv = ["embed", str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_bert_dir)]
    assert main(argv) == 1  # resuming would mix two models' vectors in one output
    assert "holds an unfinished job with other model_weights_sha256; rerun with the same" in capsys.readouterr().err


def test_a_resume_of_a_job_whose_input_was_cut_into_parts_another_way_is_refused(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _finished_job(tmp_path, tiny_bert_dir)
    (out / "_manifest.json").unlink()  # as if killed after its last part
    job = json.loads((out / "_job.json").read_text())
    job["plan"] = "0123456789abcdef"  # a version that cut the same input elsewhere (a CSV's blank lines were rows)
    (out / "_job.json").write_text(json.dumps(job))
    argv = ["embed", str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_bert_dir)]
    assert main(argv) == 1  # resuming kept the old parts and cut the rest anew: rows between the cuts were lost
    assert (
        "holds an unfinished job whose input was cut into parts another way (probably by another promptembed "
        "version); its parts cannot be resumed: pass --overwrite to start over" in capsys.readouterr().err
    )
    assert main([*argv, "--overwrite"]) == 0


def test_a_checkpoint_saved_beside_the_model_does_not_stop_a_resume(tmp_path: Path, tiny_bert_dir: Path) -> None:
    out = _finished_job(tmp_path, tiny_bert_dir)
    (out / "_manifest.json").unlink()  # as if killed after its last part
    (tiny_bert_dir / "checkpoint-5").mkdir()  # a training checkpoint the model never loads
    (tiny_bert_dir / "checkpoint-5" / "model.safetensors").write_bytes(b"other weights")
    assert main(["embed", str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_bert_dir)]) == 0
    assert (out / "_manifest.json").exists()


def test_a_resume_where_auto_resolves_another_dtype_is_refused(
    tmp_path: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dtype auto is float32 on a CPU and bfloat16 on most GPUs: one job must not hold parts of both."""
    import promptembed.cli.embed as cli_embed

    out = _finished_job(tmp_path, tiny_bert_dir)
    assert json.loads((out / "_embedder.json").read_text())["dtype"] == "float32"
    (out / "_manifest.json").unlink()  # as if killed after its last part
    first_part = sorted(out.glob("part-*.parquet"))[0]
    first_part.unlink()  # one part left to embed
    real = cli_embed._describe

    def on_a_gpu(*args: Any, **kwargs: Any) -> dict[str, Any]:  # as the same options resolve on a CUDA device
        return {**real(*args, **kwargs), "dtype": "bfloat16", "device": "cuda:0"}

    monkeypatch.setattr(cli_embed, "_describe", on_a_gpu)
    argv = ["embed", str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_bert_dir)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "holds parts embedded with another dtype (dtype 'float32' then, 'bfloat16' here; cuda:0 resolves" in err
    assert not first_part.exists() and not (out / "_manifest.json").exists()  # nothing embedded in bfloat16
    monkeypatch.setattr(cli_embed, "_describe", real)
    assert main(argv) == 0 and first_part.exists()  # where it resolves as before, the resume goes on


def test_a_first_run_killed_before_its_first_part_resumes_anywhere(
    tmp_path: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import promptembed.cli.embed as cli_embed

    out = _finished_job(tmp_path, tiny_bert_dir)
    for made in [out / "_manifest.json", *out.glob("part-*.parquet")]:
        made.unlink()  # as if killed before its first part: _job.json and _embedder.json only
    real = cli_embed._describe
    monkeypatch.setattr(cli_embed, "_describe", lambda *a, **k: {**real(*a, **k), "dtype": "bfloat16"})
    argv = ["embed", str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_bert_dir)]
    assert main(argv) == 0  # no part to mix with: this run's resolution is recorded
    assert json.loads((out / "_embedder.json").read_text())["dtype"] == "bfloat16"
    # an unfinished folder from before the record existed: resumed, with a warning that it could not be checked
    (out / "_manifest.json").unlink()
    (out / "_embedder.json").unlink()
    sorted(out.glob("part-*.parquet"))[0].unlink()
    with caplog.at_level("WARNING", "promptembed"):
        assert main(argv) == 0
    assert "has parts but no _embedder.json: cannot check they were embedded alike" in caplog.text


def test_missing_column_and_unknown_prompt(
    tmp_path: Path, tiny_gemma_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.csv"
    src.write_text("body\nhello\n")
    assert main(["embed", str(src), "-o", str(tmp_path / "o1"), "--model", str(tiny_gemma_dir)]) == 1
    assert "column='text' is not a column of the input; its columns are ['body']" in capsys.readouterr().err
    argv = ["embed", str(src), "-o", str(tmp_path / "o2"), "--model", str(tiny_gemma_dir), "--column", "body",
            "--prompt-name", "STSS"]  # fmt: skip
    assert main(argv) == 1
    assert "Prompt name 'STSS' not found" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()  # no _job.json left, which would refuse the corrected command
    assert main([*argv[:-1], "STS"]) == 0


def test_missing_field_and_ray_options_without_ray(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": 1, "body": "x"}) + "\n")
    assert main(["embed", str(src), "-o", str(tmp_path / "o"), "--model", str(tiny_bert_dir), "--id-column", "id"]) == 1
    assert "Row id=1 (in.jsonl line 1): has no 'text' field (its fields: ['body', 'id'])" in capsys.readouterr().err
    assert main(["embed", str(src), "-o", str(tmp_path / "o"), "--column", "body", "--workers", "2"]) == 1
    assert "--workers, --gpus-per-worker and --cpus-per-worker need --ray" in capsys.readouterr().err
    assert (
        main(["embed", str(src), "-o", str(tmp_path / "o"), "--column", "body", "--ray", "local", "--device", "cpu"])
        == 1
    )
    assert "--device cpu is the in-process device; with --ray each actor uses its own" in capsys.readouterr().err


def test_group_column_embeds_each_group_by_itself(tiny_gemma_dir: Path) -> None:
    """``group_column`` (``promptembed embed --ray`` passes its part index): each group's vectors are the bytes the
    group alone gives, whatever other groups share the table, and the rows keep their order."""
    from promptembed._tables import TableJob, embed_table
    from promptembed.errors import ConfigError

    texts = [f"Row {i}: " + "a passage about a planet " * (i % 5 + 1) for i in range(20)]
    table = pa.table(
        {"text": texts, "g": [i % 3 for i in range(20)], "title": [f"T{i}" if i % 2 else None for i in range(20)]}
    )
    job = TableJob(title_column="title", group_column="g")
    with PromptEmbedder(model=tiny_gemma_dir, device="cpu", max_batch_tokens=64) as emb:
        out, bad = embed_table(emb, table, job)
        assert not bad and out.column("text").to_pylist() == texts
        got = np.asarray(out.column("embedding").to_pylist(), dtype=np.float32)
        for g in range(3):
            rows = [i for i in range(20) if i % 3 == g]
            alone, _ = embed_table(emb, table.take(pa.array(rows)), TableJob(title_column="title"))
            assert np.array_equal(got[rows], np.asarray(alone.column("embedding").to_pylist(), dtype=np.float32))
    with pytest.raises(ConfigError, match="group_column='part' is not a column"):
        TableJob(group_column="part").check_columns(["text"])


def test_ray_actor_embeds_bundled_parts_as_each_part_alone(tiny_gemma_dir: Path) -> None:
    """The Ray actor's callable (no Ray needed to call it) with the CLI's part column: two parts that Ray bundled into
    one batch give the bytes of each part embedded alone, which is what the in-process CLI writes."""
    from promptembed._tables import TableJob, embed_table
    from promptembed.ray import _EmbedBatches

    texts = [f"Part row {i}: " + "words about planets " * (i % 4 + 1) for i in range(16)]
    parts = [pa.table({"text": texts[:9], "p": [0] * 9}), pa.table({"text": texts[9:], "p": [1] * 7})]
    options = {"model": str(tiny_gemma_dir), "device": "cpu", "max_batch_tokens": 48, "show_progress_bar": False}
    actor = _EmbedBatches(options, TableJob(group_column="p"))
    try:
        bundled = actor(pa.concat_tables(parts))
    finally:
        actor._embedder.close()
    got = np.asarray(bundled.column("embedding").to_pylist(), dtype=np.float32)
    with PromptEmbedder(**options) as emb:
        alone = [embed_table(emb, part, TableJob())[0] for part in parts]
    want = np.concatenate([np.asarray(t.column("embedding").to_pylist(), dtype=np.float32) for t in alone])
    assert bundled.column("text").to_pylist() == texts and np.array_equal(got, want)


def _finished_job(tmp_path: Path, model: Path) -> Path:
    """A finished ``embed`` output of the test corpus in ``tmp_path / "out"``."""
    _corpus(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["embed", str(tmp_path / "in"), "-o", str(out), "--model", str(model)]) == 0
    return out


def test_overwrite_checks_the_new_model_before_deleting_the_finished_output(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _finished_job(tmp_path, tiny_bert_dir)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = ["embed", str(tmp_path / "in"), "-o", str(out), "--overwrite"]
    assert main([*bad, "--model", str(tmp_path / "no-such-model")]) == 1
    assert main([*bad, "--model", str(tiny_bert_dir), "--prompt-name", "nope"]) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the finished job is still there
    assert "nope" in capsys.readouterr().err


def test_an_output_folder_inside_the_input_folder_resumes_and_is_not_read(tmp_path: Path, tiny_bert_dir: Path) -> None:
    expected = _corpus(tmp_path / "in")
    argv = ["embed", str(tmp_path / "in"), "-o", str(tmp_path / "in" / "vectors"), "--model", str(tiny_bert_dir)]
    assert main(argv) == 0
    assert main([*argv, "--overwrite"]) == 0
    assert sorted(_read(tmp_path / "in" / "vectors").column("id").to_pylist()) == sorted(expected)


def test_role_and_prompt_name_together_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _corpus(tmp_path / "in")
    argv = ["embed", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--role", "query", "--prompt-name", "STS"]
    assert main(argv) == 1
    assert "--role and --prompt-name" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_corrupt_file_is_one_line_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.parquet").write_bytes(b"not parquet at all")
    assert main(["embed", str(tmp_path / "in"), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("promptembed: error:") and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_csv_with_excels_byte_order_mark(tmp_path: Path, tiny_bert_dir: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.csv").write_bytes("\ufefftext,id\nMars is red,m\nVenus is hot,v\n".encode())
    argv = ["embed", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_bert_dir)]
    assert main(argv) == 0
    table = _read(tmp_path / "out")
    assert table.column_names == ["text", "id", "embedding"]
    with PromptEmbedder(model=tiny_bert_dir) as emb:
        want = emb.embed_documents(["Mars is red", "Venus is hot"])
    np.testing.assert_allclose(np.asarray(table.column("embedding").to_pylist()), want, atol=1e-6)


def test_a_quoted_csv_header_after_the_byte_order_mark(tmp_path: Path, tiny_bert_dir: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.csv").write_bytes('\ufeff"text","id"\n"Mars is red","m"\n'.encode())
    assert main(["embed", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_bert_dir)]) == 0
    assert _read(tmp_path / "out").column_names == ["text", "id", "embedding"]


def test_a_long_csv_cell_and_a_jsonl_byte_order_mark_are_read(tmp_path: Path, tiny_bert_dir: Path) -> None:
    (tmp_path / "in").mkdir()
    long_text = "word " * 30000  # 150000 characters, over csv's default field limit of 131072
    (tmp_path / "in" / "a.csv").write_text(f"id,text\nlong,{long_text}\nshort,Mars is red\n")
    (tmp_path / "in" / "b.jsonl").write_bytes('\ufeff{"id": "bom", "text": "Venus is hot"}\n'.encode())
    assert main(["embed", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_bert_dir)]) == 0
    table = _read(tmp_path / "out")
    assert table.column("id").to_pylist() == ["long", "short", "bom"]  # the line after the mark was a bad row
    with PromptEmbedder(model=tiny_bert_dir) as emb:
        want = emb.embed_documents([long_text, "Mars is red", "Venus is hot"])
    np.testing.assert_allclose(np.asarray(table.column("embedding").to_pylist()), want, atol=1e-6)


def test_a_csv_that_csv_cannot_read_is_one_line_naming_the_file(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "mac.csv").write_bytes(b"id,text\ra,hello\rb,world\r")  # lone CR line ends
    argv = ["embed", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_bert_dir)]
    assert main([*argv, "--on-bad-row", "skip"]) == 1  # not a _csv.Error traceback
    err = capsys.readouterr().err
    assert "promptembed: error: mac.csv: the header cannot be read as CSV (new-line character seen" in err
    assert "lone CR (old Mac style): convert them to LF or CRLF" in err and "Traceback" not in err


def test_a_stray_csv_quote_fails_and_a_malformed_cell_is_a_bad_row(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in").mkdir()
    rows = "".join(f"r{i},row {i}\n" for i in range(3000))
    (tmp_path / "in" / "q.csv").write_text(f'id,text\na,"never closed\n{rows}')  # the rest would be one cell
    argv = ["embed", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_bert_dir)]
    assert main([*argv, "--on-bad-row", "skip"]) == 1  # it gave 1 row of 3001, and no error
    assert "q.csv: row 1 opens a quoted cell that never closes" in capsys.readouterr().err
    (tmp_path / "in" / "q.csv").write_text('id,text\na,"Mars" is red\nb,Venus is hot\n')  # csv made 'Mars is red'
    assert main([*argv, "--on-bad-row", "skip"]) == 0
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["skipped_rows"] == [{"row": "q.csv row 1", "reason": "is not valid CSV (',' expected after '\"')"}]
    assert _read(tmp_path / "out").column("id").to_pylist() == ["b"]


def test_blank_lines_of_a_csv_are_not_rows_and_a_blank_first_line_does_not_hide_the_header(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("\n\nid,text\na,Mars is red\n\nb,Venus is hot\n")  # was 0 rows, exit 0
    (tmp_path / "in" / "b.csv").write_bytes(b"id,text\r\nc,Earth is blue\r\n,\r\n\r\n")  # blank CRLF line at the end
    wrong = ["embed", str(tmp_path / "in" / "a.csv"), "-o", str(tmp_path / "wrong"), "--column", "body"]
    assert main([*wrong, "--model", str(tiny_bert_dir)]) == 1  # the header is found and checked
    assert "column='body' is not a column of the input; its columns are ['id', 'text']" in capsys.readouterr().err
    argv = ["embed", str(tmp_path / "in"), "--model", str(tiny_bert_dir), "--id-column", "id"]
    assert main([*argv, "-o", str(tmp_path / "out"), "--on-bad-row", "skip"]) == 0
    table = _read(tmp_path / "out")
    assert table.column("id").to_pylist() == ["a", "b", "c", ""]
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["input_rows"] == 4 and manifest["skipped_rows"] == []  # a blank line was a bad row (0 cells)
    with PromptEmbedder(model=tiny_bert_dir) as emb:
        want = emb.embed_documents(["Mars is red", "Venus is hot", "Earth is blue", ""])
    np.testing.assert_allclose(np.asarray(table.column("embedding").to_pylist()), want, atol=1e-6)
    (tmp_path / "in" / "b.csv").write_text("id,text\n\nc,Earth is blue\nd\n")  # rows are counted without blanks
    assert main([*argv, "-o", str(tmp_path / "fail")]) == 1
    assert "Row b.csv row 2: has 1 cells, the header has 2; fix that row" in capsys.readouterr().err


def test_a_stray_cr_in_a_csv_cell_is_a_bad_row_not_an_old_mac_file(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_bytes(b"id,text\n1,hello\n2,pasted\rtext\n3,world")  # LF line ends, one stray CR
    argv = ["embed", str(tmp_path / "in"), "--model", str(tiny_bert_dir)]
    assert main([*argv, "-o", str(tmp_path / "fail")]) == 1
    err = capsys.readouterr().err
    assert "Row a.csv row 2: has a carriage return (CR) inside an unquoted cell; quote that cell or remove" in err
    assert "old Mac" not in err and "(a.csv row 2)" not in err  # the position is said once
    assert main([*argv, "-o", str(tmp_path / "out"), "--on-bad-row", "skip"]) == 0  # it failed the job, skip or not
    assert _read(tmp_path / "out").column("id").to_pylist() == ["1", "3"]
    assert json.loads((tmp_path / "out" / "_manifest.json").read_text())["skipped_rows"] == [
        {"row": "a.csv row 2", "reason": "has a carriage return (CR) inside an unquoted cell; quote that cell or "
                                         "remove the CR"},
    ]  # fmt: skip


def test_a_csv_header_that_names_a_column_twice_fails(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("id,text,text,id,note\n1,the real text,a note,x,n\n")
    argv = ["embed", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_bert_dir)]
    assert main([*argv, "--on-bad-row", "skip"]) == 1  # the first 'text' cell was silently dropped
    assert (
        "promptembed: error: a.csv: the header names the column(s) ['id', 'text'] more than once "
        "(['id', 'text', 'text', 'id', 'note']), so each row would keep only one of their cells; give every column "
        "its own name" in capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()


def test_file_names_that_are_not_utf8_are_written_with_escapes_and_a_resume_matches_them(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = os.fsencode(tmp_path / "in")
    os.mkdir(folder)
    rows = [{"text": "Mars is red"}, {"text": None}, {"text": "Venus is hot"}, {"text": "Earth is blue"}]
    try:  # a Latin-1 'café.jsonl' copied from an older system: it stopped the job at _job.json (UnicodeEncodeError)
        with open(os.path.join(folder, b"caf\xe9.jsonl"), "w", encoding="utf-8") as f:
            f.write("".join(json.dumps(r) + "\n" for r in rows))
    except OSError:
        pytest.skip("this file system takes UTF-8 names only")
    with open(os.path.join(folder, b"\xe9t\xe9.parquet"), "wb") as f:  # pyarrow opens a path by its UTF-8 text
        pq.write_table(pa.table({"text": ["Jupiter is big"]}), f)
    out = Path(os.fsdecode(os.fsencode(tmp_path) + b"/vecs-\xe9"))
    argv = ["embed", os.fsdecode(folder), "-o", str(out), "--model", str(tiny_bert_dir), "--part-rows", "2",
            "--on-bad-row", "skip"]  # fmt: skip
    assert main(argv) == 0
    assert "rows embedded into 3 parts in " in (printed := capsys.readouterr().out) and "vecs-\\xe9 (" in printed
    names = [f"{tmp_path}/in/caf\\xe9.jsonl", f"{tmp_path}/in/\\xe9t\\xe9.parquet"]
    job = json.loads((out / "_job.json").read_text(encoding="utf-8"))
    assert [i["path"] for i in job["inputs"]] == names
    manifest = json.loads((out / "_manifest.json").read_text(encoding="utf-8"))
    assert [p["file"] for p in manifest["parts"]] == [names[0], *names]
    assert manifest["skipped_rows"] == [
        {"row": "caf\\xe9.jsonl line 2", "reason": "column 'text' is NoneType (None), not str"}
    ]
    texts = ["Mars is red", "Venus is hot", "Earth is blue", "Jupiter is big"]
    assert _read(out).column("text").to_pylist() == texts
    (out / "_manifest.json").unlink()  # killed before its last parts: the rerun finds the same job and resumes it
    (out / "part-00000-000001.parquet").unlink()
    (out / "part-00001-000000.parquet").unlink()
    assert main(argv) == 0
    manifest = json.loads((out / "_manifest.json").read_text(encoding="utf-8"))
    assert manifest["resumed_parts"] == ["part-00000-000000"] and manifest["rows"] == 4
    assert _read(out).column("text").to_pylist() == texts


def test_an_input_inside_the_output_is_refused_before_anything_is_deleted(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _finished_job(tmp_path, tiny_bert_dir)
    before = sorted(p.name for p in out.iterdir())
    part = sorted(out.glob("part-*.parquet"))[0]
    argv = ["embed", str(part), "-o", str(out), "--overwrite", "--output-column", "vec2", "--model", str(tiny_bert_dir)]
    assert main(argv) == 1
    assert "lies inside --output" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before


def test_debug_setting_shows_the_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.parquet").write_bytes(b"not parquet at all")
    monkeypatch.setenv("PROMPTEMBED_DEBUG", "1")
    with pytest.raises(Exception, match="(?i)parquet"):
        main(["embed", str(tmp_path / "in"), "-o", str(tmp_path / "out")])


def _jsonl(path: Path, rows: list[object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_every_part_has_one_schema_that_readers_of_the_folder_can_merge(tmp_path: Path, tiny_bert_dir: Path) -> None:
    # part 1: "note" all null and no "score"; part 2: "note" text, integer scores; part 3: float scores; part 4: all
    # its rows skipped. Read by value, the parts' schemas differed, and pyarrow could not read the folder.
    rows: list[object] = [{"id": f"a{i}", "text": f"first {i}", "note": None} for i in range(3)]
    rows += [{"id": f"b{i}", "text": f"second {i}", "note": "checked", "score": i} for i in range(3)]
    rows += [{"id": f"c{i}", "text": f"third {i}", "note": None, "score": i + 0.5} for i in range(3)]
    rows += [{"id": f"d{i}", "text": None} for i in range(3)]
    _jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out"
    argv = ["embed", str(tmp_path / "in.jsonl"), "-o", str(out), "--model", str(tiny_bert_dir), "--part-rows", "3",
            "--on-bad-row", "skip", "--id-column", "id"]  # fmt: skip
    assert main(argv) == 0
    schemas = [pq.read_schema(p) for p in sorted(out.glob("part-*.parquet"))]
    assert len(schemas) == 4 and all(s.equals(schemas[0]) for s in schemas)
    assert schemas[0].names == ["id", "text", "note", "score", "embedding"]
    assert [str(t) for t in schemas[0].types[:4]] == ["string", "string", "string", "double"]
    table = pq.read_table(out)  # the folder, as a user reads it
    assert table.column("id").to_pylist() == [f"{c}{i}" for c in "abc" for i in range(3)]
    assert table.column("note").to_pylist() == [None] * 3 + ["checked"] * 3 + [None] * 3
    assert table.column("score").to_pylist() == [None] * 3 + [0.0, 1.0, 2.0, 0.5, 1.5, 2.5]
    with PromptEmbedder(model=tiny_bert_dir) as emb:
        want = emb.embed_documents(table.column("text").to_pylist())
    np.testing.assert_allclose(np.asarray(table.column("embedding").to_pylist()), want, atol=1e-6)
    assert pq.read_table(sorted(out.glob("part-*.parquet"))[-1]).num_rows == 0  # the all-skipped part


def test_a_column_that_mixes_kinds_fails_before_embedding_or_its_rarer_rows_are_skipped(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows: list[object] = [{"id": i, "text": f"passage {i}"} for i in range(5)]
    rows.insert(2, {"id": "two-b", "text": "a passage whose id is text"})
    _jsonl(tmp_path / "in.jsonl", rows)
    base = ["embed", str(tmp_path / "in.jsonl"), "--model", str(tiny_bert_dir), "--part-rows", "2"]
    assert main([*base, "-o", str(tmp_path / "fail")]) == 1
    err = capsys.readouterr().err
    assert (
        "column 'id' holds number in 5 rows (first: in.jsonl line 1) and str in 1 row (first: in.jsonl line 3)" in err
    )
    assert "--on-bad-row skip" in err and not (tmp_path / "fail").exists()  # found before anything was written

    assert main([*base, "-o", str(tmp_path / "skip"), "--on-bad-row", "skip"]) == 0
    assert pq.read_table(tmp_path / "skip").column("id").to_pylist() == [0, 1, 2, 3, 4]
    manifest = json.loads((tmp_path / "skip" / "_manifest.json").read_text())
    assert manifest["skipped_rows"] == [
        {"row": "in.jsonl line 3", "reason": "column 'id' is str ('two-b') here but number in most rows; "
                                             "a Parquet column holds one type"},
    ]  # fmt: skip


def test_a_csv_file_of_the_rarer_kind_fails_even_when_skipping(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _jsonl(tmp_path / "in" / "a.jsonl", [{"id": i, "text": f"passage {i}"} for i in range(4)])
    (tmp_path / "in" / "b.csv").write_text("id,text\nx1,a csv passage\n")
    argv = ["embed", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_bert_dir),
            "--on-bad-row", "skip"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "column 'id' holds number in 4 rows (first: a.jsonl line 1) and str in 1 row (first: b.csv (CSV))" in err
    assert "give the column one type in every input file" in err and not (tmp_path / "out").exists()
    (tmp_path / "in" / "a.jsonl").write_text(  # the rarer kind seen in a JSONL row first: the message names the CSV
        "".join(json.dumps({"id": i if i != 1 else "x", "text": f"passage {i}"}) + "\n" for i in range(4))
    )
    (tmp_path / "in" / "b.csv").write_text("id,text\nx1,a csv passage\n")
    assert main(argv) == 1
    assert "(b.csv (CSV) fixes its type for all its rows)" in capsys.readouterr().err


def test_parquet_parts_are_read_by_row_range_in_order_or_not(tmp_path: Path, tiny_bert_dir: Path) -> None:
    # parts were cut from whole row groups re-read for every part (a file of one large row group, as pandas writes
    # up to a million rows, cost O(rows^2 / part_rows) and held the whole group in memory); now a row range is read,
    # and parts read in order go on where the last one ended (benchmark: 0.3 against 41 us/row at --part-rows 2000)
    from promptembed._corpus import PartReader, find_inputs, plan_parts, read_part
    from promptembed._tables import TableJob

    texts: list[str | None] = [f"passage {i}" for i in range(23)]
    texts[7] = texts[12] = None  # bad rows, skipped
    table = pa.table(
        {"id": list(range(23)), "text": texts, "tag": pa.array(["x", "y"] * 11 + ["x"]).dictionary_encode()}
    )
    (tmp_path / "in").mkdir()
    pq.write_table(table, tmp_path / "in" / "a.parquet", row_group_size=10)  # parts straddle the row groups
    specs = plan_parts(find_inputs(tmp_path / "in"), TableJob(on_bad_row="skip"), 4, root=tmp_path / "in")
    want = [table.slice(s.start, s.n_rows).filter(pa.array([i not in s.skip for i in range(s.n_rows)])) for s in specs]
    with PartReader() as reader:
        assert [reader.read(s) for s in specs] == want  # in order: one pass over the file
        assert [reader.read(s) for s in reversed(specs)] == want[::-1]  # any order: the same rows
        assert reader.read(specs[3]) == reader.read(specs[3])
    assert [read_part(s) for s in specs] == want
    argv = ["embed", str(tmp_path / "in"), "--model", str(tiny_bert_dir), "--part-rows", "4", "--on-bad-row", "skip"]
    assert main([*argv, "-o", str(tmp_path / "out")]) == 0
    out = pq.read_table(tmp_path / "out")
    assert out.column("id").to_pylist() == [i for i in range(23) if i not in (7, 12)]
    assert out.column("tag").type == pa.dictionary(pa.int32(), pa.string())  # types as stored
    (tmp_path / "out" / "_manifest.json").unlink()  # a resume starts in the middle of a row group
    for name in ("part-00000-000002", "part-00000-000004"):
        (tmp_path / "out" / f"{name}.parquet").unlink()
    assert main([*argv, "-o", str(tmp_path / "out")]) == 0
    assert pq.read_table(tmp_path / "out").equals(out)


def test_parquet_files_with_other_integer_widths_share_one_type(tmp_path: Path, tiny_bert_dir: Path) -> None:
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"text": ["one", "two"], "n": pa.array([1, 2], pa.int32())}), tmp_path / "in" / "a.parquet")
    pq.write_table(pa.table({"text": ["three"], "n": pa.array([3], pa.int64())}), tmp_path / "in" / "b.parquet")
    assert main(["embed", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_bert_dir)]) == 0
    schemas = {str(pq.read_schema(p).field("n").type) for p in (tmp_path / "out").glob("part-*.parquet")}
    assert schemas == {"int64"}
    assert pq.read_table(tmp_path / "out").column("n").to_pylist() == [1, 2, 3]


def test_a_jsonl_field_named_like_the_output_column_fails_before_any_part(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{"text": f"passage {i}"} for i in range(4)] + [{"text": "re-exported", "embedding": [0.1, 0.2]}]
    _jsonl(tmp_path / "in.jsonl", rows)
    argv = ["embed", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out"), "--model", str(tiny_bert_dir),
            "--part-rows", "2"]  # fmt: skip
    assert main(argv) == 1
    assert "output_column='embedding' is already a field of the input's rows (first: in.jsonl line 5)" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()  # it used to fail after two parts were written
    assert main([*argv, "--output-column", "vector"]) == 0
    assert pq.read_table(tmp_path / "out").column("embedding").to_pylist()[-1] == [0.1, 0.2]


def test_values_no_single_parquet_type_holds_fail_before_anything_is_embedded(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--model", str(tiny_bert_dir), "--part-rows", "1", "--on-bad-row", "skip"]
    _jsonl(tmp_path / "big.jsonl", [{"text": "big", "n": 2**60}, {"text": "half", "n": 0.5}])
    assert main(["embed", str(tmp_path / "big.jsonl"), "-o", str(tmp_path / "o1"), *base]) == 1
    err = capsys.readouterr().err
    assert (
        "column 'n' holds an integer beyond 2**53 (first: big.jsonl line 1) and floats (first: big.jsonl line 2)" in err
    )
    _jsonl(tmp_path / "nested.jsonl", [{"text": "a", "m": {"k": 1}}, {"text": "b", "m": {"k": "one"}}])
    assert main(["embed", str(tmp_path / "nested.jsonl"), "-o", str(tmp_path / "o2"), *base]) == 1
    assert "column 'm' holds nested values of types that do not merge" in capsys.readouterr().err
    rows = [{"text": "a", "m": {"ids": [2**60]}}, {"text": "b", "m": {"ids": [0.5]}}]  # each list on its own is fine
    _jsonl(tmp_path / "deep.jsonl", rows)
    assert main(["embed", str(tmp_path / "deep.jsonl"), "-o", str(tmp_path / "o3"), *base]) == 1
    assert (
        "column 'm' holds at m.ids[] an integer beyond 2**53 (first: deep.jsonl line 1) and floats (first: "
        "deep.jsonl line 2)" in capsys.readouterr().err
    )
    # every case failed before anything was embedded (the deep one used to fail only when the parts were unified)
    assert not any((tmp_path / o).exists() for o in ("o1", "o2", "o3"))
    # a big integer and a float under other paths (a key with a dot in it is not a path): no clash, nothing lost
    fine = [{"text": "a", "m": {"x": [2**60], "a.b": [2**60]}}, {"text": "b", "m": {"y": [0.5], "a": {"b": [0.5]}}}]
    _jsonl(tmp_path / "fine.jsonl", fine)
    assert main(["embed", str(tmp_path / "fine.jsonl"), "-o", str(tmp_path / "o4"), *base]) == 0
    got = [r["m"] for r in _read(tmp_path / "o4").to_pylist()]
    assert [{k: v for k, v in m.items() if v is not None} for m in got] == [r["m"] for r in fine]


def test_a_row_without_the_id_or_title_field_has_a_null_one_also_where_no_row_of_a_part_has_it(
    tmp_path: Path, tiny_gemma_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # rows 2 and 3 (the second part) lack the id and the title: the part was built without those columns, and
    # embed_table failed there (ConfigError) after the first part was written, at every rerun too
    rows: list[dict[str, object]] = [{"id": f"d{i}", "text": f"passage {i}", "title": f"T{i}"} for i in range(6)]
    for row in rows[2:4]:
        del row["id"], row["title"]
    _jsonl(tmp_path / "in" / "a.jsonl", rows)
    argv = ["embed", str(tmp_path / "in"), "--model", str(tiny_gemma_dir), "--part-rows", "2", "--id-column", "id",
            "--title-column", "title"]  # fmt: skip
    assert main([*argv, "-o", str(tmp_path / "out")]) == 0
    table = pq.read_table(tmp_path / "out")
    assert table.column("id").to_pylist() == ["d0", "d1", None, None, "d4", "d5"]
    titles = table.column("title").to_pylist()
    assert titles == ["T0", "T1", None, None, "T4", "T5"]
    with PromptEmbedder(model=tiny_gemma_dir) as emb:
        want = emb.embed_documents([f"passage {i}" for i in range(6)], titles=titles)
    np.testing.assert_allclose(np.asarray(table.column("embedding").to_pylist()), want, atol=2e-6)
    # a CSV file holds the id column and no JSONL row does: null in the JSONL rows
    (tmp_path / "in" / "b.csv").write_text("id,text,title\nc0,a csv passage,CT\n")
    _jsonl(tmp_path / "in" / "a.jsonl", [{"text": "no id", "title": "T"}])
    assert main([*argv, "-o", str(tmp_path / "mixed")]) == 0
    assert pq.read_table(tmp_path / "mixed").column("id").to_pylist() == [None, "c0"]
    # no row of a JSONL input has the field (a misspelt option): an error before anything is written, as for CSV
    (tmp_path / "in" / "b.csv").unlink()
    assert main([*argv[:-4], "--id-column", "ident", "-o", str(tmp_path / "typo")]) == 1
    assert (
        "promptembed: error: id_column='ident' is not a field of any input row; their fields are ['text', 'title'] "
        "(--id-column)" in capsys.readouterr().err
    )
    assert not (tmp_path / "typo").exists()


def test_an_object_that_is_empty_in_every_row_of_a_part_takes_the_type_of_the_whole_input(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # part 2's rows hold {} (and [{}], {"a": {}}): a struct with no field, which Parquet cannot write, crashed the
    # run there with an ArrowNotImplementedError, at every rerun too
    rows: list[object] = [
        {"id": i, "text": f"passage {i}", "meta": {"lang": "en"}, "refs": [{"n": i}], "deep": {"a": {"b": i}}}
        for i in range(6)
    ]
    rows[2] = rows[3] = {"id": 2, "text": "empty", "meta": {}, "refs": [{}], "deep": {"a": {}}}
    _jsonl(tmp_path / "in.jsonl", rows)
    argv = ["embed", str(tmp_path / "in.jsonl"), "--model", str(tiny_bert_dir), "--part-rows", "2"]
    assert main([*argv, "-o", str(tmp_path / "out")]) == 0
    schemas = [pq.read_schema(p) for p in sorted((tmp_path / "out").glob("part-*.parquet"))]
    assert len(schemas) == 3 and all(s.equals(schemas[0]) for s in schemas)
    table = pq.read_table(tmp_path / "out")
    assert table.column("meta").to_pylist()[1:4] == [{"lang": "en"}, {"lang": None}, {"lang": None}]
    assert table.column("refs").to_pylist()[1:3] == [[{"n": 1}], [{"n": None}]]
    assert table.column("deep").to_pylist()[2] == {"a": {"b": None}}
    # {} in every row of the input: no type to take, so the scan refuses it, skip or not, naming the column and path
    _jsonl(tmp_path / "empty.jsonl", [{"text": f"passage {i}", "m": {"tags": [{}]}} for i in range(3)])
    empty = ["embed", str(tmp_path / "empty.jsonl"), "-o", str(tmp_path / "o2"), "--model", str(tiny_bert_dir)]
    assert main([*empty, "--on-bad-row", "skip"]) == 1
    assert (
        "promptembed: error: column 'm' holds only empty objects ({}) at m.tags[] (first: empty.jsonl line 1), and a "
        "Parquet column cannot hold an object with no fields; drop that field from the input rows, or give those "
        "objects a field (found before anything was embedded)" in capsys.readouterr().err
    )
    assert not (tmp_path / "o2").exists()


def test_values_no_parquet_column_holds_are_bad_rows_found_by_the_scan(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # an unsigned 64-bit id, and unpaired surrogates (JSON "\\ud800" escapes) in a value, a nested value or key, a
    # field name: the scan passed them, and the run crashed at their part (OverflowError traceback,
    # UnicodeEncodeError) after the parts before it were written, with --on-bad-row skip too, and at every rerun
    rows: list[object] = [{"id": i, "text": f"passage {i}", "src": "web", "meta": {"tags": ["a"]}} for i in range(8)]
    rows[1]["id"] = 2**63 + 7  # type: ignore[index]
    rows[2]["src"] = "\ud800"  # type: ignore[index]
    rows[3]["meta"] = {"tags": ["ok", "\udc80"]}  # type: ignore[index]
    rows[4]["meta"] = {"\ud800": 1}  # type: ignore[index]
    rows[5]["meta"] = {"ids": [-(2**63) - 1]}  # type: ignore[index]
    rows[6]["\udfff"] = 1  # type: ignore[index]
    _jsonl(tmp_path / "in.jsonl", rows)
    argv = ["embed", str(tmp_path / "in.jsonl"), "--model", str(tiny_bert_dir), "--part-rows", "2", "--id-column", "id"]
    assert main([*argv, "-o", str(tmp_path / "fail")]) == 1
    err = capsys.readouterr().err
    assert (
        "Row id=9223372036854775815 (in.jsonl line 2): column 'id' holds the integer 9223372036854775815, beyond "
        in err
    )
    assert "write such numbers as strings" in err and not (tmp_path / "fail").exists()
    assert main([*argv, "-o", str(tmp_path / "out"), "--on-bad-row", "skip"]) == 0
    assert pq.read_table(tmp_path / "out").column("id").to_pylist() == [0, 7]
    surrogate = "which is not valid Unicode text"
    assert json.loads((tmp_path / "out" / "_manifest.json").read_text())["skipped_rows"] == [
        {"row": "id=9223372036854775815", "reason": "column 'id' holds the integer 9223372036854775815, beyond the "
         "64-bit range a Parquet integer column holds; write such numbers as strings (e.g. unsigned 64-bit hash ids)"},
        {"row": "id=2", "reason": f"column 'src' holds a str with an unpaired surrogate ('\\ud800'), {surrogate}; "
                                  "fix that text"},
        {"row": "id=3", "reason": f"column 'meta' holds at meta.tags[] a str with an unpaired surrogate ('\\udc80'), "
                                  f"{surrogate}; fix that text"},
        {"row": "id=4", "reason": f"column 'meta' holds an object key with an unpaired surrogate ('\\ud800'), "
                                  f"{surrogate}; fix that key"},
        {"row": "id=5", "reason": "column 'meta' holds at meta.ids[] the integer -9223372036854775809, beyond the "
                                  "64-bit range a Parquet integer column holds; write such numbers as strings (e.g. "
                                  "unsigned 64-bit hash ids)"},
        {"row": "id=6", "reason": f"has a field name with an unpaired surrogate ('\\udfff'), {surrogate}"},
    ]  # fmt: skip


def test_a_value_no_parquet_column_holds_is_one_line_when_a_part_is_read(tmp_path: Path) -> None:
    from promptembed._corpus import find_inputs, plan_parts, read_part
    from promptembed._tables import TableJob
    from promptembed.errors import InputError

    path = tmp_path / "in.jsonl"
    _jsonl(path, [{"text": "a", "n": 1}])
    (spec,) = plan_parts(find_inputs(path), TableJob(), 10, root=tmp_path)
    _jsonl(path, [{"text": "a", "n": 2**64}])  # changed after the scan (a rerun checks sizes and mtimes, not this)
    with pytest.raises(
        InputError, match=re.escape("in.jsonl (part part-00000-000000, rows from 1): a value no Parquet")
    ):
        read_part(spec)  # was an OverflowError traceback


def test_an_empty_input_is_an_empty_job(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in.csv").write_text("id,text\n")  # a header and no rows
    assert main(["embed", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out"), "--model", str(tiny_bert_dir)]) == 0
    assert "0 rows embedded into 0 parts" in capsys.readouterr().out


def test_parquet_files_of_one_kind_in_other_units_or_encodings_merge(tmp_path: Path, tiny_bert_dir: Path) -> None:
    (tmp_path / "in").mkdir()
    stamp = [1_700_000_000_000_000]
    pq.write_table(pa.table({"text": ["one"], "at": pa.array(stamp, pa.timestamp("us")),
                             "tag": pa.array(["x"]).dictionary_encode()}), tmp_path / "in" / "a.parquet")  # fmt: skip
    pq.write_table(pa.table({"text": ["two"], "at": pa.array([s * 1000 for s in stamp], pa.timestamp("ns")),
                             "tag": pa.array(["y"])}), tmp_path / "in" / "b.parquet")  # fmt: skip
    assert main(["embed", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_bert_dir)]) == 0
    table = pq.read_table(tmp_path / "out")
    assert table.column("tag").to_pylist() == ["x", "y"] and len(set(table.column("at").to_pylist())) == 1


def test_review_cases_of_kinds_dictionaries_and_time_zones(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--model", str(tiny_bert_dir)]
    # an object column with one list among objects: with skip, the list row is skipped (not a type clash)
    _jsonl(tmp_path / "n.jsonl", [*({"text": f"t{i}", "m": {"a": i}} for i in range(3)), {"text": "x", "m": [1]}])
    assert main(["embed", str(tmp_path / "n.jsonl"), "-o", str(tmp_path / "o1"), "--on-bad-row", "skip", *base]) == 0
    assert pq.read_table(tmp_path / "o1").column("text").to_pylist() == ["t0", "t1", "t2"]
    # a dictionary-encoded column that every part shares keeps its encoding (and its parts are not rewritten)
    (tmp_path / "d").mkdir()
    pq.write_table(
        pa.table({"text": ["a", "b"], "tag": pa.array(["x", "y"]).dictionary_encode()}), tmp_path / "d" / "a.parquet"
    )
    assert main(["embed", str(tmp_path / "d"), "-o", str(tmp_path / "o2"), "--part-rows", "1", *base]) == 0
    assert {pa.types.is_dictionary(pq.read_schema(p).field("tag").type) for p in (tmp_path / "o2").glob("part-*")} == {
        True
    }
    # a zoned and a naive timestamp do not merge: found at the scan
    (tmp_path / "t").mkdir()
    pq.write_table(
        pa.table({"text": ["a"], "at": pa.array([1], pa.timestamp("us", tz="UTC"))}), tmp_path / "t" / "a.parquet"
    )
    pq.write_table(
        pa.table({"text": ["b", "c"], "at": pa.array([1, 2], pa.timestamp("us"))}), tmp_path / "t" / "b.parquet"
    )
    assert main(["embed", str(tmp_path / "t"), "-o", str(tmp_path / "o3"), *base]) == 1
    assert "column 'at' holds timestamp in 2 rows" in capsys.readouterr().err and not (tmp_path / "o3").exists()


def test_engine_compile_runs_the_compiled_model_and_a_resume_may_change_the_engine(
    tmp_path: Path, tiny_gemma_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from promptembed import engine

    rows_seen: list[int] = []

    def fake_compile(model):  # type: ignore[no-untyped-def]  # the wiring only: test_engine.py compiles for real
        def forward(features, **kwargs):  # type: ignore[no-untyped-def]
            rows_seen.append(int(features["input_ids"].shape[0]))
            return model(features, **kwargs)

        return forward

    monkeypatch.setattr(engine, "_compile", fake_compile)
    expected = _corpus(tmp_path / "in")
    out = tmp_path / "out"
    argv = ["embed", str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_gemma_dir), "--id-column", "id",
            "--title-column", "title", "--part-rows", "10"]  # fmt: skip
    assert main([*argv, "--engine", "compile"]) == 0
    assert rows_seen and max(rows_seen) >= 2  # the parts went through the compiled model
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["encode_engine"] == "compile"
    table = _read(out)
    ids = table.column("id").to_pylist()
    with PromptEmbedder(model=tiny_gemma_dir) as emb:
        ref = emb.embed_documents([expected[i][0] for i in ids], titles=[expected[i][1] for i in ids])
    got = table.column("embedding").combine_chunks().values.to_numpy().reshape(-1, 32)
    np.testing.assert_allclose(got, ref, atol=2e-6, rtol=0)

    (out / "_manifest.json").unlink()  # killed after its last part but one: the resume may take another engine
    last = sorted(out.glob("part-*.parquet"))[-1]
    last.unlink()
    seen = len(rows_seen)
    assert main([*argv, "--engine", "auto"]) == 0
    assert len(rows_seen) == seen and last.exists()
    assert json.loads((out / "_manifest.json").read_text())["encode_engine"] == "auto"
    assert sorted(_read(out).column("id").to_pylist()) == sorted(expected)
