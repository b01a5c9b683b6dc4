"""Today's path: sentence-transformers' own ``encode`` loop (fixed text-count batches), one call per prompt.

Used for device pools (sentence-transformers' multi-process pool), for models the token-budget engine does not
handle (see :func:`promptembed.engine._features.mode_for`), and with ``engine="sentence-transformers"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from promptembed._loading import max_seq_length

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["count_over_limit", "encode_groups"]


def count_over_limit(model: SentenceTransformer, texts: Sequence[str]) -> int:
    """How many texts the tokenizer will truncate (special tokens included)."""
    limit = max_seq_length(model)
    tokenizer = getattr(model, "tokenizer", None)
    if limit is None or tokenizer is None or not texts:
        return 0
    # A token covers at least one UTF-8 byte (byte-level BPE and byte fallback split one character into several),
    # so texts of fewer bytes than the limit, less room for the special tokens and prompt pieces, cannot overflow.
    long_texts = [t for t in texts if len(t.encode("utf-8")) + 8 > limit]
    if not long_texts:
        return 0
    ids = tokenizer(long_texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    return sum(1 for row in ids if len(row) > limit)


def encode_groups(
    model: SentenceTransformer,
    texts: list[str],
    prompts: list[str],
    *,
    role: Literal["query", "document"] | None,
    batch_size: int,
    show_progress_bar: bool,
    pool: dict[str, Any] | None,
    forward_kwargs: Mapping[str, Any] | None = None,
) -> tuple[np.ndarray, int]:
    """Raw (un-normalized) float32 vectors from ``encode_query``/``encode_document``/``encode``, one call per prompt.

    Returns the vectors and how many texts were truncated.
    """
    over = count_over_limit(model, [p + t for p, t in zip(prompts, texts, strict=True)])
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(p, []).append(i)
    out: np.ndarray | None = None
    for prompt, idx in groups.items():
        kwargs: dict[str, Any] = {
            "prompt": prompt,
            "batch_size": batch_size,
            "show_progress_bar": show_progress_bar,
            "convert_to_numpy": True,
            "normalize_embeddings": False,
        }
        if pool is not None:
            kwargs["pool"] = pool
        if forward_kwargs:
            kwargs.update(forward_kwargs)
        batch = [texts[i] for i in idx]
        if "task" in kwargs:  # the user's task picks the Router route, as encode(task=...) does; the prompt is ours
            vectors = model.encode(batch, **kwargs)
        elif role == "query":
            vectors = model.encode_query(batch, **kwargs)
        elif role == "document":
            vectors = model.encode_document(batch, **kwargs)
        else:
            vectors = model.encode(batch, **kwargs)
        vectors = np.asarray(vectors, dtype=np.float32)
        if out is None:
            out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
        out[idx] = vectors
    if out is None:  # pragma: no cover - callers never pass an empty list
        raise ValueError("no texts to encode")
    return out, over
