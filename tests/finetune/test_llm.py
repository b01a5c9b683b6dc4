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
