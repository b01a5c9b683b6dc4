"""Corpus files for ``promptembed embed``: deterministic parts and row checks (the output folder: ``_output``).

The input (a JSONL/Parquet/CSV file, or a folder of them) is cut into parts of ``part_rows`` rows, file by file in
sorted order, by one scan that also checks every row (and, with ``_kinds``, that each column holds one kind of
value). A part's name comes from its file's index and its own index, so a rerun on the same input makes the same
parts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptembed._kinds import ColumnKinds, arrow_kind, check_clash, check_kinds
from promptembed._parquet import RowRanges, open_native, path_text
from promptembed._tables import BadRow, TableJob, bad_value
from promptembed._textrows import Invalid, Lines, csv_header, csv_rows, jsonl_rows
from promptembed.errors import ConfigError, InputError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["PartReader", "PartSpec", "find_inputs", "plan_parts", "read_part", "scan"]

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class PartSpec:
    """One part: rows ``[start, start + n_rows)`` of one input file, and which of them are skipped."""

    name: str
    path: str
    fmt: str
    start: int  # first row (Parquet) or byte offset of the first row (JSONL, CSV)
    n_rows: int
    first_line: int  # line (JSONL) / data row (CSV, Parquet) number of the first row, 1-based
    skip: tuple[int, ...] = ()
    bad: tuple[BadRow, ...] = field(default=(), compare=False)
    header: tuple[str, ...] = ()
    #: JSONL: every field of the input with its type over the whole input (a part whose rows lack a field, or hold
    #: only nulls or ``{}`` in it, gets the type the other parts have)
    schema: pa.Schema | None = field(default=None, compare=False)

    @property
    def n_good(self) -> int:
        """Rows this part contributes to the output."""
        return self.n_rows - len(self.skip)


def find_inputs(path: str | Path, *, exclude: Path | None = None) -> list[Path]:
    """The input files: ``path`` itself, or the .jsonl/.ndjson/.parquet/.csv files under a folder, sorted.

    Files under ``exclude`` (the run's own output folder, when it lies inside the input folder) are left out.
    """
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() not in FORMATS:
            raise ConfigError(f"Input {p} is not a {'/'.join(FORMATS)} file; convert it or pass a folder of them")
        return [p]
    if not p.is_dir():
        raise ConfigError(f"Input {p} does not exist; pass a JSONL/Parquet/CSV file or a folder of them")
    files = sorted(
        f
        for f in p.rglob("*")
        if f.is_file()
        and f.suffix.lower() in FORMATS
        and not any(s.startswith(".") for s in f.relative_to(p).parts)
        and not (exclude is not None and f.resolve().is_relative_to(exclude))
    )
    if not files:
        raise ConfigError(f"No {'/'.join(FORMATS)} files in {p}")
    return files


def _row_problem(value: object, job: TableJob) -> str | None:
    if isinstance(value, Invalid):
        return value.reason
    if not isinstance(value, dict):
        return f"is a JSON {type(value).__name__}, not an object"
    if job.column not in value:
        return f"has no {job.column!r} field (its fields: {sorted(value)})"
    reason = bad_value(value.get(job.column), column=job.column)
    if reason is None and job.title_column:
        reason = bad_value(value.get(job.title_column), column=job.title_column, allow_none=True)
    return reason


def _bad(job: TableJob, where: str, n: int, row: object, reason: str) -> BadRow:
    ident = row.get(job.id_column) if job.id_column and isinstance(row, dict) else None
    label = f"{job.id_column}={ident!r}" if ident is not None else f"{where} {n}"
    if job.on_bad_row == "fail":
        at = f" ({where} {n})" if ident is not None else ""
        raise InputError(
            f"Row {label}{at}: {reason}; fix that row, or pass --on-bad-row skip to skip bad rows and report their ids"
        )
    return BadRow(row=label, reason=reason)


def plan_parts(files: list[Path], job: TableJob, part_rows: int, *, root: Path) -> list[PartSpec]:
    """:func:`scan`, and the check that every column holds one kind of value over the whole input.

    A column that mixes kinds fails the job (naming the column, each kind's count and first row) when
    ``job.on_bad_row == "fail"``, or when a CSV or Parquet file's column is of the rarer kind (a whole file cannot be
    a bad row); when skipping, the input is scanned again and the JSONL rows of a column's rarer kinds are skipped
    and reported like any bad row. Each JSONL part is given the whole input's schema (:func:`_jsonl_schema`).

    Raises:
        ConfigError: A JSONL row has a field named like the output column, or no row of a JSONL-only input has the
            id or title column.
        InputError: A bad row while failing, a column that mixes kinds (see above), or one that holds only empty
            objects.
    """
    kinds = ColumnKinds()
    specs = list(scan(files, job, part_rows, root=root, kinds=kinds))
    if job.output_column in kinds.names:  # CSV headers and Parquet schemas are checked by the scan
        raise ConfigError(
            f"output_column={job.output_column!r} is already a field of the input's rows (first: "
            f"{kinds.names[job.output_column]}); choose another output column name (--output-column)"
        )
    if kinds.names and all(FORMATS[f.suffix.lower()] == "jsonl" for f in files):  # CSV/Parquet: checked by the scan
        for option, column in (("id_column", job.id_column), ("title_column", job.title_column)):
            if column is not None and column not in kinds.names:
                raise ConfigError(
                    f"{option}={column!r} is not a field of any input row; their fields are {list(kinds.names)} "
                    f"(--{option.replace('_', '-')})"
                )
    mixed = kinds.mixed()
    if mixed:
        majority = kinds.majority()
        for column in mixed:
            rarer_files = [kinds.file_first[(column, k)] for k in kinds.counts[column] if k != majority[column]
                           and (column, k) in kinds.whole_files]  # fmt: skip
            if rarer_files:
                raise InputError(
                    f"{kinds.describe(column)}, and a Parquet column holds one type; give the column one type in "
                    f"every input file ({', '.join(rarer_files)} fixes its type for all its rows)"
                )
        if job.on_bad_row == "fail":
            raise InputError(
                f"{kinds.describe(mixed[0])}, and a Parquet column holds one type; fix those rows, or pass "
                "--on-bad-row skip to skip the rows of the rarer kind and report them"
            )
        kinds = ColumnKinds()  # the rows of each column's majority kind only
        specs = list(scan(files, job, part_rows, root=root, kinds=kinds, expect=majority))
    check_clash(kinds)
    schema = _jsonl_schema(kinds, job)
    return [replace(s, schema=schema) if s.fmt == "jsonl" else s for s in specs]


def _jsonl_schema(kinds: ColumnKinds, job: TableJob) -> pa.Schema:
    """The schema of every JSONL part: each field's type over the whole input, and the job's id and title columns.

    A missing id or title is null, in a part where no row has it as in any other (CSV or Parquet files hold them).

    Raises:
        InputError: A field holds only empty objects (``{}``) somewhere, which Parquet cannot store. It is refused
            here, before anything is embedded, skip or not (it is the column's type, not a row): any stand-in that
            Parquet can store (a null, a made-up field, JSON text) would change what readers get back without a word.
    """
    import pyarrow as pa

    names = [*kinds.names, *(c for c in (job.id_column, job.title_column) if c and c not in kinds.names)]
    fields = []
    for name in names:
        t = kinds.merged_type(name)
        problem = kinds.empty_object(name, t)
        if problem is not None:
            raise InputError(f"{problem} (found before anything was embedded)")
        fields.append(pa.field(name, t))
    return pa.schema(fields)


def scan(
    files: list[Path],
    job: TableJob,
    part_rows: int,
    *,
    root: Path,
    kinds: ColumnKinds | None = None,
    expect: dict[str, str] | None = None,
) -> Iterator[PartSpec]:
    """Cut the input into parts and check every row (raises on the first bad row when ``on_bad_row='fail'``).

    Args:
        files: The input files (:func:`find_inputs`).
        job: The columns and the bad-row policy.
        part_rows: Rows per part.
        root: Folder that part labels and row names are relative to.
        kinds: Counts each column's kinds of value here (see :func:`plan_parts`).
        expect: Each column's kind: a JSONL row with a value of another kind is a bad row.
    """
    for fi, path in enumerate(files):
        rel = path_text(path.relative_to(root).as_posix() if path != root else path.name)
        fmt = FORMATS[path.suffix.lower()]
        if fmt == "parquet":
            yield from _scan_parquet(fi, path, rel, job, part_rows, kinds)
            continue
        with path.open("rb") as f:
            lines = Lines(f, rel)
            header: list[str] = []
            if fmt == "csv":
                header = csv_header(lines, rel)
                if not header:  # an empty file, or blank lines only
                    continue
                job.check_columns(header)
            rows = jsonl_rows(lines, rel) if fmt == "jsonl" else csv_rows(lines, header)
            where = f"{rel} {'line' if fmt == 'jsonl' else 'row'}"
            k, start, first, n, skip, bad, total = 0, 0, 0, 0, [], [], 0
            for pos, number, row in rows:
                if n == 0:
                    start, first = pos, number
                problem = _row_problem(row, job)
                total += 1
                if problem is None and fmt == "jsonl" and isinstance(row, dict):
                    problem = check_kinds(row, f"{where} {number}", kinds, expect)
                if problem is not None:
                    skip.append(n)
                    bad.append(_bad(job, where, number, row, problem))
                n += 1
                if n == part_rows:
                    yield PartSpec(f"part-{fi:05d}-{k:06d}", str(path), fmt, start, n, first, tuple(skip), tuple(bad),
                                   tuple(header))  # fmt: skip
                    k, n, skip, bad = k + 1, 0, [], []
            if n:
                yield PartSpec(f"part-{fi:05d}-{k:06d}", str(path), fmt, start, n, first, tuple(skip), tuple(bad),
                               tuple(header))  # fmt: skip
            if kinds is not None and fmt == "csv" and total:
                for name in header:  # every CSV cell is text
                    kinds.add(name, "str", f"{rel} (CSV)", total, whole_file=True)


def _scan_parquet(
    fi: int, path: Path, rel: str, job: TableJob, part_rows: int, kinds: ColumnKinds | None
) -> Iterator[PartSpec]:
    import pyarrow.parquet as pq

    with open_native(path) as source:
        pf = pq.ParquetFile(source)
        job.check_columns(pf.schema_arrow.names)
        cols = [c for c in (job.column, job.title_column, job.id_column) if c]
        total = pf.metadata.num_rows
        if kinds is not None and total:
            for f in pf.schema_arrow:
                kind = arrow_kind(f.type)
                if kind is not None:
                    kinds.add(f.name, kind, f"{rel} (Parquet: {f.type})", total, whole_file=True)
        batches = pf.iter_batches(batch_size=part_rows, columns=list(dict.fromkeys(cols)))
        buffer: list[dict[str, Any]] = []
        start = 0
        for k in range((total + part_rows - 1) // part_rows):
            while len(buffer) < min(part_rows, total - start):
                buffer.extend(next(batches).to_pylist())
            rows, buffer = buffer[:part_rows], buffer[part_rows:]
            skip, bad = [], []
            for i, row in enumerate(rows):
                problem = _row_problem(row, job)
                if problem is not None:
                    skip.append(i)
                    bad.append(_bad(job, f"{rel} row", start + i + 1, row, problem))
            yield PartSpec(f"part-{fi:05d}-{k:06d}", str(path), "parquet", start, len(rows), start + 1, tuple(skip),
                           tuple(bad))  # fmt: skip
            start += len(rows)


def read_part(spec: PartSpec) -> pa.Table:
    """The good rows of one part (see :class:`PartReader`, which reads parts one after another)."""
    with PartReader() as reader:
        return reader.read(spec)


class PartReader:
    """Reads parts: the good rows of each, every column kept (JSONL/CSV values as parsed; Parquet types as stored).

    Parquet parts are read a row range at a time (:class:`~promptembed._parquet.RowRanges`), so the parts of a file
    read in order decode each row once, and memory holds about one part.
    """

    def __init__(self) -> None:
        self._parquet = RowRanges()

    def __enter__(self) -> PartReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the Parquet file read last."""
        self._parquet.close()

    def read(self, spec: PartSpec) -> pa.Table:
        """The good rows of ``spec``'s part."""
        import pyarrow as pa

        if spec.fmt != "parquet":
            return _read_text_part(spec)
        table = self._parquet.read(spec.path, spec.start, spec.n_rows)
        keep = sorted(set(range(spec.n_rows)) - set(spec.skip))
        return table if len(keep) == spec.n_rows else table.take(pa.array(keep, type=pa.int64()))


def _read_text_part(spec: PartSpec) -> pa.Table:
    import pyarrow as pa

    skip, shown = set(spec.skip), path_text(spec.path)
    with open(spec.path, "rb") as f:
        f.seek(spec.start)
        lines = Lines(f, shown)
        rows_iter = jsonl_rows(lines, shown) if spec.fmt == "jsonl" else csv_rows(lines, list(spec.header))
        rows: list[dict[str, Any]] = []
        for i, (_, _, row) in enumerate(rows_iter):
            if i == spec.n_rows:
                break
            if i not in skip and isinstance(row, dict):
                rows.append(row)
    types = dict(zip(spec.schema.names, spec.schema.types, strict=True)) if spec.schema is not None else {}
    names = list(dict.fromkeys([*types, *(k for r in rows for k in r)])) or list(spec.header)
    try:
        return pa.table({k: _column([r.get(k) for r in rows], types.get(k)) for k in names})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(
            f"{shown} (part {spec.name}, rows from {spec.first_line}): a column mixes types ({exc}); "
            "give each column one type"
        ) from None
    except (OverflowError, UnicodeEncodeError) as exc:  # the scan makes such rows bad rows: a file changed since
        raise InputError(
            f"{shown} (part {spec.name}, rows from {spec.first_line}): a value no Parquet column holds ({exc}: an "
            "integer beyond 64 bits, or text with an unpaired surrogate); fix those rows, then rerun"
        ) from None


def _column(values: list[Any], t: pa.DataType | None) -> pa.Array:
    """``values`` as an Arrow array of type ``t`` (the input's merged type), else of the type Arrow infers."""
    import pyarrow as pa

    if t is not None:
        try:
            return pa.array(values, type=t)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # the scan missed a clash: as before, the parts are unified
            pass
    return pa.array(values)
