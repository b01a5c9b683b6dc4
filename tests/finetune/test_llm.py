from __future__ import annotations

from langchain_core.language_models.fake_chat_models import FakeListChatModel

from promptembed.finetune import Chunk, generate_pairs, llm_queries, parse_llm_output


def test_parse_messy_outputs() -> None:
    assert parse_llm_output("Sure! Here are 3 queries:\n1. carport permit\n2) roof colour rules\n- heat pump cost") == [
        "carport permit",
        "roof colour rules",
        "heat pump cost",
    ]
    assert parse_llm_output('```json\n["a query", "another query"]\n```') == ["a query", "another query"]
    assert parse_llm_output('{"queries": ["x y", "z w"]}') == ["x y", "z w"]
    assert parse_llm_output('Here you go:\n\n* "quoted query"\n* plain') == ["quoted query", "plain"]


def test_retries_are_bounded() -> None:
    calls = []

    def failing(prompt: str) -> list[str]:
        calls.append(prompt)
        raise RuntimeError("rate limited")

    assert llm_queries("text", failing, max_retries=2) == []
    assert len(calls) == 3
    answers = iter(["", "1. good query"])
    assert llm_queries("text", lambda p: next(answers), max_retries=1) == ["good query"]


def test_langchain_chat_model_through_generate_pairs() -> None:
    llm = FakeListChatModel(responses=["Sure:\n1. carport building permit\n2. exempt small carport"])
    chunks = [
        Chunk("c0", "a", (), "A carport needs a building permit. Small carports may be exempt.", None),
        Chunk("c1", "b", (), "Heat pumps lower energy bills. Ground source pumps cost more.", None),
    ]
    result = generate_pairs(chunks[:1], corpus=chunks, strategies=["llm"], llm=llm, progress=False)
    assert [p.query for p in result.pairs] == ["carport building permit", "exempt small carport"]
    assert all(p.source == "llm" and p.chunk_id == "c0" for p in result.pairs)


def test_parse_preambles_postscripts_fences_and_prefixes() -> None:
    messy = "Here are three queries:\n```\n1. carport permit\n2. roof colour\n```\nHope this helps!"
    assert parse_llm_output(messy) == ["carport permit", "roof colour"]
    assert parse_llm_output('Sure, the JSON:\n```json\n{"queries": ["a b", "c d"]}\n```') == ["a b", "c d"]
    assert parse_llm_output("Query 1: what is rot\nQuery 2: rut rules") == ["what is rot", "rut rules"]
    assert parse_llm_output("**1.** bold query\n**2.** bold query") == ["bold query"]  # deduplicated
    assert parse_llm_output("plain one\nplain two") == ["plain one", "plain two"]
    assert parse_llm_output("Sure!\\n1. escaped newline") == ["escaped newline"]
    assert parse_llm_output("Certainly! Here you go:") == []


def test_callable_returning_a_list_and_n_cap() -> None:
    calls = []

    def listing(prompt: str) -> list[str]:
        calls.append(prompt)
        return [" a ", "b", "", "a", "c", "d"]

    assert llm_queries("the passage", listing, n=3) == ["a", "b", "c"]
    assert len(calls) == 1 and "the passage" in calls[0] and "3" in calls[0]
