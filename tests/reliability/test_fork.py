"""A forked child (multiprocessing's "fork" start method) never inherits a held lock, and knows which models it may use.

Each child dumps its stacks and exits if it runs longer than the limit (faulthandler), so a hang shows where it is.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from promptembed import PromptEmbedder, PromptEmbedError, _registry

CHILD_LIMIT_S = 90
TEXTS = ["Which planet is known as the Red Planet?", "Mars is the Red Planet.", ""]
_shared: dict[str, Any] = {}  # what a child inherits from the test (fork copies it)


def in_fork_child(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a forked child; return its result or raise its error (as a string) in the parent."""
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe(duplex=False)

    def main() -> None:
        faulthandler.dump_traceback_later(CHILD_LIMIT_S, exit=True)
        try:
            child_end.send(("ok", fn()))
        except BaseException as exc:  # reported to the parent
            child_end.send(("error", f"{type(exc).__name__}: {exc}"))

    _shared["child_main"] = main
    proc = ctx.Process(target=_run_shared_main)
    proc.start()
    try:
        if not parent_end.poll(CHILD_LIMIT_S + 30):
            pytest.fail(f"the forked child did not answer in {CHILD_LIMIT_S + 30} s (its stacks are on stderr)")
        status, value = parent_end.recv()
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    if status == "error":
        raise ChildError(value)
    return value


class ChildError(Exception):
    """An error raised in the forked child."""


def _run_shared_main() -> None:
    _shared["child_main"]()


def test_child_shares_inherited_cpu_model_and_parent_is_untouched(tiny_bert_dir: Path) -> None:
    emb = PromptEmbedder(model=tiny_bert_dir)
    expected = emb.embed_queries(TEXTS)  # the parent has used the model (and torch's CPU threads) before the fork
    key = emb._require().key
    loads = _registry.load_count

    def child() -> dict[str, Any]:
        inherited = emb.embed_queries(TEXTS)
        with PromptEmbedder(model=tiny_bert_dir) as again:  # shares the inherited copy: no load
            fresh = again.embed_queries(TEXTS)
            refs_while_open = _registry.state().refs[key]
        emb.close()
        return {
            "inherited": inherited,
            "fresh": fresh,
            "loads": _registry.load_count - loads,
            "refs_while_open": refs_while_open,
            "left": key in _registry.loaded_keys(),
            "threads": torch.get_num_threads(),
        }

    out = in_fork_child(child)
    np.testing.assert_allclose(out["inherited"], expected, atol=2e-6, rtol=0)
    np.testing.assert_allclose(out["fresh"], expected, atol=2e-6, rtol=0)
    assert out["loads"] == 0 and out["refs_while_open"] == 2 and out["left"] is False
    # torch's OpenMP pool does not survive fork: the child ran on one thread (with the parent's two or more, an
    # encode in the child hangs; this test then fails on the child's time limit).
    assert out["threads"] == 1 or torch.get_num_threads() == 1
    # The child's close() released the child's copy only.
    assert _registry.state().refs[key] == 1
    np.testing.assert_allclose(emb.embed_queries(TEXTS), expected, atol=2e-6, rtol=0)
    emb.close()


def test_fork_while_a_parent_thread_loads_the_same_model(tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent's loading thread does not exist in the child: the child loads on its own instead of waiting."""
    from promptembed import _loading

    real_load = _loading.load_model
    loading, finish = threading.Event(), threading.Event()

    def slow_load(*args: Any, **kwargs: Any) -> Any:
        loading.set()
        finish.wait(60)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(_loading, "load_model", slow_load)
    box: list[PromptEmbedder] = []
    thread = threading.Thread(target=lambda: box.append(PromptEmbedder(model=tiny_bert_dir)))
    thread.start()
    assert loading.wait(60)

    def child() -> tuple[bool, bool]:
        _loading.load_model = real_load  # the child's own load is quick
        with PromptEmbedder(model=tiny_bert_dir) as emb:
            return emb.embed_queries(["x"]).shape == (1, emb.dimension), bool(_registry.state().busy)

    try:
        embedded, busy_in_child = in_fork_child(child)
    finally:
        finish.set()
        thread.join(60)
    assert embedded is True and busy_in_child is False
    box[0].close()


def test_fork_while_a_parent_thread_holds_the_registry_lock(tiny_bert_dir: Path) -> None:
    """The fork waits for the (short) critical section, so the child's lock is free."""
    entered = threading.Event()

    def hold() -> None:
        with _registry._lock:
            entered.set()
            time.sleep(0.5)

    holder = threading.Thread(target=hold)
    holder.start()
    assert entered.wait(30)

    def child() -> int:
        with PromptEmbedder(model=tiny_bert_dir) as emb:
            return int(emb.embed_queries(["x"]).shape[0])

    assert in_fork_child(child) == 1
    holder.join(30)


def test_model_mid_encode_at_fork_is_refused_in_the_child(tiny_bert_dir: Path) -> None:
    emb = PromptEmbedder(model=tiny_bert_dir)
    expected = emb.embed_queries(TEXTS)
    encoding, done = threading.Event(), threading.Event()

    def encode_forever() -> None:  # stands for a parent thread inside encode at the moment of the fork
        with emb._require().lock:
            encoding.set()
            done.wait(60)

    thread = threading.Thread(target=encode_forever)
    thread.start()
    assert encoding.wait(30)

    def child() -> tuple[str, Any]:
        try:
            emb.embed_queries(TEXTS)
            message = "no error"
        except PromptEmbedError as exc:
            message = str(exc)
        with PromptEmbedder(model=tiny_bert_dir) as own:  # a new embedder loads the child's own copy
            return message, own.embed_queries(TEXTS)

    try:
        message, vectors = in_fork_child(child)
    finally:
        done.set()
        thread.join(30)
    assert "forked while another thread was encoding" in message
    np.testing.assert_allclose(vectors, expected, atol=2e-6, rtol=0)
    emb.close()


def test_vector_cache_connection_is_not_carried_across_fork(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """SQLite forbids using a connection in a forked child: the child opens its own; the parent's file stays sound."""
    import sqlite3

    from promptembed import cache as cache_module

    emb = PromptEmbedder(model=tiny_bert_dir, cache_dir=tmp_path / "cache")
    expected = emb.embed_queries(TEXTS)  # opens this thread's connection and fills the cache
    more = ["a text only the child embeds", "and another one"]

    def child() -> tuple[Any, Any, int]:
        hits = emb.embed_queries(TEXTS)
        fresh = emb.embed_queries(more)  # a miss: written through the child's own connection
        emb.close()
        return hits, fresh, len(cache_module._FORKED_AWAY)

    hits, fresh, set_aside = in_fork_child(child)
    np.testing.assert_allclose(hits, expected, atol=2e-6, rtol=0)
    assert set_aside == 1  # the inherited connection was put aside, not used
    np.testing.assert_allclose(emb.embed_queries(more), fresh, atol=2e-6, rtol=0)  # the parent reads the child's rows
    emb.close()
    with sqlite3.connect(tmp_path / "cache" / "vectors.sqlite3") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == len(set(TEXTS)) + len(more)


@dataclass(frozen=True)
class GpuKey:
    """The registry is generic over its key: it only reads ``source`` (messages) and ``device`` (freeing, fork)."""

    source: str
    device: str


def test_accelerator_model_is_unusable_and_untouched_in_the_child() -> None:
    """CUDA (and MPS) cannot be used after fork: the child drops it from the registry and never frees it."""
    key: Any = GpuKey(source="gpu-model", device="cuda:0")
    entry = _registry.acquire(key, load=lambda: (object(), None), model_type=None)  # type: ignore[arg-type,return-value]

    def child() -> tuple[bool, str | None, bool, int]:
        listed = key in _registry.loaded_keys()
        _registry.release(entry)  # what close() does in the child: no free of the parent's memory
        return listed, entry.unusable, hasattr(entry, "model"), entry.refs

    listed, reason, still_there, refs = in_fork_child(child)
    assert listed is False and still_there is True and refs == 0
    assert reason is not None and "cannot be used in a forked child" in reason and "'spawn'" in reason
    assert entry.unusable is None and key in _registry.loaded_keys()  # the parent is unaffected
    _registry.release(entry)


@pytest.mark.gpu
def test_cuda_model_in_a_forked_child_gives_a_clear_error(tiny_bert_dir: Path) -> None:
    emb = PromptEmbedder(model=tiny_bert_dir, device="cuda")
    expected = emb.embed_queries(TEXTS)

    def child() -> str:
        try:
            emb.embed_queries(TEXTS)
        except PromptEmbedError as exc:
            return str(exc)
        return "no error"

    message = in_fork_child(child)
    assert "cannot be used in a forked child" in message and "'spawn'" in message
    np.testing.assert_allclose(emb.embed_queries(TEXTS), expected, atol=2e-6, rtol=0)  # the parent goes on
    emb.close()
