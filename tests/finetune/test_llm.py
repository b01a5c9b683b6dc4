from __future__ import annotations

import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from promptembed.finetune import Chunk, generate_pairs, llm_queries, llm_queries_batch, parse_llm_output


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


class _EchoChat(BaseChatModel):
    """A chat model that answers with the passage's first two words as the query, and can be told to fail or to
    answer nothing usable for some passages before it answers well. It records calls in flight at once."""

    fail_first: set[str] = Field(default_factory=set)
    blank_first: set[str] = Field(default_factory=set)
    barrier: Any = None
    delay: float = 0.0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._in_flight = 0
        self._most_in_flight = 0

    @property
    def _llm_type(self) -> str:
        return "echo-test"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        passage = str(messages[-1].content).split("Passage:\n", 1)[1]
        key = " ".join(passage.split()[:2])
        with self._lock:
            self._calls[key] += 1
            first = self._calls[key] == 1
            self._in_flight += 1
            self._most_in_flight = max(self._most_in_flight, self._in_flight)
        try:
            if self.barrier is not None:
                self.barrier.wait()
            time.sleep(self.delay)
            if first and key in self.fail_first:
                raise RuntimeError(f"rate limited on {key}")
            text = "Sure! Here you go:" if first and key in self.blank_first else f"1. {key.lower()}"
        finally:
            with self._lock:
                self._in_flight -= 1
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


PASSAGES = [f"Topic{i} words here. More text about topic {i}." for i in range(8)]


def test_batch_of_a_chat_model_runs_calls_at_once_in_input_order() -> None:
    llm = _EchoChat(barrier=threading.Barrier(4, timeout=20))  # passes only if 4 calls are in flight together
    out = llm_queries_batch(PASSAGES, llm, concurrency=4)
    assert out == [[f"topic{i} words"] for i in range(8)]
    assert llm._most_in_flight == 4  # and never more than max_concurrency
    assert set(llm._calls.values()) == {1}


def test_batch_retries_each_passage_within_its_bound(caplog: pytest.LogCaptureFixture) -> None:
    llm = _EchoChat(fail_first={"Topic1 words"}, blank_first={"Topic2 words"})
    assert llm_queries_batch(PASSAGES[:4], llm, concurrency=3, max_retries=1) == [[f"topic{i} words"] for i in range(4)]
    assert llm._calls == Counter({"Topic0 words": 1, "Topic1 words": 2, "Topic2 words": 2, "Topic3 words": 1})
    assert "rate limited on Topic1 words" in caplog.text

    class Down(_EchoChat):
        def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
            raise RuntimeError("service unavailable")

    caplog.clear()
    assert llm_queries_batch(PASSAGES[:2], Down(), concurrency=2, max_retries=2) == [[], []]
    assert caplog.text.count("service unavailable") == 6  # 1 + 2 retries per passage, then it gives up
    assert "no usable queries for 2 of 2 passages (after 3 attempts each)" in caplog.text


def test_batch_of_a_callable_uses_threads_and_gives_the_same_pairs() -> None:
    barrier = threading.Barrier(3, timeout=20)
    threads: set[str] = set()
    calls = Counter[str]()
    lock = threading.Lock()

    def echo(prompt: str) -> str:
        with lock:
            threads.add(threading.current_thread().name)
            calls["all"] += 1
            first_three = calls["all"] <= 3
        if first_three:
            barrier.wait()  # the first three calls meet here, so they ran at the same time
        return "1. " + " ".join(prompt.split("Passage:\n", 1)[1].split()[:2]).lower()

    chunks = [Chunk(f"c{i}", f"d{i}", (), text, None) for i, text in enumerate(PASSAGES)]
    at_once = generate_pairs(chunks, strategies=["sentence", "llm"], llm=echo, llm_concurrency=3, progress=False)
    assert not barrier.broken  # the first three calls really were in flight together
    assert len(threads) >= 3 and all(t.startswith("promptembed-llm") for t in threads)
    one_by_one = generate_pairs(chunks, strategies=["sentence", "llm"], llm=echo, llm_concurrency=1, progress=False)
    assert at_once.pairs == one_by_one.pairs
    assert [p.query for p in at_once.pairs if p.source == "llm"] == [f"topic{i} words" for i in range(8)]
    with pytest.raises(ValueError, match=r"llm_concurrency=0 must be at least 1"):
        generate_pairs(chunks, strategies=["llm"], llm=echo, llm_concurrency=0, progress=False)


def test_chat_message_content_blocks_are_read_as_text() -> None:
    blocks = [{"type": "reasoning", "reasoning": "think"}, {"type": "text", "text": "1. carport permit\n2. roof"}]
    assert llm_queries("a passage", lambda p: AIMessage(content=blocks)) == ["carport permit", "roof"]


def test_default_concurrency_is_one_for_a_callable_and_eight_for_a_langchain_model() -> None:
    threads: set[str] = set()

    def local_model(prompt: str) -> str:  # say, a local model: not thread-safe, so never called from two threads
        threads.add(threading.current_thread().name)
        return "1. " + prompt.split("Passage:\n", 1)[1].split()[0]

    assert llm_queries_batch(PASSAGES, local_model) == [[f"Topic{i}"] for i in range(8)]
    assert threads == {threading.current_thread().name}
    chat = _EchoChat(barrier=threading.Barrier(8, timeout=20))
    assert llm_queries_batch(PASSAGES * 2, chat) == [[f"topic{i % 8} words"] for i in range(16)]
    assert chat._most_in_flight == 8 and not chat.barrier.broken


def test_a_max_concurrency_bound_on_the_model_is_kept() -> None:
    chat = _EchoChat(delay=0.05)  # calls last long enough to overlap
    bound = chat.with_config(max_concurrency=2)
    assert llm_queries_batch(PASSAGES, bound, concurrency=6) == [[f"topic{i} words"] for i in range(8)]
    assert 1 <= chat._most_in_flight <= 2


def test_an_interrupt_sends_no_more_calls() -> None:
    calls = Counter[str]()
    lock = threading.Lock()

    def interrupted(prompt: str) -> str:
        with lock:
            calls["all"] += 1
            first = calls["all"] == 1
        if first:
            raise KeyboardInterrupt  # as Ctrl-C would, in the middle of the run
        time.sleep(0.01)
        return "1. a query"

    with pytest.raises(KeyboardInterrupt):
        llm_queries_batch([f"passage {i}" for i in range(200)], interrupted, concurrency=2)
    assert calls["all"] < 20  # the queued calls were cancelled, not sent


def test_bad_retry_and_concurrency_values_are_refused() -> None:
    with pytest.raises(ValueError, match=r"max_retries=-1 must be 0 or more"):
        llm_queries_batch(PASSAGES, lambda p: "1. q", max_retries=-1)
    with pytest.raises(ValueError, match=r"max_retries=-1 must be 0 or more"):
        llm_queries("a passage", lambda p: "1. q", max_retries=-1)
    with pytest.raises(ValueError, match=r"concurrency=0 must be at least 1"):
        llm_queries_batch(PASSAGES, lambda p: "1. q", concurrency=0)


def test_an_llm_that_cannot_be_called_is_refused_before_any_work(tmp_path: Path) -> None:
    from promptembed.errors import ConfigError
    from promptembed.finetune import finetune

    with pytest.raises(ConfigError, match=re.escape("llm='gpt-4o-mini' is neither a LangChain chat model")):
        finetune([tmp_path / "no-docs-read"], output=tmp_path / "m", llm="gpt-4o-mini", progress=False)
    assert not (tmp_path / "m").exists()


def test_an_llm_that_answers_no_passage_stops_with_its_first_error() -> None:
    from promptembed.errors import ConfigError

    def no_key(prompt: str) -> list[str]:
        raise RuntimeError("invalid API key")

    chunks = [Chunk("c0", "a", (), "A carport needs a building permit. Small carports may be exempt.", None)]
    with pytest.raises(ConfigError, match=re.escape("for any of the 1 passages; the first failure: RuntimeError: inv")):
        generate_pairs(chunks, strategies=["sentence", "llm"], llm=no_key, filter="none", progress=False)
    with pytest.raises(ConfigError, match=re.escape("the first failure: an answer with no usable query: 'Sorry:'")):
        generate_pairs(chunks, strategies=["llm"], llm=lambda p: "Sorry:", filter="none", progress=False)
    # one passage answered: the run goes on with what the LLM gave
    two = [*chunks, Chunk("c1", "b", (), "Heat pumps lower energy bills.", None)]
    made = generate_pairs(
        two, strategies=["llm"], llm=lambda p: "carport permit" if "carport" in p else "", filter="none", progress=False
    )
    assert [p.query for p in made.pairs] == ["carport permit"]
