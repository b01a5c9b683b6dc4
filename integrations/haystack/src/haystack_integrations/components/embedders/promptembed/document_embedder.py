"""PromptDocumentEmbedder: embeds Documents with the model's document prompt and title slot."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, Literal

from haystack import Document, component, default_from_dict, default_to_dict, logging
from haystack.utils import ComponentDevice, Secret
from haystack_integrations.components.embedders.promptembed._options import (
    EmbedderBase,
    default_token,
    init_params_from_dict,
)

__all__ = ["PromptDocumentEmbedder"]

logger = logging.getLogger(__name__)


@component
class PromptDocumentEmbedder(EmbedderBase):
    """Embeds Documents with the model's own document prompt, or with the prompt you choose.

    A drop-in for sentence-transformers-haystack's ``SentenceTransformersDocumentEmbedder``: the same parameters
    with the same meaning and serialization (``to_dict`` writes the stock ``init_parameters``, plus promptembed's
    own when they differ from their defaults). The text embedded is ``prefix`` + the values of
    ``meta_fields_to_embed`` and the content joined by ``embedding_separator`` + ``suffix``. With no ``prefix`` and
    no ``prompt``/``prompt_name`` in ``encode_kwargs``, the model's document prompt is applied (vectors equal
    ``SentenceTransformer.encode_document``), and when it has a title slot (EmbeddingGemma's
    ``title: none | text: ``) the ``title_meta_field`` fills it. A document whose ``content`` is ``None`` is
    embedded as the empty string. Input documents are not modified: new Documents carrying ``embedding`` are returned.

    Example:
        >>> from haystack import Document
        >>> from haystack_integrations.components.embedders.promptembed import PromptDocumentEmbedder
        >>> embedder = PromptDocumentEmbedder(progress_bar=False)
        >>> docs = embedder.run(documents=[Document(content="Mars is the Red Planet.")])["documents"]
        >>> len(docs[0].embedding)
        384
        >>> embedder.close()
    """

    _role = "document"

    def __init__(
        self,
        *,
        model: str | None = None,
        device: ComponentDevice | str | None = None,
        token: Secret | None = default_token(),  # noqa: B008 - the stock default, an immutable description
        prefix: str = "",
        suffix: str = "",
        batch_size: int = 32,
        progress_bar: bool = True,
        normalize_embeddings: bool = False,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        trust_remote_code: bool = False,
        local_files_only: bool = False,
        truncate_dim: int | None = None,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        precision: Literal["float32", "int8", "uint8", "binary", "ubinary"] = "float32",
        encode_kwargs: dict[str, Any] | None = None,
        backend: Literal["torch", "onnx", "openvino"] = "torch",
        revision: str | None = None,
        quantization_ranges: list[list[float]] | None = None,
        dtype: Literal["auto", "float32", "bfloat16", "float16", "int8"] = "auto",
        prompts: dict[str, str] | None = None,
        prompt_name: str | None = None,
        allow_pickle: bool = False,
        cache_dir: str | None = None,
        title_meta_field: str | None = "title",
        max_batch_tokens: int | None = None,
        engine: Literal["auto", "sentence-transformers", "compile"] = "auto",
    ) -> None:
        """Create the component; the model loads in :meth:`warm_up` (or the first :meth:`run`).

        Args:
            model: Local sentence-transformers folder or hub id; ``None`` is the bundled all-MiniLM-L6-v2.
            device: A ``ComponentDevice``, a device string, or ``None`` for auto (cuda, then mps, then cpu).
            token: Hugging Face token as a ``Secret`` (default: ``HF_API_TOKEN``/``HF_TOKEN``); never serialized
                in plain text.
            prefix: Text put before each document. A non-empty prefix is your prompt: the model's document prompt
                is then not added (the stock behaviour).
            suffix: Text put after each document.
            batch_size: Texts per forward pass of sentence-transformers' loop (``engine="sentence-transformers"``).
            progress_bar: Show a progress bar.
            normalize_embeddings: L2-normalize vectors (always, when ``truncate_dim`` is set).
            meta_fields_to_embed: Meta fields whose values are embedded before the content.
            embedding_separator: Separator between those values and the content.
            trust_remote_code: Run code shipped with a hub model (only for code you trust).
            local_files_only: Do not download; use files on disk only.
            truncate_dim: Matryoshka dimension to keep (re-normalized).
            model_kwargs: Hugging Face ``from_pretrained`` keyword arguments for the model.
            tokenizer_kwargs: Tokenizer keyword arguments (``model_max_length`` also sets the model's limit).
            config_kwargs: ``AutoConfig.from_pretrained`` keyword arguments.
            precision: ``"float32"``, or quantized output ``"int8"``, ``"uint8"``, ``"binary"``, ``"ubinary"``.
            encode_kwargs: ``SentenceTransformer.encode`` keyword arguments (``prompt_name``, ``prompt``,
                ``truncate_dim``, model keywords such as ``task``).
            backend: ``"torch"``, ``"onnx"`` or ``"openvino"``.
            revision: Hub revision (branch, tag or commit).
            quantization_ranges: For ``"int8"``/``"uint8"``: shape ``(2, dim)``, minimums then maximums of each
                dimension; without them each call's own documents give the ranges (a warning says so).
            dtype: Weight dtype (promptembed): ``"auto"``, ``"float32"``, ``"bfloat16"``, ``"float16"`` (never for
                Gemma models) or ``"int8"`` (the CPU fast path).
            prompts: Prompt name -> text entries replacing or extending the model's saved prompts.
            prompt_name: A named task prompt (e.g. ``"Clustering"``) used instead of the document prompt.
            allow_pickle: Allow models whose weights exist only as pickle files (trusted models only).
            cache_dir: Folder of promptembed's persistent vector cache (``None``: no cache).
            title_meta_field: Meta field that fills the model's title slot (if it has one); ``None`` disables it.
            max_batch_tokens: Token budget per forward pass of promptembed's engine (texts sorted by length,
                batches filled up to this many padded tokens); ``None``: the device's default (CPU 2048, CUDA 32768).
            engine: ``"auto"``: promptembed's token-budget engine; ``"sentence-transformers"``: its own ``encode``
                loop (``batch_size`` texts per pass); ``"compile"``: the token-budget engine with the model compiled
                by ``torch.compile`` (large models on a GPU; the first run compiles). Same vectors.
        """
        self._set_parameters(
            model=model,
            device=device,
            token=token,
            prefix=prefix,
            suffix=suffix,
            batch_size=batch_size,
            progress_bar=progress_bar,
            normalize_embeddings=normalize_embeddings,
            trust_remote_code=trust_remote_code,
            local_files_only=local_files_only,
            truncate_dim=truncate_dim,
            model_kwargs=model_kwargs,
            tokenizer_kwargs=tokenizer_kwargs,
            config_kwargs=config_kwargs,
            precision=precision,
            encode_kwargs=encode_kwargs,
            backend=backend,
            revision=revision,
            quantization_ranges=quantization_ranges,
            dtype=dtype,
            prompts=prompts,
            prompt_name=prompt_name,
            allow_pickle=allow_pickle,
            cache_dir=cache_dir,
            max_batch_tokens=max_batch_tokens,
            engine=engine,
        )
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator
        self.title_meta_field = title_meta_field
        if precision in ("int8", "uint8") and quantization_ranges is None:
            logger.warning(
                "Using precision '{precision}' without `quantization_ranges` calibrates the quantization range "
                "from each batch itself, which is degenerate for small batches and inconsistent across batches. "
                "Pass `quantization_ranges` computed from a representative sample of embeddings.",
                precision=precision,
            )

    def _text(self, doc: Document) -> str:
        values = [str(doc.meta[k]) for k in self.meta_fields_to_embed if doc.meta.get(k) is not None]
        return self.prefix + self.embedding_separator.join([*values, doc.content or ""]) + self.suffix

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        """Embed documents.

        Args:
            documents: Documents to embed.

        Returns:
            ``{"documents": [...]}``: copies of the inputs with ``embedding`` set.

        Raises:
            TypeError: Not a list of Documents (a string belongs in PromptTextEmbedder).
        """
        if not isinstance(documents, list) or any(not isinstance(d, Document) for d in documents):
            got = type(documents).__name__
            if isinstance(documents, list):
                bad = next(i for i, d in enumerate(documents) if not isinstance(d, Document))
                got = f"a list whose item {bad} is {type(documents[bad]).__name__}"
            raise TypeError(
                f"PromptDocumentEmbedder expects a list of Documents as input, got {got}; "
                "to embed a query string use PromptTextEmbedder."
            )
        side = self._warm_side()
        texts = [self._text(d) for d in documents]
        titles = None
        if not side.chooses_prompt and self.title_meta_field is not None and side.embedder.has_title_slot:
            titles = [_title(d.meta.get(self.title_meta_field)) for d in documents]
        vectors = side.embed(texts, titles=titles)
        return {"documents": [replace(d, embedding=v.tolist()) for d, v in zip(documents, vectors, strict=True)]}

    @component.output_types(documents=list[Document])
    async def run_async(self, documents: list[Document]) -> dict[str, Any]:
        """Async :meth:`run` for ``AsyncPipeline``: computed in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.run, documents)

    def to_dict(self) -> dict[str, Any]:
        """Serialize: the stock component's ``init_parameters``, plus promptembed's where they are not default.

        Raises:
            ValueError: ``token`` is a token-based Secret (it is never written in plain text).
        """
        params = self._init_parameters()
        params["meta_fields_to_embed"] = self.meta_fields_to_embed
        params["embedding_separator"] = self.embedding_separator
        if self.title_meta_field != "title":
            params["title_meta_field"] = self.title_meta_field
        return default_to_dict(self, **params)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptDocumentEmbedder:
        """Deserialize a component written by :meth:`to_dict` or the stock ``SentenceTransformersDocumentEmbedder``."""
        return default_from_dict(cls, init_params_from_dict(data))


def _title(value: object) -> str | None:
    return None if value is None else str(value)
