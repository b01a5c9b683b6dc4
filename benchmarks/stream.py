"""`make bench` part 2: peak memory while streaming 100k texts through PromptEmbedder.embed_stream.

The texts come from a generator (never a list), the vectors go into a preallocated float32 array: memory
should grow by the output (100k x 384 x 4 bytes = 147 MiB) plus one chunk's working set, not by the input.
Writes its result as the last section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import zaragoza

N = int(os.environ.get("BENCH_STREAM_TEXTS", "100000"))
OUT = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Streaming (`benchmarks/stream.py`)"


def main() -> None:
    from promptembed import PromptEmbedder

    answers = [r["answer"] for r in zaragoza.load_faq()]
    sentences = [" ".join(s.split()[:6]) for a in answers for s in a.split(".") if len(s.split()) >= 4]

    def texts() -> Iterator[str]:
        for i in range(N):
            yield f"{sentences[i % len(sentences)]} ({i})"

    with PromptEmbedder(device="cpu", batch_size=64, show_progress_bar=False) as emb:
        proc = psutil.Process()
        out = np.zeros((N, emb.dimension), dtype=np.float32)
        out[:] = 0.0  # touch the output pages before measuring
        start_rss = peak = proc.memory_info().rss
        t0 = time.perf_counter()
        row = 0
        after_first = 0
        for block in emb.embed_stream(texts(), chunk_size=1024, progress=True):
            out[row : row + len(block)] = block
            row += len(block)
            peak = max(peak, proc.memory_info().rss)
            after_first = after_first or proc.memory_info().rss
        seconds = time.perf_counter() - t0
    assert row == N and np.isfinite(out).all()
    line = (
        f"- Streaming: {N:,} texts (6-word snippets of FAQ answer sentences, {len(sentences)} distinct) through"
        f" `embed_stream` (chunk 1024) in {seconds:.0f} s ({N / seconds:.0f} texts/s). RSS beyond the preallocated"
        f" {out.nbytes / 2**20:.0f} MiB output array: {(after_first - start_rss) / 2**20:.0f} MiB after the first chunk"
        f" (torch's working set), peak {(peak - start_rss) / 2**20:.0f} MiB over all {N // 1024 + 1} chunks (polled"
        " after every chunk); the input is never held as a whole (the generator is consumed chunk by chunk)."
    )
    print(line)
    text = OUT.read_text(encoding="utf-8") if OUT.exists() else "# Benchmarks\n"
    before, _, rest = text.partition(SECTION)  # replace an earlier streaming result, keep every other section
    ends = [i for i in (rest.find("\n## "), rest.find("\n<!--")) if i >= 0]
    after = "\n" + rest[min(ends) + 1 :] if ends else ""
    OUT.write_text(f"{before.rstrip()}\n\n{SECTION}\n\n{line}\n{after}", encoding="utf-8")


if __name__ == "__main__":
    main()
