"""LangChain's standard integration suite, unmodified, on the bundled all-MiniLM-L6-v2 (offline)."""

from __future__ import annotations

from langchain_promptembed import PromptEmbeddings
from langchain_tests.integration_tests import EmbeddingsIntegrationTests


class TestPromptEmbeddingsStandardIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[PromptEmbeddings]:
        return PromptEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, object]:
        return {"model": None, "device": "cpu"}
