"""End to end: VectorStoreIndex over FaissVectorStore with the release post's planet example."""

from __future__ import annotations

import faiss
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.embeddings.promptembed import PromptEmbedding
from llama_index.vector_stores.faiss import FaissVectorStore

from promptembed.testing import PLANET_DOCS, RED_PLANET_QUERY

QUERY = RED_PLANET_QUERY
DOCS = list(PLANET_DOCS)


def test_vector_store_index_over_faiss_returns_mars_first() -> None:
    embed_model = PromptEmbedding()
    try:
        store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(embed_model.embedder.dimension))
        index = VectorStoreIndex.from_documents(
            [Document(text=d) for d in DOCS],
            storage_context=StorageContext.from_defaults(vector_store=store),
            embed_model=embed_model,
        )
        hits = index.as_retriever(similarity_top_k=4).retrieve(QUERY)
        assert hits[0].node.get_content() == DOCS[1]
        assert len(hits) == 4
    finally:
        embed_model.close()
