"""``promptembed info [MODEL]``: a model's resolved prompts, dimension, device and weight dtype."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_command"]


def _info(args: argparse.Namespace) -> int:
    from promptembed._loading import cpu_native_bf16
    from promptembed.embedder import PromptEmbedder

    with PromptEmbedder(
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        truncate_dim=args.truncate_dim,
        trust_remote_code=args.trust_remote_code,
    ) as emb:
        info = {
            "model": emb.model_source,
            "dimension": emb.dimension,
            "model_dimension": emb.model_dimension,
            "max_seq_length": emb.max_seq_length,
            "device": emb.device,
            "dtype": emb.dtype,
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


class _OldPrecisionFlag(argparse.Action):
    """``--precision``, the old name of ``--dtype``: a usage error that names the new flag."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: Any = None) -> None:
        parser.error(f"--precision {values} is now --dtype {values} (the model's weight dtype)")


def add_command(sub: Any) -> None:  # argparse's _SubParsersAction is private
    """Register ``info`` on the ``promptembed`` parser."""
    info = sub.add_parser("info", help="show a model's resolved prompts, dimension, device and weight dtype")
    info.add_argument("model", nargs="?", default=None, help="model folder or hub id (default: bundled MiniLM)")
    info.add_argument("--device", default="auto")
    info.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16", "int8"])
    info.add_argument("--precision", action=_OldPrecisionFlag, help=argparse.SUPPRESS)
    info.add_argument("--truncate-dim", type=int, default=None)
    info.add_argument("--trust-remote-code", action="store_true", help="run code shipped with a hub model")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_info)
