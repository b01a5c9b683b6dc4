from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from promptembed.finetune import load_supervision


def test_pairs_csv_with_aliases(tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text("question,answer\nWhat is a carport?,A roof for a car.\n")
    sup = load_supervision(f)
    assert sup.kind == "pairs" and sup.rows == [{"anchor": "What is a carport?", "positive": "A roof for a car."}]


def test_triplets_and_korean_scored_jsonl(tmp_path: Path) -> None:
    t = tmp_path / "t.jsonl"
    t.write_text(json.dumps({"anchor": "a", "positive": "b", "negative": "c"}) + "\n")
    assert load_supervision(t).kind == "triplets"
    s = tmp_path / "s.jsonl"
    rows = [{"sentence1": "오늘 날씨가 좋다", "sentence2": "날씨가 맑다", "score": 0.8}]
    s.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    sup = load_supervision(s)
    assert sup.kind == "scored" and sup.rows[0] == {"text1": "오늘 날씨가 좋다", "text2": "날씨가 맑다", "score": 0.8}


def test_errors_name_file_row_and_columns(tmp_path: Path) -> None:
    f = tmp_path / "bad.csv"
    f.write_text("foo,bar\n1,2\n")
    with pytest.raises(ValueError, match=re.escape("columns ['bar', 'foo'] do not match a supervision format")):
        load_supervision(f)
    g = tmp_path / "score.csv"
    g.write_text("text1,text2,score\na,b,7\n")
    with pytest.raises(ValueError, match=re.escape("row 2: score 7.0 is outside [0, 1]")):
        load_supervision(g)
    h = tmp_path / "empty.csv"
    h.write_text("anchor,positive\n,x\n")
    with pytest.raises(ValueError, match=re.escape("row 2: column 'anchor' is empty or not text")):
        load_supervision(h)
