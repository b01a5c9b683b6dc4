"""8 threads and 64 concurrent async calls on one shared model give the serial results, with one load."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from langchain_promptembed import PromptEmbeddings
from llama_index.embeddings.promptembed import PromptEmbedding

from promptembed import PromptEmbedder, _registry

TEXTS = [f"question {i} about permits, roofs and heat pumps" + " detail" * (i % 7) for i in range(64)]


@pytest.mark.timeout(180)
def test_threads_match_serial_and_load_once(tiny_gemma_dir: Path) -> None:
    before = _registry.load_count
    with PromptEmbedder(model=tiny_gemma_dir, batch_size=4) as emb:
        serial_q = [emb.embed_queries([t]) for t in TEXTS]
        serial_d = emb.embed_documents(TEXTS)

        def work(i: int) -> tuple[np.ndarray, np.ndarray]:
            with PromptEmbedder(model=tiny_gemma_dir, batch_size=4) as other:  # shares the loaded model
                return other.embed_queries([TEXTS[i]]), emb.embed_documents(TEXTS)

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(work, range(0, len(TEXTS), 4)))
    assert _registry.load_count == before + 1
    for i, (q, d) in zip(range(0, len(TEXTS), 4), results, strict=True):
        np.testing.assert_allclose(q, serial_q[i], atol=2e-6)
        np.testing.assert_allclose(d, serial_d, atol=2e-6)


@pytest.mark.timeout(180)
def test_asyncio_gather_of_64_calls(tiny_gemma_dir: Path) -> None:
    lc = PromptEmbeddings(model=str(tiny_gemma_dir))
    li = PromptEmbedding(model=str(tiny_gemma_dir))
    try:
        serial = [lc.embed_query(t) for t in TEXTS]

        async def run() -> tuple[list[list[float]], list[list[float]]]:
            a = await asyncio.gather(*(lc.aembed_query(t) for t in TEXTS))
            b = await asyncio.gather(*(li.aget_query_embedding(t) for t in TEXTS))
            return list(a), list(b)

        a, b = asyncio.run(run())
        np.testing.assert_allclose(a, serial, atol=2e-6)
        np.testing.assert_allclose(b, serial, atol=2e-6)
        assert len([k for k in _registry.loaded_keys() if k.source == str(tiny_gemma_dir.resolve())]) == 1
    finally:
        lc.close()
        li.close()


@pytest.mark.timeout(300)
def test_long_texts_in_one_thread_do_not_break_another_threads_batch(tiny_bert_dir: Path) -> None:
    """Counting over-long texts tokenizes with the shared tokenizer: it must not reset another thread's padding."""
    long_texts = [" ".join(["permit"] * (40 + i)) for i in range(8)]  # over the tiny model's 32 tokens
    mixed = [" ".join(["roof"] * (1 + 3 * i)) for i in range(8)]  # different lengths: batches need padding
    with PromptEmbedder(model=tiny_bert_dir, batch_size=8) as emb:
        want_long, want_mixed = emb.embed_documents(long_texts), emb.embed_queries(mixed)

        def run(texts: list[str], fn: Callable[[list[str]], np.ndarray], want: np.ndarray) -> None:
            for _ in range(40):
                np.testing.assert_allclose(fn(texts), want, atol=2e-6, rtol=0)

        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [
                pool.submit(run, long_texts, emb.embed_documents, want_long),
                pool.submit(run, mixed, emb.embed_queries, want_mixed),
            ]
            for f in futures:
                f.result()
