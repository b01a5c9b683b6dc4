"""The encode path: texts and their prompts in, final float32 vectors out, over a shared loaded model.

Two loops run sentence-transformers' own modules (Transformer, Pooling, Dense, Normalize, ...):

* the token-budget engine (default, ``engine="auto"``): texts sorted by token length and cut into batches of at most
  ``max_batch_tokens`` padded tokens, tokenized once in a background thread (helped by more tokenizer threads on
  CUDA/MPS, :func:`default_tokenizer_threads`), pinned and copied without blocking on
  CUDA, pooled vectors gathered, truncated and normalized on the device, one copy back per call
  (:mod:`promptembed.engine._run`);
* the same engine with the model compiled by ``torch.compile`` (``engine="compile"``, opt-in): measured 2.9x the
  uncompiled engine on an EmbeddingGemma-300M-shaped model on an H100, after a first call that compiles for minutes,
  and no faster on all-MiniLM-L6-v2 (GPU) or on a CPU (benchmarks/GPU.md, benchmarks/RESULTS.md);
* sentence-transformers' ``encode`` loop (``engine="sentence-transformers"``, device pools, calls with forward-pass
  keyword arguments, and models that are not a plain text transformer): fixed ``batch_size`` text batches
  (:mod:`promptembed.engine._st_loop`).

Padding-free attention: where the model was loaded with FlashAttention-2 (``flash-attn`` installed, CUDA, a model
class that supports it), sentence-transformers' ``Transformer`` flattens a batch into one sequence without padding,
and the engine hands the batching to that ``preprocess``; everywhere else (CPU, MPS, CUDA without ``flash-attn``)
the engine's length-sorted token budget is the padding reduction.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

from promptembed.engine import _features, _run
from promptembed.engine._st_loop import count_over_limit, encode_groups

if TYPE_CHECKING:
    from promptembed._registry import LoadedModel

__all__ = [
    "ENGINES",
    "TOKENIZER_THREADS_ENV",
    "Encoded",
    "count_over_limit",
    "default_max_batch_tokens",
    "default_tokenizer_threads",
    "encode",
    "path_for",
]

Engine = Literal["auto", "sentence-transformers", "compile"]
ENGINES: tuple[str, ...] = ("auto", "sentence-transformers", "compile")
#: The token-budget engine with the model compiled by ``torch.compile`` (see :func:`encode`).
COMPILE = "compile"

#: Default token budget per forward pass (rows x longest row), by device type. CPU: the best of a sweep on a 2-core
#: x86 machine (benchmarks/engine.py, all-MiniLM-L6-v2); small batches keep activations in cache there. CUDA: the
#: best of 8192/16384/32768 on an H100 for both MiniLM- and EmbeddingGemma-shaped models (benchmarks/GPU.md). MPS:
#: not measured (no Apple GPU here).
DEFAULT_MAX_BATCH_TOKENS = {"cpu": 2048, "cuda": 32768, "mps": 4096}
#: Texts tokenized per window: (first window, largest window). On CUDA the first window is small so the GPU starts
#: while the tokenizer thread works on the next, doubling ones; each window is length-sorted on its own.
_WINDOWS = {"cpu": (4096, 4096), "cuda": (1024, 16384), "mps": (1024, 8192)}


#: Environment variable that sets how many threads tokenize a large call (default: see default_tokenizer_threads).
TOKENIZER_THREADS_ENV = "PROMPTEMBED_TOKENIZER_THREADS"


class Encoded(NamedTuple):
    """Result of :func:`encode`."""

    vectors: np.ndarray
    truncated: int
    path: str


def default_max_batch_tokens(device: str) -> int:
    """The engine's token budget per forward pass on ``device`` when ``max_batch_tokens`` is not given."""
    return DEFAULT_MAX_BATCH_TOKENS.get(device.split(":", 1)[0], DEFAULT_MAX_BATCH_TOKENS["cpu"])


def default_tokenizer_threads(device: str) -> int:
    """Threads that tokenize each window of a large call on ``device`` (``PROMPTEMBED_TOKENIZER_THREADS`` overrides).

    On CUDA and MPS the host's cores are otherwise idle while the accelerator runs, and one tokenizer thread cannot
    keep up with it (benchmarks/GPU.md): all cores but two, at most 8. On CPU the forward pass needs every core: 1.
    """
    raw = os.environ.get(TOKENIZER_THREADS_ENV, "").strip()
    if raw:
        from promptembed.errors import ConfigError

        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise ConfigError(f"{TOKENIZER_THREADS_ENV}={raw!r} is not a positive whole number; set it to 1 or more")
        return value
    if device.split(":", 1)[0] == "cpu":
        return 1
    return max(1, min(_features.MAX_TOKENIZER_THREADS, (os.cpu_count() or 1) - 2))


def path_for(
    entry: LoadedModel, *, engine: str, pool: object, task: str | None, forward_kwargs: Mapping[str, Any] | None = None
) -> str:
    """Which loop encodes: ``"pad"``/``"preprocess"`` (token-budget engine) or ``"st-loop"`` (sentence-transformers).

    Forward-pass keyword arguments (``SentenceTransformer.encode(**kwargs)``) take sentence-transformers' loop, which
    hands them to the model exactly as the stock ``encode`` does.
    """
    if engine == "sentence-transformers" or pool is not None or forward_kwargs:
        return "st-loop"
    mode = _features.mode_for(entry.model)
    if mode == "pad" and not _features.check_parity(entry.model, task):
        return "preprocess"
    return mode


def encode(
    entry: LoadedModel,
    texts: list[str],
    prompts: list[str],
    *,
    role: Literal["query", "document"] | None,
    batch_size: int,
    max_batch_tokens: int | None,
    engine: str,
    truncate_dim: int | None,
    normalize: bool,
    show_progress_bar: bool,
    pool: dict[str, Any] | None = None,
    forward_kwargs: Mapping[str, Any] | None = None,
) -> Encoded:
    """Encode ``texts`` with ``prompts[i]`` prepended to ``texts[i]``, as sentence-transformers does.

    Args:
        entry: The shared loaded model (its lock is held for the whole call).
        texts: The texts, in input order.
        prompts: One prompt per text (often all the same).
        role: ``"query"``/``"document"`` (sentence-transformers' ``task``) or ``None`` for plain ``encode``.
        batch_size: Texts per forward pass of sentence-transformers' loop.
        max_batch_tokens: Token budget per forward pass of the engine (``None``: the device's default).
        engine: ``"auto"``, ``"sentence-transformers"`` or ``"compile"``: the token-budget engine with the model
            compiled by ``torch.compile``, once per loaded model at its first batch of two or more rows (dynamic
            shapes: one graph for every batch shape). Batches of one row run the eager model, so a one-text query
            never compiles a one-row graph; a call that takes sentence-transformers' loop (a device pool,
            forward-pass keyword arguments, a model the engine cannot batch) runs it uncompiled. Vectors equal the
            eager engine's to float rounding. The compiled wrapper is dropped with the model's last release and in
            a forked child.
        truncate_dim: Keep the first dimensions only (then normalize, when ``normalize``).
        normalize: L2-normalize the vectors.
        show_progress_bar: Show a progress bar.
        pool: A sentence-transformers multi-process pool (always its own loop).
        forward_kwargs: Keyword arguments for the model's forward pass, as ``SentenceTransformer.encode(**kwargs)``
            takes them (sentence-transformers' loop).

    Returns:
        Vectors in input order (float32, ``(len(texts), dim)``), how many texts were truncated, and the path taken.
    """
    model = entry.model
    with entry.lock:
        path = path_for(entry, engine=engine, pool=pool, task=role, forward_kwargs=forward_kwargs)
        if path == "st-loop":
            raw, truncated = encode_groups(
                model,
                texts,
                prompts,
                role=role,
                batch_size=batch_size,
                show_progress_bar=show_progress_bar,
                pool=pool,
                forward_kwargs=forward_kwargs,
            )
            return Encoded(_postprocess(raw, truncate_dim, normalize), truncated, path)
        kind = str(model.device.type)
        first, largest = _WINDOWS.get(kind, _WINDOWS["cpu"])
        mode: _features.Mode = "pad" if path == "pad" else "preprocess"
        settings = _run.Settings(
            max_batch_tokens=max_batch_tokens or default_max_batch_tokens(kind),
            mode=mode,
            mix_prompts=path == "pad" and _features.mixes_prompts(model),
            first_window=first,
            largest_window=largest,
            tokenizer_threads=default_tokenizer_threads(kind),
        )
        compiled = None
        if engine == COMPILE:
            if entry.compiled is None:
                entry.compiled = _compile(model)
            compiled = entry.compiled
        vectors, truncated = _run.run(
            model,
            texts,
            prompts,
            task=role,
            settings=settings,
            truncate_dim=truncate_dim,
            normalize=normalize,
            progress=show_progress_bar,
            compiled=compiled,
        )
        return Encoded(vectors, truncated, path)


def _compile(model: Any) -> Any:
    """``torch.compile`` of the whole sentence-transformers model (its modules, called as ``model(features)``).

    Dynamic shapes: the engine's batches vary in rows and width, so one compiled graph serves them all instead of one
    per shape. The model itself is not changed (its ``state_dict`` and eager calls stay as they are).
    """
    return _Compiled(model)


class _Compiled:
    """The compiled model; a failure of its first call that the eager model does not share becomes a ConfigError.

    ``torch.compile`` compiles lazily, at the first call, where a missing C++ compiler (CPU), a missing Triton (CUDA)
    or an operation the backend cannot compile would otherwise surface as a deep Inductor traceback.
    """

    def __init__(self, model: Any) -> None:
        import torch

        self._fn: Any = torch.compile(model, dynamic=True)
        self._model = model
        self._device = str(model.device)
        self._ready = False

    def __call__(self, features: dict[str, Any], **kwargs: Any) -> Any:
        if self._ready:
            return self._fn(features, **kwargs)
        import torch

        try:
            out = self._fn(features, **kwargs)
        except torch.OutOfMemoryError:
            raise  # the batch, not the compile: the eager model would run out of memory too
        except Exception as exc:
            from promptembed.errors import ConfigError

            try:  # a bug of the model or its input fails the eager model too: that error, not "could not compile"
                self._model(features, **kwargs)
            except Exception as eager:
                raise eager from None
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise ConfigError(
                f"engine='compile': torch.compile could not compile this model on {self._device} "
                f"({type(exc).__name__}: {first}); use engine='auto' (the same engine, uncompiled)"
            ) from exc
        self._ready = True
        return out


def _postprocess(vectors: np.ndarray, truncate_dim: int | None, normalize: bool) -> np.ndarray:
    if truncate_dim is not None:
        vectors = np.ascontiguousarray(vectors[:, :truncate_dim])
    if normalize:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms == 0.0, 1.0, norms)
    return vectors.astype(np.float32, copy=False)
