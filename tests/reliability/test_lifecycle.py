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
