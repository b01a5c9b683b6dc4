"""PromptEmbeddings: LangChain ``Embeddings`` backed by promptembed's prompt-aware core."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from promptembed import PromptEmbedder

__all__ = ["PromptEmbeddings"]


class PromptEmbeddings(BaseModel, Embeddings):
    """Sentence-transformers embeddings with the model's own query and document prompts applied.

    Queries get the model's query prompt and documents its document prompt, with nothing but the model
    given: the vectors equal ``SentenceTransformer.encode_query`` / ``encode_document``. Every decision about
    prompts, device, dtype and truncation is made by :class:`promptembed.PromptEmbedder`; models are shared
    with every other promptembed object on the same model in the process.

    Example:
        >>> from langchain_promptembed import PromptEmbeddings
        >>> emb = PromptEmbeddings()  # bundled all-MiniLM-L6-v2; or model="path/or/hub-id"
        >>> len(emb.embed_query("Which planet is known as the Red Planet?"))
        384
        >>> emb.close()
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, protected_namespaces=())

    model: str | None = Field(default=None, alias="model_name")
    """Local sentence-transformers folder or hub id; ``None`` is the bundled all-MiniLM-L6-v2.
    Also accepted as ``model_name``."""
    device: str = "auto"
    """``"auto"`` (cuda, then mps, then cpu), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``."""
    dtype: Literal["auto", "float32", "bfloat16", "float16", "int8"] = "auto"
    """Weight dtype; ``"auto"`` is safe for the model and device (never float16 for Gemma models)."""
    truncate_dim: int | None = None
    """Matryoshka dimension to keep (re-normalized); ``None`` keeps the full vector."""
    normalize: bool = True
    """L2-normalize vectors."""
    batch_size: int = 32
    """Texts per forward pass."""
    prompts: dict[str, str] | None = None
    """Prompt name -> text entries replacing or extending the model's saved prompts."""
    prompt_name: str | None = None
    """A named task prompt (e.g. ``"Clustering"``, ``"STS"``) used for queries AND documents instead of the
    query/document prompts; for non-retrieval uses."""
    trust_remote_code: bool = False
    """Run code shipped with a hub model; only for code you have read or a publisher you trust."""
    show_progress_bar: bool | None = None
    """Progress bar while embedding (``None``: only for 1,000 texts or more)."""
    allow_pickle: bool = False
    """Allow models whose weights exist only as pickle files (pickle can run code: trusted models only)."""
    cache_dir: str | None = None
    """Folder of promptembed's persistent vector cache (keys cover weights, prompt, dim, dtype and text)."""

    _embedder: PromptEmbedder = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_fields(cls, data: Any) -> Any:
        """Name the valid fields when given an unknown one (``extra="forbid"`` alone does not list them)."""
        if isinstance(data, dict):
            valid = [*cls.model_fields, "model_name"]
            unknown = sorted(str(key) for key in data if key not in valid)
            if unknown:
                raise ValueError(f"Unknown field(s) {unknown} for PromptEmbeddings; valid fields are {valid}")
        return data

    def __init__(self, **data: Any) -> None:
        """Validate the fields and load (or share) the model."""
        super().__init__(**data)
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
        if self.prompt_name is not None:
            self._embedder.embed([], prompt_name=self.prompt_name)  # validates the name now, not at first use

    @property
    def embedder(self) -> PromptEmbedder:
        """The underlying :class:`promptembed.PromptEmbedder`."""
        return self._embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents with the model's document prompt (or ``prompt_name``)."""
        if self.prompt_name is not None:
            vectors = self._embedder.embed(texts, prompt_name=self.prompt_name)
        else:
            vectors = self._embedder.embed_documents(texts)
        return vectors.tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        """Embed one query with the model's query prompt (or ``prompt_name``)."""
        if self.prompt_name is not None:
            vectors = self._embedder.embed([text], prompt_name=self.prompt_name)
        else:
            vectors = self._embedder.embed_queries([text])
        return vectors[0].tolist()  # type: ignore[no-any-return]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`, computed in a worker thread so the event loop keeps running."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`, computed in a worker thread so the event loop keeps running."""
        return await asyncio.to_thread(self.embed_query, text)

    def close(self) -> None:
        """Release the shared model (the last user frees its memory)."""
        self._embedder.close()

    def __enter__(self) -> PromptEmbeddings:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
