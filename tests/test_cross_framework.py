"""One model, three frameworks: the same vectors and one load (the core's shared-model registry)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from haystack import Document
from haystack_integrations.components.embedders.promptembed import PromptDocumentEmbedder, PromptTextEmbedder
from langchain_promptembed import PromptEmbeddings
from llama_index.embeddings.promptembed import PromptEmbedding
from sentence_transformers import SentenceTransformer

from promptembed import _registry

QUERY = "Which planet is known as the Red Planet?"
DOC = "Mars, known for its reddish appearance, is often referred to as the Red Planet."


def test_three_frameworks_share_one_model_and_agree(tiny_gemma_dir: Path) -> None:
    model = str(tiny_gemma_dir)
    before = _registry.load_count
    lc = PromptEmbeddings(model=model)
    li = PromptEmbedding(model=model)
    hs_text = PromptTextEmbedder(model=model)
    hs_docs = PromptDocumentEmbedder(model=model)
    hs_text.warm_up()
    hs_docs.warm_up()
    try:
        assert _registry.load_count == before + 1
        assert len([k for k in _registry.loaded_keys() if k.source == str(tiny_gemma_dir.resolve())]) == 1

        ref = SentenceTransformer(model, device="cpu")
        q_ref = ref.encode_query([QUERY])[0]
        d_ref = ref.encode_document([DOC])[0]
        queries = [
            lc.embed_query(QUERY),
            li.get_query_embedding(QUERY),
            hs_text.run(text=QUERY)["embedding"],
        ]
        docs = [
            lc.embed_documents([DOC])[0],
            li.get_text_embedding(DOC),
            hs_docs.run(documents=[Document(content=DOC)])["documents"][0].embedding,
        ]
        for q, d in zip(queries, docs, strict=True):
            assert isinstance(q[0], float) and isinstance(d[0], float)
            np.testing.assert_allclose(q, q_ref, atol=2e-6)
            np.testing.assert_allclose(d, d_ref, atol=2e-6)
        assert not np.allclose(q_ref, ref.encode([QUERY])[0])  # the prompts really differ from raw text
    finally:
        for obj in (lc, li, hs_text, hs_docs):
            close = getattr(obj, "close", None)
            if close is not None:
                close()


def test_adapters_pass_cache_dir_and_allow_pickle_to_the_core(tiny_bert_dir: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from promptembed import UnsafeModelError
    from promptembed.cache import VectorCache

    cache = tmp_path / "cache"
    # normalization as each host's stock embedder defaults it (LangChain and Haystack: off); here on for all three
    lc = PromptEmbeddings(model=str(tiny_bert_dir), cache_dir=str(cache), normalize=True)
    li = PromptEmbedding(model=str(tiny_bert_dir), cache_dir=str(cache))
    hs = PromptDocumentEmbedder(
        model=str(tiny_bert_dir), cache_dir=str(cache), progress_bar=False, normalize_embeddings=True
    )
    try:
        first = lc.embed_documents([DOC, QUERY])
        assert len(VectorCache(cache)) == 2
        np.testing.assert_allclose(li.get_text_embedding_batch([DOC, QUERY]), first, atol=1e-7)
        out = hs.run(documents=[Document(content=DOC), Document(content=QUERY)])["documents"]
        np.testing.assert_allclose([d.embedding for d in out], first, atol=1e-7)
        assert len(VectorCache(cache)) == 2  # the same prompt, text and weights: shared entries
        lc.embed_query("a query not embedded before")
        assert len(VectorCache(cache)) == 3
    finally:
        for obj in (lc, li, hs):
            obj.close()
    weights = tiny_bert_dir / "model.safetensors"
    torch.save(load_file(str(weights)), tiny_bert_dir / "pytorch_model.bin")
    weights.unlink()
    for make in (
        lambda **kw: PromptEmbeddings(model=str(tiny_bert_dir), **kw),
        lambda **kw: PromptEmbedding(model=str(tiny_bert_dir), **kw),
    ):
        with pytest.raises(UnsafeModelError, match="has only pickle weights"):
            make()
        obj = make(allow_pickle=True)
        obj.close()
    with pytest.raises(UnsafeModelError, match="has only pickle weights"):
        PromptTextEmbedder(model=str(tiny_bert_dir)).warm_up()
    ok = PromptTextEmbedder(model=str(tiny_bert_dir), allow_pickle=True)
    assert len(ok.run(text=QUERY)["embedding"]) == 32
    ok.close()


def test_adapters_make_one_engine_call_with_all_texts(minilm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the benchmark's in-call overhead measure relies on: one call into the core's encode path, all texts."""
    from promptembed import engine

    docs = [f"document {i}: " + "some words " * (i % 9) for i in range(200)]
    calls: list[list[str]] = []
    original = engine.encode

    def spy(entry: Any, texts: list[str], *args: Any, **kwargs: Any) -> Any:
        calls.append(list(texts))
        return original(entry, texts, *args, **kwargs)

    monkeypatch.setattr(engine, "encode", spy)
    lc = PromptEmbeddings(model=str(minilm_dir), device="cpu")
    li = PromptEmbedding(model=str(minilm_dir), device="cpu")
    hs = PromptDocumentEmbedder(model=str(minilm_dir), device="cpu", progress_bar=False)
    hs.warm_up()
    try:
        for run in (
            lambda: lc.embed_documents(docs),
            lambda: li.get_text_embedding_batch(docs),
            lambda: hs.run(documents=[Document(content=d) for d in docs]),
        ):
            calls.clear()
            run()
            assert calls == [docs]
    finally:
        lc.close()
        li.close()
        hs.close()
