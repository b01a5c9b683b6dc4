"""The Haystack integration page (docs/promptembed.md): its front matter, and its Python blocks run in order.

The page shows what a user writes, ``model = "google/embeddinggemma-300m"``. Tests run offline, so that one string
is replaced by a stand-in before the blocks run: the bundled all-MiniLM-L6-v2 saved with EmbeddingGemma's query and
document prompts (the page's notebooks for LangChain and LlamaIndex use the same stand-in). Everything else runs as
printed on the page.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sentence_transformers import SentenceTransformer

from promptembed.testing import EMBEDDINGGEMMA_PROMPTS

PACKAGE = Path(__file__).resolve().parents[1]
PAGE = PACKAGE / "docs" / "promptembed.md"
HUB_ID = '"google/embeddinggemma-300m"'
#: The front matter of pages in deepset-ai/haystack-integrations (its draft-integration.md, plus ``toggle``).
FRONT_MATTER_KEYS = {
    "layout",
    "name",
    "description",
    "authors",
    "pypi",
    "repo",
    "type",
    "report_issue",
    "logo",
    "version",
    "toggle",
}
INTEGRATION_TYPES = {
    "Document Store",
    "Model Provider",
    "Data Ingestion",
    "Monitoring Tool",
    "Evaluation Framework",
    "Custom Component",
}


def _page() -> tuple[dict[str, Any], str]:
    match = re.fullmatch(r"---\n(.*?)\n---\n(.*)", PAGE.read_text(), re.DOTALL)
    assert match, f"{PAGE} does not start with a --- front matter block"
    return yaml.safe_load(match[1]), match[2]


def test_front_matter_has_the_integration_page_fields_and_matches_the_package() -> None:
    meta, _ = _page()
    assert set(meta) >= FRONT_MATTER_KEYS, sorted(FRONT_MATTER_KEYS - set(meta))
    assert meta["layout"] == "integration" and meta["type"] in INTEGRATION_TYPES
    assert meta["version"] == "Haystack 2.0" and meta["logo"].startswith("/logos/")
    assert all(isinstance(a, dict) and a.get("name") for a in meta["authors"])
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    assert meta["pypi"] == f"https://pypi.org/project/{project['name']}/"
    assert meta["repo"] == project["urls"]["Homepage"]
    assert meta["report_issue"] == project["urls"]["Issues"]


@pytest.fixture
def stand_in(minilm_dir: Path, tmp_path: Path) -> Path:
    model = SentenceTransformer(str(minilm_dir), device="cpu")
    model.prompts = {role: EMBEDDINGGEMMA_PROMPTS[role] for role in ("query", "document")}
    model.save(str(tmp_path / "minilm-with-prompts"))
    return tmp_path / "minilm-with-prompts"


def test_python_blocks_run_and_print_what_the_page_says(stand_in: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, body = _page()
    blocks = re.findall(r"```python\n(.*?)```", body, re.DOTALL)
    assert len(blocks) == 2 and sum(b.count(HUB_ID) for b in blocks) == 1
    namespace: dict[str, Any] = {}
    try:
        for block in blocks:
            exec(compile(block.replace(HUB_ID, repr(str(stand_in))), str(PAGE), "exec"), namespace)
        printed = capsys.readouterr().out.splitlines()
        assert printed == [
            "Mars, known for its reddish appearance, is often referred to as the Red Planet.",
            "256 256",
        ]
        # The vectors are sentence-transformers' with the model's prompts (and the title in the title slot).
        reference = SentenceTransformer(str(stand_in), device="cpu")
        titled = np.array(namespace["titled"]["documents"][0].embedding)
        expected = reference.encode_document(["It is red because of iron oxide."], prompt="title: Mars | text: ")[0]
        np.testing.assert_allclose(titled, expected[:256] / np.linalg.norm(expected[:256]), atol=2e-6)
        query = reference.encode_query(["Why is Mars red?"])[0][:256]
        np.testing.assert_allclose(namespace["query"]["embedding"], query / np.linalg.norm(query), atol=2e-6)
    finally:
        for name in ("indexing", "query_pipeline"):
            if name in namespace:
                for _, component in namespace[name].walk():
                    if hasattr(component, "close"):
                        component.close()
        for name in ("document_embedder", "text_embedder"):
            if name in namespace:
                namespace[name].close()
