"""The benchmark scripts run: `benchmarks/gpu.py --smoke` and `benchmarks/gpu_ray.py --smoke` end to end (so a lent
GPU session does not spend its minutes on a broken script), and the section replacement that lets several scripts
share one results file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):  # type: ignore[no-untyped-def]
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    sys.path.insert(0, str(ROOT / "examples"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_replace_section_keeps_every_other_section() -> None:
    replace = _load("engine").replace_section
    text = "# Benchmarks\n\nintro\n\n## A\n\nold a\n\n## B\n\nold b\n"
    assert replace(text, "## A", "## A\n\nnew a") == "# Benchmarks\n\nintro\n\n## A\n\nnew a\n\n## B\n\nold b\n"
    assert replace(text, "## B", "## B\n\nnew b") == "# Benchmarks\n\nintro\n\n## A\n\nold a\n\n## B\n\nnew b\n"
    assert replace(text, "## C", "## C\n\nc").endswith("## B\n\nold b\n\n## C\n\nc\n")
    marked = "## A\n\nold a\n\n<!-- other: start -->\n## B\n\nb\n<!-- other: end -->\n"
    assert (
        replace(marked, "## A", "## A\n\nnew")
        == "\n\n## A\n\nnew\n\n<!-- other: start -->\n## B\n\nb\n<!-- other: end -->\n"
    )


@pytest.mark.slow
def test_gpu_script_smoke_run(tmp_path: Path) -> None:
    out = tmp_path / "GPU.md"
    out.write_text("# GPU benchmarks\n\n## Earlier section\n\nkept\n", encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OUT": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--smoke", "--device", "cpu", "--output", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    assert "## Earlier section\n\nkept" in text and "SMOKE RUN" in text
    for model in ("all-MiniLM-L6-v2-shaped", "EmbeddingGemma-300M-shaped"):
        rows = [line for line in text.splitlines() if line.startswith(f"| {model} |")]
        contestants = [row.split(" | ")[1] for row in rows]
        assert any("(raw's best)" in c for c in contestants)
        assert any(c.startswith("today's path") for c in contestants)
        assert sum("(default)" in c for c in contestants) == 1
        for row in rows:
            docs_s = float(row.split(" | ")[2].replace(",", ""))
            assert docs_s > 0
        cosines = [float(c) for c in re.findall(r"\| (1\.0000|0\.\d{4}) \|$", "\n".join(rows), flags=re.M)]
        assert cosines and min(cosines) > 0.9999  # float32 against float32 on CPU
        compiled = [c for c in contestants if c.startswith("engine='compile'")]
        assert len(compiled) == 2 and "(first call, compiling:" in compiled[0]
    assert (tmp_path / "gpu.json").exists()
    # a run cut off inside the compiled rows leaves rows without their ratios: --report-from still writes the table
    import json

    rows = json.loads((tmp_path / "gpu.json").read_text(encoding="utf-8"))
    cut = [{k: v for k, v in r.items() if k != "vs_best_raw"} for r in rows if "compile" not in r["contestant"]]
    (tmp_path / "cut.json").write_text(json.dumps(cut), encoding="utf-8")
    report = subprocess.run(
        [
            sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--output", str(tmp_path / "again.md"),
            "--report-from", json.dumps({"rows": str(tmp_path / "cut.json"), "device": "CPU", "setting": "then"}),
        ],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr[-3000:]
    again = (tmp_path / "again.md").read_text(encoding="utf-8")
    table = [line for line in again.splitlines() if line.startswith("| EmbeddingGemma-300M-shaped |")]
    assert len(table) == len([r for r in cut if r["model"] == "EmbeddingGemma-300M-shaped"]) >= 4
    assert "`python benchmarks/gpu.py` on then." in again
    best = [line for line in table if "(raw's best)" in line]
    assert len(best) == 1 and "| 1.00x |" in best[0]


@pytest.mark.slow
def test_gpu_ray_script_smoke_run(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    out = tmp_path / "GPU.md"
    out.write_text("# GPU benchmarks\n\n## Earlier section\n\nkept\n", encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OUT": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_ray.py"), "--smoke", "--output", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    assert "## Earlier section\n\nkept" in text and "SMOKE RUN" in text and "## Ray Data on one GPU" in text
    import json

    summary = json.loads((tmp_path / "gpu_ray.json").read_text(encoding="utf-8"))
    assert summary["cosine"] > 0.9999 and summary["docs_s"] > 0  # every row back, the same vectors as in-process
