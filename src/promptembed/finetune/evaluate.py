"""Retrieval evaluation with sentence-transformers' InformationRetrievalEvaluator, prompts applied.

A corpus can be embedded once and handed to several evaluations (``corpus_embeddings=``), so a finetune embeds
each corpus once per model state instead of once per use. Each result keeps its per-query nDCG@10, so
:func:`gain_interval` can say how sure a before/after gain is (a paired bootstrap over the queries).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from promptembed.prompts import Role, resolve_role_prompt

__all__ = ["RetrievalMetrics", "embed_texts", "evaluate_retrieval", "gain_interval"]


@dataclass(frozen=True)
class RetrievalMetrics:
    """nDCG@10, MRR@10, recall@10 and recall@100 over ``n_queries`` queries and ``n_corpus`` passages.

    ``per_query_ndcg_at_10`` holds each query's nDCG@10 in the evaluation's query order (empty when the metrics
    were read back from a report); it is left out of :meth:`to_dict`.

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
    per_query_ndcg_at_10: tuple[float, ...] = field(default=(), repr=False, compare=False)

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict for JSON reports (without the per-query scores)."""
        out = asdict(self)
        del out["per_query_ndcg_at_10"]
        return out


def gain_interval(
    before: RetrievalMetrics,
    after: RetrievalMetrics,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float] | None:
    """A paired bootstrap interval of the nDCG@10 gain ``after - before`` over the same queries.

    The queries are resampled with replacement ``resamples`` times; the interval holds the central
    ``confidence`` share of the resampled mean gains. A small evaluation set (say 50 held-out pseudo-queries)
    gives a wide interval: a gain whose interval spans zero is within the estimate's noise.

    Returns:
        ``(low, high)``, or None when either side has no per-query scores, fewer than two queries, or a
        different number of queries than the other.

    Example:
        >>> b = RetrievalMetrics(0.5, 0.5, 1.0, 4, 9, per_query_ndcg_at_10=(0.5, 0.5, 0.5, 0.5))
        >>> a = RetrievalMetrics(0.75, 0.5, 1.0, 4, 9, per_query_ndcg_at_10=(1.0, 1.0, 0.5, 0.5))
        >>> low, high = gain_interval(b, a)
        >>> 0.0 <= low < 0.25 < high <= 0.5
        True
    """
    import numpy as np

    b, a = before.per_query_ndcg_at_10, after.per_query_ndcg_at_10
    if len(b) < 2 or len(a) != len(b):
        return None
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = np.concatenate(  # blocks of 100 resamples keep the index array small for large query sets
        [
            diff[rng.integers(0, len(diff), (min(100, resamples - i), len(diff)))].mean(1)
            for i in range(0, resamples, 100)
        ]
    )
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


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
    from sentence_transformers.util import cos_sim

    if not queries or not corpus:
        raise ValueError(f"Cannot evaluate {name!r}: {len(queries)} queries and {len(corpus)} passages")
    if corpus_embeddings is not None and len(corpus_embeddings) != len(corpus):
        raise ValueError(f"{len(corpus_embeddings)} corpus embeddings for {len(corpus)} passages in {name!r}")
    prompts = dict(model.prompts)

    class PerQuery(InformationRetrievalEvaluator):  # type: ignore[misc]
        """The stock evaluator, also keeping each query's nDCG@10 (its own tie order: score, then corpus id)."""

        per_query: list[float]

        def compute_metrics(self, queries_result_list: list[Any]) -> dict[str, Any]:
            self.per_query = []
            for qid, hits in zip(self.queries_ids, queries_result_list, strict=True):
                gold = self.relevant_docs[qid]
                top = sorted(hits, key=lambda x: (-x["score"], x["corpus_id"]))[:10]
                found = [1 if hit["corpus_id"] in gold else 0 for hit in top]
                ideal = self.compute_dcg_at_k([1] * len(gold), 10)
                self.per_query.append(float(self.compute_dcg_at_k(found, 10) / ideal))
            return dict(super().compute_metrics(queries_result_list))

    evaluator = PerQuery(
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
        # cosine whatever the model's similarity_fn_name ("dot" named the keys dot_*): promptembed serves unit
        # vectors by default, whose dot product is the cosine
        score_functions={"cosine": cos_sim},
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
        per_query_ndcg_at_10=tuple(evaluator.per_query),
    )
