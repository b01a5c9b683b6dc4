"""Steps of ``finetune()``: eval sets, output checks, the train/held-out split, caps, shared embeddings, timing."""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from promptembed.errors import ConfigError
from promptembed.finetune.chunking import Chunk
from promptembed.finetune.evaluate import embed_texts
from promptembed.finetune.pairs import Pair
from promptembed.finetune.supervision import load_supervision
from promptembed.prompts import Role

__all__ = ["EvalSet", "load_eval_queries"]

EvalSet = tuple[dict[str, str], dict[str, str], dict[str, set[str]]]


def load_eval_queries(path: str | Path, extra_corpus: str | Path | None = None) -> EvalSet:
    """Read real questions with their gold passages (JSONL/CSV columns ``query`` and ``positive``).

    Rows with the same query text are one question whose gold passages are all of theirs (a question answered in
    several places), as in sentence-transformers' ``InformationRetrievalEvaluator``.

    Args:
        path: The questions file.
        extra_corpus: Optional JSONL of distractor passages (one object per line with a ``text`` column).

    Returns ``(queries, corpus, relevant)``; the corpus is every distinct gold passage, then the distractors.

    Raises:
        ConfigError: A missing or unreadable file, other columns, an empty cell, a corpus line that is not a JSON
            object with a ``text`` string; naming the file and the line.
    """
    try:
        sup = load_supervision(path)
    except FileNotFoundError:
        raise ConfigError(f"Eval queries file {path} does not exist") from None
    except ValueError as exc:  # the supervision reader's message, worded for an eval file
        text = str(exc).split("; expected")[0].replace("do not match a supervision format", "are not eval queries")
        raise ConfigError(
            f"{text}; eval queries need the columns query and positive (a row per question and gold passage)"
        ) from None
    if sup.kind != "pairs":
        raise ConfigError(f"{path}: eval queries need columns query,positive (got a {sup.kind} file)")
    corpus_ids: dict[str, str] = {}
    query_ids: dict[str, str] = {}
    relevant: dict[str, set[str]] = {}
    for row in sup.rows:
        pid = corpus_ids.setdefault(row["positive"], f"p{len(corpus_ids)}")
        qid = query_ids.setdefault(row["anchor"], f"q{len(query_ids)}")
        relevant.setdefault(qid, set()).add(pid)
    queries = {v: k for k, v in query_ids.items()}
    corpus = {v: k for k, v in corpus_ids.items()}
    if extra_corpus is not None:
        for n, row in _corpus_lines(Path(extra_corpus)):
            if row["text"] not in corpus_ids:
                corpus_ids[row["text"]] = f"x{n}"
                corpus[f"x{n}"] = row["text"]
    return queries, corpus, relevant


def _corpus_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL distractor corpus, or a ConfigError naming the line."""
    need = "each line of the eval corpus needs a JSON object with a text column 'text' (JSONL, not CSV)"
    try:
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path}:{n}: not valid JSON ({exc.msg}); {need}") from None
                if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                    raise ConfigError(f"{path}:{n}: {need}")
                yield n, row
    except FileNotFoundError:
        raise ConfigError(f"Eval corpus file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (bad byte at offset {exc.start}); convert it to UTF-8") from None


#: Files of which one marks a folder as a sentence-transformers model (what ``overwrite=True`` may replace).
_MODEL_MARKERS = ("modules.json", "config_sentence_transformers.json")


#: Free space preflight asks for, in multiples of the base model's folder. A checkpoint is about 3.7 times the
#: weights (the weights, AdamW's two moment tensors of the same size, scheduler and RNG state), and the trainer's
#: rotation (save_total_limit=1) writes the new checkpoint before it deletes the old one, so two are on disk at
#: once: 7.4 times. The final model (1x) is saved beside one checkpoint (4.7x), so 8x covers every moment.
SPACE_PER_MODEL_SIZE = 8


def preflight(output: Path, overwrite: bool, base_source: str, docs: Sequence[str | Path] = ()) -> None:
    parent = output.parent
    existing = next((p for p in output.parents if p.exists()), None)  # the nearest folder (or file) that exists
    if existing is not None and not existing.is_dir():
        raise ConfigError(f"Output {output} lies under {existing}, which is a file, not a folder; choose another path")
    if output.exists() and not output.is_dir():
        raise ConfigError(f"Output {output} is a file; give a folder path")
    if output.exists() and not overwrite:
        raise ConfigError(f"Output folder {output} already exists; pass overwrite=True (--overwrite) or another path")
    for doc in docs:
        if Path(doc).resolve().is_relative_to(output):
            raise ConfigError(f"Output folder {output} holds the documents {doc}; choose another output folder")
        if Path(doc).is_dir() and output.is_relative_to(Path(doc).resolve()):
            raise ConfigError(
                f"Output folder {output} lies inside the documents folder {doc}: a rerun would read the saved model "
                "card and report as documents; choose an output folder outside it"
            )
    if output.is_dir() and any(output.iterdir()) and not any((output / m).is_file() for m in _MODEL_MARKERS):
        raise ConfigError(
            f"Output folder {output} is not empty and holds no sentence-transformers model "
            f"({' or '.join(_MODEL_MARKERS)}); refusing to replace it with overwrite=True (--overwrite): choose an "
            "empty or new folder"
        )
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
    if size and free < SPACE_PER_MODEL_SIZE * size:
        raise ConfigError(
            f"Only {free / 2**20:.0f} MB free next to {output}; finetuning this {size / 2**20:.0f} MB model needs "
            f"about {SPACE_PER_MODEL_SIZE * size / 2**20:.0f} MB (checkpoints + the saved model). Free space or "
            "choose another --output"
        )


def chunk_budget(model: Any) -> int:
    """Tokens per chunk for ``model``: its max sequence length less its document prompt and special tokens."""
    from promptembed.prompts import resolve_role_prompt

    doc_prompt = resolve_role_prompt(dict(model.prompts), "document")
    doc_prompt_tokens = len(model.tokenizer(doc_prompt, add_special_tokens=False)["input_ids"])
    return max(16, int(model.max_seq_length or 256) - doc_prompt_tokens - 4)


def split_chunks(chunks: list[Chunk], heldout_fraction: float, seed: int) -> tuple[list[Chunk], list[Chunk]]:
    if len(chunks) < 5 or heldout_fraction <= 0:
        return chunks, []
    order = list(range(len(chunks)))
    random.Random(seed).shuffle(order)
    n_held = max(1, round(len(chunks) * heldout_fraction))
    held = set(order[:n_held])
    return [c for i, c in enumerate(chunks) if i not in held], [c for i, c in enumerate(chunks) if i in held]


def cap_pairs(pairs: list[Pair], limit: int | None) -> list[Pair]:
    """At most ``limit`` pairs: every chunk's first pair, then every chunk's second, ... (coverage first)."""
    if limit is None or len(pairs) <= limit:
        return pairs
    rank: dict[str, int] = defaultdict(int)
    keyed = []
    for i, pair in enumerate(pairs):
        keyed.append((rank[pair.chunk_id], i))
        rank[pair.chunk_id] += 1
    keep = {i for _, i in sorted(keyed)[:limit]}
    return [p for i, p in enumerate(pairs) if i in keep]


class BaseEncoder:
    """The base model's embeddings, each distinct text embedded once (filter, mining and evaluation share them)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cache: dict[tuple[str, str], np.ndarray] = {}

    def embed(self, texts: list[str], role: Role) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if (role, t) not in self.cache))
        if todo:
            vectors = embed_texts(self.model, todo, role).cpu().numpy()
            self.cache.update({(role, t): v for t, v in zip(todo, vectors, strict=True)})
        dim = int(self.model.get_embedding_dimension() or 0)
        return np.stack([self.cache[(role, t)] for t in texts]) if texts else np.zeros((0, dim), np.float32)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.embed(texts, "query")

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self.embed(texts, "document")


@contextmanager
def stage(timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the block's wall time to ``timings[name]`` and its CPU time (all threads) to ``timings["cpu_" + name]``.

    CPU seconds do not grow when other processes share the cores, so they show the work a stage costs even on a
    busy machine; wall seconds are what a user waits.
    """
    started, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - started, 2)
        timings["cpu_" + name] = round(timings.get("cpu_" + name, 0.0) + time.process_time() - cpu, 2)


def write_rows(folder: Path, rows: list[dict[str, Any]], origins: list[dict[str, str]], held: list[Chunk]) -> None:
    with (folder / "train_pairs.jsonl").open("w", encoding="utf-8") as f:
        for row, origin in zip(rows, origins, strict=True):
            f.write(json.dumps({**row, **origin}, ensure_ascii=False) + "\n")
    with (folder / "heldout_chunks.jsonl").open("w", encoding="utf-8") as f:
        for c in held:
            f.write(json.dumps({"id": c.id, "doc_path": c.doc_path, "text": c.text}, ensure_ascii=False) + "\n")
