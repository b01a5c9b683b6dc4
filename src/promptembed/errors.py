"""The one exception tree of promptembed.

Every error promptembed raises on purpose derives from :class:`PromptEmbedError`, and also from the
builtin a caller would already catch for that kind of problem::

    PromptEmbedError
    ├── PromptError            (ValueError)   unknown prompt name, prompt + prompt_name, bad title use
    ├── ConfigError            (ValueError)   bad constructor option: device, dtype, precision, truncate_dim, ...
    ├── InputError             (TypeError)    texts that are not a list of str, with the bad position
    ├── ModelLoadError         (OSError)      a model that cannot be found or loaded; says what was tried
    │   └── UnsafeModelError                  pickle-only weights without allow_pickle=True
    ├── CacheError             (OSError)      a vector cache that cannot be opened or written
    └── MissingExtraError      (ImportError)  an optional feature whose extra is not installed
"""

from __future__ import annotations

__all__ = [
    "CacheError",
    "ConfigError",
    "InputError",
    "MissingExtraError",
    "ModelLoadError",
    "PromptEmbedError",
    "PromptError",
    "UnsafeModelError",
]


class PromptEmbedError(Exception):
    """Root of every error promptembed raises on purpose."""


class PromptError(PromptEmbedError, ValueError):
    """A prompt name, prompt text or title that does not fit the model's prompt table."""


class ConfigError(PromptEmbedError, ValueError):
    """An option that is invalid for this model or machine (device, dtype, precision, truncate_dim, ...)."""


class InputError(PromptEmbedError, TypeError):
    """Texts that are not a list of ``str``; the message names the first bad position and its type."""


class ModelLoadError(PromptEmbedError, OSError):
    """A model that cannot be found or loaded; the message lists what was tried."""


class UnsafeModelError(ModelLoadError):
    """A model whose weights exist only as pickle files, loaded without ``allow_pickle=True``."""


class CacheError(PromptEmbedError, OSError):
    """A vector cache that cannot be opened, read or written."""


class MissingExtraError(PromptEmbedError, ImportError):
    """An optional feature whose extra is not installed; the message gives the pip command."""
