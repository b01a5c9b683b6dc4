"""The token-budget encode loop: a tokenizer thread feeds batches, the device runs sentence-transformers' modules.

A background thread tokenizes the call window by window (the fast tokenizer releases the GIL), plans each window's
token-budget batches, pads them and, on CUDA, pins them in page-locked memory; the calling thread copies each batch
to the device without blocking, runs the model's own modules (``model(features)``: Transformer, Pooling, Dense,
Normalize, ...), and scatters the pooled vectors into one float32 output on the device. Truncation and
normalization run there too, and the vectors come back to the host in one copy at the end of the call.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from promptembed.engine import _features
from promptembed.engine._plan import plan_batches, windows

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

__all__ = ["Settings", "run"]

#: Calls of at most this many texts are tokenized in the calling thread (no thread start: query latency).
INLINE_TEXTS = 64
#: Prepared batches the tokenizer thread may run ahead of the device.
PREFETCH = 4


@dataclass(frozen=True)
class Settings:
    """How one call runs (resolved by :func:`promptembed.engine.encode`)."""

    max_batch_tokens: int
    mode: _features.Mode
    mix_prompts: bool
    first_window: int
    largest_window: int
    tokenizer_threads: int = 1


@dataclass
class _Prepared:
    index: np.ndarray
    positions: torch.Tensor  # ``index`` as a tensor (page-locked on CUDA)
    features: dict[str, Any]


_DONE = object()


def run(
    model: SentenceTransformer,
    texts: list[str],
    prompts: list[str],
    *,
    task: str | None,
    settings: Settings,
    truncate_dim: int | None,
    normalize: bool,
    progress: bool,
    compiled: Any = None,
) -> tuple[np.ndarray, int]:
    """Encode ``texts`` (``prompts[i]`` before ``texts[i]``); returns (final float32 vectors, texts truncated).

    ``compiled``: the model's ``torch.compile`` wrapper, used for batches of two or more rows (a one-row batch runs
    the eager model: a compiled graph specializes on one row, so it would compile again, for seconds, on a query).
    """
    import torch

    device = model.device
    cuda = device.type == "cuda"
    counter = [0]  # texts truncated, written by the producer
    produce = _producer(model, texts, prompts, task=task, settings=settings, pin=cuda, truncated=counter)
    forward_kwargs = {"task": task} if task is not None else {}
    result: torch.Tensor | None = None
    bar = _progress(len(texts), progress)
    with torch.inference_mode():
        for item in _threaded(produce) if len(texts) > INLINE_TEXTS else produce:
            features = _features.to_device(item.features, device, non_blocking=cuda)
            index = item.positions.to(device, non_blocking=True) if cuda else item.positions
            forward = compiled if compiled is not None and len(item.index) > 1 else model
            embeddings = forward(features, **forward_kwargs)["sentence_embedding"]
            if result is None:
                result = torch.empty((len(texts), embeddings.shape[1]), dtype=torch.float32, device=device)
            result.index_copy_(0, index, embeddings.to(torch.float32))
            if bar is not None:
                bar.update(len(item.index))
        if bar is not None:
            bar.close()
        if result is None:  # pragma: no cover - callers never pass an empty list
            raise ValueError("no texts to encode")
        if truncate_dim is not None:
            result = result[:, :truncate_dim]
        if normalize:
            result = torch.nn.functional.normalize(result, p=2.0, dim=1)
        vectors = result.cpu().numpy()
    return np.ascontiguousarray(vectors, dtype=np.float32), counter[0]


def _producer(
    model: SentenceTransformer,
    texts: list[str],
    prompts: list[str],
    *,
    task: str | None,
    settings: Settings,
    pin: bool,
    truncated: list[int],
) -> Iterator[_Prepared]:
    """Yield the call's batches, ready for the device: window by window, longest texts first in each window."""
    import torch

    extra_cache: dict[str, dict[str, Any]] = {}

    def extra(prompt: str) -> dict[str, Any]:
        if prompt not in extra_cache:
            extra_cache[prompt] = _features.extras(model, prompt, task)
        return extra_cache[prompt]

    spans = windows(len(texts), first=settings.first_window, largest=settings.largest_window)
    for start, end in spans:
        full = [prompts[i] + texts[i] for i in range(start, end)]
        tokenized = _features.tokenize(model, full, threads=settings.tokenizer_threads)
        truncated[0] += tokenized.truncated
        keys: list[Hashable] | None = None if settings.mix_prompts else list(prompts[start:end])
        for batch in plan_batches(tokenized.lengths, settings.max_batch_tokens, keys=keys, offset=start):
            local = batch.index - start
            if settings.mode == "pad":
                prompt = prompts[int(batch.index[0])]
                info = extra(prompt)
                if settings.mix_prompts:
                    info = {k: v for k, v in info.items() if k != "prompt_length"}
                features = _features.build_features(model, tokenized, local, batch.width, info)
            else:  # sentence-transformers builds the inputs (padding-free where it can); one prompt per batch
                prompt = str(batch.key)
                batch_texts = [texts[int(i)] for i in batch.index]
                features = model.preprocess(batch_texts, prompt=prompt, **({"task": task} if task else {}))
            positions = torch.from_numpy(batch.index)
            if pin:
                features, positions = _features.pin(features), positions.pin_memory()
            yield _Prepared(batch.index, positions, features)


def _threaded(items: Iterator[_Prepared]) -> Iterator[_Prepared]:
    """Run ``items`` in a background thread, at most :data:`PREFETCH` ahead; re-raise its errors here."""
    slots: queue.Queue[object] = queue.Queue(maxsize=PREFETCH)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)

    thread = threading.Thread(target=work, name="promptembed-tokenizer", daemon=True)
    thread.start()
    try:
        while True:
            got = slots.get()
            if got is _DONE:
                return
            if isinstance(got, BaseException):
                raise got
            yield got  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="Embedding", unit="text")
