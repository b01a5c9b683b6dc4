from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from promptembed.finetune import load_documents
from promptembed.finetune.chunking import chunk_documents


def _pdf(path: Path, text: str) -> None:
    """A one-page PDF with real text, written by hand (no extra dependency)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.txt").write_text("Plain text about building permits.")
    (docs / "b.md").write_text("# Permits\n\n## Carports\n\nA carport needs a permit.")
    (docs / "c.rst").write_text("Title\n=====\n\nSection\n-------\n\nText under a section.")
    (docs / "sub" / "d.html").write_text(
        "<html><head><title>Page</title><style>x{}</style></head><body><h1>Heat</h1><p>Heat pumps save energy.</p>"
        "<script>var a=1;</script></body></html>"
    )
    _pdf(docs / "e.pdf", "Roof repairs need no permit in most cases.")
    (docs / "empty.txt").write_text("")
    (docs / "binary.txt").write_bytes(b"\x00\x01\x02binary")
    (docs / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    (docs / "image.png").write_bytes(b"\x89PNG")
    return docs


def test_every_format_read_and_bad_files_reported(folder: Path) -> None:
    result = load_documents([folder], progress=False)
    got = {Path(d.path).name: d for d in result.documents}
    assert set(got) == {"a.txt", "b.md", "c.rst", "d.html", "e.pdf"}
    assert "Roof repairs need no permit" in got["e.pdf"].text
    assert got["d.html"].title == "Page" and "var a" not in got["d.html"].text and "x{}" not in got["d.html"].text
    assert "# Heat" in got["d.html"].text
    reasons = {Path(s.path).name: s.reason for s in result.skipped}
    assert reasons["empty.txt"] == "empty file"
    assert reasons["binary.txt"].startswith("binary file")
    assert reasons["latin1.txt"].startswith("not UTF-8 text")
    assert "PDF" in reasons["broken.pdf"] or "could not be read" in reasons["broken.pdf"]
    assert reasons["image.png"] == "unsupported file type '.png'"


def test_links_out_of_the_folder_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "secret").mkdir(parents=True)
    (outside / "secret.txt").write_text("secret text")
    (outside / "secret" / "inner.txt").write_text("inner secret")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.txt").write_text("fine")
    (docs / "inside-link.txt").symlink_to(docs / "ok.txt")
    os.symlink(outside / "secret.txt", docs / "link.txt")
    os.symlink(outside / "secret", docs / "linkdir")
    result = load_documents([docs], progress=False)
    texts = [d.text for d in result.documents]
    assert "secret text" not in texts and "inner secret" not in texts
    assert texts == ["fine"]  # ok.txt, and the link inside the folder to it: one file, read once
    reasons = {Path(s.path).name: s.reason for s in result.skipped}
    assert reasons["link.txt"] == "symbolic link to a file outside the given folder"
    assert reasons["linkdir"] == "symbolic link to a folder outside the given folder"


def test_empty_folder_and_missing_path(tmp_path: Path) -> None:
    result = load_documents([tmp_path, tmp_path / "missing"], progress=False)
    assert result.documents == []
    assert [s.reason for s in result.skipped] == ["does not exist"]


def test_big_text_file_memory_is_bounded(tmp_path: Path, minilm_dir: Path) -> None:
    from transformers import AutoTokenizer

    page = "The contractor must document every change to the load-bearing structure. " * 40 + "\n\n"
    big = tmp_path / "big.txt"
    big.write_text(page * 7000)  # ~20 MB: 7000 pages of ~3 kB
    size = big.stat().st_size
    assert size > 19 * 2**20
    tracemalloc.start()
    result = load_documents([big], progress=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(result.documents) == 1 and len(result.documents[0].text) == size
    assert peak < 2.5 * size, (peak, size)  # the bytes and the text, nothing proportional on top
    tok = AutoTokenizer.from_pretrained(str(minilm_dir))
    doc = result.documents[0]
    head = type(doc)(path=doc.path, text=doc.text[:200_000], title=None, format="txt")
    chunks = chunk_documents([head], tokenizer=tok, max_tokens=120, progress=False)
    assert chunks and all(len(tok(c.text, add_special_tokens=False)["input_ids"]) <= 120 for c in chunks)


def test_single_files_and_file_links_inside_are_read(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Head\n\nBody text.")
    (tmp_path / "z.txt").write_bytes(b"\xef\xbb\xbfBOM text")
    result = load_documents([tmp_path / "a.md", tmp_path / "z.txt"], progress=False)
    assert [(Path(d.path).name, d.format, d.text) for d in result.documents] == [
        ("a.md", "md", "# Head\n\nBody text."),
        ("z.txt", "txt", "BOM text"),
    ]
    assert result.skipped == []


def test_hidden_entries_loops_unlistable_folders_and_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    (docs / ".git").mkdir(parents=True)
    (docs / ".git" / "notes.txt").write_text("git internals")
    (docs / ".draft.md").write_text("a hidden draft")
    (docs / "private").mkdir()
    (docs / "private" / "b.md").write_text("behind a folder that cannot be listed")
    (docs / "a.md").write_text("plain text")
    (docs / "loop.md").symlink_to(docs / "loop.md")
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]  # root bypasses file permissions, so refuse here
        if Path(path).name == "private":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = load_documents([docs, docs, docs / "a.md"], progress=False)
    assert [Path(d.path).name for d in result.documents] == ["a.md"]  # once, and no hidden file
    reasons = {Path(s.path).name: s.reason for s in result.skipped}
    assert reasons == {
        "private": "folder could not be listed: Permission denied",
        "loop.md": "a symbolic link loop, or a path that cannot be resolved",
    }


def test_utf16_html_entities_and_a_linked_file_named_on_its_own(tmp_path: Path) -> None:
    (tmp_path / "notepad.txt").write_bytes("Ünïcode from Notepad".encode("utf-16"))  # with its byte-order mark
    (tmp_path / "page.html").write_text("<title>A &amp; B</title><p>Write &amp;lt;br&amp;gt; to break a line</p>")
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "2024.md").write_text("last year's notes")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "current.md").symlink_to(tmp_path / "archive" / "2024.md")
    files = [tmp_path / "notepad.txt", tmp_path / "page.html", tmp_path / "notes" / "current.md"]
    result = load_documents(files, progress=False)
    assert result.skipped == []
    got = {Path(d.path).name: d for d in result.documents}
    assert got["notepad.txt"].text == "Ünïcode from Notepad"
    assert got["page.html"].text == "Write &lt;br&gt; to break a line" and got["page.html"].title == "A & B"
    assert got["current.md"].text == "last year's notes"
