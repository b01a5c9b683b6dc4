"""PromptEmbedding: a LlamaIndex ``BaseEmbedding`` backed by promptembed's prompt-aware core."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.schema import BaseNode, MetadataMode
from pydantic import Field, PrivateAttr

from promptembed import PromptEmbedder

__all__ = ["PromptEmbedding"]

_TITLE_KEY = "title"
#: Texts per call into the core when LlamaIndex batches (``get_text_embedding_batch``). The core sorts a call's
#: texts by length before cutting forward passes of ``batch_size``, so a larger window pads less: calls of 32
#: pad the benchmark corpus 4.2% more than one call (benchmarks/RESULTS.md).
DEFAULT_EMBED_BATCH_SIZE = 1024


class PromptEmbedding(BaseEmbedding):
    """Sentence-transformers embeddings with the model's own query and document prompts applied.

    Queries get the model's query prompt; LlamaIndex "text" (nodes, documents) gets the model's document
    prompt. When nodes pass through this embedding as a transformation (``embed_model(nodes)`` or an
    ``IngestionPipeline``) and the model's document prompt has a title slot (EmbeddingGemma's
    ``title: none | text: ``), a node's ``metadata["title"]`` fills it (and is left out of the metadata text).
    Every decision about prompts, device, dtype and truncation is made by :class:`promptembed.PromptEmbedder`.

    Example:
        >>> from llama_index.embeddings.promptembed import PromptEmbedding
        >>> emb = PromptEmbedding()  # bundled all-MiniLM-L6-v2; or model="path/or/hub-id"
        >>> len(emb.get_query_embedding("Which planet is known as the Red Planet?"))
        384
        >>> emb.close()
    """

    model: str | None = Field(default=None, description="Local folder or hub id; None is the bundled MiniLM.")
    device: str = Field(default="auto", description="'auto' (cuda, mps, cpu), 'cpu', 'cuda', 'cuda:N' or 'mps'.")
    dtype: Literal["auto", "float32", "bfloat16", "float16", "int8"] = Field(
        default="auto", description="Weight dtype."
    )
    truncate_dim: int | None = Field(default=None, description="Matryoshka dimension to keep (re-normalized).")
    normalize: bool = Field(default=True, description="L2-normalize vectors.")
    batch_size: int = Field(default=32, description="Texts per forward pass.")
    prompts: dict[str, str] | None = Field(default=None, description="Prompt overrides/additions by name.")
    prompt_name: str | None = Field(
        default=None, description="Named task prompt used for queries and texts alike (e.g. 'Clustering')."
    )
    trust_remote_code: bool = Field(default=False, description="Run code shipped with a hub model.")
    show_progress_bar: bool | None = Field(default=None, description="Progress bar while encoding.")
    allow_pickle: bool = Field(default=False, description="Allow pickle-only weights (trusted models only).")
    cache_dir: str | None = Field(default=None, description="Folder of promptembed's persistent vector cache.")

    _embedder: PromptEmbedder = PrivateAttr()

    def __init__(
        self,
        *,
        model: str | None = None,
        model_name: str | None = None,
        batch_size: int = 32,
        embed_batch_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Validate the settings and load (or share) the model; ``model_name`` is an alias of ``model``.

        ``batch_size`` is texts per forward pass; ``embed_batch_size`` is texts per call into the core
        (default :data:`DEFAULT_EMBED_BATCH_SIZE`), which length-sorts them before batching.
        """
        if model is not None and model_name is not None and model != model_name:
            raise ValueError(f"Pass model= or model_name=, not two different models ({model!r} vs {model_name!r})")
        chosen = model if model is not None else model_name
        super().__init__(
            model=chosen,
            model_name=chosen or "",
            batch_size=batch_size,
            embed_batch_size=embed_batch_size or DEFAULT_EMBED_BATCH_SIZE,
            **kwargs,
        )
        self._embedder = PromptEmbedder(
            model=self.model,
            device=self.device,
            dtype=self.dtype,
            truncate_dim=self.truncate_dim,
            normalize=self.normalize,
            batch_size=self.batch_size,
            prompts=self.prompts,
            trust_remote_code=self.trust_remote_code,
            show_progress_bar=self.show_progress_bar,
            allow_pickle=self.allow_pickle,
            cache_dir=self.cache_dir,
        )
        self.model_name = self._embedder.model_source  # the resolved folder or hub id
        if self.prompt_name is not None:
            self._embedder.embed([], prompt_name=self.prompt_name)  # validate the name now

    @classmethod
    def class_name(cls) -> str:
        """Name used in LlamaIndex serialization."""
        return "PromptEmbedding"

    @property
    def embedder(self) -> PromptEmbedder:
        """The underlying :class:`promptembed.PromptEmbedder`."""
        return self._embedder

    def _queries(self, texts: list[str]) -> list[Embedding]:
        if self.prompt_name is not None:
            return self._embedder.embed(texts, prompt_name=self.prompt_name).tolist()  # type: ignore[no-any-return]
        return self._embedder.embed_queries(texts).tolist()  # type: ignore[no-any-return]

    def _texts(self, texts: list[str], titles: list[str | None] | None = None) -> list[Embedding]:
        if self.prompt_name is not None:
            return self._embedder.embed(texts, prompt_name=self.prompt_name).tolist()  # type: ignore[no-any-return]
        return self._embedder.embed_documents(texts, titles=titles).tolist()  # type: ignore[no-any-return]

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._queries([query])[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._texts([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._texts(texts)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

    def _embed_nodes(self, nodes: Sequence[BaseNode]) -> Sequence[BaseNode]:
        use_titles = self.prompt_name is None and self._embedder.has_title_slot
        texts: list[str] = []
        titles: list[str | None] = []
        for node in nodes:
            title = node.metadata.get(_TITLE_KEY) if use_titles else None
            if isinstance(title, str) and title:
                shown = node.model_copy(
                    update={"excluded_embed_metadata_keys": [*node.excluded_embed_metadata_keys, _TITLE_KEY]}
                )
                texts.append(shown.get_content(metadata_mode=MetadataMode.EMBED))
                titles.append(title)
            else:
                texts.append(node.get_content(metadata_mode=MetadataMode.EMBED))
                titles.append(None)
        vectors = self._texts(texts, titles if use_titles else None)
        for node, vector in zip(nodes, vectors, strict=True):
            node.embedding = vector
        return nodes

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Embed nodes (as a transformation), filling the title slot from ``metadata["title"]``."""
        return self._embed_nodes(nodes)

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Async :meth:`__call__`, in a worker thread."""
        return await asyncio.to_thread(self._embed_nodes, nodes)

    def close(self) -> None:
        """Release the shared model (the last user frees its memory)."""
        self._embedder.close()
