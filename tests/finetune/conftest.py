"""Fixtures of the finetune tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest


@pytest.fixture
def write_docs(tmp_path: Path) -> Callable[[Mapping[str, str]], Path]:
    """Write ``{name: text}`` as ``docs/<name>.md`` files (a ``# Name`` heading, then the text); returns the folder."""

    def write(texts: Mapping[str, str]) -> Path:
        folder = tmp_path / "docs"
        folder.mkdir()
        for name, text in texts.items():
            (folder / f"{name}.md").write_text(f"# {name.title()}\n\n{text}\n")
        return folder

    return write
