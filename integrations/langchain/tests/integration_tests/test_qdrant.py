"""End to end with Qdrant's local mode (no server), through ``langchain-qdrant``'s ``QdrantVectorStore``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_promptembed import PromptEmbeddings
from langchain_qdrant import QdrantVectorStore

pytestmark = pytest.mark.usefixtures("hold_minilm")

IDS = [0, 1, 2, 3]


def _check_answers(store: QdrantVectorStore, ref: Any) -> None:
    for question, answer in ref.questions.items():
        hits = store.similarity_search_with_score(question, k=4)
        assert hits[0][0].page_content == ref.documents[answer], question
        assert {doc.page_content for doc, _ in hits} == set(ref.documents)
        # Qdrant's cosine scores are those of the core's query vector against the core's document vectors.
        for doc, score in hits:
            expected = ref.core_queries[question] @ ref.core_documents[ref.documents.index(doc.page_content)]
            assert score == pytest.approx(float(expected), abs=1e-5)


def _stored(store: QdrantVectorStore, ref: Any) -> np.ndarray:
    points = store.client.retrieve(store.collection_name, ids=IDS, with_vectors=True, with_payload=True)
    # langchain-qdrant stores one named vector, "" (its vector_name default).
    vectors = [p.vector[store.vector_name] if isinstance(p.vector, dict) else p.vector for p in points]
    return ref.stored([p.payload["page_content"] for p in points], vectors)


@pytest.mark.parametrize("truncate_dim", [None, 128])
def test_qdrant_in_memory_answers_and_stores_the_cores_vectors(
    planet_reference: Callable[[int | None], Any], minilm_dir: Path, truncate_dim: int | None
) -> None:
    ref = planet_reference(truncate_dim)
    with PromptEmbeddings(model=str(minilm_dir), prompts=ref.prompts, truncate_dim=truncate_dim) as emb:
        store = QdrantVectorStore.from_texts(
            ref.documents, emb, ids=IDS, location=":memory:", collection_name="planets"
        )
        _check_answers(store, ref)
    stored = _stored(store, ref)
    assert stored.shape == (4, truncate_dim or 384)
    # Qdrant re-normalizes vectors stored for cosine distance: equal to the core's up to float32 rounding.
    np.testing.assert_allclose(stored, ref.core_documents, atol=1e-6)
    np.testing.assert_allclose(stored, ref.st_documents, atol=2e-6)
    store.client.close()


def test_qdrant_on_disk_keeps_the_data_when_reopened(
    planet_reference: Callable[[int | None], Any], minilm_dir: Path, tmp_path: Path
) -> None:
    ref = planet_reference(None)
    path = str(tmp_path / "qdrant")
    with PromptEmbeddings(model=str(minilm_dir), prompts=ref.prompts) as emb:
        store = QdrantVectorStore.from_texts(ref.documents, emb, ids=IDS, path=path, collection_name="planets")
        before = store.similarity_search_with_score(ref.query, k=4)
        store.client.close()  # local mode holds a lock on the folder until closed

        reopened = QdrantVectorStore.from_existing_collection(embedding=emb, path=path, collection_name="planets")
        after = reopened.similarity_search_with_score(ref.query, k=4)
        assert after[0][0].page_content == ref.documents[1]
        assert [d.page_content for d, _ in after] == [d.page_content for d, _ in before]
        assert [s for _, s in after] == pytest.approx([s for _, s in before], abs=1e-6)
        _check_answers(reopened, ref)
        np.testing.assert_allclose(_stored(reopened, ref), ref.core_documents, atol=1e-6)
        reopened.client.close()
