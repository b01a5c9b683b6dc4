"""Opening the vector cache's SQLite file: which errors mean a damaged file, and the fix for every other one.

Only SQLITE_CORRUPT and SQLITE_NOTADB (and their extended codes) say that the file itself is damaged, so that
:class:`~promptembed.cache.VectorCache` may move it aside and start a new one. A full disk, too many open files, a
read-only folder or a lock held for a minute say nothing about the file: they become a
:class:`~promptembed.errors.CacheError` that names the problem and its fix, and the file is left as it is.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

try:  # imported now: with no file descriptor left, importing the extension module would fail itself
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

__all__ = ["cannot_open", "connect_read_only", "is_corrupt"]

# Only these mean the file itself is damaged. Every other error while opening (a full disk, too many open files, a
# read-only folder, a lock held too long) says nothing about the file, which must then be left as it is.
_CORRUPT = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
# the fix for each primary result code (the low byte of an extended one) that can stop an open
_FIXES = {
    sqlite3.SQLITE_FULL: "the disk is full; free disk space there or pass a cache_dir on another disk",
    sqlite3.SQLITE_IOERR: (
        "a disk I/O error, often a full disk; free disk space, check the disk, or pass another cache_dir"
    ),
    sqlite3.SQLITE_READONLY: "the file or its folder is read-only; pass a writable cache_dir",
    sqlite3.SQLITE_PERM: "permission denied; pass a cache_dir this user can write",
    sqlite3.SQLITE_BUSY: "another process held its lock for over a minute; retry when it is done",
    sqlite3.SQLITE_LOCKED: "another connection held its lock for over a minute; retry when it is done",
    sqlite3.SQLITE_NOMEM: "out of memory; free memory and retry",
}
_OS_FIXES = {
    errno.ENOSPC: _FIXES[sqlite3.SQLITE_FULL],
    errno.EDQUOT: "the disk quota is used up; free space or pass a cache_dir on another disk",
    errno.EMFILE: "too many open files; raise the open-file limit (ulimit -n, resource.setrlimit) or close files",
    errno.ENFILE: "the system has too many open files; close files or raise the system limit (fs.file-max)",
    errno.EROFS: _FIXES[sqlite3.SQLITE_READONLY],
    errno.EACCES: _FIXES[sqlite3.SQLITE_PERM],
    errno.EPERM: _FIXES[sqlite3.SQLITE_PERM],
}


def is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    """Whether SQLite reports the file itself as damaged (SQLITE_CORRUPT, SQLITE_NOTADB and their extended codes)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _CORRUPT


def _near_the_open_file_limit() -> bool:
    """Whether this process has (almost) no file descriptor left, on systems that list them in /proc/self/fd."""
    if resource is None:  # pragma: no cover - Windows
        return False
    try:
        used = len(os.listdir("/proc/self/fd"))
    except OSError as exc:
        return exc.errno == errno.EMFILE
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft != resource.RLIM_INFINITY and soft - used < 16


def cannot_open(path: Path, exc: BaseException) -> str:
    """The message of the :class:`CacheError` for a cache that could not be opened: the problem and its fix."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
        fix = _FIXES.get(code & 0xFF) if isinstance(code, int) else None
        if fix is None and isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_CANTOPEN:
            fix = (
                _OS_FIXES[errno.EMFILE]
                if _near_the_open_file_limit()
                else "SQLite could not open the file or create its -wal/-shm files beside it; pass a writable "
                "cache_dir, or raise the open-file limit (ulimit -n) if the process has many files open"
            )
        if fix is None and isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_ERROR:
            fix = "it is not a promptembed vector cache; pass another cache_dir or move the file away"
        detail = f"{name}: {exc}"
    else:
        err = getattr(exc, "errno", None)
        fix = _OS_FIXES.get(err) if isinstance(err, int) else None
        detail = str(exc)
    fix = fix or "pass another cache_dir if it persists"
    return f"Cannot open the vector cache {path} ({detail}): {fix}; the file was left as it is"


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to the cache at ``path`` in a folder this process cannot write.

    ``mode=ro`` reads the write-ahead log too, but needs the -shm file to exist or be creatable. When it cannot be
    (a cache closed cleanly has none, and the folder is read-only), the file is opened ``immutable``: SQLite then
    takes no locks, which is right for a folder nobody can write here; each row's checksum guards the rest.
    """
    uri = path.resolve().as_uri()
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=60.0, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=60000")
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # opens (or fails to open) the -shm file
    except sqlite3.OperationalError as exc:
        if conn is not None:
            conn.close()
        # no -shm file and none can be made: SQLite says CANTOPEN, or READONLY_DIRECTORY for a folder it cannot
        # write (not the other READONLY codes: CANTINIT means a -shm exists that another process may be writing)
        code = getattr(exc, "sqlite_errorcode", 0)
        if code & 0xFF != sqlite3.SQLITE_CANTOPEN and code != sqlite3.SQLITE_READONLY_DIRECTORY:
            raise
        conn = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, timeout=60.0, isolation_level=None)
    return conn
