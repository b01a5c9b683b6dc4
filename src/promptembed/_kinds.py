"""Which kinds of value each input column holds: the scan's check that one Parquet column can hold them all."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promptembed.errors import InputError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ColumnKinds", "arrow_kind", "check_clash", "check_kinds", "kind_of"]


def kind_of(value: object) -> str | None:
    """The kind of a JSON value as a Parquet column sees it (``None``: a null fits any column)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    return "list" if isinstance(value, list) else "object" if isinstance(value, dict) else type(value).__name__


def arrow_kind(t: pa.DataType) -> str | None:
    """:func:`_kind` of a Parquet column's type."""
    import pyarrow.types as pt

    if pt.is_dictionary(t):  # a dictionary-encoded column holds its values' kind
        t = t.value_type
    if pt.is_null(t):
        return None
    if pt.is_string(t) or pt.is_large_string(t):
        return "str"
    if pt.is_boolean(t):
        return "bool"
    if pt.is_integer(t) or pt.is_floating(t):
        return "number"
    if pt.is_list(t) or pt.is_large_list(t) or pt.is_fixed_size_list(t):
        return "list"
    if pt.is_struct(t):
        return "object"
    if pt.is_timestamp(t) and t.tz is not None:  # a zoned and a naive timestamp do not merge
        return f"timestamp[tz={t.tz}]"
    families = (("timestamp", pt.is_timestamp), ("date", pt.is_date), ("time", pt.is_time),
                ("decimal", pt.is_decimal), ("binary", lambda x: pt.is_binary(x) or pt.is_large_binary(x)),
                ("duration", pt.is_duration))  # fmt: skip
    return next((name for name, test in families if test(t)), str(t))  # units and widths unify when the parts do


@dataclass
class ColumnKinds:
    """Which kinds of value each column holds over the whole input.

    A Parquet column, and so an output column, holds one type, so a column that mixes kinds (an ``id`` that is a
    number in some JSONL rows and text in others) is found by the scan, before anything is embedded. So are values
    that no one type holds without loss: an integer beyond 2**53 beside floats, and nested values (lists, objects)
    whose Arrow types do not merge, also inside nested values (``[2**60]`` in one row, ``[0.5]`` in another: the
    numbers under ``m[]`` are checked as a column's are). Not caught here, and so reported only when the parts are
    unified at the end: a clash between a JSONL column and a Parquet file's nested column.
    """

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    first: dict[tuple[str, str], str] = field(default_factory=dict)  # where a column's kind was first seen
    whole_files: set[tuple[str, str]] = field(default_factory=set)  # kinds set by a file's schema (CSV, Parquet)
    names: dict[str, str] = field(default_factory=dict)  # every JSONL field, null or not, and where it was first seen
    file_first: dict[tuple[str, str], str] = field(default_factory=dict)  # the first file that set a column's kind
    # an integer beyond 2**53 (exact only as an integer) and a float, by (column, path): the path is () for the
    # column's own values, ("k", None) for the items of the list under key "k" of an object (None: a list's items)
    big_ints: dict[tuple[str, _Path], str] = field(default_factory=dict)
    floats: dict[tuple[str, _Path], str] = field(default_factory=dict)
    nested: dict[str, dict[str, tuple[Any, str]]] = field(default_factory=dict)  # list/object types, first seen

    def add(self, column: str, kind: str, where: str, n: int = 1, *, whole_file: bool = False) -> None:
        """Count ``n`` values of ``kind`` in ``column``, first seen at ``where``."""
        counts = self.counts.setdefault(column, {})
        counts[kind] = counts.get(kind, 0) + n
        self.first.setdefault((column, kind), where)
        if whole_file:
            self.whole_files.add((column, kind))
            self.file_first.setdefault((column, kind), where)

    def add_value(self, column: str, value: Any, where: str) -> str | None:
        """Note what a number or a nested value needs from its column; say why a nested value cannot be stored."""
        if isinstance(value, float):
            self.floats.setdefault((column, ()), where)
        elif _is_big_int(value):
            self.big_ints.setdefault((column, ()), where)
        elif isinstance(value, list | dict):
            import pyarrow as pa

            try:
                t = pa.scalar(value).type
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                return f"column {column!r} holds a {type(value).__name__} whose items mix types ({exc})"
            self.nested.setdefault(column, {}).setdefault(str(t), (t, where))
            # numbers inside: floats from the Arrow type; big integers by walking only the paths that hold integers
            # (a vector column of floats is never walked)
            int_paths: set[_Path] = set()
            for path, leaf in _leaves(t):
                if pa.types.is_floating(leaf):
                    self.floats.setdefault((column, path), where)
                elif pa.types.is_integer(leaf):
                    int_paths.add(path)
            for path in _big_int_paths(value, int_paths):
                self.big_ints.setdefault((column, path), where)
        return None

    def clash(self) -> str | None:
        """A column whose values no single Parquet type holds without loss, named with where each side was seen."""
        import pyarrow as pa

        for (column, path), where in self.big_ints.items():
            if (column, path) in self.floats:
                at = f" at {_shown(column, path)}" if path else ""
                return (
                    f"column {column!r} holds{at} an integer beyond 2**53 (first: {where}) and floats (first: "
                    f"{self.floats[(column, path)]}), which one Parquet column cannot hold exactly"
                )
        for column, types in self.nested.items():
            try:
                pa.unify_schemas([pa.schema([(column, t)]) for t, _ in types.values()], promote_options="permissive")
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                shown = " and ".join(f"{name} (first: {where})" for name, (_, where) in list(types.items())[:3])
                return f"column {column!r} holds nested values of types that do not merge: {shown}"
        return None

    def mixed(self) -> list[str]:
        """The columns that hold more than one kind."""
        return [c for c, counts in self.counts.items() if len(counts) > 1]

    def majority(self) -> dict[str, str]:
        """Each column's most common kind (a tie goes to the kind seen first)."""
        return {c: max(counts, key=counts.__getitem__) for c, counts in self.counts.items()}

    def describe(self, column: str) -> str:
        """``column 'id' holds number in 3 rows (first: a.jsonl line 1) and str in 1 row (first: ...)``."""
        counts = sorted(self.counts[column].items(), key=lambda kv: -kv[1])
        held = " and ".join(
            f"{kind} in {n} row{'s' if n != 1 else ''} (first: {self.first[(column, kind)]})" for kind, n in counts
        )
        return f"column {column!r} holds {held}"


_Path = tuple[str | None, ...]  # keys of objects, None for a list's items


def _is_big_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53


def _leaves(t: pa.DataType, path: _Path = ()) -> list[tuple[_Path, pa.DataType]]:
    """The leaf types of a nested Arrow type, each with its path."""
    import pyarrow.types as pt

    if pt.is_list(t) or pt.is_large_list(t) or pt.is_fixed_size_list(t):
        return _leaves(t.value_type, (*path, None))
    if pt.is_struct(t):
        return [leaf for f in t for leaf in _leaves(f.type, (*path, f.name))]
    return [(path, t)]


def _big_int_paths(value: Any, int_paths: set[_Path]) -> set[_Path]:
    """The paths among ``int_paths`` where ``value`` holds an integer beyond 2**53 (only those paths are walked)."""
    prefixes = {p[:i] for p in int_paths for i in range(len(p) + 1)}
    found: set[_Path] = set()
    stack: list[tuple[_Path, Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if path not in prefixes:
            continue
        if isinstance(item, list):
            stack.extend(((*path, None), x) for x in item)
        elif isinstance(item, dict):
            stack.extend(((*path, k), x) for k, x in item.items())
        elif _is_big_int(item):
            found.add(path)
    return found


def _shown(column: str, path: _Path) -> str:
    """``m.ids[]`` for the items of the list under key ``ids`` of column ``m``."""
    return column + "".join("[]" if p is None else f".{p}" for p in path)


def check_kinds(
    row: dict[str, Any], where: str, kinds: ColumnKinds | None, expect: dict[str, str] | None
) -> str | None:
    """Count a JSONL row's kinds, or (given the kinds to expect) say which value has another kind."""
    for column, value in row.items():
        if kinds is not None:
            kinds.names.setdefault(column, where)
        kind = kind_of(value)
        if kind is None:
            continue
        if expect is not None and expect.get(column, kind) != kind:
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            return (
                f"column {column!r} is {kind} ({shown}) here but {expect[column]} in most rows; "
                "a Parquet column holds one type"
            )
        if kinds is not None:
            kinds.add(column, kind, where)
            if kind in ("number", "list", "object"):
                problem = kinds.add_value(column, value, where)
                if problem is not None:
                    return problem
    return None


def check_clash(kinds: ColumnKinds) -> None:
    clash = kinds.clash()
    if clash is not None:
        raise InputError(f"{clash}; give the column one type in every input row (found before anything was embedded)")
