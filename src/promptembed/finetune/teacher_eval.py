"""The teacher's own retrieval score, reported beside the base and the student.

A bi-encoder teacher is evaluated exactly as the student is (its own prompts, the same queries and corpus). A
CrossEncoder cannot search a corpus by itself, so it reranks BM25's top ``rerank_top_k`` passages per query (its
recall is capped by BM25's); the report says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from promptembed.finetune.evaluate import RetrievalMetrics, evaluate_retrieval

__all__ = ["evaluate_teacher", "ranking_metrics"]


def ranking_metrics(
    ranked: Mapping[str, list[str]], relevant: Mapping[str, set[str]], n_corpus: int
) -> RetrievalMetrics:
    """nDCG@10, MRR@10, recall@10/@100 of ranked passage ids per query (binary relevance).

    Example:
        >>> ranking_metrics({"q": ["b", "a"]}, {"q": {"a"}}, n_corpus=2).mrr_at_10
        0.5
    """
    ndcg = mrr = r10 = r100 = 0.0
    for qid, gold in relevant.items():
        ids = ranked.get(qid, [])
        hits = [1.0 if d in gold else 0.0 for d in ids]
        dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits[:10]))
        ideal = sum(1 / math.log2(i + 2) for i in range(min(len(gold), 10)))
        ndcg += dcg / ideal if ideal else 0.0
        mrr += next((1 / (i + 1) for i, h in enumerate(hits[:10]) if h), 0.0)
        r10 += sum(hits[:10]) / max(len(gold), 1)
        r100 += sum(hits[:100]) / max(len(gold), 1)
    n = max(len(relevant), 1)
    return RetrievalMetrics(
        ndcg_at_10=ndcg / n, mrr_at_10=mrr / n, recall_at_10=r10 / n, n_queries=len(relevant), n_corpus=n_corpus,
        recall_at_100=r100 / n,
    )  # fmt: skip


def evaluate_teacher(
    teacher: Any,
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    relevant: Mapping[str, set[str]],
    *,
    rerank_top_k: int = 20,
    progress: bool = False,
) -> RetrievalMetrics:
    """Retrieval metrics of a :class:`~promptembed.finetune.teacher.Teacher` on one evaluation set."""
    if teacher.kind == "bi-encoder":
        return evaluate_retrieval(teacher.model, queries, corpus, relevant, name="teacher", progress=progress)
    import bm25s

    ids = list(corpus)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([corpus[i] for i in ids], stopwords="en", show_progress=False), show_progress=False)
    qids = list(queries)
    k = min(rerank_top_k, len(ids))
    tokens = bm25s.tokenize([queries[q] for q in qids], stopwords="en", show_progress=False, return_ids=False)
    docs, _ = retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
    pairs = [(queries[q], corpus[ids[int(d)]]) for q, row in zip(qids, docs, strict=True) for d in row]
    scores = teacher.model.predict(pairs, show_progress_bar=progress)
    ranked: dict[str, list[str]] = {}
    for n, (q, row) in enumerate(zip(qids, docs, strict=True)):
        own = scores[n * k : (n + 1) * k]
        order = sorted(range(k), key=lambda j: -float(own[j]))
        ranked[q] = [ids[int(row[j])] for j in order]
    return ranking_metrics(ranked, {q: set(relevant.get(q, set())) for q in qids}, len(ids))
