"""One embedding call of a :class:`~promptembed.PromptEmbedder`: the engine, and the checks on its result."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from promptembed import _registry, engine
from promptembed.errors import PromptEmbedError
from promptembed.prompts import Role

__all__ = ["CallSettings", "compute", "quiet_progress", "stop_pool"]

logger = logging.getLogger("promptembed")
_QUIET = threading.local()  # set by quiet_progress() in this thread: no per-call bar


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """No per-call progress bar in this thread while inside (``embed_stream`` shows one bar for the stream)."""
    before = getattr(_QUIET, "on", False)
    _QUIET.on = True
    try:
        yield
    finally:
        _QUIET.on = before


@dataclass(frozen=True)
class CallSettings:
    """The embedder's options that every call passes to the engine."""

    truncate_dim: int | None
    normalize: bool
    batch_size: int
    max_batch_tokens: int | None
    engine: str
    show_progress_bar: bool | None
    forward_kwargs: Mapping[str, Any]
    max_seq_length: int | None


def compute(
    entry: _registry.LoadedModel,
    texts: list[str],
    *,
    role: Role | None,
    prompts: list[str],
    settings: CallSettings,
    pool: dict[str, Any] | None,
) -> np.ndarray:
    """Encode ``texts`` with their ``prompts``; warn about truncated texts; refuse NaN or inf vectors."""
    if getattr(_QUIET, "on", False):
        progress = False
    else:
        progress = settings.show_progress_bar if settings.show_progress_bar is not None else len(texts) >= 1000
    result = engine.encode(
        entry,
        texts,
        prompts,
        role=role,
        batch_size=settings.batch_size,
        max_batch_tokens=settings.max_batch_tokens,
        engine=settings.engine,
        truncate_dim=settings.truncate_dim,
        normalize=settings.normalize,
        show_progress_bar=progress,
        pool=pool,
        forward_kwargs=settings.forward_kwargs,
    )
    if result.truncated:
        logger.warning(
            "%d of %d texts are longer than the model's max_seq_length (%s tokens, prompt included) and were "
            "truncated by the tokenizer; split long documents into chunks to embed all of their text.",
            result.truncated,
            len(texts),
            settings.max_seq_length,
        )
    vectors = result.vectors
    if not np.isfinite(vectors).all():
        bad = sorted({int(i) for i in np.argwhere(~np.isfinite(vectors))[:, 0]})
        if entry.key.dtype == "float32":  # no overflow to blame: the model cannot embed these inputs
            raise PromptEmbedError(
                f"The model returned NaN or inf for texts at positions {bad[:10]} in float32; it cannot embed these "
                "inputs (for example a text that leaves no token for its pooling, such as an empty text with a "
                "tokenizer that adds no special tokens): check those texts."
            )
        raise PromptEmbedError(
            f"The model returned NaN or inf for texts at positions {bad[:10]} (dtype={entry.key.dtype}); "
            "this usually means the dtype overflows for this model: use dtype='float32'."
        )
    return vectors


def stop_pool(pool: dict[str, Any]) -> None:
    """Stop a sentence-transformers multi-process pool."""
    from sentence_transformers import SentenceTransformer

    SentenceTransformer.stop_multi_process_pool(pool)
