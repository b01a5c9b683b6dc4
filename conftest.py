"""Fixtures shared by every package's tests: real bundled weights and tiny local models (no network).

Session fixtures build each model folder once; ``*_path`` fixtures hand each test its own deep copy
(as sentence-transformers' conftest does), so a test that writes into a model cannot affect another.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from promptembed.testing import PLANET_DOCS as _PLANET_DOCS
from promptembed.testing import RED_PLANET_QUERY

PLANET_DOCS = list(_PLANET_DOCS)

#: One question per planet -> the index of its answer in PLANET_DOCS (all but the Red Planet one reworded).
PLANET_QUESTIONS = {
    "Which planet is similar in size to Earth and close to it?": 0,
    RED_PLANET_QUERY: 1,
    "What is the biggest planet of the solar system?": 2,
    "Which planet has rings around it?": 3,
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def planet_docs() -> list[str]:
    """PLANET_DOCS, for tests outside this folder (conftest modules are not importable under importlib mode)."""
    return list(PLANET_DOCS)


@pytest.fixture(scope="session")
def planet_questions() -> dict[str, int]:
    """PLANET_QUESTIONS: question -> index of its answer in PLANET_DOCS."""
    return dict(PLANET_QUESTIONS)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The bundled all-MiniLM-L6-v2 folder (read-only: do not write into it)."""
    from promptembed._loading import default_model_path

    return default_model_path()


@pytest.fixture(scope="session")
def _tiny_gemma_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from promptembed.testing import build_tiny_embeddinggemma

    return build_tiny_embeddinggemma(tmp_path_factory.mktemp("tiny-embeddinggemma"))


@pytest.fixture(scope="session")
def _tiny_bert_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from promptembed.testing import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_router_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny asymmetric model (read-only): shared BERT, then a Router with query and document Dense branches."""
    from promptembed.testing import build_tiny_router

    return build_tiny_router(tmp_path_factory.mktemp("tiny-router"))


@pytest.fixture
def tiny_gemma_dir(_tiny_gemma_session: Path, tmp_path: Path) -> Path:
    """A fresh copy of a tiny Gemma3 encoder with EmbeddingGemma's module stack and full prompt table."""
    dest = tmp_path / "tiny-embeddinggemma"
    shutil.copytree(_tiny_gemma_session, dest)
    return dest


@pytest.fixture
def tiny_bert_dir(_tiny_bert_session: Path, tmp_path: Path) -> Path:
    """A fresh copy of a tiny BERT (mean pooling, no Normalize, no prompts, max_seq_length 32)."""
    dest = tmp_path / "tiny-bert"
    shutil.copytree(_tiny_bert_session, dest)
    return dest


@pytest.fixture
def no_model_leaks() -> Iterator[None]:
    """Fail a test that leaves models loaded in the process registry."""
    from promptembed import _registry

    before = set(_registry.loaded_keys())
    yield
    leaked = set(_registry.loaded_keys()) - before
    assert not leaked, f"models left loaded: {leaked}"
