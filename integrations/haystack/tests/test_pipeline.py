"""End to end: indexing and query Pipelines with InMemoryDocumentStore + InMemoryEmbeddingRetriever."""

from __future__ import annotations

from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack_integrations.components.embedders.promptembed import PromptDocumentEmbedder, PromptTextEmbedder

from promptembed.testing import PLANET_DOCS, RED_PLANET_QUERY

QUERY = RED_PLANET_QUERY
DOCS = list(PLANET_DOCS)


def test_pipeline_returns_mars_first() -> None:
    store = InMemoryDocumentStore()
    indexing = Pipeline()
    indexing.add_component("embedder", PromptDocumentEmbedder(progress_bar=False))
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.connect("embedder.documents", "writer.documents")
    indexing.run({"embedder": {"documents": [Document(content=d) for d in DOCS]}})
    assert store.count_documents() == 4

    query = Pipeline()
    query.add_component("embedder", PromptTextEmbedder(progress_bar=False))
    query.add_component("retriever", InMemoryEmbeddingRetriever(document_store=store, top_k=4))
    query.connect("embedder.embedding", "retriever.query_embedding")
    hits = query.run({"embedder": {"text": QUERY}})["retriever"]["documents"]
    assert hits[0].content == DOCS[1]
    assert len(hits) == 4
