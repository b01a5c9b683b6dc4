"""LlamaIndex integration of promptembed: ``PromptEmbedding``."""

from __future__ import annotations

from llama_index.embeddings.promptembed.base import PromptEmbedding

__version__ = "0.1.0"

__all__ = ["PromptEmbedding", "__version__"]
