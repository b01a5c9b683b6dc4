"""End to end over HTTP with a real Chroma server, through ``langchain-chroma``'s ``Chroma`` vector store."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_chroma import Chroma
from langchain_promptembed import PromptEmbeddings

pytestmark = pytest.mark.usefixtures("hold_minilm")

IDS = ["venus", "mars", "jupiter", "saturn"]


def _store(server: Any, emb: PromptEmbeddings, collection: str) -> Chroma:
    return Chroma(collection_name=collection, embedding_function=emb, host=server.host, port=server.port)


def _check_answers(store: Chroma, ref: Any) -> None:
    for question, answer in ref.questions.items():
        hits = store.similarity_search_with_score(question, k=4)
        assert hits[0][0].page_content == ref.documents[answer], question
        assert {doc.page_content for doc, _ in hits} == set(ref.documents)
        # The distances the server computed are those of the core's query vector: the query prompt was applied.
        for doc, distance in hits:
            assert distance == pytest.approx(ref.squared_l2(question, doc.page_content), abs=1e-4)


@pytest.mark.parametrize("truncate_dim", [None, 128])
def test_chroma_server_answers_and_stores_the_cores_vectors(
    chroma_server: Any, planet_reference: Callable[[int | None], Any], minilm_dir: Path, truncate_dim: int | None
) -> None:
    ref = planet_reference(truncate_dim)
    collection = f"lc-{uuid.uuid4().hex[:8]}"
    # normalize as the reference does (HuggingFaceEmbeddings' default, kept by ours, is off)
    with PromptEmbeddings(model=str(minilm_dir), prompts=ref.prompts, truncate_dim=truncate_dim, normalize=True) as emb:
        store = _store(chroma_server, emb, collection)
        store.add_texts(ref.documents, ids=IDS)
        _check_answers(store, ref)

    raw = chroma_server.client().get_collection(collection).get(ids=IDS, include=["embeddings", "documents"])
    ref.check_chroma_collection(raw)


def test_chroma_server_keeps_the_data_across_a_restart(
    chroma_server: Any, planet_reference: Callable[[int | None], Any], minilm_dir: Path
) -> None:
    ref = planet_reference(None)
    collection = f"lc-restart-{uuid.uuid4().hex[:8]}"
    with PromptEmbeddings(model=str(minilm_dir), prompts=ref.prompts, normalize=True) as emb:
        _store(chroma_server, emb, collection).add_texts(ref.documents, ids=IDS)
        before = _store(chroma_server, emb, collection).similarity_search_with_score(ref.query, k=4)

        chroma_server.restart()

        reopened = _store(chroma_server, emb, collection)
        assert chroma_server.client().get_collection(collection).count() == 4
        after = reopened.similarity_search_with_score(ref.query, k=4)
        assert [d.page_content for d, _ in after] == [d.page_content for d, _ in before]
        assert [s for _, s in after] == pytest.approx([s for _, s in before], abs=1e-6)
        _check_answers(reopened, ref)
