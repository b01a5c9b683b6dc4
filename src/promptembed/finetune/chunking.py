"""Heading-aware chunking to the base model's token budget.

Markdown ``#`` headings, reStructuredText underlined titles and HTML ``h1``-``h6`` (converted to Markdown by
the loader) open sections; each chunk keeps the heading path it sits under. Section bodies are packed
paragraph by paragraph, then sentence by sentence, then word by word, so no chunk exceeds ``max_tokens``.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from promptembed.finetune.documents import Document

__all__ = ["Chunk", "chunk_documents", "split_sentences"]

_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+<>_:.])\1{2,}\s*$")
#: A sentence boundary candidate: ., ! or ? and spaces before more text (kept only before a sentence start, see
#: :func:`_starts_sentence`), or a CJK full stop, ! or ? (written without a space after).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)|(?<=[。！？])\s*")
#: Opening quotes and brackets that may stand before a sentence's first letter, and Spanish's inverted ¿ and ¡.
_OPENERS = "\"'([“‘„«‹¿¡"
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
#: Chinese and Japanese characters and punctuation (not Hangul: Korean puts spaces between words).
_CJK = re.compile(
    r"[\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef\U00020000-\U0003ffff]"
)
_WHITESPACE = re.compile(r"\s+")
#: Characters a chunk may hold per token of its budget. A tokenizer may count a long run as one token (BERT's
#: [UNK] for a word over 100 characters), so the token count alone would let 300 KB without a space into one chunk.
#: Prose runs at about 4 characters a token (English, WordPiece or SentencePiece) and CJK at 1-2; 16 is four times
#: that, so normal text never meets this bound and a chunk of the tokenizer's [UNK]s stays a readable size
#: (4032 characters at a 252-token budget).
MAX_CHARS_PER_TOKEN = 16


@dataclass(frozen=True)
class Chunk:
    """A piece of a document that fits the model's token budget."""

    id: str
    doc_path: str
    heading_path: tuple[str, ...]
    text: str
    title: str | None


def _flatten(para: str) -> str:
    r"""One paragraph on one line: each run of whitespace becomes one space, but a line break inside CJK text goes.

    A line break between two Chinese or Japanese characters goes away: that text has no spaces to begin with.

    Example:
        >>> _flatten("Roofs  need\npermits."), _flatten("屋顶需要\n许可。施工期 两周")
        ('Roofs need permits.', '屋顶需要许可。施工期 两周')
    """
    para = para.strip()

    def gap(m: re.Match[str]) -> str:
        joined = "\n" in m.group() and _CJK.match(para[m.start() - 1]) and _CJK.match(para[m.end()])
        return "" if joined else " "

    return _WHITESPACE.sub(gap, para)


def _starts_sentence(text: str, i: int) -> bool:
    """Whether a sentence may start at ``text[i]``: a capital or a digit, after at most one opening quote or bracket.

    A capital is an uppercase (or titlecase) letter of any script; a digit any decimal digit.
    """
    if text[i] in _OPENERS and i + 1 < len(text):
        i += 1
    char = text[i]
    return char.isupper() or char.istitle() or char.isdecimal()


def _sentence_ends(flat: str) -> Iterator[re.Match[str]]:
    """The sentence boundaries of one flattened paragraph (:data:`_SENTENCE_END` where a sentence starts)."""
    for m in _SENTENCE_END.finditer(flat):
        if flat[m.start() - 1] in ".!?" and not _starts_sentence(flat, m.end()):
            continue
        yield m


def _sentence_pieces(text: str) -> list[tuple[str, bool]]:
    """Sentences of ``text`` (see :func:`split_sentences`), each with whether a space stood before it.

    Sentences of one paragraph are apart by what stood between them (a space, or nothing after a CJK full stop
    written without one); paragraphs are apart by a space.
    """
    out: list[tuple[str, bool]] = []
    for para in re.split(r"\n\s*\n", text):
        flat = _flatten(para)
        spaced, start = True, 0
        for m in [*_sentence_ends(flat), None]:
            sentence = flat[start : m.start() if m else len(flat)].strip()
            if sentence:
                out.append((sentence, spaced))
            if m is not None:
                spaced, start = bool(m.group()) or not sentence, m.end()
    return out


def split_sentences(text: str) -> list[str]:
    r"""Split text into sentences: ., ! or ? then a space before a capital, or a CJK full stop, ! or ? (rule-based).

    A capital is an uppercase letter of any script (Latin, Cyrillic, Greek, ...) or a digit, after at most one
    opening quote or bracket (``"``, ``“``, ``„``, ``«``, ``(``, ``¿``, ...); a stop before a lowercase word
    (``e.g. this``) is not a boundary.

    Example:
        >>> split_sentences("Roofs need permits. Carports too.\n\n屋顶需要许可。车棚也是。")
        ['Roofs need permits.', 'Carports too.', '屋顶需要许可。', '车棚也是。']
        >>> split_sentences("Крыша старая. Нужно разрешение. «Über» zwei Meter? ¿Por qué?")
        ['Крыша старая.', 'Нужно разрешение.', '«Über» zwei Meter?', '¿Por qué?']
    """
    return [sentence for sentence, _ in _sentence_pieces(text)]


def _join(parts: Sequence[tuple[str, bool]]) -> str:
    """Join ``(text, spaced)`` parts: a space before each part that had one in the document."""
    return "".join((" " if spaced and i else "") + text for i, (text, spaced) in enumerate(parts))


def _sections(doc: Document) -> Iterator[tuple[tuple[str, ...], str]]:
    path: list[tuple[int, str]] = []
    body: list[str] = []
    rst_levels: list[str] = []
    lines = doc.text.splitlines()

    def flush() -> Iterator[tuple[tuple[str, ...], str]]:
        text = "\n".join(body).strip()
        if text:
            yield tuple(h for _, h in path), text
        body.clear()

    fence: str | None = None  # the open code fence: a "# comment" inside it is code, not a heading
    i = 0
    while i < len(lines):
        line = lines[i]
        opened = _FENCE.match(line) if doc.format == "md" else None  # in plain text, ``` or ~~~ may be a divider
        if opened or fence is not None:  # a fence line, or a line inside a fence: body text
            if fence is None:
                fence = opened.group(1) if opened else None
            elif opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = None  # the closing fence: same character, at least as long
            body.append(line)
            i += 1
            continue
        md = _MD_HEADING.match(line) if doc.format in ("md", "html", "txt") else None
        rst = (
            doc.format == "rst"
            and i + 1 < len(lines)
            and line.strip()
            and _RST_UNDERLINE.match(lines[i + 1])
            and len(lines[i + 1].rstrip()) >= len(line.rstrip())
        )
        if md:
            yield from flush()
            level = len(md.group(1))
            path = [(lv, h) for lv, h in path if lv < level] + [(level, md.group(2).strip())]
        elif rst:
            yield from flush()
            char = lines[i + 1].strip()[0]
            if char not in rst_levels:
                rst_levels.append(char)
            level = rst_levels.index(char) + 1
            path = [(lv, h) for lv, h in path if lv < level] + [(level, line.strip())]
            i += 1
        else:
            body.append(line)
        i += 1
    yield from flush()


def chunk_documents(
    documents: Sequence[Document], *, tokenizer: Any, max_tokens: int, progress: bool = True
) -> list[Chunk]:
    """Split documents into heading-aware chunks of at most ``max_tokens`` tokens (no special tokens).

    Args:
        documents: Documents from :func:`~promptembed.finetune.documents.load_documents`.
        tokenizer: The base model's tokenizer (``SentenceTransformer.tokenizer``).
        max_tokens: Token budget per chunk: the model's max_seq_length minus its document prompt and specials.
        progress: Show a progress bar.

    Returns:
        Chunks with stable ids (a hash of the document path and position), in document order.
    """
    if max_tokens < 8:
        raise ValueError(f"max_tokens={max_tokens} is too small to chunk text; use at least 8")

    def n_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"])

    def sizes_of(texts: list[str]) -> list[int]:
        ids = tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        return [len(i) for i in ids]

    max_chars = max_tokens * MAX_CHARS_PER_TOKEN

    def cut(word: str) -> list[str]:
        """A run of text without spaces (Chinese, Japanese, a long URL) over the budget, cut at token boundaries.

        Pieces are at most ``max_chars`` long too: a tokenizer may count a whole run as one token (BERT's [UNK]
        for a word over 100 characters).
        """
        try:
            spans = tokenizer(word, add_special_tokens=False, truncation=False, verbose=False,
                              return_offsets_mapping=True)["offset_mapping"]  # fmt: skip
            step = max(1, max_tokens - 4)  # a little under the budget: a piece re-tokenized alone may count more
            starts = [spans[k][0] for k in range(0, len(spans), step)][1:]
        except (NotImplementedError, KeyError, TypeError):  # a slow tokenizer has no offsets: cut by characters
            step = max(1, len(word) * max_tokens // max(1, n_tokens(word)))
            starts = list(range(step, len(word), step))
        bounds = [0, *starts, len(word)]
        pieces = [word[a:b] for a, b in itertools.pairwise(bounds) if word[a:b].strip()]
        pieces = [piece[k : k + max_chars] for piece in pieces for k in range(0, len(piece), max_chars)]
        return [part for piece in pieces for part in cut_half(piece)]

    def cut_half(piece: str) -> list[str]:
        """``[piece]``, or, when re-tokenized on its own it counts over the budget, its halves until they fit."""
        if n_tokens(piece) <= max_tokens or len(piece) == 1:
            return [piece]
        return cut_half(piece[: len(piece) // 2]) + cut_half(piece[len(piece) // 2 :])

    def word_sizes(words: list[str]) -> list[int]:
        """Each word's tokens in one tokenization of the words joined by spaces (an estimate of a word's share)."""
        text = " ".join(words)
        try:
            spans = tokenizer(text, add_special_tokens=False, truncation=False, verbose=False,
                              return_offsets_mapping=True)["offset_mapping"]  # fmt: skip
        except (NotImplementedError, KeyError, TypeError):  # a slow tokenizer has no offsets: about 4 characters
            return [max(1, len(w) // 4) for w in words]
        starts = list(itertools.accumulate((len(w) + 1 for w in words[:-1]), initial=0))
        sizes = [0] * len(words)
        for start, _ in spans:
            sizes[max(0, bisect.bisect_right(starts, start) - 1)] += 1
        return sizes

    packer = _Packer(max_tokens, max_chars, n_tokens, sizes_of, cut, word_sizes)
    chunks: list[Chunk] = []
    for doc in tqdm(documents, desc="chunking", unit="doc", disable=not progress):
        position = 0
        for heading_path, body in _sections(doc):
            for text in packer.pack(body):
                digest = hashlib.sha1(f"{doc.path}\x00{position}\x00{text}".encode()).hexdigest()[:16]
                chunks.append(
                    Chunk(id=digest, doc_path=doc.path, heading_path=heading_path, text=text, title=doc.title)
                )
                position += 1
    return chunks


class _Packer:
    """Packs a section body into chunk texts: whole sentences while they fit, over-long ones split by words.

    Every chunk fits ``budget`` tokens and ``max_chars`` characters.
    """

    def __init__(self, budget: int, max_chars: int, n_tokens: Any, sizes_of: Any, cut: Any, word_sizes: Any) -> None:
        self.budget, self.max_chars = budget, max_chars
        self.n_tokens, self.sizes_of, self.cut, self.word_sizes = n_tokens, sizes_of, cut, word_sizes

    def pack(self, body: str) -> Iterator[str]:
        budget, n_tokens = self.budget, self.n_tokens
        pieces: list[tuple[str, int, bool]] = []  # text, tokens, whether a space stood before it
        sentences = _sentence_pieces(body)
        for start in range(0, len(sentences), 512):  # one tokenizer call per 512 sentences (fast on huge files)
            batch = sentences[start : start + 512]
            for (sentence, spaced), size in zip(batch, self.sizes_of([t for t, _ in batch]), strict=True):
                if size <= budget and len(sentence) <= self.max_chars:
                    pieces.append((sentence, size, spaced))
                else:  # an over-long sentence: split by words
                    pieces.extend(self._words(sentence, spaced))
        current: list[tuple[str, bool]] = []
        used = chars = 0
        for text, size, spaced in pieces:
            if current and (used + size + 1 > budget or chars + len(text) + 1 > self.max_chars):
                yield from _checked(current, budget, n_tokens)
                current, used, chars = [], 0, 0
            current.append((text, spaced))
            used += size + (1 if len(current) > 1 else 0)
            chars += len(text) + (1 if len(current) > 1 else 0)
        if current:
            yield from _checked(current, budget, n_tokens)

    def _words(self, sentence: str, spaced: bool) -> Iterator[tuple[str, int, bool]]:
        """An over-long sentence's pieces: runs of words packed to the budget; a word over it cut up (:func:`cut`)."""
        words = sentence.split()
        run = 0  # where the run of words that are not over the budget began
        for i, word in enumerate([*words, None]):
            huge = word is not None and (
                len(word) > self.max_chars
                or (len(word) * 4 > self.budget and self.n_tokens(word) > self.budget)  # a character: <= 4 byte tokens
            )
            if word is None or huge:
                yield from self._run(words[run:i], spaced if run == 0 else True)
                run = i + 1
            if word is not None and huge:  # the pieces of a run without spaces follow each other without one
                word_spaced = spaced if i == 0 else True
                yield from ((p, self.n_tokens(p), word_spaced and k == 0) for k, p in enumerate(self.cut(word)))

    def _run(self, words: list[str], spaced: bool) -> Iterator[tuple[str, int, bool]]:
        """Words packed greedily: each piece takes words while the words joined by spaces fit the budget.

        Tokenizing the growing piece at each word would cost time quadratic in a piece's length (35 s for 400 KB
        of text without a sentence end). Instead each piece's end is guessed from one tokenization of all the words
        and checked by tokenizing the piece: usually two tokenizer calls a piece, then a galloping search where
        the guess was off. The pieces are those of adding one word at a time as long as adding a word never makes
        the count smaller (true of tokenizers that split at spaces before anything else).
        """
        if not words:
            return
        sizes = self.word_sizes(words)
        tokens = list(itertools.accumulate(sizes, initial=0))
        chars = list(itertools.accumulate((len(w) + 1 for w in words), initial=0))
        counted: dict[tuple[int, int], int] = {}

        def fits(s: int, j: int) -> bool:  # words[s : j + 1] joined
            text = " ".join(words[s : j + 1])
            if len(text) > self.max_chars:
                return False
            counted[(s, j)] = self.n_tokens(text)
            return counted[(s, j)] <= self.budget

        s, n = 0, len(words)
        while s < n:
            by_tokens = bisect.bisect_right(tokens, tokens[s] + self.budget)
            guess = min(by_tokens, bisect.bisect_right(chars, chars[s] + self.max_chars)) - 2
            end = _last_true(lambda j, s=s: fits(s, j), s, n, guess)
            text = " ".join(words[s : end + 1])
            size = counted[(s, end)] if (s, end) in counted else self.n_tokens(text)
            yield text, size, spaced if s == 0 else True
            s = end + 1


def _last_true(ok: Any, lo: int, hi: int, guess: int) -> int:
    """The largest ``j`` in ``[lo, hi)`` with ``ok(j)``, given ``ok(lo)`` (not called) and ``ok`` true then false.

    Galloping search from ``guess``: two calls when the guess is right, about ``2 log2(miss)`` when it is off by
    ``miss``.
    """
    good, bad = lo, hi  # ok(good) holds; bad is past the end or the smallest index seen failing
    guess = min(max(guess, lo), hi - 1)
    if guess > lo:
        if ok(guess):
            good = guess
        else:
            bad = guess
    step = 1
    if bad == hi:  # upwards from the good guess
        while good + step < hi:
            if not ok(good + step):
                bad = good + step
                break
            good, step = good + step, step * 2
    else:  # downwards from the bad guess
        while bad - step > good:
            if ok(bad - step):
                good = bad - step
                break
            bad, step = bad - step, step * 2
    while bad - good > 1:
        mid = (good + bad) // 2
        if ok(mid):
            good = mid
        else:
            bad = mid
    return good


def _checked(parts: list[tuple[str, bool]], budget: int, n_tokens: Any) -> Iterator[str]:
    """Join parts (:func:`_join`); if a tokenizer counts the result over budget (merges), split it in two."""
    text = _join(parts)
    if len(parts) > 1 and n_tokens(text) > budget:
        half = len(parts) // 2
        yield from _checked(parts[:half], budget, n_tokens)
        yield from _checked(parts[half:], budget, n_tokens)
    else:
        yield text
