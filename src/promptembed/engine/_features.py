"""Model inputs for the token-budget engine: one tokenization per text, padded per batch.

sentence-transformers tokenizes each batch with ``tokenizer(prompt + text, padding=True, truncation=...)`` inside
``Transformer.preprocess``. The engine tokenizes every text once, unpadded (to sort by exact token length and to
count truncations), and pads each batch itself. Whether that gives the very tensors sentence-transformers would
build is not assumed: :func:`check_parity` compares both on probe texts once per model and task, and a model that
fails it (or has a non-text, chat-template, query-expansion or routed input) is encoded by sentence-transformers'
own ``preprocess`` per batch, or by sentence-transformers' loop.
"""

from __future__ import annotations

import copy
import itertools
import os
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from promptembed.engine._plan import pad_rows

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

__all__ = ["Mode", "Tokenized", "build_features", "extras", "mixes_prompts", "mode_for", "tokenize"]

#: How the engine builds a model's inputs: its own padding ("pad"), sentence-transformers' ``preprocess`` per batch
#: ("preprocess": padding-free inputs where the model was loaded with FlashAttention-2, or a tokenizer setup the
#: engine does not reproduce), or not at all ("st-loop": the model is not a plain text transformer).
Mode = Literal["pad", "preprocess", "st-loop"]

_PROBE_PROMPT = "probe | "
_PROBE_TEXTS = ("", "Probe: Hello World, 123 -- ünïcödé?")
_parity: weakref.WeakKeyDictionary[Any, dict[tuple[str | None, int | None], bool]] = weakref.WeakKeyDictionary()
_parity_lock = threading.Lock()
_extras: weakref.WeakKeyDictionary[Any, dict[tuple[str, str | None], dict[str, Any]]] = weakref.WeakKeyDictionary()
#: Prompts whose ``preprocess`` extras are kept per model (titles make one prompt per document).
_EXTRAS_KEPT = 256
#: Fewest texts per job when several threads tokenize one window (smaller jobs cost more to schedule than to run).
MIN_TEXTS_PER_THREAD = 256
#: Most threads one window is tokenized by.
MAX_TOKENIZER_THREADS = 8
#: Spare copies of each tokenizer for the tokenizer threads, made only when a thread meets "Already borrowed" (see
#: :func:`_encode_shared`); kept for the next call.
_spares: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()
_spares_lock = threading.Lock()
_executor: tuple[int, ThreadPoolExecutor] | None = None  # (pid that made it, executor): a forked child makes its own


class Tokenized:
    """One tokenization of a window of texts: per-key id rows, their lengths, and how many were truncated."""

    __slots__ = ("lengths", "rows", "truncated")

    def __init__(self, rows: dict[str, list[list[int]]], lengths: list[int], truncated: int) -> None:
        self.rows = rows
        self.lengths = lengths
        self.truncated = truncated


def _first(model: SentenceTransformer) -> Any:
    return model[0]


def mode_for(model: SentenceTransformer) -> Mode:
    """Which input path this model can take (before the parity check)."""
    first = _first(model)
    tokenizer = getattr(first, "tokenizer", None)
    if (
        tokenizer is None
        or not getattr(tokenizer, "is_fast", False)
        or not callable(getattr(first, "preprocess", None))
    ):
        return "st-loop"
    if any(type(m).__name__ == "Router" for m in model.modules()):
        return "st-loop"
    modalities = getattr(first, "modality_config", None) or {"text": {}}
    if "text" not in modalities or "message" in modalities:
        return "st-loop"
    if getattr(first, "query_expansion", None) is not None:
        return "st-loop"
    if getattr(first, "can_flatten_inputs", False):
        return "preprocess"  # sentence-transformers' own padding-free (FlashAttention varlen) inputs
    tuned = ("query_length", "document_length", "processing_kwargs")
    if any(getattr(first, name, None) for name in tuned) or tokenizer.pad_token_id is None:
        return "preprocess"
    return "pad"


def mixes_prompts(model: SentenceTransformer) -> bool:
    """Whether texts with different prompts may share a batch.

    Only when no module can read the batch's ``prompt_length``: every module is one of sentence-transformers' own,
    and no pooling excludes the prompt tokens (``include_prompt=False`` pools over the text without its prompt, with
    one prompt length per batch).
    """
    return all(
        type(m).__module__.startswith("sentence_transformers.") and getattr(m, "include_prompt", True)
        for m in model.children()
    )


def tokenize(model: SentenceTransformer, full_texts: Sequence[str], *, threads: int = 1) -> Tokenized:
    """Tokenize prompt-prefixed texts once, unpadded and truncated as sentence-transformers truncates.

    With ``threads`` > 1 and enough texts, consecutive slices are tokenized at once by that many threads with the
    model's own tokenizer (the fast tokenizer releases the GIL while it encodes; see :func:`_encode_shared`), and
    joined in order: the same rows as one call, whether or not ``TOKENIZERS_PARALLELISM`` lets the tokenizer use
    several cores itself.
    """
    tokenizer = _first(model).tokenizer
    texts = list(full_texts)
    jobs = min(threads, MAX_TOKENIZER_THREADS, len(texts) // MIN_TEXTS_PER_THREAD)
    if jobs <= 1:
        return _encode(tokenizer, texts)
    bounds = np.linspace(0, len(texts), jobs + 1).astype(int)
    slices = [texts[int(a) : int(b)] for a, b in itertools.pairwise(bounds)]
    _encode(tokenizer, texts[:1])  # settles the tokenizer's truncation/padding here: the threads only read them
    parts = list(_pool().map(lambda part: _encode_shared(tokenizer, part), slices))
    rows = {key: [row for part in parts for row in part.rows[key]] for key in parts[0].rows}
    lengths = [n for part in parts for n in part.lengths]
    return Tokenized(rows, lengths, sum(part.truncated for part in parts))


def _encode(tokenizer: Any, texts: list[str]) -> Tokenized:
    enc = tokenizer(texts, padding=False, truncation="longest_first", return_attention_mask=False, verbose=False)
    rows = {key: value for key, value in enc.items() if isinstance(value, list)}
    lengths = [len(ids) for ids in rows["input_ids"]]
    encodings = enc.encodings or []
    truncated = sum(1 for e in encodings if e.overflowing)
    return Tokenized(rows, lengths, truncated)


def _encode_shared(tokenizer: Any, texts: list[str]) -> Tokenized:
    """:func:`_encode` from a tokenizer thread on the model's own tokenizer (on a copy only if that one is changing).

    A fast tokenizer encodes under a shared borrow of its Rust object (the GIL released), so several threads encode
    with it at once. A call that changes it (truncation, padding, special-token splitting: only when asked for
    settings other than its current ones) needs the object to itself, and raises "Already borrowed" while another
    thread encodes. :func:`tokenize` settles the settings before its threads start, so they only read them. A thread
    that still has to change them (a caller outside the engine changed them meanwhile, or a tokenizer that rewrites
    its post-processor on every call, as the fast tokenizers of translation models such as NLLB or MBart do) retries
    its slice on a copy of its own: the same rows, at the old cost. A caller outside the engine that changes the
    tokenizer while the threads encode gets that error itself (the engine's own calls on a model hold its encode
    lock, so they never overlap). Copying EmbeddingGemma's tokenizer (262k-token vocabulary) takes seconds per
    copy, which every tokenizer thread used to pay on a model's first large call (benchmarks/GPU.md).
    """
    try:
        return _encode(tokenizer, texts)
    except RuntimeError as exc:
        if "Already borrowed" not in str(exc):
            raise
    return _encode_with_copy(tokenizer, texts)


def _encode_with_copy(tokenizer: Any, texts: list[str]) -> Tokenized:
    """:func:`_encode` with a copy of ``tokenizer`` that no other thread uses meanwhile."""
    with _spares_lock:
        spare = _spares.setdefault(tokenizer, [])
        mine = spare.pop() if spare else None
    if mine is None:
        mine = copy.deepcopy(tokenizer)  # once per thread and tokenizer (a large vocabulary takes a second or two)
    try:
        return _encode(mine, texts)
    finally:
        with _spares_lock:
            _spares.setdefault(tokenizer, []).append(mine)


def _after_fork_child() -> None:
    """A forked child gets fresh locks (a parent thread may have held one at the fork) and no tokenizer threads."""
    global _spares_lock, _parity_lock, _executor
    _spares_lock = threading.Lock()
    _parity_lock = threading.Lock()
    _executor = None


os.register_at_fork(after_in_child=_after_fork_child)


def _pool() -> ThreadPoolExecutor:
    """The process's tokenizer threads (made again in a forked child, where the parent's threads do not exist)."""
    global _executor
    with _spares_lock:
        if _executor is None or _executor[0] != os.getpid():
            pool = ThreadPoolExecutor(max_workers=MAX_TOKENIZER_THREADS, thread_name_prefix="promptembed-tokenize")
            _executor = (os.getpid(), pool)
        return _executor[1]


def build_features(
    model: SentenceTransformer, tokenized: Tokenized, index: np.ndarray, width: int, extra: dict[str, Any]
) -> dict[str, Any]:
    """Padded tensors of one batch (rows ``index`` of ``tokenized``), as ``Transformer.preprocess`` returns them."""
    import torch

    tokenizer = _first(model).tokenizer
    left = getattr(tokenizer, "padding_side", "right") == "left"
    features: dict[str, Any] = {}
    pad_values = {"input_ids": int(tokenizer.pad_token_id), "token_type_ids": int(tokenizer.pad_token_type_id)}
    for key, rows in tokenized.rows.items():
        picked = [rows[i] for i in index]
        features[key] = torch.from_numpy(pad_rows(picked, width, pad_values.get(key, 0), left=left))
    lengths = np.asarray([tokenized.lengths[i] for i in index], dtype=np.int64)
    positions = np.arange(width, dtype=np.int64)[None, :]
    mask = positions >= (width - lengths)[:, None] if left else positions < lengths[:, None]
    features["attention_mask"] = torch.from_numpy(mask.astype(np.int64))
    features.update(extra)
    return features


def extras(model: SentenceTransformer, prompt: str, task: str | None) -> dict[str, Any]:
    """The non-tensor entries ``preprocess`` adds for this prompt and task (``modality``, ``prompt_length``)."""
    import torch

    with _parity_lock:
        kept = _extras.setdefault(model, {})
        found = kept.get((prompt, task))
    if found is not None:
        return dict(found)
    out = model.preprocess([""], prompt=prompt, **_task_kwargs(task))
    found = {key: value for key, value in out.items() if not isinstance(value, torch.Tensor)}
    with _parity_lock:
        if len(kept) >= _EXTRAS_KEPT:
            kept.clear()
        kept[(prompt, task)] = found
    return dict(found)


def check_parity(model: SentenceTransformer, task: str | None) -> bool:
    """Whether the engine's padded inputs equal ``model.preprocess``'s on probe texts (cached per model and task).

    The probes cover an empty text, mixed case, punctuation and non-ASCII, a prompt, and a text longer than the
    model's limit (truncation), in one padded batch.
    """
    tokenizer = _first(model).tokenizer
    limit = getattr(tokenizer, "model_max_length", None)
    limit = int(limit) if isinstance(limit, int) and limit < 100_000 else None
    with _parity_lock:
        cached = _parity.setdefault(model, {}).get((task, limit))
    if cached is not None:
        return cached
    ok = _compare(model, task, limit)
    with _parity_lock:
        _parity[model][(task, limit)] = ok
    return ok


def _compare(model: SentenceTransformer, task: str | None, limit: int | None) -> bool:
    import torch

    texts = list(_PROBE_TEXTS) + (["word " * (limit + 8)] if limit is not None else [])
    try:
        reference = model.preprocess(texts, prompt=_PROBE_PROMPT, **_task_kwargs(task))
        tokenized = tokenize(model, [_PROBE_PROMPT + t for t in texts])
        width = max(tokenized.lengths)
        ours = build_features(model, tokenized, np.arange(len(texts)), width, extras(model, _PROBE_PROMPT, task))
    except Exception:  # any failure means: let sentence-transformers build the inputs
        return False
    if set(reference) != set(ours):
        return False
    for key, value in reference.items():
        mine = ours[key]
        if isinstance(value, torch.Tensor):
            if not isinstance(mine, torch.Tensor) or mine.shape != value.shape or not torch.equal(mine, value.long()):
                return False
        elif mine != value:
            return False
    return True


def _task_kwargs(task: str | None) -> dict[str, str]:
    return {"task": task} if task is not None else {}


def pin(features: dict[str, Any]) -> dict[str, Any]:
    """Page-locked copies of a batch's tensors, so the copy to the GPU can run asynchronously."""
    import torch

    return {k: (v.pin_memory() if isinstance(v, torch.Tensor) else v) for k, v in features.items()}


def to_device(features: dict[str, Any], device: torch.device, *, non_blocking: bool) -> dict[str, Any]:
    """Move a batch's tensors to ``device``."""
    import torch

    return {
        k: (v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v) for k, v in features.items()
    }
