"""PromptEmbedding against sentence-transformers' encode_query / encode_document on the same model."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core.schema import TextNode
from llama_index.embeddings.promptembed import PromptEmbedding
from sentence_transformers import SentenceTransformer

from promptembed import InputError, PromptEmbedder

QUERIES = ["Which planet is known as the Red Planet?", "Where did Amelia Earhart first fly?"]
DOCS = ["Mars is red.", "", "Venus is Earth's twin because of its similar size."]


@pytest.fixture(params=["minilm", "tiny_gemma"])
def model_dir(request: pytest.FixtureRequest, minilm_dir: Path) -> Path:
    if request.param == "minilm":
        return minilm_dir
    return Path(request.getfixturevalue("tiny_gemma_dir"))


def test_query_and_text_vectors_equal_sentence_transformers(model_dir: Path) -> None:
    ref = SentenceTransformer(str(model_dir), device="cpu")
    emb = PromptEmbedding(model=str(model_dir))
    try:
        q_ref, d_ref = ref.encode_query(QUERIES), ref.encode_document(DOCS)
        q = [emb.get_query_embedding(t) for t in QUERIES]
        assert isinstance(q[0][0], float)
        np.testing.assert_allclose(q, q_ref, atol=2e-6)
        np.testing.assert_allclose([emb.get_text_embedding(t) for t in DOCS], d_ref, atol=2e-6)
        np.testing.assert_allclose(emb.get_text_embedding_batch(DOCS), d_ref, atol=2e-6)

        async def run_async() -> tuple[list[float], list[float], list[list[float]]]:
            return (
                await emb.aget_query_embedding(QUERIES[0]),
                await emb.aget_text_embedding(DOCS[0]),
                await emb.aget_text_embedding_batch(DOCS),
            )

        aq, at, ab = asyncio.run(run_async())
        np.testing.assert_allclose(aq, q_ref[0], atol=2e-6)
        np.testing.assert_allclose(at, d_ref[0], atol=2e-6)
        np.testing.assert_allclose(ab, d_ref, atol=2e-6)
        with PromptEmbedder(model=model_dir) as core:
            np.testing.assert_allclose(q, core.embed_queries(QUERIES), atol=2e-6)
    finally:
        emb.close()


def test_node_title_fills_the_title_slot(tiny_gemma_dir: Path) -> None:
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    emb = PromptEmbedding(model=str(tiny_gemma_dir))
    try:
        nodes = [TextNode(text="Mars is red.", metadata={"title": "Mars"}), TextNode(text="Venus is hot.")]
        emb(nodes)
        np.testing.assert_allclose(
            nodes[0].embedding, ref.encode_document(["Mars is red."], prompt="title: Mars | text: ")[0], atol=2e-6
        )
        np.testing.assert_allclose(nodes[1].embedding, ref.encode_document(["Venus is hot."])[0], atol=2e-6)
        again = [TextNode(text="Mars is red.", metadata={"title": "Mars"})]
        asyncio.run(emb.acall(again))
        np.testing.assert_allclose(again[0].embedding, nodes[0].embedding, atol=2e-6)
        # a node that excludes its title from embedding (LlamaIndex's own switch) is embedded without it
        hidden = [TextNode(text="Mars is red.", metadata={"title": "Mars"}, excluded_embed_metadata_keys=["title"])]
        emb(hidden)
        np.testing.assert_allclose(hidden[0].embedding, ref.encode_document(["Mars is red."])[0], atol=2e-6)
    finally:
        emb.close()


def test_node_title_without_slot_stays_in_metadata_text(minilm_dir: Path) -> None:
    ref = SentenceTransformer(str(minilm_dir), device="cpu")
    emb = PromptEmbedding()
    try:
        node = TextNode(text="Mars is red.", metadata={"title": "Mars"})
        emb([node])
        expected = ref.encode_document([node.get_content(metadata_mode="embed")])[0]  # type: ignore[arg-type]
        np.testing.assert_allclose(node.embedding, expected, atol=2e-6)
    finally:
        emb.close()


def test_to_dict_from_dict_keeps_every_setting(tiny_gemma_dir: Path) -> None:
    emb = PromptEmbedding(
        model=str(tiny_gemma_dir), truncate_dim=8, batch_size=4, prompts={"x": "x: "}, prompt_name="x", normalize=False
    )
    again = PromptEmbedding.from_dict(emb.to_dict())
    try:
        for field in (
            "model",
            "device",
            "dtype",
            "truncate_dim",
            "normalize",
            "batch_size",
            "prompts",
            "prompt_name",
        ):
            assert getattr(again, field) == getattr(emb, field), field
        assert again.to_dict() == emb.to_dict()
        np.testing.assert_allclose(again.get_query_embedding("a"), emb.get_query_embedding("a"), atol=2e-6)
        assert len(again.get_query_embedding("a")) == 8
    finally:
        emb.close()
        again.close()


def test_prompt_name_task_prompt(tiny_gemma_dir: Path) -> None:
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    emb = PromptEmbedding(model_name=str(tiny_gemma_dir), prompt_name="STS")
    try:
        np.testing.assert_allclose(emb.get_text_embedding_batch(DOCS), ref.encode(DOCS, prompt_name="STS"), atol=2e-6)
        np.testing.assert_allclose(
            emb.get_query_embedding(DOCS[0]), ref.encode(DOCS[:1], prompt_name="STS")[0], atol=2e-6
        )
    finally:
        emb.close()


def test_wrong_input_types() -> None:
    emb = PromptEmbedding()
    try:
        with pytest.raises(InputError, match=re.escape("texts[1] is NoneType, not str")):
            emb.get_text_embedding_batch(["ok", None])  # type: ignore[list-item]
        with pytest.raises(InputError, match=re.escape("texts[0] is bytes, not str")):
            emb.get_query_embedding(b"bytes")  # type: ignore[arg-type]
    finally:
        emb.close()


def _counting(fn: Any, sizes: list[int]) -> Any:
    def wrapper(texts: list[str], **kwargs: Any) -> Any:
        sizes.append(len(texts))
        return fn(texts, **kwargs)

    return wrapper


def test_batches_reach_the_core_in_large_windows(tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LlamaIndex cuts batches of ``embed_batch_size``; the default lets the core length-sort 1024 at a time."""
    from llama_index.embeddings.promptembed.base import DEFAULT_EMBED_BATCH_SIZE

    texts = [f"text number {i} " + "word " * (i % 7) for i in range(300)]
    with PromptEmbedder(model=tiny_bert_dir) as core:
        want_vectors = core.embed_documents(texts)
    sizes: list[int] = []
    for embed_batch_size, want in ((None, [300]), (128, [128, 128, 44])):
        emb = PromptEmbedding(model=str(tiny_bert_dir), embed_batch_size=embed_batch_size)
        try:
            assert emb.embed_batch_size == (embed_batch_size or DEFAULT_EMBED_BATCH_SIZE)
            sizes.clear()
            monkeypatch.setattr(emb.embedder, "embed_documents", _counting(emb.embedder.embed_documents, sizes))
            got = emb.get_text_embedding_batch(texts)
            assert sizes == want
            np.testing.assert_allclose(got, want_vectors, atol=2e-6)
        finally:
            emb.close()


def test_a_relative_model_path_survives_to_dict_pickle_and_deepcopy(
    tiny_gemma_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import copy
    import pickle

    monkeypatch.chdir(tiny_gemma_dir.parent)
    for given in (tiny_gemma_dir.name, f"{tiny_gemma_dir.name}/"):  # as `promptembed finetune --output my-model`
        emb = PromptEmbedding(model_name=given)
        want = emb.get_query_embedding("a")
        copies = [
            PromptEmbedding.from_dict(emb.to_dict()),
            PromptEmbedding.from_json(emb.to_json()),
            pickle.loads(pickle.dumps(emb)),
            copy.deepcopy(emb),
        ]
        for other in copies:
            assert other.model == other.model_name == str(tiny_gemma_dir.resolve())
            np.testing.assert_allclose(other.get_query_embedding("a"), want, rtol=0, atol=0)
            other.close()
        emb.close()


def test_nodes_go_through_callbacks_events_and_the_embeddings_cache(tiny_gemma_dir: Path) -> None:
    from llama_index.core import Document
    from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.storage.kvstore import SimpleKVStore

    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    counter = TokenCountingHandler(tokenizer=str.split)
    emb = PromptEmbedding(model=str(tiny_gemma_dir), callback_manager=CallbackManager([counter]), embed_batch_size=2)
    emb.embeddings_cache = SimpleKVStore()
    docs = [
        Document(text="Mars is red.", metadata={"title": "Mars"}),
        Document(text="Venus is hot."),
        Document(text="Jupiter is big.", metadata={"title": "Jupiter"}),
    ]
    # what stands for each node: a titled one as the model reads it (filled prompt + text), the others as shown
    standing = ["title: Mars | text: Mars is red.", "Venus is hot.", "title: Jupiter | text: Jupiter is big."]
    try:
        nodes = IngestionPipeline(transformations=[emb]).run(documents=docs)
        assert counter.total_embedding_token_count == sum(len(t.split()) for t in standing)
        assert len(counter.embedding_token_counts) == 3
        assert sorted(emb.embeddings_cache.get_all(collection="embeddings")) == sorted(standing)
        np.testing.assert_allclose(
            nodes[0].embedding, ref.encode_document(["Mars is red."], prompt="title: Mars | text: ")[0], atol=2e-6
        )
        np.testing.assert_allclose(nodes[1].embedding, ref.encode_document(["Venus is hot."])[0], atol=2e-6)
        again = [Document(text="Mars is red.", metadata={"title": "Mars"})]
        asyncio.run(emb.acall(again))  # from the cache, through the async path
        np.testing.assert_allclose(again[0].embedding, nodes[0].embedding, rtol=0, atol=0)
        assert len(counter.embedding_token_counts) == 4
    finally:
        emb.close()


def test_a_node_vector_does_not_depend_on_its_neighbours_or_the_cache(tiny_gemma_dir: Path) -> None:
    from llama_index.core.storage.kvstore import SimpleKVStore

    titled = TextNode(text="Mars is red.", metadata={"title": "Mars"})
    shown = titled.get_content(metadata_mode="embed")  # type: ignore[arg-type]
    look_alike = TextNode(text=shown)  # no title, but the titled node's text as LlamaIndex shows it
    with PromptEmbedder(model=tiny_gemma_dir) as core:
        want_titled = core.embed_documents(["Mars is red."], titles=["Mars"])[0]
        want_plain = core.embed_documents([shown])[0]
    emb = PromptEmbedding(model=str(tiny_gemma_dir))
    emb.embeddings_cache = SimpleKVStore()
    try:
        emb.get_text_embedding_batch([shown])  # the look-alike's text is in the cache first
        for nodes in ([titled.model_copy(), look_alike.model_copy()], [look_alike.model_copy(), titled.model_copy()]):
            emb(nodes)
            got = {bool(n.metadata): n.embedding for n in nodes}
            np.testing.assert_allclose(got[True], want_titled, atol=2e-6)
            np.testing.assert_allclose(got[False], want_plain, atol=2e-6)
    finally:
        emb.close()


def test_deepcopy_keeps_the_original_whole_and_the_token(tiny_gemma_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import copy
    import pickle

    from llama_index.core import Document
    from llama_index.core.callbacks import CallbackManager, TokenCountingHandler

    counter = TokenCountingHandler(tokenizer=lambda s: s.split())  # a lambda: this handler does not pickle
    emb = PromptEmbedding(model=str(tiny_gemma_dir), callback_manager=CallbackManager([counter]), token="hf_x")
    try:
        deep = copy.deepcopy(emb)
        pickled = pickle.loads(pickle.dumps(emb))
        assert emb.callback_manager.handlers == [counter]  # not removed from the original
        emb([Document(text="Mars is red.")])
        assert counter.total_embedding_token_count == 3
        assert deep._token == pickled._token == "hf_x"  # the copies reach the same (gated) model
        assert deep.embedder._entry is emb.embedder._entry  # and share the loaded one
        assert len(deep.callback_manager.handlers) == 1
        deep.close()
        pickled.close()
    finally:
        emb.close()


def test_embed_batch_size_zero_is_refused_as_in_the_stock_class(tiny_gemma_dir: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="embed_batch_size"):
        PromptEmbedding(model=str(tiny_gemma_dir), embed_batch_size=0)


def test_copies_of_the_default_model_and_of_a_rate_limited_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import copy
    import pickle

    from llama_index.core.rate_limiter import TokenBucketRateLimiter

    limiter = TokenBucketRateLimiter(requests_per_minute=10_000)  # holds a lock: neither pickles nor deep-copies
    emb = PromptEmbedding(rate_limiter=limiter)  # the bundled default model
    try:
        assert emb.model is None
        deep, pickled = copy.deepcopy(emb), pickle.loads(pickle.dumps(emb))
        for other in (deep, pickled):
            assert other.model is None and other.to_dict() == emb.to_dict()
            assert other.get_query_embedding("a") == emb.get_query_embedding("a")
            other.close()
        assert deep.rate_limiter is limiter  # shared, where pickling must leave it out
        assert pickled.rate_limiter is None
        emb.model_copy().close()  # a shallow copy shares the embedder: closing it leaves the original open
        assert len(emb.get_query_embedding("a")) == 384
    finally:
        emb.close()


def test_to_json_with_a_torch_dtype_in_model_kwargs(tiny_gemma_dir: Path) -> None:
    import torch

    emb = PromptEmbedding(model_name=str(tiny_gemma_dir), model_kwargs={"torch_dtype": torch.float32})
    try:
        data = json.loads(emb.to_json())  # it was a TypeError: the dtype is not JSON
        assert data["model_kwargs"] == {"torch_dtype": "float32"} and emb.model_kwargs["torch_dtype"] is torch.float32
        again = PromptEmbedding.from_json(emb.to_json())
        assert again.embedder._require().model is emb.embedder._require().model  # the same weights, loaded once
        assert again.get_query_embedding("Mars") == emb.get_query_embedding("Mars")
        again.close()
    finally:
        emb.close()


def test_the_default_model_is_saved_as_none_not_as_this_environments_folder() -> None:
    """to_json() of the bundled default wrote the site-packages folder it was loaded from: the settings loaded only
    while that environment existed."""
    emb = PromptEmbedding()
    try:
        data = emb.to_dict()
        assert data["model_name"] is None and data.get("model") is None
        again = PromptEmbedding.from_json(emb.to_json())
        try:
            assert again._embedder.model_source == emb._embedder.model_source  # the same bundled model
            assert again.get_query_embedding("roof permit") == emb.get_query_embedding("roof permit")
        finally:
            again.close()
    finally:
        emb.close()
