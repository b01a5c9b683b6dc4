"""PromptDocumentEmbedder: embeds Documents with the model's document prompt and title slot."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.utils import ComponentDevice
from haystack_integrations.components.embedders.promptembed._options import EmbedderOptions, device_from_dict

from promptembed import PromptEmbedder

__all__ = ["PromptDocumentEmbedder"]


@component
class PromptDocumentEmbedder:
    """Embeds Documents with the model's own document prompt (or a named task prompt).

    Vectors equal ``SentenceTransformer.encode_document`` on the text Haystack embeds: the values of
    ``meta_fields_to_embed`` and the content, joined by ``embedding_separator``. When the model's document
    prompt has a title slot (EmbeddingGemma's ``title: none | text: ``), ``meta["title"]`` fills it.
    A document whose ``content`` is ``None`` is embedded as the empty string (as Haystack's own embedders do).
    Input documents are not modified: new Documents carrying ``embedding`` are returned.

    Example:
        >>> from haystack import Document
        >>> from haystack_integrations.components.embedders.promptembed import PromptDocumentEmbedder
        >>> embedder = PromptDocumentEmbedder()
        >>> docs = embedder.run(documents=[Document(content="Mars is the Red Planet.")])["documents"]
        >>> len(docs[0].embedding)
        384
        >>> embedder.close()
    """

    def __init__(
        self,
        *,
        model: str | None = None,
        device: ComponentDevice | str | None = None,
        dtype: Literal["auto", "float32", "bfloat16", "float16", "int8"] = "auto",
        truncate_dim: int | None = None,
        normalize: bool = True,
        batch_size: int = 32,
        prompts: dict[str, str] | None = None,
        prompt_name: str | None = None,
        trust_remote_code: bool = False,
        progress_bar: bool = True,
        allow_pickle: bool = False,
        cache_dir: str | None = None,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        title_meta_field: str | None = "title",
    ) -> None:
        """Create the component; the model loads in :meth:`warm_up` (or the first :meth:`run`).

        Args:
            model: Local sentence-transformers folder or hub id; ``None`` is the bundled all-MiniLM-L6-v2.
            device: A ``ComponentDevice``, a device string, or ``None`` for auto (cuda, then mps, then cpu).
            dtype: ``"auto"``, ``"float32"``, ``"bfloat16"``, ``"float16"`` (never for Gemma models)
                or ``"int8"`` (the CPU fast path).
            truncate_dim: Matryoshka dimension to keep (re-normalized).
            normalize: L2-normalize vectors.
            batch_size: Texts per forward pass.
            prompts: Prompt name -> text entries replacing or extending the model's saved prompts.
            prompt_name: A named task prompt (e.g. ``"Clustering"``) used instead of the document prompt.
            trust_remote_code: Run code shipped with a hub model (only for code you trust).
            progress_bar: Show a progress bar.
            allow_pickle: Allow models whose weights exist only as pickle files (trusted models only).
            cache_dir: Folder of promptembed's persistent vector cache (``None``: no cache).
            meta_fields_to_embed: Meta fields whose values are embedded before the content.
            embedding_separator: Separator between those values and the content.
            title_meta_field: Meta field that fills the model's title slot (if it has one); ``None`` disables it.
        """
        self._options = EmbedderOptions(
            model=model,
            device=device,
            dtype=dtype,
            truncate_dim=truncate_dim,
            normalize=normalize,
            batch_size=batch_size,
            prompts=prompts,
            prompt_name=prompt_name,
            trust_remote_code=trust_remote_code,
            progress_bar=progress_bar,
            allow_pickle=allow_pickle,
            cache_dir=cache_dir,
        )
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator
        self.title_meta_field = title_meta_field
        self._embedder: PromptEmbedder | None = None

    def warm_up(self) -> None:
        """Load the model once (shared with every promptembed object on the same model)."""
        if self._embedder is None:
            self._embedder = self._options.build()

    def _text(self, doc: Document) -> str:
        values = [str(doc.meta[k]) for k in self.meta_fields_to_embed if doc.meta.get(k) is not None]
        return self.embedding_separator.join([*values, doc.content or ""])

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
                f"PromptDocumentEmbedder expects a list of haystack Documents, got {got}; "
                "to embed a query string use PromptTextEmbedder."
            )
        self.warm_up()
        assert self._embedder is not None
        texts = [self._text(d) for d in documents]
        if self._options.prompt_name is not None:
            vectors = self._embedder.embed(texts, prompt_name=self._options.prompt_name)
        elif self.title_meta_field is not None and self._embedder.has_title_slot:
            titles = [_title(d.meta.get(self.title_meta_field)) for d in documents]
            vectors = self._embedder.embed_documents(texts, titles=titles)
        else:
            vectors = self._embedder.embed_documents(texts)
        return {"documents": [replace(d, embedding=v.tolist()) for d, v in zip(documents, vectors, strict=True)]}

    def close(self) -> None:
        """Release the shared model; a later :meth:`run` loads it again."""
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None

    def to_dict(self) -> dict[str, Any]:
        """Serialize the component (every setting)."""
        return default_to_dict(
            self,
            **self._options.to_init_parameters(),
            meta_fields_to_embed=self.meta_fields_to_embed,
            embedding_separator=self.embedding_separator,
            title_meta_field=self.title_meta_field,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptDocumentEmbedder:
        """Deserialize a component written by :meth:`to_dict`."""
        device_from_dict(data.get("init_parameters", {}))
        return default_from_dict(cls, data)


def _title(value: object) -> str | None:
    return None if value is None else str(value)
