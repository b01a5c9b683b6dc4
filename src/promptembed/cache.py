"""A persistent, prompt-safe vector cache (SQLite, safe across threads and processes).

A vector is stored under a key that covers everything that decides it: the model's identity by its *weights* and
its *configuration* (a SHA-256 over the loaded parameters, each module's settings such as the pooling mode, and the
tokenizer: :func:`model_fingerprint`; so a folder replaced by a finetuned model under the same path misses), the
weight dtype and the load options that change vectors without changing weights (``max_seq_length``, tokenizer,
config and backend options), the resolved prompt text and the role (so a query vector and a document vector of the
same text never collide, also on a ``Router`` model whose query and document routes share a prompt),
``truncate_dim``, normalization, and the text. Vectors are stored as float32, before any output
quantization (``precision=``), which is applied after the cache. Each row carries a checksum; a row that fails it is
a miss and is rewritten. Opening the cache reads its header and schema, not the whole file. A file SQLite reports as
damaged (SQLITE_CORRUPT, SQLITE_NOTADB) is moved aside (the newest such copy is kept, older ones deleted) and
rebuilt; any other failure to open it (a full disk, too many open files, a lock held for a minute) raises
:class:`~promptembed.errors.CacheError` naming the fix and leaves the file as it is. An existing cache in a folder
this process cannot write is opened read-only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import struct
import threading
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from promptembed._cache_open import cannot_open, connect_read_only, is_corrupt
from promptembed.errors import CacheError

__all__ = ["VectorCache", "cached_compute", "cached_embed", "model_fingerprint", "weights_fingerprint"]

logger = logging.getLogger("promptembed")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS vectors "
    "(key BLOB PRIMARY KEY, dim INTEGER NOT NULL, vec BLOB NOT NULL, crc INTEGER NOT NULL)"
)
_FILE = "vectors.sqlite3"
# SQLite: a connection carried across fork() must not be used in the child (locking problems, corruption). A forked
# child opens its own and keeps its copy of the parent's here, so that closing it cannot touch the parent's WAL.
_FORKED_AWAY: list[sqlite3.Connection] = []


def weights_fingerprint(model: Any) -> str:
    """SHA-256 over a torch model's parameters and buffers (names, dtypes, shapes and bytes)."""
    import torch

    digest = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            t = tensor.detach().to("cpu").contiguous()
            digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def model_fingerprint(model: Any) -> str:
    """SHA-256 over what decides a loaded sentence-transformers model's vectors besides its input.

    That is its weights (:func:`weights_fingerprint`), each module's configuration (pooling mode, a Dense layer's
    activation, a Router's routes), the transformers configuration (minus the path it was loaded from), the maximum
    sequence length and the tokenizer (its full serialized form for a fast tokenizer, else its vocabulary and
    settings, and for both the side it truncates and pads). Two folders with the same weights but another pooling
    mode or tokenizer are different models.
    """
    import json

    from transformers import PreTrainedModel

    digest = hashlib.sha256(weights_fingerprint(model).encode())
    for name, module in model.named_modules():
        parts = [name, type(module).__qualname__]
        get_config = getattr(module, "get_config_dict", None)
        if callable(get_config):
            parts.append(json.dumps(get_config(), sort_keys=True, default=str))
        if isinstance(module, PreTrainedModel):
            config = {
                k: v for k, v in module.config.to_dict().items() if k not in ("_name_or_path", "transformers_version")
            }
            parts.append(json.dumps(config, sort_keys=True, default=str))
        digest.update("\x00".join(parts).encode() + b"\x01")
    digest.update(f"max_seq_length={getattr(model, 'max_seq_length', None)}".encode())
    tokenizer = getattr(model, "tokenizer", None)
    # which end of a long text is cut (and padded) is a setting of the Python tokenizer, saved in tokenizer_config.json
    sides = {side: getattr(tokenizer, side, None) for side in ("truncation_side", "padding_side")}
    digest.update(json.dumps(sides, sort_keys=True).encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # without the truncation and padding settings, which the first encode call sets
        serialized = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
        digest.update(json.dumps(serialized, sort_keys=True).encode())
    elif tokenizer is not None:
        settings = {
            k: v for k, v in getattr(tokenizer, "init_kwargs", {}).items() if "file" not in k and "path" not in k
        }
        digest.update(json.dumps([sorted(tokenizer.get_vocab().items()), settings], default=str).encode())
    return digest.hexdigest()


class VectorCache:
    """Vectors on disk under ``folder`` (one SQLite file).

    An existing cache in a folder (or a file) this process cannot write is opened read-only (``read_only`` is then
    true): lookups use it, new vectors are not stored, :meth:`clear` raises :class:`CacheError`.

    Example:
        >>> import tempfile, numpy as np
        >>> from promptembed.cache import VectorCache
        >>> cache = VectorCache(tempfile.mkdtemp())
        >>> key = cache.key(model="m", dtype="float32", prompt="q: ", truncate_dim=None, normalize=True, text="hi")
        >>> cache.put([key], np.ones((1, 3), dtype=np.float32))
        >>> cache.get([key])[0].tolist()
        [1.0, 1.0, 1.0]
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"Cannot create the cache folder {self.folder}: {exc}; pass a writable cache_dir") from exc
        self.path = self.folder / _FILE
        self._local = threading.local()
        self.read_only = False
        self._warned_read_only = False
        self._open()

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            return connect_read_only(self.path)
        conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=60000")
        conn.execute("PRAGMA journal_size_limit=67108864")  # a checkpoint cuts the write-ahead log back to 64 MiB
        conn.execute(_SCHEMA)
        return conn

    def _open(self) -> None:
        """Open the cache cheaply: read its header and schema, never the whole file.

        A file that SQLite reports as corrupt or not a database is moved aside and rebuilt. Any other failure (a
        full disk, too many open files, a read-only folder without a cache in it, a lock held for a minute) raises
        :class:`CacheError` and leaves the files as they are. An existing cache whose folder is not writable is
        opened read-only.

        Damage deeper in the file is found when a read reaches it: :meth:`get` then answers misses (and each row
        carries a checksum), so a damaged file never gives a wrong vector. A full ``PRAGMA quick_check`` here read
        the whole file at every open (5 to 7 s for a 400 MiB cache not in the page cache).
        """
        try:
            exists = self.path.exists()
            if not exists and not os.access(self.folder, os.W_OK):
                raise CacheError(
                    f"Cannot create the vector cache {self.path}: its folder is read-only; pass a writable cache_dir"
                )
            self.read_only = exists and not (os.access(self.folder, os.W_OK) and os.access(self.path, os.W_OK))
            conn = self._connect()
            try:
                conn.execute("SELECT key, dim, vec, crc FROM vectors LIMIT 1").fetchall()
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            if not is_corrupt(exc):
                raise CacheError(cannot_open(self.path, exc)) from exc
            self._move_aside(exc)
        except CacheError:
            raise
        except OSError as exc:
            raise CacheError(cannot_open(self.path, exc)) from exc
        if self.read_only:
            logger.warning(
                "Vector cache %s is read-only (its folder or file is not writable): lookups use it, new vectors are "
                "not stored; pass a writable cache_dir to store them",
                self.path,
            )

    def _move_aside(self, exc: sqlite3.DatabaseError) -> None:
        """Move a corrupt cache file (and its -wal/-shm) aside, keeping the newest such copy, and start a new one."""
        aside = self.path.with_name(f"{_FILE}.corrupt-{int(time.time() * 1000)}")
        if self.read_only:
            raise CacheError(
                f"Vector cache {self.path} is corrupt ({exc}) and read-only (its folder or file is not writable), so it"
                " cannot be rebuilt; delete it or pass a writable cache_dir"
            ) from exc
        logger.warning(
            "Vector cache %s is unreadable (%s); moved it to %s and starting a new one", self.path, exc, aside
        )
        try:
            for suffix in ("", "-wal", "-shm"):
                src = Path(str(self.path) + suffix)
                if src.exists():
                    src.rename(Path(str(aside) + suffix))
            for older in self.folder.glob(f"{_FILE}.corrupt-*"):  # keep the newest copy for inspection, not all
                if not older.name.startswith(aside.name):
                    older.unlink(missing_ok=True)
            self._connect().close()
        except (sqlite3.DatabaseError, OSError) as again:
            raise CacheError(cannot_open(self.path, again)) from again

    @property
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) != os.getpid():
            _FORKED_AWAY.append(conn)  # a forked child's copy of its parent's connection: never used nor closed
            conn = None
        if conn is None:
            conn = self._connect()
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @staticmethod
    def key(*, model: str, dtype: str, prompt: str, truncate_dim: int | None, normalize: bool, text: str) -> bytes:
        """The cache key of one vector: a SHA-256 over every input that decides it (length-prefixed fields)."""
        digest = hashlib.sha256()
        for part in (model, dtype, prompt, str(truncate_dim), str(normalize), text):
            data = part.encode("utf-8")
            digest.update(struct.pack("<Q", len(data)))
            digest.update(data)
        return digest.digest()

    def get(self, keys: Sequence[bytes]) -> list[np.ndarray | None]:
        """Vectors for ``keys`` (``None`` for a miss or a row that fails its checksum)."""
        found: dict[bytes, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            part = list(keys[start : start + 500])
            marks = ",".join("?" * len(part))
            try:
                rows = self._conn.execute(
                    f"SELECT key, dim, vec, crc FROM vectors WHERE key IN ({marks})", part
                ).fetchall()
            except sqlite3.DatabaseError as exc:
                fix = f"; the file is damaged: delete {self.path} and a new one is built" if is_corrupt(exc) else ""
                logger.warning("Vector cache read failed (%s); computing instead%s", exc, fix)
                return [None] * len(keys)
            for key, dim, blob, crc in rows:
                if zlib.crc32(bytes(key) + bytes(blob)) != crc or len(blob) != 4 * dim:
                    logger.warning("Vector cache row failed its checksum; recomputing it")
                    continue
                found[bytes(key)] = np.frombuffer(blob, dtype="<f4").copy()
        return [found.get(k) for k in keys]

    def put(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Store vectors (float32 rows) under ``keys``; a write error is logged, never raised.

        A read-only cache stores nothing; the first such call logs a warning, later ones a debug line.
        """
        if self.read_only:
            log = logger.debug if self._warned_read_only else logger.warning
            self._warned_read_only = True
            log("Vector cache %s is read-only: %d vectors were computed but not stored", self.path, len(keys))
            return
        rows = []
        for key, vec in zip(keys, np.asarray(vectors, dtype="<f4"), strict=True):
            blob = vec.tobytes()
            rows.append((key, int(vec.shape[0]), blob, zlib.crc32(key + blob)))
        try:
            with self._conn:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany("INSERT OR REPLACE INTO vectors (key, dim, vec, crc) VALUES (?, ?, ?, ?)", rows)
        except sqlite3.DatabaseError as exc:
            logger.warning("Vector cache write failed (%s); vectors were computed but not stored", exc)

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])

    def clear(self) -> None:
        """Delete every stored vector and give the disk space back (also while other processes use the cache).

        The cache has no size limit: it keeps one row per distinct (model, prompt, options, text), about
        ``4 * dimension + 60`` bytes each. Clear it when its models or texts are no longer embedded. While another
        connection is in the middle of reading the cache, part of the space comes back only when that read ends
        (a warning says so); the rows are gone at once either way.

        Raises:
            CacheError: Nothing could be deleted (the cache was opened read-only because its folder or file is not
                writable, or another process held its write lock for over a minute).
        """
        if self.read_only:
            raise CacheError(
                f"Cannot clear the vector cache {self.path}: it is read-only (its folder or file is not writable); "
                "nothing was deleted. Make the folder writable, or delete the folder's vectors.sqlite3 files as a "
                "user who can"
            )
        conn = self._conn
        try:
            conn.execute("PRAGMA secure_delete=OFF")  # zeroing every freed page would need the cache's size again
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("DELETE FROM vectors")
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"Cannot clear the vector cache {self.path}: {exc}; nothing was deleted") from exc
        try:
            conn.execute("VACUUM")
            conn.execute("PRAGMA busy_timeout=2000")  # a reader elsewhere would make the checkpoint wait a minute
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            busy, problem = 1, str(exc)
        else:
            problem = "another connection is reading it"
        finally:
            conn.execute("PRAGMA busy_timeout=60000")
        if busy:
            logger.warning(
                "Vector cache %s is empty, but not all of its disk space is back yet (%s); the rest comes back when "
                "the other connections finish reading",
                self.path,
                problem,
            )

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            if getattr(self._local, "pid", None) == os.getpid():
                conn.close()
            else:
                _FORKED_AWAY.append(conn)
            self._local.conn = None


def cached_compute(cache: VectorCache, keys: Sequence[bytes], compute: Any, dim: int) -> np.ndarray:
    """Rows for ``keys`` from ``cache``; the misses come from ``compute(indices) -> array`` and are stored."""
    got = cache.get(keys)
    missing = [i for i, v in enumerate(got) if v is None or v.shape[0] != dim]
    out = np.empty((len(keys), dim), dtype=np.float32)
    if missing:
        fresh = compute(missing)
        cache.put([keys[i] for i in missing], fresh)
        out[missing] = fresh
    missed = set(missing)
    hits = [i for i in range(len(keys)) if i not in missed]
    if hits:
        out[hits] = np.stack([got[i] for i in hits])  # type: ignore[misc]
    return out


def cached_embed(
    cache: VectorCache,
    *,
    model: str,
    dtype: str,
    truncate_dim: int | None,
    normalize: bool,
    prompts: Sequence[str],
    texts: Sequence[str],
    compute: Any,
    dim: int,
) -> np.ndarray:
    """Embed ``texts`` (each with its resolved prompt) through ``cache``; misses come from ``compute(indices)``."""
    keys = [
        VectorCache.key(model=model, dtype=dtype, prompt=p, truncate_dim=truncate_dim, normalize=normalize, text=t)
        for p, t in zip(prompts, texts, strict=True)
    ]
    return cached_compute(cache, keys, compute, dim)
