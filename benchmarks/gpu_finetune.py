"""The finetune helper on a lent GPU: wall time per stage and real-question gains, both `make bench-finetune` domains.

The GPU machine has no registry and only 64 MiB travel with a command, so ``--prepare`` (here, on this machine)
writes what the runs need into one folder: each domain's documents, real questions and distractors (as
finetune_bench.py prepares them; the questions never reach training) and all-MiniLM-L6-v2 with its weights stored
in float16 (45 MB instead of 90). On the GPU machine the weights are cast back to float32 once, then each
(domain, configuration, seed) runs ``promptembed.finetune.finetune(device="cuda")`` (bf16 training on a card that
supports it) and appends one JSON line to ``--out`` as soon as it finishes, so a run cut off by the time limit
keeps what finished. Configurations are finetune_bench.py's ``CONFIGS``.

    python benchmarks/gpu_finetune.py --prepare .gpuw/ft                           # here
    python benchmarks/gpu_finetune.py --data .gpuw/ft --out $OUT/ft.jsonl \\
        --keys zaragoza/bs64/seed0 debian/bs64/seed0 --deadline 200               # on the GPU machine

Casting the weights to float16 and back moves the base model's scores slightly: each row carries its own base.
Credits: see finetune_domains.CREDITS.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def prepare(dest: Path) -> None:
    """Write the domains' data and float16 MiniLM weights into ``dest`` (run where the data and weights are)."""
    import torch
    from safetensors.torch import load_file, save_file

    sys.path.insert(0, str(HERE))
    import finetune_bench

    from promptembed import _loading

    dest.mkdir(parents=True, exist_ok=True)
    for domain in ("zaragoza", "debian"):
        target = dest / domain
        if target.exists():
            shutil.rmtree(target)
        target.mkdir()
        docs, _questions, distractors = finetune_bench._prepare(domain, target)
        shutil.copytree(docs, target / "docs")
        if distractors is None:
            (target / "distractors.jsonl").unlink(missing_ok=True)
        print(f"{domain}: {sum(1 for _ in (target / 'docs').rglob('*') if _.is_file())} documents", flush=True)
    model = dest / "minilm16"
    if model.exists():
        shutil.rmtree(model)
    shutil.copytree(_loading.default_model_path(), model, ignore=shutil.ignore_patterns("*.bin", "onnx", "openvino"))
    weights = model / "model.safetensors"
    tensors = load_file(str(weights))
    save_file({k: v.to(torch.float16).contiguous() for k, v in tensors.items()}, str(weights))
    print(f"weights: {weights.stat().st_size / 2**20:.1f} MiB", flush=True)


def float32_model(folder: Path, dest: Path) -> Path:
    """The float16-stored model as an ordinary float32 sentence-transformers folder."""
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", model_kwargs={"dtype": torch.float32})
    model.to(torch.float32)
    model.save(str(dest))
    return dest


def run_one(data: Path, base: Path, domain: str, config: str, seed: int, device: str) -> dict[str, object]:
    import torch

    sys.path.insert(0, str(HERE))
    from finetune_bench import CONFIGS

    from promptembed.finetune import finetune

    kwargs = dict(CONFIGS[config])
    folder = data / domain
    distractors = folder / "distractors.jsonl"
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="gpuft-") as tmp:
        result = finetune(
            [folder / "docs"], output=Path(tmp) / "model", base=base, eval_queries=folder / "questions.jsonl",
            eval_corpus=distractors if distractors.is_file() else None, seed=seed, device=device, progress=False,
            **kwargs,  # type: ignore[arg-type]
        )  # fmt: skip
        report = json.loads((result.output / "report.json").read_text(encoding="utf-8"))
    docs_bytes = sum(p.stat().st_size for p in (folder / "docs").rglob("*") if p.is_file())
    return {
        "key": f"{domain}/{config}/seed{seed}",
        "domain": domain,
        "config": config,
        "seed": seed,
        "kwargs": kwargs,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "bf16": bool(cuda and torch.cuda.is_bf16_supported()),
        "torch": torch.__version__,
        "docs_bytes": docs_bytes,
        "evaluations": report["evaluations"],
        "train_rows": report["data"]["train_pairs"],
        "chunks": report["data"]["chunks"],
        "timings_s": report["timings_s"],
        "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None,
        "wall_s": round(time.time() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepare", type=Path, help="write the data and float16 weights here, then stop")
    parser.add_argument("--data", type=Path, help="a folder written by --prepare")
    parser.add_argument("--out", type=Path, help="JSON lines, one per finished run")
    parser.add_argument("--keys", nargs="*", default=[], help="DOMAIN/CONFIG/seedN, in order")
    parser.add_argument("--device", default="cuda", help="cuda (the point of this script) or cpu (a smoke check)")
    parser.add_argument("--deadline", type=float, default=0, help="start no run after this many seconds")
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare)
        return
    import logging

    logging.getLogger("promptembed").setLevel(logging.WARNING)
    started = time.time()
    base = float32_model(args.data / "minilm16", Path(tempfile.mkdtemp(prefix="minilm32-")))
    for key in args.keys:
        if args.deadline and time.time() - started > args.deadline:
            print(f"deadline: not starting {key}", flush=True)
            continue
        domain, config, seed = key.split("/")
        t0 = time.time()
        try:
            row = run_one(args.data, base, domain, config, int(seed.removeprefix("seed")), args.device)
        except Exception as exc:  # one failed run must not lose the others
            print(f"FAILED {key}: {type(exc).__name__}: {exc}", flush=True)
            continue
        with args.out.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        ev = row["evaluations"]["eval_queries"]  # type: ignore[index]
        print(
            f"{key}: {time.time() - t0:.0f} s, nDCG@10 {ev['base']['ndcg_at_10']:.4f}"
            f" -> {ev['finetuned']['ndcg_at_10']:.4f}"
            f" timings {row['timings_s']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
