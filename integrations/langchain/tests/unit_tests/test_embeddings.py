"""PromptEmbeddings against sentence-transformers' encode_query / encode_document on the same model."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import numpy as np
import pytest
from langchain_promptembed import PromptEmbeddings
from pydantic import ValidationError
from sentence_transformers import SentenceTransformer

from promptembed import ConfigError, InputError, PromptEmbedder, PromptError

QUERIES = ["Which planet is known as the Red Planet?", "Where did Amelia Earhart first fly?"]
DOCS = ["Mars is red.", "", "Venus is Earth's twin because of its similar size."]


@pytest.fixture(params=["minilm", "tiny_gemma"])
def model_dir(request: pytest.FixtureRequest, minilm_dir: Path) -> Path:
    if request.param == "minilm":
        return minilm_dir
    return Path(request.getfixturevalue("tiny_gemma_dir"))


def test_vectors_equal_sentence_transformers(model_dir: Path) -> None:
    ref = SentenceTransformer(str(model_dir), device="cpu")
    with PromptEmbeddings(model=str(model_dir)) as emb:
        q = [emb.embed_query(t) for t in QUERIES]
        d = emb.embed_documents(DOCS)
        assert all(isinstance(x, float) for x in q[0]) and all(isinstance(x, float) for x in d[0])
        np.testing.assert_allclose(q, ref.encode_query(QUERIES), atol=2e-6)
        np.testing.assert_allclose(d, ref.encode_document(DOCS), atol=2e-6)
        with PromptEmbedder(model=model_dir) as core:
            np.testing.assert_allclose(q, core.embed_queries(QUERIES), atol=2e-6)
            np.testing.assert_allclose(d, core.embed_documents(DOCS), atol=2e-6)


def test_async_equals_sync_and_does_not_block_the_loop(tiny_gemma_dir: Path) -> None:
    texts = [f"document number {i} about the red planet Mars" for i in range(600)]

    async def scenario(emb: PromptEmbeddings) -> tuple[list[list[float]], list[float], int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        tick_task = asyncio.create_task(ticker())
        docs = await emb.aembed_documents(texts)
        query = await emb.aembed_query(QUERIES[0])
        done.set()
        await tick_task
        return docs, query, ticks

    with PromptEmbeddings(model=str(tiny_gemma_dir), batch_size=8) as emb:
        start = time.perf_counter()
        docs, query, ticks = asyncio.run(scenario(emb))
        elapsed = time.perf_counter() - start
        np.testing.assert_allclose(docs, emb.embed_documents(texts), atol=2e-6)
        np.testing.assert_allclose(query, emb.embed_query(QUERIES[0]), atol=2e-6)
    # The loop kept ticking while the model worked: at least a quarter of the ticks a free loop would make.
    assert ticks > max(5, int(elapsed * 1000 / 4 * 0.25)), (ticks, elapsed)


def test_prompt_name_for_non_retrieval_tasks(tiny_gemma_dir: Path) -> None:
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    with PromptEmbeddings(model=str(tiny_gemma_dir), prompt_name="Clustering") as emb:
        np.testing.assert_allclose(emb.embed_documents(DOCS), ref.encode(DOCS, prompt_name="Clustering"), atol=2e-6)
        np.testing.assert_allclose(
            emb.embed_query(DOCS[0]), ref.encode(DOCS[:1], prompt_name="Clustering")[0], atol=2e-6
        )
    with PromptEmbeddings(model=str(tiny_gemma_dir), prompt_name="STS") as emb:
        np.testing.assert_allclose(emb.embed_documents(DOCS), ref.encode(DOCS, prompt_name="STS"), atol=2e-6)
        np.testing.assert_allclose(emb.embed_query(DOCS[0]), ref.encode(DOCS[:1], prompt_name="STS")[0], atol=2e-6)
    # A task prompt really changes the vector: STS and Clustering prompts differ on this model.
    assert not np.allclose(ref.encode(DOCS[:1], prompt_name="STS"), ref.encode(DOCS[:1], prompt_name="Clustering"))
    with pytest.raises(PromptError, match=re.escape("Prompt name 'Clustring' not found")):
        PromptEmbeddings(model=str(tiny_gemma_dir), prompt_name="Clustring")


def test_model_name_alias_truncate_dim_and_empty_list(tiny_gemma_dir: Path) -> None:
    with PromptEmbeddings(model_name=str(tiny_gemma_dir), truncate_dim=8) as emb:
        assert emb.model == str(tiny_gemma_dir)
        v = emb.embed_query("x")
        assert len(v) == 8 and abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
        assert emb.embed_documents([]) == []


def test_unknown_field_is_rejected_naming_the_valid_ones() -> None:
    valid = [*PromptEmbeddings.model_fields, "model"]
    with pytest.raises(
        ValidationError,
        match=re.escape(f"Unknown field(s) ['normalize_embeddings'] for PromptEmbeddings; valid fields are {valid}"),
    ):
        PromptEmbeddings(normalize_embeddings=True)
    assert "normalize" in valid and "prompt_name" in valid


def test_wrong_input_types_name_the_position() -> None:
    with PromptEmbeddings() as emb:
        with pytest.raises(InputError, match=re.escape("texts[1] is NoneType, not str")):
            emb.embed_documents(["ok", None])  # type: ignore[list-item]
        with pytest.raises(InputError, match=re.escape("texts[0] is int, not str")):
            emb.embed_query(3)  # type: ignore[arg-type]


def test_a_dump_rebuilds_with_options_given_the_stock_way_and_keeps_unset_fields_unset(tiny_gemma_dir: Path) -> None:
    # The dump passes every field: trust_remote_code=False (its default) beside model_kwargs' True, and
    # show_progress beside show_progress_bar=True, used to disagree; an unset show_progress came back set to False.
    built = [
        PromptEmbeddings(model_name=str(tiny_gemma_dir), model_kwargs={"trust_remote_code": True}),
        PromptEmbeddings(model_name=str(tiny_gemma_dir), show_progress_bar=True),
        PromptEmbeddings(model_name=str(tiny_gemma_dir)),
    ]
    try:
        for emb in list(built):
            dumped = (PromptEmbeddings(**emb.model_dump()), PromptEmbeddings.model_validate_json(emb.model_dump_json()))
            for again in dumped:
                built.append(again)
                assert again.embed_query("red planet") == emb.embed_query("red planet")
                bar = again.query_embedder.config()["show_progress_bar"]
                assert bar == emb.query_embedder.config()["show_progress_bar"]
        bars = [b.query_embedder.config()["show_progress_bar"] for b in built[1:3]]
        assert bars == [True, None]
        assert built[2].show_progress is None  # unset: a bar for 1,000 texts or more, as before the dump
    finally:
        for emb in built:
            emb.close()


def test_an_explicit_trust_remote_code_false_still_disagrees_with_model_kwargs(tiny_gemma_dir: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("trust_remote_code=False and model_kwargs trust_remote_code=True")):
        PromptEmbeddings(
            model_name=str(tiny_gemma_dir), trust_remote_code=False, model_kwargs={"trust_remote_code": True}
        )


def test_quantization_ranges_given_as_an_array_dump_to_json_and_rebuild(tiny_gemma_dir: Path) -> None:
    with PromptEmbeddings(model_name=str(tiny_gemma_dir)) as plain:
        dim = len(plain.embed_query("x"))
    low, high = np.full(dim, -0.5), np.full(dim, 0.5)
    for ranges in (np.stack([low, high]), [low, high]):  # an array, or a list of arrays
        enc = {"precision": "int8", "quantization_ranges": ranges}
        with PromptEmbeddings(model_name=str(tiny_gemma_dir), query_encode_kwargs=enc) as emb:
            before = emb.embed_query("red planet")
            with PromptEmbeddings.model_validate_json(emb.model_dump_json()) as again:  # a serialization error
                assert again.embed_query("red planet") == before
            emb.query_encode_kwargs = {"precision": "int8", "quantization_ranges": [low * 2, high * 2]}
            assert emb.embed_query("red planet") != before  # ranges assigned later apply


def test_a_dump_rebuilds_an_equal_embedder_and_the_repr_hides_a_token(tiny_gemma_dir: Path) -> None:
    emb = PromptEmbeddings(model_name=str(tiny_gemma_dir), model_kwargs={"token": "hf_SECRET123"}, device=None)
    again = PromptEmbeddings(**emb.model_dump())  # device=None, the field's default, raised a ConfigError
    try:
        assert again.embed_query("red planet") == emb.embed_query("red planet")
        assert "hf_SECRET123" not in repr(emb) and "hf_SECRET123" not in str(emb)  # the README promise
        assert "'token': '**********'" in repr(emb)
    finally:
        emb.close()
        again.close()
