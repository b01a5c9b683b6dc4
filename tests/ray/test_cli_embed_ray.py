from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from promptembed.cli import main


def test_cli_in_process_and_ray_outputs_are_identical(ray_cluster: Any, tmp_path: Path, tiny_gemma_dir: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    with (src / "a.jsonl").open("w") as f:
        for i in range(30):
            text = None if i == 7 else f"Row {i}: a passage about planet number {i}"
            f.write(json.dumps({"id": i, "text": text, "title": f"T{i}" if i % 2 else None}) + "\n")
    table = pa.table({"id": list(range(100, 112)), "text": [f"Parquet row {i}" for i in range(12)]})
    pq.write_table(table, src / "b.parquet", row_group_size=5)
    common = ["embed", str(src), "--model", str(tiny_gemma_dir), "--id-column", "id", "--part-rows", "8",
              "--on-bad-row", "skip"]  # fmt: skip
    # the same torch thread count on both sides (Ray gives an actor as many as its CPUs): on some CPUs a GEMM's last
    # bits depend on the thread count (seen on a 2-core Xeon with avx512_bf16), and this test asks for the same bytes
    threads = torch.get_num_threads()
    # Ray gives the actor one thread per CPU (--cpus-per-worker 2), unless OMP_NUM_THREADS is set: then that
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 2))
    try:
        assert main([*common, "-o", str(tmp_path / "local")]) == 0
    finally:
        torch.set_num_threads(threads)
    ray_args = ["--ray", "auto", "--workers", "1", "--cpus-per-worker", "2"]
    assert main([*common, "-o", str(tmp_path / "ray"), *ray_args]) == 0

    local = sorted(p.name for p in (tmp_path / "local").glob("part-*.parquet"))
    assert local == sorted(p.name for p in (tmp_path / "ray").glob("part-*.parquet")) and len(local) == 6
    for name in local:
        a, b = pq.read_table(tmp_path / "local" / name), pq.read_table(tmp_path / "ray" / name)
        assert a.schema == b.schema and a.equals(b), name  # same columns, types, rows, order and vector bytes
    m_local, m_ray = (json.loads((tmp_path / d / "_manifest.json").read_text()) for d in ("local", "ray"))
    assert m_local["engine"] == "in-process" and m_ray["engine"].startswith("ray (auto")
    for m in (m_local, m_ray):
        del m["engine"], m["seconds"]
    assert m_local == m_ray
    assert m_ray["rows"] == 41 and m_ray["skipped_rows"] == [
        {"row": "id=7", "reason": "column 'text' is NoneType (None), not str"}
    ]


def test_user_errors_in_ray_tasks_and_actors_are_one_line_and_leave_no_job(
    ray_cluster: Any, tmp_path: Path, tiny_gemma_dir: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "hello", "title": "T"}\n')
    cases = [  # a wrong prompt name is found in a Ray task; a title without a title slot where batches are embedded
        (tiny_gemma_dir, ["--prompt-name", "STSS"], "Prompt name 'STSS' not found"),
        (tiny_bert_dir, ["--title-column", "title"], "titles were given, but this model's document prompt ''"),
    ]
    for model, options, message in cases:
        argv = ["embed", str(src), "-o", str(tmp_path / "out"), "--model", str(model), "--ray", "auto"]
        assert main([*argv, *options]) == 1
        err = capsys.readouterr().err
        line = f"promptembed: error: {message}"
        assert line in err and "Traceback" not in err and "UserCodeException" not in err, err  # not Ray's wrapper
        assert err.split(line, 1)[1].count("\n") == 1  # the message ends there, without Ray Data's retry advice
        assert not (tmp_path / "out").exists()  # no _job.json that would call the corrected command another job
    argv = ["embed", str(src), "-o", str(tmp_path / "out"), "--model", str(tiny_gemma_dir), "--ray", "auto"]
    assert main([*argv, "--prompt-name", "STS"]) == 0


def test_ray_gets_the_engine_options(
    ray_cluster: Any, tmp_path: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--ray`` hands ``--engine`` and ``--max-batch-tokens`` to embed_dataset (and so to its actors:
    tests/ray/test_embed_dataset.py)."""
    import promptembed.ray

    seen: dict[str, Any] = {}

    class Stop(Exception):
        pass

    def recording_embed_dataset(ds: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        raise Stop  # before anything is embedded

    monkeypatch.setattr(promptembed.ray, "embed_dataset", recording_embed_dataset)
    src = tmp_path / "in.csv"
    src.write_text("text\nhello\nworld\n")
    argv = ["embed", str(src), "-o", str(tmp_path / "out"), "--model", str(tiny_bert_dir), "--ray", "auto",
            "--engine", "compile", "--max-batch-tokens", "512"]  # fmt: skip
    with pytest.raises(Stop):
        main(argv)
    assert seen["engine"] == "compile" and seen["max_batch_tokens"] == 512
