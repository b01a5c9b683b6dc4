"""End to end with a real LangChain vector store: FAISS over the release post's planet example."""

from __future__ import annotations

from langchain_community.vectorstores import FAISS
from langchain_promptembed import PromptEmbeddings

QUERY = "Which planet is known as the Red Planet?"
DOCS = [
    "Venus is often called Earth's twin because of its similar size and proximity.",
    "Mars, known for its reddish appearance, is often referred to as the Red Planet.",
    "Jupiter, the largest planet in our solar system, has a prominent red spot.",
    "Saturn, famous for its rings, is sometimes mistaken for the Red Planet.",
]


def test_faiss_returns_mars_first() -> None:
    with PromptEmbeddings() as emb:
        store = FAISS.from_texts(DOCS, emb)
        hits = store.similarity_search(QUERY, k=4)
    assert hits[0].page_content == DOCS[1]
    assert {h.page_content for h in hits} == set(DOCS)
