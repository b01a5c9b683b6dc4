"""Migration from sentence-transformers-haystack: the stock embedders and ours, same options, same pipelines.

Where the options choose the prompt (``encode_kwargs`` prompt, ``prefix``), the vectors are equal; where they do
not, ours applies the model's prompts. The release post's snippet (seeds/001) is the first case, on the tiny
EmbeddingGemma-shaped model. A pipeline YAML written for the stock components loads with ours after changing the
type lines alone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from haystack import Document, Pipeline
from haystack.components.retrievers import InMemoryEmbeddingRetriever
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.utils import ComponentDevice, Secret
from haystack_integrations.components.embedders.promptembed import PromptDocumentEmbedder, PromptTextEmbedder
from haystack_integrations.components.embedders.sentence_transformers import (  # the stock classes: test deps
    SentenceTransformersDocumentEmbedder,
    SentenceTransformersTextEmbedder,
)
from sentence_transformers import SentenceTransformer

from promptembed import ConfigError
from promptembed.testing import PLANET_DOCS, RED_PLANET_QUERY

QUERY = RED_PLANET_QUERY
DOCS = list(PLANET_DOCS)
CPU = ComponentDevice.from_str("cpu")


def documents() -> list[Document]:
    return [Document(content=text, id=str(i), meta={"title": f"Planet {i}"}) for i, text in enumerate(DOCS)]


def embed_both(model: Path, doc_options: dict[str, Any], text_options: dict[str, Any]) -> dict[str, Any]:
    """Document and query vectors from the stock components and ours, built with the same options."""
    out: dict[str, Any] = {}
    pairs = (
        ("stock", SentenceTransformersDocumentEmbedder, SentenceTransformersTextEmbedder),
        ("ours", PromptDocumentEmbedder, PromptTextEmbedder),
    )
    for name, doc_cls, text_cls in pairs:
        doc = doc_cls(model=str(model), device=CPU, progress_bar=False, **doc_options)
        text = text_cls(model=str(model), device=CPU, progress_bar=False, **text_options)
        out[name] = (
            np.asarray([d.embedding for d in doc.run(documents=documents())["documents"]]),
            np.asarray(text.run(text=QUERY)["embedding"]),
        )
        if name == "ours":
            doc.close()
            text.close()
    return out


def assert_same(got: dict[str, Any], atol: float = 2e-6) -> None:
    np.testing.assert_allclose(got["ours"][0], got["stock"][0], rtol=0, atol=atol)
    np.testing.assert_allclose(got["ours"][1], got["stock"][1], rtol=0, atol=atol)


def test_seed_snippet_gives_the_stock_vectors_and_scores(tiny_gemma_dir: Path) -> None:
    scores = {}
    pairs = (
        ("stock", SentenceTransformersDocumentEmbedder, SentenceTransformersTextEmbedder),
        ("ours", PromptDocumentEmbedder, PromptTextEmbedder),
    )
    for name, doc_cls, text_cls in pairs:
        document_embedder = doc_cls(model=str(tiny_gemma_dir), encode_kwargs={"prompt_name": "document"})
        query_embedder = text_cls(model=str(tiny_gemma_dir), encode_kwargs={"prompt_name": "query"})
        document_embedder.warm_up()
        query_embedder.warm_up()
        store = InMemoryDocumentStore()
        store.write_documents(document_embedder.run(documents=documents())["documents"])
        pipeline = Pipeline()
        pipeline.add_component("text_embedder", query_embedder)
        pipeline.add_component("retriever", InMemoryEmbeddingRetriever(document_store=store, top_k=3))
        pipeline.connect("text_embedder.embedding", "retriever.query_embedding")
        hits = pipeline.run({"text_embedder": {"text": QUERY}})["retriever"]["documents"]
        scores[name] = [(d.content, d.score) for d in hits]
        if name == "ours":
            document_embedder.close()
            query_embedder.close()
    assert [c for c, _ in scores["ours"]] == [c for c, _ in scores["stock"]]
    np.testing.assert_allclose([s for _, s in scores["ours"]], [s for _, s in scores["stock"]], atol=2e-6)


def test_without_a_prompt_ours_applies_the_models_prompts(tiny_gemma_dir: Path) -> None:
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    got = embed_both(tiny_gemma_dir, {}, {})
    titled = [ref.encode_document([t], prompt=f"title: Planet {i} | text: ")[0] for i, t in enumerate(DOCS)]
    np.testing.assert_allclose(got["ours"][0], titled, atol=2e-6)  # meta["title"] fills EmbeddingGemma's slot
    np.testing.assert_allclose(got["ours"][1], ref.encode_query([QUERY])[0], atol=2e-6)
    np.testing.assert_allclose(got["stock"][1], ref.encode([QUERY])[0], atol=2e-6)  # the stock class: no prompt


@pytest.mark.parametrize(
    ("doc_options", "text_options"),
    [
        ({"prefix": "passage: ", "suffix": " (end)"}, {"prefix": "query: ", "suffix": "?"}),
        (
            {"encode_kwargs": {"prompt": "p: "}, "meta_fields_to_embed": ["title"], "embedding_separator": " | "},
            {"encode_kwargs": {"prompt_name": "STS"}, "normalize_embeddings": True},
        ),
        (
            {"encode_kwargs": {"prompt_name": "document"}, "normalize_embeddings": True, "truncate_dim": 16},
            {"encode_kwargs": {"prompt_name": "query"}, "normalize_embeddings": True, "truncate_dim": 16},
        ),
        (
            {"prefix": "x: ", "tokenizer_kwargs": {"model_max_length": 8}, "batch_size": 2},
            {"prefix": "x: ", "model_kwargs": {"attn_implementation": "eager"}, "local_files_only": True},
        ),
    ],
)
def test_chosen_prompts_and_options_give_the_stock_vectors(
    tiny_gemma_dir: Path, doc_options: dict[str, Any], text_options: dict[str, Any]
) -> None:
    assert_same(embed_both(tiny_gemma_dir, doc_options, text_options))


@pytest.mark.parametrize("doc_task", ["document", "query"])
def test_a_task_routes_as_the_stock_components_do(tiny_router_dir: Path, doc_task: str) -> None:
    doc_options, text_options = {"encode_kwargs": {"task": doc_task}}, {"encode_kwargs": {"task": "query"}}
    assert_same(embed_both(tiny_router_dir, doc_options, text_options))


def test_falsy_meta_values_are_embedded_as_the_stock_component_does(tiny_gemma_dir: Path) -> None:
    fields = ["rating", "is_available", "missing", "none_value"]
    doc = Document(content="document", meta={"rating": 0, "is_available": False, "none_value": None})
    got = []
    for cls in (SentenceTransformersDocumentEmbedder, PromptDocumentEmbedder):
        embedder = cls(
            model=str(tiny_gemma_dir), device=CPU, progress_bar=False, meta_fields_to_embed=fields,
            encode_kwargs={"prompt_name": "document"},
        )  # fmt: skip
        got.append(embedder.run(documents=[doc])["documents"][0].embedding)
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    np.testing.assert_allclose(got[1], got[0], rtol=0, atol=2e-6)
    np.testing.assert_allclose(got[1], ref.encode(["0\nFalse\ndocument"], prompt_name="document")[0], atol=2e-6)


def test_output_precision_as_the_stock_class(tiny_gemma_dir: Path) -> None:
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    floats = ref.encode(DOCS, prompt_name="document")
    ranges = [floats.min(axis=0).tolist(), floats.max(axis=0).tolist()]
    enc = {"prompt_name": "document"}
    binary = embed_both(tiny_gemma_dir, {"encode_kwargs": enc, "precision": "ubinary"}, {"encode_kwargs": enc})
    assert_same(binary, atol=0)
    int8 = embed_both(
        tiny_gemma_dir,
        {"encode_kwargs": enc, "precision": "int8", "quantization_ranges": ranges},
        {"encode_kwargs": enc, "precision": "int8", "quantization_ranges": ranges},
    )
    assert np.abs(int8["ours"][0] - int8["stock"][0]).max() <= 1  # a float on a bucket edge may move one bucket
    assert np.abs(int8["ours"][1] - int8["stock"][1]).max() <= 1
    assert all(isinstance(v, int) for v in PromptTextEmbedder(model=str(tiny_gemma_dir), progress_bar=False,
               precision="binary").run(text="x")["embedding"])  # fmt: skip


def test_truncate_dim_renormalizes_where_the_stock_class_does_not(tiny_gemma_dir: Path) -> None:
    enc = {"prompt_name": "document"}
    got = embed_both(tiny_gemma_dir, {"encode_kwargs": enc, "truncate_dim": 8}, {"encode_kwargs": enc})
    stock = got["stock"][0]
    np.testing.assert_allclose(got["ours"][0], stock / np.linalg.norm(stock, axis=1, keepdims=True), atol=2e-6)


def test_truncate_dim_in_encode_kwargs_cuts_as_in_the_stock_class(tiny_gemma_dir: Path) -> None:
    doc_enc, text_enc = {"prompt_name": "document", "truncate_dim": 8}, {"prompt_name": "query", "truncate_dim": 8}
    got = embed_both(tiny_gemma_dir, {"encode_kwargs": doc_enc}, {"encode_kwargs": text_enc})
    assert got["ours"][0].shape == got["stock"][0].shape == (len(documents()), 8)  # ours gave all 32 dimensions
    assert got["ours"][1].shape == got["stock"][1].shape == (8,)
    for ours, stock in zip(got["ours"], got["stock"], strict=True):  # re-normalized after the cut, as truncate_dim=
        np.testing.assert_allclose(ours, stock / np.linalg.norm(stock, axis=-1, keepdims=True), atol=2e-6)


def test_stock_pipeline_yaml_loads_with_ours_after_changing_the_type_lines(tiny_gemma_dir: Path) -> None:
    stock_pipeline = Pipeline()
    stock_pipeline.add_component(
        "docs",
        SentenceTransformersDocumentEmbedder(
            model=str(tiny_gemma_dir),
            device=CPU,
            prefix="passage: ",
            meta_fields_to_embed=["title"],
            normalize_embeddings=True,
            progress_bar=False,
            model_kwargs={"attn_implementation": "eager"},
            encode_kwargs={"prompt_name": "document"},
        ),
    )
    stock_pipeline.add_component(
        "query",
        SentenceTransformersTextEmbedder(
            model=str(tiny_gemma_dir), device=CPU, encode_kwargs={"prompt_name": "query"}, progress_bar=False
        ),
    )
    yaml = stock_pipeline.dumps()
    stock_types = (
        "haystack_integrations.components.embedders.sentence_transformers.sentence_transformers_document_embedder."
        "SentenceTransformersDocumentEmbedder",
        "haystack_integrations.components.embedders.sentence_transformers.sentence_transformers_text_embedder."
        "SentenceTransformersTextEmbedder",
    )
    our_types = (
        "haystack_integrations.components.embedders.promptembed.document_embedder.PromptDocumentEmbedder",
        "haystack_integrations.components.embedders.promptembed.text_embedder.PromptTextEmbedder",
    )
    changed = yaml
    for old, new in zip(stock_types, our_types, strict=True):
        assert f"type: {old}" in changed
        changed = changed.replace(f"type: {old}", f"type: {new}")
    ours = Pipeline.loads(changed)
    docs, query = ours.get_component("docs"), ours.get_component("query")
    assert isinstance(docs, PromptDocumentEmbedder) and isinstance(query, PromptTextEmbedder)
    assert ours.dumps() == changed  # ours writes back exactly the stock parameters (ours at their defaults)
    try:
        for name in ("docs", "query"):
            stock_component, our_component = stock_pipeline.get_component(name), ours.get_component(name)
            if name == "docs":
                want = [d.embedding for d in stock_component.run(documents=documents())["documents"]]
                got = [d.embedding for d in our_component.run(documents=documents())["documents"]]
            else:
                want, got = stock_component.run(text=QUERY)["embedding"], our_component.run(text=QUERY)["embedding"]
            np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
    finally:
        docs.close()
        query.close()


def test_token_secret_is_used_and_never_written(tiny_gemma_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_HF_TOKEN", "hf_secret-value-123")
    text = PromptTextEmbedder(model=str(tiny_gemma_dir), token=Secret.from_env_var("MY_HF_TOKEN"), progress_bar=False)
    try:
        data = text.to_dict()
        assert data["init_parameters"]["token"] == {"type": "env_var", "env_vars": ["MY_HF_TOKEN"], "strict": True}
        text.warm_up()
        key = text.embedder._require().key
        assert key.token is not None and "hf_secret-value-123" not in repr(key)
        assert "hf_secret-value-123" not in str(data) and "hf_secret-value-123" not in str(text.embedder.config())
        again = PromptTextEmbedder.from_dict(data)
        assert again.token == Secret.from_env_var("MY_HF_TOKEN")
    finally:
        text.close()
    plain = PromptTextEmbedder(model=str(tiny_gemma_dir), token=Secret.from_token("hf_secret-value-123"))
    with pytest.raises(ValueError, match="Cannot serialize token-based secret"):
        plain.to_dict()


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"precision": "int8"}, ValueError, "Precision 'int8' requires `quantization_ranges`"),
        ({"precision": "bfloat16"}, ConfigError, "precision='bfloat16' names a weight dtype"),
        ({"encode_kwargs": {"batch_size": 4}}, ConfigError, "encode_kwargs ['batch_size'] repeat parameters"),
        (
            {"encode_kwargs": {"show_progress_bar": False, "quantization_ranges": [[0.0], [1.0]]}},
            ConfigError,
            "encode_kwargs ['show_progress_bar', 'quantization_ranges'] repeat parameters of the component; pass "
            "them as progress_bar=, quantization_ranges= instead",
        ),
        ({"token": "hf_plain"}, TypeError, "token must be a haystack Secret"),
    ],
)
def test_bad_options(tiny_gemma_dir: Path, options: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        PromptTextEmbedder(model=str(tiny_gemma_dir), **options)


def test_a_mistyped_encode_kwargs_key_is_named_with_the_valid_options(tiny_gemma_dir: Path) -> None:
    text = PromptTextEmbedder(model=str(tiny_gemma_dir), device=CPU, encode_kwargs={"prompt_nme": "query"})
    with pytest.raises(ConfigError, match=re.escape("Unknown key(s) ['prompt_nme'] in encode_kwargs: not a ")) as err:
        text.warm_up()
    assert "'prompt_name'" in str(err.value) and "'task'" in str(err.value)  # both lists of valid names ...
    assert "'batch_size'" not in str(err.value)  # ... less those the component takes as its own parameters


def test_parameters_changed_after_warm_up_apply_as_in_the_stock_components(tiny_gemma_dir: Path) -> None:
    stock_text = SentenceTransformersTextEmbedder(model=str(tiny_gemma_dir), device=CPU, progress_bar=False)
    stock_doc = SentenceTransformersDocumentEmbedder(model=str(tiny_gemma_dir), device=CPU, progress_bar=False)
    ours_text = PromptTextEmbedder(model=str(tiny_gemma_dir), device=CPU, progress_bar=False)
    ours_doc = PromptDocumentEmbedder(model=str(tiny_gemma_dir), device=CPU, progress_bar=False)
    for c in (stock_text, stock_doc, ours_text, ours_doc):
        c.warm_up()
    ours_text.run(text=QUERY)  # the model's prompts: differs from the stock component until a prompt is chosen
    changes: list[dict[str, Any]] = [
        {"prefix": "query: "},
        {"prefix": "", "encode_kwargs": {"prompt_name": "STS"}, "normalize_embeddings": True},
        {"encode_kwargs": {"prompt_name": "document"}, "precision": "binary"},
    ]
    try:
        for change in changes:
            for c in (stock_text, stock_doc, ours_text, ours_doc):
                for name, value in change.items():
                    setattr(c, name, value)
            np.testing.assert_allclose(
                ours_text.run(text=QUERY)["embedding"], stock_text.run(text=QUERY)["embedding"], rtol=0, atol=2e-6
            )
            got = [d.embedding for d in ours_doc.run(documents=documents())["documents"]]
            want = [d.embedding for d in stock_doc.run(documents=documents())["documents"]]
            np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
        ours_text.encode_kwargs = {"prompt_name": "nope"}
        with pytest.raises(Exception, match="nope"):
            ours_text.run(text=QUERY)
    finally:
        ours_text.close()
        ours_doc.close()
