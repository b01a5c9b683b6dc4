"""The worse-than-base guard on real data: a template-trained model that hurts real questions is flagged.

Issue #16's run 5: trained on templated "question" pairs at a high learning rate, the model got worse on the real
questions while held-out pseudo-queries made by the SAME templates rose sharply, so the old report presented a
worse model as a large improvement. Here the same kind of configuration runs on 120 zaragoza answers (the real
questions only evaluate); the held-out estimate, now made by a fixed sentence generator, flags it. Same setting as
``python benchmarks/finetune_guard_check.py 120 2e-4 15 8`` (numbers in benchmarks/FINETUNE.md): 15 steps of 8
pairs at lr 2e-4, a quarter of the training of the first version of this test (30 steps of 16 at lr 1e-4, which
fails the same way but took 45 s on a quiet 2-core machine).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from sentence_transformers import SentenceTransformer

from promptembed.finetune import FinetuneWorseWarning, chunk_documents, finetune, generate_pairs, load_documents
from promptembed.finetune.evaluate import RetrievalMetrics, evaluate_retrieval, gain_interval

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import zaragoza


@pytest.mark.slow
def test_guard_flags_a_template_trained_model_that_hurts_real_questions(tmp_path: Path, minilm_dir: Path) -> None:
    records = zaragoza.load_faq()[:120]
    docs = zaragoza.write_documents(records, tmp_path / "docs")
    out = tmp_path / "m"
    with pytest.warns(FinetuneWorseWarning, match="NOT better than the base on heldout_pseudo_queries"):
        result = finetune(
            [docs], output=out, base=minilm_dir, strategies=["question"], max_pairs_per_chunk=5, learning_rate=2e-4,
            max_steps=15, batch_size=8, seed=0, progress=False,
        )  # fmt: skip
    assert not result.improved and "keep the base" in (out / "report.md").read_text()
    # 12 held-out chunks: too few for the keyword check, which the report says rather than leaving it out silently
    skipped = json.loads((out / "report.json").read_text())["specialization"]["skipped"]
    assert skipped.startswith("12 held-out keyword queries, fewer than the 30"), skipped

    # Ground truth: the 120 real questions against the 120 answers, base vs finetuned.
    queries = {f"q{i}": r["question"] for i, r in enumerate(records)}
    corpus = {f"a{i}": r["answer"] for i, r in enumerate(records)}
    relevant = {f"q{i}": {f"a{i}"} for i in range(len(records))}
    base = SentenceTransformer(str(minilm_dir), device="cpu")
    tuned = SentenceTransformer(str(out), device="cpu")
    before, after = (
        evaluate_retrieval(base, queries, corpus, relevant),
        evaluate_retrieval(tuned, queries, corpus, relevant),
    )
    real_base, real_tuned = before.ndcg_at_10, after.ndcg_at_10
    assert real_tuned < real_base - 0.02, (real_base, real_tuned)
    # Each query's nDCG@10 is kept, in the stock evaluator's tie order, so the mean is the stock metric ...
    assert len(after.per_query_ndcg_at_10) == 120
    assert sum(after.per_query_ndcg_at_10) / 120 == pytest.approx(real_tuned, abs=1e-9)
    # ... and a drop this large on 120 real questions lies outside the bootstrap's noise.
    interval = gain_interval(before, after)
    assert interval is not None and interval[0] <= real_tuned - real_base <= interval[1] < 0, interval

    # The old estimate (held-out queries from the training templates) would have called it an improvement.
    held_ids = {json.loads(line)["id"] for line in (out / "heldout_chunks.jsonl").read_text().splitlines()}
    chunks = chunk_documents(load_documents([docs], progress=False).documents, tokenizer=base.tokenizer, max_tokens=252)
    held = [c for c in chunks if c.id in held_ids]
    old = generate_pairs(held, strategies=["question"], corpus=chunks, max_per_chunk=1, seed=1, progress=False).pairs
    assert len(old) >= 8
    old_q = {f"h{i}": p.query for i, p in enumerate(old)}
    old_rel = {f"h{i}": {p.chunk_id} for i, p in enumerate(old)}
    old_corpus = {c.id: c.text for c in chunks}
    old_base = evaluate_retrieval(base, old_q, old_corpus, old_rel).ndcg_at_10
    old_tuned = evaluate_retrieval(tuned, old_q, old_corpus, old_rel).ndcg_at_10
    assert old_tuned > old_base, (old_base, old_tuned)


@pytest.mark.slow
def test_the_keyword_guard_flags_the_run5_kind_of_failure_the_held_out_estimate_misses(
    tmp_path: Path, minilm_dir: Path
) -> None:
    """Issue #16's run 5 (sentence, keyphrase, phrase and question pairs, 5 per chunk, a high learning rate) on 300
    zaragoza answers: the real questions fall while the held-out estimate rises, as run 5 did on two seeds of three.
    The model has learned to match keywords: it closes almost all of its misses on held-out keyword queries."""
    records = zaragoza.load_faq()[:300]
    docs = zaragoza.write_documents(records, tmp_path / "docs")
    out = tmp_path / "m"
    with pytest.warns(FinetuneWorseWarning, match="may be worse than the base on real questions"):
        result = finetune(
            [docs], output=out, base=minilm_dir, strategies=["sentence", "keyphrase", "phrase", "question"],
            max_pairs_per_chunk=5, learning_rate=1e-4, max_steps=40, batch_size=16, seed=0, progress=False,
        )  # fmt: skip
    held = result.evaluations["heldout_pseudo_queries"]
    assert held["finetuned"].ndcg_at_10 > held["base"].ndcg_at_10 + 0.02  # the first guard alone says "improved"
    assert result.specialized and result.specialization is not None and result.specialization > 0.7
    assert not result.improved
    report = json.loads((out / "report.json").read_text())
    assert report["specialization"]["flagged"] and report["improved"] is False
    assert "closing" in (out / "report.md").read_text()

    queries = {f"q{i}": r["question"] for i, r in enumerate(records)}  # ground truth: the 300 real questions
    corpus = {f"a{i}": r["answer"] for i, r in enumerate(records)}
    relevant = {f"q{i}": {f"a{i}"} for i in range(len(records))}
    before = evaluate_retrieval(SentenceTransformer(str(minilm_dir), device="cpu"), queries, corpus, relevant)
    after = evaluate_retrieval(SentenceTransformer(str(out), device="cpu"), queries, corpus, relevant)
    assert after.ndcg_at_10 < before.ndcg_at_10 - 0.02, (before.ndcg_at_10, after.ndcg_at_10)


def test_the_keyword_guard_only_speaks_without_real_questions(tmp_path: Path) -> None:
    from promptembed.finetune.result import KEYWORD_EVAL, FinetuneResult

    def m(score: float) -> RetrievalMetrics:
        return RetrievalMetrics(score, 0.0, 0.0, 40, 10)

    held = {"base": m(0.30), "finetuned": m(0.36)}
    keywords = {"base": m(0.80), "finetuned": m(0.97)}  # 85% of the misses closed
    flagged = FinetuneResult(tmp_path, {"heldout_pseudo_queries": held, KEYWORD_EVAL: keywords}, False, 10)
    assert flagged.specialization == pytest.approx(0.85) and flagged.specialized
    assert flagged.verdict.startswith("WARNING: the finetuned model may be worse than the base on real questions")
    assert "closing 85% of the base model's misses (above 70%" in flagged.verdict
    fell = FinetuneResult(tmp_path, {"heldout_pseudo_queries": {**held, "finetuned": m(0.28)}, KEYWORD_EVAL: keywords},
                          False, 10)  # fmt: skip
    assert "on real questions (heldout_pseudo_queries: -0.0200): on held-out keyword" in fell.verdict
    mild = FinetuneResult(tmp_path, {"heldout_pseudo_queries": held, KEYWORD_EVAL: {**keywords, "finetuned": m(0.9)}},
                          True, 10)  # fmt: skip
    assert mild.specialization == pytest.approx(0.5) and not mild.specialized
    assert mild.verdict.startswith("Finetuned model improves nDCG@10 on heldout_pseudo_queries by +0.0600")
    real = {
        "eval_queries": {"base": m(0.70), "finetuned": m(0.74)},
        "heldout_pseudo_queries": held,
        KEYWORD_EVAL: keywords,
    }
    with_real = FinetuneResult(tmp_path, real, True, 10)
    assert not with_real.specialized  # real questions decide when they are given
    assert with_real.verdict.startswith("Finetuned model improves nDCG@10 on eval_queries")


def test_gain_interval_is_a_paired_bootstrap_over_the_queries() -> None:
    def metrics(scores: list[float]) -> RetrievalMetrics:
        return RetrievalMetrics(
            sum(scores) / len(scores), 0.0, 0.0, len(scores), 10, per_query_ndcg_at_10=tuple(scores)
        )

    flat = metrics([0.5] * 40)
    # every query gains 0.25: no resample can say otherwise
    assert gain_interval(flat, metrics([0.75] * 40)) == pytest.approx((0.25, 0.25))
    # half the queries gain 0.5, half lose 0.5: the mean gain is 0 and the interval spans it, symmetric-ish
    low, high = gain_interval(flat, metrics([1.0, 0.0] * 20))  # type: ignore[misc]
    assert -0.3 < low < 0 < high < 0.3
    # the same seed gives the same interval; nothing to pair gives None
    assert gain_interval(flat, metrics([1.0, 0.0] * 20)) == (low, high)
    assert gain_interval(flat, metrics([0.5] * 39)) is None
    assert gain_interval(RetrievalMetrics(0.5, 0.5, 0.5, 40, 10), flat) is None
    assert "per_query_ndcg_at_10" not in flat.to_dict()


def test_the_verdict_names_the_interval_and_what_would_settle_a_noisy_drop(tmp_path: Path) -> None:
    from promptembed.finetune.api import FinetuneResult

    def metrics(scores: list[float]) -> RetrievalMetrics:
        return RetrievalMetrics(sum(scores) / 40, 0.0, 0.0, 40, 10, per_query_ndcg_at_10=tuple(scores))

    base, noisy_drop, clear_gain = metrics([0.5] * 40), metrics([1.0, 0.0] * 19 + [0.0, 0.0]), metrics([0.75] * 40)

    def verdict(name: str, after: RetrievalMetrics) -> str:
        improved = after.ndcg_at_10 > base.ndcg_at_10
        return FinetuneResult(tmp_path, {name: {"base": base, "finetuned": after}}, improved, 10).verdict

    held = verdict("heldout_pseudo_queries", noisy_drop)
    assert held.startswith("WARNING") and "over 40 queries: within this evaluation's noise" in held
    assert "keep the base unless real questions (eval_queries= / --eval-queries) show a gain" in held
    real = verdict("eval_queries", noisy_drop)
    assert "keep the base unless more real questions show a gain" in real
    gain = verdict("heldout_pseudo_queries", clear_gain)
    assert gain == (
        "Finetuned model improves nDCG@10 on heldout_pseudo_queries by +0.2500; "
        "95% interval +0.2500 to +0.2500 over 40 queries."
    )


def test_a_question_with_several_gold_passages_is_one_query(tmp_path: Path) -> None:
    from promptembed.finetune.api import load_eval_queries

    path = tmp_path / "eval.jsonl"
    rows = [("how do I renew a permit", "Renew it online."), ("how do I renew a permit", "Or at the town hall."),
            ("what does a permit cost", "About 200 euros.")]  # fmt: skip
    path.write_text("".join(json.dumps({"query": q, "positive": p}) + "\n" for q, p in rows))
    queries, corpus, relevant = load_eval_queries(path)
    assert sorted(queries.values()) == ["how do I renew a permit", "what does a permit cost"]
    renew = next(q for q, text in queries.items() if text.startswith("how"))
    assert {corpus[p] for p in relevant[renew]} == {"Renew it online.", "Or at the town hall."}
    assert len(corpus) == 3


def test_a_base_model_with_no_keyword_misses_is_reported_not_silent(
    tmp_path: Path, minilm_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """40 documents on 40 distinct topics: the base ranks every held-out keyword query's chunk first."""
    topics = ["volcano", "saxophone", "glacier", "submarine", "cathedral", "pineapple", "telescope", "hurricane",
              "penguin", "violin", "desert", "lighthouse", "tornado", "dinosaur", "waterfall", "microscope",
              "kangaroo", "harbor", "avalanche", "chocolate", "satellite", "orchestra", "jungle", "bicycle", "pyramid",
              "octopus", "meteor", "bakery", "canyon", "elephant", "tractor", "parrot", "castle", "comet", "lagoon",
              "trumpet", "igloo", "cactus", "rainbow", "windmill"]  # fmt: skip
    docs = tmp_path / "docs"
    docs.mkdir()
    for w in topics:
        (docs / f"{w}.md").write_text(f"# {w.title()}\n\nThe {w} guide. All about the {w}: a {w} is famous.\n")
    out = tmp_path / "m"
    with pytest.warns(FinetuneWorseWarning), caplog.at_level("WARNING", logger="promptembed"):
        result = finetune(
            [docs], output=out, base=minilm_dir, heldout_fraction=0.8, max_steps=1, batch_size=4, seed=0, progress=False
        )
    assert result.evaluations["heldout_keyword_queries"]["base"].ndcg_at_10 == 1.0 and result.specialization is None
    skipped = json.loads((out / "report.json").read_text())["specialization"]["skipped"]
    assert skipped.startswith("the base model already ranks first the chunk of each of the 32 held-out keyword")
    assert f"keyword check skipped: {skipped}" in caplog.messages
