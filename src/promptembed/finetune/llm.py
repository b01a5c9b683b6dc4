"""Optional LLM-written queries: any LangChain chat model or any callable ``str -> list[str] | str``.

:func:`llm_queries_batch` asks for many passages at once: a LangChain model (any ``Runnable``) through its own
``batch_as_completed`` with ``max_concurrency``, so its rate limiter, callbacks and tracing apply as with
``.batch``; a plain callable one call at a time unless told it is thread-safe (then from a thread pool). An LLM
behind an HTTP API spends most of a call waiting: with 0.5 s per call, 200 chunks took 12.8 s at 8 calls at once
against 101.4 s one at a time (``benchmarks/finetune_llm_concurrency.md``; an API's rate limits cap what
concurrency buys).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from tqdm.auto import tqdm

__all__ = ["DEFAULT_CONCURRENCY", "PROMPT", "llm_queries", "llm_queries_batch", "parse_llm_output"]

#: Calls in flight at once in :func:`llm_queries_batch` for a LangChain model (its ``max_concurrency``).
DEFAULT_CONCURRENCY = 8

logger = logging.getLogger("promptembed")

PROMPT = (
    "Write {n} different search queries that a user might type and that this passage answers. "
    "Return only the queries, one per line.\n\nPassage:\n{passage}"
)

_PREAMBLE = re.compile(
    r"^(sure|here|okay|ok|certainly|of course|below|these are|the following|i hope|hope|let me know)\b", re.IGNORECASE
)
_BULLET = re.compile(
    r"^\s*(?:[-*•+]\s+|\(?\d+[.):]\s*|[a-z][.)]\s+|(?:query|question|q)\s*\d*\s*[:.)-]\s*)", re.IGNORECASE
)


def parse_llm_output(text: str) -> list[str]:
    r"""Extract queries from an LLM answer.

    Handles JSON arrays and objects (the first list value), code fences, Markdown emphasis, numbered or bulleted
    lines, ``Query 1:`` prefixes and escaped ``\\n`` line breaks. When some lines are list items, only those are
    kept, so a preamble ("Sure! Here are ...") or a closing remark ("Hope this helps!") never becomes a query.

    Example:
        >>> parse_llm_output('Sure:\n```json\n{"queries": ["carport permit", "roof colour"]}\n```')
        ['carport permit', 'roof colour']
    """
    if "\n" not in text and "\\n" in text:  # an answer passed on JSON-escaped: literal backslash-n line breaks
        text = text.replace("\\n", "\n")
    body = re.sub(r"```[a-zA-Z]*", "", text).strip()
    start = min((i for i in (body.find("["), body.find("{")) if i >= 0), default=-1)
    if start >= 0:
        end = max(body.rfind("]"), body.rfind("}"))
        try:
            data = json.loads(body[start : end + 1])
        except ValueError:
            data = None
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), None)
        if isinstance(data, list):
            return _clean([str(x) for x in data if isinstance(x, str | int | float)])
    lines = [re.sub(r"\*\*|__", "", raw).strip() for raw in body.splitlines()]
    lines = [line for line in lines if line]
    items = [_BULLET.sub("", line) for line in lines if _BULLET.match(line)]
    if items:
        return _clean(items)
    return _clean([line for line in lines if not _PREAMBLE.match(line) and not line.endswith(":")])


def _clean(items: list[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        q = item.strip().strip('"').strip("'").strip()
        if q and q not in out and len(q) <= 300:
            out.append(q)
    return out


def llm_queries(
    chunk_text: str, llm: Any, *, n: int = 3, max_retries: int = 2, failures: list[str] | None = None
) -> list[str]:
    """Ask ``llm`` for up to ``n`` queries for a passage, in at most ``1 + max_retries`` calls.

    An LLM failure never raises: it costs the passage its queries, with a warning.

    Args:
        chunk_text: The passage.
        llm: A LangChain chat model (``.invoke`` returning a message with ``.content``) or a callable taking the
            prompt and returning a list of strings or a string.
        n: Queries wanted.
        max_retries: Extra attempts after an error or an unusable answer.
        failures: A list to append each failed attempt to (the error, or the unusable answer's start).
    """
    if max_retries < 0:
        raise ValueError(f"max_retries={max_retries} must be 0 or more")
    prompt = PROMPT.format(n=n, passage=chunk_text)
    for attempt in range(1 + max_retries):
        try:
            if hasattr(llm, "invoke"):
                answer: Any = llm.invoke(prompt)
            else:
                answer = llm(prompt)
            queries = _queries(answer)
        except Exception as exc:  # an LLM failure costs this chunk its LLM queries, not the run
            _log_failure(attempt, max_retries, exc, failures)
            continue
        if queries:
            return queries[:n]
        _note_unusable(answer, failures)
    return []


def llm_queries_batch(
    texts: Sequence[str],
    llm: Any,
    *,
    n: int = 3,
    max_retries: int = 2,
    concurrency: int | None = None,
    progress: bool = False,
    failures: list[str] | None = None,
) -> list[list[str]]:
    """:func:`llm_queries` for many passages, up to ``concurrency`` calls at a time; results in input order.

    Each passage gets the same bounded retries as :func:`llm_queries` (at most ``1 + max_retries`` calls, never
    raises); a passage whose calls all fail or answer nothing usable gets ``[]``, and a warning counts them. At
    concurrency 1 the calls are exactly :func:`llm_queries`'s, one passage after another. Above 1 the answers are
    the same for an LLM whose answer depends on the prompt alone; the order in which calls reach the LLM is not.

    Args:
        texts: The passages.
        llm: A LangChain chat model (any ``Runnable``: its ``batch_as_completed`` runs the calls, and a
            ``max_concurrency`` bound with ``with_config`` is kept when it is lower) or a callable taking the prompt
            and returning a list of strings or a string.
        n: Queries wanted per passage.
        max_retries: Extra attempts per passage after an error or an unusable answer.
        concurrency: Calls in flight at once. ``None``: :data:`DEFAULT_CONCURRENCY` for a LangChain model, 1 for a
            plain callable (it may not be thread-safe, as a local model is not); give a number to call a thread-safe
            callable from that many threads.
        progress: Show a progress bar.
        failures: A list to append each failed attempt to (the error, or the unusable answer's start).

    Raises:
        ValueError: ``concurrency`` below 1 or ``max_retries`` below 0.
    """
    runnable = hasattr(llm, "batch_as_completed") and hasattr(llm, "invoke")
    if concurrency is None:
        concurrency = DEFAULT_CONCURRENCY if runnable else 1
    if concurrency < 1:
        raise ValueError(f"concurrency={concurrency} must be at least 1 (1: one call at a time)")
    if max_retries < 0:
        raise ValueError(f"max_retries={max_retries} must be 0 or more")
    out: list[list[str]] = [[] for _ in texts]
    bar = tqdm(total=len(texts), desc="LLM queries", unit="chunk", disable=not progress)
    try:
        if concurrency == 1:
            for i, text in enumerate(texts):
                out[i] = llm_queries(text, llm, n=n, max_retries=max_retries, failures=failures)
                bar.update()
        elif runnable:
            _batch_rounds(texts, llm, out, n, max_retries, concurrency, bar, failures)
        else:
            pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="promptembed-llm")
            try:
                futures = {
                    pool.submit(llm_queries, t, llm, n=n, max_retries=max_retries, failures=failures): i
                    for i, t in enumerate(texts)
                }
                for future in as_completed(futures):
                    out[futures[future]] = future.result()
                    bar.update()
            finally:  # on an interrupt, calls not yet started are dropped rather than sent (and paid for)
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
    empty = sum(not q for q in out)
    if empty:
        logger.warning(
            "The LLM gave no usable queries for %d of %d passages (after %d attempts each); they keep their other "
            "pairs",
            empty, len(texts), 1 + max_retries,
        )  # fmt: skip
    return out


def _batch_rounds(
    texts: Sequence[str],
    llm: Any,
    out: list[list[str]],
    n: int,
    max_retries: int,
    concurrency: int,
    bar: Any,
    failures: list[str] | None,
) -> None:
    """Rounds of ``llm.batch_as_completed``: the passages with no usable answer yet go again, ``max_retries`` times."""
    bound = (getattr(llm, "config", None) or {}).get("max_concurrency")  # a limit set with llm.with_config(...)
    limit = min(concurrency, bound) if isinstance(bound, int) and bound > 0 else concurrency
    prompts = [PROMPT.format(n=n, passage=t) for t in texts]
    pending = list(range(len(texts)))
    for attempt in range(1 + max_retries):
        if not pending:
            break
        retry: list[int] = []
        answers = llm.batch_as_completed(
            [prompts[i] for i in pending], config={"max_concurrency": limit}, return_exceptions=True
        )
        for j, answer in answers:
            i = pending[j]
            try:
                if isinstance(answer, Exception):
                    raise answer
                out[i] = _queries(answer)[:n]
                if not out[i]:
                    _note_unusable(answer, failures)
            except Exception as exc:  # as in llm_queries: costs this passage its queries, not the run
                _log_failure(attempt, max_retries, exc, failures)
            if out[i] or attempt == max_retries:
                bar.update()
            else:
                retry.append(i)
        pending = sorted(retry)


def _log_failure(attempt: int, max_retries: int, exc: Exception, failures: list[str] | None) -> None:
    logger.warning("LLM call failed (attempt %d of %d): %s: %s", attempt + 1, 1 + max_retries, type(exc).__name__, exc)
    if failures is not None:
        failures.append(f"{type(exc).__name__}: {exc}")


def _note_unusable(answer: Any, failures: list[str] | None) -> None:
    if failures is not None:
        text = str(getattr(answer, "content", answer))
        failures.append(f"an answer with no usable query: {text[:120]!r}")


def _queries(answer: Any) -> list[str]:
    """Queries from an LLM's answer: a chat message (its ``content``), a list of strings, or text to parse."""
    if hasattr(answer, "content"):
        content = answer.content
        if isinstance(content, list):  # content blocks (Anthropic's, reasoning models'): their text parts
            content = "\n".join(
                b if isinstance(b, str) else str(b.get("text", ""))
                for b in content
                if isinstance(b, str) or (isinstance(b, dict) and b.get("type") == "text")
            )
        return parse_llm_output(str(content))
    return _clean([str(q) for q in answer]) if isinstance(answer, list) else parse_llm_output(str(answer))
