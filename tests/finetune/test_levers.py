"""Levers on small data: round-trip filtering, weight interpolation, chunk-aware hard negatives, held-out queries."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from promptembed import ConfigError, PromptEmbedder
from promptembed.finetune import chunk_documents, finetune, generate_pairs, load_documents
from promptembed.finetune.chunking import Chunk
from promptembed.finetune.heldout import heldout_queries
from promptembed.finetune.negatives import mine_chunk_negatives
from promptembed.finetune.train import interpolate_weights

TEXTS = {
    "permits": "A carport needs a building permit in most municipalities. The roof area decides whether it does. "
    "Attached carports count as extensions of the house.",
    "energy": "Heat pumps lower energy bills for houses. Ground source pumps cost more to install than air pumps. "
    "Both need a licensed installer.",
    "roofs": "Roof repairs with the same material need no permit. Changing the colour of the roof may need one. "
    "Listed buildings follow stricter rules.",
    "insurance": "The contractor must have liability insurance. Ask for the certificate before any work starts. "
    "Home insurance rarely covers renovation damage.",
    "drainage": "Drainage must be checked before the foundation is poured. Water damage is expensive to repair. "
    "A surveyor can inspect the slope of the plot.",
    "windows": "Replacing windows with the same look needs no permit. New window openings in a facade need one. "
    "Triple glazing reduces heating costs noticeably.",
}


@pytest.fixture
def docs(write_docs: Callable[[Mapping[str, str]], Path]) -> Path:
    return write_docs(TEXTS)


def _chunks(docs: Path, model_dir: Path) -> list[Chunk]:
    model = SentenceTransformer(str(model_dir), device="cpu")
    return chunk_documents(load_documents([docs], progress=False).documents, tokenizer=model.tokenizer, max_tokens=200)


def test_round_trip_filter_keeps_exactly_the_pairs_the_base_model_ranks_in_top_k(docs: Path, minilm_dir: Path) -> None:
    chunks = _chunks(docs, minilm_dir)
    strategies = ("sentence", "keyphrase", "question")
    everything = generate_pairs(chunks, strategies=strategies, filter="none", max_per_chunk=9, seed=3, progress=False)
    with PromptEmbedder(model=minilm_dir) as emb:
        kept = generate_pairs(
            chunks, strategies=strategies, filter="model", top_k=1, embedder=emb, max_per_chunk=9, seed=3,
            progress=False,
        )  # fmt: skip
    # Reference ranks from sentence-transformers itself: a pair survives iff its own chunk is the top hit.
    ref = SentenceTransformer(str(minilm_dir), device="cpu")
    d = ref.encode_document([c.text for c in chunks])
    q = ref.encode_query([p.query for p in everything.pairs])
    index = {c.id: i for i, c in enumerate(chunks)}
    top1 = {p.query for p, row in zip(everything.pairs, q @ d.T, strict=True) if int(row.argmax()) == index[p.chunk_id]}
    assert {p.query for p in kept.pairs} == top1
    assert 0 < len(kept.pairs) < len(everything.pairs)  # the filter did drop something, and kept something
    assert sum(s["filtered"] for s in kept.stats.values()) == len(everything.pairs) - len(top1)


def test_interpolate_weights_is_the_convex_mix(tiny_bert_dir: Path) -> None:
    model = SentenceTransformer(str(tiny_bert_dir), device="cpu")
    base = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    tuned = {k: v.clone() for k, v in model.state_dict().items()}
    interpolate_weights(model, base, 0.25)
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            torch.testing.assert_close(tensor, 0.25 * tuned[name] + 0.75 * base[name])
    with pytest.raises(ValueError, match=r"interpolate=1.5 must be in \[0, 1\]"):
        interpolate_weights(model, base, 1.5)


def test_finetune_interpolate_zero_saves_the_base_weights(docs: Path, tmp_path: Path, tiny_bert_dir: Path) -> None:
    out = tmp_path / "m"
    finetune(
        [docs], output=out, base=tiny_bert_dir, interpolate=0.0, max_steps=2, batch_size=4, heldout_fraction=0.3,
        learning_rate=1e-2, progress=False,
    )  # fmt: skip
    texts = ["carport permit", "heat pump installer"]
    base = SentenceTransformer(str(tiny_bert_dir), device="cpu").encode(texts)
    np.testing.assert_allclose(SentenceTransformer(str(out), device="cpu").encode(texts), base, atol=1e-6)
    assert json.loads((out / "report.json").read_text())["configuration"]["interpolate"] == 0.0
    with pytest.raises(ConfigError, match=r"interpolate=2 must be in \[0, 1\]"):
        finetune([docs], output=tmp_path / "n", base=tiny_bert_dir, interpolate=2, progress=False)


def test_hard_negatives_never_the_own_chunk_and_respect_the_margin() -> None:
    rng = np.random.default_rng(0)
    chunks = rng.normal(size=(20, 8)).astype(np.float32)
    chunks /= np.linalg.norm(chunks, axis=1, keepdims=True)
    queries = chunks[:10] + 0.3 * rng.normal(size=(10, 8)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    chunks[11] = chunks[1]  # chunk 11 answers query 1 exactly as well as its own chunk: a false negative
    targets = list(range(10))
    found = mine_chunk_negatives(queries, chunks, targets, num_negatives=3, relative_margin=0.1)
    scores = queries @ chunks.T
    for i, negs in enumerate(found):
        assert i not in negs and len(negs) <= 3
        assert all(scores[i, n] <= scores[i, i] * 0.9 for n in negs)
        others = [j for j in np.argsort(-scores[i]) if j != i and scores[i, j] <= scores[i, i] * 0.9]
        assert negs == [int(j) for j in others[:3]]  # the hardest ones that pass, most similar first
    assert 11 not in found[1]
    with pytest.raises(ValueError, match="num_negatives=0"):
        mine_chunk_negatives(queries, chunks, targets, num_negatives=0)


def test_hard_negative_finetune_trains_on_triplets_of_other_chunks(
    docs: Path, tmp_path: Path, minilm_dir: Path
) -> None:
    out = tmp_path / "m"
    finetune(
        [docs], output=out, base=minilm_dir, hard_negatives=1, max_steps=1, batch_size=4, heldout_fraction=0.2,
        progress=False,
    )  # fmt: skip
    rows = [json.loads(line) for line in (out / "train_pairs.jsonl").read_text().splitlines()]
    assert rows and all("negative_1" in r for r in rows)
    held = {json.loads(line)["text"] for line in (out / "heldout_chunks.jsonl").read_text().splitlines()}
    assert held
    for r in rows:  # the negative is another training chunk: not the own chunk, never a held-out one
        assert r["anchor"] not in r["negative_1"] and r["positive"] not in r["negative_1"]
        assert r["negative_1"] not in held


def test_heldout_queries_are_cut_out_of_their_gold_passage(docs: Path, minilm_dir: Path) -> None:
    chunks = _chunks(docs, minilm_dir)
    queries, corpus, relevant = heldout_queries(chunks[:3], chunks, seed=0)
    assert len(queries) == 3 and set(corpus) == {c.id for c in chunks}
    for qid, query in queries.items():
        (gold,) = relevant[qid]
        assert query not in corpus[gold] and query in next(c.text for c in chunks if c.id == gold)
    assert heldout_queries(chunks[:3], chunks, seed=0) == (queries, corpus, relevant)  # seeded


def test_pair_cap_keeps_every_chunks_first_pair_first(tmp_path: Path, tiny_bert_dir: Path) -> None:
    from promptembed.finetune._steps import cap_pairs
    from promptembed.finetune.pairs import Pair

    pairs = [Pair(f"q{c}{k}", "p", f"c{c}", "sentence") for c in range(4) for k in range(3)]
    assert [p.query for p in cap_pairs(pairs, 6)] == ["q00", "q01", "q10", "q11", "q20", "q30"]  # input order kept
    assert cap_pairs(pairs, None) == pairs
    with pytest.raises(ConfigError, match="max_train_pairs=1 must be at least 2, or None for no cap"):
        finetune([tmp_path], output=tmp_path / "m", base=tiny_bert_dir, max_train_pairs=1, progress=False)
    with pytest.raises(ConfigError, match=r"hard_negatives=-1 must be 0 \(in-batch negatives only\) or more"):
        finetune([tmp_path], output=tmp_path / "m", base=tiny_bert_dir, hard_negatives=-1, progress=False)


def test_gist_loss_trains_with_a_frozen_base_guide(docs: Path, tmp_path: Path, tiny_bert_dir: Path) -> None:
    out = tmp_path / "m"
    finetune(
        [docs], output=out, base=tiny_bert_dir, loss="gist", max_steps=2, batch_size=4, heldout_fraction=0.3,
        learning_rate=1e-2, progress=False,
    )  # fmt: skip
    assert json.loads((out / "report.json").read_text())["configuration"]["loss"] == "gist"
    texts = ["carport permit", "heat pump installer"]
    base = SentenceTransformer(str(tiny_bert_dir), device="cpu").encode(texts)
    tuned = SentenceTransformer(str(out), device="cpu").encode(texts)
    assert not np.allclose(tuned, base, atol=1e-4)  # trained (the guide is a copy; the student moved)
    with pytest.raises(ConfigError, match=r"Unknown loss='gisst'; use one of 'auto', 'mnrl', 'cached_mnrl', 'gist'"):
        finetune([docs], output=tmp_path / "n", base=tiny_bert_dir, loss="gisst", progress=False)  # type: ignore[arg-type]


def test_train_dtype_picks_bf16_only_where_the_hardware_runs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from promptembed import _loading
    from promptembed.finetune.train import train_in_bf16

    assert train_in_bf16("float32", "cuda:0") is False
    monkeypatch.setattr(_loading, "cpu_native_bf16", lambda: "amx_bf16")
    assert train_in_bf16("auto", "cpu") is True  # measured on AMX: 1.27x, same gain (benchmarks/FINETUNE.md)
    assert train_in_bf16("float32", "cpu") is False
    assert train_in_bf16("bfloat16", "cpu") is True
    monkeypatch.setattr(_loading, "cpu_native_bf16", lambda: "avx512_bf16")
    assert train_in_bf16("auto", "cpu") is False  # not measured without AMX: float32 unless asked
    assert train_in_bf16("bfloat16", "cpu") is True
    monkeypatch.setattr(_loading, "cpu_native_bf16", lambda: None)
    assert train_in_bf16("auto", "cpu") is False
    assert train_in_bf16("auto", "mps") is False
    with pytest.raises(ConfigError, match=r"no native bf16 \(AMX or avx512_bf16\).*use train_dtype='float32'"):
        train_in_bf16("bfloat16", "cpu")
    with pytest.raises(ConfigError, match=r"supported on CUDA and on CPUs with native bf16"):
        train_in_bf16("bfloat16", "mps")


def test_bf16_training_on_a_cpu_with_native_bf16(docs: Path, tmp_path: Path, tiny_bert_dir: Path) -> None:
    from promptembed import _loading

    if _loading.cpu_native_bf16() is None:
        pytest.skip("this CPU has no native bf16")
    out = tmp_path / "m"
    finetune(
        [docs], output=out, base=tiny_bert_dir, train_dtype="bfloat16", max_steps=2, batch_size=4,
        heldout_fraction=0.3, learning_rate=1e-2, progress=False,
    )  # fmt: skip
    assert json.loads((out / "report.json").read_text())["configuration"]["train_dtype"] == "bfloat16"
    vectors = SentenceTransformer(str(out), device="cpu").encode(["carport permit"])
    assert vectors.dtype == np.float32 and np.isfinite(vectors).all()  # saved weights stay float32
    with pytest.raises(ConfigError, match=r"Unknown train_dtype='fp16'"):
        finetune([docs], output=tmp_path / "n", base=tiny_bert_dir, train_dtype="fp16", progress=False)  # type: ignore[arg-type]


@pytest.mark.parametrize("loss", ["mnrl", "cached_mnrl"])
def test_mnrl_trains_at_the_measured_scale(
    loss: str, tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    from promptembed.finetune.train import MNRL_SCALE, train_model

    seen: dict[str, object] = {}

    class Stop(Exception):
        pass

    def capture(*args: object, **kwargs: object) -> None:
        seen["loss"] = kwargs["loss"]
        raise Stop

    monkeypatch.setattr(sentence_transformers, "SentenceTransformerTrainer", capture)
    model = SentenceTransformer(str(tiny_bert_dir), device="cpu")
    rows = [{"anchor": "a carport permit", "positive": "A carport needs a permit."}] * 2
    with pytest.raises(Stop):
        train_model(
            model, rows, loss=loss, work_dir=tmp_path, epochs=1, batch_size=2, learning_rate=2e-5, seed=0,  # type: ignore[arg-type]
            matryoshka_dims=None, max_steps=1, save_steps=1, resume=False, progress=False,
        )  # fmt: skip
    assert MNRL_SCALE == 30.0  # measured: benchmarks/FINETUNE.md, probes mnrl-scale30 on both domains
    assert seen["loss"].scale == MNRL_SCALE  # type: ignore[attr-defined]


def test_auto_epochs_trains_a_small_training_set_twice(docs: Path, tmp_path: Path, tiny_bert_dir: Path) -> None:
    from promptembed.finetune.train import SMALL_TRAINING_SET, auto_epochs

    assert auto_epochs(SMALL_TRAINING_SET - 1) == 2 and auto_epochs(SMALL_TRAINING_SET) == 1
    out = tmp_path / "m"
    finetune([docs], output=out, base=tiny_bert_dir, batch_size=4, heldout_fraction=0.3, progress=False)
    report = json.loads((out / "report.json").read_text())
    assert report["configuration"]["epochs"] == "auto"
    assert report["data"]["train_pairs"] < SMALL_TRAINING_SET and report["training"]["epochs"] == 2
    assert report["training"]["metrics"]["epoch"] == pytest.approx(2.0)  # what the trainer ran
    rows = report["data"]["train_pairs"]
    assert f"| epochs | `auto` (2 for {rows} training rows) |" in (out / "report.md").read_text()
    for bad in (0, -1.0, float("inf"), float("nan"), "two"):
        with pytest.raises(ConfigError, match=r"epochs=.* must be a positive finite number or 'auto'"):
            finetune([docs], output=tmp_path / "n", base=tiny_bert_dir, epochs=bad, progress=False)  # type: ignore[arg-type]


def test_the_report_gives_the_epochs_trained_when_max_steps_stops_first(
    docs: Path, tmp_path: Path, tiny_bert_dir: Path
) -> None:
    out = tmp_path / "m"
    finetune([docs], output=out, base=tiny_bert_dir, max_steps=1, batch_size=4, heldout_fraction=0.3, progress=False)
    report = json.loads((out / "report.json").read_text())
    trained = report["training"]["metrics"]["epoch"]
    assert 0 < trained < 2 and report["training"]["epochs"] == pytest.approx(trained)  # not the 2 "auto" planned
    assert report["training"]["epochs_planned"] == 2
    rows = report["data"]["train_pairs"]
    assert (
        f"| epochs | `auto` (2 for {rows} training rows); {trained:g} trained (max_steps=1) |"
        in (out / "report.md").read_text()
    )
