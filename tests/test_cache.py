"""Vector cache correctness: every input that decides a vector is in its key; faults never give a wrong vector."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from promptembed import PromptEmbedder
from promptembed.cache import VectorCache

TEXTS = ["Which planet is red?", "Mars is red.", "Venus is hot."]


def _disk_bytes(cache_dir: Path) -> int:
    return sum(p.stat().st_size for p in cache_dir.glob("vectors.sqlite3*"))


def _rows(cache_dir: Path) -> int:
    return len(VectorCache(cache_dir))


def test_hit_returns_the_same_vectors_and_survives_restart(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with PromptEmbedder(model=tiny_gemma_dir, cache_dir=cache) as emb:
        first = emb.embed_documents(TEXTS)
    assert _rows(cache) == 3
    with PromptEmbedder(model=tiny_gemma_dir, cache_dir=cache) as emb, PromptEmbedder(model=tiny_gemma_dir) as plain:
        np.testing.assert_array_equal(emb.embed_documents(TEXTS), first)
        np.testing.assert_allclose(first, plain.embed_documents(TEXTS), atol=1e-7)
        assert _rows(cache) == 3  # all hits, nothing recomputed


def test_query_and_document_entries_never_collide(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    with PromptEmbedder(model=tiny_gemma_dir, cache_dir=tmp_path) as emb:
        d = emb.embed_documents(TEXTS)
        q = emb.embed_queries(TEXTS)
        s = emb.embed(TEXTS, prompt_name="STS")
    assert _rows(tmp_path) == 9
    np.testing.assert_allclose(q, ref.encode_query(TEXTS), atol=2e-6)
    np.testing.assert_allclose(d, ref.encode_document(TEXTS), atol=2e-6)
    np.testing.assert_allclose(s, ref.encode(TEXTS, prompt_name="STS"), atol=2e-6)


@pytest.mark.parametrize(
    "change",
    [
        {"truncate_dim": 16},
        {"normalize": False},
        {"dtype": "bfloat16"},
        {"dtype": "int8"},
        {"prompts": {"document": "passage: "}},
    ],
)
def test_changed_dim_normalization_dtype_or_prompt_misses(
    tiny_gemma_dir: Path, tmp_path: Path, change: dict[str, object]
) -> None:
    with PromptEmbedder(model=tiny_gemma_dir, cache_dir=tmp_path) as emb:
        emb.embed_documents(TEXTS)
    with PromptEmbedder(model=tiny_gemma_dir, cache_dir=tmp_path, **change) as changed:  # type: ignore[arg-type]
        got = changed.embed_documents(TEXTS)
    with PromptEmbedder(model=tiny_gemma_dir, **change) as fresh:  # type: ignore[arg-type]
        np.testing.assert_allclose(got, fresh.embed_documents(TEXTS), atol=2e-6)
    assert _rows(tmp_path) == 6


def test_model_replaced_under_the_same_path_misses(tiny_gemma_dir: Path, tiny_bert_dir: Path, tmp_path: Path) -> None:
    from promptembed.testing import build_tiny_embeddinggemma

    model = tmp_path / "model"
    shutil.copytree(tiny_gemma_dir, model)
    with PromptEmbedder(model=model, cache_dir=tmp_path / "c") as emb:
        old = emb.embed_documents(TEXTS)
    shutil.rmtree(model)
    build_tiny_embeddinggemma(model, seed=1)  # "finetuned": same path, same config, other weights
    with PromptEmbedder(model=model, cache_dir=tmp_path / "c") as emb:
        new = emb.embed_documents(TEXTS)
    np.testing.assert_allclose(new, SentenceTransformer(str(model), device="cpu").encode_document(TEXTS), atol=2e-6)
    assert not np.allclose(new, old)


def test_model_rebuilt_in_place_while_an_embedder_holds_it_loads_anew(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    from promptembed.testing import build_tiny_embeddinggemma

    model = tmp_path / "model"
    shutil.copytree(tiny_gemma_dir, model)
    with PromptEmbedder(model=model) as held:  # still open: the registry holds the old model under this path
        old = held.embed_documents(TEXTS)
        shutil.rmtree(model)
        build_tiny_embeddinggemma(model, seed=1)  # a finetune saved over the folder
        with PromptEmbedder(model=model) as emb, PromptEmbedder(model=model) as again:  # emb got the held model
            new = emb.embed_documents(TEXTS)
            assert again._require() is emb._require()  # an unchanged folder still shares one loaded model
            assert emb._require() is not held._require()
    np.testing.assert_allclose(new, SentenceTransformer(str(model), device="cpu").encode_document(TEXTS), atol=2e-6)
    assert not np.allclose(new, old)


def test_corrupt_file_is_detected_and_rebuilt(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    with PromptEmbedder(model=tiny_gemma_dir, cache_dir=tmp_path) as emb:
        good = emb.embed_documents(TEXTS)
    db = tmp_path / "vectors.sqlite3"
    for f in tmp_path.glob("vectors.sqlite3-*"):
        f.unlink()
    data = bytearray(db.read_bytes())
    db.write_bytes(b"garbage!" * 16 + bytes(data[128:]))  # header destroyed
    with PromptEmbedder(model=tiny_gemma_dir, cache_dir=tmp_path) as emb:
        np.testing.assert_allclose(emb.embed_documents(TEXTS), good, atol=1e-7)
    assert list(tmp_path.glob("vectors.sqlite3.corrupt-*"))
    for f in tmp_path.glob("vectors.sqlite3-*"):
        f.unlink()
    db.write_bytes(b"garbage!" * 16 + bytes(data[128:]))  # corrupt again: one copy is kept, not one per time
    with PromptEmbedder(model=tiny_gemma_dir, cache_dir=tmp_path) as emb:
        np.testing.assert_allclose(emb.embed_documents(TEXTS), good, atol=1e-7)
    assert len(list(tmp_path.glob("vectors.sqlite3.corrupt-*"))) == 1
    db.write_bytes(b"")  # truncated to nothing
    with PromptEmbedder(model=tiny_gemma_dir, cache_dir=tmp_path) as emb:
        np.testing.assert_allclose(emb.embed_documents(TEXTS), good, atol=1e-7)


def test_flipped_vector_bytes_fail_the_checksum(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    import sqlite3

    with PromptEmbedder(model=tiny_gemma_dir, cache_dir=tmp_path) as emb:
        good = emb.embed_documents(TEXTS)
    conn = sqlite3.connect(tmp_path / "vectors.sqlite3")
    conn.execute("UPDATE vectors SET vec = zeroblob(length(vec))")
    conn.commit()
    conn.close()
    with PromptEmbedder(model=tiny_gemma_dir, cache_dir=tmp_path) as emb:
        np.testing.assert_allclose(emb.embed_documents(TEXTS), good, atol=1e-7)


_WRITER = """
import json, sys
from promptembed import PromptEmbedder
texts = [f"text {i} from a worker" for i in range(200)]
with PromptEmbedder(model=sys.argv[1], cache_dir=sys.argv[2]) as emb:
    for _ in range(3):
        v = emb.embed_documents(texts)
print(json.dumps(v[:2].tolist()))
"""


def test_two_processes_write_the_same_cache(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tiny_gemma_dir), str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=180)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    texts = [f"text {i} from a worker" for i in range(200)]
    with PromptEmbedder(model=tiny_gemma_dir) as emb:
        expected = emb.embed_documents(texts)
    for out in outs:
        np.testing.assert_allclose(json.loads(out), expected[:2], atol=2e-6)
    assert _rows(tmp_path) == 200
    with PromptEmbedder(model=tiny_gemma_dir, cache_dir=tmp_path) as emb:
        np.testing.assert_allclose(emb.embed_documents(texts), expected, atol=2e-6)


def test_a_router_models_query_and_document_routes_never_share_an_entry(tiny_router_dir: Path, tmp_path: Path) -> None:
    # the tiny Router has no prompts: the two sides differ only by their route, which the key did not cover
    st = SentenceTransformer(str(tiny_router_dir), device="cpu")
    texts = ["red planet", "hot planet"]
    with PromptEmbedder(model=tiny_router_dir, normalize=False, cache_dir=tmp_path) as emb:
        documents = emb.embed_documents(texts)
        queries = emb.embed_queries(texts)  # it returned the cached document vectors
    np.testing.assert_allclose(documents, st.encode_document(texts), rtol=0, atol=1e-6)
    np.testing.assert_allclose(queries, st.encode_query(texts), rtol=0, atol=1e-6)


def test_a_model_with_the_same_weights_and_another_pooling_misses(tiny_bert_dir: Path, tmp_path: Path) -> None:
    cls_model = tmp_path / "cls-model"
    shutil.copytree(tiny_bert_dir, cls_model)
    config = cls_model / "1_Pooling" / "config.json"
    pooling = json.loads(config.read_text())
    assert pooling["pooling_mode"] == "mean"
    pooling["pooling_mode"] = "cls"
    config.write_text(json.dumps(pooling))
    _assert_the_variant_misses(tiny_bert_dir, cls_model, ["red planet", "hot planet"], tmp_path / "cache")


def _assert_the_variant_misses(model: Path, variant: Path, texts: list[str], cache: Path) -> None:
    """``variant`` (``model`` with one setting changed) gets its own vectors from a cache that ``model`` filled."""
    want = SentenceTransformer(str(variant), device="cpu").encode_document(texts)
    with PromptEmbedder(model=model, normalize=False, cache_dir=cache) as emb:
        first = emb.embed_documents(texts)
    with PromptEmbedder(model=variant, normalize=False, cache_dir=cache) as emb:
        got = emb.embed_documents(texts)  # it returned the first model's cached vectors
    assert np.abs(first - want).max() > 1e-3  # the two models differ, so the check below can tell them apart
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_the_model_fingerprint_does_not_change_when_the_model_has_encoded(tiny_bert_dir: Path) -> None:
    from promptembed.cache import model_fingerprint

    fresh = model_fingerprint(SentenceTransformer(str(tiny_bert_dir), device="cpu"))
    used = SentenceTransformer(str(tiny_bert_dir), device="cpu")
    used.encode(["an encode call sets the tokenizer's truncation and padding"])
    assert model_fingerprint(used) == fresh  # else the same model missed its own cache entries


def test_a_model_that_cuts_long_texts_from_the_other_end_misses(tiny_bert_dir: Path, tmp_path: Path) -> None:
    left = tmp_path / "left-model"
    shutil.copytree(tiny_bert_dir, left)
    config = left / "tokenizer_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "truncation_side": "left"}))
    texts = ["alpha beta gamma " + "word " * 100 + "end omega"]  # far over the 32 tokens, so the cut side matters
    _assert_the_variant_misses(tiny_bert_dir, left, texts, tmp_path / "cache")


def test_clear_empties_the_cache_and_gives_the_space_back(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    texts = [f"text number {i} about the planets" for i in range(2000)]
    with PromptEmbedder(model=tiny_gemma_dir, cache_dir=cache) as emb:
        first = emb.embed_documents(texts)
        store = VectorCache(cache)
        full = _disk_bytes(cache)
        store.clear()  # while the embedder's own connection is open
        assert len(store) == 0 and _disk_bytes(cache) < full / 4
        np.testing.assert_allclose(emb.embed_documents(texts[:3]), first[:3], atol=1e-6)  # computed again, stored
        assert len(store) == 3
        store.close()


def test_clear_while_another_connection_reads_empties_at_once_and_says_the_rest_comes_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3
    import time

    store = VectorCache(tmp_path)
    keys = [
        VectorCache.key(model="m", dtype="f", prompt="", truncate_dim=None, normalize=True, text=str(i))
        for i in range(500)
    ]
    store.put(keys, np.ones((500, 8), dtype=np.float32))
    reader = sqlite3.connect(store.path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM vectors").fetchone()  # a read transaction held open elsewhere
    started = time.monotonic()
    with caplog.at_level("WARNING", "promptembed"):
        store.clear()
    assert time.monotonic() - started < 20  # it waited the whole minute of the lock timeout before
    assert len(store) == 0 and store.get(keys[:1]) == [None]
    assert "is empty, but not all of its disk space is back yet" in caplog.text
    reader.execute("COMMIT")
    reader.close()
    store.close()
