"""Your own supervision: pairs, triplets or scored pairs from CSV or JSONL (UTF-8, any language).

Columns (header row in CSV, keys in JSONL; case and surrounding spaces ignored):

- pairs: ``anchor``, ``positive`` -> MultipleNegativesRankingLoss (seed model cards 000, 003, 004).
  Aliases: ``query``/``question``/``sentence_0``/``sentence1`` for anchor; ``passage``/``answer``/``document``/
  ``sentence_1``/``sentence2`` for positive.
- triplets: ``anchor``, ``positive``, ``negative`` (alias ``sentence_2``/``sentence3``) -> MNRL with the negatives.
- scored: ``text1``, ``text2``, ``score`` -> CoSENTLoss / CosineSimilarityLoss (seed 002, Korean word pairs).
  Aliases: ``sentence_0``/``sentence1`` for text1, ``sentence_1``/``sentence2`` for text2, ``label`` for score.
  Scores are numbers in [0, 1] (or [-1, 1]).

The kind is decided by the columns: a score column makes it ``scored``, a negative column ``triplets``,
otherwise ``pairs``. Other columns are ignored. Errors name the file, the row and the expected columns.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["Supervision", "load_supervision"]

_COMMON = {"query": "anchor", "question": "anchor", "passage": "positive", "answer": "positive", "label": "score"}
_COMMON |= {"document": "positive"}
# sentence-transformers' auto-named columns (as in the seed model cards) mean different things by kind.
_PAIR_ALIASES = {"sentence_0": "anchor", "sentence1": "anchor", "sentence_1": "positive", "sentence2": "positive"}
_PAIR_ALIASES |= {"sentence_2": "negative", "sentence3": "negative"}
_SCORED_ALIASES = {"sentence_0": "text1", "sentence1": "text1", "sentence_1": "text2", "sentence2": "text2"}
_EXPECTED = "anchor,positive (pairs), anchor,positive,negative (triplets) or text1,text2,score (scored pairs)"


@dataclass
class Supervision:
    """Rows of a supervision file, with its kind.

    Example:
        >>> Supervision(kind="pairs", rows=[{"anchor": "q", "positive": "p"}], columns=("anchor", "positive")).kind
        'pairs'
    """

    kind: Literal["pairs", "triplets", "scored"]
    rows: list[dict[str, Any]]
    columns: tuple[str, ...]


def _rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise ValueError(f"{path}: unsupported supervision file type {suffix!r}; use .csv or .jsonl")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: supervision file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not UTF-8 (bad byte at offset {exc.start}); save it as UTF-8 "
            "(spreadsheet exports are often cp1252, or cp949/EUC-KR for Korean)"
        ) from None
    out: list[tuple[int, dict[str, Any]]] = []
    if suffix == ".csv":
        # lines end at \n, \r\n or \r only (as csv wants): str.splitlines() also splits inside a cell at U+2028,
        # U+2029, NEL and other characters a JSON or CSV writer leaves raw
        reader = csv.DictReader(io.StringIO(text, newline=""))
        for row in reader:
            if None in row:
                raise ValueError(f"{path}: row {reader.line_num} has more cells than the header {reader.fieldnames}")
            out.append((reader.line_num, dict(row)))
        return out
    for n, line in enumerate(text.split("\n"), start=1):  # JSON Lines end at \n (a \r before it is whitespace)
        if line.strip():
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}: line {n}: not valid JSON ({exc})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}: line {n}: expected a JSON object with keys {_EXPECTED}, got {line[:60]!r}")
            out.append((n, row))
    return out


def _normalize(row: dict[str, Any]) -> dict[str, Any]:
    keys = {str(k).strip().lower(): v for k, v in row.items()}
    scored = "score" in keys or "label" in keys
    aliases = _COMMON | (_SCORED_ALIASES if scored else _PAIR_ALIASES)
    out: dict[str, Any] = {}
    for key, value in keys.items():
        out.setdefault(aliases.get(key, key), value)
    return out


def load_supervision(path: str | Path) -> Supervision:
    """Read a supervision file and decide its kind from its columns (see the module docstring).

    Args:
        path: A ``.csv`` (with a header row) or ``.jsonl`` file, UTF-8.

    Returns:
        The kind, the rows with canonical column names (scores as floats) and the columns used.

    Raises:
        ValueError: Unsupported type, not UTF-8, no rows, missing columns (the message lists the expected ones),
            empty cells or bad scores; always naming the file and the row.
        FileNotFoundError: The file does not exist.
    """
    p = Path(path)
    numbered = [(n, _normalize(r)) for n, r in _rows(p)]
    if not numbered:
        raise ValueError(f"{p}: no rows; expected columns {_EXPECTED}")
    cols = set(numbered[0][1])
    if {"text1", "text2", "score"} <= cols:
        kind: Literal["pairs", "triplets", "scored"] = "scored"
        columns: tuple[str, ...] = ("text1", "text2", "score")
    elif {"anchor", "positive", "negative"} <= cols:
        kind, columns = "triplets", ("anchor", "positive", "negative")
    elif {"anchor", "positive"} <= cols:
        kind, columns = "pairs", ("anchor", "positive")
    else:
        raise ValueError(f"{p}: columns {sorted(cols)} do not match a supervision format; expected {_EXPECTED}")
    out = []
    for n, row in numbered:
        item = {c: row.get(c) for c in columns}
        for c in columns[:-1] if kind == "scored" else columns:
            value = item[c]
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{p}: row {n}: column {c!r} is empty or not text (got {value!r})")
        if kind == "scored":
            try:
                score = float(item["score"])  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ValueError(f"{p}: row {n}: score {item['score']!r} is not a number") from None
            if not -1.0 <= score <= 1.0:
                raise ValueError(f"{p}: row {n}: score {score} is outside [0, 1] (or [-1, 1]); rescale the scores")
            item["score"] = score
        out.append(item)
    return Supervision(kind=kind, rows=out, columns=columns)
