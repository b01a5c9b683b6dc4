"""End to end with a real LangChain vector store: FAISS over the release post's planet example."""

from __future__ import annotations

from langchain_community.vectorstores import FAISS
from langchain_promptembed import PromptEmbeddings

from promptembed.testing import PLANET_DOCS, RED_PLANET_QUERY

QUERY = RED_PLANET_QUERY
DOCS = list(PLANET_DOCS)


def test_faiss_returns_mars_first() -> None:
    with PromptEmbeddings() as emb:
        store = FAISS.from_texts(DOCS, emb)
        hits = store.similarity_search(QUERY, k=4)
    assert hits[0].page_content == DOCS[1]
    assert {h.page_content for h in hits} == set(DOCS)
