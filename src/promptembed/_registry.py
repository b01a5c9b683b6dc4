"""The process-wide shared-model registry: one loaded model per identity, reference-counted, never hanging.

A process holds one loaded model per :class:`ModelKey` (model, revision, device, dtype, trust_remote_code and the
options that reach the model when it loads: ``model_kwargs``, ``tokenizer_kwargs``, ``config_kwargs``, a keyed hash
of the token, ...); every ``PromptEmbedder`` (and so every framework adapter) on the same model shares it and
releases it with ``close()``. The last release frees the weights, CUDA memory too.

Lifecycle rules (the README's "Reliability" section states them for users):

* **Nothing blocks under the registry lock.** ``_lock`` guards three small tables (loaded entries, per-key
  loading/freeing states, the load counter) for a few dictionary operations at a time. Loading, freeing, garbage
  collection and ``torch.cuda.empty_cache`` all run outside it.
* **Per-key states.** The first thread asking for a key marks it *loading* and loads it outside the lock; other
  threads asking for the same key wait for that one load and share its result (its error too, like
  ``concurrent.futures.Future``), while other keys load in parallel. The last release marks the key *freeing* until
  its memory is returned, so a new load of the same model never overlaps the old copy in memory.
* **Finalizers never block.** ``PromptEmbedder.__del__`` calls :func:`release_later`, which only puts the entry on a
  ``queue.SimpleQueue`` (whose ``put`` is reentrant and documented as safe in ``__del__`` and weakref callbacks).
  The queue is drained at the next safe point: any :func:`acquire`, :func:`release`, :func:`loaded_keys`,
  :func:`drain`, embed call or ``close()`` in the process. A :func:`release` that finds its own thread inside the
  registry's critical section (a finalizer that ran during an allocation there) is queued the same way.
* **Failures leave nothing behind.** A load that raises (any ``BaseException``, KeyboardInterrupt included) removes
  its *loading* state and registers nothing; waiting threads get the error, except for interrupts, after which they
  load again themselves. The next acquire loads cleanly.
* **Fork.** ``os.register_at_fork`` takes the lock before a fork and gives the child fresh locks and queue; the
  child drops loading/freeing states (their threads do not exist there). The child keeps sharing CPU models it
  inherited (copy-on-write pages; usable there). A model on an accelerator (CUDA and MPS cannot be used after
  ``fork``), or one that a parent thread was encoding with at the moment of the fork (its encode lock and tokenizer
  state are mid-call), is marked unusable in the child: embedders holding it raise a clear error, new embedders load
  their own copy, and the child never frees or touches the parent's copy. A child of a process that had imported
  torch runs torch on one CPU thread (:func:`prepare_forked_child`): GNU OpenMP's thread pool does not survive fork.
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from promptembed._loading import Dtype

__all__ = [
    "LoadedModel",
    "ModelKey",
    "RegistryState",
    "acquire",
    "defer",
    "drain",
    "fingerprint",
    "loaded_keys",
    "prepare_forked_child",
    "release",
    "release_later",
    "state",
]

logger = logging.getLogger("promptembed")


@dataclass(frozen=True)
class ModelKey:
    """Identity of one loaded model in the process registry.

    The ``*_kwargs`` fields are canonical JSON; ``token`` is a keyed hash of the token, never the token itself
    (see :mod:`promptembed._modelopts`).
    """

    source: str
    revision: str | None
    device: str
    dtype: Dtype
    trust_remote_code: bool
    model_kwargs: str = "{}"
    tokenizer_kwargs: str = "{}"
    config_kwargs: str = "{}"
    token: str | None = None
    local_files_only: bool = False
    backend: str = "torch"
    cache_folder: str | None = None
    max_seq_length: int | None = None
    folder_stamp: str | None = None  # a local folder's files as they are now: a folder rebuilt in place loads anew


@dataclass
class LoadedModel:
    """A loaded ``SentenceTransformer`` with its reference count and encode lock.

    ``unusable`` is set (to the reason, for the error message) in a forked child that must not use this model.
    ``compiled`` is the model's ``torch.compile`` wrapper, made at its first call with ``engine="compile"``.
    """

    key: ModelKey
    model: SentenceTransformer
    model_type: str | None
    refs: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    fingerprint: str | None = None
    unusable: str | None = None
    compiled: Any = None


@dataclass(frozen=True)
class RegistryState:
    """A consistent snapshot of the registry (diagnostics and tests): references per key, busy keys, queue length."""

    refs: dict[ModelKey, int]
    busy: dict[ModelKey, Literal["loading", "freeing"]]
    queued: int


def fingerprint(entry: LoadedModel) -> str:
    """SHA-256 of the loaded weights and configuration, once per loaded model (the vector cache's model identity)."""
    with entry.lock:
        if entry.fingerprint is None:
            from promptembed.cache import model_fingerprint

            entry.fingerprint = model_fingerprint(entry.model)
        return entry.fingerprint


class _Busy:
    """A key being loaded or freed by one thread; others wait on ``done``."""

    __slots__ = ("done", "error", "kind", "owner")

    def __init__(self, kind: Literal["loading", "freeing"]) -> None:
        self.kind: Literal["loading", "freeing"] = kind
        self.owner = threading.get_ident()
        self.done = threading.Event()
        self.error: BaseException | None = None

    def finish(self, error: BaseException | None = None) -> None:
        self.error = error
        self.done.set()


# An RLock only so that a thread can tell whether it already holds it (_is_owned); it is never entered twice.
_lock = threading.RLock()
_entries: dict[ModelKey, LoadedModel] = {}
_busy: dict[ModelKey, _Busy] = {}
_queue: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
# Models a forked child inherited but must never use or free (accelerator memory, or mid-encode at the fork).
_pinned: list[Any] = []
#: Number of times a model was actually loaded from disk or hub in this process (tests read it).
load_count = 0


def _inside() -> bool:
    """Whether this thread is inside the registry's critical section (so a finalizer must not wait for the lock)."""
    return bool(_lock._is_owned())  # type: ignore[attr-defined]


def acquire(
    key: ModelKey, *, load: Callable[[], tuple[SentenceTransformer, str | None]], model_type: str | None
) -> LoadedModel:
    """Return the shared model for ``key``, calling ``load`` on first use; the caller must ``release`` it.

    ``load`` returns the model and, when already known, its weights fingerprint (see :func:`fingerprint`). It runs
    outside the registry lock; concurrent callers for the same key wait for it and share its result or error.

    Raises:
        RuntimeError: Called from inside the registry (a finalizer), or by the thread that is loading or freeing
            ``key`` (a ``load`` that asks for its own model), which would wait for itself.
    """
    if _inside():
        raise RuntimeError("promptembed: a model was requested from inside the model registry (a finalizer?)")
    drain()
    prepare_forked_child()
    while True:
        with _lock:
            entry = _entries.get(key)
            if entry is not None:
                entry.refs += 1
                return entry
            busy = _busy.get(key)
            if busy is None:
                busy = _busy[key] = _Busy("loading")
                break
        if busy.owner == threading.get_ident():
            raise RuntimeError(f"promptembed: model {key.source!r} was requested by the thread that is {busy.kind} it")
        busy.done.wait()
        if isinstance(busy.error, Exception):  # the load we waited for failed: share its error
            raise busy.error
        # Loaded (found on the next pass), freed, or interrupted (then this thread loads it): look again.
    return _load(key, busy, load, model_type)


def _load(
    key: ModelKey, busy: _Busy, load: Callable[[], tuple[SentenceTransformer, str | None]], model_type: str | None
) -> LoadedModel:
    global load_count
    entry: LoadedModel | None = None
    try:
        model, identity = load()
        entry = LoadedModel(key=key, model=model, model_type=model_type, refs=1, fingerprint=identity)
        with _lock:
            _entries[key] = entry
            if _busy.get(key) is busy:
                del _busy[key]
            load_count += 1
    except BaseException as exc:
        # No half entry: forget the loading state, undo a registration an interrupt cut short, wake the waiters.
        with _lock:
            if _busy.get(key) is busy:
                del _busy[key]
            registered = entry is not None and _entries.get(key) is entry
        if registered and entry is not None:
            _release_now(entry)
        busy.finish(exc)
        raise
    busy.finish()
    return entry


def release(entry: LoadedModel) -> None:
    """Drop one reference; the last one unloads the model and frees accelerator memory.

    Called from inside the registry's critical section (a finalizer that ran during an allocation there), it only
    queues the release, like :func:`release_later`.

    Raises:
        RuntimeError: ``entry`` was released more times than it was acquired.
    """
    if _inside():
        release_later(entry)
        return
    _release_now(entry)
    drain()


def release_later(entry: LoadedModel) -> None:
    """Queue a release for the next safe point; never blocks (safe in ``__del__`` and weakref callbacks)."""
    _queue.put(partial(_release_now, entry))


def defer(action: Callable[[], object]) -> None:
    """Queue any cleanup (e.g. stopping a worker pool) for the next safe point; never blocks."""
    _queue.put(action)


def drain() -> None:
    """Carry out the queued releases and cleanups now (a safe point); an error is logged, not raised."""
    if _inside():
        return
    while not _queue.empty():
        try:
            action = _queue.get_nowait()
        except queue.Empty:
            return
        try:
            action()
        except Exception:
            logger.warning("promptembed: a queued model release failed", exc_info=True)


def _release_now(entry: LoadedModel) -> None:
    key = entry.key
    with _lock:
        if entry.refs <= 0:
            raise RuntimeError(f"promptembed: model {key.source!r} was released more times than it was acquired")
        entry.refs -= 1
        if entry.refs > 0:
            return
        busy: _Busy | None = None
        if _entries.get(key) is entry:
            del _entries[key]
            busy = _busy[key] = _Busy("freeing")
    try:
        _free(entry)
    finally:
        if busy is not None:
            with _lock:
                if _busy.get(key) is busy:
                    del _busy[key]
            busy.finish()


def _free(entry: LoadedModel) -> None:
    if entry.unusable is not None:  # a forked child's copy of the parent's model: never touch it
        return
    entry.compiled = None  # the torch.compile wrapper holds the model too
    del entry.model
    gc.collect()
    device = entry.key.device
    if device.startswith("cuda") or device.startswith("mps"):
        import torch

        if device.startswith("cuda") and torch.cuda.is_available():
            torch.cuda.empty_cache()
        elif device.startswith("mps") and torch.backends.mps.is_available():  # pragma: no cover - macOS only
            torch.mps.empty_cache()


def loaded_keys() -> list[ModelKey]:
    """Keys of the models currently held by the registry (after carrying out queued releases)."""
    drain()
    with _lock:
        return list(_entries)


def state() -> RegistryState:
    """A consistent snapshot of references per loaded key, keys being loaded or freed, and queued cleanups."""
    with _lock:
        return RegistryState(
            refs={k: e.refs for k, e in _entries.items()},
            busy={k: b.kind for k, b in _busy.items()},
            queued=_queue.qsize(),
        )


# ----------------------------------------------------------------------------------------------------- fork
_FORK_LOCK_TIMEOUT_S = 30.0
_held_for_fork = False
_single_thread_pending = False


def _before_fork() -> None:
    # Take the lock so the child inherits consistent tables (it is only ever held for a few dict operations).
    global _held_for_fork
    _held_for_fork = not _inside() and _lock.acquire(timeout=_FORK_LOCK_TIMEOUT_S)


def _after_fork_parent() -> None:
    global _held_for_fork
    if _held_for_fork:
        _held_for_fork = False
        _lock.release()


def _after_fork_child() -> None:
    global _lock, _queue, _held_for_fork, _single_thread_pending
    _lock = threading.RLock()
    _held_for_fork = False
    _single_thread_pending = "torch" in sys.modules
    old, _queue = _queue, queue.SimpleQueue()
    while not old.empty():  # the parent's queued releases: this child's copies hold those references too
        try:
            _queue.put(old.get_nowait())
        except queue.Empty:
            break
    me = threading.get_ident()  # the forking thread goes on in the child; every other thread is gone
    for key, busy in list(_busy.items()):
        if busy.owner != me:  # its load or free will never finish here: a new request starts afresh
            del _busy[key]
    for key, entry in list(_entries.items()):
        # a compiled CPU model's kernels keep the parent's thread count, which GNU OpenMP cannot give after a fork
        # (prepare_forked_child): the child runs the eager model and compiles again if it asks to
        entry.compiled = None
        reason = _unusable_after_fork(entry)
        if entry.refs <= 0 or reason is not None:
            del _entries[key]
        if reason is not None:
            entry.unusable = reason
            _pinned.append(entry.model)  # never freed here: its memory belongs to the parent


def prepare_forked_child() -> None:
    """In a forked child of a process that had imported torch, run torch on one CPU thread (once, before its use).

    torch's Linux wheels use GNU OpenMP, whose thread pool does not survive ``fork``: a child's first parallel op
    hangs forever once the parent has run one (pytorch/pytorch#17199). PyTorch's own DataLoader workers run with
    one thread for the same reason. Called at :func:`acquire` and at every embed call; a no-op elsewhere.
    """
    global _single_thread_pending
    if not _single_thread_pending:
        return
    _single_thread_pending = False
    import torch

    if torch.get_num_threads() > 1:
        logger.warning(
            "promptembed: this process was forked from one that had loaded torch, and torch's OpenMP thread pool "
            "does not survive fork (a parallel op would hang); running torch on one CPU thread here "
            "(torch.set_num_threads(1)). Start workers with the 'spawn' or 'forkserver' method to keep all threads."
        )
        torch.set_num_threads(1)


def _unusable_after_fork(entry: LoadedModel) -> str | None:
    device = entry.key.device
    if not device.startswith("cpu"):
        return (
            f"This embedder's model was loaded on {device!r} in the parent process before it forked, and {device} "
            "cannot be used in a forked child. Start the worker processes with the 'spawn' method "
            "(multiprocessing.get_context('spawn')) and create the PromptEmbedder in each worker."
        )
    if entry.lock.locked():
        return (
            "The process forked while another thread was encoding with this embedder's model, so this child's copy "
            "of it is mid-call and unsafe. Create a new PromptEmbedder in the child, or fork before encoding starts."
        )
    return None


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent, after_in_child=_after_fork_child)
