"""A watchdog for lifecycle tests: run a scenario in a thread, and on a hang dump every thread's stack and stop.

A hang in the model registry leaves its locks held for the rest of the process, so every later test that loads a
model would hang too; the watchdog therefore stops the whole pytest session (``pytest.exit``) after printing the
stacks, instead of letting CI sit out its time limit.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def thread_stacks() -> str:
    """The current Python stack of every thread in the process, named."""
    names = {t.ident: t.name for t in threading.enumerate()}
    parts = []
    for ident, frame in sys._current_frames().items():
        parts.append(f"--- thread {names.get(ident, '?')!r} ({ident}):\n" + "".join(traceback.format_stack(frame)))
    return "\n".join(parts)


def run_bounded(fn: Callable[[], T], *, timeout: float, what: str) -> T:
    """Run ``fn`` in a daemon thread; return its result or re-raise its error; stop the session after ``timeout``."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # handed back to the test thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"watchdog:{what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        stacks = thread_stacks()
        sys.stderr.write(f"\nHANG: {what} did not finish in {timeout:.0f} s. Thread stacks:\n{stacks}\n")
        pytest.exit(f"HANG: {what} did not finish in {timeout:.0f} s; all thread stacks:\n{stacks}", returncode=1)
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]  # type: ignore[return-value]


@pytest.fixture
def bounded() -> Callable[..., object]:
    """``bounded(fn, timeout=s, what="...")`` runs ``fn`` under the watchdog (see :func:`run_bounded`)."""
    return run_bounded
