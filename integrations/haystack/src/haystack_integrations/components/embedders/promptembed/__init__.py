"""Haystack integration of promptembed: ``PromptTextEmbedder`` and ``PromptDocumentEmbedder``."""

from __future__ import annotations

from haystack_integrations.components.embedders.promptembed.document_embedder import PromptDocumentEmbedder
from haystack_integrations.components.embedders.promptembed.text_embedder import PromptTextEmbedder

__version__ = "0.1.0"

__all__ = ["PromptDocumentEmbedder", "PromptTextEmbedder", "__version__"]
