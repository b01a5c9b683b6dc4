r"""Finetune a sentence-transformers model on your own documents (needs the ``[train]`` extra).

Documents in, a better model out, with its prompts intact: read a folder, chunk it, generate query/passage pairs
without an LLM (or with one), finetune with sentence-transformers' trainer, evaluate before and after on
held-out data, and save atomically with a report.

Example:
    >>> from promptembed.finetune import parse_llm_output
    >>> parse_llm_output("Sure! Here are queries:\\n1. building permit rules\\n2. who pays for repairs?")
    ['building permit rules', 'who pays for repairs?']
"""

from __future__ import annotations

from promptembed._extras import require_module

_REQUIRED = ("datasets", "accelerate", "bm25s", "pypdf", "matplotlib")
for _name in _REQUIRED:
    require_module(
        _name, needed_by="promptembed.finetune needs the [train] extra", install="pip install 'promptembed[train]'"
    )

from promptembed.finetune.api import finetune  # noqa: E402
from promptembed.finetune.chunking import Chunk, chunk_documents  # noqa: E402
from promptembed.finetune.documents import Document, LoadResult, SkippedFile, load_documents  # noqa: E402
from promptembed.finetune.evaluate import RetrievalMetrics, evaluate_retrieval  # noqa: E402
from promptembed.finetune.llm import llm_queries, llm_queries_batch, parse_llm_output  # noqa: E402
from promptembed.finetune.pairs import Pair, PairsResult, generate_pairs, load_pairs_jsonl, save_pairs_jsonl  # noqa: E402
from promptembed.finetune.result import FinetuneResult, FinetuneWorseWarning  # noqa: E402
from promptembed.finetune.supervision import Supervision, load_supervision  # noqa: E402

__all__ = [
    "Chunk",
    "Document",
    "FinetuneResult",
    "FinetuneWorseWarning",
    "LoadResult",
    "Pair",
    "PairsResult",
    "RetrievalMetrics",
    "SkippedFile",
    "Supervision",
    "chunk_documents",
    "evaluate_retrieval",
    "finetune",
    "generate_pairs",
    "llm_queries",
    "llm_queries_batch",
    "load_documents",
    "load_pairs_jsonl",
    "load_supervision",
    "parse_llm_output",
    "save_pairs_jsonl",
]
