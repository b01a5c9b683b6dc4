"""Command line: ``promptembed info [MODEL]`` (and the finetune commands, with the [train] extra).

One module per command: :mod:`promptembed.cli.info`, :mod:`promptembed.cli.finetune` (``finetune``, ``pairs``,
``eval``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``promptembed`` argument parser."""
    from promptembed.cli import finetune, info

    parser = argparse.ArgumentParser(prog="promptembed", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    info.add_command(sub)
    finetune.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code. Errors of promptembed print one line, exit code 2."""
    from promptembed.errors import PromptEmbedError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except PromptEmbedError as exc:
        print(f"promptembed: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
