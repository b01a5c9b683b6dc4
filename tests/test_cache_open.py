"""Opening the vector cache: only a damaged file is moved aside; every other failure leaves it and says the fix.

A full disk, too many open files, a read-only folder or a lock held too long say nothing about the file: the cache
used to move a healthy file aside as ``.corrupt-*`` (its vectors lost) and raise a raw ``sqlite3`` error.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from promptembed.cache import VectorCache
from promptembed.errors import CacheError


def _keys(n: int, prefix: str = "") -> list[bytes]:
    return [
        VectorCache.key(model="m", dtype="float32", prompt="", truncate_dim=None, normalize=True, text=f"{prefix}{i}")
        for i in range(n)
    ]


def _vectors(n: int, dim: int = 4) -> np.ndarray:
    return np.arange(n * dim, dtype=np.float32).reshape(n, dim)


def _filled(folder: Path, n: int = 3, dim: int = 4) -> list[bytes]:
    """A healthy cache in ``folder`` holding ``n`` vectors, closed and checkpointed (one file, no -wal)."""
    cache = VectorCache(folder)
    keys = _keys(n)
    cache.put(keys, _vectors(n, dim))
    cache.close()
    conn = sqlite3.connect(folder / "vectors.sqlite3")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()  # the last connection to close removes the -wal and -shm files
    assert [p.name for p in folder.iterdir()] == ["vectors.sqlite3"]
    return keys


def _snapshot(folder: Path) -> tuple[list[str], bytes]:
    """The folder's files (less SQLite's -wal/-shm companions, which any reader may create) and the database bytes."""
    names = sorted(p.name for p in folder.iterdir() if not p.name.endswith(("-wal", "-shm")))
    return names, (folder / "vectors.sqlite3").read_bytes()


def _fail_every_statement(monkeypatch: pytest.MonkeyPatch, name: str, message: str) -> None:
    """Make each SQLite connection's statements fail as SQLite fails with result code ``name``."""
    real_connect = sqlite3.connect

    class Failing(sqlite3.Connection):
        def execute(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
            exc = sqlite3.OperationalError(message)
            exc.sqlite_errorcode = getattr(sqlite3, name)
            exc.sqlite_errorname = name
            raise exc

    monkeypatch.setattr(sqlite3, "connect", lambda *a, **kw: real_connect(*a, factory=Failing, **kw))


@pytest.mark.parametrize(
    ("name", "message", "fix"),
    [
        ("SQLITE_FULL", "database or disk is full", "the disk is full; free disk space"),
        ("SQLITE_IOERR_SHMSIZE", "disk I/O error", "a disk I/O error, often a full disk; free disk space"),
        ("SQLITE_BUSY", "database is locked", "another process held its lock for over a minute; retry"),
        (
            "SQLITE_READONLY",
            "attempt to write a readonly database",
            "the file or its folder is read-only; pass a writable cache_dir",
        ),
    ],
)
def test_a_failure_that_is_not_corruption_leaves_a_healthy_cache_and_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, message: str, fix: str
) -> None:
    keys = _filled(tmp_path)
    before = _snapshot(tmp_path)
    with monkeypatch.context() as patch:
        _fail_every_statement(patch, name, message)
        with pytest.raises(CacheError, match=re.escape(f"({name}: {message}): {fix}")) as raised:
            VectorCache(tmp_path)
    assert str(tmp_path / "vectors.sqlite3") in str(raised.value)
    assert "the file was left as it is" in str(raised.value)
    assert _snapshot(tmp_path) == before  # not moved aside as .corrupt-*
    cache = VectorCache(tmp_path)  # once the disk has space again, every vector is still there
    np.testing.assert_array_equal(np.stack(cache.get(keys)), _vectors(3))  # type: ignore[arg-type]
    cache.close()


_OUT_OF_FILES = """
import os, sys
from promptembed.cache import VectorCache
from promptembed.errors import CacheError
held = []
try:
    while True:
        held.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
os.close(held.pop())  # one descriptor left: enough for the database file, not for its -wal and -shm files
try:
    VectorCache(sys.argv[1])
except CacheError as exc:
    print("CacheError:", exc)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_NOFILE is POSIX")
def test_too_many_open_files_leaves_the_cache_and_says_to_raise_the_limit(tmp_path: Path) -> None:
    keys = _filled(tmp_path)
    before = _snapshot(tmp_path)
    import resource

    def limit() -> None:  # in the child, before Python starts: the script itself imports nothing that opens files
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    run = subprocess.run(
        [sys.executable, "-c", _OUT_OF_FILES, str(tmp_path)], capture_output=True, text=True, preexec_fn=limit
    )
    # it raised OSError, from renaming the healthy file as corrupt; then ImportError, importing resource with no
    # file descriptor left to open its extension module
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("CacheError: Cannot open the vector cache"), run.stdout
    assert "raise the open-file limit (ulimit -n" in run.stdout
    assert _snapshot(tmp_path) == before
    cache = VectorCache(tmp_path)
    np.testing.assert_array_equal(np.stack(cache.get(keys)), _vectors(3))  # type: ignore[arg-type]
    cache.close()


def _deny_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every path look unwritable to ``os.access``, as a read-only folder does (tests may run as root)."""
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: not mode & os.W_OK and real_access(path, mode, **kw))


@pytest.mark.parametrize("shm", ["can be created", "cannot be created"])
def test_a_cache_in_a_read_only_folder_is_read_and_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, shm: str
) -> None:
    keys = _filled(tmp_path)
    before = (tmp_path / "vectors.sqlite3").read_bytes()
    _deny_writes(monkeypatch)
    opened: list[str] = []
    real_connect = sqlite3.connect

    class NoShm(sqlite3.Connection):  # a read-only folder holds no -shm file and none can be created there
        def execute(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
            exc = sqlite3.OperationalError("attempt to write a readonly database")  # what SQLite 3.40 says there
            exc.sqlite_errorcode = sqlite3.SQLITE_READONLY_DIRECTORY
            exc.sqlite_errorname = "SQLITE_READONLY_DIRECTORY"
            raise exc

    def connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        opened.append(str(database))
        if shm == "cannot be created" and "immutable" not in str(database):
            kwargs["factory"] = NoShm
        conn: sqlite3.Connection = real_connect(database, *args, **kwargs)
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)
    with caplog.at_level("WARNING", "promptembed"):
        cache = VectorCache(tmp_path)
    assert cache.read_only
    assert opened and all("mode=ro" in uri for uri in opened)
    assert any("immutable=1" in uri for uri in opened) == (shm == "cannot be created")
    assert "is read-only (its folder or file is not writable): lookups use it, new vectors are not stored" in (
        caplog.text
    )
    np.testing.assert_array_equal(np.stack(cache.get(keys)), _vectors(3))  # type: ignore[arg-type]
    caplog.clear()
    with caplog.at_level("WARNING", "promptembed"):
        cache.put(_keys(2, prefix="new"), _vectors(2))  # logged, never raised
    assert "is read-only: 2 vectors were computed but not stored" in caplog.text
    assert cache.get(_keys(2, prefix="new")) == [None, None] and len(cache) == 3
    with pytest.raises(CacheError, match=re.escape("it is read-only (its folder or file is not writable)")):
        cache.clear()
    assert len(cache) == 3
    cache.close()
    assert (tmp_path / "vectors.sqlite3").read_bytes() == before
    assert not list(tmp_path.glob("vectors.sqlite3.corrupt-*"))


def test_a_read_only_folder_without_a_cache_raises_cache_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _deny_writes(monkeypatch)
    with pytest.raises(CacheError, match=re.escape("its folder is read-only; pass a writable cache_dir")):
        VectorCache(tmp_path)
    assert not list(tmp_path.iterdir())


_READ_IN_A_CHMOD_FOLDER = """
import sys
import numpy as np
from promptembed.cache import VectorCache
keys = [bytes.fromhex(k) for k in sys.argv[2:]]
cache = VectorCache(sys.argv[1])
got = cache.get(keys)
print("read_only", cache.read_only, "hits", sum(v is not None for v in got))
np.testing.assert_array_equal(np.stack(got), np.arange(12, dtype=np.float32).reshape(3, 4))
"""


def _as_a_user_chmod_binds() -> list[str] | None:
    """A command prefix under which chmod binds (root without CAP_DAC_OVERRIDE), or ``None`` if there is none."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return []
    import shutil

    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", "--"]


def test_a_cache_in_a_folder_chmod_read_only_is_read(tmp_path: Path) -> None:
    # A cache closed cleanly has no -shm file, and SQLite answers mode=ro in a folder it cannot write with
    # SQLITE_READONLY_DIRECTORY: that raised CacheError instead of opening the cache read-only (immutable).
    prefix = _as_a_user_chmod_binds()
    if prefix is None:
        pytest.skip("running as root without setpriv: chmod does not stop root writing")
    keys = _filled(tmp_path)
    tmp_path.chmod(0o555)
    try:
        probe = "import os, sys; sys.exit(3 if not os.access(sys.argv[1], os.W_OK) else 0)"
        if subprocess.run([*prefix, sys.executable, "-c", probe, str(tmp_path)]).returncode != 3:
            pytest.skip("chmod does not stop this user writing (root whose capabilities setpriv cannot drop)")
        run = subprocess.run(
            [*prefix, sys.executable, "-c", _READ_IN_A_CHMOD_FOLDER, str(tmp_path), *(k.hex() for k in keys)],
            capture_output=True,
            text=True,
        )
    finally:
        tmp_path.chmod(0o755)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "read_only True hits 3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors.sqlite3"]  # nothing written beside it


def test_opening_a_cache_does_not_read_the_whole_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # PRAGMA quick_check read every page at each open: 7 s for a 400 MiB cache not in the page cache
    keys = _filled(tmp_path)
    statements: list[str] = []
    real_connect = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = real_connect(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", traced)
    for _ in range(2):
        cache = VectorCache(tmp_path)
        assert all(v is not None for v in cache.get(keys))
        cache.close()
    assert statements
    assert [s for s in statements if re.search(r"quick_check|integrity_check", s, re.IGNORECASE)] == []


def test_a_cache_damaged_past_its_header_never_gives_a_wrong_vector(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    n, dim = 2000, 64
    keys = _filled(tmp_path, n, dim)
    db = tmp_path / "vectors.sqlite3"
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for start in range(4 * page, len(data) - page, 3 * page):  # every third page after the first four
        data[start : start + page] = b"\xa5" * page
    db.write_bytes(bytes(data))
    with caplog.at_level("WARNING", "promptembed"):
        cache = VectorCache(tmp_path)  # the header and the schema are fine: it opens
        got = cache.get(keys)
    want = _vectors(n, dim)
    assert any(v is None for v in got)
    assert all(v is None or np.array_equal(v, want[i]) for i, v in enumerate(got))
    assert "the file is damaged: delete" in caplog.text or "failed its checksum" in caplog.text
    cache.close()
