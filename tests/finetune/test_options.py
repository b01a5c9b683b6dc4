"""finetune()'s options are checked before any document is read (ConfigError naming the option)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from promptembed.errors import ConfigError
from promptembed.finetune import finetune

NAN = float("nan")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"strategies": "sentence"}, "strategies='sentence' is a single str; pass a list of strategy names"),
        ({"strategies": "sentence,keyphrase"}, "e.g. ['sentence', 'keyphrase'] (the CLI's --strategies"),
        ({"max_pairs_per_chunk": 0}, "max_pairs_per_chunk=0 must be at least 1"),
        ({"max_pairs_per_chunk": 2.5}, "max_pairs_per_chunk=2.5 must be a whole number"),
        ({"max_train_pairs": 2.5}, "max_train_pairs=2.5 must be a whole number: at least 2, or None for no cap"),
        ({"max_train_pairs": "9"}, "max_train_pairs='9' must be a whole number"),
        ({"filter": "BM25"}, "Unknown filter='BM25'; use one of 'bm25', 'model', 'both', 'none'"),
        ({"filter_top_k": 0}, "filter_top_k=0 must be at least 1"),
        ({"filter_top_k": 2.0}, "filter_top_k=2.0 must be a whole number"),
        ({"heldout_fraction": 1.0}, "heldout_fraction=1.0 must be in [0, 1)"),
        ({"heldout_fraction": -0.1}, "heldout_fraction=-0.1 must be in [0, 1)"),
        ({"heldout_fraction": NAN}, "heldout_fraction=nan must be a number in [0, 1)"),
        ({"heldout_fraction": "0.1"}, "heldout_fraction='0.1' must be a number in [0, 1)"),
        ({"warmup_ratio": 5}, "warmup_ratio=5 must be in [0, 1)"),  # transformers would read 5 as 5 steps
        ({"warmup_ratio": 1.0}, "warmup_ratio=1.0 must be in [0, 1)"),
        ({"warmup_ratio": -0.5}, "warmup_ratio=-0.5 must be in [0, 1)"),
        ({"hard_negatives": 1.5}, "hard_negatives=1.5 must be a whole number: 0 (in-batch negatives only) or more"),
        ({"hard_negatives": "2"}, "hard_negatives='2' must be a whole number"),
        ({"negative_margin": 5}, "negative_margin=5 must be in [0, 1)"),
        ({"negative_margin": -1}, "negative_margin=-1 must be in [0, 1)"),
        ({"interpolate": "0.5"}, "interpolate='0.5' must be a number in [0, 1]"),
        ({"interpolate": NAN}, "interpolate=nan must be a number in [0, 1]"),
        ({"save_steps": 0}, "save_steps=0 must be at least 1"),
        ({"save_steps": -1}, "save_steps=-1 must be at least 1"),
        ({"llm_concurrency": 1.5, "llm": lambda p: ["q"]}, "llm_concurrency=1.5 must be a whole number"),
    ],
)  # fmt: skip
def test_a_bad_option_is_named_before_any_document_is_read(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    # no documents there: an option checked late would fail on them ("No readable documents") instead
    with pytest.raises(ConfigError, match=re.escape(message)):
        finetune([tmp_path / "never-read"], output=tmp_path / "m", progress=False, **options)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("loss", "rows", "message"),
    [
        ("cosent", None, "loss='cosent' trains on scored pairs (text1,text2,score) and pairs made from documents have"),
        ("cosent", [{"anchor": "q", "positive": "p"}] * 2, "and a supervision file of pairs have no scores"),
        ("mnrl", [{"text1": "a", "text2": "b", "score": 0.5}] * 2, "loss='mnrl' trains on (anchor,positive) pairs"),
        ("cached_mnrl", [{"text1": "a", "text2": "b", "score": 0.5}] * 2, "loss='cached_mnrl' trains on (anchor"),
        ("gist", [{"text1": "a", "text2": "b", "score": 0.5}] * 2, "loss='gist' trains on (anchor,positive) pairs"),
    ],
)  # fmt: skip
def test_a_loss_that_cannot_train_on_the_rows_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loss: str, rows: list[dict[str, Any]] | None, message: str
) -> None:
    import json

    import sentence_transformers

    def no_model(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", no_model)
    options: dict[str, Any] = {"loss": loss}
    docs = [tmp_path / "never-read"]
    if rows is not None:
        options["supervision"] = tmp_path / "sup.jsonl"
        options["supervision"].write_text("".join(json.dumps(r) + "\n" for r in rows))
        docs = [] if "score" in rows[0] else docs
    with pytest.raises(ConfigError, match=re.escape(message)):
        finetune(docs, output=tmp_path / "m", progress=False, **options)
