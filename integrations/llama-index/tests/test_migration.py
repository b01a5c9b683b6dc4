"""Migration from llama-index-embeddings-huggingface: the stock HuggingFaceEmbedding and ours, same options.

With instructions given, the vectors are equal; without, ours applies the model's prompts (the stock class, which
replaces the model's "query" prompt with an empty instruction, applies none). The release post's snippet
(seeds/001) is the first case, on the tiny EmbeddingGemma-shaped model.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.embeddings.huggingface import HuggingFaceEmbedding  # the stock class: a test dependency
from llama_index.embeddings.promptembed import PromptEmbedding
from sentence_transformers import SentenceTransformer

from promptembed import ConfigError
from promptembed.testing import PLANET_DOCS, RED_PLANET_QUERY

QUERY = RED_PLANET_QUERY
DOCS = list(PLANET_DOCS)
SEED = {"query_instruction": "task: search result | query: ", "text_instruction": "title: none | text: "}


def both(model: Path, **options: Any) -> tuple[HuggingFaceEmbedding, PromptEmbedding]:
    return HuggingFaceEmbedding(model_name=str(model), **options), PromptEmbedding(model_name=str(model), **options)


def assert_same_vectors(stock: HuggingFaceEmbedding, ours: PromptEmbedding) -> None:
    np.testing.assert_allclose(ours.get_query_embedding(QUERY), stock.get_query_embedding(QUERY), rtol=0, atol=2e-6)
    for text in DOCS[:2]:
        np.testing.assert_allclose(ours.get_text_embedding(text), stock.get_text_embedding(text), rtol=0, atol=2e-6)
    np.testing.assert_allclose(
        ours.get_text_embedding_batch(DOCS), stock.get_text_embedding_batch(DOCS), rtol=0, atol=2e-6
    )


def test_seed_snippet_gives_the_stock_vectors_and_scores(tiny_gemma_dir: Path) -> None:
    import faiss
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores import VectorStoreQuery
    from llama_index.vector_stores.faiss import FaissVectorStore

    stock, ours = both(tiny_gemma_dir, **SEED)
    try:
        assert_same_vectors(stock, ours)
        found = {}
        for name, emb in (("stock", stock), ("ours", ours)):
            store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(32))
            store.add([TextNode(id_=str(i), text=t, embedding=emb.get_text_embedding(t)) for i, t in enumerate(DOCS)])
            result = store.query(VectorStoreQuery(query_embedding=emb.get_query_embedding(QUERY), similarity_top_k=3))
            found[name] = (result.ids, result.similarities)
        assert found["ours"][0] == found["stock"][0]
        np.testing.assert_allclose(found["ours"][1], found["stock"][1], atol=2e-6)
    finally:
        ours.close()


def test_without_instructions_ours_applies_the_models_prompts(tiny_gemma_dir: Path) -> None:
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    stock, ours = both(tiny_gemma_dir)
    try:
        np.testing.assert_allclose(ours.get_query_embedding(QUERY), ref.encode_query([QUERY])[0], atol=2e-6)
        np.testing.assert_allclose(ours.get_text_embedding_batch(DOCS), ref.encode_document(DOCS), atol=2e-6)
        np.testing.assert_allclose(stock.get_query_embedding(QUERY), ref.encode([QUERY])[0], atol=2e-6)  # no prompt
    finally:
        ours.close()


@pytest.mark.parametrize(
    "options",
    [
        {"query_instruction": "q: ", "text_instruction": ""},
        {**SEED, "normalize": False, "max_length": 8, "embed_batch_size": 2, "device": "cpu"},
        {**SEED, "revision": None, "model_kwargs": {"attn_implementation": "eager"}, "local_files_only": True},
        {**SEED, "trust_remote_code": False, "show_progress_bar": False, "config_kwargs": {"hidden_dropout_prob": 0.2}},
    ],
)
def test_instructions_and_options_give_the_stock_vectors(tiny_gemma_dir: Path, options: dict[str, Any]) -> None:
    stock, ours = both(tiny_gemma_dir, **options)
    try:
        assert_same_vectors(stock, ours)
        if "max_length" in options:
            assert ours.embedder.max_seq_length == stock._model.max_seq_length == 8
    finally:
        ours.close()


def test_one_instruction_keeps_the_models_prompt_on_the_other_side(tiny_gemma_dir: Path) -> None:
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    ours = PromptEmbedding(model_name=str(tiny_gemma_dir), query_instruction="q: ")
    try:
        np.testing.assert_allclose(ours.get_query_embedding(QUERY), ref.encode([QUERY], prompt="q: ")[0], atol=2e-6)
        np.testing.assert_allclose(ours.get_text_embedding_batch(DOCS), ref.encode_document(DOCS), atol=2e-6)
    finally:
        ours.close()


def test_token_is_not_serialized(tiny_gemma_dir: Path) -> None:
    ours = PromptEmbedding(model_name=str(tiny_gemma_dir), token="hf_secret-value-123")
    try:
        assert "hf_secret-value-123" not in str(ours.to_dict()) and "hf_secret-value-123" not in repr(ours)
        assert "hf_secret-value-123" not in repr(ours.embedder._require().key)
    finally:
        ours.close()


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"pooling": "cls"}, ValueError, "pooling is deprecated. Please remove it from the arguments."),
        ({"tokenizer_name": "x"}, ValueError, "tokenizer_name is deprecated. Please remove it from the arguments."),
        ({"revison": "main"}, ConfigError, "Unknown SentenceTransformer option 'revison'"),
        ({"prompt_name": "STS", "text_instruction": "t: "}, ConfigError, "prompt_name='STS' and text_instruction"),
    ],
)
def test_bad_options(tiny_gemma_dir: Path, options: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        PromptEmbedding(model_name=str(tiny_gemma_dir), **options)


def test_fields_changed_after_construction_apply_from_the_next_call(tiny_gemma_dir: Path) -> None:
    """In place and in a ``model_copy(update=...)``, so the vectors always follow what ``to_dict()`` says.

    The stock class reads ``normalize`` at each call but fixes the instructions at construction; ours applies a
    changed instruction too.
    """
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    stock, ours = both(tiny_gemma_dir, **SEED)
    try:
        stock.normalize = ours.normalize = False
        assert_same_vectors(stock, ours)
        ours.query_instruction = "q: "
        np.testing.assert_allclose(ours.get_query_embedding(QUERY), ref.encode([QUERY], prompt="q: ")[0], atol=2e-6)
        changed = ours.model_copy(update={"normalize": True, "text_instruction": "p: "})
        np.testing.assert_allclose(
            changed.get_text_embedding_batch(DOCS), ref.encode(DOCS, prompt="p: ", normalize_embeddings=True), atol=2e-6
        )
        assert changed.to_dict()["text_instruction"] == "p: "
        changed.close()
        ours.query_instruction = SEED["query_instruction"]
        assert_same_vectors(stock, ours)  # the original keeps its own settings
        # promptembed's own fields too; the copy then has a model handle of its own, closed apart from the original's
        half = ours.model_copy(update={"truncate_dim": 16})
        vector = np.asarray(half.get_query_embedding(QUERY))
        assert vector.shape == (16,) and abs(np.linalg.norm(vector) - 1) < 1e-5
        half.close()
        assert len(ours.get_query_embedding(QUERY)) == 32
        ours.truncate_dim = 64  # a bad value fails at the next call, naming it; the embedder in use stays
        with pytest.raises(ConfigError, match="truncate_dim=64"):
            ours.get_query_embedding(QUERY)
        ours.truncate_dim = None
        assert_same_vectors(stock, ours)
    finally:
        ours.close()


def test_a_normalize_change_applies_as_in_the_stock_class(tiny_bert_dir: Path) -> None:
    """On a model without a Normalize module, where ``normalize`` changes the vectors."""
    stock, ours = both(tiny_bert_dir, normalize=False)
    try:
        assert_same_vectors(stock, ours)
        assert abs(np.linalg.norm(ours.get_query_embedding(QUERY)) - 1) > 0.1
        stock.normalize = ours.normalize = True
        assert_same_vectors(stock, ours)
        back = ours.model_copy(update={"normalize": False})
        stock_back = stock.model_copy(update={"normalize": False})
        assert_same_vectors(stock_back, back)
        back.close()
    finally:
        ours.close()


def test_a_changed_model_name_names_the_model(tiny_gemma_dir: Path, tiny_bert_dir: Path) -> None:
    """``model_name`` is the stock field: set later, it switches the model, and ``to_dict()`` round-trips."""
    ours = PromptEmbedding(model_name=str(tiny_gemma_dir))
    try:
        ours.model_name = str(tiny_bert_dir)
        data = ours.to_dict()
        assert data["model"] == data["model_name"] == str(tiny_bert_dir)
        ref = SentenceTransformer(str(tiny_bert_dir), device="cpu")
        np.testing.assert_allclose(
            ours.get_query_embedding(QUERY), ref.encode([QUERY], normalize_embeddings=True)[0], atol=2e-6
        )
        again = PromptEmbedding.from_dict(data)
        np.testing.assert_allclose(again.get_query_embedding(QUERY), ours.get_query_embedding(QUERY), atol=0)
        again.close()
    finally:
        ours.close()


def test_concurrent_calls_after_a_change_build_once(tiny_gemma_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from llama_index.core.schema import TextNode
    from llama_index.embeddings.promptembed import base

    ours = PromptEmbedding(model_name=str(tiny_gemma_dir))
    builds: list[str] = []

    class Counted(base.PromptEmbedder):  # type: ignore[misc]
        def __init__(self, **options: Any) -> None:
            builds.append(threading.current_thread().name)
            time.sleep(0.2)  # as a model load takes: the other calls arrive meanwhile
            super().__init__(**options)

    monkeypatch.setattr(base, "PromptEmbedder", Counted)

    async def calls() -> None:
        await asyncio.gather(*(ours.aget_query_embedding(f"{QUERY} {i}") for i in range(8)))
        ours.text_instruction = "t2: "
        await ours.acall([TextNode(text=DOCS[0])])

    try:
        ours.text_instruction = "t: "
        asyncio.run(calls())
        assert len(builds) == 2 and "MainThread" not in builds  # one per change, never on the event loop's thread
    finally:
        ours.close()
