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

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from promptembed.errors import ConfigError

if TYPE_CHECKING:
    from promptembed.finetune._steps import BaseEncoder
    from promptembed.finetune.chunking import Chunk
    from promptembed.finetune.pairs import Pair

__all__ = ["add_negatives", "margin_rows", "mine_chunk_negatives"]

logger = logging.getLogger("promptembed")


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


def add_negatives(
    rows: list[dict[str, Any]],
    origins: list[dict[str, str]],
    pairs: Sequence[Pair],
    train_chunks: Sequence[Chunk],
    encoder: BaseEncoder,
    *,
    num_negatives: int,
    margin: float,
    teacher: Any = None,
    progress: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, str]], str]:
    """Mine ``num_negatives`` per generated pair: triplet rows, or margin-MSE rows scored by ``teacher``.

    Negatives come from the training chunks only: held-out text never enters training, not even as a negative.
    Pairs that find too few negatives below the false-negative ``margin`` are left out (with their origins).

    Returns:
        The new rows, their origins and their kind (``"triplets"`` or ``"margin_mse"``); the rows unchanged
        (kind ``"pairs"``) with a warning when under three training chunks leave nothing to mine.

    Raises:
        ConfigError: A teacher with under three training chunks, or fewer than two rows left.
    """
    if len(train_chunks) <= 2:
        if teacher is not None:
            raise ConfigError("A teacher needs at least 3 chunks to mine negatives from; give more documents")
        logger.warning(
            "hard negatives skipped: %d training chunks leave none to mine from (give more documents)",
            len(train_chunks),
        )
        return rows, origins, "pairs"
    train_index = {c.id: i for i, c in enumerate(train_chunks)}
    chunk_vectors = encoder.embed_documents([c.text for c in train_chunks])
    query_vectors = encoder.embed_queries([p.query for p in pairs])
    found = mine_chunk_negatives(
        query_vectors, chunk_vectors, [train_index[p.chunk_id] for p in pairs], num_negatives=num_negatives,
        range_min=0, range_max=50, relative_margin=margin,
    )  # fmt: skip
    negatives = [[train_chunks[i].text for i in got] for got in found]
    if teacher is not None:
        out, kept = margin_rows(rows, negatives, teacher, progress=progress)
        kind = "margin_mse"
    else:
        kept = [i for i, n in enumerate(negatives) if len(n) == num_negatives]
        out = [{**rows[i], **{f"negative_{j + 1}": t for j, t in enumerate(negatives[i])}} for i in kept]
        kind = "triplets"
    if len(out) < 2:
        raise ConfigError("Too few pairs had hard negatives; lower negative_margin or hard_negatives")
    return out, [origins[i] for i in kept], kind
