"""Token-budget batch planning and padding: plain Python and numpy, no torch.

A call's texts are sorted by token length (longest first) and cut into batches whose padded size, rows times the
longest row, stays within a token budget: 500 short queries share one forward pass, a 512-token passage runs with
few others, and each batch pads only to its own longest text.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

__all__ = ["Batch", "pad_rows", "plan_batches", "windows"]


class Batch:
    """One forward pass: positions of its texts in the call's input, and the length of its longest text."""

    __slots__ = ("index", "key", "width")

    def __init__(self, index: np.ndarray, width: int, key: Hashable) -> None:
        self.index = index
        self.width = width
        self.key = key

    @property
    def padded_tokens(self) -> int:
        """Tokens the forward pass computes, padding included."""
        return len(self.index) * self.width

    def __repr__(self) -> str:
        return f"Batch(rows={len(self.index)}, width={self.width}, key={self.key!r})"


def plan_batches(
    lengths: Sequence[int], max_batch_tokens: int, *, keys: Sequence[Hashable] | None = None, offset: int = 0
) -> list[Batch]:
    """Cut texts into batches of at most ``max_batch_tokens`` padded tokens, longest texts first.

    Args:
        lengths: Token count of each text (special tokens included, after truncation).
        max_batch_tokens: Budget of rows x longest row per batch; a text longer than the budget runs alone.
        keys: Optional group of each text; a batch never mixes groups (e.g. prompts whose tokens the pooling
            excludes). ``None``: one group.
        offset: Added to every index (the position of ``lengths[0]`` in the whole call).

    Returns:
        Batches covering every text exactly once, each with its texts' positions in descending length order.
    """
    n = len(lengths)
    if n == 0:
        return []
    length_arr = np.asarray(lengths, dtype=np.int64)
    if keys is None:
        groups: dict[Hashable, np.ndarray] = {None: np.arange(n)}
    else:
        by_key: dict[Hashable, list[int]] = {}
        for i, key in enumerate(keys):
            by_key.setdefault(key, []).append(i)
        groups = {key: np.asarray(idx, dtype=np.int64) for key, idx in by_key.items()}
    batches: list[Batch] = []
    for key, idx in groups.items():
        # Stable sort, longest first: equal lengths keep input order (deterministic batches).
        order = idx[np.argsort(-length_arr[idx], kind="stable")]
        start = 0
        while start < len(order):
            width = max(1, int(length_arr[order[start]]))
            rows = max(1, max_batch_tokens // width)
            chunk = order[start : start + rows]
            batches.append(Batch(chunk + offset, width, key))
            start += rows
    batches.sort(key=lambda b: -b.width)
    return batches


def windows(n: int, *, first: int, largest: int) -> list[tuple[int, int]]:
    """Split ``n`` texts into consecutive windows that double in size from ``first`` up to ``largest``.

    The first window is small so the device starts early while the tokenizer thread works on the next, larger ones;
    each window is sorted on its own, so later windows are large enough to pad little.
    """
    spans: list[tuple[int, int]] = []
    start, size = 0, max(1, first)
    while start < n:
        end = min(n, start + size)
        if n - end < size // 2:  # a short tail joins the last window instead of running as a poorly sorted one
            end = n
        spans.append((start, end))
        start = end
        size = min(largest, size * 2)
    return spans


def pad_rows(rows: Sequence[Sequence[int]], width: int, pad_value: int, *, left: bool) -> np.ndarray:
    """``rows`` as an int64 matrix of ``width`` columns, padded with ``pad_value`` on the right (or left)."""
    out = np.full((len(rows), width), pad_value, dtype=np.int64)
    for i, row in enumerate(rows):
        if left:
            out[i, width - len(row) :] = row
        else:
            out[i, : len(row)] = row
    return out
