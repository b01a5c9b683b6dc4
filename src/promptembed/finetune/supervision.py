"""Your own supervision: pairs, triplets or scored pairs from CSV or JSONL.

Columns (header row in CSV, keys in JSONL):

- pairs: ``anchor``, ``positive`` (aliases: ``query``/``question`` for anchor, ``passage``/``answer``/``document``
  for positive) -> MultipleNegativesRankingLoss (seed model cards 000, 003, 004).
- triplets: ``anchor``, ``positive``, ``negative`` -> MultipleNegativesRankingLoss with the negatives.
- scored: ``text1``, ``text2``, ``score`` (aliases ``sentence1``/``sentence2``; score in [0, 1])
  -> CoSENTLoss (seed 002).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["Supervision", "load_supervision"]

_ALIASES = {
    "query": "anchor",
    "question": "anchor",
    "passage": "positive",
    "answer": "positive",
    "document": "positive",
    "sentence1": "text1",
    "sentence2": "text2",
    "label": "score",
}


@dataclass
class Supervision:
    """Rows of a supervision file, with its kind."""

    kind: Literal["pairs", "triplets", "scored"]
    rows: list[dict[str, Any]]
    columns: tuple[str, ...]


def _rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as f:
            return [dict(r) for r in csv.DictReader(f)]
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except ValueError as exc:
                        raise ValueError(f"{path}:{n}: not valid JSON ({exc})") from None
        return rows
    raise ValueError(f"{path}: unsupported supervision file type {path.suffix!r}; use .csv or .jsonl")


def load_supervision(path: str | Path) -> Supervision:
    """Read a supervision file and decide its kind from its columns.

    Raises:
        ValueError: Unreadable file, missing columns (the message lists the expected ones), empty cells or bad scores.
    """
    p = Path(path)
    rows = [{_ALIASES.get(k.strip().lower(), k.strip().lower()): v for k, v in r.items()} for r in _rows(p)]
    if not rows:
        raise ValueError(
            f"{p}: no rows; expected columns anchor,positive (pairs), +negative (triplets) or text1,text2,score"
        )
    cols = set(rows[0])
    if {"text1", "text2", "score"} <= cols:
        kind: Literal["pairs", "triplets", "scored"] = "scored"
        columns: tuple[str, ...] = ("text1", "text2", "score")
    elif {"anchor", "positive", "negative"} <= cols:
        kind, columns = "triplets", ("anchor", "positive", "negative")
    elif {"anchor", "positive"} <= cols:
        kind, columns = "pairs", ("anchor", "positive")
    else:
        raise ValueError(
            f"{p}: columns {sorted(cols)} do not match a supervision format; expected anchor,positive (pairs), "
            "anchor,positive,negative (triplets) or text1,text2,score (scored pairs)"
        )
    out = []
    for n, row in enumerate(rows, start=2 if p.suffix.lower() == ".csv" else 1):
        item = {c: row.get(c) for c in columns}
        for c in columns[:-1] if kind == "scored" else columns:
            value = item[c]
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{p}: row {n}: column {c!r} is empty or not text")
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
