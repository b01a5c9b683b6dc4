"""CLI commands of the finetune helper (``finetune``, ``pairs``, ``eval``); filled by the finetune work."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:  # argparse's _SubParsersAction is private
    """Register the finetune subcommands on the ``promptembed`` parser."""
    del sub


def _unused(_: argparse.Namespace) -> int:  # pragma: no cover
    return 0
