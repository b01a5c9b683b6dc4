"""Optional LLM-written queries: any LangChain chat model or any callable ``str -> list[str] | str``."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

__all__ = ["PROMPT", "llm_queries", "parse_llm_output"]

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


def llm_queries(chunk_text: str, llm: Any, *, n: int = 3, max_retries: int = 2) -> list[str]:
    """Ask ``llm`` for up to ``n`` queries for a passage; at most ``1 + max_retries`` calls, never raises.

    Args:
        chunk_text: The passage.
        llm: A LangChain chat model (``.invoke`` returning a message with ``.content``) or a callable taking the
            prompt and returning a list of strings or a string.
        n: Queries wanted.
        max_retries: Extra attempts after an error or an unusable answer.
    """
    prompt = PROMPT.format(n=n, passage=chunk_text)
    for attempt in range(1 + max_retries):
        try:
            if hasattr(llm, "invoke"):
                answer: Any = llm.invoke(prompt)
                answer = getattr(answer, "content", answer)
            else:
                answer = llm(prompt)
            queries = _clean([str(q) for q in answer]) if isinstance(answer, list) else parse_llm_output(str(answer))
        except Exception as exc:  # an LLM failure costs this chunk its LLM queries, not the run
            logger.warning("LLM call failed (attempt %d of %d): %s", attempt + 1, 1 + max_retries, exc)
            continue
        if queries:
            return queries[:n]
    return []
