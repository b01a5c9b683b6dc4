"""run_async on both components: equal to run, computed off the event loop, and used by Haystack's AsyncPipeline."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import haystack
import numpy as np
from haystack import Document, Pipeline
from haystack.components.retrievers import InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack_integrations.components.embedders.promptembed import PromptDocumentEmbedder, PromptTextEmbedder

from promptembed.testing import PLANET_DOCS, RED_PLANET_QUERY

#: Haystack 2.x runs async pipelines with AsyncPipeline; in 3.x, Pipeline itself has run_async.
AsyncPipeline = getattr(haystack, "AsyncPipeline", Pipeline)
QUERY = RED_PLANET_QUERY
DOCS = list(PLANET_DOCS)


def test_run_async_equals_run_and_does_not_block_the_loop(tiny_gemma_dir: Path) -> None:
    many = [Document(content=f"document number {i} about the red planet Mars") for i in range(600)]
    docs = PromptDocumentEmbedder(model=str(tiny_gemma_dir), batch_size=8, progress_bar=False)
    text = PromptTextEmbedder(model=str(tiny_gemma_dir), progress_bar=False)

    async def scenario() -> tuple[list[Document], list[float], int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        tick_task = asyncio.create_task(ticker())
        embedded = (await docs.run_async(documents=many))["documents"]
        query = (await text.run_async(text=QUERY))["embedding"]
        done.set()
        await tick_task
        return embedded, query, ticks

    try:
        start = time.perf_counter()
        embedded, query, ticks = asyncio.run(scenario())
        elapsed = time.perf_counter() - start
        want = [d.embedding for d in docs.run(documents=many)["documents"]]
        np.testing.assert_allclose([d.embedding for d in embedded], want, rtol=0, atol=2e-6)
        np.testing.assert_allclose(query, text.run(text=QUERY)["embedding"], rtol=0, atol=2e-6)
    finally:
        docs.close()
        text.close()
    # The loop kept ticking while the model worked: at least a quarter of the ticks a free loop would make.
    assert ticks > max(5, int(elapsed * 1000 / 4 * 0.25)), (ticks, elapsed)


def _pipelines(model: str, cls: type[Any]) -> tuple[Any, Any, InMemoryDocumentStore]:
    store = InMemoryDocumentStore()
    indexing = cls()
    indexing.add_component("embedder", PromptDocumentEmbedder(model=model, progress_bar=False))
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.connect("embedder.documents", "writer.documents")
    query = cls()
    query.add_component("embedder", PromptTextEmbedder(model=model, progress_bar=False))
    query.add_component("retriever", InMemoryEmbeddingRetriever(document_store=store, top_k=4))
    query.connect("embedder.embedding", "retriever.query_embedding")
    return indexing, query, store


def test_async_pipeline_gives_the_sync_results(tiny_gemma_dir: Path) -> None:
    docs = [Document(content=d, id=str(i)) for i, d in enumerate(DOCS)]
    indexing, query, _ = _pipelines(str(tiny_gemma_dir), Pipeline)
    a_indexing, a_query, _ = _pipelines(str(tiny_gemma_dir), AsyncPipeline)
    indexing.run({"embedder": {"documents": docs}})
    want = query.run({"embedder": {"text": QUERY}})["retriever"]["documents"]

    calls: list[str] = []
    for pipeline in (a_indexing, a_query):
        component = pipeline.get_component("embedder")
        assert component.__haystack_supports_async__  # Haystack sees run_async and awaits it
        original = component.run_async

        async def counted(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            calls.append(type(_original.__self__).__name__)
            return await _original(*args, **kwargs)

        component.run_async = counted

    async def run_async() -> list[Document]:
        await a_indexing.run_async({"embedder": {"documents": docs}})
        result = await a_query.run_async({"embedder": {"text": QUERY}})
        return list(result["retriever"]["documents"])

    try:
        got = asyncio.run(run_async())
    finally:
        for pipeline in (indexing, query, a_indexing, a_query):
            pipeline.get_component("embedder").close()
    assert calls == ["PromptDocumentEmbedder", "PromptTextEmbedder"]
    assert [d.id for d in got] == [d.id for d in want]
    np.testing.assert_allclose([d.score for d in got], [d.score for d in want], rtol=0, atol=2e-6)
