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


def test_seed_card_column_names_and_korean_csv(tmp_path: Path) -> None:
    # seed 002: sentence_0, sentence_1, label (Korean word pairs) -> scored; seeds 000/003/004: sentence_0/1 -> pairs
    scored = tmp_path / "ko.csv"
    scored.write_text("sentence_0,sentence_1,label\n사업장,사업장소재지,1.0\n상흐,상호,0.5\n", encoding="utf-8")
    sup = load_supervision(scored)
    assert sup.kind == "scored" and sup.columns == ("text1", "text2", "score")
    assert sup.rows == [
        {"text1": "사업장", "text2": "사업장소재지", "score": 1.0},
        {"text1": "상흐", "text2": "상호", "score": 0.5},
    ]
    pairs = tmp_path / "p.jsonl"
    pairs.write_text(json.dumps({"sentence_0": "질문", "sentence_1": "답변"}, ensure_ascii=False) + "\n", "utf-8")
    assert load_supervision(pairs).rows == [{"anchor": "질문", "positive": "답변"}]
    trip = tmp_path / "t.csv"
    trip.write_text('anchor,positive,negative\n"a, with comma","multi\nline",c\n', encoding="utf-8")
    assert load_supervision(trip).rows == [{"anchor": "a, with comma", "positive": "multi\nline", "negative": "c"}]


def test_bad_files_say_what_is_wrong(tmp_path: Path) -> None:
    cp949 = tmp_path / "excel.csv"
    cp949.write_bytes("text1,text2,score\n사업장,상호,1\n".encode("cp949"))
    with pytest.raises(ValueError, match=re.escape(f"{cp949}: not UTF-8 (bad byte at offset 18); save it as UTF-8")):
        load_supervision(cp949)
    missing = tmp_path / "missing.jsonl"
    missing.write_text(json.dumps({"anchor": "only the anchor"}) + "\n")
    with pytest.raises(ValueError, match=re.escape("columns ['anchor'] do not match a supervision format; expected")):
        load_supervision(missing)
    array = tmp_path / "array.jsonl"
    array.write_text('["a", "b"]\n')
    with pytest.raises(
        ValueError, match=re.escape(f"{array}: line 1: expected a JSON object with keys anchor,positive")
    ):
        load_supervision(array)
    extra = tmp_path / "extra.csv"
    extra.write_text("anchor,positive\na,b,c\n")
    with pytest.raises(ValueError, match=re.escape("row 2 has more cells than the header ['anchor', 'positive']")):
        load_supervision(extra)
    with pytest.raises(ValueError, match=re.escape("unsupported supervision file type '.xlsx'; use .csv or .jsonl")):
        load_supervision(tmp_path / "x.xlsx")


def test_raw_line_and_paragraph_separators_stay_inside_a_row(tmp_path: Path) -> None:
    rows = [
        {"query": "Permit?", "positive": "A carport\u2028needs one.\u2029Ask\x85the city."},
        {"query": "b", "positive": "c"},
    ]
    jsonl = tmp_path / "raw.jsonl"  # as json.dumps(ensure_ascii=False) writes them: the separators unescaped
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows), encoding="utf-8")
    csv_file = tmp_path / "raw.csv"  # unquoted in a CSV cell
    csv_file.write_text(
        "query,positive\nPermit?,A carport\u2028needs one.\u2029Ask\x85the city.\nb,c\n", encoding="utf-8"
    )
    expected = [{"anchor": r["query"], "positive": r["positive"]} for r in rows]
    assert load_supervision(jsonl).rows == expected
    assert load_supervision(csv_file).rows == expected
