"""PromptTextEmbedder: embeds a query string with the model's query prompt."""

from __future__ import annotations

from typing import Any, Literal

from haystack import component, default_from_dict, default_to_dict
from haystack.utils import ComponentDevice
from haystack_integrations.components.embedders.promptembed._options import EmbedderOptions, device_from_dict

from promptembed import PromptEmbedder

__all__ = ["PromptTextEmbedder"]


@component
class PromptTextEmbedder:
    """Embeds a query with the model's own query prompt (or a named task prompt).

    The vector equals ``SentenceTransformer.encode_query`` on the same model; use it with
    :class:`PromptDocumentEmbedder` on the document side. Every decision about prompts, device, dtype and
    truncation is made by :class:`promptembed.PromptEmbedder`.

    Example:
        >>> from haystack_integrations.components.embedders.promptembed import PromptTextEmbedder
        >>> embedder = PromptTextEmbedder()  # bundled all-MiniLM-L6-v2; or model="path/or/hub-id"
        >>> len(embedder.run(text="Which planet is known as the Red Planet?")["embedding"])
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
        progress_bar: bool = False,
        allow_pickle: bool = False,
        cache_dir: str | None = None,
    ) -> None:
        """Create the component; the model loads in :meth:`warm_up` (or the first :meth:`run`).

        Args:
            model: Local sentence-transformers folder or hub id; ``None`` is the bundled all-MiniLM-L6-v2.
            device: A ``ComponentDevice``, a device string, or ``None`` for auto (cuda, then mps, then cpu).
            dtype: ``"auto"``, ``"float32"``, ``"bfloat16"``, ``"float16"`` (never for Gemma models)
                or ``"int8"`` (the CPU fast path).
            truncate_dim: Matryoshka dimension to keep (re-normalized).
            normalize: L2-normalize the vector.
            batch_size: Texts per forward pass.
            prompts: Prompt name -> text entries replacing or extending the model's saved prompts.
            prompt_name: A named task prompt (e.g. ``"STS"``) used instead of the query prompt.
            trust_remote_code: Run code shipped with a hub model (only for code you trust).
            progress_bar: Show a progress bar.
            allow_pickle: Allow models whose weights exist only as pickle files (trusted models only).
            cache_dir: Folder of promptembed's persistent vector cache (``None``: no cache).
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
        self._embedder: PromptEmbedder | None = None

    def warm_up(self) -> None:
        """Load the model once (shared with every promptembed object on the same model)."""
        if self._embedder is None:
            self._embedder = self._options.build()

    @component.output_types(embedding=list[float])
    def run(self, text: str) -> dict[str, Any]:
        """Embed one query.

        Args:
            text: The query.

        Returns:
            ``{"embedding": list[float]}``.

        Raises:
            TypeError: ``text`` is not a string (a list of Documents belongs in PromptDocumentEmbedder).
        """
        if not isinstance(text, str):
            raise TypeError(
                f"PromptTextEmbedder expects a str, got {type(text).__name__}; "
                "to embed a list of Documents use PromptDocumentEmbedder."
            )
        self.warm_up()
        assert self._embedder is not None
        if self._options.prompt_name is not None:
            vector = self._embedder.embed([text], prompt_name=self._options.prompt_name)[0]
        else:
            vector = self._embedder.embed_queries([text])[0]
        return {"embedding": vector.tolist()}

    def close(self) -> None:
        """Release the shared model; a later :meth:`run` loads it again."""
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None

    def to_dict(self) -> dict[str, Any]:
        """Serialize the component (every setting)."""
        return default_to_dict(self, **self._options.to_init_parameters())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptTextEmbedder:
        """Deserialize a component written by :meth:`to_dict`."""
        device_from_dict(data.get("init_parameters", {}))
        return default_from_dict(cls, data)
