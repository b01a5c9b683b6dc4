"""Input and option checks of :class:`promptembed.PromptEmbedder`, and its chunked stream loop."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from promptembed.errors import ConfigError, InputError, PromptError
from promptembed.prompts import check_one

if TYPE_CHECKING:
    from promptembed.embedder import PromptEmbedder
    from promptembed.prompts import Role

_OPTIONS = (
    "model",
    "device",
    "dtype",
    "precision",
    "quantization_ranges",
    "truncate_dim",
    "normalize",
    "batch_size",
    "max_batch_tokens",
    "engine",
    "prompts",
    "revision",
    "trust_remote_code",
    "allow_pickle",
    "show_progress_bar",
    "cache_dir",
    "model_kwargs",
    "tokenizer_kwargs",
    "config_kwargs",
    "token",
    "local_files_only",
    "backend",
    "cache_folder",
    "max_seq_length",
    "forward_kwargs",
)


def check_options(
    unknown: Mapping[str, Any],
    *,
    batch_size: object,
    truncate_dim: object,
    normalize: object,
    trust_remote_code: object,
    show_progress_bar: object,
    max_batch_tokens: object = None,
    engine: object = "auto",
) -> None:
    """Refuse unknown options and values of the wrong type, naming the option and what it accepts."""
    if unknown:
        raise ConfigError(f"Unknown option(s) {sorted(unknown)} for PromptEmbedder; valid options are {list(_OPTIONS)}")
    check_int("batch_size", batch_size, minimum=1)
    check_engine_options(max_batch_tokens, engine)
    if truncate_dim is not None:
        check_int("truncate_dim", truncate_dim, minimum=1)
    for name, flag in (("normalize", normalize), ("trust_remote_code", trust_remote_code)):
        if not isinstance(flag, bool):
            raise ConfigError(f"{name} must be True or False, got {flag!r}")
    if show_progress_bar is not None and not isinstance(show_progress_bar, bool):
        raise ConfigError(f"show_progress_bar must be True, False or None, got {show_progress_bar!r}")


class UnknownForwardKwargsError(ConfigError):
    """Forward-pass keywords the model does not take (the adapters report them as keys of the user's options)."""

    def __init__(self, unknown: list[str], valid: list[str]) -> None:
        super().__init__(
            f"This model's forward pass does not take {unknown}; it takes {valid} (its get_model_kwargs() plus "
            "sentence-transformers' task and processing_kwargs)"
        )
        self.unknown = unknown
        self.valid = valid


def check_forward_kwargs(forward_kwargs: object, model: Any) -> dict[str, Any]:
    """Refuse forward-pass keywords the model does not take, as ``SentenceTransformer.encode`` would at each call."""
    if forward_kwargs is None:
        return {}
    if not isinstance(forward_kwargs, Mapping):
        raise ConfigError(f"forward_kwargs must be a dict of keyword arguments or None, got {forward_kwargs!r}")
    valid = sorted({"task", "processing_kwargs", *model.get_model_kwargs()})
    unknown = sorted(str(k) for k in forward_kwargs if k not in valid)
    if unknown:
        raise UnknownForwardKwargsError(unknown, valid)
    return {str(k): v for k, v in forward_kwargs.items()}


def device_list(device: object) -> list[Any]:
    """``device`` as a non-empty list (one entry, or several for a worker pool)."""
    devices = [device] if isinstance(device, str) else list(device) if isinstance(device, Sequence) else [device]
    if not devices:
        raise ConfigError("device=[] names no device; pass a device string or a list of them")
    return devices


def check_engine_options(max_batch_tokens: object, engine: object) -> None:
    """Refuse a token budget that is not a positive int and an unknown engine, naming what each accepts."""
    if max_batch_tokens is not None:
        check_int("max_batch_tokens", max_batch_tokens, minimum=1)
    if engine not in ("auto", "sentence-transformers", "compile"):
        raise ConfigError(
            f"Unknown engine {engine!r}; use 'auto' (token-budget batches, the default), 'compile' (the same with "
            "the model compiled by torch.compile: for large models on a GPU) or 'sentence-transformers' "
            "(sentence-transformers' own encode loop with batch_size texts per forward pass)"
        )


def check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")


def check_texts(texts: object, offset: int = 0) -> list[str]:
    """Validate texts: a list (or other sequence) of ``str``; name the first bad position and its type."""
    if isinstance(texts, str):
        raise InputError("texts must be a list of str, got a single str; wrap it in a list: [text]")
    if texts is None or isinstance(texts, bytes | bytearray | Mapping) or not isinstance(texts, Sequence):
        raise InputError(f"texts must be a list of str, got {type(texts).__name__}")
    for i, text in enumerate(texts, start=offset):
        problem = check_one(text)
        if problem is not None:
            raise InputError(f"texts[{i}] {problem}")
    return list(texts)


def stream_chunks(
    embedder: PromptEmbedder,
    texts: Iterable[str],
    *,
    role: Role | None,
    prompt_name: str | None,
    chunk_size: int,
    progress: bool,
) -> Iterator[np.ndarray]:
    """The loop behind :meth:`PromptEmbedder.embed_stream` (see there)."""
    check_int("chunk_size", chunk_size, minimum=1)
    if role not in ("query", "document", None):
        raise ConfigError(f"role must be 'query', 'document' or None (with prompt_name=), got {role!r}")
    if role is not None and prompt_name is not None:
        raise PromptError("Pass role= or prompt_name= to embed_stream, not both; use role=None with prompt_name")
    if embedder.precision in ("int8", "uint8") and embedder.quantization_ranges is None:
        raise ConfigError(
            f"embed_stream with precision={embedder.precision!r} needs quantization_ranges=: without them each chunk "
            "is quantized with its own ranges, so vectors of different chunks do not compare (and a chunk of one "
            "text fails); pass PromptEmbedder(..., quantization_ranges=...) from a representative sample"
        )
    if isinstance(texts, str | bytes | bytearray | Mapping):  # iterating would embed characters, bytes or keys
        check_texts(texts)
        raise InputError(f"texts must be an iterable of str, got {type(texts).__name__}")
    if prompt_name is not None:
        embedder.embed([], prompt_name=prompt_name)  # an unknown prompt name fails at the call, not at the first chunk
    try:
        iterator = iter(texts)
    except TypeError:
        raise InputError(f"texts must be an iterable of str, got {type(texts).__name__}") from None
    return _chunks(embedder, iterator, role=role, prompt_name=prompt_name, chunk_size=chunk_size, progress=progress)


def _chunks(
    embedder: PromptEmbedder,
    iterator: Iterator[str],
    *,
    role: Role | None,
    prompt_name: str | None,
    chunk_size: int,
    progress: bool,
) -> Iterator[np.ndarray]:
    from tqdm.auto import tqdm

    done = 0
    with tqdm(desc="embedding", unit="text", disable=not progress) as bar:
        while True:
            chunk, failure = _take(iterator, chunk_size)
            try:
                check_texts(chunk, offset=done)
            except InputError:  # the good texts before the bad one were read from a one-shot source: embed them first
                first_bad = next(i for i, t in enumerate(chunk) if check_one(t) is not None)
                if first_bad:
                    yield _embed_chunk(embedder, chunk[:first_bad], role=role, prompt_name=prompt_name)
                    bar.update(first_bad)
                raise
            if chunk:
                yield _embed_chunk(embedder, chunk, role=role, prompt_name=prompt_name)
                done += len(chunk)
                bar.update(len(chunk))
            if failure is not None:  # the source itself failed: what it gave before is embedded and yielded first
                raise failure
            if not chunk:
                return


def _take(iterator: Iterator[str], n: int) -> tuple[list[str], Exception | None]:
    """Up to ``n`` items, and the exception the source raised while giving them (``None``: it did not)."""
    chunk: list[str] = []
    try:
        for item in itertools.islice(iterator, n):
            chunk.append(item)
    except Exception as exc:  # a cursor or file that fails midway: the items read so far are kept
        return chunk, exc
    return chunk, None


def _embed_chunk(
    embedder: PromptEmbedder, chunk: list[str], *, role: Role | None, prompt_name: str | None
) -> np.ndarray:
    from promptembed._calls import quiet_progress

    with quiet_progress():  # the stream's own bar (progress=) counts the texts; no second bar per chunk
        if role == "query":
            return embedder.embed_queries(chunk)
        if role == "document":
            return embedder.embed_documents(chunk)
        return embedder.embed(chunk, prompt_name=prompt_name)
