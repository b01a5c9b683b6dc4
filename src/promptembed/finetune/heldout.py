"""Held-out pseudo-queries that do not reward the training templates.

The estimate a user without real questions sees must not go up just because the model learned the pair
generator's own templates (a "What is X?" model scored on "What is X?" queries). So held-out queries come from one
fixed generator, whatever strategies trained the model: one natural sentence of each held-out chunk, with that
sentence cut out of the chunk in the corpus, so the query is never a substring of its gold passage. Every other
chunk of the corpus (training chunks included) is a distractor. A held-out chunk too short for that (one
sentence, as with a tiny model's short chunks) gets a keyphrase query (its most salient words) instead.
It shares its generator with the ``sentence`` training strategy, so it can still reward heavy inverse-cloze
training (benchmarks/FINETUNE.md: issue #16's run-5 configuration rose here while real questions fell);
``make bench-finetune`` reports how well it ranks configurations the way real questions do.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from promptembed.finetune.chunking import Chunk, split_sentences
from promptembed.finetune.distributed import is_main_process

if TYPE_CHECKING:
    from promptembed.finetune._steps import EvalSet

__all__ = [
    "KEYWORD_EVAL",
    "SPECIALIZATION_LIMIT",
    "SPECIALIZATION_MIN_QUERIES",
    "evaluation_sets",
    "heldout_queries",
    "specialization",
]

logger = logging.getLogger("promptembed")

#: The held-out keyword queries of the second guard (:attr:`FinetuneResult.specialized`).
KEYWORD_EVAL = "heldout_keyword_queries"

_MIN_WORDS = 5

#: The second guard: on held-out keyword queries (each held-out chunk's most salient words), a finetune that closes
#: more than this share of the base model's misses has specialized to keyword matching. On zaragoza (the development
#: set), every configuration that cost real questions more than 0.02 closed 0.78 to 0.87 of them, and every run that
#: gained on either domain 0.10 to 0.66; on Debian (the test set) run 5 cost 0.032 and closed only 0.58, so it is not
#: flagged there (benchmarks/FINETUNE.md, "A second guard").
SPECIALIZATION_LIMIT = 0.7
#: Fewer held-out keyword queries than this and the check is left out: too few to tell 0.7 from 0.5 (on 200 zaragoza
#: answers, 20 queries put a harmful run at 0.31; on 300, 30 queries put it at 0.83 to 1.0).
SPECIALIZATION_MIN_QUERIES = 30


def specialization(base: float, finetuned: float) -> float | None:
    """The share of the base model's misses on held-out keyword queries that the finetuned model closes.

    ``(finetuned - base) / (1 - base)`` in nDCG@10; ``None`` when the base misses nothing.

    Example:
        >>> round(specialization(0.8, 0.96), 2)
        0.8
    """
    return None if base >= 1.0 else (finetuned - base) / (1.0 - base)


def heldout_queries(
    held: Sequence[Chunk], corpus: Sequence[Chunk], *, seed: int, generator: str = "sentence", per_chunk: int = 1
) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    """Queries from held-out chunks; the corpus holds every chunk, held-out ones without their queries' sentences.

    Args:
        held: Held-out chunks (never trained on).
        corpus: All chunks (must include ``held``).
        seed: Picks the sentence of each chunk.
        generator: ``"sentence"`` (a sentence of the chunk), ``"ask"`` (a sentence rewritten as the question it
            answers, :func:`~promptembed.finetune.questions.sentence_to_question`; chunks with no rewritable
            sentence are left out) or ``"keyphrase"`` (the chunk's most salient words; the chunk stays whole).
        per_chunk: Queries per chunk (sentences generators), at most half of its sentences: all of them are cut
            out of the chunk's passage.

    Returns:
        ``(queries, corpus, relevant)`` for :func:`~promptembed.finetune.evaluate.evaluate_retrieval`; empty
        queries when no held-out chunk has two usable sentences.

    Example:
        >>> from promptembed.finetune.chunking import Chunk
        >>> c = Chunk("c1", "a.md", (), "Roofs need care every year. Moss grows on old tiles quickly.", None)
        >>> q, corpus, rel = heldout_queries([c], [c], seed=0)
        >>> q["h0"] in corpus["c1"], rel
        (False, {'h0': {'c1'}})
    """
    from promptembed.finetune.pairs import generate_pairs
    from promptembed.finetune.questions import sentence_to_question

    if generator not in ("sentence", "ask", "keyphrase"):
        raise ValueError(f"Unknown held-out generator {generator!r}; use 'sentence', 'ask' or 'keyphrase'")
    rng = random.Random(seed)
    texts = {c.id: c.text for c in corpus}
    queries: dict[str, str] = {}
    relevant: dict[str, set[str]] = {}
    short: list[Chunk] = []
    for chunk in held if generator != "keyphrase" else ():
        sentences = split_sentences(chunk.text)
        asked = {i: sentence_to_question(s) for i, s in enumerate(sentences)} if generator == "ask" else {}
        usable = [i for i, s in enumerate(sentences) if len(s.split()) >= _MIN_WORDS and asked.get(i, s)]
        if per_chunk == 1:
            picks = [rng.choice(usable)] if len(sentences) >= 2 and usable else []
        else:
            rng.shuffle(usable)
            picks = usable[: min(per_chunk, len(sentences) // 2)]  # at least half of the chunk stays as its passage
        rest = " ".join(s for i, s in enumerate(sentences) if i not in picks)
        if not picks or len(rest.split()) < _MIN_WORDS:
            if generator == "sentence":
                short.append(chunk)
            continue
        for pick in sorted(picks):
            qid = f"h{len(queries)}"
            queries[qid] = asked.get(pick) or sentences[pick]
            relevant[qid] = {chunk.id}
        texts[chunk.id] = rest
    if generator == "keyphrase":
        short = list(held)
    if short:
        fallback = generate_pairs(
            short, strategies=("keyphrase",), corpus=list(corpus), max_per_chunk=1, seed=seed, progress=False
        )
        for pair in fallback.pairs:
            qid = f"h{len(queries)}"
            queries[qid] = pair.query
            relevant[qid] = {pair.chunk_id}
    return queries, texts, relevant


def evaluation_sets(
    held_chunks: Sequence[Chunk], chunks: Sequence[Chunk], *, seed: int, real_questions: EvalSet | None
) -> tuple[dict[str, EvalSet], str | None]:
    """The sets a finetune is evaluated on, and why the keyword check cannot run (``None`` when it can).

    Held-out pseudo-queries (``heldout_pseudo_queries``), held-out keyword queries for the second guard when there
    are at least :data:`SPECIALIZATION_MIN_QUERIES` of them (:data:`KEYWORD_EVAL`), and the user's real questions
    (``eval_queries``) when given.
    """
    evals: dict[str, EvalSet] = {}
    skipped: str | None = None
    if held_chunks:
        held = heldout_queries(held_chunks, chunks, seed=seed + 1)
        if held[0]:
            evals["heldout_pseudo_queries"] = held
            keywords = heldout_queries(held_chunks, chunks, seed=seed + 2, generator="keyphrase")
            if len(keywords[0]) >= SPECIALIZATION_MIN_QUERIES:  # the second guard (FinetuneResult.specialized)
                evals[KEYWORD_EVAL] = keywords
            elif real_questions is None:  # with real questions the keyword check has nothing to say
                skipped = (
                    f"{len(keywords[0])} held-out keyword queries, fewer than the {SPECIALIZATION_MIN_QUERIES} "
                    "the worse-than-base keyword check needs (give more documents, or eval_queries= / "
                    "--eval-queries)"
                )
                if is_main_process():  # once, not on every DDP rank
                    logger.warning("keyword check skipped: %s", skipped)
    if real_questions is not None:
        evals["eval_queries"] = real_questions
    return evals, skipped
