"""The process-wide shared-model registry: one loaded model per identity, reference-counted.

A process holds one loaded model per identity (model, revision, device, dtype, trust_remote_code and the options
that reach the model when it loads: ``model_kwargs``, ``tokenizer_kwargs``, ``config_kwargs``, token, ...); every
``PromptEmbedder`` (and so every framework adapter) on the same model shares it and releases it with
``close()``. The last release frees the weights, including CUDA memory.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from promptembed._loading import Dtype

__all__ = ["LoadedModel", "ModelKey", "acquire", "fingerprint", "loaded_keys", "release"]


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


@dataclass
class LoadedModel:
    """A loaded ``SentenceTransformer`` with its reference count and encode lock."""

    key: ModelKey
    model: SentenceTransformer
    model_type: str | None
    refs: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    fingerprint: str | None = None


def fingerprint(entry: LoadedModel) -> str:
    """SHA-256 of the loaded weights, computed once per loaded model (the vector cache's model identity)."""
    with entry.lock:
        if entry.fingerprint is None:
            from promptembed.cache import weights_fingerprint

            entry.fingerprint = weights_fingerprint(entry.model)
        return entry.fingerprint


_registry: dict[ModelKey, LoadedModel] = {}
_registry_lock = threading.Lock()
#: Number of times a model was actually loaded from disk or hub in this process (tests read it).
load_count = 0


def acquire(
    key: ModelKey, *, load: Callable[[], tuple[SentenceTransformer, str | None]], model_type: str | None
) -> LoadedModel:
    """Return the shared model for ``key``, calling ``load`` on first use; the caller must ``release`` it.

    ``load`` returns the model and, when already known, its weights fingerprint (see :func:`fingerprint`).
    """
    global load_count
    with _registry_lock:
        entry = _registry.get(key)
        if entry is None:
            model, identity = load()
            load_count += 1
            entry = LoadedModel(key=key, model=model, model_type=model_type, fingerprint=identity)
            _registry[key] = entry
        entry.refs += 1
        return entry


def release(entry: LoadedModel) -> None:
    """Drop one reference; the last one unloads the model and frees accelerator memory."""
    with _registry_lock:
        entry.refs -= 1
        if entry.refs > 0 or _registry.get(entry.key) is not entry:
            return
        del _registry[entry.key]
    device = entry.key.device
    del entry.model
    gc.collect()
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device.startswith("mps") and torch.backends.mps.is_available():  # pragma: no cover - macOS only
        torch.mps.empty_cache()


def loaded_keys() -> list[ModelKey]:
    """Keys of the models currently held by the registry."""
    with _registry_lock:
        return list(_registry)
