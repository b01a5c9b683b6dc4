"""Arrow tables in, the same tables with a vector column out: the step shared by Ray actors and ``embed``.

:mod:`promptembed.ray` runs :func:`embed_table` inside each actor and the ``promptembed embed`` command runs it
in-process, so both paths make the same prompt, title and bad-row decisions (through one
:class:`~promptembed.PromptEmbedder`) and give identical output. Needs ``pyarrow``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from promptembed.errors import ConfigError, InputError

if TYPE_CHECKING:
    import pyarrow as pa

    from promptembed.embedder import PromptEmbedder
    from promptembed.prompts import Role

__all__ = ["BadRow", "TableJob", "bad_value", "check_rows", "embed_table", "vector_array"]

OnBadRow = Literal["fail", "skip"]


@dataclass(frozen=True)
class TableJob:
    """What to embed in a table and where to put the vectors (validated when built)."""

    column: str = "text"
    role: Role | None = "document"
    prompt_name: str | None = None
    title_column: str | None = None
    output_column: str = "embedding"
    id_column: str | None = None
    on_bad_row: OnBadRow = "fail"
    #: Rows with the same value here are embedded by one call of their own (see :func:`embed_table`).
    group_column: str | None = None

    def __post_init__(self) -> None:
        for name in ("column", "output_column"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{name} must be a non-empty column name (str), got {value!r}")
        for name in ("title_column", "id_column", "prompt_name", "group_column"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{name} must be a non-empty str or None, got {value!r}")
        if self.role not in ("query", "document", None):
            raise ConfigError(f"role must be 'query', 'document' or None (with prompt_name=), got {self.role!r}")
        if self.role is not None and self.prompt_name is not None:
            raise ConfigError(
                f"Pass role= or prompt_name= (got role={self.role!r} and prompt_name={self.prompt_name!r}); "
                "use role=None with prompt_name"
            )
        if self.role is None and self.prompt_name is None:
            raise ConfigError("role=None needs prompt_name= (a named prompt of the model, e.g. 'STS')")
        if self.title_column is not None and self.role != "document":
            raise ConfigError(
                f"title_column={self.title_column!r} fills the document prompt's title slot, so it needs "
                f"role='document' (got role={self.role!r}, prompt_name={self.prompt_name!r})"
            )
        if self.output_column in (self.column, self.title_column, self.id_column, self.group_column):
            raise ConfigError(
                f"output_column={self.output_column!r} would overwrite an input column; choose another name"
            )
        if self.on_bad_row not in ("fail", "skip"):
            raise ConfigError(f"on_bad_row must be 'fail' or 'skip', got {self.on_bad_row!r}")

    def check_columns(self, names: Sequence[str]) -> None:
        """Raise :class:`ConfigError` naming a missing input column, or an output column that already exists."""
        for option, col in (
            ("column", self.column),
            ("title_column", self.title_column),
            ("id_column", self.id_column),
            ("group_column", self.group_column),
        ):
            if col is not None and col not in names:
                raise ConfigError(f"{option}={col!r} is not a column of the input; its columns are {list(names)}")
        if self.output_column in names:
            raise ConfigError(
                f"output_column={self.output_column!r} is already a column of the input {list(names)}; "
                "choose another output column name"
            )


@dataclass(frozen=True)
class BadRow:
    """A row that was skipped: its label (id, or position) and why."""

    row: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form (for manifests)."""
        return {"row": self.row, "reason": self.reason}


def bad_value(value: object, *, column: str, allow_none: bool = False) -> str | None:
    """Why ``value`` cannot be embedded from ``column`` (``None`` when it can)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"column {column!r} holds a str with an unpaired surrogate, which is not valid Unicode text"
        return None
    if value is None and allow_none:
        return None
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return f"column {column!r} is {type(value).__name__} ({shown}), not str"


def _label(id_value: object, id_column: str | None, position: str) -> str:
    return f"{id_column}={id_value!r}" if id_column is not None else position


def check_rows(
    table: pa.Table, job: TableJob, *, positions: Sequence[str] | None = None
) -> tuple[list[int], list[BadRow]]:
    """Indices of the rows that can be embedded, and the bad ones (raises on the first bad one when failing).

    Args:
        table: The batch.
        job: The job's columns and ``on_bad_row`` policy.
        positions: How to name each row when there is no ``id_column``; default ``"row i"`` (of this batch).

    Raises:
        InputError: ``job.on_bad_row == "fail"`` and a row's text (or title) is not a ``str``; the message names the
            row (its id when ``id_column`` is given) and the column.
    """
    texts = table.column(job.column).to_pylist()
    titles = table.column(job.title_column).to_pylist() if job.title_column else None
    ids = table.column(job.id_column).to_pylist() if job.id_column else None
    good: list[int] = []
    bad: list[BadRow] = []
    for i, text in enumerate(texts):
        reason = bad_value(text, column=job.column)
        if reason is None and titles is not None:
            reason = bad_value(titles[i], column=job.title_column or "", allow_none=True)
        if reason is None:
            good.append(i)
            continue
        label = _label(ids[i] if ids is not None else None, job.id_column, positions[i] if positions else f"row {i}")
        if job.on_bad_row == "fail":
            raise InputError(
                f"Row {label}: {reason}; fix that row, or skip bad rows and report their ids with "
                "on_bad_row='skip' (CLI: --on-bad-row skip)"
                + ("" if job.id_column else "; pass id_column= (--id-column) to name rows by their id")
            )
        bad.append(BadRow(row=label, reason=reason))
    return good, bad


def vector_array(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """A ``fixed_size_list<float32>[dim]`` Arrow array over ``vectors`` without copying them."""
    import pyarrow as pa

    flat = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.float32()), vectors.shape[1])


def embed_table(
    embedder: PromptEmbedder, table: pa.Table, job: TableJob, *, positions: Sequence[str] | None = None
) -> tuple[pa.Table, list[BadRow]]:
    """Embed ``job.column`` of ``table`` and append the vectors as ``job.output_column``; every column is kept.

    With ``job.group_column``, the rows of each group (same value in that column) are embedded by one call of their
    own, so a row's vector does not depend on which other groups share the table: the engine's batches, and so the
    float rounding of a vector (in its last bits), follow the texts of one call.

    Returns:
        The table (bad rows dropped when skipping) with the vector column, and the skipped rows.

    Raises:
        ConfigError: A column of ``job`` is missing, or the output column exists already.
        InputError: A bad row while ``job.on_bad_row == "fail"``.
    """
    job.check_columns(table.column_names)
    good, bad = check_rows(table, job, positions=positions)
    if bad:
        import pyarrow as pa

        table = table.take(pa.array(good, type=pa.int64()))
    if job.group_column is None or table.num_rows == 0:
        vectors = _vectors(embedder, table, job)
    else:
        import pyarrow as pa

        groups: dict[Any, list[int]] = {}
        for i, key in enumerate(table.column(job.group_column).to_pylist()):
            groups.setdefault(key, []).append(i)
        done = [
            (rows, _vectors(embedder, table.take(pa.array(rows, type=pa.int64())), job)) for rows in groups.values()
        ]
        vectors = np.empty((table.num_rows, *done[0][1].shape[1:]), dtype=done[0][1].dtype)
        for rows, got in done:
            vectors[rows] = got
    return table.append_column(job.output_column, vector_array(vectors)), bad


def _vectors(embedder: PromptEmbedder, table: pa.Table, job: TableJob) -> np.ndarray:
    texts: list[str] = table.column(job.column).to_pylist()
    if job.role == "query":
        return embedder.embed_queries(texts)
    if job.role == "document":
        titles = table.column(job.title_column).to_pylist() if job.title_column else None
        return embedder.embed_documents(texts, titles=titles)
    return embedder.embed(texts, prompt_name=job.prompt_name)
