"""Property tests: any input gives a correct vector or a clear error naming the position; never NaN or a crash."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from haystack import Document
from haystack_integrations.components.embedders.promptembed import PromptDocumentEmbedder, PromptTextEmbedder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_promptembed import PromptEmbeddings
from llama_index.core.schema import TextNode
from llama_index.embeddings.promptembed import PromptEmbedding
from sentence_transformers import SentenceTransformer

from promptembed import InputError, PromptEmbedder

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

#: Real-world text: RTL, CJK, emoji, combining marks, NUL bytes, whitespace, empty.
TEXT = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "",
            " ",
            "\n\t",
            "\x00",
            "a\x00b",
            "مرحبا بالعالم",
            "火星是红色的",
            "🚀🔥👍🏽",
            "e\u0301\u0302",
            "\u200f\u200e",
        ]
    ),
)
NOT_STR = st.one_of(
    st.none(),
    st.binary(max_size=5),
    st.integers(),
    st.floats(allow_nan=True),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from promptembed.testing import build_tiny_embeddinggemma

    return build_tiny_embeddinggemma(tmp_path_factory.mktemp("props"))


@pytest.fixture(scope="module")
def ref(model_dir: Path) -> SentenceTransformer:
    return SentenceTransformer(str(model_dir), device="cpu")


@pytest.fixture(scope="module")
def core(model_dir: Path) -> Iterator[PromptEmbedder]:
    with PromptEmbedder(model=model_dir) as emb:
        yield emb


def _valid(vectors: np.ndarray, n: int, dim: int) -> None:
    assert vectors.shape == (n, dim) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


@SETTINGS
@given(texts=st.lists(TEXT, max_size=6))
def test_core_valid_text_equals_reference(core: PromptEmbedder, ref: SentenceTransformer, texts: list[str]) -> None:
    q, d = core.embed_queries(texts), core.embed_documents(texts)
    _valid(q, len(texts), 32)
    _valid(d, len(texts), 32)
    if texts:
        np.testing.assert_allclose(q, ref.encode_query(texts), atol=5e-6)
        np.testing.assert_allclose(d, ref.encode_document(texts), atol=5e-6)


@SETTINGS
@given(prefix=st.lists(TEXT, max_size=4), bad=NOT_STR, suffix=st.lists(TEXT, max_size=2))
def test_core_non_str_names_its_position(
    core: PromptEmbedder, prefix: list[str], bad: object, suffix: list[str]
) -> None:
    texts = [*prefix, bad, *suffix]
    for call in (core.embed_queries, core.embed_documents, core.embed):
        with pytest.raises(InputError, match=rf"texts\[{len(prefix)}\] is {type(bad).__name__}, not str"):
            call(texts)  # type: ignore[arg-type]


@SETTINGS
@given(head=st.text(max_size=5), tail=st.text(max_size=5), cp=st.integers(0xD800, 0xDFFF))
def test_unpaired_surrogates_are_a_clear_error(core: PromptEmbedder, head: str, tail: str, cp: int) -> None:
    with pytest.raises(InputError, match=r"texts\[1\] contains an unpaired surrogate"):
        core.embed_queries(["fine", head + chr(cp) + tail])


def test_one_million_characters(core: PromptEmbedder, ref: SentenceTransformer) -> None:
    text = "mars " * 200_000
    v = core.embed_documents([text])
    _valid(v, 1, 32)
    np.testing.assert_allclose(v, ref.encode_document([text]), atol=5e-6)


def test_adapters_on_strange_text_and_defined_empty_cases(model_dir: Path, ref: SentenceTransformer) -> None:
    texts = ["", " ", "\x00", "مرحبا", "火星", "🚀", "e\u0301"]
    lc = PromptEmbeddings(model=str(model_dir))
    li = PromptEmbedding(model=str(model_dir))
    hs_text, hs_docs = (
        PromptTextEmbedder(model=str(model_dir)),
        PromptDocumentEmbedder(model=str(model_dir), progress_bar=False),
    )
    try:
        d_ref, q_ref = ref.encode_document(texts), ref.encode_query(texts)
        np.testing.assert_allclose(lc.embed_documents(texts), d_ref, atol=5e-6)
        np.testing.assert_allclose([lc.embed_query(t) for t in texts], q_ref, atol=5e-6)
        np.testing.assert_allclose(li.get_text_embedding_batch(texts), d_ref, atol=5e-6)
        np.testing.assert_allclose([hs_text.run(text=t)["embedding"] for t in texts], q_ref, atol=5e-6)
        out = hs_docs.run(documents=[Document(content=t) for t in texts])["documents"]
        np.testing.assert_allclose([d.embedding for d in out], d_ref, atol=5e-6)
        # Defined empty cases: LangChain [] -> []; Haystack content=None and a LlamaIndex node without text embed "".
        assert lc.embed_documents([]) == []
        none_doc = hs_docs.run(documents=[Document(content=None)])["documents"][0]
        np.testing.assert_allclose(none_doc.embedding, ref.encode_document([""])[0], atol=5e-6)
        node = TextNode(text="")
        li([node])
        np.testing.assert_allclose(node.embedding, ref.encode_document([""])[0], atol=5e-6)
        assert asyncio.run(lc.aembed_documents([])) == []
        for bad in (None, b"x", 3, ["x"]):
            with pytest.raises(TypeError):
                lc.embed_query(bad)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                li.get_query_embedding(bad)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                hs_text.run(text=bad)  # type: ignore[arg-type]
    finally:
        for obj in (lc, li, hs_text, hs_docs):
            obj.close()
