"""LlamaIndex integration of promptembed: ``PromptEmbedding``."""

from __future__ import annotations

from llama_index.embeddings.promptembed.base import PromptEmbedding

__all__ = ["PromptEmbedding"]
