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

_PREAMBLE = re.compile(r"^(sure|here|okay|ok|certainly|of course|below|these are|the following)\b.*:?$", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*•]|\(?\d+[.)]|[a-z][.)]|q\d*[:.)])\s*", re.IGNORECASE)


def parse_llm_output(text: str) -> list[str]:
    """Extract queries from an LLM answer: JSON arrays/objects, numbered or bulleted lines, code fences, preambles."""
    body = re.sub(r"```[a-zA-Z]*", "", text).strip()
    start = min((i for i in (body.find("["), body.find("{")) if i >= 0), default=-1)
    if start >= 0:
        try:
            data = json.loads(body[start:])
        except ValueError:
            data = None
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), None)
        if isinstance(data, list):
            return _clean([str(x) for x in data if isinstance(x, str | int | float)])
    lines = []
    for raw in body.splitlines():
        line = raw.strip()
        if (
            not line
            or (_PREAMBLE.match(line) and line.endswith(":"))
            or (_PREAMBLE.match(line) and not _BULLET.match(raw))
        ):
            continue
        lines.append(_BULLET.sub("", line))
    return _clean(lines)


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
