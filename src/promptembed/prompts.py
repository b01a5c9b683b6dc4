"""Prompt roles, the prompt table, and how a call's prompt is resolved. No torch import here.

Roles are ``"query"`` and ``"document"``, as in sentence-transformers' ``encode_query`` /
``encode_document``; the document role falls back to a ``"passage"`` or ``"corpus"`` prompt, in that
order, as sentence-transformers does; an empty entry does not hide a saved non-empty one (sentence-transformers
6 inserts an empty ``"document"`` prompt into every model it loads, which would otherwise mask ``"passage"``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Literal

from promptembed.errors import PromptError

__all__ = [
    "DOCUMENT_PROMPT_NAMES",
    "Role",
    "fill_title",
    "has_title_slot",
    "merge_prompts",
    "resolve_named_prompt",
    "resolve_role_prompt",
]

Role = Literal["query", "document"]

#: Prompt names tried for the document role, in order (sentence-transformers' ``encode_document``).
DOCUMENT_PROMPT_NAMES: tuple[str, ...] = ("document", "passage", "corpus")

# EmbeddingGemma's document form: "title: none | text: ". The title sits between "title: " and " |".
_TITLE_SLOT = re.compile(r"title: none(?= \| text: )")


def check_one(text: object) -> str | None:
    """What is wrong with one text (``None`` when it is a valid ``str``), worded to follow ``texts[i]``."""
    if not isinstance(text, str):
        hint = "decode it first: data.decode('utf-8')" if isinstance(text, bytes) else "convert it to str first"
        return f"is {type(text).__name__}, not str; {hint}, or drop it"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"contains an unpaired surrogate {text[exc.start]!r} at character {exc.start}, which is not valid "
            "Unicode text; decode the source with errors='replace' or remove it"
        )
    return None


def merge_prompts(model_prompts: Mapping[str, str], overrides: Mapping[str, str] | None) -> dict[str, str]:
    """Return the model's prompt table with ``overrides`` replacing or adding entries.

    Args:
        model_prompts: Prompts saved with the model (``config_sentence_transformers.json``).
        overrides: User prompts by name; ``None`` keeps the model's table as is.

    Raises:
        PromptError: An override name or text is not a ``str``.
    """
    table = {str(k): str(v) for k, v in model_prompts.items()}
    if overrides is None:
        return table
    if not isinstance(overrides, Mapping):
        raise PromptError(
            f"prompts must be a dict of prompt name -> prompt text, got {type(overrides).__name__}; "
            'e.g. prompts={"query": "query: ", "document": "passage: "}'
        )
    for name, text in overrides.items():
        if not isinstance(name, str) or not isinstance(text, str):
            raise PromptError(
                f"prompts entries must be str -> str, got {name!r}: {text!r} "
                f"({type(name).__name__} -> {type(text).__name__})"
            )
        if (problem := check_one(text)) is not None:
            raise PromptError(f"prompts[{name!r}] {problem}")
        table[name] = text
    return table


def role_prompt_name(prompts: Mapping[str, str], role: Role, chosen: Collection[str] = ()) -> str | None:
    """Name of the prompt used for ``role``, or ``None`` when the model has none for it.

    ``chosen``: the names the user set (``prompts=``). In the order ``document``, ``passage``, ``corpus``, the first
    that is non-empty or was set by the user wins, so ``{"document": ""}`` turns a saved ``passage`` prompt off.
    """
    candidates = ("query",) if role == "query" else DOCUMENT_PROMPT_NAMES
    present = [name for name in candidates if name in prompts]
    # sentence-transformers 6 adds an empty "document" prompt to every model it loads, which would hide a
    # saved "passage"/"corpus" prompt; the first non-empty candidate is the one the model was saved with.
    for name in present:
        if prompts[name] or name in chosen:
            return name
    return present[0] if present else None


def resolve_role_prompt(prompts: Mapping[str, str], role: Role, chosen: Collection[str] = ()) -> str:
    """Prompt text for ``role`` (empty string when the model has none); ``chosen`` as in :func:`role_prompt_name`."""
    name = role_prompt_name(prompts, role, chosen)
    return "" if name is None else prompts[name]


def resolve_named_prompt(
    prompts: Mapping[str, str],
    *,
    prompt_name: str | None,
    prompt: str | None,
    default_prompt_name: str | None = None,
) -> str:
    """Prompt text for a generic ``embed`` call.

    Args:
        prompts: The resolved prompt table.
        prompt_name: A key of ``prompts``.
        prompt: A raw prefix, used as is.
        default_prompt_name: The model's default prompt, applied when neither is given.

    Raises:
        PromptError: Both ``prompt`` and ``prompt_name`` were given, or ``prompt_name`` is unknown.
    """
    if prompt is not None and prompt_name is not None:
        raise PromptError(
            f"Pass either prompt= or prompt_name=, not both (got prompt={prompt!r}, prompt_name={prompt_name!r})"
        )
    if prompt is not None:
        if not isinstance(prompt, str):
            raise PromptError(f"prompt must be a str, got {type(prompt).__name__}")
        if (problem := check_one(prompt)) is not None:
            raise PromptError(f"prompt {problem}")
        return prompt
    if prompt_name is not None:
        if prompt_name not in prompts:
            raise PromptError(
                f"Prompt name {prompt_name!r} not found; this model has prompts {sorted(prompts)}. "
                "Pick one of them, pass prompt='raw prefix', or add it with prompts={name: text}."
            )
        return prompts[prompt_name]
    if default_prompt_name is not None and default_prompt_name in prompts:
        return prompts[default_prompt_name]
    return ""


def has_title_slot(document_prompt: str) -> bool:
    """Whether a document prompt has EmbeddingGemma's ``title: none | text: `` title slot."""
    return _TITLE_SLOT.search(document_prompt) is not None


def fill_title(document_prompt: str, title: str | None) -> str:
    """Put ``title`` into the prompt's title slot; ``None`` (or an empty title) keeps ``none``.

    Raises:
        PromptError: The prompt has no title slot.
    """
    if not has_title_slot(document_prompt):
        raise PromptError(
            f"This model's document prompt {document_prompt!r} has no title slot ('title: none | text: '), "
            "so titles cannot be used; call embed_documents(texts) without titles."
        )
    if title is None or title == "":
        return document_prompt
    return _TITLE_SLOT.sub(lambda _: f"title: {title}", document_prompt, count=1)


def validate_titles(titles: Sequence[str | None], n_texts: int) -> list[str | None]:
    """Check that ``titles`` is a list of ``str | None`` with one entry per text."""
    if isinstance(titles, str) or not isinstance(titles, Sequence):
        raise PromptError(f"titles must be a list of str or None, one per document, got {type(titles).__name__}")
    if len(titles) != n_texts:
        raise PromptError(f"Got {len(titles)} titles for {n_texts} documents; pass one title (or None) per document")
    for i, title in enumerate(titles):
        if title is not None and not isinstance(title, str):
            raise PromptError(f"titles[{i}] is {type(title).__name__}; each title must be a str or None")
        if title is not None and (problem := check_one(title)) is not None:
            raise PromptError(f"titles[{i}] {problem}")
    return list(titles)
