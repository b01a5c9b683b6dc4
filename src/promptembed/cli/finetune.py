"""CLI commands of the finetune helper: ``finetune``, ``pairs`` and ``eval`` (need the [train] extra)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_commands"]


def _finetune(args: argparse.Namespace) -> int:
    from promptembed.finetune import finetune

    llm = _load_llm(args.llm) if args.llm else None
    options = {
        name: value
        for name, value in (
            ("epochs", args.epochs), ("batch_size", args.batch_size), ("learning_rate", args.learning_rate),
            ("lr_scheduler", args.lr_scheduler), ("hard_negatives", args.hard_negatives),
            ("filter", args.filter), ("filter_top_k", args.filter_top_k), ("interpolate", args.interpolate),
            ("max_pairs_per_chunk", args.max_pairs_per_chunk), ("max_train_pairs", args.max_train_pairs),
            ("max_steps", args.max_steps), ("teacher", args.teacher), ("eval_corpus", args.eval_corpus),
            ("train_dtype", args.train_dtype), ("llm_concurrency", args.llm_concurrency),
        )
        if value is not None
    }  # fmt: skip
    if args.strategies:
        options["strategies"] = args.strategies.split(",")
    result = finetune(
        args.docs,
        output=args.output,
        base=args.base,
        eval_queries=args.eval_queries,
        supervision=args.pairs_file,
        llm=llm,
        seed=args.seed,
        device=args.device,
        overwrite=args.overwrite,
        **options,
    )
    from promptembed.finetune.distributed import is_main_process, world_size

    if world_size() > 1:
        _leave_process_group()
    if not is_main_process():  # under torchrun / accelerate launch, rank 0 prints the summary
        return 0 if result.improved else 1
    for name, ev in result.evaluations.items():
        b, t = ev["base"], ev["finetuned"]
        print(f"{name}: {b.n_queries} queries, {b.n_corpus} passages")
        for label, key in (("nDCG@10", "ndcg_at_10"), ("MRR@10", "mrr_at_10"), ("recall@10", "recall_at_10")):
            before, after = getattr(b, key), getattr(t, key)
            teacher = f"  teacher {getattr(ev['teacher'], key):.4f}" if "teacher" in ev else ""
            print(f"  {label:<10} base {before:.4f}  finetuned {after:.4f}  ({after - before:+.4f}){teacher}")
    for item in result.skipped:
        print(f"skipped {item['path']}: {item['reason']}")
    wall = {k: v for k, v in result.timings.items() if not k.startswith("cpu_")}
    print("time by stage (s): " + ", ".join(f"{k} {v:.0f}" for k, v in wall.items()))
    print(result.verdict)
    print(f"model: {result.output}\nreport: {result.report_md}\nplot: {result.plot}")
    return 0 if result.improved else 1


def _pairs(args: argparse.Namespace) -> int:
    from sentence_transformers import SentenceTransformer

    from promptembed import _loading
    from promptembed.errors import ConfigError
    from promptembed.finetune import chunk_documents, generate_pairs, load_documents, save_pairs_jsonl
    from promptembed.finetune._steps import chunk_budget
    from promptembed.finetune.pairs import check_strategies

    llm = _load_llm(args.llm) if args.llm else None
    strategies = args.strategies.split(",")
    if llm is not None and "llm" not in strategies:
        strategies.append("llm")  # as finetune(llm=...) does
    try:  # before the model is loaded
        check_strategies(strategies, llm)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    source, is_local = _loading.resolve_source(args.base)
    model = SentenceTransformer(source, device="cpu", local_files_only=is_local)
    loaded = load_documents(args.docs)
    for item in loaded.skipped:
        print(f"skipped {item.path}: {item.reason}")
    if not loaded.documents:
        raise ConfigError(f"No readable documents in {args.docs}; give .txt/.md/.rst/.html/.pdf files")
    chunks = chunk_documents(loaded.documents, tokenizer=model.tokenizer, max_tokens=chunk_budget(model))
    result = generate_pairs(
        chunks, strategies=strategies, llm=llm, llm_concurrency=args.llm_concurrency, seed=args.seed
    )
    save_pairs_jsonl(result.pairs, args.output)
    print(json.dumps(result.stats, indent=2))
    print(f"{len(result.pairs)} pairs from {len(chunks)} chunks written to {args.output}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from sentence_transformers import SentenceTransformer

    from promptembed import _loading
    from promptembed.finetune.api import load_eval_queries
    from promptembed.finetune.evaluate import evaluate_retrieval

    queries, corpus, relevant = load_eval_queries(args.queries, args.corpus)  # distractors checked as finetune's
    source, is_local = _loading.resolve_source(args.model)
    model = SentenceTransformer(source, device=_loading.pick_device(args.device), local_files_only=is_local)
    m = evaluate_retrieval(model, queries, corpus, relevant, name="eval", progress=True)
    print(json.dumps(m.to_dict(), indent=2))
    return 0


def _leave_process_group() -> None:
    """Under a launcher, every rank leaves the process group together before exiting.

    Otherwise a rank whose peer already exited can abort at interpreter exit ("terminate called without an active
    exception", seen once in the two-process test) although its work is done.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _epochs(value: str) -> float | str:
    """``--epochs``: a number, or ``auto``."""
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number or 'auto'") from None


def _at_least_one(value: str) -> int:
    """``--llm-concurrency``: a whole number, at least 1."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of at least 1 (1: one call at a time)")
    return number


def _load_llm(spec: str) -> Any:
    """``module:attribute`` naming a LangChain chat model instance or a callable ``str -> list[str]``."""
    import importlib

    module, _, attr = spec.partition(":")
    if not attr:
        print(f"promptembed: error: --llm must be 'module:attribute' (a chat model or callable), got {spec!r}",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(2)  # a usage error
    from promptembed.errors import ConfigError

    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"--llm {spec!r}: {type(exc).__name__}: {exc}; check the module and attribute names"
        ) from None


def _add_llm_options(parser: argparse.ArgumentParser) -> None:
    """``--llm`` and ``--llm-concurrency``, shared by ``finetune`` and ``pairs``."""
    parser.add_argument("--llm", default=None, help="module:attribute of a LangChain chat model or callable")
    parser.add_argument(
        "--llm-concurrency", type=_at_least_one, default=None,
        help="LLM calls in flight at once (default: 8 for a LangChain model, 1 for a callable, which may not be "
        "thread-safe)",
    )  # fmt: skip


def add_commands(sub: Any) -> None:  # argparse's _SubParsersAction is private
    """Register ``finetune``, ``pairs`` and ``eval`` on the ``promptembed`` parser."""
    ft = sub.add_parser("finetune", help="finetune a model on your documents, evaluate before/after, save")
    ft.add_argument("docs", nargs="*", help="files and folders of .txt/.md/.rst/.html/.pdf")
    ft.add_argument("--output", "-o", required=True, help="folder to create for the finetuned model")
    ft.add_argument("--base", default=None, help="base model folder or hub id (default: bundled all-MiniLM-L6-v2)")
    ft.add_argument("--eval-queries", default=None, help="CSV/JSONL of real questions: columns query,positive")
    ft.add_argument("--pairs-file", default=None, help="your own pairs/triplets/scored pairs (CSV or JSONL)")
    _add_llm_options(ft)
    ft.add_argument(
        "--eval-corpus", default=None, help="JSONL of extra distractor passages (column text); needs --eval-queries"
    )
    ft.add_argument("--teacher", default=None, help="bi-encoder or CrossEncoder folder/hub id to learn margins from")
    ft.add_argument("--strategies", default=None, help="pair strategies, comma-separated (default: sentence,keyphrase)")
    ft.add_argument(
        "--epochs", type=_epochs, default=None,
        help="training epochs (default auto: 2 when the training set has under 1500 rows, else 1)",
    )  # fmt: skip
    ft.add_argument("--batch-size", type=int, default=None)
    ft.add_argument("--learning-rate", type=float, default=None)
    ft.add_argument(
        "--lr-scheduler", default=None,
        help="linear (default), cosine, cosine_with_restarts, polynomial, constant, constant_with_warmup, inverse_sqrt",
    )  # fmt: skip
    ft.add_argument("--hard-negatives", type=int, nargs="?", const=1, default=None, help="mined negatives per pair")
    ft.add_argument("--filter", choices=("bm25", "model", "both", "none"), default=None, help="pair filter")
    ft.add_argument("--filter-top-k", type=int, default=None, help="a pair's chunk must rank within this top-k")
    ft.add_argument("--interpolate", type=float, default=None, help="WiSE-FT weight of the finetuned model (0-1)")
    ft.add_argument("--max-pairs-per-chunk", type=int, default=None)
    ft.add_argument("--max-train-pairs", type=int, default=None, help="cap of training pairs")
    ft.add_argument("--max-steps", type=int, default=None)
    ft.add_argument(
        "--train-dtype", choices=("auto", "bfloat16", "float32"), default=None,
        help="training precision (default auto: bf16 on a CUDA GPU or a CPU with AMX, float32 elsewhere; bfloat16 also"
        " on CPUs with avx512_bf16)",
    )  # fmt: skip
    ft.add_argument("--seed", type=int, default=0)
    ft.add_argument("--device", default="auto")
    ft.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    ft.set_defaults(func=_finetune)

    pairs = sub.add_parser("pairs", help="generate query/passage pairs from documents (to inspect or edit)")
    pairs.add_argument("docs", nargs="+")
    pairs.add_argument("--output", "-o", required=True, help="pairs.jsonl to write")
    pairs.add_argument("--base", default=None, help="model whose tokenizer sets the chunk size")
    pairs.add_argument("--strategies", default="sentence,keyphrase")
    _add_llm_options(pairs)
    pairs.add_argument("--seed", type=int, default=0)
    pairs.set_defaults(func=_pairs)

    ev = sub.add_parser("eval", help="retrieval metrics of a model on your questions")
    ev.add_argument("model")
    ev.add_argument("--queries", required=True, help="CSV/JSONL with columns query,positive")
    ev.add_argument("--corpus", default=None, help="JSONL of extra distractor passages (column text)")
    ev.add_argument("--device", default="auto")
    ev.set_defaults(func=_eval)
