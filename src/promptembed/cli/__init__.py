"""Command line of promptembed.

Commands:
  info      a model's resolved prompts, dimension, device and dtype (--json for scripts)
  embed     embed a JSONL/Parquet/CSV corpus into Parquet parts with a manifest; resumable; --ray for a cluster
  finetune  finetune a model on your documents (needs the [train] extra); also pairs and eval

Exit codes: 0 success, 1 the command failed (the error is printed on stderr), 2 a usage error, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``promptembed`` argument parser."""
    from promptembed import __version__
    from promptembed.cli import embed, finetune, info

    parser = argparse.ArgumentParser(
        prog="promptembed", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"promptembed {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    info.add_command(sub)
    embed.add_command(sub)
    finetune.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code.

    0 success, 1 a failed command (one line on stderr), 2 a usage error, 130 interrupted (Ctrl-C).
    """
    from promptembed.errors import PromptEmbedError

    args = build_parser().parse_args(argv)  # a usage error exits 2 here, argparse's convention
    try:
        return int(args.func(args))
    except PromptEmbedError as exc:
        print(f"promptembed: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: what was finished is kept (embed parts, finetune checkpoints)
        if os.environ.get("PROMPTEMBED_DEBUG"):
            raise
        hint = "; rerun the same command to resume" if args.command in ("embed", "finetune") else ""
        print(f"promptembed {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    except (OSError, ValueError) as exc:  # a missing, unreadable or malformed file or folder: one line, no traceback
        if os.environ.get("PROMPTEMBED_DEBUG"):
            raise
        print(f"promptembed: error: {type(exc).__name__}: {exc} (PROMPTEMBED_DEBUG=1 shows where)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
