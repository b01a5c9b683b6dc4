"""Rows of the text formats of ``promptembed embed``: JSONL lines and CSV rows, each with its byte offset.

A part of a text file is read again later from the byte offset of its first row, so the readers here hand out the
offset and the line or row number with every row; a row that cannot be parsed is an :class:`Invalid` (a bad row)
rather than an exception, except where the rest of the file could not be read either.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from promptembed.errors import InputError

__all__ = ["CSV_FIELD_LIMIT", "Invalid", "Lines", "csv_header", "csv_rows", "jsonl_rows"]


def _without_bom(cell: str) -> str:
    """A CSV's first header cell without the UTF-8 byte-order mark of Excel's exports.

    ``csv`` reads the quotes after the mark (``\ufeff"text"``) as part of the cell, so they go too.
    """
    if not cell.startswith("\ufeff"):
        return cell
    cell = cell[1:]
    if len(cell) >= 2 and cell[0] == cell[-1] == '"':
        cell = cell[1:-1].replace('""', '"')
    return cell


class Lines:
    """Decoded lines of a binary file that remember the byte offset after the last line handed out.

    ``lf`` says whether the file has LF line ends: a line handed out so far ended with one, or reading started after
    the first line (which ``readline`` ends only at an LF).
    """

    def __init__(self, f: IO[bytes], where: str) -> None:
        self._f, self.pos, self.line, self._where = f, f.tell(), 0, where
        self.lf = self.pos > 0

    def __iter__(self) -> Lines:
        return self

    def __next__(self) -> str:
        raw = self._f.readline()
        if not raw:
            raise StopIteration
        self.pos += len(raw)
        self.line += 1
        self.lf = self.lf or raw.endswith(b"\n")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{self._where}: line {self.line} is not UTF-8 ({exc.reason}); re-encode the file"
            ) from None


def jsonl_rows(lines: Lines, where: str) -> Iterator[tuple[int, int, object]]:
    """(byte offset, line number, parsed value or an error string) for each non-blank line."""
    while True:
        pos = lines.pos
        try:
            text = next(lines)
        except StopIteration:
            return
        if lines.line == 1:
            text = text.removeprefix("\ufeff")  # the UTF-8 byte-order mark some editors write
        if not text.strip():
            continue
        try:
            yield pos, lines.line, json.loads(text)
        except json.JSONDecodeError as exc:
            yield pos, lines.line, Invalid(f"not valid JSON ({exc.msg})")


@dataclass(frozen=True)
class Invalid:
    reason: str


#: The longest CSV cell read (csv's default limit, 131072 characters, is less than a long document).
CSV_FIELD_LIMIT = 2**31 - 1


def _csv_reader(lines: Lines) -> Iterator[list[str]]:
    """A strict ``csv`` reader: a cell that is not valid CSV is an error for its row, not a silently mangled value."""
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)
    return csv.reader(lines, strict=True)


def _csv_next(reader: Iterator[list[str]], lines: Lines, row: str) -> list[str] | Invalid:
    """The next CSV row, or why it is not valid CSV.

    A CR inside an unquoted cell of a file with LF (or CRLF) line ends is that row's problem (a bad row); in a file
    without any LF, csv reads the whole file as one line, so it is an error for the file.

    Raises:
        InputError: A quoted cell that never closes (the rest of the file would be one cell), or a file with lone CR
            line ends (old Mac style), which csv cannot read at all: one line naming the file and row.
        StopIteration: The end of the file.
    """
    try:
        return next(reader)
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise InputError(
                f"{lines._where}: {row} opens a quoted cell that never closes, so the rest of the file would be one "
                'cell; fix the stray " (or double it: "" inside a quoted cell)'
            ) from None
        if "new-line character" in str(exc):
            if lines.lf:
                return Invalid("has a carriage return (CR) inside an unquoted cell; quote that cell or remove the CR")
            raise InputError(
                f"{lines._where}: {row} cannot be read as CSV ({exc}); the file ends its lines with a lone CR "
                "(old Mac style): convert them to LF or CRLF"
            ) from None
        return Invalid(f"is not valid CSV ({exc})")


def csv_rows(lines: Lines, header: list[str]) -> Iterator[tuple[int, int, object]]:
    """(byte offset, data row number, cells by column or an error) for each row; blank lines are not rows.

    Blank lines are skipped and not counted, as ``csv.DictReader`` and pandas do, so ``row 3`` is the third row
    that has cells (pandas' index 2).
    """
    reader = _csv_reader(lines)
    n = 0
    while True:
        pos = lines.pos
        try:
            cells = _csv_next(reader, lines, f"row {n + 1}")
        except StopIteration:
            return
        if cells == []:  # a blank line
            continue
        n += 1
        if isinstance(cells, Invalid):
            yield pos, n, cells
        elif len(cells) != len(header):
            yield pos, n, Invalid(f"has {len(cells)} cells, the header has {len(header)}")
        else:
            yield pos, n, dict(zip(header, cells, strict=True))


def csv_header(lines: Lines, rel: str) -> list[str]:
    """A CSV file's header: its first line that is not blank (``[]`` for a file of blank lines only).

    Raises:
        InputError: The header is not valid CSV, or names a column twice (a row would keep one of the cells).
    """
    reader = _csv_reader(lines)
    header: list[str] = []
    while not header:
        try:
            head = _csv_next(reader, lines, "the header")
        except StopIteration:
            return []
        if isinstance(head, Invalid):
            raise InputError(f"{rel}: the header {head.reason}; fix the file's first line")
        header = head
    header[0] = _without_bom(header[0])
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise InputError(
            f"{rel}: the header names the column(s) {twice} more than once ({header}), so each row would keep only "
            "one of their cells; give every column its own name"
        )
    return header
