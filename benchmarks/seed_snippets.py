"""`make seed-snippets`: the EmbeddingGemma release post's LangChain, LlamaIndex and Haystack snippets, stock vs ours.

Each snippet runs as the post prints it (seeds/001), once with the stock class and once with only the class
name changed to ours, on the real google/embeddinggemma-300m assembled by ../shared/tools/get-embeddinggemma.sh
(path in $EMBEDDINGGEMMA or ~/.cache/promptembed-models/embeddinggemma-300m), on CPU in float32. Two more rows per
host show ours with the prompt options left out (the model's own prompts apply) and the stock class without them
(no prompt). The scores are printed next to
the post's. Deviations from the post's code, all forced by today's library versions, not by our classes:
``langchain.docstore.document.Document`` is ``langchain_core.documents.Document`` (LangChain 1.x), a LlamaIndex
``TextNode`` id is a string, and the Haystack classes come from sentence-transformers-haystack (haystack-ai 3.x
no longer ships them). Writes benchmarks/SEED_SNIPPETS.md.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MODEL = os.environ.get("EMBEDDINGGEMMA", str(Path.home() / ".cache/promptembed-models/embeddinggemma-300m"))
OUT = Path(__file__).resolve().parent / "SEED_SNIPPETS.md"
DATA = [
    "Venus is often called Earth's twin because of its similar size and proximity.",
    "Mars, known for its reddish appearance, is often referred to as the Red Planet.",
    "Jupiter, the largest planet in our solar system, has a prominent red spot.",
    "Saturn, famous for its rings, is sometimes mistaken for the Red Planet.",
]
QUERY = "Which planet is known as the Red Planet?"
#: What the post prints for all three snippets.
POST = [(DATA[1], 0.6359), (DATA[2], 0.4930), (DATA[3], 0.4889)]

Hits = list[tuple[str, float]]


def langchain(cls: Any, prompts: bool = True) -> Hits:
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document

    options = {"query_encode_kwargs": {"prompt_name": "query"}, "encode_kwargs": {"prompt_name": "document"}}
    embedder = cls(model_name=MODEL, **(options if prompts else {}))
    documents = [Document(page_content=text, metadata={"id": i}) for i, text in enumerate(DATA)]
    vector_store = FAISS.from_documents(documents, embedder, distance_strategy="MAX_INNER_PRODUCT")
    results = vector_store.similarity_search_with_score(QUERY, k=3)
    return [(doc.page_content, float(score)) for doc, score in results]


def llama_index(cls: Any, prompts: bool = True) -> Hits:
    import faiss
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores import VectorStoreQuery
    from llama_index.vector_stores.faiss import FaissVectorStore

    options = {"query_instruction": "task: search result | query: ", "text_instruction": "title: none | text: "}
    embeddings = cls(model_name=MODEL, **(options if prompts else {}))
    store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(768))
    store.add(
        [TextNode(id_=str(i), text=text, embedding=embeddings.get_text_embedding(text)) for i, text in enumerate(DATA)]
    )
    query_embedding = embeddings.get_query_embedding(QUERY)
    results = store.query(VectorStoreQuery(query_embedding=query_embedding, similarity_top_k=3))
    return [(DATA[int(idx)], float(score)) for idx, score in zip(results.ids, results.similarities, strict=True)]


def haystack(classes: tuple[Any, Any], prompts: bool = True) -> Hits:
    from haystack import Document, Pipeline
    from haystack.components.retrievers import InMemoryEmbeddingRetriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    doc_cls, text_cls = classes
    document_store = InMemoryDocumentStore()
    document_embedder = doc_cls(model=MODEL, **({"encode_kwargs": {"prompt_name": "document"}} if prompts else {}))
    query_embedder = text_cls(model=MODEL, **({"encode_kwargs": {"prompt_name": "query"}} if prompts else {}))
    document_embedder.warm_up()
    query_embedder.warm_up()
    documents = [Document(content=text, id=str(i)) for i, text in enumerate(DATA)]
    document_store.write_documents(document_embedder.run(documents=documents)["documents"])
    query_pipeline = Pipeline()
    query_pipeline.add_component("text_embedder", query_embedder)
    query_pipeline.add_component("retriever", InMemoryEmbeddingRetriever(document_store=document_store, top_k=3))
    query_pipeline.connect("text_embedder.embedding", "retriever.query_embedding")
    results = query_pipeline.run({"text_embedder": {"text": QUERY}})
    return [(d.content, float(d.score)) for d in results["retriever"]["documents"]]


def run(label: str, fn: Callable[[], Hits], rows: list[str]) -> Hits:
    hits = fn()
    cells = " | ".join(f"{text.split(',')[0].split(' ')[0]} {score:.4f}" for text, score in hits)
    rows.append(f"| {label} | {cells} |")
    print(rows[-1], flush=True)
    gc.collect()
    return hits


def main() -> int:
    if not (Path(MODEL) / "model.safetensors").is_file():
        print(f"EmbeddingGemma not found at {MODEL}; run ../shared/tools/get-embeddinggemma.sh", file=sys.stderr)
        return 1
    import sentence_transformers
    import torch
    from haystack_integrations.components.embedders.promptembed import PromptDocumentEmbedder, PromptTextEmbedder
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersDocumentEmbedder,
        SentenceTransformersTextEmbedder,
    )
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_promptembed import PromptEmbeddings
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.embeddings.promptembed import PromptEmbedding

    post = " | ".join(f"{text.split(',')[0].split(' ')[0]} {score:.4f}" for text, score in POST)
    rows = [
        "# The release post's snippets on the real EmbeddingGemma: stock classes vs ours",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `make seed-snippets` (benchmarks/seed_snippets.py), CPU,",
        f"float32, torch {torch.__version__}, sentence-transformers {sentence_transformers.__version__}.",
        "Top 3 for the query, as each snippet prints them (score: cosine / inner product of normalized vectors).",
        "",
        "| run | 1st | 2nd | 3rd |",
        "|---|---|---|---|",
        f"| the post (seeds/001) | {post} |",
    ]
    print("\n".join(rows), flush=True)
    results: dict[str, Hits] = {}
    stock_bare: list[Hits] = []  # not compared with the post: the stock classes apply no prompt then
    hosts: list[tuple[str, Callable[..., Hits], Any, Any]] = [
        ("LangChain", langchain, HuggingFaceEmbeddings, PromptEmbeddings),
        ("LlamaIndex", llama_index, HuggingFaceEmbedding, PromptEmbedding),
        (
            "Haystack",
            haystack,
            (SentenceTransformersDocumentEmbedder, SentenceTransformersTextEmbedder),
            (PromptDocumentEmbedder, PromptTextEmbedder),
        ),
    ]
    for host, fn, stock, ours in hosts:
        results[f"{host} stock"] = run(f"{host} stock class", lambda fn=fn, c=stock: fn(c), rows)
        results[f"{host} ours"] = run(f"{host} ours (class name changed)", lambda fn=fn, c=ours: fn(c), rows)
        results[f"{host} ours bare"] = run(
            f"{host} ours, prompt options left out", lambda fn=fn, c=ours: fn(c, prompts=False), rows
        )
        bare = run(f"{host} stock class, prompt options left out", lambda fn=fn, c=stock: fn(c, prompts=False), rows)
        stock_bare.append(bare)
    worst = max(
        abs(a[1] - b[1])
        for host, *_ in hosts
        for a, b in zip(results[f"{host} stock"], results[f"{host} ours"], strict=True)
    )
    same_order = all([t for t, _ in results[f"{h} stock"]] == [t for t, _ in results[f"{h} ours"]] for h, *_ in hosts)
    to_post = max(abs(a[1] - b[1]) for key in results for a, b in zip(results[key], POST, strict=True))
    rows += [
        "",
        f"- Stock vs ours with the same snippet: same order in every host: {same_order}; largest score difference "
        f"{worst:.2e}.",
        f"- Largest difference of any row but the stock classes without prompt options to the post's printed scores: "
        f"{to_post:.4f} (the post used transformers' EmbeddingGemma preview build and does not state its hardware or "
        "dtype; here CPU float32, transformers release).",
        "- Without prompt options the stock classes apply no prompt, so their scores differ from the post's; ours "
        "apply the model's prompts and give the post's scores.",
        "",
    ]
    OUT.write_text("\n".join(rows), encoding="utf-8")
    print("\n".join(rows[-5:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
