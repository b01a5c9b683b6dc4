"""``finetune()``: documents in, an evaluated model with its prompts out, saved atomically."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from promptembed import _loading
from promptembed.errors import ConfigError
from promptembed.finetune._options import check_loss, check_options
from promptembed.finetune._steps import (
    BaseEncoder,
    cap_pairs,
    chunk_budget,
    load_eval_queries,
    preflight,
    split_chunks,
    stage,
    write_rows,
)
from promptembed.finetune._workdir import (
    publish,
    restore_interrupted_overwrite,
    saving_folder,
    start_or_resume,
    sweep_leftovers,
)
from promptembed.finetune.chunking import Chunk, chunk_documents
from promptembed.finetune.distributed import is_main_process, share_outcome, world_size
from promptembed.finetune.documents import load_documents
from promptembed.finetune.evaluate import RetrievalMetrics, evaluate_retrieval
from promptembed.finetune.heldout import KEYWORD_EVAL, SPECIALIZATION_LIMIT, evaluation_sets
from promptembed.finetune.negatives import add_negatives
from promptembed.finetune.pairs import DEFAULT_STRATEGIES, Pair, generate_pairs
from promptembed.finetune.report import build_report, peak_rss_mb, write_card, write_reports
from promptembed.finetune.result import FinetuneResult, FinetuneWorseWarning, headline, result_from_rank0
from promptembed.finetune.supervision import load_supervision
from promptembed.finetune.teacher import load_teacher
from promptembed.finetune.teacher_eval import evaluate_teacher
from promptembed.finetune.train import (
    auto_epochs,
    detect_matryoshka_dims,
    interpolate_weights,
    train_in_bf16,
    train_model,
)

__all__ = ["FinetuneResult", "FinetuneWorseWarning", "finetune", "load_eval_queries"]

logger = logging.getLogger("promptembed")


def finetune(
    docs: Sequence[str | Path] = (),
    *,
    output: str | Path,
    base: str | Path | None = None,
    eval_queries: str | Path | None = None,
    eval_corpus: str | Path | None = None,
    supervision: str | Path | None = None,
    llm: Any = None,
    llm_concurrency: int | None = None,
    teacher: Any = None,
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    max_pairs_per_chunk: int = 3,
    max_train_pairs: int | None = None,
    filter: Literal["bm25", "model", "both", "none"] = "bm25",
    filter_top_k: int = 10,
    heldout_fraction: float = 0.1,
    epochs: float | Literal["auto"] = "auto",
    batch_size: int = 32,
    learning_rate: float = 2e-5,
    lr_scheduler: str = "linear",
    warmup_ratio: float = 0.1,
    loss: Literal["auto", "mnrl", "cached_mnrl", "gist", "cosent"] = "auto",
    hard_negatives: int = 0,
    negative_margin: float = 0.05,
    interpolate: float = 1.0,
    train_dtype: Literal["auto", "bfloat16", "float32"] = "auto",
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
    ever trained on. Both the base and the finetuned model are evaluated on held-out pseudo-queries (one sentence
    of each held-out chunk, cut out of it, the whole corpus as distractors: a fixed generator, so the estimate
    does not reward the training templates) and on ``eval_queries`` when given. The model, a model card,
    report.json, report.md and before_after.png are written to a temporary folder next to ``output`` and renamed
    into place at the end, so a crash never leaves a half-written ``output``; checkpoints in ``.<name>.work`` let
    a rerun resume.

    Args:
        docs: Files and folders of .txt/.md/.rst/.html/.pdf.
        output: Folder to create for the finetuned model.
        base: Base model folder or hub id (default: the bundled all-MiniLM-L6-v2).
        eval_queries: CSV/JSONL of real questions with their gold passages (columns ``query``, ``positive``).
        eval_corpus: JSONL of extra distractor passages (column ``text``) for ``eval_queries``.
        supervision: Your own pairs/triplets/scored pairs (see :mod:`promptembed.finetune.supervision`).
        llm: LangChain chat model or callable for LLM-written queries (adds the ``"llm"`` strategy).
        llm_concurrency: LLM calls in flight at once: a LangChain model's ``max_concurrency``, or the threads
            that call a plain callable. ``None``: 8 for a LangChain model, 1 for a callable (it may not be
            thread-safe, as a local model is not); give a number for a thread-safe one.
        teacher: A stronger model (folder, hub id or instance of a sentence-transformers bi-encoder or
            ``CrossEncoder``): it scores (query, positive, mined negatives) and the student learns its margins
            with margin-MSE (GPL's recipe), keeping its own prompts; the teacher is evaluated too.
        strategies: A list of pair strategy names (see :mod:`promptembed.finetune.pairs`), e.g.
            ``["sentence", "keyphrase"]``; a single str is refused (it is not split at commas as the CLI's).
        max_pairs_per_chunk: Cap of generated pairs per chunk.
        max_train_pairs: Cap of training pairs (each chunk's first pair first), so large corpora train in bounded
            time; None: no cap.
        filter: Keep a generated pair only if its chunk is found for its query: ``"bm25"``, ``"model"`` (the base
            model, round-trip filtering), ``"both"`` or ``"none"``.
        filter_top_k: ... within the top ``filter_top_k`` chunks.
        heldout_fraction: Share of chunks kept out of training for evaluation, in [0, 1).
        epochs: Training epochs; ``"auto"``: two when the training set is small (under
            :data:`~promptembed.finetune.train.SMALL_TRAINING_SET` rows, 1500), else one (measured on two domains,
            ``benchmarks/FINETUNE.md``).
        batch_size: Training batch size (in-batch negatives for MNRL).
        learning_rate: Peak learning rate.
        lr_scheduler: A transformers schedule of :data:`~promptembed.finetune._options.LR_SCHEDULERS`
            (``"linear"``, ``"cosine"``, ``"constant_with_warmup"``, ...); the others need an evaluation strategy this
            helper does not set.
        warmup_ratio: Share of the steps spent warming up the learning rate, in [0, 1).
        loss: ``"auto"`` (MNRL for pairs/triplets, CoSENT for scored pairs, margin-MSE with a teacher), or one
            explicitly: ``"mnrl"``, ``"cached_mnrl"``, ``"gist"`` (GISTEmbed: MNRL that leaves out in-batch
            negatives a frozen copy of the base model scores above the positive), ``"cosent"``. (Cached) MNRL
            trains at similarity scale 30 (:data:`~promptembed.finetune.train.MNRL_SCALE`).
        hard_negatives: Negatives mined per pair with the base model (0: in-batch negatives only); never the
            pair's own chunk, never within ``negative_margin`` of the positive's score. With a teacher: 1 if 0.
        negative_margin: Relative margin protecting against false negatives, in [0, 1).
        interpolate: WiSE-FT: final weights ``interpolate * finetuned + (1 - interpolate) * base`` (1: no mixing).
        train_dtype: Training precision: ``"auto"`` (bf16 mixed precision on a CUDA GPU that supports it and on a
            CPU with AMX, float32 elsewhere), ``"bfloat16"`` (bf16 mixed precision, also on a CPU with only
            avx512_bf16), or ``"float32"``. Never float16 (Gemma-family models overflow in it).
        max_steps: Stop after this many optimizer steps (overrides ``epochs``).
        save_steps: Checkpoint every this many steps.
        seed: Seed for the split, pair generation and training.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        overwrite: Replace an existing ``output``.
        resume: Resume from the newest checkpoint of an interrupted run with the same output.
        progress: Progress bars.

    Raises:
        ConfigError: Bad output location, no usable documents or supervision, too little disk space, a bad option.
    """
    config = {k: v for k, v in locals().items() if k not in ("docs", "output", "llm", "progress", "overwrite")}
    docs = list(docs) if docs else []  # read once: an iterator is used up by the checks below
    from sentence_transformers import SentenceTransformer

    config["teacher"] = None if teacher is None else str(teacher if isinstance(teacher, str | Path) else type(teacher))
    config["llm"] = None if llm is None else type(llm).__name__
    pair_strategies, learning_rate = check_options(
        strategies=strategies, max_pairs_per_chunk=max_pairs_per_chunk, filter=filter, filter_top_k=filter_top_k,
        heldout_fraction=heldout_fraction, warmup_ratio=warmup_ratio, negative_margin=negative_margin,
        save_steps=save_steps,
        interpolate=interpolate, epochs=epochs, train_dtype=train_dtype, loss=loss, hard_negatives=hard_negatives,
        llm=llm, llm_concurrency=llm_concurrency, max_train_pairs=max_train_pairs,
        batch_size=batch_size, seed=seed, max_steps=max_steps, learning_rate=learning_rate, lr_scheduler=lr_scheduler,
        teacher=teacher,
    )  # fmt: skip
    started, cpu_started = time.time(), time.process_time()
    timings: dict[str, float] = {}
    output = Path(output).resolve()
    source, is_local = _loading.resolve_source(base)
    if is_local:
        _loading.check_weights_safe(source, allow_pickle=False)
    restore_interrupted_overwrite(output)
    sweep_leftovers(output)
    preflight(output, overwrite, source, docs=[d for d in docs if isinstance(d, str | Path)])
    work_dir = output.parent / f".{output.name}.work"
    if eval_corpus is not None and eval_queries is None:
        raise ConfigError(
            "eval_corpus= (--eval-corpus) holds distractors for eval_queries= (--eval-queries); give both, or neither"
        )
    # the user's files are read before any model is loaded: a wrong column fails now, not after pairs and mining
    real_questions = load_eval_queries(eval_queries, eval_corpus) if eval_queries is not None else None
    sup = load_supervision(supervision) if supervision is not None else None
    if sup is not None and sup.kind in ("scored", "triplets") and docs:
        what = "Scored pairs (text1,text2,score)" if sup.kind == "scored" else "Triplets (anchor,positive,negative)"
        raise ConfigError(
            f"{what} cannot be mixed with pairs generated from documents; pass docs=() with them, or a file of "
            "(anchor,positive) pairs to train beside the generated ones"
        )
    if sup is not None and teacher is not None:
        raise ConfigError("teacher= works with generated pairs only (not with a supervision file)")
    check_loss(loss, None if sup is None else sup.kind, teacher=teacher is not None)
    if sup is not None and hard_negatives:
        raise ConfigError(
            "hard_negatives= mines negatives for the pairs generated from documents, not for a supervision file; "
            "give (anchor,positive,negative) triplets in the file instead, or hard_negatives=0"
        )

    with stage(timings, "reading_chunking"):
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
        train_in_bf16(train_dtype, str(model.device))  # an emulated bf16 is refused before any pair is made
        prompts = dict(model.prompts)

        budget = chunk_budget(model)
        chunks = (
            chunk_documents(loaded.documents, tokenizer=model.tokenizer, max_tokens=budget, progress=progress)
            if loaded
            else []
        )
        chunked = {c.doc_path for c in chunks}
        for document in loaded.documents if loaded else []:  # headings only (a Markdown outline): read, no passage
            if document.path not in chunked:
                skipped.append({"path": document.path, "reason": "no text beyond its headings"})
                logger.warning("skipped %s: no text beyond its headings", document.path)
        unique: dict[str, Chunk] = {}
        for chunk in chunks:  # identical passages would sit on both sides of the split
            unique.setdefault(" ".join(chunk.text.split()), chunk)
        chunks = list(unique.values())
        train_chunks, held_chunks = split_chunks(chunks, heldout_fraction, seed)
    encoder = BaseEncoder(model)

    rows: list[dict[str, Any]] = []
    origins: list[dict[str, str]] = []
    pairs: list[Pair] = []
    pair_stats: dict[str, Any] = {}
    kind = "pairs"
    with stage(timings, "pairs"):
        if train_chunks:
            generated = generate_pairs(
                train_chunks,
                strategies=pair_strategies,
                max_per_chunk=max_pairs_per_chunk, filter=filter, top_k=filter_top_k, corpus=chunks,
                embedder=encoder, llm=llm, llm_concurrency=llm_concurrency, seed=seed, progress=progress,
            )  # fmt: skip
            pair_stats = generated.stats
            pairs = cap_pairs(generated.pairs, max_train_pairs)
            rows = [{"anchor": p.query, "positive": p.positive} for p in pairs]
            origins = [{"chunk_id": p.chunk_id, "source": p.source} for p in pairs]
        if sup is not None:
            kind = "scored" if sup.kind == "scored" else ("triplets" if sup.kind == "triplets" else "pairs")
            rows = rows + sup.rows if kind != "triplets" else sup.rows
            origins = (origins if kind != "triplets" else []) + [{"source": "supervision"}] * len(sup.rows)
            pairs = pairs if kind == "pairs" else []
        if len(rows) < 2:
            raise ConfigError(
                f"Only {len(rows)} training pairs could be made; add more documents, "
                "or pass a supervision file of pairs"
            )

    teacher_model = None
    n_negatives = max(int(hard_negatives), 1 if teacher is not None else 0)
    with stage(timings, "mining"):
        if teacher is not None:
            if kind != "pairs" or len(pairs) != len(rows):
                raise ConfigError("teacher= works with generated pairs only (not with a supervision file)")
            teacher_model = load_teacher(teacher, device=device)
        if n_negatives and kind == "pairs" and len(pairs) == len(rows):
            rows, origins, kind = add_negatives(
                rows, origins, pairs, train_chunks, encoder, num_negatives=n_negatives, margin=negative_margin,
                teacher=teacher_model, progress=progress,
            )  # fmt: skip
    chosen_loss = (
        ("cosent" if kind == "scored" else "margin_mse" if kind == "margin_mse" else "mnrl") if loss == "auto" else loss
    )  # check_loss has refused an explicit loss= that these rows cannot train (teacher margins, scores or not)

    corpus_vectors: dict[str, Any] = {}
    with stage(timings, "evaluation"):
        # guard_skipped: why the second guard could not run, when it could not
        evals, guard_skipped = evaluation_sets(held_chunks, chunks, seed=seed, real_questions=real_questions)
        if not evals:
            raise ConfigError(
                "Nothing to evaluate on: give more documents (for held-out chunks) or eval_queries= (--eval-queries)"
            )
        import torch

        main = is_main_process()  # under torchrun / accelerate launch only rank 0 evaluates, reports and saves
        for name, (_, corpus, _) in evals.items():
            if main:
                corpus_vectors[name] = torch.from_numpy(encoder.embed_documents(list(corpus.values())))
        before = {
            name: evaluate_retrieval(model, *ev, name=name, progress=progress, corpus_embeddings=corpus_vectors[name])
            for name, ev in evals.items()
            if main
        }
        keyword_base = before.get(KEYWORD_EVAL)
        if keyword_base is not None and keyword_base.ndcg_at_10 >= 1.0 and real_questions is None:
            guard_skipped = (
                f"the base model already ranks first the chunk of each of the {len(evals[KEYWORD_EVAL][0])} "
                "held-out keyword queries (nDCG@10 1.0), so there are no misses whose closing would show keyword "
                "matching (give eval_queries= / --eval-queries to check on real questions)"
            )
            logger.warning("keyword check skipped: %s", guard_skipped)
        teacher_scores = (
            {name: evaluate_teacher(teacher_model, *ev, progress=progress) for name, ev in evals.items()}
            if teacher_model is not None and main
            else {}
        )
    del teacher_model, encoder

    dimension = int(model.get_embedding_dimension() or 0)
    dims = detect_matryoshka_dims(source if is_local else None, dimension)
    base_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()} if interpolate < 1 else None
    epochs_used = auto_epochs(len(rows)) if epochs == "auto" else epochs
    run = {
        "base": source, "rows": len(rows), "seed": seed,
        "rows_sha256": _rows_sha256(rows),
        "loss": chosen_loss, "epochs": epochs_used, "batch_size": batch_size, "learning_rate": learning_rate,
        "lr_scheduler": lr_scheduler, "warmup_ratio": warmup_ratio, "max_steps": max_steps,
        "train_dtype": train_dtype, "matryoshka_dims": dims,
    }  # fmt: skip
    if main:
        start_or_resume(work_dir, run)
    work_dir.mkdir(exist_ok=True)
    with stage(timings, "training"):
        train_metrics = train_model(
            model, rows, loss=chosen_loss, work_dir=work_dir, epochs=epochs_used, batch_size=batch_size,
            learning_rate=learning_rate, seed=seed, matryoshka_dims=dims, max_steps=max_steps, save_steps=save_steps,
            resume=resume, progress=progress, lr_scheduler=lr_scheduler, warmup_ratio=warmup_ratio,
            train_dtype=train_dtype,
        )  # fmt: skip
        model.prompts = prompts  # the trainer must not change the prompts the model was trained with
        if base_state is not None:
            interpolate_weights(model, base_state, interpolate)
    if not main:
        return result_from_rank0(output, skipped)
    with stage(timings, "evaluation"):
        tuned = BaseEncoder(model)  # the finetuned model's embeddings, shared by the evaluation sets
        after = {
            name: evaluate_retrieval(
                model, *ev, name=name, progress=progress,
                corpus_embeddings=torch.from_numpy(tuned.embed_documents(list(ev[1].values()))),
            )
            for name, ev in evals.items()
        }  # fmt: skip
        del tuned
    evaluations: dict[str, dict[str, RetrievalMetrics]] = {
        name: {"base": before[name], "finetuned": after[name]} for name in evals
    }
    for name, score in teacher_scores.items():
        evaluations[name]["teacher"] = score
    head = headline(evaluations)
    improved = evaluations[head]["finetuned"].ndcg_at_10 > evaluations[head]["base"].ndcg_at_10

    tmp = saving_folder(output)
    shutil.rmtree(tmp, ignore_errors=True)
    result = FinetuneResult(
        output=output, evaluations=evaluations, improved=improved, train_pairs=len(rows), skipped=skipped,
        timings=timings,
    )  # fmt: skip
    result.improved = improved and not result.specialized
    improved = result.improved
    try:
        with stage(timings, "saving"):
            model.save(str(tmp))
            write_card(tmp, source, dims, evaluations, len(rows), chosen_loss)
        timings["total"] = round(time.time() - started, 1)
        timings["cpu_total"] = round(time.process_time() - cpu_started, 1)
        # the reports last, so they include every stage's time
        report = build_report(
            output_name=output.name, base=source, verdict=result.verdict, improved=improved,
            evaluations=evaluations, config=config, timings=timings,
            data={
                "documents": len(chunked), "skipped": skipped, "chunks": len(chunks),
                "train_chunks": len(train_chunks), "heldout_chunks": len(held_chunks), "train_pairs": len(rows),
                "pair_stats": pair_stats,
            },
            training={"loss": chosen_loss, "matryoshka_dims": dims,
                      "epochs": _trained_epochs(train_metrics, epochs_used), "epochs_planned": epochs_used,
                      "batch_size": batch_size,
                      "learning_rate": learning_rate, "seed": seed, "metrics": train_metrics,
                      "processes": world_size()},
            prompts=prompts,
            peak_rss_mb=peak_rss_mb(),
        )  # fmt: skip
        if result.specialization is not None:
            report["specialization"] = {
                "evaluation": KEYWORD_EVAL, "share_of_misses_closed": result.specialization,
                "limit": SPECIALIZATION_LIMIT, "flagged": result.specialized,
            }  # fmt: skip
        elif guard_skipped is not None:
            report["specialization"] = {"evaluation": KEYWORD_EVAL, "skipped": guard_skipped}
        write_reports(tmp, report)
        write_rows(tmp, rows, origins, held_chunks)
        publish(tmp, output)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        share_outcome(f"rank 0 failed to save the model: {exc!r}")  # the other ranks raise it too
        from safetensors import SafetensorError

        if isinstance(exc, OSError | SafetensorError):  # a full disk, a quota, a folder gone: what saving can meet
            raise ConfigError(
                f"Saving the model to {output} failed ({type(exc).__name__}: {exc}); nothing was written there. The "
                f"trained checkpoint is kept in {work_dir}: free space (or fix the cause) and rerun the same command "
                "to resume from it"
            ) from exc
        raise
    share_outcome(None)  # the other ranks now read the saved report
    shutil.rmtree(work_dir, ignore_errors=True)
    result.report_md, result.plot = output / "report.md", output / "before_after.png"
    if not improved:
        warnings.warn(result.verdict, FinetuneWorseWarning, stacklevel=2)
        logger.warning(result.verdict)
    return result


def _trained_epochs(metrics: dict[str, Any], planned: float) -> float:
    """The epochs the trainer ran (its ``epoch`` metric: fewer than planned when ``max_steps`` stopped it first)."""
    epoch = metrics.get("epoch")
    if isinstance(epoch, int | float) and not isinstance(epoch, bool) and epoch > 0:
        return float(epoch)
    return planned  # resumed after training had ended, before its metrics were written


def _rows_sha256(rows: list[dict[str, Any]]) -> str:
    """SHA-256 over the training rows, one row at a time (no second copy of them in memory)."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, default=str).encode() + b"\n")
    return digest.hexdigest()
