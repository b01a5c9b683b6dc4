"""The folders beside a finetune's output: checkpoints to resume, and what killed runs left behind."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from promptembed.finetune.distributed import is_main_process

__all__ = [
    "LEFTOVER_IDLE_S",
    "publish",
    "restore_interrupted_overwrite",
    "saving_folder",
    "start_or_resume",
    "sweep_leftovers",
]

logger = logging.getLogger("promptembed")

#: A half-saved model folder of a dead process is deleted once nothing has written to it for this long.
LEFTOVER_IDLE_S = 3600


def restore_interrupted_overwrite(output: Path) -> None:
    """Put back a model that a killed overwrite left as ``.<name>.old-<pid>`` (the run died between two renames).

    Only while that run's new model is still in its saving folder (``.<name>.tmp-<host>-<pid>``, see
    :func:`saving_folder`): once it was renamed into place, the ``.old-<pid>`` is a stale previous model that a kill
    kept from the trash, never to come back (:func:`sweep_leftovers` deletes it).
    """
    if output.exists() or not is_main_process() or not output.parent.is_dir():
        return
    old = re.compile(re.escape(f".{output.name}") + r"\.old-(?P<pid>\d+)")
    left = []
    for p in output.parent.iterdir():
        m = old.fullmatch(p.name)
        if m and (p / "modules.json").is_file() and _between_renames(output, int(m.group("pid"))):
            left.append(p)
    if left:
        newest = max(left, key=lambda p: p.stat().st_mtime)
        try:
            newest.rename(output)
        except OSError:  # another process got there first
            return
        logger.warning("restored %s: an earlier run was killed while it replaced that model", output)


def _between_renames(output: Path, pid: int) -> bool:
    """Whether the run ``pid`` died between its two renames: its new model still in its saving folder, no output.

    The saving folder is ``.<name>.tmp-<host>-<pid>`` (``.<name>.tmp-<pid>`` from earlier versions).
    """
    if output.exists():
        return False
    tmp = re.compile(re.escape(f".{output.name}") + rf"\.tmp-(?:[A-Za-z0-9_-]+-)?{pid}")
    here = _host()
    for p in output.parent.iterdir():
        if tmp.fullmatch(p.name) and p.is_dir():
            # unless a run on this machine is between its renames right now
            return not (p.name == f".{output.name}.tmp-{here}-{pid}" and _process_alive(pid))
    return False


def _host() -> str:
    """Who can see this process's pid: the host name and the pid namespace (letters, digits, ``_``, ``-``; no dot).

    The namespace matters where containers share the host's name (``--network host``, ``hostNetwork: true``) but
    not its pids: there a pid that looks dead from here may be saving right now.
    """
    try:
        namespace = f"_{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:  # not Linux
        namespace = ""
    return (re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:64] or "host") + namespace


def saving_folder(output: Path) -> Path:
    """Where this process saves the model before it is renamed to ``output``: ``.<name>.tmp-<host>-<pid>``."""
    return output.parent / f".{output.name}.tmp-{_host()}-{os.getpid()}"


def sweep_leftovers(output: Path) -> None:
    """Delete what killed runs left beside ``output``.

    That is ``.<name>.trash-XXXXXXXX`` folders (a replaced model whose deletion was cut short), a
    ``.<name>.old-<pid>`` of a dead process that :func:`restore_interrupted_overwrite` would not put back (its run
    was killed after the new model was in place, before the old one went to the trash), and a half-saved
    ``.<name>.tmp-<host>-<pid>`` whose process is gone: at once when it was this machine's, else once nothing has
    written to it for an hour (a run on another machine sharing the folder cannot be seen from here; so for the
    ``.<name>.tmp-<pid>`` of earlier versions). "This machine" is the host name and the pid namespace (:func:`_host`):
    where the pid would be visible from here. Only these exact names, never a neighbour's folders.
    """
    if not is_main_process() or not output.parent.is_dir():
        return
    name = re.escape(f".{output.name}")
    here = _host()
    for left in output.parent.iterdir():
        trash = re.fullmatch(name + r"\.trash-[a-z0-9_]{8}", left.name)
        old = re.fullmatch(name + r"\.old-(?P<pid>\d+)", left.name)
        tmp = re.fullmatch(name + r"\.tmp-(?:(?P<host>[A-Za-z0-9_-]+)-)?(?P<pid>\d+)", left.name)
        if trash:
            shutil.rmtree(left, ignore_errors=True)
        elif old and not _process_alive(int(old.group("pid"))) and not _between_renames(output, int(old.group("pid"))):
            shutil.rmtree(left, ignore_errors=True)  # a replaced model a kill kept from the trash
        elif tmp and not _process_alive(int(tmp.group("pid"))):
            ours = tmp.group("host") == here
            if ours or time.time() - left.stat().st_mtime > LEFTOVER_IDLE_S:
                shutil.rmtree(left, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, under another user
        return True
    return True


def start_or_resume(work_dir: Path, run: dict[str, Any]) -> None:
    """Keep ``work_dir``'s checkpoints only when they come from this very run (base, rows, seed and settings).

    An empty ``work_dir`` is a fresh start, without a word: under torchrun the other ranks may have made it already.
    """
    marker = work_dir / "run.json"
    run = json.loads(json.dumps(run, default=str))  # as it reads back (tuples become lists)
    if work_dir.exists() and any(work_dir.iterdir()):
        try:
            before = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            before = None
        if before != run:
            changed = sorted(k for k in run if not isinstance(before, dict) or before.get(k) != run[k])
            logger.warning(
                "%s holds checkpoints of another run (%s differ); starting this one from the beginning",
                work_dir, ", ".join(changed) or "unknown settings",
            )  # fmt: skip
            shutil.rmtree(work_dir)
    work_dir.mkdir(exist_ok=True)
    marker.write_text(json.dumps(run, default=str), encoding="utf-8")


def publish(tmp: Path, output: Path) -> None:
    """Rename the finished model folder ``tmp`` to ``output``, replacing an existing one without a gap.

    The previous model is renamed aside first (``.<name>.old-<pid>``, which :func:`restore_interrupted_overwrite`
    puts back if the process dies between the two renames) and deleted only once the new one is in place.
    """
    if not output.exists():
        tmp.rename(output)
        return
    old = output.parent / f".{output.name}.old-{os.getpid()}"
    try:
        output.rename(old)
        tmp.rename(output)
    except BaseException:  # interrupted between the two renames: the previous model goes back
        if old.exists() and not output.exists():
            old.rename(output)
        raise
    try:  # ".old-" names only a whole model between the two renames, which a rerun may restore
        trash = Path(tempfile.mkdtemp(prefix=f".{output.name}.trash-", dir=output.parent))
        old.rename(trash / "model")
        old = trash
    except OSError:
        pass  # the new model is in place: deleting the old one is best effort
    shutil.rmtree(old, ignore_errors=True)
