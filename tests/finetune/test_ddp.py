"""DDP finetuning on 2 CPU processes (gloo), started by torchrun and by accelerate launch, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TOPICS = [
    "carport building permit roof area", "heat pump energy bills ground source",
    "contractor liability insurance certificate", "drainage foundation water damage",
    "window replacement facade opening", "shed outbuilding square metres exempt", "solar panels roof orientation",
    "kitchen renovation plumbing", "chimney sweep inspection yearly", "fence height neighbour boundary",
    "garage door automatic opener", "basement insulation moisture",
]  # fmt: skip
PROMPTS = {"query": "query: ", "document": "passage: "}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_two_process_finetune(launcher: str, tmp_path: Path, tiny_bert_dir: Path) -> None:
    config = tiny_bert_dir / "config_sentence_transformers.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "prompts": PROMPTS}))
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"query": " ".join(t.split()[:2]), "positive": t + " rules explained"}) + "\n"
                             for t in TOPICS))  # fmt: skip
    out = tmp_path / "runs" / "model"
    bin_dir = Path(sys.executable).parent
    launch = {
        "torchrun": [str(bin_dir / "torchrun"), "--nproc_per_node=2"],
        "accelerate": [str(bin_dir / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
                       "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"],
    }[launcher]  # fmt: skip
    argv = [*launch, "-m", "promptembed", "finetune", "--pairs-file", str(pairs), "--eval-queries", str(pairs),
            "--base", str(tiny_bert_dir), "--output", str(out), "--max-steps", "6", "--batch-size", "4",
            "--learning-rate", "1e-3"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]  # the launcher exits 0 only when every rank did

    report = json.loads((out / "report.json").read_text())
    assert report["training"]["processes"] == 2  # really trained by 2 processes
    assert report["improved"] is True
    assert json.loads((out / "config_sentence_transformers.json").read_text())["prompts"] == PROMPTS
    assert sorted(p.name for p in out.parent.iterdir()) == ["model"]  # one output, no temp or work folder left
    assert done.stdout.count(report["verdict"]) == 1 and done.stdout.count("report: ") == 1  # rank 0 reports once
