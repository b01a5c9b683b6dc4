"""The encode path: prompts in, raw float32 vectors out, over a shared loaded model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from promptembed._loading import max_seq_length

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from promptembed._registry import LoadedModel

__all__ = ["count_over_limit", "encode"]


def count_over_limit(model: SentenceTransformer, texts: Sequence[str]) -> int:
    """How many texts the tokenizer will truncate (special tokens included)."""
    limit = max_seq_length(model)
    tokenizer = getattr(model, "tokenizer", None)
    if limit is None or tokenizer is None or not texts:
        return 0
    # A token covers at least one character for the tokenizers in use, so short texts cannot overflow.
    long_texts = [t for t in texts if len(t) + 8 > limit]
    if not long_texts:
        return 0
    ids = tokenizer(long_texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    return sum(1 for row in ids if len(row) > limit)


def encode(
    entry: LoadedModel,
    texts: Sequence[str],
    *,
    role: Literal["query", "document"] | None,
    prompt: str,
    batch_size: int,
    show_progress_bar: bool,
    pool: dict[str, Any] | None = None,
    forward_kwargs: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Encode ``texts`` with ``prompt`` prepended; returns raw (un-normalized) float32 vectors.

    ``forward_kwargs`` go to the model's forward pass, as ``SentenceTransformer.encode(**kwargs)`` passes them.
    """
    model = entry.model
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
    with entry.lock:
        if role == "query":
            out = model.encode_query(list(texts), **kwargs)
        elif role == "document":
            out = model.encode_document(list(texts), **kwargs)
        else:
            out = model.encode(list(texts), **kwargs)
    return np.asarray(out, dtype=np.float32)
