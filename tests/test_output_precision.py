"""precision=: quantized output vectors with sentence-transformers' meaning, against its encode(precision=...)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer, quantize_embeddings

from promptembed import ConfigError, PromptEmbedder

TEXTS = ["Mars is red.", "Venus is Earth's twin.", "", "Jupiter has a red spot.", "Saturn has rings."]


def assert_same_buckets(got: np.ndarray, want: np.ndarray) -> None:
    """int8/uint8 buckets of float vectors that agree to 2e-6: a value near a bucket edge may land one bucket over."""
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.abs(got.astype(np.int16) - want.astype(np.int16)).max() <= 1


@pytest.mark.parametrize("precision", ["binary", "ubinary", "int8", "uint8"])
def test_quantized_output_equals_sentence_transformers(tiny_gemma_dir: Path, precision: str) -> None:
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    want = ref.encode_document(TEXTS, precision=precision, normalize_embeddings=True)
    with PromptEmbedder(model=tiny_gemma_dir, precision=precision) as emb:  # type: ignore[arg-type]
        got = emb.embed_documents(TEXTS)
        assert emb.precision == precision and emb.dtype == "float32"
    assert got.dtype == want.dtype and got.dtype in (np.int8, np.uint8)
    if precision.endswith("binary"):
        np.testing.assert_array_equal(got, want)
        assert got.shape == (len(TEXTS), 32 // 8)
    else:
        assert_same_buckets(got, want)


def test_int8_with_ranges_equals_quantize_embeddings(tiny_gemma_dir: Path) -> None:
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    floats = ref.encode_query(TEXTS)
    ranges = np.stack([floats.min(axis=0), floats.max(axis=0)])
    with (
        PromptEmbedder(model=tiny_gemma_dir, precision="int8", quantization_ranges=ranges.tolist()) as emb,
        PromptEmbedder(model=tiny_gemma_dir) as floats_of_ours,
    ):
        one = emb.embed_queries(TEXTS[:1])  # a single text works with ranges, and uses the same buckets
        every = emb.embed_queries(TEXTS)
        ours_one, ours = floats_of_ours.embed_queries(TEXTS[:1]), floats_of_ours.embed_queries(TEXTS)
    np.testing.assert_array_equal(every, quantize_embeddings(ours, precision="int8", ranges=ranges))
    np.testing.assert_array_equal(one, quantize_embeddings(ours_one, precision="int8", ranges=ranges))
    assert_same_buckets(every, quantize_embeddings(floats, precision="int8", ranges=ranges))


def test_int8_without_ranges_on_one_text_is_a_clear_error(tiny_bert_dir: Path) -> None:
    with PromptEmbedder(model=tiny_bert_dir, precision="int8") as emb:
        with pytest.raises(ConfigError, match=re.escape("one vector has no range; pass quantization_ranges")):
            emb.embed_queries(["one"])


def test_a_stream_of_int8_needs_ranges_at_the_call_and_with_them_equals_one_call(tiny_bert_dir: Path) -> None:
    texts = [f"text number {i}" for i in range(9)]  # chunks of 4: the last holds one text
    with PromptEmbedder(model=tiny_bert_dir) as floats_of_ours:
        floats = floats_of_ours.embed_documents(texts)
    with PromptEmbedder(model=tiny_bert_dir, precision="uint8") as emb:
        with pytest.raises(
            ConfigError, match=re.escape("embed_stream with precision='uint8' needs quantization_ranges")
        ):
            emb.embed_stream(iter(texts), chunk_size=4)  # not after two chunks quantized on their own ranges
    ranges = np.stack([floats.min(axis=0), floats.max(axis=0)])
    with PromptEmbedder(model=tiny_bert_dir, precision="uint8", quantization_ranges=ranges.tolist()) as emb:
        streamed = np.concatenate(list(emb.embed_stream(iter(texts), chunk_size=4, progress=False)))
        np.testing.assert_array_equal(streamed, emb.embed_documents(texts))
        shown = emb.quantization_ranges  # the ranges in use, as a copy
        assert shown is not None and shown.shape == (2, emb.dimension)
        np.testing.assert_array_equal(shown, ranges.astype(np.float32))
        shown[:] = 0
        np.testing.assert_array_equal(emb.quantization_ranges, ranges.astype(np.float32))


@pytest.mark.parametrize("old", ["auto", "bfloat16", "float16"])
def test_old_weight_dtype_spellings_name_dtype(old: str) -> None:
    message = f"precision={old!r} names a weight dtype, and that option is now dtype= (dtype={old!r})"
    with pytest.raises(ConfigError, match=re.escape(message)):
        PromptEmbedder(precision=old)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "binary", "quantization_ranges": [[0.0], [1.0]]}, "apply to precision='int8' or 'uint8' only"),
        ({"precision": "int8", "quantization_ranges": [[0.0, 1.0]]}, "must be two rows of finite numbers"),
        ({"precision": "int8", "quantization_ranges": [[0.0] * 3, [1.0] * 3]}, "have 3 columns but the vectors"),
    ],
)
def test_bad_ranges(tiny_bert_dir: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        PromptEmbedder(model=tiny_bert_dir, **kwargs)  # type: ignore[arg-type]


def test_empty_input_has_the_quantized_shape_and_dtype(tiny_bert_dir: Path) -> None:
    with PromptEmbedder(model=tiny_bert_dir, precision="ubinary") as emb:
        out = emb.embed_documents([])
    assert out.shape == (0, 4) and out.dtype == np.uint8


def test_cache_stores_floats_and_quantizes_after(tiny_bert_dir: Path, tmp_path: Path) -> None:
    with PromptEmbedder(model=tiny_bert_dir, precision="binary", cache_dir=tmp_path) as cached:
        first = cached.embed_documents(TEXTS)
        again = cached.embed_documents(TEXTS)  # all hits
    with PromptEmbedder(model=tiny_bert_dir, precision="binary") as plain:
        want = plain.embed_documents(TEXTS)
    np.testing.assert_array_equal(first, want)
    np.testing.assert_array_equal(again, want)
