"""Who is rank 0: the one place the finetune helper asks, under ``torchrun`` or ``accelerate launch``.

Under a launcher every process runs the whole :func:`~promptembed.finetune.finetune`; sentence-transformers'
trainer (through accelerate) sets up the process group and trains with DDP. Only rank 0 evaluates, writes the
reports and saves the model; it then tells the other ranks whether that worked, and they return the same result
read from the saved report.
"""

from __future__ import annotations

import os

__all__ = ["is_main_process", "rank", "share_outcome", "world_size"]


def rank() -> int:
    """This process's global rank (``RANK``, set by torchrun and accelerate); 0 without a launcher."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Number of processes in the job (``WORLD_SIZE``); 1 without a launcher."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Whether this process evaluates, writes reports and saves (rank 0, or the only process)."""
    return rank() == 0


def share_outcome(error: str | None) -> str | None:
    """Rank 0 sends its outcome (``None`` = saved, or an error message); every rank returns rank 0's outcome.

    A no-op returning ``error`` when there is one process or no initialized process group.
    """
    if world_size() == 1:
        return error
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return error
    box: list[str | None] = [error]
    dist.broadcast_object_list(box, src=0)
    return box[0]
