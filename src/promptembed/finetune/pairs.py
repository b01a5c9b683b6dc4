"""Query/passage pairs from chunks, without an LLM (or with one), filtered so every pair is answerable.

Strategies (select by name; each is deterministic given ``seed``):

- ``"sentence"``: one sentence of a chunk as the query, the rest of the chunk as the passage (inverse cloze
  task); the sentence is removed from the passage, so the pair is not a copy-paste match.
- ``"keyphrase"``: the chunk's most salient words (TF-IDF over the corpus, in reading order) as a short
  keyword query, the whole chunk as the passage: the way people type into a search box.
- ``"phrase"``: the chunk's one or two most salient noun-phrase-like runs (words between stopwords and
  punctuation, up to three words, TF-IDF scored), e.g. ``"holiday home RUT"``.
- ``"question"``: a user-style question built from those salient phrases with generic templates
  (``"What is X?"``, ``"Do I need X?"``, ``"Does X apply to Y?"`` ...), because real users ask questions,
  not keyword lists; the templates are fixed English text and use nothing but the chunk itself.
- ``"ask"``: a sentence of the chunk rewritten by rules as the question it answers (``"A carport needs a
  permit."`` -> ``"Does a carport need a permit?"``, see :mod:`promptembed.finetune.questions`), the rest of the
  chunk as the passage, as for ``"sentence"``: the inverse cloze task in the form users ask in.
- ``"title"``: the heading path (or the document title), with ``-``/``_`` slugs read as spaces, as the query,
  the section's chunk as the passage. Useful when headings are specific; on short FAQ-style documents that
  share one heading per category most title pairs are (rightly) dropped by the filter.
- ``"llm"``: queries written by an LLM (``llm=``), see :mod:`promptembed.finetune.llm`.

Every candidate is kept only if its source chunk is retrievable for it: within the top ``top_k`` of the
corpus with a positive score by BM25 (``filter="bm25"``, bm25s), by the base model (``filter="model"``: round-trip
filtering as in InPars and Promptagator), or by both (``filter="both"``).
Duplicates (same normalized query) are dropped and each chunk contributes at most ``max_per_chunk`` pairs,
taken round-robin over the strategies from a seeded starting strategy, so none crowds out the others.
Pairs come only from the chunks passed in: the caller passes training chunks, so held-out chunks never become
training positives.

``PairsResult.stats`` has, per strategy, ``generated``, ``filtered`` (not retrievable), ``duplicates``,
``capped`` and ``kept`` counts.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from tqdm.auto import tqdm

from promptembed.errors import ConfigError
from promptembed.finetune.chunking import Chunk, split_sentences
from promptembed.finetune.questions import sentence_to_question

if TYPE_CHECKING:
    from typing import Protocol

    class TextEncoder(Protocol):
        """What the ``"model"`` filter needs: a :class:`~promptembed.PromptEmbedder` or anything alike."""

        def embed_queries(self, texts: list[str]) -> np.ndarray: ...

        def embed_documents(self, texts: list[str]) -> np.ndarray: ...


__all__ = [
    "DEFAULT_STRATEGIES",
    "STRATEGIES",
    "Pair",
    "PairsResult",
    "generate_pairs",
    "load_pairs_jsonl",
    "save_pairs_jsonl",
]

#: Probe switch (benchmarks/finetune_probes.py --lead-sentence): inverse-cloze pairs take the first sentence first.
#: Measured not to help (benchmarks/FINETUNE.md), so off.
_LEAD_FIRST = False
STRATEGIES = ("sentence", "keyphrase", "phrase", "question", "ask", "title", "llm")
DEFAULT_STRATEGIES: tuple[str, ...] = ("sentence", "keyphrase")

_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*", re.UNICODE)
_SEGMENT = re.compile(r"[.,;:!?()\[\]{}\"“”‘’«»/|*=<>]+|\s[-–—]\s")
_STOP_TEXT = """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each e.g etc few for from further had has have
    having he her here hers him his how however i i.e if in into is it its itself just may me might more most
    must my no nor not now of off on once only or other our ours out over own per same shall she should so some
    such than that the their theirs them then there therefore these they this those through thus to too under
    until up upon very via was we were what when where which while who whom why will with within without would
    yes you your yours"""
_STOP = frozenset(_STOP_TEXT.split())
# Function verbs and adverbs that make poor search phrases (used only by the "phrase"/"question" strategies).
_FILLER_TEXT = """according already always apply applies applied approximately around called cannot case cases certain
    considerably either even example first generally get gets give given important include includes including
    instead less make makes many mean means much need needed needs never new normally often one possible rather
    require required requires several sometimes still take takes taken therefore two typically usually use used
    uses using vary varies well whether"""
_FILLER = _STOP | frozenset(_FILLER_TEXT.split())
_SINGLE = (
    "What is {0}?",
    "What are the rules for {0}?",
    "Do I need {0}?",
    "How does {0} work?",
    "When does {0} apply?",
    "What should I know about {0}?",
)
_DOUBLE = (
    "Does {0} apply to {1}?",
    "How does {0} affect {1}?",
    "What is the difference between {0} and {1}?",
    "Can I use {0} for {1}?",
)


@dataclass(frozen=True)
class Pair:
    """A training or evaluation pair: a query and the passage that answers it.

    Example:
        >>> Pair(query="carport permit", positive="A carport needs a permit.", chunk_id="c0", source="keyphrase")
        Pair(query='carport permit', positive='A carport needs a permit.', chunk_id='c0', source='keyphrase')
    """

    query: str
    positive: str
    chunk_id: str
    source: str


@dataclass
class PairsResult:
    """Pairs kept, and per-strategy counts (generated, filtered, duplicates, capped, kept)."""

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


def _phrases(text: str, idf: dict[str, float], limit: int = 3) -> list[str]:
    """Salient noun-phrase-like runs: up to three words between stopwords/punctuation, best TF-IDF first."""
    best: dict[str, tuple[float, int, str]] = {}
    position = 0
    for segment in _SEGMENT.split(text):
        run: list[str] = []
        for token in [*_WORD.findall(segment), ""]:
            low = token.lower()
            if token and low not in _FILLER and len(low) > 1 and not any(ch.isdigit() for ch in low):
                run.append(token if sum(ch.isupper() for ch in token) > 1 else low)  # keep acronyms like "RUT"
                continue
            while run and run[-1].endswith(("ed", "ly")):  # "application calculated" -> "application"
                run.pop()
            while run and run[0].endswith("ly"):
                run.pop(0)
            for start in range(max(len(run) - 2, 1)):  # a run longer than three words: each 3-word window
                words = run[start : start + 3]
                key = " ".join(w.lower() for w in words)
                score = sum(idf.get(w.lower(), 1.0) for w in words)
                if key in best:
                    old = best[key]
                    best[key] = (old[0] + score * 0.5, old[1], old[2])  # repeated: more salient
                else:
                    best[key] = (score, position, " ".join(words))
                position += 1
            run = []
    ranked = sorted(best.values(), key=lambda item: (-item[0], item[1]))
    out: list[str] = []
    for _, _, phrase in ranked:
        low = set(phrase.lower().split())
        if any(low & set(p.lower().split()) for p in out):  # no overlapping phrases
            continue
        out.append(phrase)
        if len(out) == limit:
            break
    return out


def _candidates(chunk: Chunk, strategies: Sequence[str], idf: dict[str, float], rng: random.Random) -> list[Pair]:
    """Candidates of one chunk, round-robin over strategies from a seeded start (the per-chunk cap is shared fairly)."""
    per: list[list[Pair]] = []
    text = chunk.text
    if "sentence" in strategies:
        got = []
        sentences = split_sentences(text)
        if len(sentences) >= 2:
            order = list(range(len(sentences)))
            rng.shuffle(order)
            if _LEAD_FIRST:  # the lead sentence first: it is the one real questions match most often
                order.remove(0)
                order.insert(0, 0)
            for i in order[:3]:
                rest = " ".join(s for j, s in enumerate(sentences) if j != i)
                if len(_words(sentences[i])) >= 4 and len(_words(rest)) >= 4:
                    got.append(Pair(sentences[i], rest, chunk.id, "sentence"))
        per.append(got)
    if "ask" in strategies:
        got = []
        sentences = split_sentences(text)
        order = list(range(len(sentences)))
        rng.shuffle(order)
        for i in order:
            question = sentence_to_question(sentences[i]) if len(sentences) >= 2 else None
            rest = " ".join(s for j, s in enumerate(sentences) if j != i)
            if question and len(_words(rest)) >= 4:
                got.append(Pair(question, rest, chunk.id, "ask"))
            if len(got) == 2:
                break
        per.append(got)
    if "keyphrase" in strategies:
        phrase = _keyphrase(chunk, idf, n_words=rng.choice((3, 4, 5)))
        per.append([Pair(phrase, text, chunk.id, "keyphrase")] if phrase else [])
    phrases = _phrases(text, idf) if "phrase" in strategies or "question" in strategies else []
    if "phrase" in strategies:
        got = []
        if phrases:
            got.append(Pair(" ".join(phrases[:2]), text, chunk.id, "phrase"))
        per.append(got)
    if "question" in strategies:
        got = []
        if phrases:
            got.append(Pair(rng.choice(_SINGLE).format(phrases[0]), text, chunk.id, "question"))
        if len(phrases) >= 2:
            a, b = phrases[1:3] if len(phrases) >= 3 else phrases[:2]
            got.append(Pair(rng.choice(_DOUBLE).format(a, b), text, chunk.id, "question"))
        per.append(got)
    if "title" in strategies:
        heading = " ".join(re.sub(r"[-_]+", " ", h) for h in chunk.heading_path) or (chunk.title or "")
        per.append([Pair(heading, text, chunk.id, "title")] if len(_words(heading)) >= 2 else [])
    per = [g for g in per if g]
    per.sort(key=lambda g: strategies.index(g[0].source))
    if per:
        shift = rng.randrange(len(per))
        per = per[shift:] + per[:shift]
    return [p for group in zip_longest(*per) for p in group if p is not None]


def _retrievable_bm25(queries: list[str], corpus: Sequence[Chunk], targets: list[int], top_k: int) -> list[bool]:
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([c.text for c in corpus], stopwords="en", show_progress=False), show_progress=False)
    k = min(top_k, len(corpus))
    tokens = bm25s.tokenize(queries, stopwords="en", show_progress=False, return_ids=False)
    docs, scores = retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
    # A chunk counts only if it scored: a query with no known word "retrieves" every chunk with score 0.
    return [
        any(int(d) == t and float(s) > 0 for d, s in zip(row, row_scores, strict=True))
        for t, row, row_scores in zip(targets, docs, scores, strict=True)
    ]


def _retrievable_model(
    queries: list[str], corpus: Sequence[Chunk], targets: list[int], top_k: int, embedder: TextEncoder
) -> list[bool]:
    d = embedder.embed_documents([c.text for c in corpus])
    out: list[bool] = []
    for start in range(0, len(queries), 1024):  # bounded memory: 1024 x corpus scores at a time
        q = embedder.embed_queries(queries[start : start + 1024])
        scores = q @ d.T
        own = scores[np.arange(len(q)), targets[start : start + 1024]]
        out.extend(bool(r < top_k) for r in (scores > own[:, None]).sum(axis=1))
    return out


def check_strategies(strategies: Sequence[str], llm: Any) -> None:
    """Raise ``ValueError`` for unknown or no pair strategies, ``"llm"`` without an LLM, or an LLM it cannot call."""
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies or isinstance(strategies, str):
        raise ValueError(f"Unknown pair strategies {unknown or strategies!r}; choose from {list(STRATEGIES)}")
    if "llm" in strategies and llm is None:
        raise ValueError(
            "The 'llm' strategy needs llm= (--llm in the CLI): a LangChain chat model or a callable str -> list[str]"
        )
    if llm is not None and not callable(llm) and not hasattr(llm, "invoke"):
        raise ValueError(
            f"llm={llm!r} is neither a LangChain chat model (a Runnable with .invoke) nor a callable; pass the model "
            "object (e.g. ChatOpenAI(model='gpt-4o-mini')) or a function taking the prompt and returning queries"
        )


def generate_pairs(
    chunks: Sequence[Chunk],
    *,
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    max_per_chunk: int = 3,
    filter: Literal["bm25", "model", "both", "none"] = "bm25",
    top_k: int = 10,
    corpus: Sequence[Chunk] | None = None,
    embedder: TextEncoder | None = None,
    llm: Any = None,
    llm_concurrency: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> PairsResult:
    """Generate filtered, deduplicated query/passage pairs from ``chunks``.

    Args:
        chunks: Chunks to make pairs from (training chunks only: held-out chunks must not be passed).
        strategies: Names from :data:`STRATEGIES` (see the module docstring).
        max_per_chunk: Cap of pairs per chunk.
        filter: ``"bm25"``, ``"model"`` (round-trip filtering with the base model, InPars/Promptagator; needs
            ``embedder``), ``"both"`` (BM25 and the model must both find the chunk) or ``"none"``.
        top_k: A pair is kept if its chunk ranks within the top ``top_k`` of ``corpus`` for the query.
        corpus: Chunks searched by the filter (default: ``chunks``); must contain ``chunks``.
        embedder: Base model for ``filter="model"``.
        llm: LangChain chat model or callable for the ``"llm"`` strategy.
        llm_concurrency: LLM calls in flight at once (:func:`~promptembed.finetune.llm.llm_queries_batch`).
            ``None``: 8 for a LangChain model, 1 for a plain callable; give a number for a thread-safe callable.
            For an LLM whose answer depends on the prompt alone, the pairs are the same at any concurrency.
        seed: Random seed; the same inputs and seed give the same pairs.
        progress: Show a progress bar.

    Returns:
        The kept pairs (chunk order, round-robin over strategies within a chunk) and per-strategy counts.

    Raises:
        ValueError: Unknown strategy or filter, bad ``max_per_chunk``/``top_k``, ``filter="model"`` without an
            embedder, ``"llm"`` without ``llm``, or chunks missing from ``corpus``.
        ConfigError: The LLM gave no usable query for any chunk (every call failed or answered nothing usable);
            the message names the first failure.
    """
    check_strategies(strategies, llm)
    if llm_concurrency is not None and llm_concurrency < 1:
        raise ValueError(f"llm_concurrency={llm_concurrency} must be at least 1 (1: one LLM call at a time)")
    if filter not in ("bm25", "model", "both", "none"):
        raise ValueError(f"Unknown filter {filter!r}; use 'bm25', 'model', 'both' or 'none'")
    if filter in ("model", "both") and embedder is None:
        raise ValueError(f"filter={filter!r} needs embedder= (a PromptEmbedder on the base model)")
    if max_per_chunk < 1 or top_k < 1:
        raise ValueError(f"max_per_chunk={max_per_chunk} and top_k={top_k} must both be at least 1")
    corpus = list(corpus) if corpus is not None else list(chunks)
    index = {c.id: i for i, c in enumerate(corpus)}
    missing = [c.id for c in chunks if c.id not in index]
    if missing:
        raise ValueError(
            f"{len(missing)} chunks (e.g. {missing[0]!r}) are not in the filter corpus; "
            "pass a corpus that contains them"
        )
    n_docs = max(len(corpus), 1)
    df = Counter(w for c in corpus for w in set(_words(c.text)))
    idf = {w: math.log((1 + n_docs) / (1 + n)) + 1.0 for w, n in df.items()}
    rng = random.Random(seed)
    written: list[list[str]] = []
    if "llm" in strategies:
        from promptembed.finetune.llm import llm_queries_batch

        failures: list[str] = []
        written = llm_queries_batch(
            [c.text for c in chunks], llm, concurrency=llm_concurrency, progress=progress, failures=failures
        )
        if chunks and not any(written):  # a wrong model name, key or endpoint: every call fails alike
            raise ConfigError(
                f"The LLM gave no usable query for any of the {len(chunks)} passages; the first failure: "
                f"{failures[0] if failures else 'none recorded'}. Fix llm= (--llm) or drop the 'llm' strategy"
            )
    candidates: list[Pair] = []
    for i, chunk in enumerate(tqdm(chunks, desc="generating pairs", unit="chunk", disable=not progress)):
        found = _candidates(chunk, strategies, idf, rng)
        if written:
            found.extend(Pair(q, chunk.text, chunk.id, "llm") for q in written[i])
        candidates.extend(found)
    stats = {s: {"generated": 0, "filtered": 0, "duplicates": 0, "capped": 0, "kept": 0} for s in strategies}
    for pair in candidates:
        stats[pair.source]["generated"] += 1
    ok = [True] * len(candidates)
    if filter != "none" and candidates:
        queries = [p.query for p in candidates]
        targets = [index[p.chunk_id] for p in candidates]
        if filter in ("bm25", "both"):
            ok = _retrievable_bm25(queries, corpus, targets, top_k)
        if filter in ("model", "both") and embedder is not None:
            by_model = _retrievable_model(queries, corpus, targets, top_k, embedder)
            ok = [a and b for a, b in zip(ok, by_model, strict=True)]
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
    """Write pairs as JSON lines with columns ``query``, ``positive``, ``chunk_id``, ``source`` (UTF-8)."""
    with Path(path).open("w", encoding="utf-8") as f:
        for pair in pairs:
            f.write(json.dumps(asdict(pair), ensure_ascii=False) + "\n")


def load_pairs_jsonl(path: str | Path) -> list[Pair]:
    """Read pairs written by :func:`save_pairs_jsonl` (or edited by hand: ``chunk_id``/``source`` optional).

    Raises:
        ValueError: A line that is not a JSON object with text ``query`` and ``positive`` (names file and line).
    """
    pairs = []
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{n}: not valid JSON ({exc}); each line is one JSON object") from None
            if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("query", "positive")):
                raise ValueError(f"{path}:{n}: each line needs text columns 'query' and 'positive'; got {line[:80]!r}")
            pairs.append(
                Pair(row["query"], row["positive"], str(row.get("chunk_id", "")), str(row.get("source", "file")))
            )
    return pairs
