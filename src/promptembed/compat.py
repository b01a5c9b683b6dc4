"""The stock framework embedders' options, translated once for every adapter.

LangChain's ``HuggingFaceEmbeddings``, LlamaIndex's ``HuggingFaceEmbedding`` and Haystack's
``SentenceTransformers*Embedder`` take sentence-transformers' own option sets: the keyword arguments of the
``SentenceTransformer(...)`` constructor (LangChain ``model_kwargs``, LlamaIndex ``**model_kwargs``) and of
``SentenceTransformer.encode(...)`` (``encode_kwargs``, ``query_encode_kwargs``). This module turns both into
:class:`~promptembed.PromptEmbedder` options, with the meaning sentence-transformers gives them, and
:class:`Side` applies the prompt rule every adapter shares: a prompt the user chose (``prompt``/``prompt_name``,
a default prompt name, a raw instruction) is honoured exactly as ``SentenceTransformer.encode`` honours it;
without one, the model's own query or document prompt applies.

Example:
    >>> from promptembed.compat import encode_options, init_options
    >>> init_options({"device": "cpu", "model_kwargs": {"attn_implementation": "sdpa"}}, where="model_kwargs")
    ({'device': 'cpu', 'model_kwargs': {'attn_implementation': 'sdpa'}}, None)
    >>> encode_options({"prompt_name": "query", "batch_size": 8}, where="encode_kwargs").prompt_name
    'query'
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from promptembed._inputs import UnknownForwardKwargsError, check_engine_options
from promptembed._quantize import PRECISIONS, check_precision
from promptembed.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from promptembed.embedder import PromptEmbedder

__all__ = [
    "PRECISIONS",
    "EncodeOptions",
    "Side",
    "build_embedder",
    "check_engine_options",
    "check_precision",
    "encode_options",
    "init_options",
    "merge_options",
    "normalize_with_truncation",
    "plain_ranges",
    "side_options",
]

#: ``SentenceTransformer(...)`` keyword -> PromptEmbedder option of the same meaning.
_INIT_TO_CORE = {
    "device": "device",
    "prompts": "prompts",
    "cache_folder": "cache_folder",
    "trust_remote_code": "trust_remote_code",
    "revision": "revision",
    "local_files_only": "local_files_only",
    "token": "token",
    "use_auth_token": "token",
    "model_kwargs": "model_kwargs",
    "processor_kwargs": "tokenizer_kwargs",
    "tokenizer_kwargs": "tokenizer_kwargs",
    "config_kwargs": "config_kwargs",
    "backend": "backend",
    "truncate_dim": "truncate_dim",
}
#: Accepted because sentence-transformers accepts them, but they do not change a vector.
_INIT_NO_EFFECT = ("similarity_fn_name", "model_card_data")
_INIT_VALID = sorted([*_INIT_TO_CORE, *_INIT_NO_EFFECT, "default_prompt_name"])

#: ``encode(...)`` keywords handled by promptembed; anything else goes to the model's forward pass (``task``, ...).
_ENCODE_KNOWN = (
    "prompt_name",
    "prompt",
    "batch_size",
    "normalize_embeddings",
    "precision",
    "quantization_ranges",  # not an encode() keyword: promptembed's fixed int8/uint8 ranges (as Haystack takes them)
    "truncate_dim",
    "show_progress_bar",
)
#: Output-type switches: a framework adapter returns lists of floats either way, so they change nothing.
_ENCODE_NO_EFFECT = ("convert_to_numpy", "convert_to_tensor")
_ENCODE_REFUSED = {
    "output_value": "promptembed returns sentence embeddings only",
    "device": "pass the device when the model is built (device=, or the model options)",
    "pool": "pass a list of devices when the model is built instead",
    "chunk_size": "pass a list of devices when the model is built instead",
    "sentences": "texts are passed by the framework",
    "inputs": "texts are passed by the framework",
}


def init_options(kwargs: Mapping[str, Any] | None, *, where: str) -> tuple[dict[str, Any], str | None]:
    """Translate ``SentenceTransformer(...)`` keyword arguments into PromptEmbedder options.

    Args:
        kwargs: The keyword arguments, as a user passes them to the stock embedder.
        where: How the user passed them (for error messages), e.g. ``"model_kwargs"``.

    Returns:
        The PromptEmbedder options, and the ``default_prompt_name`` if one was given (a prompt the user chose).

    Raises:
        ConfigError: A keyword sentence-transformers does not take, or ``modules`` (promptembed loads by name).
    """
    if kwargs is None:
        return {}, None
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f"{where} must be a dict of SentenceTransformer(...) keyword arguments, got {kwargs!r}")
    out: dict[str, Any] = {}
    default_prompt_name: str | None = None
    for key, value in kwargs.items():
        if key in _INIT_TO_CORE:
            target = _INIT_TO_CORE[key]
            if target in out and out[target] != value:
                raise ConfigError(f"{where} gives {target} twice with different values; keep one")
            out[target] = value
        elif key == "default_prompt_name":
            default_prompt_name = value
        elif key in _INIT_NO_EFFECT:
            continue
        elif key == "modules":
            raise ConfigError(f"{where}['modules'] is not supported: promptembed loads a model by name or folder")
        else:
            raise ConfigError(f"Unknown SentenceTransformer option {key!r} in {where}; valid options are {_INIT_VALID}")
    return out, default_prompt_name


@dataclass(frozen=True)
class EncodeOptions:
    """``SentenceTransformer.encode`` keyword arguments, sorted into what each one decides."""

    prompt: str | None = None
    prompt_name: str | None = None
    batch_size: int | None = None
    normalize_embeddings: bool | None = None
    precision: str | None = None
    quantization_ranges: Any = None
    truncate_dim: int | None = None
    show_progress_bar: bool | None = None
    forward_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def chooses_prompt(self) -> bool:
        """Whether these options choose the prompt (then it is honoured as sentence-transformers does)."""
        return self.prompt is not None or self.prompt_name is not None


def encode_options(kwargs: Mapping[str, Any] | None, *, where: str) -> EncodeOptions:
    """Sort ``encode(...)`` keyword arguments; the ones promptembed does not handle go to the model's forward pass.

    Raises:
        ConfigError: Not a dict, or a keyword that cannot apply to a framework adapter (the message says why).
    """
    if kwargs is None:
        return EncodeOptions()
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f"{where} must be a dict of SentenceTransformer.encode keyword arguments, got {kwargs!r}")
    known: dict[str, Any] = {}
    forward: dict[str, Any] = {}
    for key, value in plain_ranges(kwargs).items():
        if key in _ENCODE_REFUSED:
            raise ConfigError(f"{where}[{key!r}] is not supported: {_ENCODE_REFUSED[key]}")
        if key in _ENCODE_KNOWN:
            known[key] = value
        elif key not in _ENCODE_NO_EFFECT:
            forward[str(key)] = value
    return EncodeOptions(**known, forward_kwargs=forward)


def merge_options(ours: Mapping[str, Any], theirs: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """Combine options given as our own fields with the same options given the stock way.

    Raises:
        ConfigError: One option given both ways with different values (the message names both).
    """
    out = dict(ours)
    for key, value in theirs.items():
        if value is None:
            continue
        if key in out and out[key] is not None and out[key] != value:
            raise ConfigError(f"{key}={out[key]!r} and {where} {key}={value!r} disagree; pass it one way only")
        out[key] = value
    return out


def normalize_with_truncation(normalize: object, truncate_dim: int | None) -> bool:
    """Whether an adapter's vectors are L2-normalized: as the host asked, and always when ``truncate_dim`` is set.

    promptembed's Matryoshka rule for every adapter: a truncated vector is re-normalized, so the host's cosine or
    dot-product scores stay meaningful whatever its own ``normalize`` default is.

    Example:
        >>> normalize_with_truncation(False, 256), normalize_with_truncation(False, None)
        (True, False)
    """
    return bool(normalize) or truncate_dim is not None


def side_options(
    base: Mapping[str, Any], enc: EncodeOptions, *, normalize_default: bool, where: str = "encode_kwargs"
) -> dict[str, Any]:
    """PromptEmbedder options for one side (queries or documents) from the model options and its encode options.

    ``truncate_dim`` always re-normalizes (promptembed's Matryoshka rule); ``normalize_default`` is the host's
    default when neither the encode options nor the adapter say.

    Raises:
        ConfigError: The adapter's ``normalize`` and ``normalize_embeddings`` in ``where`` disagree.
    """
    options = dict(base)
    normalize = options.pop("normalize", None)
    if normalize is not None and enc.normalize_embeddings is not None and normalize != enc.normalize_embeddings:
        raise ConfigError(
            f"normalize={normalize!r} and {where} normalize_embeddings={enc.normalize_embeddings!r} disagree; "
            "pass it one way only"
        )
    for key, value in (
        ("batch_size", enc.batch_size),
        ("precision", enc.precision),
        ("quantization_ranges", enc.quantization_ranges),  # lists (encode_options): repr(options) keys the sides
        ("truncate_dim", enc.truncate_dim),
        ("show_progress_bar", enc.show_progress_bar),
    ):
        if value is not None:
            options[key] = value
    if enc.normalize_embeddings is not None:
        normalize = enc.normalize_embeddings
    normalize = normalize_default if normalize is None else normalize
    options["normalize"] = normalize_with_truncation(normalize, options.get("truncate_dim"))
    if enc.forward_kwargs:
        options["forward_kwargs"] = dict(enc.forward_kwargs)
    return options


def plain_ranges(kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    """``kwargs`` with its ``quantization_ranges`` (an array, or a list of arrays) as nested lists of floats.

    Lists dump to JSON, and their ``repr`` (which adapters compare and key shared sides on) shows every value, where a
    long array's elides some. Ranges that are not numbers are left for the core to name the problem.
    """
    ranges = kwargs.get("quantization_ranges") if isinstance(kwargs, Mapping) else None
    if ranges is None or isinstance(ranges, str):
        return kwargs
    import numpy as np

    try:
        return {**kwargs, "quantization_ranges": np.asarray(ranges, dtype=float).tolist()}
    except (TypeError, ValueError):
        return kwargs


def build_embedder(options: Mapping[str, Any], *, where: str, not_in_where: Collection[str] = ()) -> PromptEmbedder:
    """``PromptEmbedder(**options)`` for an adapter whose forward-pass keywords came from the user's ``where``.

    A key of ``encode_kwargs`` that is neither an ``encode(...)`` option nor a keyword the model's forward pass takes
    (a typo such as ``batchsize``) is reported as a key of ``where``, with both lists of valid names (less the
    ``encode(...)`` options the adapter takes elsewhere, ``not_in_where``).

    Raises:
        ConfigError: Such a key, or any option the core refuses.
    """
    from promptembed.embedder import PromptEmbedder

    try:
        return PromptEmbedder(**options)
    except UnknownForwardKwargsError as exc:
        known = sorted(k for k in [*_ENCODE_KNOWN, *_ENCODE_NO_EFFECT] if k not in not_in_where)
        raise ConfigError(
            f"Unknown key(s) {exc.unknown} in {where}: not a SentenceTransformer.encode option ({known}) and not a "
            f"keyword this model's forward pass takes ({exc.valid}); check the spelling"
        ) from None


class Side:
    """One side of an adapter (queries or documents): a core embedder and the prompt rule.

    Args:
        embedder: The core embedder of this side (sides with the same options share one).
        role: ``"query"`` or ``"document"``: the model's prompt used when the user chose none.
        enc: The side's encode options (its ``prompt``/``prompt_name`` are the user's choice).
        default_prompt_name: A ``default_prompt_name`` the user gave the model (used when ``enc`` names none).
        plain: The user chose the prompt some other way (a Haystack ``prefix`` already in the text): embed as
            ``SentenceTransformer.encode`` does without a prompt (the model's default prompt, if it names one).
    """

    def __init__(
        self,
        embedder: PromptEmbedder,
        *,
        role: Literal["query", "document"],
        enc: EncodeOptions,
        default_prompt_name: str | None = None,
        plain: bool = False,
    ) -> None:
        self.embedder = embedder
        self.role = role
        self.enc = enc
        self.default_prompt_name = default_prompt_name
        self.plain = plain
        if enc.prompt is None:
            name = enc.prompt_name if enc.prompt_name is not None else default_prompt_name
            if name is not None:
                embedder.embed([], prompt_name=name)  # an unknown name fails now, naming the model's prompts

    @property
    def chooses_prompt(self) -> bool:
        """Whether the user chose this side's prompt (else the model's own role prompt applies)."""
        return self.enc.chooses_prompt or self.default_prompt_name is not None or self.plain

    def embed(self, texts: Sequence[str], titles: Sequence[str | None] | None = None) -> np.ndarray:
        """Embed with the user's prompt (as ``SentenceTransformer.encode`` applies it) or the model's role prompt."""
        if self.enc.prompt is not None:  # sentence-transformers: prompt wins over prompt_name
            return self.embedder.embed(texts, prompt=self.enc.prompt)
        if self.enc.prompt_name is not None:
            return self.embedder.embed(texts, prompt_name=self.enc.prompt_name)
        if self.default_prompt_name is not None:
            return self.embedder.embed(texts, prompt_name=self.default_prompt_name)
        if self.plain:
            return self.embedder.embed(texts)
        if self.role == "query":
            return self.embedder.embed_queries(texts)
        return self.embedder.embed_documents(texts, titles=titles)
