"""LangChain integration of promptembed: ``PromptEmbeddings``."""

from __future__ import annotations

from langchain_promptembed.embeddings import PromptEmbeddings

__all__ = ["PromptEmbeddings"]
