"""One model, three frameworks: the same vectors and one load (the core's shared-model registry)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from haystack import Document
from haystack_integrations.components.embedders.promptembed import PromptDocumentEmbedder, PromptTextEmbedder
from langchain_promptembed import PromptEmbeddings
from llama_index.embeddings.promptembed import PromptEmbedding
from sentence_transformers import SentenceTransformer

from promptembed import _st

QUERY = "Which planet is known as the Red Planet?"
DOC = "Mars, known for its reddish appearance, is often referred to as the Red Planet."


def test_three_frameworks_share_one_model_and_agree(tiny_gemma_dir: Path) -> None:
    model = str(tiny_gemma_dir)
    before = _st.load_count
    lc = PromptEmbeddings(model=model)
    li = PromptEmbedding(model=model)
    hs_text = PromptTextEmbedder(model=model)
    hs_docs = PromptDocumentEmbedder(model=model)
    hs_text.warm_up()
    hs_docs.warm_up()
    try:
        assert _st.load_count == before + 1
        assert len([k for k in _st.loaded_keys() if k.source == str(tiny_gemma_dir.resolve())]) == 1

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
