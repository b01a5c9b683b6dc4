"""The embedder lifecycle never hangs: garbage collection inside a load, finalizers, threads, failures.

Every scenario runs under the watchdog of ``tests/reliability/conftest.py``: a hang fails with all thread stacks.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from promptembed import PromptEmbedder, _loading, _registry


def _in_cycle(path: Path) -> None:
    """Create an embedder that only the cyclic garbage collector can free, and drop it."""
    emb = PromptEmbedder(model=path)
    emb._cycle = emb  # type: ignore[attr-defined]


def test_gc_inside_another_models_load_finishes(
    tiny_bert_dir: Path, tiny_gemma_dir: Path, monkeypatch: pytest.MonkeyPatch, bounded: Any
) -> None:
    """The issue's reproduction: a cyclic garbage embedder is finalized by a GC pass inside another model's load."""
    real_load = _loading.load_model

    def load_with_gc(*args: Any, **kwargs: Any) -> Any:
        gc.collect()  # what loading's allocations trigger on their own
        return real_load(*args, **kwargs)

    gc.collect()
    _in_cycle(tiny_bert_dir)
    monkeypatch.setattr(_loading, "load_model", load_with_gc)

    def scenario() -> list[_registry.ModelKey]:
        with PromptEmbedder(model=tiny_gemma_dir) as emb:
            emb.embed_queries(["x"])
        return _registry.loaded_keys()

    left = bounded(scenario, timeout=60, what="a GC pass inside a load that finalizes a cyclic embedder")
    # The finalized embedder's release was queued and has been carried out: nothing of either model is held.
    sources = {str(tiny_bert_dir.resolve()), str(tiny_gemma_dir.resolve())}
    assert not [k for k in left if k.source in sources]


@pytest.mark.parametrize(
    ("cached", "close_fails"), [(False, False), (True, False), (True, True)], ids=["no-cache", "cache", "close-fails"]
)
def test_close_from_another_thread_lets_a_running_call_finish(
    tiny_gemma_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    bounded: Any,
    cached: bool,
    close_fails: bool,
) -> None:
    """close() while a call runs in another thread: the call returns its vectors, then the model is released.

    With ``close_fails``, closing the cache raises during that deferred release: the call keeps its vectors, the model
    is still released, and the failure is logged.
    """
    import threading

    from promptembed.cache import VectorCache
    from promptembed.errors import PromptEmbedError

    with PromptEmbedder(model=tiny_gemma_dir) as ref:
        expected = ref.embed_queries(["hi there"])
    emb = PromptEmbedder(model=tiny_gemma_dir, cache_dir=tmp_path / "c" if cached else None)
    key = emb._require().key
    inside, go = threading.Event(), threading.Event()
    real_drain = _registry.drain

    def pausing_drain() -> None:  # the call has taken its model and waits here until close() has run
        if threading.current_thread().name == "caller":
            inside.set()
            go.wait(10)
        real_drain()

    monkeypatch.setattr(_registry, "drain", pausing_drain)
    if close_fails:

        def failing_close(self: VectorCache) -> None:
            raise OSError("disk gone")

        monkeypatch.setattr(VectorCache, "close", failing_close)
    box: dict[str, Any] = {}

    def call() -> None:
        try:
            box["vectors"] = emb.embed_queries(["hi there"])
        except BaseException as exc:
            box["error"] = exc

    def scenario() -> None:
        caller = threading.Thread(target=call, name="caller")
        caller.start()
        assert inside.wait(10)
        emb.close()  # returns at once; the release waits for the call in flight
        assert emb.closed and _registry.state().refs.get(key) == 1
        go.set()
        caller.join(30)

    bounded(scenario, timeout=60, what="close() during a call in another thread")
    assert "error" not in box, box.get("error")
    assert (box["vectors"] == expected).all()
    assert key not in _registry.state().refs  # released by the call that finished last
    assert ("releasing a closed PromptEmbedder" in caplog.text) == close_fails
    with pytest.raises(PromptEmbedError, match="closed"):
        emb.embed_queries(["again"])
    emb.close()  # a second close is a no-op


def test_copies_and_pickles_are_embedders_of_their_own(tiny_gemma_dir: Path) -> None:
    """copy/deepcopy share the loaded model with a reference of their own; pickle carries the options, not weights."""
    import copy
    import pickle

    emb = PromptEmbedder(model=tiny_gemma_dir, truncate_dim=16, prompts={"query": "q: "})
    key = emb._require().key
    expected = emb.embed_queries(["red planet"])
    for make in (copy.copy, copy.deepcopy, lambda e: pickle.loads(pickle.dumps(e))):
        other = make(emb)
        assert other is not emb and other.config() == emb.config()
        assert _registry.state().refs.get(key) == 2  # the same loaded model, one more reference
        assert (other.embed_queries(["red planet"]) == expected).all()
        other.close()
        assert _registry.state().refs.get(key) == 1
        assert (emb.embed_queries(["red planet"]) == expected).all()  # closing the copy left the original alone
    emb.close()
    assert key not in _registry.state().refs
    from promptembed.errors import PromptEmbedError

    with pytest.raises(PromptEmbedError, match="closed"):
        copy.copy(emb)
