"""Teacher paths: a bi-encoder and a CrossEncoder teacher score mined triplets; the student learns margin-MSE."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import CrossEncoder, SentenceTransformer

from promptembed import ConfigError
from promptembed.finetune import finetune
from promptembed.finetune.teacher import load_teacher
from promptembed.testing import EMBEDDINGGEMMA_PROMPTS

TOPICS = [
    "A carport needs a building permit in most municipalities.",
    "Heat pumps lower energy bills for houses.",
    "Roof repairs with the same material need no permit.",
    "The contractor must have liability insurance before work starts.",
    "Drainage must be checked before the foundation is poured.",
    "Replacing windows with the same look needs no permit.",
    "A fence taller than one metre near a street may need a permit.",
    "Small sheds under fifteen square metres are often exempt.",
    "Solar panels on a flat roof rarely need planning permission.",
    "Balconies facing a neighbour need the neighbour's consent.",
]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i, text in enumerate(TOPICS):
        (folder / f"{i}.md").write_text(f"# Topic {i}\n\n{text}\n")
    return folder


@pytest.fixture
def tiny_cross_encoder(tiny_bert_dir: Path, tmp_path: Path) -> Path:
    """A tiny random-weight CrossEncoder (BertForSequenceClassification, one label), saved by sentence-transformers."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    config = BertConfig.from_pretrained(tiny_bert_dir)
    config.num_labels = 1
    config.architectures = ["BertForSequenceClassification"]
    torch.manual_seed(0)
    raw = tmp_path / "ce-raw"
    BertForSequenceClassification(config).save_pretrained(raw)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(raw)
    out = tmp_path / "tiny-ce"
    CrossEncoder(str(raw), device="cpu", local_files_only=True).save(str(out))
    return out


def _rows(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "train_pairs.jsonl").read_text().splitlines()]


def test_bi_encoder_teacher_margins_use_the_teachers_own_prompts(
    docs: Path, tmp_path: Path, tiny_bert_dir: Path, tiny_gemma_dir: Path
) -> None:
    out = tmp_path / "student"
    result = finetune(
        [docs], output=out, base=tiny_bert_dir, teacher=tiny_gemma_dir, heldout_fraction=0.2, max_steps=2,
        batch_size=4, progress=False,
    )  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["loss"] == "margin_mse"
    assert report["configuration"]["teacher"] == str(tiny_gemma_dir)
    rows = _rows(out)
    assert rows and all({"anchor", "positive", "negative_1", "label"} <= set(r) for r in rows)
    # Reference: the teacher's own encode_query / encode_document (EmbeddingGemma prompts), cosine margins.
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    for row in rows[:5]:
        q = ref.encode_query([row["anchor"]], normalize_embeddings=True)
        p = ref.encode_document([row["positive"], row["negative_1"]], normalize_embeddings=True)
        expected = float(q[0] @ p[0] - q[0] @ p[1])
        assert row["label"] == pytest.approx([expected], abs=1e-5)
    # The teacher is evaluated too, with its own prompts, beside base and student.
    held = result.evaluations["heldout_pseudo_queries"]
    assert {"base", "finetuned", "teacher"} <= set(held)
    assert "| metric | base | finetuned | change | teacher |" in (out / "report.md").read_text()
    # The student keeps its own (empty) prompt table: the teacher's prompts never leak into it.
    saved = json.loads((out / "config_sentence_transformers.json").read_text())
    assert "query" not in saved.get("prompts", {}) or saved["prompts"]["query"] == ""


def test_cross_encoder_teacher_scores_pairs_and_student_keeps_prompts(
    docs: Path, tmp_path: Path, tiny_gemma_dir: Path, tiny_cross_encoder: Path
) -> None:
    teacher = load_teacher(tiny_cross_encoder, device="cpu")
    assert teacher.kind == "cross-encoder"
    out = tmp_path / "student"
    result = finetune(
        [docs], output=out, base=tiny_gemma_dir, teacher=tiny_cross_encoder, heldout_fraction=0.2, max_steps=2,
        batch_size=4, progress=False,
    )  # fmt: skip
    rows = _rows(out)
    reference = CrossEncoder(str(tiny_cross_encoder), device="cpu")
    for row in rows[:5]:
        pos, neg = reference.predict([(row["anchor"], row["positive"]), (row["anchor"], row["negative_1"])])
        assert row["label"] == pytest.approx([float(pos - neg)], abs=1e-5)
    assert "teacher" in result.evaluations["heldout_pseudo_queries"]
    saved = json.loads((out / "config_sentence_transformers.json").read_text())["prompts"]
    assert {k: saved[k] for k in EMBEDDINGGEMMA_PROMPTS} == EMBEDDINGGEMMA_PROMPTS


def test_teacher_kinds_and_errors(tiny_bert_dir: Path, tiny_cross_encoder: Path, tmp_path: Path) -> None:
    assert load_teacher(tiny_bert_dir, device="cpu").kind == "bi-encoder"
    assert load_teacher(CrossEncoder(str(tiny_cross_encoder), device="cpu")).kind == "cross-encoder"
    scores = load_teacher(tiny_bert_dir, device="cpu").score_pairs(["a b", "a b"], ["c d", "e f"])
    assert scores.shape == (2,) and np.isfinite(scores).all()
    with pytest.raises(ConfigError, match="teacher must be a SentenceTransformer, a CrossEncoder"):
        load_teacher(42)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("anchor,positive\n" + "".join(f"q{i},{t}\n" for i, t in enumerate(TOPICS)))
    with pytest.raises(ConfigError, match="teacher= works with generated pairs only"):
        finetune(supervision=pairs, output=tmp_path / "m", base=tiny_bert_dir, teacher=tiny_bert_dir, progress=False)
