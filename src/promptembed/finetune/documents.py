"""Read a user's documents: folders and files of .txt, .md, .rst, .html and .pdf.

Bad, binary, empty or undecodable files are skipped and listed with the reason, and so are folders that cannot be
listed; nothing here raises for a bad file. Symbolic links whose target leaves the folder that was given are not
followed (a file named on its own is read wherever its link points). Hidden files and folders (``.git``, ``.cache``,
names starting with a dot) inside a given folder are not read. UTF-8 and, with a byte-order mark, UTF-16 and UTF-32
text is read; a file given twice (or found under two given folders) is read once.
"""

from __future__ import annotations

import codecs
import html.parser
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

__all__ = ["MAX_FILE_BYTES", "SUFFIXES", "Document", "LoadResult", "SkippedFile", "load_documents"]

SUFFIXES = {
    ".txt": "txt",
    ".md": "md",
    ".markdown": "md",
    ".rst": "rst",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
#: Files larger than this are skipped (a 10k-page text file is about 30 MB).
MAX_FILE_BYTES = 200 * 1024 * 1024


def printable(text: str) -> str:
    r"""``text`` as valid UTF-8, lone surrogates written out.

    A file name that is not UTF-8 (``caf\udce9.txt``, as ``os.fsdecode`` gives a latin-1 name) shows its bytes
    (``caf\xe9.txt``); any other lone surrogate (from a PDF's text) its code (``\ud800``). Chunk ids hash the
    path as UTF-8, and report.json and the JSONL files are UTF-8: a lone surrogate failed them.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


@dataclass(frozen=True)
class Document:
    """One readable document. HTML is converted to Markdown-style headings so chunking sees its structure.

    Every field is valid UTF-8 (:func:`printable`).
    """

    path: str
    text: str
    title: str | None
    format: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", printable(self.path))
        object.__setattr__(self, "text", printable(self.text))
        if self.title is not None:
            object.__setattr__(self, "title", printable(self.title))


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not read, and why (both valid UTF-8: :func:`printable`)."""

    path: str
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", printable(self.path))
        object.__setattr__(self, "reason", printable(self.reason))


@dataclass
class LoadResult:
    """Documents read, and files skipped."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


def load_documents(paths: Sequence[str | Path], *, progress: bool = True) -> LoadResult:
    """Read documents from files and folders (recursively).

    Args:
        paths: Files and/or folders.
        progress: Show a progress bar.

    Returns:
        The documents, and every skipped file with its reason.
    """
    result = LoadResult()
    candidates: list[tuple[Path, Path | None]] = []  # (file, the folder it was found under; None: named itself)
    for given in paths:
        root = Path(given)
        if not root.exists():
            result.skipped.append(SkippedFile(str(root), "does not exist"))
        elif root.is_dir():
            candidates.extend(_walk(root.resolve(), result))
        else:
            candidates.append((root, None))
    seen: set[Path] = set()
    for path, root in tqdm(candidates, desc="reading documents", unit="file", disable=not progress):
        key = _resolved(path) or path.absolute()
        if key not in seen:  # the same file given twice, or under two given folders, is one document
            seen.add(key)
            _read_one(path, root, result)
    return result


def _resolved(path: Path) -> Path | None:
    """``path.resolve()``, or ``None`` for a symbolic link loop or a path that cannot be resolved."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return None


def _walk(root: Path, result: LoadResult) -> list[tuple[Path, Path | None]]:
    found: list[tuple[Path, Path | None]] = []

    def unlisted(exc: OSError) -> None:  # a folder os.walk cannot list (permissions): reported, not dropped
        result.skipped.append(SkippedFile(str(exc.filename or root), f"folder could not be listed: {exc.strerror}"))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=unlisted):
        current = Path(dirpath)
        keep = []
        for name in sorted(dirnames):
            sub = current / name
            if name.startswith("."):
                continue
            target = _resolved(sub) if sub.is_symlink() else sub
            if target is None or not _inside(target, root):
                why = "a symbolic link loop" if target is None else "symbolic link to a folder outside the given folder"
                result.skipped.append(SkippedFile(str(sub), why))
                continue
            keep.append(name)
        dirnames[:] = keep
        found.extend((current / name, root) for name in sorted(filenames) if not name.startswith("."))
    return found


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _read_one(path: Path, root: Path | None, result: LoadResult) -> None:
    name = str(path)
    target = _resolved(path)
    if target is None:
        result.skipped.append(SkippedFile(name, "a symbolic link loop, or a path that cannot be resolved"))
        return
    if root is not None and path.is_symlink() and not _inside(target, root):
        result.skipped.append(SkippedFile(name, "symbolic link to a file outside the given folder"))
        return
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        result.skipped.append(SkippedFile(name, f"unsupported file type {path.suffix or '(none)'!r}"))
        return
    try:
        size = path.stat().st_size
        if size == 0:
            result.skipped.append(SkippedFile(name, "empty file"))
            return
        if size > MAX_FILE_BYTES:
            result.skipped.append(SkippedFile(name, f"larger than {MAX_FILE_BYTES // 2**20} MB; split it"))
            return
        text = _read_pdf(path) if fmt == "pdf" else _read_text(path)
        title: str | None = None
        if fmt == "html":
            text, title = _html_to_text(text)
    except _Skip as exc:
        result.skipped.append(SkippedFile(name, str(exc)))
        return
    except Exception as exc:  # a bad file never stops the run
        result.skipped.append(SkippedFile(name, f"could not be read: {type(exc).__name__}: {exc}"))
        return
    if not text.strip():
        result.skipped.append(SkippedFile(name, "no text in it"))
        return
    result.documents.append(Document(path=name, text=text, title=title or path.stem, format=fmt))


class _Skip(Exception):
    pass


_BOMS = (  # UTF-32 first: its little-endian mark starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    for bom, encoding in _BOMS:  # Windows Notepad's "Unicode" is UTF-16 with a byte-order mark
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise _Skip(f"not {encoding.upper()} text after its byte-order mark (bad byte at offset "
                            f"{exc.start}); convert it to UTF-8") from None  # fmt: skip
    if b"\x00" in data[:8192]:
        raise _Skip("binary file (NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Skip(f"not UTF-8 text (bad byte at offset {exc.start}); convert it to UTF-8") from None


def _read_pdf(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
    except PdfReadError as exc:
        raise _Skip(f"not a readable PDF: {exc}") from None
    return "\n\n".join(p.strip() for p in pages if p.strip())


class _HTMLText(html.parser.HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template"})
    _BLOCK = frozenset({"p", "div", "li", "br", "tr", "section", "article", "blockquote", "pre", "ul", "ol", "table"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: str | None = None
        self._skip = 0
        self._heading: int | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
            self._heading = int(tag[1])
            self.parts.append("\n\n" + "#" * self._heading + " ")
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skip:
            self._skip -= 1
        elif tag == "title":
            self._in_title = False
        elif self._heading is not None and tag == f"h{self._heading}":
            self._heading = None
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in_title:
            self.title = (self.title or "") + data.strip()
            return
        self.parts.append(data.replace("\n", " ") if self._heading else data)


def _html_to_text(raw: str) -> tuple[str, str | None]:
    parser = _HTMLText()
    parser.feed(raw)
    parser.close()
    text = "".join(parser.parts)  # the parser has converted character references already (convert_charrefs)
    lines = [line.strip() for line in text.splitlines()]
    return "\n".join(lines).strip(), parser.title
