"""The "ask" strategy: declarative sentences rewritten by rules as the questions they answer."""

from __future__ import annotations

import pytest

from promptembed.finetune import generate_pairs
from promptembed.finetune.chunking import Chunk, split_sentences
from promptembed.finetune.questions import sentence_to_question


@pytest.mark.parametrize(
    ("sentence", "question"),
    [
        # do-support on a 3rd-person verb, with "no" -> "a" after need/require
        (
            "A carport needs a building permit in most municipalities.",
            "Does a carport need a building permit in most municipalities?",
        ),
        (
            "Zaragoza AB provides a 10-year warranty on workmanship.",
            "Does Zaragoza AB provide a 10-year warranty on workmanship?",
        ),
        ("The roof repair requires no permit.", "Does the roof repair require a permit?"),
        ("The law applies to holiday homes.", "Does the law apply to holiday homes?"),
        # auxiliary inversion, negation dropped, the reader becomes "I"
        ("You cannot deduct the cost of materials, only labour.", "Can I deduct the cost of materials?"),
        ("Materials are not ROT-eligible.", "Are materials ROT-eligible?"),
        ("You are encouraged to explore its contents.", "Am I encouraged to explore its contents?"),
        (
            "The contractor must then rectify the defects and a new inspection is held.",
            "Must the contractor then rectify the defects?",
        ),
        # definitions
        ("A bygglov is an official decision from the municipality.", "What is a bygglov?"),
        ("The apt-get and apt-cache commands are basic tools.", "What are the apt-get and apt-cache commands?"),
        # purpose
        ("To install a source package, run apt-get source.", "How do I install a source package?"),
        ("If you want to upgrade the kernel, reboot afterwards.", "How do I upgrade the kernel?"),
    ],
)
def test_rules(sentence: str, question: str) -> None:
    assert sentence_to_question(sentence) == question


@pytest.mark.parametrize(
    "sentence",
    [
        "It rained.",  # too short
        "Does a carport need a permit?",  # already a question
        "It is required for new construction.",  # a pronoun subject says nothing on its own
        "Although most devices are supported, some are not.",  # the subject would start with a conjunction
        "Other users in the group which the file belongs to (g)",  # "users" is not a verb here
        "The following are the most common options for the command line tool.",  # "following" is no subject
        "Heat pumps lower energy bills for houses.",  # no auxiliary and no known verb
        "Useful when there is no detailed plan.",  # the words before the verb are no subject
    ],
)
def test_no_rule_gives_none(sentence: str) -> None:
    assert sentence_to_question(sentence) is None


def test_ask_pairs_are_questions_whose_sentence_is_cut_out_of_the_passage() -> None:
    text = (
        "A carport needs a building permit in most municipalities. The roof area decides whether it does. "
        "You can apply online with drawings of the plot."
    )
    chunk = Chunk("c0", "a.md", (), text, None)
    other = Chunk("c1", "b.md", (), "Heat pumps lower energy bills. Installers must be certified by the state.", None)
    result = generate_pairs([chunk], strategies=["ask"], corpus=[chunk, other], max_per_chunk=5, filter="none",
                            seed=0, progress=False)  # fmt: skip
    got = {p.query: p.positive for p in result.pairs}
    sentences = split_sentences(text)
    assert set(got) == {
        "Does a carport need a building permit in most municipalities?",
        "Can I apply online with drawings of the plot?",
    }
    for query, positive in got.items():
        source = next(s for s in sentences if sentence_to_question(s) == query)
        assert source not in positive and positive == " ".join(s for s in sentences if s != source)
    assert result.stats["ask"] == {"generated": 2, "filtered": 0, "duplicates": 0, "capped": 0, "kept": 2}
