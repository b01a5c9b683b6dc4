from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from promptembed.finetune import Document, chunk_documents


@pytest.fixture(scope="module")
def tokenizer(minilm_dir: Path):  # type: ignore[no-untyped-def]
    return AutoTokenizer.from_pretrained(str(minilm_dir))


def test_heading_paths_markdown_rst_html(tokenizer) -> None:  # type: ignore[no-untyped-def]
    md = Document(
        "a.md", "# Permits\n\nIntro.\n\n## Carports\n\nA carport needs a permit.\n\n# Energy\n\nHeat.", "a", "md"
    )
    rst = Document("b.rst", "Guide\n=====\n\nTop.\n\nRoofs\n-----\n\nRoof text.", "b", "rst")
    html = Document("c.html", "# Heat\n\nHeat pumps.\n\n## Noise\n\nQuiet ones.", "c", "html")
    chunks = chunk_documents([md, rst, html], tokenizer=tokenizer, max_tokens=64, progress=False)
    got = [(c.doc_path, c.heading_path, c.text) for c in chunks]
    assert got == [
        ("a.md", ("Permits",), "Intro."),
        ("a.md", ("Permits", "Carports"), "A carport needs a permit."),
        ("a.md", ("Energy",), "Heat."),
        ("b.rst", ("Guide",), "Top."),
        ("b.rst", ("Guide", "Roofs"), "Roof text."),
        ("c.html", ("Heat",), "Heat pumps."),
        ("c.html", ("Heat", "Noise"), "Quiet ones."),
    ]


def test_chunks_fit_the_token_budget_and_ids_are_stable(tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = " ".join(f"Sentence number {i} talks about permits and roofs." for i in range(200))
    text += " " + "x" * 3000 + " " + "word " * 500
    doc = Document("long.txt", text, None, "txt")
    chunks = chunk_documents([doc], tokenizer=tokenizer, max_tokens=50, progress=False)
    assert len(chunks) > 10
    lengths = [len(tokenizer(c.text, add_special_tokens=False)["input_ids"]) for c in chunks]
    assert max(lengths) <= 50, max(lengths)
    again = chunk_documents([doc], tokenizer=tokenizer, max_tokens=50, progress=False)
    assert [c.id for c in again] == [c.id for c in chunks]
    assert len({c.id for c in chunks}) == len(chunks)
