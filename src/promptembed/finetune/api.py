"""``finetune()``: documents in, an evaluated model with its prompts out, saved atomically."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from promptembed import _loading
from promptembed.errors import ConfigError
from promptembed.finetune.chunking import Chunk, chunk_documents
from promptembed.finetune.distributed import is_main_process, share_outcome, world_size
from promptembed.finetune.documents import load_documents
from promptembed.finetune.evaluate import RetrievalMetrics, evaluate_retrieval
from promptembed.finetune.pairs import DEFAULT_STRATEGIES, generate_pairs
from promptembed.finetune.report import write_reports
from promptembed.finetune.supervision import load_supervision
from promptembed.finetune.train import detect_matryoshka_dims, train_model
from promptembed.prompts import resolve_role_prompt

__all__ = ["FinetuneResult", "finetune", "load_eval_queries"]

logger = logging.getLogger("promptembed")


class FinetuneWorseWarning(UserWarning):
    """The finetuned model scored below the base model."""


@dataclass
class FinetuneResult:
    """What a finetune produced: where it is, how it compares with the base model, and what was skipped."""

    output: Path
    evaluations: dict[str, dict[str, RetrievalMetrics]]
    improved: bool
    train_pairs: int
    skipped: list[dict[str, str]] = field(default_factory=list)
    report_md: Path | None = None
    plot: Path | None = None

    @property
    def verdict(self) -> str:
        """One line: improved or not, on which evaluation."""
        name = _headline(self.evaluations)
        ev = self.evaluations[name]
        delta = ev["finetuned"].ndcg_at_10 - ev["base"].ndcg_at_10
        if self.improved:
            return f"Finetuned model improves nDCG@10 on {name} by {delta:+.4f}."
        return (
            f"WARNING: the finetuned model is NOT better than the base on {name} (nDCG@10 {delta:+.4f}); keep the base."
        )


def _headline(evaluations: dict[str, Any]) -> str:
    return "eval_queries" if "eval_queries" in evaluations else next(iter(evaluations))


def load_eval_queries(path: str | Path) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    """Read real questions with their gold passages (JSONL/CSV columns ``query`` and ``positive``).

    Returns ``(queries, corpus, relevant)``; the corpus is every distinct gold passage.
    """
    sup = load_supervision(path)
    if sup.kind != "pairs":
        raise ConfigError(f"{path}: eval queries need columns query,positive (got a {sup.kind} file)")
    corpus_ids: dict[str, str] = {}
    queries: dict[str, str] = {}
    relevant: dict[str, set[str]] = {}
    for i, row in enumerate(sup.rows):
        pid = corpus_ids.setdefault(row["positive"], f"p{len(corpus_ids)}")
        queries[f"q{i}"] = row["anchor"]
        relevant[f"q{i}"] = {pid}
    return queries, {v: k for k, v in corpus_ids.items()}, relevant


def _preflight(output: Path, overwrite: bool, base_source: str) -> None:
    parent = output.parent
    if output.exists() and not overwrite:
        raise ConfigError(f"Output folder {output} already exists; pass overwrite=True (--overwrite) or another path")
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)  # several ranks may create it at once
        except OSError as exc:
            raise ConfigError(f"Cannot create the output's parent folder {parent}: {exc}") from exc
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"Output folder's parent {parent} is not writable; choose another --output")
    size = (
        sum(p.stat().st_size for p in Path(base_source).rglob("*") if p.is_file()) if Path(base_source).is_dir() else 0
    )
    free = shutil.disk_usage(parent).free
    if size and free < 4 * size:
        raise ConfigError(
            f"Only {free / 2**20:.0f} MB free next to {output}; finetuning this {size / 2**20:.0f} MB model needs "
            f"about {4 * size / 2**20:.0f} MB (checkpoints + the saved model). Free space or choose another --output"
        )


def _split(chunks: list[Chunk], heldout_fraction: float, seed: int) -> tuple[list[Chunk], list[Chunk]]:
    if len(chunks) < 5 or heldout_fraction <= 0:
        return chunks, []
    order = list(range(len(chunks)))
    random.Random(seed).shuffle(order)
    n_held = max(1, round(len(chunks) * heldout_fraction))
    held = set(order[:n_held])
    return [c for i, c in enumerate(chunks) if i not in held], [c for i, c in enumerate(chunks) if i in held]


def finetune(
    docs: Sequence[str | Path] = (),
    *,
    output: str | Path,
    base: str | Path | None = None,
    eval_queries: str | Path | None = None,
    supervision: str | Path | None = None,
    llm: Any = None,
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    max_pairs_per_chunk: int = 3,
    heldout_fraction: float = 0.1,
    epochs: float = 1.0,
    batch_size: int = 32,
    learning_rate: float = 2e-5,
    loss: Literal["auto", "mnrl", "cached_mnrl", "cosent"] = "auto",
    hard_negatives: bool = False,
    max_steps: int | None = None,
    save_steps: int = 50,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    resume: bool = True,
    progress: bool = True,
) -> FinetuneResult:
    """Finetune a sentence-transformers model on your documents (and/or your own supervision file).

    Chunks are split into training and held-out chunks *before* any pair is generated, so no held-out text is
    ever trained on. Both the base and the finetuned model are evaluated on held-out pseudo-queries (the whole
    corpus as distractors) and on ``eval_queries`` when given. The model, a model card, report.json, report.md
    and before_after.png are written to a temporary folder next to ``output`` and renamed into place at the end,
    so a crash never leaves a half-written ``output``; checkpoints in ``.<name>.work`` let a rerun resume.

    Args:
        docs: Files and folders of .txt/.md/.rst/.html/.pdf.
        output: Folder to create for the finetuned model.
        base: Base model folder or hub id (default: the bundled all-MiniLM-L6-v2).
        eval_queries: CSV/JSONL of real questions with their gold passages (columns ``query``, ``positive``).
        supervision: Your own pairs/triplets/scored pairs (see :mod:`promptembed.finetune.supervision`).
        llm: LangChain chat model or callable for LLM-written queries (adds the ``"llm"`` strategy).
        strategies: Pair strategies (see :mod:`promptembed.finetune.pairs`).
        max_pairs_per_chunk: Cap of generated pairs per chunk.
        heldout_fraction: Share of chunks kept out of training for evaluation.
        epochs: Training epochs.
        batch_size: Training batch size (in-batch negatives for MNRL).
        learning_rate: Peak learning rate.
        loss: ``"auto"`` (MNRL for pairs/triplets, CoSENT for scored pairs), or one explicitly.
        hard_negatives: Mine one hard negative per pair with sentence-transformers' ``mine_hard_negatives``.
        max_steps: Stop after this many optimizer steps (overrides ``epochs``).
        save_steps: Checkpoint every this many steps.
        seed: Seed for the split, pair generation and training.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        overwrite: Replace an existing ``output``.
        resume: Resume from the newest checkpoint of an interrupted run with the same output.
        progress: Progress bars.

    Raises:
        ConfigError: Bad output location, no usable documents or supervision, too little disk space.
    """
    from sentence_transformers import SentenceTransformer

    started = time.time()
    output = Path(output).resolve()
    source, is_local = _loading.resolve_source(base)
    if is_local:
        _loading.check_weights_safe(source, allow_pickle=False)
    _preflight(output, overwrite, source)
    work_dir = output.parent / f".{output.name}.work"

    loaded = load_documents(list(docs), progress=progress) if docs else None
    skipped = [{"path": s.path, "reason": s.reason} for s in (loaded.skipped if loaded else [])]
    for item in skipped:
        logger.warning("skipped %s: %s", item["path"], item["reason"])
    if not (loaded and loaded.documents) and supervision is None:
        detail = f" (skipped: {', '.join(s['path'] + ' - ' + s['reason'] for s in skipped[:5])})" if skipped else ""
        raise ConfigError(
            f"No readable documents in {[str(d) for d in docs]}{detail}; give .txt/.md/.rst/.html/.pdf files"
        )

    model = SentenceTransformer(source, device=_loading.pick_device(device), local_files_only=is_local)
    prompts = dict(model.prompts)
    max_len = int(model.max_seq_length or 256)
    doc_prompt_tokens = len(
        model.tokenizer(resolve_role_prompt(prompts, "document"), add_special_tokens=False)["input_ids"]
    )
    budget = max(16, max_len - doc_prompt_tokens - 4)
    chunks = (
        chunk_documents(loaded.documents, tokenizer=model.tokenizer, max_tokens=budget, progress=progress)
        if loaded
        else []
    )
    unique: dict[str, Chunk] = {}
    for chunk in chunks:  # identical passages would sit on both sides of the split
        unique.setdefault(" ".join(chunk.text.split()), chunk)
    chunks = list(unique.values())
    train_chunks, held_chunks = _split(chunks, heldout_fraction, seed)

    rows: list[dict[str, Any]] = []
    origins: list[dict[str, str]] = []
    pair_stats: dict[str, Any] = {}
    kind = "pairs"
    if train_chunks:
        generated = generate_pairs(
            train_chunks,
            strategies=[*strategies, "llm"] if llm is not None and "llm" not in strategies else strategies,
            max_per_chunk=max_pairs_per_chunk,
            llm=llm,
            seed=seed,
            progress=progress,
        )
        pair_stats = generated.stats
        rows = [{"anchor": p.query, "positive": p.positive} for p in generated.pairs]
        origins = [{"chunk_id": p.chunk_id, "source": p.source} for p in generated.pairs]
    if supervision is not None:
        sup = load_supervision(supervision)
        if sup.kind == "scored" and rows:
            raise ConfigError(
                "Scored pairs (text1,text2,score) cannot be mixed with generated pairs; pass docs=() with them"
            )
        kind = "scored" if sup.kind == "scored" else ("triplets" if sup.kind == "triplets" else "pairs")
        rows = rows + sup.rows if kind != "triplets" else sup.rows
    if len(rows) < 2:
        raise ConfigError(
            f"Only {len(rows)} training pairs could be made; add more documents, or pass a supervision file of pairs"
        )
    if hard_negatives and kind == "pairs":
        from datasets import Dataset
        from sentence_transformers.util import mine_hard_negatives

        mined = mine_hard_negatives(
            Dataset.from_list(rows),
            model,
            num_negatives=1,
            range_min=5,
            range_max=50,
            output_format="triplet",
            use_faiss=False,
            verbose=progress,
        )
        rows, kind = [dict(r) for r in mined], "triplets"
    chosen_loss = ("cosent" if kind == "scored" else "mnrl") if loss == "auto" else loss

    evals: dict[str, tuple[dict[str, str], dict[str, str], dict[str, set[str]]]] = {}
    if held_chunks:
        held_pairs = generate_pairs(
            held_chunks, strategies=strategies, corpus=chunks, max_per_chunk=1, seed=seed + 1, progress=False
        ).pairs
        if held_pairs:
            evals["heldout_pseudo_queries"] = (
                {f"h{i}": p.query for i, p in enumerate(held_pairs)},
                {c.id: c.text for c in chunks},
                {f"h{i}": {p.chunk_id} for i, p in enumerate(held_pairs)},
            )
    if eval_queries is not None:
        evals["eval_queries"] = load_eval_queries(eval_queries)
    if not evals:
        raise ConfigError("Nothing to evaluate on: give more documents (for held-out chunks) or eval_queries=")
    main = is_main_process()  # under torchrun / accelerate launch only rank 0 evaluates, reports and saves
    before = {name: evaluate_retrieval(model, *ev, name=name, progress=progress) for name, ev in evals.items() if main}

    dimension = int(model.get_embedding_dimension() or 0)
    dims = detect_matryoshka_dims(source if is_local else None, dimension)
    work_dir.mkdir(exist_ok=True)
    if main:
        (work_dir / "run.json").write_text(json.dumps({"base": source, "rows": len(rows), "seed": seed}))
    train_metrics = train_model(
        model, rows, loss=chosen_loss, work_dir=work_dir, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, seed=seed, matryoshka_dims=dims, max_steps=max_steps, save_steps=save_steps,
        resume=resume, progress=progress,
    )  # fmt: skip
    model.prompts = prompts  # the trainer must not change the prompts the model was trained with
    if not main:
        return _result_from_rank0(output, skipped)
    after = {name: evaluate_retrieval(model, *ev, name=name, progress=progress) for name, ev in evals.items()}
    evaluations = {name: {"base": before[name], "finetuned": after[name]} for name in evals}
    head = _headline(evaluations)
    improved = evaluations[head]["finetuned"].ndcg_at_10 > evaluations[head]["base"].ndcg_at_10

    tmp = output.parent / f".{output.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save(str(tmp))
        _write_card(tmp, source, dims, evaluations, len(rows), chosen_loss)
        result = FinetuneResult(
            output=output, evaluations=evaluations, improved=improved, train_pairs=len(rows), skipped=skipped
        )
        report = {
            "output_name": output.name,
            "base_model": source,
            "verdict": result.verdict,
            "improved": improved,
            "evaluations": {n: {k: m.to_dict() for k, m in ev.items()} for n, ev in evaluations.items()},
            "data": {
                "documents": len(loaded.documents) if loaded else 0,
                "skipped": skipped,
                "chunks": len(chunks),
                "train_chunks": len(train_chunks),
                "heldout_chunks": len(held_chunks),
                "train_pairs": len(rows),
                "pair_stats": pair_stats,
            },
            "training": {"loss": chosen_loss, "matryoshka_dims": dims, "epochs": epochs, "batch_size": batch_size,
                         "learning_rate": learning_rate, "seed": seed, "metrics": train_metrics,
                         "processes": world_size()},
            "prompts": prompts,
            "seconds": round(time.time() - started, 1),
        }  # fmt: skip
        write_reports(tmp, report)
        with (tmp / "train_pairs.jsonl").open("w", encoding="utf-8") as f:
            for i, row in enumerate(rows):
                origin = origins[i] if i < len(origins) and kind != "triplets" else {"source": "supervision"}
                f.write(json.dumps({**row, **origin}, ensure_ascii=False) + "\n")
        with (tmp / "heldout_chunks.jsonl").open("w", encoding="utf-8") as f:
            for c in held_chunks:
                f.write(json.dumps({"id": c.id, "doc_path": c.doc_path, "text": c.text}, ensure_ascii=False) + "\n")
        if output.exists():
            old = output.parent / f".{output.name}.old-{os.getpid()}"
            output.rename(old)
            tmp.rename(output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(output)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        share_outcome(f"rank 0 failed to save the model: {exc!r}")  # the other ranks raise it too
        raise
    share_outcome(None)  # the other ranks now read the saved report
    shutil.rmtree(work_dir, ignore_errors=True)
    result.report_md, result.plot = output / "report.md", output / "before_after.png"
    if not improved:
        warnings.warn(result.verdict, FinetuneWorseWarning, stacklevel=2)
        logger.warning(result.verdict)
    return result


def _write_card(
    folder: Path, base: str, dims: list[int] | None, evaluations: dict[str, Any], n_pairs: int, loss: str
) -> None:
    lines = [
        "---",
        "library_name: sentence-transformers",
        "tags: [sentence-transformers, promptembed, finetuned]",
        "---",
        "",
        f"# {folder.name.split('.tmp-')[0].lstrip('.')}",
        "",
        f"Finetuned from `{base}` with promptembed on {n_pairs} pairs (loss: {loss}).",
        "The model's query/document prompts are saved in config_sentence_transformers.json and applied by promptembed.",
        "",
    ]
    if dims:
        lines += [f"Matryoshka: trained with MatryoshkaLoss, matryoshka_dims: {dims}", ""]
    for name, ev in evaluations.items():
        b, t = ev["base"], ev["finetuned"]
        lines.append(
            f"- {name}: nDCG@10 {b.ndcg_at_10:.4f} -> {t.ndcg_at_10:.4f}, MRR@10 {b.mrr_at_10:.4f} -> {t.mrr_at_10:.4f}"
        )
    (folder / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _result_from_rank0(output: Path, skipped: list[dict[str, str]]) -> FinetuneResult:
    """On a rank other than 0: wait for rank 0's save, then return the same result, read from its report."""
    error = share_outcome(None)
    if error is not None:
        raise ConfigError(error)
    report = json.loads((output / "report.json").read_text(encoding="utf-8"))
    evaluations = {
        name: {side: RetrievalMetrics(**metrics) for side, metrics in ev.items()}
        for name, ev in report["evaluations"].items()
    }
    return FinetuneResult(
        output=output,
        evaluations=evaluations,
        improved=bool(report["improved"]),
        train_pairs=int(report["data"]["train_pairs"]),
        skipped=skipped,
        report_md=output / "report.md",
        plot=output / "before_after.png",
    )
