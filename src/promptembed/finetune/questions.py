"""Rewrite a declarative sentence as the question it answers, by rules (no model, no LLM): the ``"ask"`` strategy.

Real users type questions ("Do I need a permit for a carport?"), but a document holds statements. Cut-out
sentences (the ``"sentence"`` strategy) teach a model which context a statement belongs to; rewriting the same
sentence as a question also teaches it the form users ask in. Only closed-class words are used (auxiliaries,
pronouns, a short list of common verbs), so the rules need no tagger and work on any English text:

- purpose: ``"To install a source package, run ..."`` -> ``"How do I install a source package?"``
  (also ``"If you want to X, ..."``);
- definition: ``"A bygglov is an official decision ..."`` -> ``"What is a bygglov?"``;
- auxiliary inversion: ``"You can deduct the cost ..."`` -> ``"Can I deduct the cost?"``, negation dropped
  (``"cannot"`` -> ``"Can ..."``), so the sentence answers it with yes or no;
- do-support for a few common verbs: ``"A carport needs a permit ..."`` -> ``"Does a carport need a permit?"``.

The question keeps the sentence's clause up to the first comma or subordinate clause (at most
``_MAX_WORDS`` words after the verb), as real questions are short. A sentence no rule fits gives None.
"""

from __future__ import annotations

import re

__all__ = ["sentence_to_question"]

_MAX_SUBJECT = 6
_MAX_WORDS = 12
_AUX = {
    "is", "are", "can", "could", "must", "should", "may", "might", "will", "would", "cannot", "can't", "won't",
    "isn't", "aren't", "shouldn't", "mustn't",
}  # fmt: skip
_NEGATED = {"cannot": "can", "can't": "can", "won't": "will", "isn't": "is", "aren't": "are", "shouldn't": "should",
            "mustn't": "must"}  # fmt: skip
_DO_VERBS = {
    "need", "require", "apply", "qualify", "cost", "take", "include", "cover", "allow", "contain", "provide",
    "support", "use", "mean", "work", "depend", "affect", "count", "pay", "get", "create", "install", "run", "show",
    "store", "keep", "change", "handle", "replace", "remove", "set", "start", "stop", "read", "write", "make",
}  # fmt: skip
_PRONOUN_SUBJECTS = {"it", "this", "that", "there", "they", "these", "those", "he", "she", "we", "which", "what",
                     "here", "such", "both", "each", "one", "its", "their", "his", "her", "our", "all"}  # fmt: skip
_DETERMINERS = {"the", "a", "an", "this", "that", "these", "those", "my", "your", "our", "their", "its", "some", "any",
                "no", "every", "each", "all", "most", "many"}  # fmt: skip
_CONNECTIVES = {
    "when",
    "if",
    "where",
    "that",
    "which",
    "who",
    "whether",
    "there",
    "it",
    "because",
    "as",
    "than",
    "so",
    "following",
}
_TRAILING = {"and", "or", "the", "a", "an", "of", "to", "with", "by", "for", "in", "on", "at", "from", "as", "than"}
_OPENERS = {"for", "although", "but", "now", "in", "on", "at", "with", "by", "from", "after", "before", "during",
            "since", "while", "also", "however", "then", "thus", "and", "or", "to", "of", "under", "over", "without",
            "within", "through", "via", "like", "unlike", "once", "today", "usually", "often", "normally",
            "generally", "sometimes", "only", "even", "just", "still", "please", "see", "note", "otherwise",
            "instead", "again", "first", "finally", "alternatively", "unfortunately", "fortunately"}  # fmt: skip
_CLAUSE_END = re.compile(
    r"[,;:(\[]|\s[-–—]\s|\s(?:because|since|although|though|unless|whereas|while|which|so that|but|and then|e\.g\.|"
    r"i\.e\.|for example|such as|and (?:a|an|the|it|this|there|you|then))\s",
    re.IGNORECASE,
)
_WORD = re.compile(r"\S+")
_LEAD = re.compile(r"^(?:[*\-•]+\s*|\d+(?:\.\d+)*\.?\s+|(?:Yes|No|Note|Tip)[,:.!]\s+)+")
_SWAP = {"you": "I", "your": "my", "yours": "mine", "yourself": "myself"}


def _third_person(word: str) -> str | None:
    """The base form of a 3rd-person-singular verb in ``_DO_VERBS`` (``"applies"`` -> ``"apply"``), else None."""
    if word.endswith("ies"):
        base = word[:-3] + "y"
    elif word.endswith(("ches", "shes", "sses", "xes", "zes")):
        base = word[:-2]
    elif word.endswith("s") and not word.endswith("ss"):
        base = word[:-1]
    else:
        return None
    return base if base in _DO_VERBS else None


def _clause(words: list[str]) -> list[str]:
    text = " ".join(words)
    cut = _CLAUSE_END.search(" " + text + " ")
    if cut:
        text = (" " + text)[: cut.start()].strip()
    out = text.rstrip(".!?:;").split()[:_MAX_WORDS]
    while out and out[-1].lower() in _TRAILING:
        out.pop()
    return out


def _swap(words: list[str], *, subject: bool = False) -> list[str]:
    """The reader's words: "you" -> "I" (as the subject) or "me", "your" -> "my"."""
    swap = {**_SWAP, "you": "I" if subject else "me"}
    return [swap.get(w.lower(), w) for w in words]


def _subject_ok(subject: list[str]) -> bool:
    if not 1 <= len(subject) <= _MAX_SUBJECT:
        return False
    if subject[0].lower() in _PRONOUN_SUBJECTS | _OPENERS or any(not re.search(r"\w", w) for w in subject):
        return False
    if all(w.lower() in _DETERMINERS for w in subject) or any(w.lower() in _CONNECTIVES for w in subject):
        return False
    return not any(w.lower() in _AUX or w.endswith((",", ";", ":")) for w in subject)


def _lower_first(subject: list[str]) -> list[str]:
    """Lower-case a sentence-initial capital ("The" -> "the"), not a name's ("Zaragoza AB", "RUT", "McAfee")."""
    first = subject[0]
    name = not first[:1].isupper() or not first[1:].islower() or (len(subject) > 1 and subject[1][:1].isupper())
    return subject if name and first.lower() not in _DETERMINERS else [first.lower(), *subject[1:]]


def _finish(words: list[str]) -> str | None:
    text = " ".join(words).strip()
    if len(words) < 3 or not re.search(r"[^\W\d_]{3}", text):
        return None
    return text[0].upper() + text[1:] + "?"


def sentence_to_question(sentence: str) -> str | None:
    """The question ``sentence`` answers, or None when no rule fits.

    Example:
        >>> sentence_to_question("A carport needs a building permit in most municipalities.")
        'Does a carport need a building permit in most municipalities?'
        >>> sentence_to_question("To install a source package, run apt-get source.")
        'How do I install a source package?'
        >>> sentence_to_question("You cannot deduct the cost of materials, only labour.")
        'Can I deduct the cost of materials?'
        >>> sentence_to_question("A bygglov is an official decision from the municipality.")
        'What is a bygglov?'
        >>> sentence_to_question("It rained.") is None
        True
    """
    s = _LEAD.sub("", " ".join(sentence.split())).strip()
    if "?" in s or not s or not s[0].isalpha():
        return None
    purpose = re.match(r"^(?:To|In order to|If you (?:want|need|wish) to)\s+([^,;:]{3,90}?),\s", s)
    if purpose:
        goal = _swap(_clause(purpose.group(1).split()))
        return _finish(["How", "do", "I", *goal])
    words = _WORD.findall(s)
    if not 4 <= len(words) <= 60:
        return None
    for i, word in enumerate(words[: _MAX_SUBJECT + 1]):
        low = word.lower()
        subject = words[:i]
        defines = low in ("is", "are") and i + 1 < len(words) and words[i + 1].lower() in ("a", "an", "the", "one")
        if low == "are" and not defines:  # "X are basic tools.": a short plural noun phrase is a definition too
            predicate = _clause(words[i + 1 :])
            defines = (
                1 <= len(predicate) <= 3
                and predicate[-1].lower().endswith("s")
                and len(predicate) == len(words[i + 1 :])
            )
        if defines and _subject_ok(subject):
            return _finish(["What", low, *_lower_first(subject)])
        if low in _AUX:
            if not _subject_ok(subject):
                return None
            aux = _NEGATED.get(low, low)
            rest = words[i + 1 :]
            if rest and rest[0].lower() in ("not", "never"):
                rest = rest[1:]
            rest = _clause(rest)
            if len(rest) < (1 if aux in ("is", "are") else 2):  # "Must a plan describe?" says too little
                return None
            if [w.lower() for w in subject] == ["you"]:
                aux = "am" if aux == "are" else aux
            return _finish([aux.capitalize(), *_swap(_lower_first(subject), subject=True), *_swap(rest)])
        base = _third_person(low) if i else None
        if base is None and i and low in _DO_VERBS and subject and subject[-1].lower().endswith("s"):
            base, do = low, "Do"
        else:
            do = "Does"
        if base is not None:
            if not _subject_ok(subject):
                return None
            rest = _clause(words[i + 1 :])
            if not rest:
                return None
            if base in ("need", "require") and rest and rest[0].lower() == "no":
                rest = ["a", *rest[1:]]
            if [w.lower() for w in subject] == ["you"]:
                do = "Do"
            return _finish([do, *_swap(_lower_first(subject), subject=True), base, *_swap(rest)])
    return None
