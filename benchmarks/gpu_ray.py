"""Ray Data on one GPU: ``promptembed.ray.embed_dataset(num_gpus=1)`` against the same engine in this process.

Run on a lent GPU machine (Ray's wheel travels stripped of its Java jars and dashboard, see benchmarks/GPU.md). The
model is all-MiniLM-L6-v2-shaped with random weights (benchmarks/gpu.py builds it: the weights cannot travel), the
corpus the realistic length mix of benchmarks/gpu.py (zaragoza-construction-faq answers, Zaragoza AB, CC BY 4.0,
plus 200-500-token passages). Both contestants run promptembed's engine at its CUDA defaults in bf16, with the
document prompt:

* in-process: ``PromptEmbedder(device="cuda").embed_documents`` in calls of the Ray batch size (as the actor gets
  them), model loaded and warm, all calls and in steady state (from the end of the first call on);
* Ray: ``embed_dataset(ds, num_gpus=1, concurrency=1)`` over a materialized dataset, end to end (actor start and
  model load included) and in steady state (from the first output batch on). The actor may already be working on
  the next batch when the first one reaches the driver, so Ray's steady state can read up to one batch high.

Reports docs/s, the ratios, and the min cosine between the two paths' vectors (bf16, batched differently, so equal
to rounding, not bit for bit). Writes the "Ray Data on one GPU" section of benchmarks/GPU.md.

    python benchmarks/gpu_ray.py            # on the GPU machine, about 1 minute on an H100
    python benchmarks/gpu_ray.py --smoke    # any machine, CPU, tiny sizes: checks that the script runs
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gpu  # noqa: E402  (benchmarks/gpu.py: the model builder and the corpus)
from scale import drain_timed  # noqa: E402  (benchmarks/scale.py: the CPU Ray benchmark's timed consumer)

SECTION = "## Ray Data on one GPU (`benchmarks/gpu_ray.py`)"


def in_process(path: Path, texts: list[str], device: str, batch_size: int) -> dict[str, Any]:
    from promptembed import PromptEmbedder

    with PromptEmbedder(model=path, device=device, show_progress_bar=False) as emb:
        emb.embed_documents(texts[:batch_size])  # loaded and warm
        chunks = []
        t0 = time.perf_counter()
        first_done = None
        for start in range(0, len(texts), batch_size):
            chunks.append(emb.embed_documents(texts[start : start + batch_size]))
            if first_done is None:
                first_done = time.perf_counter()
        end = time.perf_counter()
    rest = len(texts) - len(chunks[0])
    steady = rest / (end - first_done) if rest and first_done is not None and end > first_done else float("nan")
    return {"docs_s": len(texts) / (end - t0), "steady_docs_s": steady, "vectors": np.concatenate(chunks)}


def on_ray(path: Path, texts: list[str], *, num_gpus: float, batch_size: int) -> dict[str, Any]:
    import ray

    from promptembed.ray import embed_dataset

    ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=32)
    ds = ds.materialize()  # the input sits in the object store before the clock starts
    out = embed_dataset(ds, model=path, batch_size=batch_size, concurrency=1, num_gpus=num_gpus)
    return drain_timed(out, len(texts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes: checks the script runs")
    parser.add_argument("--output", type=Path, default=gpu.GPU_MD, help="Markdown file whose section is replaced")
    args = parser.parse_args()
    import ray
    import torch

    logging.getLogger("promptembed").setLevel(logging.ERROR)  # the passages over MiniLM's 256 tokens are expected
    cuda = torch.cuda.is_available() and not args.smoke
    device = "cuda" if cuda else "cpu"
    work = Path(tempfile.mkdtemp(prefix="promptembed-gpu-ray-"))
    try:
        path = gpu.build_minilm_shaped(work / "minilm", smoke=args.smoke)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path))
        sizes = gpu.SMOKE_SIZES if args.smoke else {"answers_times": 40, "passages": 8000}
        texts = gpu.corpus(tokenizer, **sizes)
        batch_size = 8 if args.smoke else 4096  # smoke: several calls, so both steady states exist
        mine = in_process(path, texts, device, batch_size)
        local_vec = mine.pop("vectors")
        print(
            f"{len(texts)} texts; in-process ({device}, calls of {batch_size}): {mine['docs_s']:,.0f} docs/s,"
            f" {mine['steady_docs_s']:,.0f} steady",
            flush=True,
        )
        ray.init(
            num_cpus=os.cpu_count(), num_gpus=1 if cuda else 0, include_dashboard=False, log_to_driver=False,
            logging_level=logging.ERROR,
        )  # fmt: skip
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            got = on_ray(path, texts, num_gpus=1 if cuda else 0, batch_size=batch_size)
        finally:
            ray.shutdown()
        cosine = float((got.pop("vectors") * local_vec).sum(axis=1).min())
        local, local_steady = mine["docs_s"], mine["steady_docs_s"]
        print(
            f"Ray num_gpus={1 if cuda else 0}: {got['docs_s']:,.0f} docs/s end to end, {got['steady_docs_s']:,.0f}"
            f" steady; min cosine to in-process {cosine:.5f}",
            flush=True,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    import sentence_transformers

    name = torch.cuda.get_device_name() if cuda else "CPU"
    body = "\n".join(
        [
            SECTION,
            "",
            f"{'SMOKE RUN (tiny sizes, CPU, not a measurement): ' if args.smoke else ''}`python benchmarks/gpu_ray.py`"
            f" on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {name}, torch {torch.__version__}, sentence-transformers"
            f" {sentence_transformers.__version__}, Ray {ray.__version__}, {os.cpu_count()} CPU cores."
            f" all-MiniLM-L6-v2-shaped (random weights), {len(texts):,} documents (FAQ answers plus 200-500-token"
            " passages), the engine's defaults on both sides (bf16 on CUDA).",
            "",
            "| contestant | docs/s | vs in-process (same window) |",
            "|---|---|---|",
            f"| in-process `PromptEmbedder(device='{device}').embed_documents`, calls of {batch_size} (warm), all"
            f" calls | {local:,.0f} | 1.00x |",
            f"| in-process, steady state (from the end of the first call on) | {local_steady:,.0f} | 1.00x |",
            f"| `embed_dataset(num_gpus={1 if cuda else 0}, concurrency=1, batch_size={batch_size})`, end to end"
            f" (actor start and model load included, {got['seconds']:.1f} s) | {got['docs_s']:,.0f} |"
            f" {got['docs_s'] / local:.2f}x |",
            f"| `embed_dataset(...)`, steady state (from the first output batch on; can read up to one batch high)"
            f" | {got['steady_docs_s']:,.0f} | {got['steady_docs_s'] / local_steady:.2f}x |",
            "",
            f"Min cosine between the two paths' vectors: {cosine:.5f} (every row returned once, in any order, and put"
            " back in input order by its id).",
            "",
        ]
    )
    print(body)
    text = args.output.read_text(encoding="utf-8") if args.output.exists() else "# GPU benchmarks\n"
    from engine import replace_section

    args.output.write_text(replace_section(text, SECTION, body), encoding="utf-8")
    if os.environ.get("OUT"):
        summary = {
            "docs": len(texts), "in_process_docs_s": local, "in_process_steady_docs_s": local_steady,
            "cosine": cosine, **got,
        }  # fmt: skip
        (Path(os.environ["OUT"]) / "gpu_ray.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
