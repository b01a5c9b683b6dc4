"""Query/passage pairs from chunks, without an LLM (or with one), filtered so every pair is answerable.

Strategies (select by name):

- ``"sentence"``: one sentence of a chunk as the query, the rest of the chunk as the passage (inverse cloze
  task); the sentence is removed from the passage, so the pair is not a copy-paste match.
- ``"keyphrase"``: the chunk's most salient words (TF-IDF over the given chunks, in reading order) as a short
  keyword query, the whole chunk as the passage: the way people type into a search box.
- ``"title"``: the heading path (or the document title) as the query, the section's chunk as the passage.
- ``"llm"``: queries written by an LLM (``llm=``), see :mod:`promptembed.finetune.llm`.

Every candidate is kept only if its source chunk is retrievable for it: within the top ``top_k`` of the
corpus by BM25 (``filter="bm25"``, bm25s) or by the base model (``filter="model"``). Duplicates (same
normalized query) are dropped and each chunk contributes at most ``max_per_chunk`` pairs. Pairs come only from
the chunks passed in: the caller passes training chunks, so held-out chunks never become training positives.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from tqdm.auto import tqdm

from promptembed.finetune.chunking import Chunk, split_sentences

if TYPE_CHECKING:
    from promptembed.embedder import PromptEmbedder

__all__ = [
    "DEFAULT_STRATEGIES",
    "STRATEGIES",
    "Pair",
    "PairsResult",
    "generate_pairs",
    "load_pairs_jsonl",
    "save_pairs_jsonl",
]

STRATEGIES = ("sentence", "keyphrase", "title", "llm")
DEFAULT_STRATEGIES: tuple[str, ...] = ("sentence", "keyphrase")

_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*", re.UNICODE)
_STOP = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "may",
        "me",
        "might",
        "more",
        "most",
        "must",
        "my",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "out",
        "over",
        "own",
        "same",
        "shall",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "also",
        "however",
        "therefore",
        "thus",
        "e.g",
        "i.e",
        "etc",
        "per",
        "via",
        "within",
        "without",
        "upon",
    ]
)


@dataclass(frozen=True)
class Pair:
    """A training or evaluation pair: a query and the passage that answers it."""

    query: str
    positive: str
    chunk_id: str
    source: str


@dataclass
class PairsResult:
    """Pairs kept, and per-strategy counts (generated, kept, filtered, duplicates, capped)."""

    pairs: list[Pair]
    stats: dict[str, dict[str, int]] = field(default_factory=dict)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _keyphrase(chunk: Chunk, idf: dict[str, float], n_words: int) -> str | None:
    words = _words(chunk.text)
    counts = Counter(w for w in words if w not in _STOP and len(w) > 2 and not w.isdigit())
    if len(counts) < 2:
        return None
    scored = sorted(counts, key=lambda w: (-counts[w] * idf.get(w, 1.0), w))[:n_words]
    order = {w: words.index(w) for w in scored}
    return " ".join(sorted(scored, key=order.__getitem__))


def _candidates(
    chunk: Chunk, strategies: Sequence[str], idf: dict[str, float], rng: random.Random, llm: Any
) -> list[Pair]:
    out: list[Pair] = []
    if "sentence" in strategies:
        sentences = split_sentences(chunk.text)
        if len(sentences) >= 2:
            order = list(range(len(sentences)))
            rng.shuffle(order)
            for i in order[:3]:
                rest = " ".join(s for j, s in enumerate(sentences) if j != i)
                if len(_words(sentences[i])) >= 4 and len(_words(rest)) >= 4:
                    out.append(Pair(sentences[i], rest, chunk.id, "sentence"))
    if "keyphrase" in strategies:
        phrase = _keyphrase(chunk, idf, n_words=rng.choice((3, 4, 5)))
        if phrase:
            out.append(Pair(phrase, chunk.text, chunk.id, "keyphrase"))
    if "title" in strategies:
        heading = " > ".join(chunk.heading_path) or (chunk.title or "")
        if len(_words(heading)) >= 2:
            out.append(Pair(heading, chunk.text, chunk.id, "title"))
    if "llm" in strategies and llm is not None:
        from promptembed.finetune.llm import llm_queries

        out.extend(Pair(q, chunk.text, chunk.id, "llm") for q in llm_queries(chunk.text, llm))
    return out


def _retrievable_bm25(queries: list[str], corpus: Sequence[Chunk], targets: list[int], top_k: int) -> list[bool]:
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([c.text for c in corpus], stopwords="en", show_progress=False), show_progress=False)
    k = min(top_k, len(corpus))
    tokens = bm25s.tokenize(queries, stopwords="en", show_progress=False)
    docs, _ = retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
    return [int(t) in set(map(int, row)) for t, row in zip(targets, docs, strict=True)]


def _retrievable_model(
    queries: list[str], corpus: Sequence[Chunk], targets: list[int], top_k: int, embedder: PromptEmbedder
) -> list[bool]:
    q = embedder.embed_queries(queries)
    d = embedder.embed_documents([c.text for c in corpus])
    scores = q @ d.T
    target_scores = scores[np.arange(len(targets)), targets]
    rank = (scores > target_scores[:, None]).sum(axis=1)
    return [bool(r < top_k) for r in rank]


def generate_pairs(
    chunks: Sequence[Chunk],
    *,
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    max_per_chunk: int = 3,
    filter: Literal["bm25", "model", "none"] = "bm25",
    top_k: int = 10,
    corpus: Sequence[Chunk] | None = None,
    embedder: PromptEmbedder | None = None,
    llm: Any = None,
    seed: int = 0,
    progress: bool = True,
) -> PairsResult:
    """Generate filtered, deduplicated query/passage pairs from ``chunks``.

    Args:
        chunks: Chunks to make pairs from (training chunks only: held-out chunks must not be passed).
        strategies: Names from :data:`STRATEGIES`.
        max_per_chunk: Cap of pairs per chunk.
        filter: ``"bm25"``, ``"model"`` (needs ``embedder``) or ``"none"``.
        top_k: A pair is kept if its chunk ranks within the top ``top_k`` of ``corpus`` for the query.
        corpus: Chunks searched by the filter (default: ``chunks``); must contain ``chunks``.
        embedder: Base model for ``filter="model"``.
        llm: LangChain chat model or callable for the ``"llm"`` strategy.
        seed: Random seed; the same inputs and seed give the same pairs.
        progress: Show a progress bar.

    Raises:
        ValueError: Unknown strategy or filter, or ``filter="model"`` without an embedder.
    """
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        raise ValueError(f"Unknown pair strategies {unknown}; choose from {list(STRATEGIES)}")
    if "llm" in strategies and llm is None:
        raise ValueError("The 'llm' strategy needs llm= (a LangChain chat model or a callable str -> list[str])")
    if filter not in ("bm25", "model", "none"):
        raise ValueError(f"Unknown filter {filter!r}; use 'bm25', 'model' or 'none'")
    if filter == "model" and embedder is None:
        raise ValueError("filter='model' needs embedder= (a PromptEmbedder on the base model)")
    corpus = list(corpus) if corpus is not None else list(chunks)
    index = {c.id: i for i, c in enumerate(corpus)}
    missing = [c.id for c in chunks if c.id not in index]
    if missing:
        raise ValueError(f"{len(missing)} chunks are not in the filter corpus; pass a corpus that contains them")
    n_docs = max(len(corpus), 1)
    df = Counter(w for c in corpus for w in set(_words(c.text)))
    idf = {w: math.log((1 + n_docs) / (1 + n)) + 1.0 for w, n in df.items()}
    rng = random.Random(seed)
    candidates: list[Pair] = []
    for chunk in tqdm(chunks, desc="generating pairs", unit="chunk", disable=not progress):
        candidates.extend(_candidates(chunk, strategies, idf, rng, llm))
    stats = {s: {"generated": 0, "filtered": 0, "duplicates": 0, "capped": 0, "kept": 0} for s in strategies}
    for pair in candidates:
        stats[pair.source]["generated"] += 1
    if filter == "none" or not candidates:
        ok = [True] * len(candidates)
    else:
        queries = [p.query for p in candidates]
        targets = [index[p.chunk_id] for p in candidates]
        if filter == "bm25":
            ok = _retrievable_bm25(queries, corpus, targets, top_k)
        else:
            assert embedder is not None
            ok = _retrievable_model(queries, corpus, targets, top_k, embedder)
    seen: set[str] = set()
    per_chunk: Counter[str] = Counter()
    kept: list[Pair] = []
    for pair, good in zip(candidates, ok, strict=True):
        key = " ".join(_words(pair.query))
        if not good:
            stats[pair.source]["filtered"] += 1
        elif key in seen:
            stats[pair.source]["duplicates"] += 1
        elif per_chunk[pair.chunk_id] >= max_per_chunk:
            stats[pair.source]["capped"] += 1
        else:
            seen.add(key)
            per_chunk[pair.chunk_id] += 1
            stats[pair.source]["kept"] += 1
            kept.append(pair)
    return PairsResult(pairs=kept, stats=stats)


def save_pairs_jsonl(pairs: Sequence[Pair], path: str | Path) -> None:
    """Write pairs as JSON lines with columns query, positive, chunk_id, source."""
    with Path(path).open("w", encoding="utf-8") as f:
        for pair in pairs:
            f.write(json.dumps(asdict(pair), ensure_ascii=False) + "\n")


def load_pairs_jsonl(path: str | Path) -> list[Pair]:
    """Read pairs written by :func:`save_pairs_jsonl` (or edited by hand)."""
    pairs = []
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                row = json.loads(line)
                try:
                    pairs.append(
                        Pair(row["query"], row["positive"], row.get("chunk_id", ""), row.get("source", "file"))
                    )
                except KeyError as exc:
                    raise ValueError(
                        f"{path}:{n}: missing column {exc}; each line needs 'query' and 'positive'"
                    ) from None
    return pairs
