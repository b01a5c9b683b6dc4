"""Migration from langchain-huggingface: the stock HuggingFaceEmbeddings and ours, built with the same options.

Where the options choose the prompt, the vectors are equal; where they do not, ours applies the model's prompts
(and the stock class none). The release post's snippet (seeds/001) is the first case, on the tiny
EmbeddingGemma-shaped model.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_huggingface import HuggingFaceEmbeddings  # the stock class: a test dependency (requirements/dev.txt)
from langchain_promptembed import PromptEmbeddings
from sentence_transformers import SentenceTransformer

from promptembed import ConfigError
from promptembed.testing import PLANET_DOCS, RED_PLANET_QUERY

QUERY = RED_PLANET_QUERY
DOCS = list(PLANET_DOCS)


def both(**options: Any) -> tuple[HuggingFaceEmbeddings, PromptEmbeddings]:
    return HuggingFaceEmbeddings(**options), PromptEmbeddings(**options)


def assert_same_vectors(stock: HuggingFaceEmbeddings, ours: PromptEmbeddings, atol: float = 2e-6) -> None:
    np.testing.assert_allclose(ours.embed_documents(DOCS), stock.embed_documents(DOCS), rtol=0, atol=atol)
    np.testing.assert_allclose(ours.embed_query(QUERY), stock.embed_query(QUERY), rtol=0, atol=atol)


def test_seed_snippet_gives_the_stock_vectors_and_scores(tiny_gemma_dir: Path) -> None:
    from langchain_community.vectorstores import FAISS

    stock, ours = both(
        model_name=str(tiny_gemma_dir),
        query_encode_kwargs={"prompt_name": "query"},
        encode_kwargs={"prompt_name": "document"},
    )
    with ours:
        assert_same_vectors(stock, ours)
        documents = [Document(page_content=text, metadata={"id": i}) for i, text in enumerate(DOCS)]
        hits = {}
        for name, emb in (("stock", stock), ("ours", ours)):
            store = FAISS.from_documents(documents, emb, distance_strategy="MAX_INNER_PRODUCT")
            hits[name] = [(d.page_content, s) for d, s in store.similarity_search_with_score(QUERY, k=3)]
        assert [t for t, _ in hits["ours"]] == [t for t, _ in hits["stock"]]
        np.testing.assert_allclose([s for _, s in hits["ours"]], [s for _, s in hits["stock"]], atol=2e-6)


def test_without_a_prompt_ours_applies_the_models_prompts(tiny_gemma_dir: Path) -> None:
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    stock, ours = both(model_name=str(tiny_gemma_dir), encode_kwargs={"batch_size": 2})
    with ours:
        np.testing.assert_allclose(ours.embed_documents(DOCS), ref.encode_document(DOCS), atol=2e-6)
        np.testing.assert_allclose(ours.embed_query(QUERY), ref.encode_query([QUERY])[0], atol=2e-6)
        np.testing.assert_allclose(stock.embed_documents(DOCS), ref.encode(DOCS), atol=2e-6)  # stock: no prompt
        assert not np.allclose(ours.embed_documents(DOCS), stock.embed_documents(DOCS), atol=1e-3)


@pytest.mark.parametrize(
    "options",
    [
        # encode_kwargs alone also serve queries (query_encode_kwargs empty), exactly as the stock class does
        {"encode_kwargs": {"prompt_name": "Clustering"}},
        {"encode_kwargs": {"prompt": "custom: ", "prompt_name": "document", "normalize_embeddings": True}},
        {"model_kwargs": {"default_prompt_name": "STS", "device": "cpu"}},
        {
            "model_kwargs": {"prompts": {"query": "q: ", "document": "d: "}, "truncate_dim": None},
            "encode_kwargs": {"prompt_name": "document", "batch_size": 3},
            "query_encode_kwargs": {"prompt_name": "query", "batch_size": 1},
        },
        {
            "model_kwargs": {
                "model_kwargs": {"attn_implementation": "eager"},
                "processor_kwargs": {"padding_side": "left"},
            },
            "encode_kwargs": {"prompt_name": "document"},
            "query_encode_kwargs": {"prompt_name": "query"},
            "show_progress": False,
        },
    ],
)
def test_chosen_prompts_and_options_give_the_stock_vectors(tiny_gemma_dir: Path, options: dict[str, Any]) -> None:
    stock, ours = both(model_name=str(tiny_gemma_dir), **options)
    with ours:
        assert_same_vectors(stock, ours)


@pytest.mark.parametrize("precision", ["binary", "ubinary", "int8"])
def test_output_precision_as_the_stock_class(tiny_gemma_dir: Path, precision: str) -> None:
    enc = {"prompt_name": "document", "precision": precision}
    stock, ours = both(model_name=str(tiny_gemma_dir), encode_kwargs=enc)
    with ours:
        got, want = np.asarray(ours.embed_documents(DOCS)), np.asarray(stock.embed_documents(DOCS))
    assert got.shape == want.shape and got.dtype.kind == want.dtype.kind == "i"
    diff = np.abs(got - want)  # int8: a float on a bucket edge may land one bucket over (floats agree to 2e-6)
    assert diff.max() <= (0 if precision.endswith("binary") else 1)


def test_fixed_int8_ranges_in_encode_kwargs_quantize_one_query_and_every_batch_alike(tiny_gemma_dir: Path) -> None:
    from sentence_transformers import quantize_embeddings

    st = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    floats = st.encode_document(DOCS)
    ranges = np.stack([floats.min(0), floats.max(0)])  # the documented shape: minimums, then maximums
    enc = {"precision": "int8", "quantization_ranges": ranges}
    with PromptEmbeddings(model_name=str(tiny_gemma_dir), encode_kwargs=enc, query_encode_kwargs=enc) as ours:
        query = np.asarray(ours.embed_query(RED_PLANET_QUERY))  # one vector: refused without fixed ranges
        one_by_one = np.asarray([ours.embed_documents([d])[0] for d in DOCS])
        together = np.asarray(ours.embed_documents(DOCS))
    want_q = quantize_embeddings(st.encode_query([RED_PLANET_QUERY]), precision="int8", ranges=ranges)[0]
    want_d = quantize_embeddings(floats, precision="int8", ranges=ranges)
    assert np.abs(query - want_q).max() <= 1  # a float on a bucket edge may land one bucket over
    assert np.abs(together - want_d).max() <= 1
    assert np.abs(one_by_one - together).max() <= 1  # the same ranges in every call, so batches compare


def test_truncate_dim_renormalizes_where_the_stock_class_does_not(tiny_gemma_dir: Path) -> None:
    stock, ours = both(
        model_name=str(tiny_gemma_dir), model_kwargs={"truncate_dim": 8}, encode_kwargs={"prompt_name": "document"}
    )
    with ours:
        mine, theirs = np.asarray(ours.embed_documents(DOCS)), np.asarray(stock.embed_documents(DOCS))
    np.testing.assert_allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(mine, theirs / np.linalg.norm(theirs, axis=1, keepdims=True), atol=2e-6)


def test_texts_are_not_rewritten(tiny_gemma_dir: Path) -> None:
    """The stock class replaces newlines with spaces; ours embeds the text as given (a difference by design)."""
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    text = ["line one\nline two"]
    with PromptEmbeddings(model_name=str(tiny_gemma_dir), encode_kwargs={"prompt_name": "document"}) as ours:
        np.testing.assert_allclose(ours.embed_documents(text), ref.encode(text, prompt_name="document"), atol=2e-6)


def test_the_two_sides_share_one_loaded_model(tiny_gemma_dir: Path) -> None:
    with PromptEmbeddings(
        model_name=str(tiny_gemma_dir),
        encode_kwargs={"normalize_embeddings": True},
        query_encode_kwargs={"normalize_embeddings": False, "batch_size": 1},
    ) as ours:
        assert ours.embedder is not ours.query_embedder
        assert ours.embedder._require().model is ours.query_embedder._require().model


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"model_kwargs": {"device": "cpu"}, "device": "cuda"}, "device='cuda' and model_kwargs device='cpu' disagree"),
        ({"model_kwargs": {"revison": "main"}}, "Unknown SentenceTransformer option 'revison' in model_kwargs"),
        ({"encode_kwargs": {"output_value": "token_embeddings"}}, "encode_kwargs['output_value'] is not supported"),
        (
            {"encode_kwargs": {"prompt_name": "document"}, "prompt_name": "STS"},
            "prompt_name='STS' and a prompt in encode_kwargs both choose the prompt",
        ),
        # the same option given our way and the stock way, with different values
        (
            {"model_kwargs": {"default_prompt_name": "Clustering"}, "prompt_name": "STS"},
            "prompt_name='STS' and model_kwargs default_prompt_name='Clustering' disagree",
        ),
        (
            {"encode_kwargs": {"normalize_embeddings": False}, "normalize": True},
            "normalize=True and encode_kwargs normalize_embeddings=False disagree",
        ),
        (
            {"query_encode_kwargs": {"normalize_embeddings": True}, "normalize": False},
            "normalize=False and query_encode_kwargs normalize_embeddings=True disagree",
        ),
        # a typo: named as a key of the user's option, with the valid encode() options
        (
            {"query_encode_kwargs": {"batchsize": 4}},
            "Unknown key(s) ['batchsize'] in query_encode_kwargs: not a SentenceTransformer.encode option "
            "(['batch_size', ",
        ),
    ],
)
def test_bad_stock_options_are_clear_errors(tiny_gemma_dir: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        PromptEmbeddings(model_name=str(tiny_gemma_dir), **options)


@pytest.mark.parametrize(
    "options",
    [
        {"encode_kwargs": {"task": "query"}},  # the stock class routes both sides by it (no query_encode_kwargs)
        {"encode_kwargs": {"task": "document"}, "query_encode_kwargs": {"task": "query"}},
    ],
)
def test_a_task_routes_as_the_stock_class_does(tiny_router_dir: Path, options: dict[str, Any]) -> None:
    stock, ours = both(model_name=str(tiny_router_dir), **options)
    with ours:
        assert_same_vectors(stock, ours)


def test_fields_changed_after_construction_apply_as_in_the_stock_class(tiny_gemma_dir: Path) -> None:
    stock, ours = both(model_name=str(tiny_gemma_dir))
    with ours:
        for emb in (stock, ours):  # the stock class reads these fields at each call
            emb.encode_kwargs = {"prompt_name": "document", "normalize_embeddings": True}
            emb.query_encode_kwargs = {"prompt": "question: "}
        assert_same_vectors(stock, ours)
        ours.encode_kwargs["prompt_name"] = "STS"  # changed in place
        stock.encode_kwargs["prompt_name"] = "STS"
        assert_same_vectors(stock, ours)
        update = {"query_encode_kwargs": {"prompt_name": "query", "truncate_dim": 16}}
        stock_copy, our_copy = stock.model_copy(update=update), ours.model_copy(update=update)
        assert len(our_copy.embed_query(QUERY)) == len(stock_copy.embed_query(QUERY)) == 16
        np.testing.assert_allclose(
            our_copy.embed_query(QUERY), stock_copy.embed_query(QUERY) / np.linalg.norm(stock_copy.embed_query(QUERY)),
            rtol=0, atol=2e-6,
        )  # fmt: skip
        assert len(ours.embed_query(QUERY)) == 32  # the original keeps its own fields
        our_copy.close()
        ours.model_copy().close()  # a shallow copy shares the original's model: closing it leaves that open
        assert len(ours.embed_query(QUERY)) == 32


def test_a_bad_change_fails_clearly_and_leaves_the_last_good_setup(tiny_gemma_dir: Path) -> None:
    from promptembed import PromptError

    with PromptEmbeddings(model_name=str(tiny_gemma_dir)) as ours:
        want = ours.embed_documents(DOCS)
        ours.query_encode_kwargs = {"prompt_name": "nope"}
        with pytest.raises(PromptError, match="nope"):
            ours.embed_query(QUERY)
        ours.query_encode_kwargs = {}
        assert ours.embed_documents(DOCS) == want


def test_any_iterable_of_texts_is_taken_as_in_the_stock_class(tiny_gemma_dir: Path) -> None:
    import asyncio

    stock, ours = both(model_name=str(tiny_gemma_dir), encode_kwargs={"prompt_name": "document"})
    with ours:
        want = stock.embed_documents(DOCS)
        for texts in (iter(DOCS), (t for t in DOCS), np.array(DOCS), map(str, DOCS)):
            np.testing.assert_allclose(ours.embed_documents(texts), want, atol=2e-6)  # type: ignore[arg-type]
        np.testing.assert_allclose(asyncio.run(ours.aembed_documents(iter(DOCS))), want, atol=2e-6)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=re.escape("got a single str; wrap it in a list")):
            ours.embed_documents(DOCS[0])  # type: ignore[arg-type]  # the stock class embeds it character by character


def test_concurrent_calls_after_a_change_build_once(tiny_gemma_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from langchain_promptembed import embeddings

    builds: list[int] = []
    real = embeddings.build_embedder

    def counted(options: dict[str, Any], **kwargs: Any) -> Any:
        builds.append(1)
        time.sleep(0.2)  # as a model load takes: the other calls arrive meanwhile
        return real(options, **kwargs)

    with PromptEmbeddings(model_name=str(tiny_gemma_dir)) as ours:
        monkeypatch.setattr(embeddings, "build_embedder", counted)
        ours.encode_kwargs = {"batch_size": 2}  # one embedder serves both sides
        with ThreadPoolExecutor(8) as pool:
            vectors = list(pool.map(ours.embed_query, [QUERY] * 8))
        assert len(builds) == 1 and all(v == vectors[0] for v in vectors)


def test_pickle_and_deepcopy_give_a_working_copy(tiny_gemma_dir: Path) -> None:
    import copy
    import pickle

    ours = PromptEmbeddings(model_name=str(tiny_gemma_dir), encode_kwargs={"normalize_embeddings": True})
    with ours:
        want = ours.embed_documents(DOCS)
        for other in (pickle.loads(pickle.dumps(ours)), copy.deepcopy(ours)):
            np.testing.assert_allclose(other.embed_documents(DOCS), want, rtol=0, atol=0)
            assert other.model_dump() == ours.model_dump()
            other.close()
        assert ours.embed_documents(DOCS) == want  # closing a copy leaves the original working
