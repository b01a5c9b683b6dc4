"""The two real domains of `make bench-finetune`: documents for training, human-written questions for testing only.

- ``zaragoza`` (development set): zaragoza-construction-faq (PyPI), 503 English Q&A pairs on Swedish construction
  law by Zaragoza AB, CC BY 4.0. Documents = the 503 answers (one file each); test = the 503 real questions against
  the 503 answers.
- ``debian`` (test set): the Debian GNU/Linux FAQ (Debian package ``debian-faq``, © Software in the Public Interest,
  verbatim/modified copying permitted under its notice) and the Debian Reference (``debian-reference-en``, Osamu
  Aoki, GPL-2+), both downloaded with ``apt-get download`` at benchmark time (never redistributed here).
  Documents = the Reference's 14 HTML chapters + the FAQ's answers (one file each, no question text). Test = the
  FAQ's questions (those with a "?" and an answer of at least 15 words) against their answers plus every chunk of
  the Reference as distractors. Cross-references that quote another question's title ("Section 5.1, “What ...?”")
  are cut down to "Section 5.1" so no question text reaches the documents.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

CACHE = Path.home() / ".cache" / "promptembed-bench"
DEBIAN_PACKAGES = ("debian-faq", "debian-reference-en")
CREDITS = {
    "zaragoza": "zaragoza-construction-faq by Zaragoza AB (https://zaragoza.se), CC BY 4.0, "
    "DOI 10.5281/zenodo.19630803",
    "debian": "The Debian GNU/Linux FAQ (Debian package debian-faq, © 1996-2021 Software in the Public Interest; "
    "copying permitted under its permission notice) and Debian Reference (debian-reference-en, © Osamu Aoki, "
    "GPL-2+), downloaded with apt-get at benchmark time",
}


@dataclass
class Domain:
    """Training documents and a test set of real questions (query id -> text, passage id -> text, gold ids)."""

    name: str
    docs: Path
    queries: dict[str, str]
    corpus: dict[str, str]
    relevant: dict[str, set[str]]
    distractor_docs: list[Path]  # documents whose chunks join the test corpus as distractors
    versions: str


def training_chunks(docs: Path, tokenizer: Any) -> list[Any]:
    """The domain documents' chunks as ``finetune()`` makes them: read, chunked to 252 tokens, duplicates dropped."""
    from promptembed.finetune import chunk_documents, load_documents

    loaded = load_documents([docs], progress=False).documents
    unique: dict[str, Any] = {}
    for c in chunk_documents(loaded, tokenizer=tokenizer, max_tokens=252, progress=False):
        unique.setdefault(" ".join(c.text.split()), c)
    return list(unique.values())


def zaragoza(root: Path = CACHE / "zaragoza") -> Domain:
    import zaragoza as z

    records = z.load_faq()
    docs = z.write_documents(records, root / "documents")
    queries = {f"q{i}": r["question"] for i, r in enumerate(records)}
    corpus: dict[str, str] = {}
    relevant: dict[str, set[str]] = {}
    for i, r in enumerate(records):
        pid = next((k for k, v in corpus.items() if v == r["answer"]), None) or f"a{i}"
        corpus[pid] = r["answer"]
        relevant[f"q{i}"] = {pid}
    from importlib.metadata import version

    return Domain(
        "zaragoza",
        docs,
        queries,
        corpus,
        relevant,
        [],
        f"zaragoza-construction-faq {version('zaragoza-construction-faq')}",
    )


def _download(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for pkg in DEBIAN_PACKAGES:
        debs = sorted(root.glob(f"{pkg}_*.deb"))
        if not debs:
            try:
                subprocess.run(["apt-get", "download", pkg], cwd=root, check=True, capture_output=True, text=True)
            except (OSError, subprocess.CalledProcessError) as exc:
                detail = getattr(exc, "stderr", "") or str(exc)
                raise SystemExit(
                    f"Could not download the Debian package {pkg} ({detail.strip()}); the test domain needs "
                    "apt-get (Debian/Ubuntu) with package lists: run `apt-get update` first"
                ) from exc
            debs = sorted(root.glob(f"{pkg}_*.deb"))
        target = root / pkg
        if not target.is_dir():
            subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(target)], check=True)
        out[pkg] = target
        out[pkg + ".deb"] = debs[-1]
    return out


_HEADING = re.compile(r"^(\d+(?:\.\d+)+)\. (.*)")
_XREF = re.compile(r"(Section [0-9.]*\d),\s*“[^”]*”")


def parse_debian_faq(text: str) -> list[dict[str, str]]:
    """Questions and answers of the FAQ's text version (numbered headings at column 0, indented answers)."""
    lines = text.replace("\u00a0", " ").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("1.1. "))
    items: list[dict[str, list[str] | str]] = []
    current: dict[str, list[str] | str] | None = None
    i = start
    while i < len(lines):
        line = lines[i]
        match = _HEADING.match(line)
        if match:
            head = [match.group(2)]
            i += 1
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(" "):
                head.append(lines[i].strip())
                i += 1
            current = {"number": match.group(1), "question": " ".join(head), "answer": []}
            items.append(current)
            continue
        if line.strip() and not line.startswith(" "):  # a chapter title or other unindented text ends an answer
            current = None
        elif current is not None:
            answer = current["answer"]
            assert isinstance(answer, list)
            answer.append(line)
        i += 1
    out = []
    for item in items:
        body = item["answer"]
        assert isinstance(body, list)
        paragraphs = [" ".join(p.split()) for p in "\n".join(body).split("\n\n")]
        answer = "\n\n".join(_XREF.sub(r"\1", p) for p in paragraphs if p)
        question = " ".join(str(item["question"]).split())
        if "?" in question and len(answer.split()) >= 15:
            out.append({"number": str(item["number"]), "question": question, "answer": answer})
    return out


def debian(root: Path = CACHE / "debian") -> Domain:
    got = _download(root)
    faq_txt = got["debian-faq"] / "usr/share/doc/debian/FAQ/debian-faq.en.txt.gz"
    records = parse_debian_faq(gzip.decompress(faq_txt.read_bytes()).decode("utf-8"))
    docs = root / "documents"
    if not (docs / "DONE").is_file():
        docs.mkdir(parents=True, exist_ok=True)
        manual = got["debian-reference-en"] / "usr/share/debian-reference"
        for html in sorted(manual.glob("*.en.html")):
            if not html.name.startswith("index"):
                (docs / f"reference-{html.name}").write_bytes(html.read_bytes())
        for r in records:
            (docs / f"faq-{r['number']}.md").write_text(r["answer"] + "\n", encoding="utf-8")
        (docs / "DONE").write_text("")
    queries = {f"q{i}": r["question"] for i, r in enumerate(records)}
    corpus = {f"a{i}": r["answer"] for i, r in enumerate(records)}
    relevant = {f"q{i}": {f"a{i}"} for i in range(len(records))}
    distractors = sorted(docs.glob("reference-*.html"))
    versions = ", ".join(got[p + ".deb"].name for p in DEBIAN_PACKAGES)
    return Domain("debian", docs, queries, corpus, relevant, distractors, versions)


DOMAINS = {"zaragoza": zaragoza, "debian": debian}


if __name__ == "__main__":
    for name in sys.argv[1:] or list(DOMAINS):
        d = DOMAINS[name]()
        size = sum(p.stat().st_size for p in d.docs.iterdir() if p.is_file())
        print(
            json.dumps(
                {
                    "domain": name,
                    "queries": len(d.queries),
                    "gold": len(d.corpus),
                    "doc_bytes": size,
                    "versions": d.versions,
                }
            )
        )
