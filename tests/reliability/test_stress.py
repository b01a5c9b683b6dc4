"""Many threads create, use, drop and close embedders over several models while loads fail, get interrupted and
collect garbage: nothing hangs, nothing leaks, and every vector equals a serial run.

Bounded: a fixed number of operations under the watchdog of ``conftest.py`` (which dumps every thread's stack on a
hang). The chaos is seeded, so a failure reproduces with the same schedule of injected faults (thread timing
still varies).
"""

from __future__ import annotations

import gc
import random
import shutil
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from promptembed import ModelLoadError, PromptEmbedder, _loading, _registry

THREADS = 8
ROUNDS = 12  # per thread
SEED = 15
# (roll, before the real load) of the first loads: failure before/after, interrupt before/after.
FIRST_FAULTS = [(0.0, True), (0.5, True), (0.9, False), (0.1, False), (0.2, False)]
TEXTS = [f"question {i} about permits, roofs and heat pumps" + " detail" * (i % 5) for i in range(20)]
# Fixed jobs, so each one sees the same batches as in the serial run (int8 scales activations per batch).
JOBS: list[tuple[str, Callable[[PromptEmbedder], np.ndarray]]] = [
    ("queries", lambda e: e.embed_queries(TEXTS[:6])),
    ("documents", lambda e: e.embed_documents(TEXTS[6:])),
    ("named", lambda e: e.embed(TEXTS[3:9], prompt=e.query_prompt or "q: ")),
]


@pytest.mark.timeout(900)
def test_many_threads_over_several_models_with_faults(
    tiny_bert_dir: Path,
    tiny_gemma_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    bounded: Any,
) -> None:
    bert2 = tmp_path / "second-bert"
    shutil.copytree(tiny_bert_dir, bert2)
    identities: list[dict[str, Any]] = [
        {"model": tiny_bert_dir},
        {"model": tiny_bert_dir, "dtype": "int8"},
        {"model": tiny_gemma_dir},
        {"model": bert2},
    ]
    # The serial run: every job on every identity, one embedder at a time.
    expected: dict[tuple[int, str], np.ndarray] = {}
    keys = []
    for i, opts in enumerate(identities):
        with PromptEmbedder(**opts) as emb:
            keys.append(emb._require().key)
            for name, job in JOBS:
                expected[(i, name)] = job(emb)
    assert len(set(keys)) == len(identities)

    # Loads collect garbage (cyclic embedders dropped by other threads are finalized there: the hang),
    # fail, or are interrupted, before or after the real load.
    real_load = _loading.load_model
    chaos = random.Random(SEED)
    chaos_lock = threading.Lock()
    stats: Counter[str] = Counter()
    stats_lock = threading.Lock()

    def count(what: str) -> None:
        with stats_lock:
            stats[what] += 1

    def chaotic_load(*args: Any, **kwargs: Any) -> Any:
        with chaos_lock:
            n = stats["loads"]
            roll, when, full_gc = chaos.random(), chaos.random() < 0.5, chaos.random() < 0.1
            stats["loads"] += 1
        if n < len(FIRST_FAULTS):  # every kind of fault early on, whatever the timing; then at random
            roll, when = FIRST_FAULTS[n]
        gc.collect() if full_gc else gc.collect(1)
        fault: BaseException | None = None
        if roll < 0.15:
            fault = ModelLoadError("injected load failure")
        elif roll < 0.3:
            fault = KeyboardInterrupt()
        if fault is not None and when:
            raise fault
        model = real_load(*args, **kwargs)
        gc.collect(1)
        if fault is not None:
            raise fault
        return model

    monkeypatch.setattr(_loading, "load_model", chaotic_load)
    mismatches: list[str] = []
    errors: list[str] = []
    kept: list[PromptEmbedder] = []
    kept_lock = threading.Lock()

    def worker(t: int) -> None:
        try:
            lifecycles(random.Random(SEED * 1000 + t))
        except BaseException as exc:  # any error that is not an injected fault fails the test
            errors.append(f"thread {t}: {type(exc).__name__}: {exc}")

    def lifecycles(rng: random.Random) -> None:
        mine: list[PromptEmbedder] = []
        for _ in range(ROUNDS):
            if mine and rng.random() < 0.5:
                mine.pop(rng.randrange(len(mine))).close()
            i = rng.randrange(len(identities))
            try:
                emb = PromptEmbedder(**identities[i])
            except ModelLoadError as exc:
                if "injected" not in str(exc):
                    raise
                count("failed")
                continue
            except KeyboardInterrupt:
                count("interrupted")
                continue
            name, job = JOBS[rng.randrange(len(JOBS))]
            got = job(emb)
            if not np.allclose(got, expected[(i, name)], atol=2e-6, rtol=0):
                mismatches.append(f"identity {i} job {name}: max diff {np.abs(got - expected[(i, name)]).max()}")
            how = rng.choice(["close", "cycle", "drop", "keep", "with"])
            count(how)
            if how in ("close", "with"):
                emb.close()
            elif how == "cycle":
                emb._cycle = emb  # type: ignore[attr-defined]  # only the cyclic collector can free it now
            elif how == "keep":
                mine.append(emb)
            del emb
            if rng.random() < 0.2:
                gc.collect(1)
        with kept_lock:  # left open for the reference count check
            kept.extend(mine)

    def run() -> None:
        threads = [threading.Thread(target=worker, args=(t,), name=f"stress-{t}") for t in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()

    bounded(run, timeout=600, what=f"{THREADS} threads x {ROUNDS} embedder lifecycles")
    monkeypatch.setattr(_loading, "load_model", real_load)

    print(f"stress: {dict(stats)}")  # shown with pytest -s / -rP
    assert not errors, errors[:5]
    assert not mismatches, mismatches[:5]
    # The chaos really happened: failures, interrupts, cyclic and plain drops, and models freed and loaded again.
    assert stats["failed"] and stats["interrupted"] and stats["cycle"] and stats["drop"], stats
    assert stats["loads"] > len(identities), stats
    # Every dropped embedder's release is carried out: the references left are exactly the embedders kept open.
    gc.collect()
    _registry.drain()
    state = _registry.state()
    held = Counter(e._require().key for e in kept)
    assert {k: state.refs.get(k, 0) for k in keys} == {k: held.get(k, 0) for k in keys}, (state, held)
    assert not state.busy and state.queued == 0
    for emb in kept:
        np.testing.assert_allclose(JOBS[0][1](emb), expected[(keys.index(emb._require().key), "queries")], atol=2e-6)
        emb.close()
    state = _registry.state()
    assert not set(state.refs) & set(keys) and not state.busy, state  # refcounts back to zero, entries gone
