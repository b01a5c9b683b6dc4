"""Importing an optional dependency, with an error that tells a missing package from a broken one."""

from __future__ import annotations

import importlib
from types import ModuleType

from promptembed.errors import MissingExtraError

__all__ = ["require_module"]


def require_module(name: str, *, needed_by: str, install: str) -> ModuleType:
    """Import ``name``, or raise :class:`MissingExtraError` saying whether it is missing or fails to import.

    Args:
        name: The module to import (``"datasets"``, ``"ray.data"``).
        needed_by: What needs it, for the message (``"promptembed.finetune needs the [train] extra"``).
        install: The command that installs it (``"pip install 'promptembed[train]'"``).

    Raises:
        MissingExtraError: ``name`` (or the package it is in) is not installed; or it is installed but importing it
            fails (a broken install, or versions that do not fit together), with that error's own text.
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        top = exc.name if isinstance(exc, ModuleNotFoundError) else None
        missing = top is not None and (name == top or name.startswith(top + "."))
        if missing:
            message = f"{needed_by} (missing: {name}); install it with: {install}"
        else:  # installed, but it (or something it imports) fails: "missing" would send the user the wrong way
            message = (
                f"{needed_by}, and {name} is installed but fails to import ({type(exc).__name__}: {exc}); versions "
                "that do not fit together are the usual cause: run `pip check`, then reinstall the package it names "
                "(pip install --upgrade --force-reinstall PACKAGE)"
            )
        raise MissingExtraError(message) from exc
