"""Retrieval evaluation with sentence-transformers' InformationRetrievalEvaluator, prompts applied."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from promptembed.prompts import resolve_role_prompt

__all__ = ["RetrievalMetrics", "evaluate_retrieval"]


@dataclass(frozen=True)
class RetrievalMetrics:
    """nDCG@10, MRR@10 and recall@10 over ``n_queries`` queries."""

    ndcg_at_10: float
    mrr_at_10: float
    recall_at_10: float
    n_queries: int
    n_corpus: int

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict for JSON reports."""
        return asdict(self)


def evaluate_retrieval(
    model: Any,
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    relevant: Mapping[str, set[str]],
    *,
    name: str = "eval",
    batch_size: int = 32,
    progress: bool = False,
) -> RetrievalMetrics:
    """Evaluate a ``SentenceTransformer`` on a retrieval set with its own query and document prompts.

    Args:
        model: A ``SentenceTransformer``.
        queries: Query id -> query text.
        corpus: Passage id -> passage text (all distractors included).
        relevant: Query id -> ids of its relevant passages.
        name: Evaluator name (used in metric keys).
        batch_size: Encoding batch size.
        progress: Show progress bars.
    """
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    if not queries or not corpus:
        raise ValueError(f"Cannot evaluate {name!r}: {len(queries)} queries and {len(corpus)} passages")
    prompts = dict(model.prompts)
    evaluator = InformationRetrievalEvaluator(
        queries=dict(queries),
        corpus=dict(corpus),
        relevant_docs={k: set(v) for k, v in relevant.items()},
        mrr_at_k=[10],
        ndcg_at_k=[10],
        accuracy_at_k=[10],
        precision_recall_at_k=[10],
        map_at_k=[10],
        show_progress_bar=progress,
        batch_size=batch_size,
        name=name,
        write_csv=False,
        query_prompt=resolve_role_prompt(prompts, "query") or None,
        corpus_prompt=resolve_role_prompt(prompts, "document") or None,
        main_score_function="cosine",
    )
    scores = evaluator(model)
    prefix = f"{name}_cosine_"
    return RetrievalMetrics(
        ndcg_at_10=float(scores[prefix + "ndcg@10"]),
        mrr_at_10=float(scores[prefix + "mrr@10"]),
        recall_at_10=float(scores[prefix + "recall@10"]),
        n_queries=len(queries),
        n_corpus=len(corpus),
    )
