"""PromptEmbedder against the reference: SentenceTransformer.encode_query / encode_document / encode."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from promptembed import (
    ConfigError,
    InputError,
    ModelLoadError,
    PromptEmbedder,
    PromptEmbedError,
    PromptError,
    UnsafeModelError,
    _registry,
)
from promptembed.testing import EMBEDDINGGEMMA_PROMPTS

QUERIES = ["Which planet is known as the Red Planet?", "", "  whitespace  ", "Ünïcödé 火星 🚀"]
DOCS = ["Mars is red.", "Venus is Earth's twin.", "", "Jupiter has a red spot."]


def assert_same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == np.float32
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=0, atol=2e-6)


def test_default_model_is_bundled_minilm(minilm_dir: Path) -> None:
    with PromptEmbedder() as emb:
        assert emb.model_source == str(minilm_dir.resolve())
        assert emb.dimension == 384
        assert emb.prompts == {"query": "", "document": ""}
        assert emb.device == "cpu" and emb.dtype == "float32"


def test_minilm_equals_sentence_transformers(minilm_dir: Path) -> None:
    ref = SentenceTransformer(str(minilm_dir), device="cpu")
    with PromptEmbedder(model=minilm_dir) as emb:
        assert_same(emb.embed_queries(QUERIES), ref.encode_query(QUERIES))
        assert_same(emb.embed_documents(DOCS), ref.encode_document(DOCS))
        assert_same(emb.embed(DOCS), ref.encode(DOCS))


def test_gemma_query_document_and_tasks_equal_sentence_transformers(tiny_gemma_dir: Path) -> None:
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    with PromptEmbedder(model=str(tiny_gemma_dir)) as emb:
        assert emb.prompts == EMBEDDINGGEMMA_PROMPTS
        assert emb.query_prompt == "task: search result | query: "
        assert emb.document_prompt == "title: none | text: "
        q = emb.embed_queries(QUERIES)
        assert_same(q, ref.encode_query(QUERIES))
        # and the prompt really is applied: the same as encoding prompt + text by hand
        assert_same(q, ref.encode([EMBEDDINGGEMMA_PROMPTS["query"] + t for t in QUERIES]))
        assert not np.allclose(q, ref.encode(QUERIES))
        assert_same(emb.embed_documents(DOCS), ref.encode_document(DOCS))
        for name in ("STS", "Clustering", "Classification", "Summarization"):
            assert_same(emb.embed(DOCS, prompt_name=name), ref.encode(DOCS, prompt_name=name))
        assert_same(emb.embed(DOCS, prompt="raw: "), ref.encode(["raw: " + d for d in DOCS]))


def test_titles_fill_the_title_slot(tiny_gemma_dir: Path) -> None:
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    titles = ["Mars", None, "Venus", ""]
    expected = np.stack(
        [ref.encode([f"title: {t or 'none'} | text: {d}"])[0] for d, t in zip(DOCS, titles, strict=True)]
    )
    with PromptEmbedder(model=tiny_gemma_dir) as emb:
        got = emb.embed_documents(DOCS, titles=titles)
    assert_same(got, expected)
    assert not np.allclose(got[0], ref.encode_document(DOCS[:1])[0])


def test_prompts_document_empty_turns_a_saved_passage_prompt_off(tiny_bert_dir: Path) -> None:
    config = tiny_bert_dir / "config_sentence_transformers.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "prompts": {"query": "q: ", "passage": "p: "}}))
    ref = SentenceTransformer(str(tiny_bert_dir), device="cpu")
    with PromptEmbedder(model=tiny_bert_dir, normalize=False) as saved:
        assert saved.document_prompt == "p: "
        assert_same(saved.embed_documents(DOCS), ref.encode(DOCS, prompt="p: "))  # the saved passage prompt
    with PromptEmbedder(model=tiny_bert_dir, normalize=False, prompts={"document": ""}) as off:
        assert off.document_prompt == ""  # it stayed "p: ", as if the override were not there
        assert_same(off.embed_documents(DOCS), ref.encode(DOCS, prompt=""))


def test_a_title_that_is_not_valid_unicode_is_named_before_the_cache(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    with PromptEmbedder(model=tiny_gemma_dir, cache_dir=tmp_path) as emb:
        with pytest.raises(PromptError, match=re.escape("titles[0] contains an unpaired surrogate '\\ud800'")):
            emb.embed_documents(["hi"], titles=["bad\ud800"])  # was a UnicodeEncodeError from the cache key


def test_titles_without_title_slot_is_an_error(minilm_dir: Path) -> None:
    with PromptEmbedder(model=minilm_dir) as emb, pytest.raises(PromptError, match="has no title slot"):
        emb.embed_documents(["a"], titles=["A"])


def test_prompts_override_and_document_fallback(tiny_bert_dir: Path) -> None:
    # A model saved with "query"/"passage" prompts and no "document": the document role uses "passage", as
    # encode_document intends (sentence-transformers 6 inserts an empty "document" prompt that would mask it).
    config = tiny_bert_dir / "config_sentence_transformers.json"
    data = json.loads(config.read_text())
    data["prompts"] = {"query": "query: ", "passage": "passage: "}
    config.write_text(json.dumps(data))
    ref = SentenceTransformer(str(tiny_bert_dir), device="cpu")
    with PromptEmbedder(model=tiny_bert_dir, normalize=False) as emb:
        assert emb.document_prompt == "passage: "
        assert_same(emb.embed_queries(QUERIES), ref.encode_query(QUERIES))
        assert_same(emb.embed_documents(DOCS), ref.encode_document(DOCS, prompt_name="passage"))
        assert_same(emb.embed_documents(DOCS), ref.encode(["passage: " + d for d in DOCS]))
    # prompts= overrides an entry for this embedder only; the shared model's table is untouched.
    with PromptEmbedder(model=tiny_bert_dir, normalize=False, prompts={"query": "search: "}) as over:
        assert over.prompts == {"query": "search: ", "document": "", "passage": "passage: "}
        assert_same(over.embed_queries(QUERIES), ref.encode(["search: " + q for q in QUERIES]))
        assert over._require().model.prompts["query"] == "query: "


def test_model_without_prompts_embeds_text_as_is(tiny_bert_dir: Path) -> None:
    ref = SentenceTransformer(str(tiny_bert_dir), device="cpu")
    with PromptEmbedder(model=tiny_bert_dir, normalize=False) as emb:
        assert_same(emb.embed_queries(QUERIES), ref.encode(QUERIES))
    with PromptEmbedder(model=tiny_bert_dir) as normed:
        v = normed.embed_queries(QUERIES)
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_unknown_prompt_name_and_both_prompts(tiny_gemma_dir: Path) -> None:
    with PromptEmbedder(model=tiny_gemma_dir) as emb:
        names = sorted(EMBEDDINGGEMMA_PROMPTS)
        with pytest.raises(
            PromptError, match=re.escape(f"Prompt name 'qeury' not found; this model has prompts {names}")
        ):
            emb.embed(["x"], prompt_name="qeury")
        with pytest.raises(PromptError, match="not both"):
            emb.embed(["x"], prompt_name="STS", prompt="x: ")


@pytest.mark.parametrize("dim", [8, 16, 31])
def test_truncate_dim_renormalizes(tiny_gemma_dir: Path, dim: int) -> None:
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    with PromptEmbedder(model=tiny_gemma_dir, truncate_dim=dim) as emb:
        v = emb.embed_queries(QUERIES)
        assert emb.dimension == dim and v.shape == (len(QUERIES), dim)
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
        full = ref.encode_query(QUERIES, truncate_dim=dim)
        assert_same(v, full / np.linalg.norm(full, axis=1, keepdims=True))
    with PromptEmbedder(model=tiny_gemma_dir, truncate_dim=dim, normalize=False) as raw:
        assert_same(raw.embed_queries(QUERIES), ref.encode_query(QUERIES)[:, :dim])


@pytest.mark.parametrize("bad", [0, -1, 33, 2.5, True])
def test_truncate_dim_validated(tiny_gemma_dir: Path, bad: object) -> None:
    with pytest.raises(ConfigError, match="truncate_dim"):
        PromptEmbedder(model=tiny_gemma_dir, truncate_dim=bad)  # type: ignore[arg-type]


def test_truncate_dim_larger_than_model_names_the_dimension(tiny_gemma_dir: Path, no_model_leaks: None) -> None:
    with pytest.raises(ConfigError, match=re.escape("truncate_dim=33 is larger than the model's dimension 32")):
        PromptEmbedder(model=tiny_gemma_dir, truncate_dim=33)


def test_shared_weights_one_load(tiny_gemma_dir: Path) -> None:
    before = _registry.load_count
    q = PromptEmbedder(model=tiny_gemma_dir)
    d = PromptEmbedder(model=str(tiny_gemma_dir), truncate_dim=8, prompts={"query": "other: "})
    assert _registry.load_count == before + 1
    assert q._require().model is d._require().model
    q.close()
    assert d.embed_queries(["still works"]).shape == (1, 8)
    d.close()
    assert not any(k.source == str(tiny_gemma_dir.resolve()) for k in _registry.loaded_keys())
    with pytest.raises(Exception, match="closed"):
        d.embed_queries(["x"])
    # After the last close, the next embedder loads again.
    with PromptEmbedder(model=tiny_gemma_dir):
        assert _registry.load_count == before + 2


def test_different_dtype_is_a_different_model(tiny_bert_dir: Path) -> None:
    with PromptEmbedder(model=tiny_bert_dir) as a, PromptEmbedder(model=tiny_bert_dir, dtype="bfloat16") as b:
        assert a._require().model is not b._require().model
        assert b.dtype == "bfloat16"
        va, vb = a.embed_queries(QUERIES), b.embed_queries(QUERIES)
        assert vb.dtype == np.float32
        assert (np.sum(va * vb, axis=1) > 0.99).all()


def test_empty_list_gives_zero_rows(tiny_gemma_dir: Path) -> None:
    with PromptEmbedder(model=tiny_gemma_dir, truncate_dim=16) as emb:
        for out in (emb.embed_queries([]), emb.embed_documents([]), emb.embed([])):
            assert out.shape == (0, 16) and out.dtype == np.float32


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (None, "texts must be a list of str, got NoneType"),
        ("one string", "got a single str; wrap it in a list: [text]"),
        (["ok", None], "texts[1] is NoneType, not str"),
        (["ok", "ok", 3], "texts[2] is int, not str"),
        ([b"bytes"], "texts[0] is bytes, not str; decode it first"),
        ([["nested"]], "texts[0] is list, not str"),
        ({"a": 1}, "texts must be a list of str, got dict"),
        (["bad \ud800 surrogate"], "texts[0] contains an unpaired surrogate"),
    ],
)
def test_bad_input_names_position_and_type(tiny_gemma_dir: Path, texts: object, message: str) -> None:
    with PromptEmbedder(model=tiny_gemma_dir) as emb:
        for call in (emb.embed_queries, emb.embed_documents, emb.embed):
            with pytest.raises(InputError, match=re.escape(message)):
                call(texts)  # type: ignore[arg-type]
            with pytest.raises(TypeError):  # InputError is also the builtin callers expect
                call(texts)  # type: ignore[arg-type]


def test_truncation_is_reported_once_with_a_count(tiny_bert_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    long = "word " * 100  # tiny BERT has max_seq_length 32
    with PromptEmbedder(model=tiny_bert_dir) as emb, caplog.at_level(logging.WARNING, logger="promptembed"):
        emb.embed_documents([long, "short", long])
    records = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert len(records) == 1
    assert records[0].getMessage().startswith("2 of 3 texts are longer than the model's max_seq_length (32 tokens")


def test_missing_model_path_says_what_was_tried(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ModelLoadError, match=re.escape(f"tried the local folder {missing}")):
        PromptEmbedder(model=str(missing))
    with pytest.raises(ModelLoadError, match="neither modules.json nor config.json"):
        PromptEmbedder(model=tmp_path)


def test_pickle_only_weights_need_opt_in(tiny_bert_dir: Path) -> None:
    import torch
    from safetensors.torch import load_file

    weights = tiny_bert_dir / "model.safetensors"
    torch.save(load_file(str(weights)), tiny_bert_dir / "pytorch_model.bin")
    weights.unlink()
    with pytest.raises(UnsafeModelError, match=re.escape("has only pickle weights (pytorch_model.bin)")):
        PromptEmbedder(model=tiny_bert_dir)
    with PromptEmbedder(model=tiny_bert_dir, allow_pickle=True) as emb:
        assert emb.embed_queries(["x"]).shape == (1, 32)


def test_unknown_option_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match=re.escape("Unknown option(s) ['normalize_embeddings'] for PromptEmbedder")):
        PromptEmbedder(normalize_embeddings=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device": "tpu"}, "Unknown device 'tpu'"),
        ({"dtype": "fp8"}, "Unknown dtype 'fp8'"),
        ({"precision": "fp8"}, "Unknown precision 'fp8'"),
        ({"batch_size": 0}, "batch_size must be an int >= 1"),
        ({"normalize": "yes"}, "normalize must be True or False"),
    ],
)
def test_bad_options(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        PromptEmbedder(**kwargs)  # type: ignore[arg-type]


def test_trust_remote_code_is_off_by_default(tiny_bert_dir: Path) -> None:
    with PromptEmbedder(model=tiny_bert_dir) as emb:
        assert emb._require().key.trust_remote_code is False
        assert emb.config()["trust_remote_code"] is False


def test_config_round_trip(tiny_gemma_dir: Path) -> None:
    with PromptEmbedder(model=tiny_gemma_dir, truncate_dim=16, prompts={"x": "x: "}, batch_size=4) as emb:
        with PromptEmbedder(**emb.config()) as again:
            assert again.config() == emb.config()
            assert_same(again.embed(["a"], prompt_name="x"), emb.embed(["a"], prompt_name="x"))


def test_nan_vectors_name_the_inputs_in_float32_and_the_dtype_otherwise(
    tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NaN from a float32 model is the input's doing (no overflow to blame); from bf16/fp16 it is the dtype's."""
    from promptembed import _calls, engine

    def nan_for_the_second(entry: object, texts: list[str], prompts: list[str], **_: object) -> engine.Encoded:
        vectors = np.ones((len(texts), 32), dtype=np.float32)
        vectors[1] = np.nan
        return engine.Encoded(vectors, 0, "test")

    monkeypatch.setattr(_calls.engine, "encode", nan_for_the_second)
    with PromptEmbedder(model=tiny_bert_dir) as emb:
        with pytest.raises(PromptEmbedError, match=r"positions \[1\] in float32; it cannot embed these inputs") as got:
            emb.embed_queries(["mars", ""])
        assert "dtype='float32'" not in str(got.value)  # the advice that cannot help a float32 model
    with PromptEmbedder(model=tiny_bert_dir, dtype="bfloat16") as emb:
        with pytest.raises(PromptEmbedError, match=r"dtype=bfloat16\); this usually means the dtype overflows"):
            emb.embed_queries(["mars", ""])
