"""A teacher that scores (query, passage) pairs: a sentence-transformers bi-encoder or a ``CrossEncoder``.

The student learns the teacher's score margins with margin-MSE (GPL's recipe, Wang et al. 2022). A bi-encoder
teacher embeds queries and passages with ITS OWN query/document prompts and scores by cosine similarity; a
CrossEncoder scores each pair with its default activation (a sigmoid for one-label rerankers), so both give scores
on the scale of a normalized student's cosine similarities.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from promptembed import _loading
from promptembed.errors import ConfigError
from promptembed.prompts import Role, resolve_role_prompt

__all__ = ["Teacher", "load_teacher"]


@dataclass
class Teacher:
    """A loaded teacher and what kind it is (``"bi-encoder"`` or ``"cross-encoder"``).

    Example:
        >>> from promptembed.finetune.teacher import Teacher
        >>> Teacher(model=None, kind="cross-encoder", name="my-reranker").kind
        'cross-encoder'
    """

    model: Any
    kind: str
    name: str

    def embed(self, texts: Sequence[str], role: Role, *, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Unit-norm embeddings with the teacher's own ``role`` prompt (bi-encoders only)."""
        prompt = resolve_role_prompt(dict(self.model.prompts), role) or None
        out = self.model.encode(
            list(texts), prompt=prompt, batch_size=batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=progress,
        )  # fmt: skip
        return np.asarray(out, dtype=np.float32)

    def score_pairs(
        self, queries: Sequence[str], passages: Sequence[str], *, batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        """One score per (query, passage) pair; unique texts are embedded once by a bi-encoder."""
        if len(queries) != len(passages):
            raise ValueError(f"{len(queries)} queries but {len(passages)} passages; give one passage per query")
        if self.kind == "cross-encoder":
            scores = self.model.predict(
                list(zip(queries, passages, strict=True)), batch_size=batch_size, show_progress_bar=progress
            )
            return np.asarray(scores, dtype=np.float32).reshape(len(queries))
        uq, qi = np.unique(np.asarray(queries, dtype=object), return_inverse=True)
        up, pi = np.unique(np.asarray(passages, dtype=object), return_inverse=True)
        q = self.embed([str(t) for t in uq], "query", batch_size=batch_size, progress=progress)
        p = self.embed([str(t) for t in up], "document", batch_size=batch_size, progress=progress)
        return np.asarray(np.einsum("ij,ij->i", q[qi], p[pi]), dtype=np.float32)


def _is_cross_encoder(folder: Path) -> bool:
    config = folder / "config_sentence_transformers.json"
    if config.is_file():
        try:
            if json.loads(config.read_text(encoding="utf-8")).get("model_type") == "CrossEncoder":
                return True
        except ValueError:
            pass
    hf = folder / "config.json"
    if not (folder / "modules.json").is_file() and hf.is_file():
        try:
            archs = json.loads(hf.read_text(encoding="utf-8")).get("architectures") or []
        except ValueError:
            return False
        return any(str(a).endswith("ForSequenceClassification") for a in archs)
    return False


def load_teacher(teacher: Any, *, device: str = "auto") -> Teacher:
    """Load ``teacher``: a ``SentenceTransformer``/``CrossEncoder`` instance, or a folder or hub id of either.

    A folder is a CrossEncoder when its ``config_sentence_transformers.json`` says so, or when it is a plain
    Hugging Face ``...ForSequenceClassification`` checkpoint; anything else loads as a bi-encoder.

    Raises:
        ConfigError: The teacher is neither kind, or cannot be loaded.
    """
    from sentence_transformers import CrossEncoder, SentenceTransformer

    if isinstance(teacher, CrossEncoder):
        return Teacher(teacher, "cross-encoder", type(teacher).__name__)
    if isinstance(teacher, SentenceTransformer):
        return Teacher(teacher, "bi-encoder", type(teacher).__name__)
    if not isinstance(teacher, str | Path):
        raise ConfigError(
            f"teacher must be a SentenceTransformer, a CrossEncoder, or a folder/hub id of one; got {type(teacher)}"
        )
    source, is_local = _loading.resolve_source(str(teacher))
    if is_local:
        _loading.check_weights_safe(source, allow_pickle=False)
    picked = _loading.pick_device(device)
    try:
        if is_local and _is_cross_encoder(Path(source)):
            return Teacher(CrossEncoder(source, device=picked, local_files_only=True), "cross-encoder", str(teacher))
        return Teacher(
            SentenceTransformer(source, device=picked, local_files_only=is_local), "bi-encoder", str(teacher)
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot load the teacher {teacher!r}: {exc}") from exc
