"""PromptTextEmbedder: embeds a query string with the model's query prompt."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from haystack import component, default_from_dict, default_to_dict
from haystack.utils import ComponentDevice, Secret
from haystack_integrations.components.embedders.promptembed._options import (
    EmbedderBase,
    default_token,
    init_params_from_dict,
)

__all__ = ["PromptTextEmbedder"]


@component
class PromptTextEmbedder(EmbedderBase):
    """Embeds a query with the model's own query prompt, or with the prompt you choose.

    A drop-in for sentence-transformers-haystack's ``SentenceTransformersTextEmbedder``: the same parameters with
    the same meaning and serialization (``to_dict`` writes the stock ``init_parameters``, plus promptembed's own
    when they differ from their defaults). With no ``prefix`` and no ``prompt``/``prompt_name`` in
    ``encode_kwargs``, the model's query prompt is applied: the vector equals ``SentenceTransformer.encode_query``.
    A ``prefix`` or an ``encode_kwargs`` prompt is applied exactly as the stock component applies it. Use it with
    :class:`PromptDocumentEmbedder` on the document side.

    Example:
        >>> from haystack_integrations.components.embedders.promptembed import PromptTextEmbedder
        >>> embedder = PromptTextEmbedder(progress_bar=False)  # bundled all-MiniLM-L6-v2; or model="path/or/hub-id"
        >>> len(embedder.run(text="Which planet is known as the Red Planet?")["embedding"])
        384
        >>> embedder.close()
    """

    _role = "query"

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
        max_batch_tokens: int | None = None,
        engine: Literal["auto", "sentence-transformers", "compile"] = "auto",
    ) -> None:
        """Create the component; the model loads in :meth:`warm_up` (or the first :meth:`run`).

        Args:
            model: Local sentence-transformers folder or hub id; ``None`` is the bundled all-MiniLM-L6-v2.
            device: A ``ComponentDevice``, a device string, or ``None`` for auto (cuda, then mps, then cpu).
            token: Hugging Face token as a ``Secret`` (default: ``HF_API_TOKEN``/``HF_TOKEN``); never serialized
                in plain text.
            prefix: Text put before the query. A non-empty prefix is your prompt: the model's query prompt is then
                not added (the stock behaviour).
            suffix: Text put after the query.
            batch_size: Texts per forward pass of sentence-transformers' loop (``engine="sentence-transformers"``).
            progress_bar: Show a progress bar.
            normalize_embeddings: L2-normalize the vector (always, when ``truncate_dim`` is set).
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
            quantization_ranges: For ``"int8"``/``"uint8"`` (required there): shape ``(2, dim)``, minimums then
                maximums of each dimension.
            dtype: Weight dtype (promptembed): ``"auto"``, ``"float32"``, ``"bfloat16"``, ``"float16"`` (never for
                Gemma models) or ``"int8"`` (the CPU fast path).
            prompts: Prompt name -> text entries replacing or extending the model's saved prompts.
            prompt_name: A named task prompt (e.g. ``"STS"``) used instead of the query prompt.
            allow_pickle: Allow models whose weights exist only as pickle files (trusted models only).
            cache_dir: Folder of promptembed's persistent vector cache (``None``: no cache).
            max_batch_tokens: Token budget per forward pass of promptembed's engine (texts sorted by length,
                batches filled up to this many padded tokens); ``None``: the device's default (CPU 2048, CUDA 32768).
            engine: ``"auto"``: promptembed's token-budget engine; ``"sentence-transformers"``: its own ``encode``
                loop (``batch_size`` texts per pass); ``"compile"``: the token-budget engine with the model compiled
                by ``torch.compile`` (large models on a GPU; the first run compiles). Same vectors.

        Raises:
            ValueError: ``precision`` is ``"int8"``/``"uint8"`` without ``quantization_ranges`` (one text has no
                range of its own), or another invalid option.
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
        if precision in ("int8", "uint8") and quantization_ranges is None:
            raise ValueError(
                f"Precision '{precision}' requires `quantization_ranges` computed from a representative sample of "
                "embeddings."
            )

    @component.output_types(embedding=list[float])
    def run(self, text: str) -> dict[str, Any]:
        """Embed one query.

        Args:
            text: The query.

        Returns:
            ``{"embedding": list[float]}`` (ints for a quantized ``precision``).

        Raises:
            TypeError: ``text`` is not a string (a list of Documents belongs in PromptDocumentEmbedder).
        """
        if not isinstance(text, str):
            raise TypeError(
                f"PromptTextEmbedder expects a string as input, got {type(text).__name__}; "
                "to embed a list of Documents use PromptDocumentEmbedder."
            )
        side = self._warm_side()
        return {"embedding": side.embed([self.prefix + text + self.suffix])[0].tolist()}

    @component.output_types(embedding=list[float])
    async def run_async(self, text: str) -> dict[str, Any]:
        """Async :meth:`run` for ``AsyncPipeline``: computed in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.run, text)

    def to_dict(self) -> dict[str, Any]:
        """Serialize: the stock component's ``init_parameters``, plus promptembed's where they are not default.

        Raises:
            ValueError: ``token`` is a token-based Secret (it is never written in plain text).
        """
        return default_to_dict(self, **self._init_parameters())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptTextEmbedder:
        """Deserialize a component written by :meth:`to_dict` or by the stock ``SentenceTransformersTextEmbedder``."""
        return default_from_dict(cls, init_params_from_dict(data))
