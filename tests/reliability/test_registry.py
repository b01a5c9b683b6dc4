"""The shared-model registry on its own, with stand-in models: per-key loading, failures, races, finalizers.

``load`` callables here return a plain object instead of a SentenceTransformer, so each rule is tested in
milliseconds. The registry's full garbage collection on the last release is replaced by a no-op in this module
(a stand-in model has no reference cycles and dies when its last reference goes); the real one runs in
``tests/reliability/``.
"""

from __future__ import annotations

import _thread
import gc
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from promptembed import _registry


@dataclass(frozen=True)
class Key:
    """The registry is generic over its key: it only reads ``source`` (messages) and ``device`` (freeing, fork)."""

    source: str
    device: str = "cpu"


KEYS: list[Any] = [Key(f"stand-in-{i}") for i in range(4)]


class Model:
    """A stand-in model that records how many copies are alive."""

    alive: ClassVar[set[int]] = set()

    def __init__(self, name: str) -> None:
        self.name = name
        Model.alive.add(id(self))
        weakref.finalize(self, Model.alive.discard, id(self))


@pytest.fixture(autouse=True)
def _registry_clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_registry, "gc", SimpleNamespace(collect=lambda: 0))
    yield
    st = _registry.state()
    ours = set(KEYS)
    assert not (set(st.refs) | set(st.busy)) & ours, f"left in the registry: {st}"


def loader(name: str, calls: list[str] | None = None, before: Callable[[], None] | None = None) -> Callable[..., Any]:
    def load() -> tuple[Any, str | None]:
        if calls is not None:
            calls.append(name)
        if before is not None:
            before()
        return Model(name), None

    return load


def in_threads(bounded: Any, fns: list[Callable[[], Any]], timeout: float = 30) -> list[Any]:
    """Run each fn in its own thread under the watchdog; results or raised errors, in order."""
    out: list[Any] = [None] * len(fns)

    def run_all() -> None:
        def one(i: int) -> None:
            try:
                out[i] = fns[i]()
            except BaseException as exc:  # handed back to the test
                out[i] = exc

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(fns))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    bounded(run_all, timeout=timeout, what="registry threads")
    return out


def wait_until(cond: Callable[[], bool], timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.005)


def test_same_key_from_many_threads_loads_once(bounded: Any) -> None:
    calls: list[str] = []
    gate = threading.Event()
    key = KEYS[0]
    fns = [lambda: _registry.acquire(key, load=loader("m", calls, before=gate.wait), model_type=None)] * 6

    def opener() -> None:
        wait_until(lambda: _registry.state().busy.get(key) == "loading")
        time.sleep(0.2)  # the other threads are now waiting for this one load
        gate.set()

    *entries, _ = in_threads(bounded, [*fns, opener])
    assert calls == ["m"]
    assert all(e is entries[0] for e in entries) and entries[0].refs == 6
    for e in entries:
        _registry.release(e)


def test_different_keys_load_at_the_same_time(bounded: Any) -> None:
    """Each load waits at a barrier that only opens when both loads run at once: serialized loads would fail."""
    barrier = threading.Barrier(2, timeout=20)
    spans: dict[str, tuple[float, float]] = {}

    def slow(name: str) -> Callable[[], None]:
        def before() -> None:
            start = time.monotonic()
            barrier.wait()
            time.sleep(0.3)
            spans[name] = (start, time.monotonic())

        return before

    a, b = in_threads(
        bounded,
        [
            partial(_registry.acquire, k, load=loader(k.source, before=slow(k.source)), model_type=None)
            for k in KEYS[:2]
        ],
    )
    assert isinstance(a, _registry.LoadedModel) and isinstance(b, _registry.LoadedModel), (a, b)
    (sa, ea), (sb, eb) = spans.values()
    assert max(sa, sb) < min(ea, eb), f"loads did not overlap: {spans}"
    _registry.release(a)
    _registry.release(b)


def test_failed_load_leaves_nothing_and_waiters_share_the_error(bounded: Any) -> None:
    key = KEYS[0]
    calls: list[str] = []
    gate = threading.Event()

    def broken() -> None:
        gate.wait()
        raise OSError("corrupt weights")

    def opener() -> None:
        wait_until(lambda: _registry.state().busy.get(key) == "loading")
        time.sleep(0.2)
        gate.set()

    fns = [lambda: _registry.acquire(key, load=loader("bad", calls, before=broken), model_type=None)] * 3
    *errors, _ = in_threads(bounded, [*fns, opener])
    assert calls == ["bad"]  # one attempt, its error handed to every waiter
    assert all(isinstance(e, OSError) and str(e) == "corrupt weights" for e in errors), errors
    st = _registry.state()
    assert key not in st.refs and key not in st.busy
    entry = _registry.acquire(key, load=loader("good", calls), model_type=None)  # the next attempt loads cleanly
    assert entry.model.name == "good" and entry.refs == 1
    _registry.release(entry)


def test_interrupt_in_load_lets_a_waiter_load_instead(bounded: Any) -> None:
    key = KEYS[0]
    calls: list[str] = []
    gate = threading.Event()

    def interrupted() -> None:
        if len(calls) == 1:
            gate.wait()
            raise KeyboardInterrupt

    def opener() -> None:
        wait_until(lambda: _registry.state().busy.get(key) == "loading")
        time.sleep(0.2)
        gate.set()

    first, second, _ = in_threads(
        bounded,
        [lambda: _registry.acquire(key, load=loader("m", calls, before=interrupted), model_type=None)] * 2 + [opener],
    )
    interrupted_one = [r for r in (first, second) if isinstance(r, KeyboardInterrupt)]
    loaded = [r for r in (first, second) if isinstance(r, _registry.LoadedModel)]
    assert len(interrupted_one) == 1 and len(loaded) == 1 and calls == ["m", "m"]
    assert loaded[0].refs == 1
    _registry.release(loaded[0])


def test_ctrl_c_during_a_load_in_the_main_thread() -> None:
    """A real KeyboardInterrupt (delivered like Ctrl-C) at some point of a slow load: no half entry is left."""
    key = KEYS[1]
    started = threading.Event()

    def slow() -> None:
        started.set()
        end = time.monotonic() + 20
        while time.monotonic() < end:
            time.sleep(0.01)
        raise AssertionError("the interrupt never arrived")

    def interrupt() -> None:
        started.wait(20)
        time.sleep(0.1)
        _thread.interrupt_main()

    # Python's own Ctrl-C handler, whatever an earlier test's library left installed: interrupt_main does nothing
    # while SIGINT is ignored or at its default (the likely cause of one full-suite run where it never arrived)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            _registry.acquire(key, load=loader("m", before=slow), model_type=None)
    finally:
        signal.signal(signal.SIGINT, previous)
    st = _registry.state()
    assert key not in st.refs and key not in st.busy
    entry = _registry.acquire(key, load=loader("m"), model_type=None)
    _registry.release(entry)


def test_release_racing_acquire_never_frees_a_model_in_use_nor_keeps_a_freed_one(bounded: Any) -> None:
    """Threads acquire and release one key in a tight loop; the last release frees, the next acquire reloads."""
    key = KEYS[2]
    violations: list[str] = []
    loads = [0]

    def load() -> tuple[Any, str | None]:
        if Model.alive:  # a new copy while an old one still lives: the free and the load overlapped
            violations.append(f"load while {len(Model.alive)} copy alive")
        loads[0] += 1
        return Model("m"), None

    def hammer() -> None:
        for _ in range(300):
            entry = _registry.acquire(key, load=load, model_type=None)
            if not hasattr(entry, "model") or entry.refs < 1 or _registry.state().refs.get(key) != entry.refs:
                violations.append("acquired a freed or unregistered entry")
            _registry.release(entry)

    Model.alive.clear()
    in_threads(bounded, [hammer] * 6, timeout=120)
    assert not violations, violations[:5]
    assert loads[0] > 1  # the model really was freed and reloaded during the race
    assert not Model.alive  # and the last copy is gone


def test_release_from_inside_the_registry_is_queued_not_deadlocked(bounded: Any) -> None:
    """What a finalizer does when garbage collection runs while its thread holds the registry lock."""
    key = KEYS[3]
    entry = _registry.acquire(key, load=loader("m"), model_type=None)
    other = _registry.acquire(key, load=loader("m"), model_type=None)

    def inside() -> tuple[int, int]:
        with _registry._lock:
            _registry.release(entry)  # an ordinary Lock would wait for itself here, forever
            with pytest.raises(RuntimeError, match="from inside the model registry"):
                _registry.acquire(key, load=loader("m"), model_type=None)
            return _registry._queue.qsize(), entry.refs

    queued, refs = bounded(inside, timeout=20, what="release inside the registry lock")
    assert (queued, refs) == (1, 2)
    assert _registry.state().refs[key] == 2
    _registry.drain()
    assert _registry.state().refs[key] == 1
    _registry.release(other)


def test_finalizer_release_is_carried_out_at_the_next_safe_point() -> None:
    key = KEYS[0]

    class Holder:
        def __init__(self) -> None:
            self.entry = _registry.acquire(key, load=loader("m"), model_type=None)
            self.me = self  # a reference cycle: only the cyclic collector frees it

        def __del__(self) -> None:
            _registry.release_later(self.entry)

    Holder()
    gc.collect()  # the real collector (the module's is the no-op)
    assert _registry.state().refs.get(key) == 1 and _registry.state().queued >= 1
    assert key not in _registry.loaded_keys()  # a safe point: the queued release is carried out first


def test_load_that_asks_for_its_own_model_fails_instead_of_waiting_for_itself(bounded: Any) -> None:
    key = KEYS[0]

    def recursive() -> None:
        _registry.acquire(key, load=loader("inner"), model_type=None)

    with pytest.raises(RuntimeError, match="requested by the thread that is loading it"):
        bounded(
            lambda: _registry.acquire(key, load=loader("m", before=recursive), model_type=None),
            timeout=20,
            what="recursive load",
        )


def test_releasing_twice_is_an_error() -> None:
    entry = _registry.acquire(KEYS[0], load=loader("m"), model_type=None)
    _registry.release(entry)
    with pytest.raises(RuntimeError, match="released more times than it was acquired"):
        _registry.release(entry)
