"""End to end over HTTP with a real Chroma server, through ``chroma-haystack``'s document store and retriever."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from haystack import Document, Pipeline
from haystack.components.writers import DocumentWriter
from haystack_integrations.components.embedders.promptembed import PromptDocumentEmbedder, PromptTextEmbedder
from haystack_integrations.components.retrievers.chroma import ChromaEmbeddingRetriever
from haystack_integrations.document_stores.chroma import ChromaDocumentStore

pytestmark = pytest.mark.usefixtures("hold_minilm")


def _store(server: Any, collection: str) -> ChromaDocumentStore:
    return ChromaDocumentStore(host=server.host, port=server.port, collection_name=collection)


@contextmanager
def _query_pipeline(store: ChromaDocumentStore, model: str, ref: Any) -> Iterator[Pipeline]:
    # normalize_embeddings as the reference does (the stock component's default, kept by ours, is off)
    embedder = PromptTextEmbedder(
        model=model, prompts=ref.prompts, truncate_dim=ref.truncate_dim, normalize_embeddings=True
    )
    pipeline = Pipeline()
    pipeline.add_component("embedder", embedder)
    pipeline.add_component("retriever", ChromaEmbeddingRetriever(document_store=store, top_k=4))
    pipeline.connect("embedder.embedding", "retriever.query_embedding")
    try:
        yield pipeline
    finally:
        embedder.close()


def _search(pipeline: Pipeline, question: str) -> list[Document]:
    return list(pipeline.run({"embedder": {"text": question}})["retriever"]["documents"])


def _check_answers(pipeline: Pipeline, ref: Any) -> None:
    for question, answer in ref.questions.items():
        hits = _search(pipeline, question)
        assert hits[0].content == ref.documents[answer], question
        assert {h.content for h in hits} == set(ref.documents)
        # ChromaEmbeddingRetriever reports Chroma's distance; it is that of the core's query vector.
        for hit in hits:
            assert hit.score == pytest.approx(ref.squared_l2(question, hit.content), abs=1e-4)


def _index(store: ChromaDocumentStore, model: str, ref: Any) -> None:
    embedder = PromptDocumentEmbedder(
        model=model, prompts=ref.prompts, truncate_dim=ref.truncate_dim, progress_bar=False, normalize_embeddings=True
    )
    indexing = Pipeline()
    indexing.add_component("embedder", embedder)
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.connect("embedder.documents", "writer.documents")
    try:
        indexing.run({"embedder": {"documents": [Document(content=d) for d in ref.documents]}})
    finally:
        embedder.close()


@pytest.mark.parametrize("truncate_dim", [None, 128])
def test_chroma_server_answers_and_stores_the_cores_vectors(
    chroma_server: Any, planet_reference: Callable[[int | None], Any], minilm_dir: Path, truncate_dim: int | None
) -> None:
    ref = planet_reference(truncate_dim)
    collection = f"hs-{uuid.uuid4().hex[:8]}"
    store = _store(chroma_server, collection)
    _index(store, str(minilm_dir), ref)
    assert store.count_documents() == 4
    with _query_pipeline(store, str(minilm_dir), ref) as query:
        _check_answers(query, ref)

    raw = chroma_server.client().get_collection(collection).get(include=["embeddings", "documents"])
    ref.check_chroma_collection(raw)


def test_chroma_server_keeps_the_data_across_a_restart(
    chroma_server: Any, planet_reference: Callable[[int | None], Any], minilm_dir: Path
) -> None:
    ref = planet_reference(None)
    collection = f"hs-restart-{uuid.uuid4().hex[:8]}"
    _index(_store(chroma_server, collection), str(minilm_dir), ref)
    with _query_pipeline(_store(chroma_server, collection), str(minilm_dir), ref) as query:
        before = _search(query, ref.query)

    chroma_server.restart()

    reopened = _store(chroma_server, collection)
    assert reopened.count_documents() == 4
    with _query_pipeline(reopened, str(minilm_dir), ref) as query:
        after = _search(query, ref.query)
        assert [h.content for h in after] == [h.content for h in before]
        assert [h.score for h in after] == pytest.approx([h.score for h in before], abs=1e-6)
        _check_answers(query, ref)
