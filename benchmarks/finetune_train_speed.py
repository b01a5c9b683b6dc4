"""Training speed on CPU: float32 vs bf16 mixed precision (``train_dtype="bfloat16"``), all-MiniLM-L6-v2, MNRL.

The same training pairs (a finished `make bench-finetune` run's ``train_pairs.jsonl``; by default the 1 MB Debian
speed row's), the same steps of batch 32 in each precision, alternating (fp32, bf16, fp32, bf16) so drift on a shared
machine hits both; each run in a fresh process with 2 torch threads. Prints a Markdown table: seconds per step and
the ratio. Needs a CPU with native bf16 (AMX or avx512_bf16).

    python benchmarks/finetune_train_speed.py [PAIRS_JSONL] [--steps 12] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_PAIRS = Path.home() / ".cache" / "promptembed-bench" / "runs" / "debian_default-speed_seed0"
DEFAULT_PAIRS /= "train_pairs.jsonl"


def one(dtype: str, pairs: Path, steps: int) -> float:
    import torch

    torch.set_num_threads(2)
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

    from promptembed._loading import default_model_path
    from promptembed.finetune.train import train_model

    rows = [json.loads(line) for line in pairs.read_text(encoding="utf-8").splitlines()][: 32 * steps]
    rows = [{"anchor": r["anchor"], "positive": r["positive"]} for r in rows]
    Dataset.from_list(rows[:2])  # import and warm datasets outside the timing
    model = SentenceTransformer(str(default_model_path()), device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        train_model(
            model, rows, loss="mnrl", work_dir=Path(tmp), epochs=1.0, batch_size=32, learning_rate=2e-5, seed=0,
            matryoshka_dims=None, max_steps=steps, save_steps=10_000, resume=False, progress=False,
            train_dtype=dtype,
        )  # fmt: skip
        return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", nargs="?", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--one", choices=("float32", "bfloat16"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.pairs, args.steps)))
        return
    got: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    for _ in range(args.rounds):
        for dtype in got:
            cmd = [sys.executable, __file__, str(args.pairs), "--steps", str(args.steps), "--one", dtype]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            got[dtype].append(json.loads(out.strip().splitlines()[-1]))
            print(f"{dtype}: {got[dtype][-1]:.2f} s/step", flush=True)
    fp32, bf16 = statistics.median(got["float32"]), statistics.median(got["bfloat16"])
    print(
        f"\n{args.steps} steps of batch 32 per run, {args.rounds} rounds, {os.cpu_count()} cores,"
        f" {platform.processor() or platform.machine()}, load average {os.getloadavg()[0]:.2f} at the end\n\n"
        "| training precision | s/step (median) | speed vs float32 |\n|---|---|---|\n"
        f"| float32 | {fp32:.2f} | 1.00x |\n| bf16 mixed precision | {bf16:.2f} | {fp32 / bf16:.2f}x |"
    )


if __name__ == "__main__":
    main()
