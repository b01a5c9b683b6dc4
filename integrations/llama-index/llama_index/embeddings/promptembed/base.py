"""PromptEmbedding: a LlamaIndex ``BaseEmbedding`` backed by promptembed's prompt-aware core."""

from __future__ import annotations

import asyncio
import copy
import pickle
import threading
import weakref
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, Literal

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.schema import BaseNode, MetadataMode
from pydantic import Field, PrivateAttr, field_serializer

from promptembed import ConfigError, PromptEmbedder
from promptembed.compat import EncodeOptions, Side, init_options, merge_options, normalize_with_truncation
from promptembed.prompts import fill_title

__all__ = ["PromptEmbedding"]

_TITLE_KEY = "title"
#: While nodes are embedded: the text that stands for a node whose title fills the prompt's title slot (its filled
#: prompt, then its text without the title: the key of callbacks, events and ``embeddings_cache``) -> (its text
#: without the title, the title).
_NODE_TITLES: ContextVar[dict[str, tuple[str, str]] | None] = ContextVar("promptembed_node_titles", default=None)
#: Texts per call into the core when LlamaIndex batches (``get_text_embedding_batch``). The core sorts a call's
#: texts by length before cutting forward passes, so a larger window pads less: calls of 32 pad the benchmark
#: corpus 4.2% more than one call (benchmarks/RESULTS.md).
DEFAULT_EMBED_BATCH_SIZE = 1024
#: Held while a changed embedding sets itself up again, so concurrent calls build once (re-entrant: a build may
#: close an embedder).
_BUILD_LOCK = threading.RLock()
#: ``HuggingFaceEmbedding`` arguments that no longer work there either: any value but the default is an error.
_DEPRECATED = ("tokenizer_name", "pooling", "tokenizer")
#: Our fields that are also ``SentenceTransformer(...)`` options (``HuggingFaceEmbedding(**model_kwargs)``).
_MODEL_FIELDS = (
    "device",
    "truncate_dim",
    "prompts",
    "trust_remote_code",
    "cache_folder",
    "revision",
    "local_files_only",
    "model_kwargs",
    "tokenizer_kwargs",
    "config_kwargs",
    "backend",
)


class PromptEmbedding(BaseEmbedding):
    """Sentence-transformers embeddings with the model's own query and document prompts applied.

    A drop-in for LlamaIndex's ``HuggingFaceEmbedding``: the same arguments with the same meaning
    (``model_name``, ``max_length``, ``query_instruction``, ``text_instruction``, ``normalize``,
    ``embed_batch_size``, ``cache_folder``, ``trust_remote_code``, ``device``, ``parallel_process``,
    ``target_devices``, ``show_progress_bar`` and ``SentenceTransformer(...)`` keyword arguments such as
    ``revision``, ``token`` or ``model_kwargs``), plus promptembed's own. Without an instruction, queries get the
    model's query prompt and LlamaIndex "text" (nodes, documents) its document prompt; a ``query_instruction`` /
    ``text_instruction`` is prepended exactly as ``HuggingFaceEmbedding`` does. When nodes pass through this
    embedding as a transformation (``embed_model(nodes)`` or an ``IngestionPipeline``) and the model's document
    prompt has a title slot (EmbeddingGemma's ``title: none | text: ``), a node's ``metadata["title"]`` fills it
    (and is left out of the metadata text), unless the node lists ``"title"`` in ``excluded_embed_metadata_keys``.

    Example:
        >>> from llama_index.embeddings.promptembed import PromptEmbedding
        >>> emb = PromptEmbedding()  # bundled all-MiniLM-L6-v2; or model_name="path/or/hub-id"
        >>> len(emb.get_query_embedding("Which planet is known as the Red Planet?"))
        384
        >>> emb.close()
    """

    model: str | None = Field(default=None, description="Local folder or hub id; None is the bundled MiniLM.")
    device: str | list[str] | None = Field(
        default=None, description="None/'auto' (cuda, mps, cpu), 'cpu', 'cuda', 'cuda:N', 'mps', or a list (pool)."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16", "int8"] = Field(
        default="auto", description="Weight dtype."
    )
    max_length: int | None = Field(default=None, description="Max tokens per input; None: the model's own.")
    query_instruction: str | None = Field(default=None, description="Raw prefix for queries (else the model's).")
    text_instruction: str | None = Field(default=None, description="Raw prefix for texts (else the model's).")
    truncate_dim: int | None = Field(default=None, description="Matryoshka dimension to keep (re-normalized).")
    normalize: bool = Field(default=True, description="L2-normalize vectors.")
    batch_size: int = Field(default=32, description="Texts per forward pass of sentence-transformers' loop.")
    max_batch_tokens: int | None = Field(
        default=None,
        description="Token budget per forward pass of promptembed's engine; None: the device's default.",
    )
    engine: Literal["auto", "sentence-transformers", "compile"] = Field(
        default="auto",
        description="'auto': promptembed's token-budget engine; 'sentence-transformers': its encode loop; 'compile': "
        "the token-budget engine with the model compiled by torch.compile (large models on a GPU).",
    )
    prompts: dict[str, str] | None = Field(default=None, description="Prompt overrides/additions by name.")
    prompt_name: str | None = Field(
        default=None, description="Named task prompt used for queries and texts alike (e.g. 'Clustering')."
    )
    trust_remote_code: bool = Field(default=False, description="Run code shipped with a hub model.")
    show_progress_bar: bool | None = Field(default=None, description="Progress bar (None: for 1,000+ texts).")
    allow_pickle: bool = Field(default=False, description="Allow pickle-only weights (trusted models only).")
    cache_dir: str | None = Field(default=None, description="Folder of promptembed's persistent vector cache.")
    cache_folder: str | None = Field(default=None, description="Where downloaded hub models are kept.")
    parallel_process: bool = Field(default=False, description="Encode with a pool of worker processes.")
    target_devices: list[str] | None = Field(default=None, description="Devices of that pool.")
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit).")
    local_files_only: bool = Field(default=False, description="Use files on disk only, never download.")
    model_kwargs: dict[str, Any] | None = Field(default=None, description="Hugging Face from_pretrained kwargs.")
    tokenizer_kwargs: dict[str, Any] | None = Field(default=None, description="Tokenizer (processor) kwargs.")
    config_kwargs: dict[str, Any] | None = Field(default=None, description="AutoConfig.from_pretrained kwargs.")
    backend: Literal["torch", "onnx", "openvino"] = Field(default="torch", description="Model backend.")

    @field_serializer("model_kwargs", "config_kwargs")
    def _dtypes_by_name(self, kwargs: dict[str, Any] | None) -> dict[str, Any] | None:
        """A torch dtype (``torch_dtype=torch.bfloat16``) written by name, which Hugging Face loads the same way.

        So ``to_json()`` works, and ``from_dict()`` / ``from_json()`` give back the same weights and vectors.
        """
        if kwargs is None:
            return None
        return {k: _dtype_name(v) for k, v in kwargs.items()}

    _embedder: PromptEmbedder = PrivateAttr()
    _queries: Side = PrivateAttr()
    _texts: Side = PrivateAttr()
    _token: str | bool | None = PrivateAttr(default=None)
    _owner: Any = PrivateAttr(default=None)  # a weak reference to the object that built the embedder
    _built_from: str = PrivateAttr(default="")  # the settings the embedder and sides were built from

    def __init__(
        self,
        *,
        model: str | None = None,
        model_name: str | None = None,
        batch_size: int = 32,
        embed_batch_size: int | None = None,
        token: str | bool | None = None,
        **kwargs: Any,
    ) -> None:
        """Validate the settings and load (or share) the model; ``model_name`` is an alias of ``model``.

        ``batch_size`` is texts per forward pass; ``embed_batch_size`` is texts per call into the core
        (default :data:`DEFAULT_EMBED_BATCH_SIZE`), which length-sorts them before batching. ``token`` (a Hugging
        Face token) is kept out of ``to_dict()``. Other ``SentenceTransformer(...)`` keyword arguments are accepted
        as ``HuggingFaceEmbedding`` accepts them.
        """
        for name in _DEPRECATED:
            if kwargs.pop(name, "deprecated") != "deprecated":
                raise ValueError(f"{name} is deprecated. Please remove it from the arguments.")
        if model is not None and model_name is not None and model != model_name:
            raise ValueError(f"Pass model= or model_name=, not two different models ({model!r} vs {model_name!r})")
        chosen = model if model is not None else model_name
        fields = set(type(self).model_fields)
        st_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k not in fields}
        if token is not None:
            st_kwargs["token"] = token
        try:
            theirs, _unused_default_prompt_name = init_options(st_kwargs, where="PromptEmbedding keyword arguments")
        except ConfigError as exc:
            raise ConfigError(f"{exc}; PromptEmbedding's own fields are {sorted(fields)}") from None
        super().__init__(
            model=chosen,
            model_name=chosen or "",
            batch_size=batch_size,
            embed_batch_size=DEFAULT_EMBED_BATCH_SIZE if embed_batch_size is None else embed_batch_size,
            **merge_options(kwargs, {k: v for k, v in theirs.items() if k != "token"}, where="keyword arguments"),
        )
        self._token = theirs.get("token")
        self._build()

    def _settings(self) -> str:
        return repr([getattr(self, name) for name in _BUILD_FIELDS])

    def _build(self) -> None:
        """Set up the embedder and both sides from the fields as they are now (the model is loaded once and shared).

        If that fails (a changed field with a bad value), the embedder and sides in use stay as they were.
        """
        options: dict[str, Any] = {k: getattr(self, k) for k in _MODEL_FIELDS}
        if self.device is None:
            options["device"] = "auto"
        if self.parallel_process and not isinstance(self.device, list):
            options["device"] = list(self.target_devices) if self.target_devices else _pool_devices()
        embedder = PromptEmbedder(
            **options,
            model=self.model,
            dtype=self.dtype,
            normalize=normalize_with_truncation(self.normalize, self.truncate_dim),
            batch_size=self.batch_size,
            max_batch_tokens=self.max_batch_tokens,
            engine=self.engine,
            show_progress_bar=self.show_progress_bar,
            allow_pickle=self.allow_pickle,
            cache_dir=self.cache_dir,
            token=self._token,
            max_seq_length=self.max_length,
        )
        try:
            queries = Side(embedder, role="query", enc=self._enc(self.query_instruction, "query"))
            texts = Side(embedder, role="document", enc=self._enc(self.text_instruction, "text"))
        except BaseException:
            embedder.close()
            raise
        self._embedder, self._queries, self._texts = embedder, queries, texts
        self._owner = weakref.ref(self)
        self.model_name = embedder.model_source  # the resolved folder or hub id
        if self.model is not None:  # the same, so that to_dict()/from_dict() and pickle give it back
            self.model = self.model_name
        self._built_from = self._settings()

    def _follow_model_name(self) -> None:
        """A ``model_name`` set since the build (``BaseEmbedding``'s field) names the model: ``model`` follows it."""
        built: PromptEmbedder | None = getattr(self, "_embedder", None)
        if built is not None and self.model_name != built.model_source:
            self.model = self.model_name

    def _current(self) -> PromptEmbedding:
        """``self``, with the embedder and sides set up again first if a field changed since they were.

        ``HuggingFaceEmbedding`` reads ``normalize`` at each call; here every field (in place or through
        ``model_copy(update=...)``) applies from the next call, so the vectors follow what ``to_dict()`` says.
        Concurrent calls build once. Replaced embedders are not closed here: a copy may still use them, and a
        dropped one releases its model.
        """
        self._follow_model_name()
        if self._settings() != self._built_from:
            with _BUILD_LOCK:
                if self._settings() != self._built_from:
                    self._build()
        return self

    def to_dict(self, **kwargs: Any) -> dict[str, Any]:
        """The fields as ``BaseComponent`` writes them (a ``model_name`` changed since the build named as the model).

        With the bundled default model, ``model_name`` is written as ``None``, not as the folder it was loaded from
        (inside this environment's site-packages): the saved settings load the default wherever they are read, as
        LangChain's ``model_dump()`` and Haystack's ``to_dict()`` of ours do.
        """
        self._follow_model_name()
        data = super().to_dict(**kwargs)
        if self.model is None:
            data["model_name"] = None
        return data

    def _enc(self, instruction: str | None, side: str) -> EncodeOptions:
        if instruction is not None and self.prompt_name is not None:
            raise ConfigError(f"prompt_name={self.prompt_name!r} and {side}_instruction both choose the prompt")
        return EncodeOptions(prompt=instruction, prompt_name=self.prompt_name)

    @classmethod
    def class_name(cls) -> str:
        """Name used in LlamaIndex serialization."""
        return "PromptEmbedding"

    @property
    def embedder(self) -> PromptEmbedder:
        """The underlying :class:`promptembed.PromptEmbedder`."""
        return self._current()._embedder

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._current()._queries.embed([query])[0].tolist()  # type: ignore[no-any-return]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        titled = _NODE_TITLES.get()
        side = self._current()._texts
        if not titled:
            return side.embed(texts).tolist()  # type: ignore[no-any-return]
        found = [titled.get(text) for text in texts]
        return side.embed(  # type: ignore[no-any-return]
            [f[0] if f else t for f, t in zip(found, texts, strict=True)], titles=[f[1] if f else None for f in found]
        ).tolist()

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

    def _node_texts(self, nodes: Sequence[BaseNode]) -> tuple[list[str], dict[str, tuple[str, str]] | None]:
        """The text that stands for each node in ``get_text_embedding_batch``, and the titled ones among them.

        A node without a title (or a model without a title slot) stands as ``BaseEmbedding`` shows it. A node whose
        title fills the slot stands as the model reads it: the filled prompt, then its text without the title line,
        so its cache key and callback text name exactly what was embedded. ``None`` for the second when a text stands
        for two different nodes (then the text alone cannot tell them apart).
        """
        self._current()
        texts = [node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]
        titled: dict[str, tuple[str, str]] = {}
        if self._texts.chooses_prompt or not self._embedder.has_title_slot:
            return texts, titled
        plain: set[str] = set()
        for i, node in enumerate(nodes):
            title = _node_title(node)
            if title is None:
                plain.add(texts[i])
                continue
            shown = _without_title(node).get_content(metadata_mode=MetadataMode.EMBED)
            texts[i] = fill_title(self._embedder.document_prompt, title) + shown
            if titled.setdefault(texts[i], (shown, title)) != (shown, title):
                return texts, None
        return texts, (None if plain & titled.keys() else titled)

    def _embed_nodes(self, nodes: Sequence[BaseNode]) -> Sequence[BaseNode]:
        """Embed nodes directly (when their shown texts collide): right title slots, but no callbacks or cache."""
        texts: list[str] = []
        titles: list[str | None] = []
        for node in nodes:
            title = _node_title(node)
            if title is not None:
                node = _without_title(node)
            texts.append(node.get_content(metadata_mode=MetadataMode.EMBED))
            titles.append(title)
        for node, vector in zip(nodes, self._current()._texts.embed(texts, titles=titles).tolist(), strict=True):
            node.embedding = vector
        return nodes

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Embed nodes (as a transformation), filling the title slot from ``metadata["title"]``.

        As ``BaseEmbedding`` does: through :meth:`get_text_embedding_batch`, so callbacks, instrumentation events,
        ``embeddings_cache`` and ``show_progress`` work as with the stock embeddings.
        """
        texts, titled = self._node_texts(nodes)
        if titled is None:
            return self._embed_nodes(nodes)
        token = _NODE_TITLES.set(titled)
        try:
            vectors = self.get_text_embedding_batch(texts, **kwargs)
        finally:
            _NODE_TITLES.reset(token)
        for node, vector in zip(nodes, vectors, strict=True):
            node.embedding = vector
        return nodes

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Async :meth:`__call__` (through :meth:`aget_text_embedding_batch`; the model runs in worker threads)."""
        texts, titled = await asyncio.to_thread(self._node_texts, nodes)  # may load a changed model: not on the loop
        if titled is None:
            return await asyncio.to_thread(self._embed_nodes, nodes)
        token = _NODE_TITLES.set(titled)
        try:
            vectors = await self.aget_text_embedding_batch(texts, **kwargs)
        finally:
            _NODE_TITLES.reset(token)
        for node, vector in zip(nodes, vectors, strict=True):
            node.embedding = vector
        return nodes

    def _copy_fields(self) -> dict[str, Any]:
        """The fields a copy is built from: ``model_name`` left out when ``model`` is the bundled default."""
        self._follow_model_name()
        fields = dict(self.__dict__)
        if fields.get("model") is None:
            fields.pop("model_name", None)
        return fields

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the fields (and the token): the copy loads (or shares) the model; nothing of ``self`` changes.

        As ``BaseComponent`` does, a field that cannot be pickled (a callback handler holding a lambda, a rate
        limiter's lock) is left out.
        """
        fields: dict[str, Any] = {}
        for key, value in self._copy_fields().items():
            try:
                pickle.dumps(value)
            except Exception:  # any pickling failure: leave the field out
                continue
            fields[key] = value
        return {"__dict__": fields, "token": self._token}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state["__dict__"], token=state.get("token"))  # type: ignore[misc]

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> PromptEmbedding:
        """A copy with the same fields and token that shares the loaded model; ``self`` is not changed.

        A field that cannot be deep-copied (a rate limiter's lock) is shared with the copy.
        """
        fields: dict[str, Any] = {}
        for key, value in self._copy_fields().items():
            try:
                fields[key] = copy.deepcopy(value, memo)
            except Exception:  # any copying failure: share the object
                fields[key] = value
        return type(self)(**fields, token=self._token)

    def close(self) -> None:
        """Release the shared model (the last user frees its memory).

        A shallow copy (``model_copy()``) shares the original's embedder: closing it leaves that open.
        """
        if self._owner is not None and self._owner() is self:
            self._embedder.close()


#: The fields the embedder and sides are built from (``BaseEmbedding``'s own, such as ``embed_batch_size`` or
#: ``callback_manager``, are read at each call by ``BaseEmbedding`` itself).
_BUILD_FIELDS = tuple(name for name in PromptEmbedding.model_fields if name not in BaseEmbedding.model_fields)


def _dtype_name(value: Any) -> Any:
    """``"bfloat16"`` for ``torch.bfloat16`` (without importing torch); any other value as it is."""
    if type(value).__module__ == "torch" and type(value).__name__ == "dtype":
        return str(value).removeprefix("torch.")
    return value


def _node_title(node: BaseNode) -> str | None:
    """The title that fills the slot: a non-empty ``metadata["title"]`` the node does not exclude from embedding."""
    title = node.metadata.get(_TITLE_KEY)
    if not (isinstance(title, str) and title) or _TITLE_KEY in node.excluded_embed_metadata_keys:
        return None
    return title


def _without_title(node: BaseNode) -> BaseNode:
    """A copy of the node whose embedded metadata text leaves the title out (it goes into the prompt instead)."""
    return node.model_copy(update={"excluded_embed_metadata_keys": [*node.excluded_embed_metadata_keys, _TITLE_KEY]})


def _pool_devices() -> list[str]:
    """The worker devices of ``parallel_process=True`` without ``target_devices``: sentence-transformers' default."""
    import torch

    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu"] * 4
