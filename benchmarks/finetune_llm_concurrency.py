"""How long the ``llm=`` pair strategy takes with an LLM behind an HTTP API, by ``llm_concurrency`` (issue #16).

    python benchmarks/finetune_llm_concurrency.py                 # zaragoza's chunks, 0.5 s per call
    python benchmarks/finetune_llm_concurrency.py --latency 1.0 --chunks 200 --concurrency 1,8,32

A hosted LLM spends most of a call waiting on the network and its queue, not on this machine's CPU. This script
stands in for one: a LangChain chat model (a ``BaseChatModel``) whose every call sleeps ``--latency`` seconds and then
answers one query made from the passage's first words. It runs ``generate_pairs`` with the default strategies plus
``llm`` (as ``finetune(llm=...)`` does) on the first ``--chunks`` chunks ``finetune()`` makes of the zaragoza answers,
at each concurrency (1 is how ``finetune()`` called an LLM before ``llm_concurrency``: one ``invoke`` at a time),
and prints the wall time, the speedup over one call at a time, and whether the pairs are the same; the table also goes
to ``benchmarks/finetune_llm_concurrency.md``. It measures the orchestration, not an LLM: a real API's rate limits
cap what concurrency can buy.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    from finetune_heldout_designs import domain_chunks
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from sentence_transformers import SentenceTransformer

    from promptembed import _loading
    from promptembed.finetune import generate_pairs

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.5, help="seconds each simulated LLM call waits")
    ap.add_argument("--chunks", type=int, default=200, help="how many of zaragoza's chunks (503 in all)")
    ap.add_argument("--concurrency", default="1,4,8,16", help="comma-separated llm_concurrency values")
    a = ap.parse_args()

    class SlowChat(BaseChatModel):
        """Waits ``latency`` seconds per call, like an HTTP API, then answers with the passage's first five words."""

        latency: float = 0.5

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._lock = threading.Lock()
            self._in_flight = 0
            self._most = 0

        @property
        def _llm_type(self) -> str:
            return "simulated-latency"

        def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
            with self._lock:
                self._in_flight += 1
                self._most = max(self._most, self._in_flight)
            time.sleep(self.latency)
            with self._lock:
                self._in_flight -= 1
            passage = str(messages[-1].content).split("Passage:\n", 1)[1]
            return ChatResult(
                generations=[ChatGeneration(message=AIMessage(content="1. " + " ".join(passage.split()[:5])))]
            )

    tokenizer = SentenceTransformer(str(_loading.default_model_path()), device="cpu").tokenizer
    chunks = domain_chunks("zaragoza", tokenizer)
    train = chunks[: a.chunks]
    lines = [
        f"{len(train)} zaragoza chunks (of {len(chunks)}), a simulated LLM that waits {a.latency} s per call "
        f"(`python benchmarks/finetune_llm_concurrency.py --latency {a.latency} --chunks {a.chunks}`, "
        f"{time.strftime('%Y-%m-%d')}):",
        "",
        "| llm_concurrency | wall time (s) | most calls in flight | vs one at a time | same pairs |",
        "|---|---|---|---|---|",
    ]
    print("\n".join(lines))
    reference: list[Any] | None = None
    first = 0.0
    for c in (int(x) for x in a.concurrency.split(",")):
        llm = SlowChat(latency=a.latency)
        started = time.perf_counter()
        pairs = generate_pairs(
            train,
            strategies=["sentence", "keyphrase", "llm"],
            corpus=chunks,
            llm=llm,
            llm_concurrency=c,
            progress=False,
        ).pairs
        wall = time.perf_counter() - started
        reference = pairs if reference is None else reference
        first = first or wall
        lines.append(f"| {c} | {wall:.1f} | {llm._most} | {first / wall:.2f}x | {pairs == reference} |")
        print(lines[-1], flush=True)
    (Path(__file__).resolve().parent / "finetune_llm_concurrency.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
