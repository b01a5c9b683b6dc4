"""``forward_kwargs`` (a stock ``encode_kwargs`` the core does not handle itself) reach the model's forward pass.

The one sentence-transformers sets itself is ``task``: ``encode_query``/``encode_document`` route a ``Router`` model
by it. A user's ``task`` picks the route as ``encode(task=...)`` does, and the prompt still follows the side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from promptembed import ConfigError, PromptEmbedder

TEXTS = ["Mars is the red planet.", "Venus is hot."]


@pytest.fixture(scope="module")
def router(tiny_router_dir: Path) -> SentenceTransformer:
    return SentenceTransformer(str(tiny_router_dir), device="cpu")


def test_without_a_task_each_side_takes_its_route(tiny_router_dir: Path, router: SentenceTransformer) -> None:
    queries, documents = router.encode_query(TEXTS), router.encode_document(TEXTS)
    assert np.abs(queries - documents).max() > 0.1  # the two routes differ: the checks below can tell them apart
    with PromptEmbedder(model=tiny_router_dir, normalize=False) as emb:
        np.testing.assert_allclose(emb.embed_queries(TEXTS), queries, rtol=0, atol=1e-6)
        np.testing.assert_allclose(emb.embed_documents(TEXTS), documents, rtol=0, atol=1e-6)


@pytest.mark.parametrize("task", ["query", "document"])
def test_a_task_picks_the_route_of_both_sides(tiny_router_dir: Path, router: SentenceTransformer, task: str) -> None:
    want = router.encode(TEXTS, task=task)
    with PromptEmbedder(model=tiny_router_dir, normalize=False, forward_kwargs={"task": task}) as emb:
        np.testing.assert_allclose(emb.embed_queries(TEXTS), want, rtol=0, atol=1e-6)
        np.testing.assert_allclose(emb.embed_documents(TEXTS), want, rtol=0, atol=1e-6)
        np.testing.assert_allclose(emb.embed(TEXTS), want, rtol=0, atol=1e-6)


def test_a_task_keeps_the_models_prompts(tiny_gemma_dir: Path) -> None:
    st = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    with PromptEmbedder(model=tiny_gemma_dir, forward_kwargs={"task": "query"}) as emb:
        np.testing.assert_allclose(emb.embed_queries(TEXTS), st.encode_query(TEXTS), rtol=0, atol=2e-6)
        np.testing.assert_allclose(
            emb.embed_documents(TEXTS), st.encode(TEXTS, task="query", prompt_name="document"), rtol=0, atol=2e-6
        )


def test_unknown_forward_keywords_are_refused(tiny_router_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not take \['colour'\].*task"):
        PromptEmbedder(model=tiny_router_dir, forward_kwargs={"colour": "red"})
