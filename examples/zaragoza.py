"""The zaragoza-construction-faq journey: its answers as "your documents", its real questions as the test.

Data: zaragoza-construction-faq (PyPI), 503 English Q&A pairs on Swedish construction law by Zaragoza AB,
CC BY 4.0 (https://zaragoza.se, DOI 10.5281/zenodo.19630803). Only the ANSWERS are used to build training data;
the real QUESTIONS are used only for evaluation (base vs finetuned, all 503 answers as the corpus).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import zaragoza_construction_faq as zaragoza

CREDIT = "Data: zaragoza-construction-faq by Zaragoza AB (https://zaragoza.se), CC BY 4.0, DOI 10.5281/zenodo.19630803"


def load_faq() -> list[dict[str, str]]:
    """The 503 English Q&A records (question, answer, category)."""
    return [{"question": r["q"], "answer": r["a"], "category": r["category"]} for r in zaragoza.load(lang="en")]


def write_documents(records: list[dict[str, str]], folder: Path) -> Path:
    """One Markdown file per answer, under a heading with its category (answers only: no question text)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(records):
        slug = re.sub(r"[^a-z0-9]+", "-", r["category"].lower()).strip("-") or "general"
        (folder / f"{i:03d}-{slug}.md").write_text(f"# {r['category']}\n\n{r['answer']}\n", encoding="utf-8")
    return folder


def write_eval_queries(records: list[dict[str, str]], path: Path) -> Path:
    """The real questions with their gold answers, as the eval file (columns query, positive)."""
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps({"query": r["question"], "positive": r["answer"]}, ensure_ascii=False) + "\n")
    return path
