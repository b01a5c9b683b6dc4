"""The engine's options (``max_batch_tokens``, ``engine``) reach the core through every adapter; same vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from haystack import Document
from haystack_integrations.components.embedders.promptembed import PromptDocumentEmbedder, PromptTextEmbedder
from langchain_promptembed import PromptEmbeddings
from llama_index.embeddings.promptembed import PromptEmbedding
from sentence_transformers import SentenceTransformer

from promptembed import ConfigError

QUERY = "Which planet is known as the Red Planet?"


@pytest.mark.parametrize(("engine", "max_batch_tokens"), [("auto", 24), ("sentence-transformers", None)])
def test_every_adapter_passes_engine_options_and_keeps_the_vectors(
    tiny_gemma_dir: Path, planet_docs: list[str], engine: str, max_batch_tokens: int | None
) -> None:
    docs = [*planet_docs, "Short."]  # lengths far apart: a small budget cuts them into several forward passes
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    q_ref = ref.encode_query([QUERY], normalize_embeddings=True)[0]
    d_ref = ref.encode_document(docs, normalize_embeddings=True)
    options = {"model": str(tiny_gemma_dir), "engine": engine, "max_batch_tokens": max_batch_tokens}
    lc = PromptEmbeddings(**options, normalize=True)
    li = PromptEmbedding(**options)
    hs_text = PromptTextEmbedder(**options, normalize_embeddings=True, progress_bar=False)
    hs_docs = PromptDocumentEmbedder(**options, normalize_embeddings=True, progress_bar=False)
    hs_text.warm_up()
    hs_docs.warm_up()
    try:
        cores = [lc._queries.embedder, lc._documents.embedder, li._embedder]
        cores += [hs_text._side.embedder, hs_docs._side.embedder]  # type: ignore[union-attr]
        for core in cores:
            assert core.engine == engine
            if max_batch_tokens is not None:
                assert core.max_batch_tokens == max_batch_tokens
        queries = [lc.embed_query(QUERY), li.get_query_embedding(QUERY), hs_text.run(text=QUERY)["embedding"]]
        for got in queries:
            np.testing.assert_allclose(got, q_ref, atol=2e-6, rtol=0)
        results = [
            lc.embed_documents(docs),
            li.get_text_embedding_batch(docs),
            [d.embedding for d in hs_docs.run(documents=[Document(content=t) for t in docs])["documents"]],
        ]
        for got in results:
            np.testing.assert_allclose(np.asarray(got), d_ref, atol=2e-6, rtol=0)
    finally:
        lc.close()
        li.close()
        hs_text.close()
        hs_docs.close()


def test_haystack_serializes_engine_options_only_when_set(tiny_gemma_dir: Path) -> None:
    plain = PromptTextEmbedder(model=str(tiny_gemma_dir))
    assert {"max_batch_tokens", "engine"}.isdisjoint(plain.to_dict()["init_parameters"])  # the stock keys only
    tuned = PromptDocumentEmbedder(model=str(tiny_gemma_dir), max_batch_tokens=512, engine="sentence-transformers")
    params = tuned.to_dict()["init_parameters"]
    assert params["max_batch_tokens"] == 512 and params["engine"] == "sentence-transformers"
    back = PromptDocumentEmbedder.from_dict(tuned.to_dict())
    assert back.max_batch_tokens == 512 and back.engine == "sentence-transformers"


def test_bad_engine_options_are_named(tiny_gemma_dir: Path) -> None:
    with pytest.raises(ConfigError, match="max_batch_tokens"):
        PromptEmbeddings(model=str(tiny_gemma_dir), max_batch_tokens=0)
    with pytest.raises(ValueError, match="engine"):
        PromptEmbedding(model=str(tiny_gemma_dir), engine="vllm")  # type: ignore[arg-type]
    # Haystack checks them when the component is built (a pipeline fails at construction, not at its first run)
    with pytest.raises(ConfigError, match=r"max_batch_tokens must be an int >= 1, got 0"):
        PromptTextEmbedder(model=str(tiny_gemma_dir), max_batch_tokens=0)
    with pytest.raises(ConfigError, match=r"Unknown engine 'vllm'; use 'auto'"):
        PromptDocumentEmbedder(model=str(tiny_gemma_dir), engine="vllm")  # type: ignore[arg-type]
