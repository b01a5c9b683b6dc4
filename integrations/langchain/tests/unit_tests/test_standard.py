"""LangChain's standard unit suite, unmodified."""

from __future__ import annotations

from langchain_promptembed import PromptEmbeddings
from langchain_tests.unit_tests import EmbeddingsUnitTests


class TestPromptEmbeddingsStandardUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[PromptEmbeddings]:
        return PromptEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, object]:
        return {"model": None, "device": "cpu"}
