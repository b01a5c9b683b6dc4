from __future__ import annotations

import re
from pathlib import Path

import pytest

from promptembed import PromptEmbedder
from promptembed.finetune import Chunk, generate_pairs, load_pairs_jsonl, save_pairs_jsonl
from promptembed.finetune.pairs import _retrievable_bm25

TEXTS = [
    "A carport needs a building permit in most municipalities. The roof area decides it. Small ones may be exempt.",
    "Heat pumps lower energy bills. Ground source pumps cost more to install. Air pumps are cheaper to buy.",
    "Roof repairs with the same material need no permit. Changing the colour of the roof may need one.",
    "The contractor must have liability insurance. Ask for the certificate before work starts.",
    "Drainage must be checked before the foundation is poured. Water damage is expensive to repair later.",
]


@pytest.fixture
def chunks() -> list[Chunk]:
    return [
        Chunk(id=f"c{i}", doc_path=f"d{i}.md", heading_path=("Guide", f"Topic {i}"), text=t, title=f"d{i}")
        for i, t in enumerate(TEXTS)
    ]


def test_pairs_deterministic_capped_deduped(chunks: list[Chunk]) -> None:
    a = generate_pairs(chunks, strategies=["sentence", "keyphrase", "title"], max_per_chunk=2, seed=3, progress=False)
    b = generate_pairs(chunks, strategies=["sentence", "keyphrase", "title"], max_per_chunk=2, seed=3, progress=False)
    assert a.pairs == b.pairs and a.pairs
    per_chunk: dict[str, int] = {}
    for p in a.pairs:
        per_chunk[p.chunk_id] = per_chunk.get(p.chunk_id, 0) + 1
    assert max(per_chunk.values()) <= 2
    assert len({p.query.lower() for p in a.pairs}) == len(a.pairs)
    assert sum(s["kept"] for s in a.stats.values()) == len(a.pairs)
    for p in a.pairs:
        if p.source == "sentence":
            assert p.query not in p.positive and p.query in TEXTS[int(p.chunk_id[1:])]


def test_filter_keeps_only_retrievable_pairs(chunks: list[Chunk]) -> None:
    ok = _retrievable_bm25(["carport building permit", "liability insurance certificate"], chunks, [0, 0], top_k=1)
    assert ok == [True, False]  # the second query is about chunk 3, not chunk 0
    with PromptEmbedder() as emb:
        result = generate_pairs(chunks, strategies=["sentence"], filter="model", embedder=emb, top_k=1, progress=False)
        q = emb.embed_queries([p.query for p in result.pairs])
        d = emb.embed_documents([c.text for c in chunks])
        best = (q @ d.T).argmax(axis=1)
        assert [f"c{i}" for i in best] == [p.chunk_id for p in result.pairs]


def test_pairs_come_only_from_given_chunks(chunks: list[Chunk]) -> None:
    train, held = chunks[:3], chunks[3:]
    result = generate_pairs(train, corpus=chunks, strategies=["sentence", "keyphrase"], progress=False)
    held_ids = {c.id for c in held}
    assert result.pairs and not any(p.chunk_id in held_ids for p in result.pairs)
    assert not any(h.text in p.positive or p.query in h.text for p in result.pairs for h in held)


def test_unknown_strategy_and_roundtrip(chunks: list[Chunk], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape("Unknown pair strategies ['magic']")):
        generate_pairs(chunks, strategies=["magic"])
    pairs = generate_pairs(chunks, progress=False).pairs
    save_pairs_jsonl(pairs, tmp_path / "p.jsonl")
    assert load_pairs_jsonl(tmp_path / "p.jsonl") == pairs


def test_every_strategy_by_name_is_deterministic_and_sourced(chunks: list[Chunk]) -> None:
    for name in ("sentence", "keyphrase", "phrase", "question", "title"):
        a = generate_pairs(chunks, strategies=[name], filter="none", seed=1, progress=False)
        b = generate_pairs(chunks, strategies=[name], filter="none", seed=1, progress=False)
        assert a.pairs and a.pairs == b.pairs, name
        assert {p.source for p in a.pairs} == {name}
        assert a.stats[name]["generated"] == a.stats[name]["kept"] + a.stats[name]["duplicates"]
    questions = generate_pairs(chunks, strategies=["question"], filter="none", progress=False).pairs
    assert all(q.query.endswith("?") and q.positive == TEXTS[int(q.chunk_id[1:])] for q in questions)
    titles = generate_pairs(chunks, strategies=["title"], filter="none", progress=False).pairs
    assert titles[0].query == "Guide Topic 0"


def test_bm25_filter_matches_an_independent_bm25_top_k(chunks: list[Chunk]) -> None:
    import bm25s

    kept = generate_pairs(chunks, strategies=["keyphrase", "phrase", "question"], top_k=1, progress=False)
    unfiltered = generate_pairs(chunks, strategies=["keyphrase", "phrase", "question"], filter="none", progress=False)
    assert kept.pairs and len(kept.pairs) <= len(unfiltered.pairs)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(TEXTS, stopwords="en", show_progress=False), show_progress=False)
    queries = bm25s.tokenize([p.query for p in kept.pairs], stopwords="en", show_progress=False, return_ids=False)
    docs, scores = retriever.retrieve(queries, k=1, show_progress=False, n_threads=1)
    assert [f"c{int(d)}" for d in docs[:, 0]] == [p.chunk_id for p in kept.pairs]
    assert (scores[:, 0] > 0).all()
    # a query made only of stopwords matches nothing: it must not count as "retrievable" at score 0
    assert _retrievable_bm25(["the of and", "drainage foundation"], chunks, [0, 4], top_k=5) == [False, True]


def test_dedupe_across_chunks_and_cap(chunks: list[Chunk]) -> None:
    twins = [*chunks, Chunk(id="twin", doc_path="t.md", heading_path=("Guide", "Topic 0"), text=TEXTS[0], title="t")]
    both = generate_pairs(twins, strategies=["title", "keyphrase"], max_per_chunk=2, filter="none", progress=False)
    assert both.stats["title"]["duplicates"] == 1  # the twin's heading repeats chunk 0's
    assert [p.query for p in both.pairs].count("Guide Topic 0") == 1
    capped = generate_pairs(twins, strategies=["title", "keyphrase"], max_per_chunk=1, filter="none", progress=False)
    assert len({p.query for p in capped.pairs}) == len(capped.pairs)
    assert sorted(p.chunk_id for p in capped.pairs) == sorted(c.id for c in twins)  # exactly one per chunk
    assert capped.stats["title"]["capped"] + capped.stats["keyphrase"]["capped"] >= 5
    for st in capped.stats.values():
        assert st["generated"] == st["kept"] + st["duplicates"] + st["capped"] + st["filtered"]


def test_bad_arguments_name_the_valid_values(chunks: list[Chunk]) -> None:
    with pytest.raises(ValueError, match=re.escape("Unknown filter 'cosine'; use 'bm25', 'model', 'both' or 'none'")):
        generate_pairs(chunks, filter="cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape("filter='model' needs embedder=")):
        generate_pairs(chunks, filter="model")
    with pytest.raises(ValueError, match=re.escape("1 chunks (e.g. 'c4') are not in the filter corpus")):
        generate_pairs(chunks, corpus=chunks[:4])
