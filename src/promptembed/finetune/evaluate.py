"""Retrieval evaluation with sentence-transformers' InformationRetrievalEvaluator, prompts applied.

A corpus can be embedded once and handed to several evaluations (``corpus_embeddings=``), so a finetune embeds
each corpus once per model state instead of once per use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from promptembed.prompts import Role, resolve_role_prompt

__all__ = ["RetrievalMetrics", "embed_texts", "evaluate_retrieval"]


@dataclass(frozen=True)
class RetrievalMetrics:
    """nDCG@10, MRR@10, recall@10 and recall@100 over ``n_queries`` queries and ``n_corpus`` passages.

    Example:
        >>> RetrievalMetrics(ndcg_at_10=0.5, mrr_at_10=0.4, recall_at_10=0.8, n_queries=3, n_corpus=9).recall_at_100
        0.0
    """

    ndcg_at_10: float
    mrr_at_10: float
    recall_at_10: float
    n_queries: int
    n_corpus: int
    recall_at_100: float = 0.0

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict for JSON reports."""
        return asdict(self)


def embed_texts(model: Any, texts: Sequence[str], role: Role, *, batch_size: int = 32, progress: bool = False) -> Any:
    """Embed ``texts`` with the model's own ``role`` prompt (a torch tensor, as the evaluator wants it)."""
    prompt = resolve_role_prompt(dict(model.prompts), role) or None
    return model.encode(
        list(texts), prompt=prompt, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=progress
    )


def evaluate_retrieval(
    model: Any,
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    relevant: Mapping[str, set[str]],
    *,
    name: str = "eval",
    batch_size: int = 32,
    progress: bool = False,
    corpus_embeddings: Any = None,
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
        corpus_embeddings: Embeddings of ``corpus`` in its iteration order, made by this model with its document
            prompt (:func:`embed_texts`); embedded here when None.
    """
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    if not queries or not corpus:
        raise ValueError(f"Cannot evaluate {name!r}: {len(queries)} queries and {len(corpus)} passages")
    if corpus_embeddings is not None and len(corpus_embeddings) != len(corpus):
        raise ValueError(f"{len(corpus_embeddings)} corpus embeddings for {len(corpus)} passages in {name!r}")
    prompts = dict(model.prompts)
    evaluator = InformationRetrievalEvaluator(
        queries=dict(queries),
        corpus=dict(corpus),
        relevant_docs={k: set(v) for k, v in relevant.items()},
        mrr_at_k=[10],
        ndcg_at_k=[10],
        accuracy_at_k=[10],
        precision_recall_at_k=[10, 100],
        map_at_k=[10],
        show_progress_bar=progress,
        batch_size=batch_size,
        name=name,
        write_csv=False,
        query_prompt=resolve_role_prompt(prompts, "query") or None,
        corpus_prompt=resolve_role_prompt(prompts, "document") or None,
        main_score_function="cosine",
    )
    if corpus_embeddings is None:
        corpus_embeddings = embed_texts(model, list(corpus.values()), "document", batch_size=batch_size)
    else:  # the evaluator scores them against query embeddings on the model's device (a GPU: not the host)
        import torch

        corpus_embeddings = torch.as_tensor(corpus_embeddings).to(model.device)
    scores = evaluator(model, corpus_embeddings=corpus_embeddings)
    prefix = f"{name}_cosine_"
    return RetrievalMetrics(
        ndcg_at_10=float(scores[prefix + "ndcg@10"]),
        mrr_at_10=float(scores[prefix + "mrr@10"]),
        recall_at_10=float(scores[prefix + "recall@10"]),
        n_queries=len(queries),
        n_corpus=len(corpus),
        recall_at_100=float(scores[prefix + "recall@100"]),
    )
