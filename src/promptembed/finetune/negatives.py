"""Hard negatives for generated pairs, protected against false negatives, and teacher margins for margin-MSE.

Generated pairs know which chunk they came from, so mining works on chunks, not on passage strings:
sentence-transformers' ``mine_hard_negatives`` identifies the positive by its text, and an inverse-cloze pair's
positive is its chunk minus the query sentence, so the pair's own chunk (the best possible answer) would be mined
as its hardest "negative". Here the own chunk is always excluded, the ``range_min`` closest chunks are skipped,
and a candidate is kept only if it scores below the positive by a relative margin (sentence-transformers'
``relative_margin`` rule: ``negative <= positive * (1 - margin)``), so passages that answer the query as well as
the positive does are not taught as wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["margin_rows", "mine_chunk_negatives"]


def mine_chunk_negatives(
    query_embeddings: np.ndarray,
    chunk_embeddings: np.ndarray,
    targets: Sequence[int],
    *,
    num_negatives: int,
    range_min: int = 0,
    range_max: int = 50,
    relative_margin: float = 0.05,
) -> list[list[int]]:
    """For each query, the indices of up to ``num_negatives`` hard negative chunks (most similar first).

    Args:
        query_embeddings: Unit-norm query embeddings, one row per query.
        chunk_embeddings: Unit-norm chunk embeddings.
        targets: Index of each query's own chunk (never a negative).
        num_negatives: Negatives wanted per query.
        range_min: Skip this many of the most similar other chunks (likely unlabeled positives).
        range_max: Consider only this many of the most similar other chunks.
        relative_margin: Keep a candidate only if its score is at most ``positive * (1 - relative_margin)``.

    Returns:
        One list per query; shorter than ``num_negatives`` (or empty) when too few candidates pass.

    Example:
        >>> import numpy as np
        >>> chunks = np.eye(3, dtype=np.float32)
        >>> q = np.array([[0.9, 0.3, 0.1]], dtype=np.float32)
        >>> mine_chunk_negatives(q, chunks, [0], num_negatives=1)
        [[1]]
    """
    if num_negatives < 1 or range_min < 0 or range_max <= range_min:
        raise ValueError(
            f"num_negatives={num_negatives}, range_min={range_min}, range_max={range_max}: need num_negatives >= 1 "
            "and 0 <= range_min < range_max"
        )
    out: list[list[int]] = []
    for start in range(0, len(query_embeddings), 1024):  # bounded memory: 1024 x chunks scores at a time
        scores = query_embeddings[start : start + 1024] @ chunk_embeddings.T
        for row, target in zip(scores, targets[start : start + 1024], strict=True):
            positive = float(row[target])
            row = row.copy()
            row[target] = -np.inf
            order = np.argsort(-row, kind="stable")[range_min:range_max]
            limit = positive * (1 - relative_margin) if positive > 0 else positive - relative_margin
            out.append([int(i) for i in order if np.isfinite(row[i]) and row[i] <= limit][:num_negatives])
    return out


def margin_rows(
    rows: Sequence[dict[str, str]], negatives: Sequence[Sequence[str]], teacher: Any, *, progress: bool = False
) -> tuple[list[dict[str, Any]], list[int]]:
    """Rows for ``MarginMSELoss``: anchor, positive, negative_1..n and ``label`` = teacher margins.

    Returns the rows and, for each, the index of the input row it came from.

    Rows with fewer negatives than the most common count are dropped (the loss needs a fixed number of columns).
    The teacher (a :class:`~promptembed.finetune.teacher.Teacher`) scores every (query, passage) pair in one call,
    so a bi-encoder teacher embeds each distinct text once.
    """
    counts = [len(n) for n in negatives]
    if not counts or max(counts) == 0:
        return [], []
    n = max(set(counts), key=lambda c: (counts.count(c), c)) if min(counts) < max(counts) else counts[0]
    n = max(n, 1)
    index = [i for i, neg in enumerate(negatives) if len(neg) >= n]
    kept = [(rows[i], negatives[i][:n]) for i in index]
    queries: list[str] = []
    passages: list[str] = []
    for row, negs in kept:
        for passage in (row["positive"], *negs):
            queries.append(row["anchor"])
            passages.append(passage)
    scores = teacher.score_pairs(queries, passages, progress=progress).reshape(len(kept), n + 1)
    out: list[dict[str, Any]] = []
    for (row, negs), s in zip(kept, scores, strict=True):
        item: dict[str, Any] = {"anchor": row["anchor"], "positive": row["positive"]}
        item.update({f"negative_{j + 1}": neg for j, neg in enumerate(negs)})
        item["label"] = [float(s[0] - s[j + 1]) for j in range(n)]
        out.append(item)
    return out, index
