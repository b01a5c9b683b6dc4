"""Input files of ``promptembed embed`` by their bytes (names that are not UTF-8), and Parquet rows by range."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from promptembed.errors import InputError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["RowRanges", "open_native", "path_text"]

#: Rows decoded at a time (a part of more rows is read in several batches).
BATCH_ROWS = 65_536


def path_text(path: str | os.PathLike[str]) -> str:
    r"""A path as text that UTF-8 can hold (JSON files, messages), with ``\xe9`` escapes for bytes that are not UTF-8.

    A name copied from an older system (Latin-1 ``café.jsonl``) reaches Python with surrogates in it, which no UTF-8
    file or console can take. Each run of a job writes the same text for the same file, so a resume matches it.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def open_native(path: str | os.PathLike[str]) -> pa.NativeFile:
    """A file opened for pyarrow to read, by its bytes: pyarrow's own path handling takes UTF-8 names only."""
    import pyarrow as pa

    return pa.OSFile(os.fsencode(path))


class RowRanges:
    """Rows ``[start, start + n)`` of Parquet files, read batch by batch from the row groups that hold them.

    Memory holds about the rows asked for, not whole row groups (pandas and pyarrow write a file of up to a million
    rows as one). A range that starts where the last one of the same file ended goes on from there; any other
    range opens the file again and decodes the rows of its first row group that come before it, once.
    """

    def __init__(self) -> None:
        self._file: pa.NativeFile | None = None
        self._path = ""
        self._schema: pa.Schema | None = None
        self._batches: Iterator[pa.RecordBatch] = iter(())
        self._row = 0  # the file's row number of the first row of self._rest, else of the next batch
        self._rest: pa.RecordBatch | None = None

    def __enter__(self) -> RowRanges:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file read last."""
        if self._file is not None:
            self._file.close()
        self._file, self._path, self._rest = None, "", None

    def read(self, path: str, start: int, n_rows: int) -> pa.Table:
        """Rows ``[start, start + n_rows)`` of the Parquet file at ``path``, every column, types as stored."""
        import pyarrow as pa

        if path != self._path or start != self._row:
            self._open(path, start, n_rows)
        pieces: list[pa.RecordBatch] = []
        need = n_rows
        while need:
            batch = self._rest if self._rest is not None else next(self._batches, None)
            self._rest = None
            if batch is None:
                raise InputError(
                    f"{path_text(path)} has fewer than {start + n_rows} rows: it changed since the scan; rerun the job"
                )
            if self._row + batch.num_rows <= start:  # rows of the first row group before the range
                self._row += batch.num_rows
                continue
            batch = batch.slice(start - self._row) if self._row < start else batch
            self._row = max(self._row, start)
            taken = batch.slice(0, need)
            pieces.append(taken)
            need -= taken.num_rows
            self._row += taken.num_rows
            if taken.num_rows < batch.num_rows:
                self._rest = batch.slice(taken.num_rows)
        return pa.Table.from_batches(pieces, schema=self._schema)

    def _open(self, path: str, start: int, n_rows: int) -> None:
        import pyarrow.parquet as pq

        self.close()
        self._file = open_native(path)
        pf = pq.ParquetFile(self._file)
        groups: list[int] = []
        first = seen = 0
        for g in range(pf.metadata.num_row_groups):
            size = pf.metadata.row_group(g).num_rows
            if seen + size > start:
                if not groups:
                    first = seen
                groups.append(g)
            seen += size
        self._path, self._schema, self._row = path, pf.schema_arrow, first
        self._batches = pf.iter_batches(batch_size=max(1, min(n_rows, BATCH_ROWS)), row_groups=groups)
