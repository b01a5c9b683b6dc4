"""PromptEmbeddings: LangChain ``Embeddings`` backed by promptembed's prompt-aware core."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import threading
import warnings
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from promptembed import ConfigError, PromptEmbedder
from promptembed.compat import (
    EncodeOptions,
    Side,
    build_embedder,
    encode_options,
    init_options,
    merge_options,
    plain_ranges,
    side_options,
)

__all__ = ["PromptEmbeddings"]

#: Held while a changed object sets its sides up again, so concurrent calls build once (re-entrant: a build may
#: close an embedder).
_BUILD_LOCK = threading.RLock()
#: Our own fields that are also ``SentenceTransformer(...)`` options (given either way, but not two ways).
_TOKEN_KEYS = ("token", "use_auth_token")
_MODEL_FIELDS = ("device", "dtype", "truncate_dim", "prompts", "trust_remote_code", "allow_pickle", "cache_dir")


class PromptEmbeddings(BaseModel, Embeddings):
    """Sentence-transformers embeddings with the model's own query and document prompts applied.

    A drop-in for langchain-huggingface's ``HuggingFaceEmbeddings``: the same fields with the same meaning
    (``model_name``, ``cache_folder``, ``model_kwargs`` = ``SentenceTransformer(...)`` keyword arguments,
    ``encode_kwargs``, ``query_encode_kwargs``, ``multi_process``, ``show_progress``), plus promptembed's own.
    With no prompt chosen, queries get the model's query prompt and documents its document prompt: the vectors
    equal ``SentenceTransformer.encode_query`` / ``encode_document``. A prompt chosen the stock way
    (``prompt_name``/``prompt`` in ``encode_kwargs``/``query_encode_kwargs``, ``default_prompt_name`` in
    ``model_kwargs``) is honoured exactly as ``HuggingFaceEmbeddings`` honours it. Models are shared with every
    other promptembed object on the same model in the process.

    Example:
        >>> from langchain_promptembed import PromptEmbeddings
        >>> emb = PromptEmbeddings()  # bundled all-MiniLM-L6-v2; or model_name="path/or/hub-id"
        >>> len(emb.embed_query("Which planet is known as the Red Planet?"))
        384
        >>> emb.close()
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, protected_namespaces=())

    # ---- HuggingFaceEmbeddings' fields, with its meaning
    model_name: str | None = Field(default=None, alias="model")
    """Local sentence-transformers folder or hub id; ``None`` is the bundled all-MiniLM-L6-v2 (works offline).
    Also accepted as ``model``."""
    cache_folder: str | None = None
    """Where downloaded hub models are kept."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """``SentenceTransformer(...)`` keyword arguments: ``device``, ``prompts``, ``default_prompt_name``,
    ``revision``, ``trust_remote_code``, ``token``, ``model_kwargs`` (Hugging Face ``from_pretrained``),
    ``processor_kwargs``/``tokenizer_kwargs``, ``config_kwargs``, ``backend``, ``truncate_dim``, ..."""
    encode_kwargs: dict[str, Any] = Field(default_factory=dict)
    """``SentenceTransformer.encode`` keyword arguments for documents (and for queries when
    ``query_encode_kwargs`` is empty): ``prompt_name``, ``prompt``, ``batch_size``, ``normalize_embeddings``,
    ``precision``, ``truncate_dim``, model keywords such as ``task``."""
    query_encode_kwargs: dict[str, Any] = Field(default_factory=dict)
    """``SentenceTransformer.encode`` keyword arguments for queries."""
    multi_process: bool = False
    """Encode with a pool of worker processes (all CUDA devices, else 4 CPU workers), kept for the object's life."""
    show_progress: bool | None = None
    """Show a progress bar; ``None`` (not set): as ``show_progress_bar`` says."""

    # ---- promptembed's own
    device: str | list[str] | None = None
    """``"auto"`` (cuda, then mps, then cpu), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, or a list of devices
    for one worker pool; ``None``: ``model_kwargs["device"]``, else auto."""
    dtype: Literal["auto", "float32", "bfloat16", "float16", "int8"] = "auto"
    """Weight dtype; ``"auto"`` is safe for the model and device (never float16 for Gemma models)."""
    truncate_dim: int | None = None
    """Matryoshka dimension to keep (re-normalized); ``None`` keeps the full vector."""
    normalize: bool | None = None
    """L2-normalize vectors; ``None``: as ``encode_kwargs["normalize_embeddings"]`` says (default False). Given both
    ways with different values, an error."""
    batch_size: int | None = None
    """Texts per forward pass of sentence-transformers' loop; ``None``: ``encode_kwargs["batch_size"]``, else 32."""
    max_batch_tokens: int | None = None
    """Token budget per forward pass of promptembed's engine (texts sorted by length, batches filled up to this many
    padded tokens); ``None``: the device's default (CPU 2048, CUDA 32768)."""
    engine: Literal["auto", "sentence-transformers", "compile"] = "auto"
    """``"auto"``: promptembed's token-budget engine where the model allows it; ``"sentence-transformers"``:
    sentence-transformers' own ``encode`` loop (``batch_size`` texts per pass); ``"compile"``: the token-budget engine
    with the model compiled by ``torch.compile`` (large models on a GPU; the first call compiles). Same vectors."""
    prompts: dict[str, str] | None = None
    """Prompt name -> text entries replacing or extending the model's saved prompts."""
    prompt_name: str | None = None
    """A named task prompt (e.g. ``"Clustering"``, ``"STS"``) used for queries AND documents instead of the
    query/document prompts; for non-retrieval uses."""
    trust_remote_code: bool | None = None
    """Run code shipped with a hub model; only for code you have read or a publisher you trust. ``None``: as
    ``model_kwargs["trust_remote_code"]`` says, else ``False``."""
    show_progress_bar: bool | None = None
    """Progress bar while embedding (``None``: only for 1,000 texts or more, unless ``show_progress`` is set)."""
    allow_pickle: bool = False
    """Allow models whose weights exist only as pickle files (pickle can run code: trusted models only)."""
    cache_dir: str | None = None
    """Folder of promptembed's persistent vector cache (keys cover weights, prompt, dim, dtype and text)."""

    _documents: Side = PrivateAttr()
    _queries: Side = PrivateAttr()
    _built_from: str = PrivateAttr(default="")
    _owner: Any = PrivateAttr(default=None)  # a weak reference to the object that built the sides (copies share them)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_fields(cls, data: Any) -> Any:
        """Name the valid fields when given an unknown one (``extra="forbid"`` alone does not list them)."""
        if isinstance(data, dict):
            valid = [*cls.model_fields, "model"]
            unknown = sorted(str(key) for key in data if key not in valid)
            if unknown:
                raise ValueError(f"Unknown field(s) {unknown} for PromptEmbeddings; valid fields are {valid}")
        return data

    @field_validator("encode_kwargs", "query_encode_kwargs", mode="after")
    @classmethod
    def _ranges_as_lists(cls, value: dict[str, Any]) -> dict[str, Any]:
        """``quantization_ranges`` given as an array (or a list of arrays), kept as lists: they dump to JSON."""
        return dict(plain_ranges(value))

    def __init__(self, **data: Any) -> None:
        """Validate the fields and load (or share) the model."""
        super().__init__(**data)
        if self.model_kwargs.get("backend", "torch") == "ipex":  # as HuggingFaceEmbeddings does
            warnings.warn(
                "`backend='ipex'` is no longer supported; the default `torch` backend will be used instead.",
                UserWarning,
                stacklevel=2,
            )
            self.model_kwargs["backend"] = "torch"
        self._build()

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """Pydantic's repr fields, with a token in ``model_kwargs`` masked (it would show in logs and tracebacks)."""
        for name, value in super().__repr_args__():
            if name == "model_kwargs" and isinstance(value, dict):
                value = {k: "**********" if k in _TOKEN_KEYS and isinstance(v, str) else v for k, v in value.items()}
            yield name, value

    def _settings(self) -> str:
        # the ranges as lists: an array assigned later (emb.encode_kwargs = {...}) is not validated, and numpy's repr
        # of a long array elides the values that changed
        dumped = self.model_dump()
        for name in ("encode_kwargs", "query_encode_kwargs"):
            dumped[name] = plain_ranges(dumped[name])
        return repr(dumped)

    def _build(self) -> None:
        """Set up both sides from the fields as they are now (the model is loaded once and shared)."""
        settings = self._settings()
        theirs, default_prompt_name = init_options(self.model_kwargs, where="model_kwargs")
        if None not in (self.prompt_name, default_prompt_name) and self.prompt_name != default_prompt_name:
            # both name the prompt for queries and documents alike: one option given two ways
            raise ConfigError(
                f"prompt_name={self.prompt_name!r} and model_kwargs default_prompt_name={default_prompt_name!r} "
                "disagree; pass it one way only"
            )
        # None means "not set": PromptEmbeddings(**emb.model_dump()) passes every field, so device=None or
        # trust_remote_code=None must not then disagree with the same option given in model_kwargs
        ours = {
            k: getattr(self, k) for k in _MODEL_FIELDS if k in self.model_fields_set and getattr(self, k) is not None
        }
        if self.cache_folder is not None:
            ours["cache_folder"] = self.cache_folder
        base = merge_options(ours, theirs, where="model_kwargs")
        if self.multi_process and not isinstance(base.get("device"), list):
            base["device"] = _pool_devices()
        base["model"] = self.model_name
        base["normalize"] = self.normalize
        if self.batch_size is not None:
            base["batch_size"] = self.batch_size
        base["max_batch_tokens"] = self.max_batch_tokens
        base["engine"] = self.engine
        ours_bar, theirs_bar = {"show_progress_bar": self.show_progress_bar}, {"show_progress_bar": self.show_progress}
        base["show_progress_bar"] = merge_options(ours_bar, theirs_bar, where="show_progress")["show_progress_bar"]
        doc_enc = self._with_prompt_name(encode_options(self.encode_kwargs, where="encode_kwargs"), "encode_kwargs")
        query_where = "query_encode_kwargs" if self.query_encode_kwargs else "encode_kwargs"
        query_enc = self._with_prompt_name(
            encode_options(self.query_encode_kwargs or self.encode_kwargs, where=query_where), query_where
        )
        built: dict[str, PromptEmbedder] = {}
        sides: list[Side] = []
        try:
            for role, enc, where in (("document", doc_enc, "encode_kwargs"), ("query", query_enc, query_where)):
                options = side_options(base, enc, normalize_default=False, where=where)
                key = repr(sorted(options.items()))
                if key not in built:
                    built[key] = build_embedder(options, where=where)
                sides.append(Side(built[key], role=role, enc=enc, default_prompt_name=default_prompt_name))  # type: ignore[arg-type]
        except BaseException:  # the sides in use stay as they were
            for embedder in built.values():
                embedder.close()
            raise
        self._documents, self._queries = sides
        self._owner = weakref.ref(self)
        self._built_from = settings

    def _sides(self) -> tuple[Side, Side]:
        """The document and query sides, set up again first if a field changed since they were.

        ``HuggingFaceEmbeddings`` reads ``encode_kwargs`` and the rest at each call, so a changed field applies from
        the next call. Replaced sides are not closed here: a copy may still use them, and a dropped one releases
        its model. Concurrent calls build once.
        """
        if self._settings() != self._built_from:
            with _BUILD_LOCK:
                if self._settings() != self._built_from:
                    self._build()
        return self._documents, self._queries

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the fields only: the loaded model stays behind and the copy loads (or shares) its own."""
        return {**super().__getstate__(), "__pydantic_private__": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._build()

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> PromptEmbeddings:
        new = type(self).__new__(type(self))
        new.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        return new

    def _with_prompt_name(self, enc: EncodeOptions, where: str) -> EncodeOptions:
        if self.prompt_name is None:
            return enc
        if enc.chooses_prompt:
            raise ConfigError(
                f"prompt_name={self.prompt_name!r} and a prompt in {where} both choose the prompt; keep one"
            )
        return dataclasses.replace(enc, prompt_name=self.prompt_name)

    @property
    def model(self) -> str | None:
        """The model as given (``model_name``)."""
        return self.model_name

    @property
    def embedder(self) -> PromptEmbedder:
        """The underlying :class:`promptembed.PromptEmbedder` of the document side."""
        return self._sides()[0].embedder

    @property
    def query_embedder(self) -> PromptEmbedder:
        """The underlying :class:`promptembed.PromptEmbedder` of the query side.

        The same object as :attr:`embedder` when the options of both sides agree; otherwise a second object that
        shares the one loaded model.
        """
        return self._sides()[1].embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents with the model's document prompt (or the prompt chosen in ``encode_kwargs``).

        Any iterable of texts is taken, as the stock class takes it (a generator, a pandas Series, a numpy array);
        a single ``str`` is an error that says to wrap it in a list.
        """
        return self._sides()[0].embed(_as_list(texts)).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        """Embed one query with the model's query prompt (or the prompt chosen in ``query_encode_kwargs``)."""
        return self._sides()[1].embed([text])[0].tolist()  # type: ignore[no-any-return]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`, computed in a worker thread so the event loop keeps running."""
        return await asyncio.to_thread(self.embed_documents, _as_list(texts))  # a generator is read here, once

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`, computed in a worker thread so the event loop keeps running."""
        return await asyncio.to_thread(self.embed_query, text)

    def close(self) -> None:
        """Release the shared model (the last user frees its memory).

        A shallow copy (``model_copy()``) that has not set up sides of its own leaves the original's open.
        """
        if self._owner is None or self._owner() is not self:
            return
        self._documents.embedder.close()
        self._queries.embedder.close()

    def __enter__(self) -> PromptEmbeddings:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_list(texts: Any) -> Any:
    """``texts`` as a list when it is another iterable (left as it is otherwise, for the core's error message)."""
    if isinstance(texts, str | bytes | list) or not isinstance(texts, Iterable):
        return texts
    return list(texts)


def _pool_devices() -> list[str]:
    """The worker devices of ``multi_process=True``: sentence-transformers' own default pool."""
    import torch

    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu"] * 4
