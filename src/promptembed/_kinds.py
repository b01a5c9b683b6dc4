"""Which kinds of value each input column holds: the scan's check that one Parquet column can hold them all."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promptembed.errors import InputError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ColumnKinds", "arrow_kind", "check_clash", "check_kinds", "kind_of", "nested_type"]


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
    unified at the end: a clash between a JSONL column and a Parquet file's nested column. The type each JSONL
    column takes in every part (:meth:`merged_type`) comes from here too.
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

    def add_value(self, column: str, value: Any, where: str, t: pa.DataType | None = None) -> None:
        """Note what a number, or a nested value of Arrow type ``t`` (:func:`nested_type`), needs from its column."""
        if isinstance(value, float):
            self.floats.setdefault((column, ()), where)
        elif _is_big_int(value):
            self.big_ints.setdefault((column, ()), where)
        elif isinstance(value, list | dict) and t is not None:
            import pyarrow as pa

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

    def merged_type(self, column: str) -> pa.DataType:
        """The type that holds every JSONL value of ``column`` (null when there are only nulls, or no JSONL value).

        Text is ``string``; numbers ``int64``, or ``double`` where a float was seen; lists and objects the merge of
        their values' types (an object's fields are those of all its values). Call it once :meth:`clash` passed.
        """
        import pyarrow as pa

        kinds = self.counts.get(column, {})
        kind = next(iter(kinds)) if len(kinds) == 1 else None
        if kind == "str":
            return pa.string()
        if kind == "bool":
            return pa.bool_()
        if kind == "number":
            return pa.float64() if (column, ()) in self.floats else pa.int64()
        if kind in ("list", "object") and column in self.nested:
            types = [pa.schema([(column, t)]) for t, _ in self.nested[column].values()]
            return pa.unify_schemas(types, promote_options="permissive").field(column).type
        return pa.null()

    def empty_object(self, column: str, t: pa.DataType) -> str | None:
        """Why ``column``, of merged type ``t``, cannot be written: it holds only empty objects (``{}``) somewhere."""
        path = _empty_struct(t)
        if path is None:
            return None
        at = f" at {_shown(column, path)}" if path else ""
        first = next(iter(self.nested[column].values()))[1]
        return (
            f"column {column!r} holds only empty objects ({{}}){at} (first: {first}), and a Parquet column cannot hold "
            "an object with no fields; drop that field from the input rows, or give those objects a field"
        )

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


def _beyond_int64(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63


def _is_text(value: str) -> bool:
    r"""Whether ``value`` is valid Unicode text: no unpaired surrogate (which a JSON ``\ud800`` escape can give)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _short(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def _unstorable(column: str, value: Any) -> str | None:
    """Why ``value`` (or a key or value inside it) cannot be stored in a Parquet column; ``None`` if it can."""
    stack: list[tuple[_Path, Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        at = f" at {_shown(column, path)}" if path else ""
        if isinstance(item, str) and not _is_text(item):
            return (
                f"column {column!r} holds{at} a str with an unpaired surrogate ({_short(item)}), which is not valid "
                "Unicode text; fix that text"
            )
        if _beyond_int64(item):
            return (
                f"column {column!r} holds{at} the integer {item}, beyond the 64-bit range a Parquet integer column "
                "holds; write such numbers as strings (e.g. unsigned 64-bit hash ids)"
            )
        if isinstance(item, dict):
            bad_key = next((k for k in item if not _is_text(k)), None)
            if bad_key is not None:
                return (
                    f"column {column!r} holds{at} an object key with an unpaired surrogate ({_short(bad_key)}), which "
                    "is not valid Unicode text; fix that key"
                )
            stack.extend(((*path, k), x) for k, x in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend(((*path, None), x) for x in reversed(item))
    return None


def nested_type(column: str, value: list[Any] | dict[str, Any]) -> pa.DataType | str:
    """The Arrow type of a nested value, or why no Parquet column can hold it (the reason names the column)."""
    import pyarrow as pa

    try:
        return pa.scalar(value).type
    except (OverflowError, UnicodeEncodeError) as exc:
        why = _unstorable(column, value)
        return why or f"column {column!r} holds a {type(value).__name__} that Arrow cannot hold ({exc})"
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        return f"column {column!r} holds a {type(value).__name__} whose items mix types ({exc})"


def _leaves(t: pa.DataType, path: _Path = ()) -> list[tuple[_Path, pa.DataType]]:
    """The leaf types of a nested Arrow type, each with its path."""
    import pyarrow.types as pt

    if pt.is_list(t) or pt.is_large_list(t) or pt.is_fixed_size_list(t):
        return _leaves(t.value_type, (*path, None))
    if pt.is_struct(t):
        return [leaf for f in t for leaf in _leaves(f.type, (*path, f.name))]
    return [(path, t)]


def _empty_struct(t: pa.DataType, path: _Path = ()) -> _Path | None:
    """The path of a struct type with no fields inside ``t`` (``None`` if there is none)."""
    import pyarrow.types as pt

    if pt.is_list(t) or pt.is_large_list(t) or pt.is_fixed_size_list(t):
        return _empty_struct(t.value_type, (*path, None))
    if pt.is_struct(t):
        if t.num_fields == 0:
            return path
        return next((p for f in t if (p := _empty_struct(f.type, (*path, f.name))) is not None), None)
    return None


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
    """Count a JSONL row's kinds, or say why the row is bad.

    A row is bad when (given the kinds to expect) a value has another kind, or when a field name, a value or anything
    inside a value is something no Parquet column holds: an integer beyond 64 bits, or text (a key too) with an
    unpaired surrogate. A bad row is not counted, so the kinds are those of the rows that are kept.
    """
    seen: list[tuple[str, str | None, Any, Any]] = []
    for column, value in row.items():
        if not _is_text(column):
            return f"has a field name with an unpaired surrogate ({_short(column)}), which is not valid Unicode text"
        kind = kind_of(value)
        if kind is not None and expect is not None and expect.get(column, kind) != kind:
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            return (
                f"column {column!r} is {kind} ({shown}) here but {expect[column]} in most rows; "
                "a Parquet column holds one type"
            )
        t = None
        if kind in ("str", "number"):
            problem = _unstorable(column, value)
            if problem is not None:
                return problem
        elif kind in ("list", "object"):
            t = nested_type(column, value)
            if isinstance(t, str):
                return t
        seen.append((column, kind, value, t))
    if kinds is not None:
        for column, kind, value, t in seen:
            kinds.names.setdefault(column, where)
            if kind is not None:
                kinds.add(column, kind, where)
                if kind in ("number", "list", "object"):
                    kinds.add_value(column, value, where, t)
    return None


def check_clash(kinds: ColumnKinds) -> None:
    clash = kinds.clash()
    if clash is not None:
        raise InputError(f"{clash}; give the column one type in every input row (found before anything was embedded)")
