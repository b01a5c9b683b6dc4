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
from promptembed import engine as core_engine

QUERY = "Which planet is known as the Red Planet?"


@pytest.mark.parametrize(
    ("engine", "max_batch_tokens"), [("auto", 24), ("sentence-transformers", None), ("compile", None)]
)
def test_every_adapter_passes_engine_options_and_keeps_the_vectors(
    tiny_gemma_dir: Path,
    planet_docs: list[str],
    engine: str,
    max_batch_tokens: int | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = [*planet_docs, "Short."]  # lengths far apart: a small budget cuts them into several forward passes
    compiled_calls: list[int] = []

    def fake_compile(model):  # type: ignore[no-untyped-def]  # the wiring only: tests/test_engine.py compiles for real
        def forward(features, **kwargs):  # type: ignore[no-untyped-def]
            compiled_calls.append(int(features["input_ids"].shape[0]))
            return model(features, **kwargs)

        return forward

    monkeypatch.setattr(core_engine, "_compile", fake_compile)  # for every engine: only "compile" may reach it
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
        runs = [
            lambda: lc.embed_documents(docs),
            lambda: li.get_text_embedding_batch(docs),
            lambda: [d.embedding for d in hs_docs.run(documents=[Document(content=t) for t in docs])["documents"]],
        ]
        for run in runs:
            before = len(compiled_calls)
            np.testing.assert_allclose(np.asarray(run()), d_ref, atol=2e-6, rtol=0)
            assert (len(compiled_calls) > before) == (engine == "compile")  # only "compile" runs the compiled model
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
    with pytest.raises(ConfigError, match=r"Unknown engine 'vllm'; use 'auto'.*'compile'"):
        PromptDocumentEmbedder(model=str(tiny_gemma_dir), engine="vllm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="engine"):
        PromptEmbeddings(model=str(tiny_gemma_dir), engine="vllm")  # type: ignore[arg-type]


def test_the_compile_engine_round_trips_through_each_adapters_config(tiny_gemma_dir: Path) -> None:
    hs = PromptDocumentEmbedder.from_dict(PromptDocumentEmbedder(model=str(tiny_gemma_dir), engine="compile").to_dict())
    li = PromptEmbedding.from_dict(PromptEmbedding(model=str(tiny_gemma_dir), engine="compile").to_dict())
    lc = PromptEmbeddings(model=str(tiny_gemma_dir), engine="compile")
    hs.warm_up()
    try:
        assert hs.engine == li.engine == lc.engine == "compile"
        cores = [hs._side.embedder, li._embedder, lc._queries.embedder, lc._documents.embedder]  # type: ignore[union-attr]
        assert [core.engine for core in cores] == ["compile"] * 4
        assert cores[0].config()["engine"] == "compile"  # PromptEmbedder(**config()) keeps it
    finally:
        hs.close()
        li.close()
        lc.close()
