"""promptembed: sentence-transformers embeddings that always use the model's own prompts.

Example:
    >>> from promptembed import PromptEmbedder
    >>> emb = PromptEmbedder()
    >>> emb.embed_queries(["hello"]).shape
    (1, 384)
    >>> emb.close()
"""

from __future__ import annotations

from promptembed.embedder import PromptEmbedder
from promptembed.errors import (
    CacheError,
    ConfigError,
    InputError,
    MissingExtraError,
    ModelLoadError,
    PromptEmbedError,
    PromptError,
    UnsafeModelError,
)

__version__ = "0.1.0"

__all__ = [
    "CacheError",
    "ConfigError",
    "InputError",
    "MissingExtraError",
    "ModelLoadError",
    "PromptEmbedError",
    "PromptEmbedder",
    "PromptError",
    "UnsafeModelError",
    "__version__",
]
