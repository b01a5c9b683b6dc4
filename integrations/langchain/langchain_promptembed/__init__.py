"""LangChain integration of promptembed: ``PromptEmbeddings``."""

from __future__ import annotations

from langchain_promptembed.embeddings import PromptEmbeddings

__version__ = "0.1.0"

__all__ = ["PromptEmbeddings", "__version__"]
