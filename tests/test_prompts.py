from __future__ import annotations

import re

import pytest

from promptembed.errors import PromptError
from promptembed.prompts import (
    fill_title,
    has_title_slot,
    merge_prompts,
    resolve_named_prompt,
    resolve_role_prompt,
    validate_titles,
)
from promptembed.testing import EMBEDDINGGEMMA_PROMPTS


def test_document_role_falls_back_like_sentence_transformers() -> None:
    assert resolve_role_prompt({"passage": "p: ", "corpus": "c: "}, "document") == "p: "
    assert resolve_role_prompt({"corpus": "c: "}, "document") == "c: "
    assert resolve_role_prompt({"document": "d: ", "passage": "p: "}, "document") == "d: "
    assert resolve_role_prompt({}, "document") == ""
    assert resolve_role_prompt({"passage": "p: "}, "query") == ""
    # an empty "document" (as sentence-transformers 6 inserts) does not hide a saved "passage" prompt
    assert resolve_role_prompt({"document": "", "passage": "p: "}, "document") == "p: "


def test_a_prompt_the_user_sets_for_the_document_role_wins_even_empty() -> None:
    saved = {"query": "q: ", "document": "", "passage": "p: "}  # "document": "" as sentence-transformers 6 adds it
    assert resolve_role_prompt(saved, "document") == "p: "
    assert resolve_role_prompt(saved, "document", chosen={"document": ""}) == ""  # prompts={"document": ""}: off
    assert resolve_role_prompt(saved, "document", chosen={"query": "x"}) == "p: "
    # adding a passage prompt does not displace a saved non-empty document prompt (sentence-transformers' order)
    assert resolve_role_prompt({"document": "d: ", "passage": "p: "}, "document", chosen={"passage": "p: "}) == "d: "


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: merge_prompts({}, {"query": "q\ud800: "}), "prompts['query'] contains an unpaired surrogate"),
        (lambda: resolve_named_prompt({}, prompt_name=None, prompt="p\udfff"), "prompt contains an unpaired surrogate"),
        (lambda: validate_titles([None, "t\ud800"], 2), "titles[1] contains an unpaired surrogate"),
    ],
)
def test_a_prompt_or_title_that_is_not_valid_unicode_is_named(call: object, message: str) -> None:
    with pytest.raises(PromptError, match=re.escape(message)):
        call()  # type: ignore[operator]


def test_merge_prompts_overrides_and_adds() -> None:
    merged = merge_prompts({"query": "q: ", "document": "d: "}, {"query": "Q: ", "STS": "sts: "})
    assert merged == {"query": "Q: ", "document": "d: ", "STS": "sts: "}


def test_merge_prompts_rejects_non_str() -> None:
    with pytest.raises(PromptError, match=re.escape("prompts entries must be str -> str, got 'query': 3")):
        merge_prompts({}, {"query": 3})  # type: ignore[dict-item]


def test_unknown_prompt_name_lists_the_model_prompts() -> None:
    with pytest.raises(PromptError, match=re.escape("Prompt name 'qeury' not found; this model has prompts")):
        resolve_named_prompt(EMBEDDINGGEMMA_PROMPTS, prompt_name="qeury", prompt=None)


def test_prompt_and_prompt_name_together_is_an_error() -> None:
    with pytest.raises(PromptError, match="either prompt= or prompt_name=, not both"):
        resolve_named_prompt({"STS": "s: "}, prompt_name="STS", prompt="x: ")


def test_default_prompt_name_applies_when_nothing_given() -> None:
    assert resolve_named_prompt({"a": "A: "}, prompt_name=None, prompt=None, default_prompt_name="a") == "A: "
    assert resolve_named_prompt({"a": "A: "}, prompt_name=None, prompt="", default_prompt_name="a") == ""


def test_title_slot() -> None:
    doc = EMBEDDINGGEMMA_PROMPTS["document"]
    assert has_title_slot(doc)
    assert fill_title(doc, "Mars") == "title: Mars | text: "
    assert fill_title(doc, None) == doc
    assert not has_title_slot("passage: ")
    with pytest.raises(PromptError, match="has no title slot"):
        fill_title("passage: ", "Mars")


def test_validate_titles() -> None:
    with pytest.raises(PromptError, match=re.escape("Got 1 titles for 2 documents")):
        validate_titles(["a"], 2)
    with pytest.raises(PromptError, match=re.escape("titles[1] is int")):
        validate_titles(["a", 3], 2)  # type: ignore[list-item]
