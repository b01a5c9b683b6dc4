"""The checks :func:`~promptembed.finetune.finetune` runs on its options before any document is read or model loaded."""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

from promptembed import _loading
from promptembed._inputs import check_int
from promptembed.errors import ConfigError
from promptembed.finetune.pairs import check_strategies

__all__ = ["FILTERS", "LOSSES", "LR_SCHEDULERS", "TRAIN_DTYPES", "check_loss", "check_options"]

#: The trainer's learning-rate schedules that need nothing more than the steps (transformers' others need an
#: evaluation strategy or extra arguments this helper does not set).
LR_SCHEDULERS = (
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt",
)  # fmt: skip

#: The ``loss=`` values :func:`finetune` takes.
LOSSES = ("auto", "mnrl", "cached_mnrl", "gist", "cosent")
#: The ``train_dtype=`` values :func:`finetune` takes.
TRAIN_DTYPES = ("auto", "bfloat16", "float32")
#: The ``filter=`` values :func:`finetune` takes.
FILTERS = ("bm25", "model", "both", "none")


def _check_real(name: str, value: Any, *, high: float, high_open: bool, meaning: str) -> None:
    """``value`` must be a real number (not a bool, not NaN) in ``[0, high)`` or ``[0, high]``."""
    real = isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)
    if not real or not (0 <= value < high if high_open else 0 <= value <= high):
        interval = f"[0, {high:g})" if high_open else f"[0, {high:g}]"
        raise ConfigError(f"{name}={value!r} must be {'in' if real else 'a number in'} {interval} ({meaning})")


def _check_whole(name: str, value: Any, *, minimum: int, rule: str) -> None:
    """``value`` must be an int (not a bool, not a float: 1.5 is not cut to 1) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}={value!r} must be a whole number: {rule}")
    if value < minimum:
        raise ConfigError(f"{name}={value!r} must be {rule}")


def check_options(
    *,
    strategies: Any,
    max_pairs_per_chunk: int,
    filter: str,
    filter_top_k: int,
    heldout_fraction: float,
    warmup_ratio: float,
    negative_margin: float,
    save_steps: int,
    interpolate: float,
    epochs: Any,
    train_dtype: str,
    loss: str,
    hard_negatives: int,
    llm: Any,
    llm_concurrency: int | None,
    max_train_pairs: int | None,
    batch_size: int,
    seed: int,
    max_steps: int | None,
    learning_rate: float,
    lr_scheduler: str,
    teacher: Any,
) -> tuple[list[str], float]:
    """Raise :class:`ConfigError` for the first bad option; return the pair strategies and ``learning_rate``.

    The pair strategies are ``strategies`` with ``"llm"`` added when ``llm`` is given. The trainer's own options are
    checked here too, so a typo fails before documents are read, pairs are made (LLM calls) and models are loaded;
    a teacher given as a path must exist and hold safe weights.
    """
    if isinstance(strategies, str):  # list("sentence") would be its letters
        raise ConfigError(
            f"strategies={strategies!r} is a single str; pass a list of strategy names, e.g. "
            f"{strategies.split(',')!r} (the CLI's --strategies takes them comma-separated)"
        )
    pair_strategies = [*strategies, "llm"] if llm is not None and "llm" not in strategies else list(strategies)
    _check_whole("max_pairs_per_chunk", max_pairs_per_chunk, minimum=1, rule="at least 1 (pairs made per chunk)")
    if filter not in FILTERS:
        raise ConfigError(f"Unknown filter={filter!r}; use one of {', '.join(map(repr, FILTERS))}")
    _check_whole("filter_top_k", filter_top_k, minimum=1, rule="at least 1 (the rank a pair's chunk must reach)")
    _check_real(
        "heldout_fraction", heldout_fraction, high=1, high_open=True,
        meaning="the share of chunks kept out of training for evaluation; 0 for none, e.g. 0.1",
    )  # fmt: skip
    _check_real(
        "warmup_ratio", warmup_ratio, high=1, high_open=True,
        meaning="the share of the training steps spent warming up, e.g. 0.1",
    )  # fmt: skip
    _check_real(
        "negative_margin", negative_margin, high=1, high_open=True,
        meaning="how far below the positive's score a mined negative must be, relative to it, e.g. 0.05",
    )  # fmt: skip
    _check_whole("save_steps", save_steps, minimum=1, rule="at least 1 (training steps between checkpoints)")
    _check_real("interpolate", interpolate, high=1, high_open=False, meaning="1 = the finetuned weights, 0 = the base")
    if epochs != "auto" and (isinstance(epochs, str) or not 0 < epochs < float("inf")):
        raise ConfigError(f"epochs={epochs!r} must be a positive finite number or 'auto' (two for a small set)")
    if train_dtype not in TRAIN_DTYPES:
        raise ConfigError(f"Unknown train_dtype={train_dtype!r}; use one of {', '.join(map(repr, TRAIN_DTYPES))}")
    if loss not in LOSSES:
        raise ConfigError(f"Unknown loss={loss!r}; use one of {', '.join(map(repr, LOSSES))}")
    _check_whole("hard_negatives", hard_negatives, minimum=0, rule="0 (in-batch negatives only) or more")
    try:  # before any model is loaded
        check_strategies(list(pair_strategies), llm)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if llm_concurrency is not None:
        _check_whole("llm_concurrency", llm_concurrency, minimum=1, rule="at least 1 (1: one LLM call at a time)")
    if max_train_pairs is not None:
        _check_whole("max_train_pairs", max_train_pairs, minimum=2, rule="at least 2, or None for no cap")
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
    return pair_strategies, float(learning_rate)


def check_loss(loss: str, supervision_kind: str | None, *, teacher: bool) -> None:
    """Raise :class:`ConfigError` when ``loss`` cannot train on the rows this run will have.

    ``supervision_kind`` is the supervision file's kind (``"pairs"``, ``"triplets"``, ``"scored"``), or None for
    pairs made from documents only. Checked once the file is read, before any document or model.
    """
    if loss == "auto":
        return
    if teacher:
        raise ConfigError(f"loss={loss!r} cannot train on teacher margins; use loss='auto' with teacher= (margin-MSE)")
    scored = supervision_kind == "scored"
    if loss == "cosent" and not scored:
        what = "pairs made from documents" if supervision_kind is None else f"a supervision file of {supervision_kind}"
        raise ConfigError(
            f"loss='cosent' trains on scored pairs (text1,text2,score) and {what} have no scores; use loss='auto' "
            "(MNRL), or a supervision file with a score column"
        )
    if loss != "cosent" and scored:
        raise ConfigError(
            f"loss={loss!r} trains on (anchor,positive) pairs, not on scored pairs (text1,text2,score); use "
            "loss='auto' or loss='cosent' with a scored supervision file"
        )
