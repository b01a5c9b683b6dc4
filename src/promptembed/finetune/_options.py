"""The checks :func:`~promptembed.finetune.finetune` runs on its options before any document is read or model loaded."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from promptembed import _loading
from promptembed._inputs import check_int
from promptembed.errors import ConfigError
from promptembed.finetune.pairs import check_strategies

__all__ = ["LOSSES", "LR_SCHEDULERS", "TRAIN_DTYPES", "check_options"]

#: The trainer's learning-rate schedules that need nothing more than the steps (transformers' others need an
#: evaluation strategy or extra arguments this helper does not set).
LR_SCHEDULERS = (
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt",
)  # fmt: skip

#: The ``loss=`` values :func:`finetune` takes.
LOSSES = ("auto", "mnrl", "cached_mnrl", "gist", "cosent")
#: The ``train_dtype=`` values :func:`finetune` takes.
TRAIN_DTYPES = ("auto", "bfloat16", "float32")


def check_options(
    *,
    interpolate: float,
    epochs: Any,
    train_dtype: str,
    loss: str,
    hard_negatives: int,
    pair_strategies: Sequence[str],
    llm: Any,
    llm_concurrency: int | None,
    max_train_pairs: int | None,
    batch_size: int,
    seed: int,
    max_steps: int | None,
    learning_rate: float,
    lr_scheduler: str,
    teacher: Any,
) -> float:
    """Raise :class:`ConfigError` for the first bad option; return ``learning_rate`` as a float.

    The trainer's own options are checked here too, so a typo fails before documents are read, pairs are made
    (LLM calls) and models are loaded; a teacher given as a path must exist and hold safe weights.
    """
    if not 0.0 <= interpolate <= 1.0:
        raise ConfigError(f"interpolate={interpolate} must be in [0, 1] (1 = the finetuned weights, 0 = the base)")
    if epochs != "auto" and (isinstance(epochs, str) or not 0 < epochs < float("inf")):
        raise ConfigError(f"epochs={epochs!r} must be a positive finite number or 'auto' (two for a small set)")
    if train_dtype not in TRAIN_DTYPES:
        raise ConfigError(f"Unknown train_dtype={train_dtype!r}; use one of {', '.join(map(repr, TRAIN_DTYPES))}")
    if loss not in LOSSES:
        raise ConfigError(f"Unknown loss={loss!r}; use one of {', '.join(map(repr, LOSSES))}")
    if hard_negatives < 0:
        raise ConfigError(f"hard_negatives={hard_negatives} must be 0 (in-batch negatives only) or more")
    try:  # before any model is loaded
        check_strategies(list(pair_strategies), llm)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if llm_concurrency is not None and llm_concurrency < 1:
        raise ConfigError(f"llm_concurrency={llm_concurrency} must be at least 1 (1: one LLM call at a time)")
    if max_train_pairs is not None and max_train_pairs < 2:
        raise ConfigError(f"max_train_pairs={max_train_pairs} must be at least 2, or None for no cap")
    check_int("batch_size", batch_size, minimum=1)
    check_int("seed", seed, minimum=0)
    if seed >= 2**32:
        raise ConfigError(f"seed={seed} must be below 2**32 (numpy's and torch's seeds are 32-bit)")
    if max_steps is not None:
        check_int("max_steps", max_steps, minimum=1)
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real) or not 0 < learning_rate < 1:
        raise ConfigError(f"learning_rate={learning_rate!r} must be a number in (0, 1), e.g. 2e-5")
    if lr_scheduler not in LR_SCHEDULERS:
        raise ConfigError(f"Unknown lr_scheduler={lr_scheduler!r}; use one of {', '.join(map(repr, LR_SCHEDULERS))}")
    if isinstance(teacher, str | Path):  # a missing path or a pickle-only folder fails now, not after the pairs
        teacher_source, teacher_is_local = _loading.resolve_source(teacher)
        if teacher_is_local:
            _loading.check_weights_safe(teacher_source, allow_pickle=False)
    return float(learning_rate)
