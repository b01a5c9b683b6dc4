"""Command line: ``promptembed info [MODEL]`` (and the finetune commands, with the [train] extra)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _info(args: argparse.Namespace) -> int:
    from promptembed._loading import cpu_native_bf16
    from promptembed.embedder import PromptEmbedder

    with PromptEmbedder(
        model=args.model,
        device=args.device,
        precision=args.precision,
        truncate_dim=args.truncate_dim,
        trust_remote_code=args.trust_remote_code,
    ) as emb:
        info = {
            "model": emb.model_source,
            "dimension": emb.dimension,
            "model_dimension": emb.model_dimension,
            "max_seq_length": emb.max_seq_length,
            "device": emb.device,
            "precision": emb.precision,
            "cpu_fast_paths": ["int8"] + ([f"bfloat16 ({native})"] if (native := cpu_native_bf16()) else []),
            "query_prompt": emb.query_prompt,
            "document_prompt": emb.document_prompt,
            "title_slot": emb.has_title_slot,
            "prompts": emb.prompts,
        }
    if args.json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return 0
    width = max(len(k) for k in info if k != "prompts")
    for key, value in info.items():
        if isinstance(value, list):
            print(f"{key:<{width}}  {', '.join(value)}")
        elif key != "prompts":
            print(
                f"{key:<{width}}  {value!r}"
                if isinstance(value, str) and "prompt" in key
                else f"{key:<{width}}  {value}"
            )
    print("prompts:" if info["prompts"] else "prompts: (none: texts are embedded as is)")
    for name, text in emb.prompts.items():
        print(f"  {name:<24} {text!r}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``promptembed`` argument parser."""
    parser = argparse.ArgumentParser(prog="promptembed", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="show a model's resolved prompts, dimension, device and precision")
    info.add_argument("model", nargs="?", default=None, help="model folder or hub id (default: bundled MiniLM)")
    info.add_argument("--device", default="auto")
    info.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16", "float16", "int8"])
    info.add_argument("--truncate-dim", type=int, default=None)
    info.add_argument("--trust-remote-code", action="store_true", help="run code shipped with a hub model")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_info)

    from promptembed.finetune_cli import add_commands

    add_commands(sub)
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
