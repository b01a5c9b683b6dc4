"""Haystack components against sentence-transformers' encode_query / encode_document on the same model."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from haystack import Document, Pipeline
from haystack.utils import ComponentDevice
from haystack_integrations.components.embedders.promptembed import PromptDocumentEmbedder, PromptTextEmbedder
from sentence_transformers import SentenceTransformer

from promptembed import PromptError

QUERIES = ["Which planet is known as the Red Planet?", "Where did Amelia Earhart first fly?"]
DOCS = ["Mars is red.", "", "Venus is Earth's twin because of its similar size."]


@pytest.fixture(params=["minilm", "tiny_gemma"])
def model_dir(request: pytest.FixtureRequest, minilm_dir: Path) -> Path:
    if request.param == "minilm":
        return minilm_dir
    return Path(request.getfixturevalue("tiny_gemma_dir"))


def test_vectors_equal_sentence_transformers(model_dir: Path) -> None:
    ref = SentenceTransformer(str(model_dir), device="cpu")
    text = PromptTextEmbedder(model=str(model_dir))
    docs = PromptDocumentEmbedder(model=str(model_dir), progress_bar=False)
    try:
        q = [text.run(text=t)["embedding"] for t in QUERIES]
        assert isinstance(q[0][0], float)
        np.testing.assert_allclose(q, ref.encode_query(QUERIES), atol=2e-6)
        inputs = [Document(content=d) for d in DOCS]
        out = docs.run(documents=inputs)["documents"]
        assert all(d.embedding is None for d in inputs)  # inputs untouched
        assert [d.id for d in out] == [d.id for d in inputs]
        np.testing.assert_allclose([d.embedding for d in out], ref.encode_document(DOCS), atol=2e-6)
    finally:
        text.close()
        docs.close()


def test_meta_title_fills_the_title_slot_and_meta_fields_are_joined(tiny_gemma_dir: Path) -> None:
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    embedder = PromptDocumentEmbedder(model=str(tiny_gemma_dir), meta_fields_to_embed=["topic"], progress_bar=False)
    try:
        docs = [
            Document(content="Mars is red.", meta={"title": "Mars", "topic": "planets"}),
            Document(content="Venus is hot.", meta={"topic": "planets"}),
            Document(content=None, meta={"title": "Empty"}),
        ]
        out = embedder.run(documents=docs)["documents"]
        expected = [
            ref.encode_document(["planets\nMars is red."], prompt="title: Mars | text: ")[0],
            ref.encode_document(["planets\nVenus is hot."])[0],
            ref.encode_document([""], prompt="title: Empty | text: ")[0],
        ]
        np.testing.assert_allclose([d.embedding for d in out], expected, atol=2e-6)
    finally:
        embedder.close()


def test_prompt_name_task_prompt(tiny_gemma_dir: Path) -> None:
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    text = PromptTextEmbedder(model=str(tiny_gemma_dir), prompt_name="Clustering")
    try:
        expected = ref.encode(QUERIES[:1], prompt_name="Clustering")[0]
        np.testing.assert_allclose(text.run(text=QUERIES[0])["embedding"], expected, atol=2e-6)
    finally:
        text.close()
    bad = PromptTextEmbedder(model=str(tiny_gemma_dir), prompt_name="Clustring")
    with pytest.raises(PromptError, match=re.escape("Prompt name 'Clustring' not found")):
        bad.warm_up()


def test_wrong_input_types_name_the_other_component() -> None:
    text = PromptTextEmbedder(progress_bar=False)
    docs = PromptDocumentEmbedder(progress_bar=False)
    try:
        with pytest.raises(
            TypeError,
            match="expects a string as input, got list; to embed a list of Documents use PromptDocumentEmbedder",
        ):
            text.run(text=[Document(content="x")])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="got str; to embed a query string use PromptTextEmbedder"):
            docs.run(documents="a query")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=re.escape("got a list whose item 1 is str")):
            docs.run(documents=[Document(content="x"), "y"])  # type: ignore[list-item]
        assert docs.run(documents=[])["documents"] == []
    finally:
        text.close()
        docs.close()


def test_to_dict_from_dict_and_yaml_pipeline_round_trip(tiny_gemma_dir: Path) -> None:
    settings = {
        "model": str(tiny_gemma_dir),
        "device": ComponentDevice.from_str("cpu"),
        "dtype": "auto",
        "truncate_dim": 16,
        "normalize_embeddings": False,
        "batch_size": 4,
        "prompts": {"x": "x: "},
        "trust_remote_code": False,
        "progress_bar": False,
    }
    docs = PromptDocumentEmbedder(**settings, meta_fields_to_embed=["a"], embedding_separator=" | ")  # type: ignore[arg-type]
    text = PromptTextEmbedder(**settings, prompt_name="x")  # type: ignore[arg-type]
    for component in (docs, text):
        again = type(component).from_dict(component.to_dict())
        assert again.to_dict() == component.to_dict()
    pipe = Pipeline()
    pipe.add_component("docs", docs)
    pipe.add_component("text", text)
    loaded = Pipeline.loads(pipe.dumps())
    assert loaded.dumps() == pipe.dumps()
    loaded_docs = loaded.get_component("docs")
    loaded_text = loaded.get_component("text")
    assert loaded_docs.to_dict() == docs.to_dict() and loaded_text.to_dict() == text.to_dict()
    try:
        d = [Document(content="Mars", meta={"a": "A"})]
        np.testing.assert_allclose(
            loaded_docs.run(documents=d)["documents"][0].embedding, docs.run(documents=d)["documents"][0].embedding
        )
        np.testing.assert_allclose(loaded_text.run(text="q")["embedding"], text.run(text="q")["embedding"])
        assert len(loaded_text.run(text="q")["embedding"]) == 16
    finally:
        for c in (docs, text, loaded_docs, loaded_text):
            c.close()


def test_a_warmed_component_pickles_and_deep_copies(tiny_gemma_dir: Path) -> None:
    import copy
    import pickle

    text = PromptTextEmbedder(model=str(tiny_gemma_dir), progress_bar=False)
    docs = PromptDocumentEmbedder(model=str(tiny_gemma_dir), progress_bar=False, meta_fields_to_embed=["topic"])
    text.warm_up()
    docs.warm_up()
    want_text = text.run(text="Which planet is red?")["embedding"]
    batch = [Document(content="Mars is red.", meta={"topic": "planets"})]
    want_docs = docs.run(documents=batch)["documents"][0].embedding
    try:
        for other in (pickle.loads(pickle.dumps(text)), copy.deepcopy(text)):
            assert other.to_dict() == text.to_dict()
            assert other.run(text="Which planet is red?")["embedding"] == want_text
            other.close()
        for other_docs in (pickle.loads(pickle.dumps(docs)), copy.deepcopy(docs)):
            fresh = [Document(content="Mars is red.", meta={"topic": "planets"})]
            assert other_docs.run(documents=fresh)["documents"][0].embedding == want_docs
            other_docs.close()
        assert text.run(text="Which planet is red?")["embedding"] == want_text  # the original still works
    finally:
        text.close()
        docs.close()
