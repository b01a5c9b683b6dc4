"""End to end over HTTP with a real Chroma server, through ``llama-index-vector-stores-chroma``."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.embeddings.promptembed import PromptEmbedding
from llama_index.vector_stores.chroma import ChromaVectorStore

pytestmark = pytest.mark.usefixtures("hold_minilm")


def _vector_store(server: Any, collection: str) -> ChromaVectorStore:
    return ChromaVectorStore(host=server.host, port=server.port, collection_name=collection)


def _check_answers(index: VectorStoreIndex, ref: Any) -> None:
    retriever = index.as_retriever(similarity_top_k=4)
    for question, answer in ref.questions.items():
        hits = retriever.retrieve(question)
        assert hits[0].node.get_content() == ref.documents[answer], question
        assert {h.node.get_content() for h in hits} == set(ref.documents)
        # ChromaVectorStore reports exp(-distance); the distance is that of the core's query vector.
        for hit in hits:
            distance = ref.squared_l2(question, hit.node.get_content())
            assert hit.score == pytest.approx(math.exp(-distance), abs=1e-4)


@pytest.mark.parametrize("truncate_dim", [None, 128])
def test_chroma_server_answers_and_stores_the_cores_vectors(
    chroma_server: Any, planet_reference: Callable[[int | None], Any], minilm_dir: Path, truncate_dim: int | None
) -> None:
    ref = planet_reference(truncate_dim)
    collection = f"li-{uuid.uuid4().hex[:8]}"
    embed_model = PromptEmbedding(model=str(minilm_dir), prompts=ref.prompts, truncate_dim=truncate_dim)
    try:
        index = VectorStoreIndex.from_documents(
            [Document(text=d) for d in ref.documents],
            storage_context=StorageContext.from_defaults(vector_store=_vector_store(chroma_server, collection)),
            embed_model=embed_model,
        )
        _check_answers(index, ref)
    finally:
        embed_model.close()

    raw = chroma_server.client().get_collection(collection).get(include=["embeddings", "documents"])
    ref.check_chroma_collection(raw)


def test_chroma_server_keeps_the_data_across_a_restart(
    chroma_server: Any, planet_reference: Callable[[int | None], Any], minilm_dir: Path
) -> None:
    ref = planet_reference(None)
    collection = f"li-restart-{uuid.uuid4().hex[:8]}"
    embed_model = PromptEmbedding(model=str(minilm_dir), prompts=ref.prompts)
    try:
        index = VectorStoreIndex.from_documents(
            [Document(text=d) for d in ref.documents],
            storage_context=StorageContext.from_defaults(vector_store=_vector_store(chroma_server, collection)),
            embed_model=embed_model,
        )
        before = index.as_retriever(similarity_top_k=4).retrieve(ref.query)

        chroma_server.restart()

        reopened = VectorStoreIndex.from_vector_store(_vector_store(chroma_server, collection), embed_model=embed_model)
        after = reopened.as_retriever(similarity_top_k=4).retrieve(ref.query)
        assert [h.node.get_content() for h in after] == [h.node.get_content() for h in before]
        assert [h.score for h in after] == pytest.approx([h.score for h in before], abs=1e-6)
        _check_answers(reopened, ref)
    finally:
        embed_model.close()
