"""Training with sentence-transformers' own trainer: losses, prompts mapped to columns, safe precision, resume."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Literal

from promptembed import _loading
from promptembed.errors import ConfigError
from promptembed.finetune.distributed import is_main_process
from promptembed.prompts import resolve_role_prompt

logger = logging.getLogger("promptembed")

__all__ = [
    "MNRL_SCALE",
    "SMALL_TRAINING_SET",
    "auto_epochs",
    "detect_matryoshka_dims",
    "interpolate_weights",
    "latest_checkpoint",
    "train_in_bf16",
    "train_model",
]

#: The similarity scale (1 / temperature) of (cached) MNRL. sentence-transformers' default is 20; 30 gave more on
#: every seed of both benchmark domains (benchmarks/FINETUNE.md, ``finetune_probes.py --variant mnrl-scale30``).
MNRL_SCALE = 30.0
#: ``epochs="auto"`` trains two epochs when one epoch has fewer rows than this, else one. Measured with about 1300
#: rows (benchmarks/FINETUNE.md, three seeds each): two epochs gained +0.0077 nDCG@10 on average on zaragoza (every
#: seed) and +0.0051 on half of the Debian documents (two seeds, the third a tie); on all of Debian (about 2400 rows)
#: they did not help. At most 2 * 1499 rows train, near the 1 MB row's 2436 (one epoch), which sets the time budget.
SMALL_TRAINING_SET = 1500


def auto_epochs(rows: int) -> int:
    """The epochs ``epochs="auto"`` trains for ``rows`` training rows: 2 below :data:`SMALL_TRAINING_SET`, else 1."""
    return 2 if rows < SMALL_TRAINING_SET else 1


LossKind = Literal["mnrl", "cached_mnrl", "gist", "cosent", "margin_mse"]
_DIMS = re.compile(r"matryoshka_dims\W+\[([0-9,\s]+)\]", re.IGNORECASE)


def train_in_bf16(train_dtype: str, device: str) -> bool:
    """Whether to train with bf16 mixed precision on ``device`` (``"cpu"``, ``"cuda:0"``, ...).

    ``"auto"``: on a CUDA GPU that supports it, and on a CPU with AMX (where it was measured: 1.27x the float32
    training speed at the same retrieval gain, ``benchmarks/FINETUNE.md``); float32 elsewhere, including CPUs with
    only avx512_bf16 or ARM bf16. ``"bfloat16"`` is refused where the hardware would only emulate it.
    """
    import torch

    kind = device.split(":", 1)[0]
    if train_dtype == "float32":
        return False
    if kind == "cuda":
        supported = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        if train_dtype == "bfloat16" and not supported:
            raise ConfigError("train_dtype='bfloat16' on a GPU without bf16 support; use train_dtype='float32'")
        return supported
    native = _loading.cpu_native_bf16() if kind == "cpu" else None
    if train_dtype == "auto":
        return native == "amx_bf16"
    if native is not None:
        return True
    raise ConfigError(
        f"train_dtype='bfloat16' on {device}: "
        + ("this CPU has no native bf16 (AMX or avx512_bf16), so torch would emulate it, several times slower"
           if kind == "cpu" else "bf16 mixed-precision training is supported on CUDA and on CPUs with native bf16")
        + "; use train_dtype='float32'"
    )  # fmt: skip


def detect_matryoshka_dims(model_dir: str | Path | None, dimension: int) -> list[int] | None:
    """Matryoshka dims a model was trained with, read from its model card (``matryoshka_dims``), else None."""
    if model_dir is None:
        return None
    card = Path(model_dir) / "README.md"
    if not card.is_file():
        return None
    text = card.read_text(encoding="utf-8", errors="replace")
    match = _DIMS.search(text)
    if match:
        dims = sorted({int(d) for d in match.group(1).replace(" ", "").split(",") if d}, reverse=True)
        return [d for d in dims if 0 < d <= dimension] or None
    return None


def latest_checkpoint(work_dir: Path) -> Path | None:
    """The newest complete ``checkpoint-N`` folder written by the trainer, if any.

    The trainer writes ``trainer_state.json`` last and in place: a checkpoint cut off while it was saved (a kill, a
    full disk) has none, or an empty or truncated one. Such a folder newer than the complete checkpoint is removed
    (by the main process), or every rerun would pick it and fail to read it, and the trainer's rotation, which keeps
    the highest step numbers, would later delete a fresh checkpoint instead of it.
    """
    found = [p for p in work_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    for checkpoint in sorted(found, key=lambda p: int(p.name.split("-")[-1]), reverse=True):
        if _state_step(checkpoint) is not None:
            return checkpoint
        if is_main_process():
            import shutil

            logger.warning("removing %s: cut off while it was saved (no readable trainer_state.json)", checkpoint)
            shutil.rmtree(checkpoint, ignore_errors=True)
    return None


def _state_step(checkpoint: Path) -> int | None:
    """The ``global_step`` in ``checkpoint``'s ``trainer_state.json``; ``None`` when it is missing or unreadable."""
    try:
        step = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def interpolate_weights(model: Any, base_state: dict[str, Any], alpha: float) -> None:
    """WiSE-FT (Wortsman et al. 2022): set ``model``'s weights to ``alpha * finetuned + (1 - alpha) * base``.

    Floating-point tensors are mixed; integer buffers (position ids) keep the finetuned values.

    Raises:
        ValueError: ``alpha`` outside [0, 1], or ``base_state`` does not match the model's parameters.
    """
    import torch

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"interpolate={alpha} must be in [0, 1] (1 = the finetuned weights, 0 = the base weights)")
    state = model.state_dict()
    missing = sorted(set(state) - set(base_state))
    if missing:
        raise ValueError(f"The base weights lack {len(missing)} tensors of the model (e.g. {missing[0]!r})")
    with torch.no_grad():
        for name, tensor in state.items():
            if tensor.is_floating_point():
                tensor.copy_(alpha * tensor + (1.0 - alpha) * base_state[name].to(tensor.device, tensor.dtype))


def train_model(
    model: Any,
    rows: list[dict[str, Any]],
    *,
    loss: LossKind,
    work_dir: Path,
    epochs: float,
    batch_size: int,
    learning_rate: float,
    seed: int,
    matryoshka_dims: list[int] | None,
    max_steps: int | None,
    save_steps: int,
    resume: bool,
    progress: bool,
    lr_scheduler: str = "linear",
    warmup_ratio: float = 0.1,
    train_dtype: str = "auto",
) -> dict[str, Any]:
    """Finetune ``model`` in place on ``rows`` (anchor/positive[/negative...][/label] or text1/text2/score).

    The model's query prompt is mapped to ``anchor`` and its document prompt to ``positive`` and every negative
    column, so training sees the same prefixes as inference. ``margin_mse`` rows carry teacher margins in ``label``
    (sentence-transformers' ``MarginMSELoss`` on cosine similarity, the scale of the teacher's scores). Precision:
    ``train_dtype`` as :func:`train_in_bf16` decides (``"auto"``: bf16 mixed precision on a GPU that supports it,
    else fp32); never fp16 (Gemma-family models overflow in it). Checkpoints go to
    ``work_dir``; with ``resume`` the newest one is used.

    Returns:
        The trainer's final metrics (``train_loss`` and timings).
    """
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.util import pairwise_cos_sim

    dataset = Dataset.from_list(rows)
    prompts = dict(model.prompts)
    q_prompt = resolve_role_prompt(prompts, "query")
    d_prompt = resolve_role_prompt(prompts, "document")
    text_columns = [c for c in dataset.column_names if c not in ("label", "score")]
    column_prompts = {c: p for c in text_columns if (p := q_prompt if c == "anchor" else d_prompt)}
    sampler = BatchSamplers.NO_DUPLICATES
    if loss == "cosent":
        train_loss: Any = losses.CoSENTLoss(model)
        column_prompts, sampler = {}, BatchSamplers.BATCH_SAMPLER
    elif loss == "margin_mse":
        train_loss = losses.MarginMSELoss(model, similarity_fct=pairwise_cos_sim)
        sampler = BatchSamplers.BATCH_SAMPLER
    elif loss == "gist":
        # GISTEmbed: in-batch negatives that a frozen copy of the base model scores above the pair's positive are
        # left out of the softmax (likely false negatives: other passages that answer the same query)
        import copy

        guide = copy.deepcopy(model).eval()
        guide.requires_grad_(False)
        train_loss = losses.GISTEmbedLoss(model, guide)
    else:
        cls = (
            losses.CachedMultipleNegativesRankingLoss if loss == "cached_mnrl" else losses.MultipleNegativesRankingLoss
        )
        train_loss = cls(model, scale=MNRL_SCALE)
    if matryoshka_dims:
        train_loss = losses.MatryoshkaLoss(model, train_loss, matryoshka_dims=matryoshka_dims)
    on_gpu = str(model.device).startswith("cuda")
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work_dir),
        num_train_epochs=epochs,
        max_steps=max_steps if max_steps is not None else -1,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        lr_scheduler_type=lr_scheduler,
        warmup_steps=float(warmup_ratio),  # a float below 1 is a ratio of the total steps (Transformers v5)
        seed=seed,
        data_seed=seed,
        bf16=train_in_bf16(train_dtype, str(model.device)),
        use_cpu=str(model.device) == "cpu",  # under torchrun on CPU: DDP over gloo (accelerate's MULTI_CPU)
        fp16=False,
        batch_sampler=sampler,
        prompts=column_prompts or None,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=1,
        logging_steps=max(1, save_steps),
        report_to=[],
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        dataloader_pin_memory=on_gpu,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=train_loss)
    # rank 0 has kept or cleared the work dir's checkpoints (finetune()'s run fingerprint): every rank waits for it
    # before it looks, so no rank resumes a checkpoint of another run (a no-op in a single process)
    trainer.accelerator.wait_for_everyone()
    checkpoint = latest_checkpoint(work_dir) if resume else None
    if checkpoint is not None and _is_final(checkpoint):
        # training had ended when the run was killed (in evaluation or saving): its last checkpoint is the trained
        # model, which the trainer would resume with one more step
        trainer._load_from_checkpoint(str(checkpoint))  # sentence-transformers' own loader, as its resume uses
        try:
            finished = json.loads((work_dir / "train_metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):  # killed before they were written
            finished = {}
        return {**finished, "resumed_from": checkpoint.name}
    output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    metrics = dict(output.metrics)
    metrics["global_step"] = output.global_step
    metrics["resumed_from"] = checkpoint.name if checkpoint else None
    if is_main_process():  # one writer, whole or not at all
        tmp = work_dir / f".train_metrics.json.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(metrics, indent=2, default=str), encoding="utf-8")
        os.replace(tmp, work_dir / "train_metrics.json")
    return metrics


def _is_final(checkpoint: Path) -> bool:
    """Whether ``checkpoint`` was saved at the last step of its training (its ``trainer_state.json`` says so)."""
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
        return 0 < int(state["max_steps"]) <= int(state["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
