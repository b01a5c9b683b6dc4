from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from promptembed.finetune import Chunk, Document, chunk_documents
from promptembed.finetune.chunking import split_sentences


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


def test_text_without_spaces_fits_the_budget_and_nothing_is_lost(tokenizer) -> None:  # type: ignore[no-untyped-def]
    zh = "机器学习是人工智能的一个分支。" * 60 + "这是一个非常长的没有标点的句子" * 40  # no spaces at all
    ja = "東京は日本の首都です！" * 50
    docs = [Document("zh.txt", zh, None, "txt"), Document("ja.md", ja, None, "md")]
    chunks = chunk_documents(docs, tokenizer=tokenizer, max_tokens=50, progress=False)
    for doc in docs:
        mine = [c.text for c in chunks if c.doc_path == doc.path]
        assert len(mine) > 10  # it was one chunk of thousands of tokens, cut to 50 in training
        assert max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in mine) <= 50
        assert "".join(mine) == doc.text  # every character kept, in order, and no space put between them


@pytest.mark.parametrize(
    ("text", "chunk"),
    [
        # sentences written without a space, and a line wrapped inside a sentence, stay without one
        (
            "屋顶需要许可。车棚也需要！\n换行的句子在这里\n继续。Permits take two weeks. 한국어 is kept.",
            "屋顶需要许可。车棚也需要！换行的句子在这里继续。Permits take two weeks. 한국어 is kept.",
        ),
        # spaces the author typed, and paragraph breaks, stay one space each
        ("申请材料\n\n身份证复印件\n\n房产证明", "申请材料 身份证复印件 房产证明"),
        ("屋顶需要许可。施工期 两周。 车棚也是。", "屋顶需要许可。施工期 两周。 车棚也是。"),
        ("第一章 总则\n\nＡＢＣ ＤＥＦ", "第一章 总则 ＡＢＣ ＤＥＦ"),
    ],
)
def test_chinese_and_japanese_text_keeps_its_spacing(tokenizer, text: str, chunk: str) -> None:  # type: ignore[no-untyped-def]
    chunks = chunk_documents(
        [Document("zh.txt", text, None, "txt")], tokenizer=tokenizer, max_tokens=200, progress=False
    )
    assert [c.text for c in chunks] == [chunk]


def test_a_hash_comment_in_a_code_fence_is_not_a_heading(tokenizer) -> None:  # type: ignore[no-untyped-def]
    md = "# Setup\n\nInstall it.\n\n```bash\n# run this first\nmake demo\n```\n\nThen read the report."
    md += "\n\n## Next\n\nMore."
    chunks = chunk_documents([Document("a.md", md, None, "md")], tokenizer=tokenizer, max_tokens=200, progress=False)
    assert [c.heading_path for c in chunks] == [("Setup",), ("Setup", "Next")]
    assert "# run this first" in chunks[0].text and "Then read the report." in chunks[0].text


def test_a_tilde_divider_in_plain_text_does_not_hide_the_headings_after_it(tokenizer) -> None:  # type: ignore[no-untyped-def]
    txt = "# Intro\n\nFirst part.\n\n~~~~~~~~\n\n# Roofs\n\nRoof text."
    chunks = chunk_documents([Document("a.txt", txt, None, "txt")], tokenizer=tokenizer, max_tokens=200, progress=False)
    assert [c.heading_path for c in chunks] == [("Intro",), ("Roofs",)]


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("Крыша старая. Нужно разрешение.", ["Крыша старая.", "Нужно разрешение."]),
        ("Η στέγη είναι παλιά. Χρειάζεται άδεια.", ["Η στέγη είναι παλιά.", "Χρειάζεται άδεια."]),
        ("Der Zaun ist hoch. Über zwei Meter braucht es eine Genehmigung.",
         ["Der Zaun ist hoch.", "Über zwei Meter braucht es eine Genehmigung."]),
        ("Dach ist alt. Łatwo to naprawić!", ["Dach ist alt.", "Łatwo to naprawić!"]),
        ("Ist das so? „Ja“, sagt er. «Ça va», dit-il. ¿Por qué? ¡Sí!",
         ["Ist das so?", "„Ja“, sagt er.", "«Ça va», dit-il.", "¿Por qué?", "¡Sí!"]),
        # as before: a stop before a lowercase word is no boundary; digits and ASCII quotes start one
        ("Use e.g. tiles. 3 rows. \"Red\" ones. (Or) not.",
         ["Use e.g. tiles.", "3 rows.", "\"Red\" ones.", "(Or) not."]),
    ],
)  # fmt: skip
def test_sentences_start_with_a_capital_of_any_script(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


def test_the_sentence_strategy_pairs_cyrillic_text() -> None:
    from promptembed.finetune import generate_pairs

    texts = ["Крыша старая и течёт. Нужно разрешение от города. Ремонт займёт неделю."] * 3
    chunks = [Chunk(id=f"c{i}", doc_path=f"d{i}.md", heading_path=(), text=t, title=None) for i, t in enumerate(texts)]
    made = generate_pairs(chunks, strategies=["sentence"], filter="none", progress=False)
    assert made.pairs, made.stats
    assert all(p.query in split_sentences(texts[0]) for p in made.pairs)


WORDS = ["permit", "roof", "shed", "fence", "window", "drainage", "insurance", "contractor", "municipality", "facade"]


class _CountingTokenizer:
    """A tokenizer that counts the characters it is asked to tokenize."""

    def __init__(self, tokenizer) -> None:  # type: ignore[no-untyped-def]
        self.tokenizer, self.chars = tokenizer, 0

    def __call__(self, text, **kwargs):  # type: ignore[no-untyped-def]
        self.chars += len(text) if isinstance(text, str) else sum(map(len, text))
        return self.tokenizer(text, **kwargs)


def test_text_without_sentence_ends_is_cut_like_adding_one_word_at_a_time(tokenizer) -> None:  # type: ignore[no-untyped-def]
    import random

    rng = random.Random(0)
    words = [rng.choice(WORDS) for _ in range(600)]
    expected: list[str] = []  # the reference: add words while the text so far fits
    part: list[str] = []
    for word in words:
        if part and len(tokenizer(" ".join([*part, word]), add_special_tokens=False)["input_ids"]) > 30:
            expected.append(" ".join(part))
            part = []
        part.append(word)
    expected.append(" ".join(part))
    doc = Document("line.txt", " ".join(words), None, "txt")
    assert [c.text for c in chunk_documents([doc], tokenizer=tokenizer, max_tokens=30, progress=False)] == expected


def test_chunking_text_without_sentence_ends_is_linear(tokenizer) -> None:  # type: ignore[no-untyped-def]
    import random

    rng = random.Random(1)
    text = " ".join(rng.choice(WORDS) for _ in range(20_000))  # 170 KB on one line, no sentence end
    counting = _CountingTokenizer(tokenizer)
    chunks = chunk_documents(
        [Document("line.txt", text, None, "txt")], tokenizer=counting, max_tokens=50, progress=False
    )
    assert " ".join(c.text for c in chunks) == text
    # each character is tokenized a few times (the whole line, a guess, the checks), not once per word of its chunk
    assert counting.chars < 8 * len(text), counting.chars / len(text)


def test_a_run_the_tokenizer_counts_as_one_token_is_cut_by_characters(tokenizer) -> None:  # type: ignore[no-untyped-def]
    run = "abcdefghij" * 3000  # 30 KB without a space: one [UNK] for WordPiece
    doc = Document("run.txt", f"Intro words here. {run} and after.", None, "txt")
    chunks = chunk_documents([doc], tokenizer=tokenizer, max_tokens=50, progress=False)
    assert max(len(c.text) for c in chunks) <= 50 * 16  # chunking.MAX_CHARS_PER_TOKEN
    assert "".join(c.text for c in chunks).replace(" ", "") == doc.text.replace(" ", "")
