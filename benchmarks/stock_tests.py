"""`make stock-tests`: the stock integrations' own unit tests, run against the stock classes and against ours.

For each suite the test files come from the stock package's sdist (downloaded with ``pip download --no-binary``
into benchmarks/.work/, never copied into the project). They run twice, in one temporary copy each:

- stock: the files as shipped, with the hub model they load replaced by the bundled all-MiniLM-L6-v2 folder;
- ours: the same, plus the stock module paths and class names replaced by ours (``SentenceTransformersTextEmbedder``
  -> ``PromptTextEmbedder`` and its module, ``HuggingFaceEmbeddings`` -> ``PromptEmbeddings``). Nothing else changes.

Both runs are offline (HF_HUB_OFFLINE=1). The per-test outcomes are compared, and each test that passes on the
stock class but not on ours is listed with the first line of its failure and a reason found in the test's source
(it patches or replaces the stock implementation's internals) or, if none, "see the integration README".
Writes benchmarks/STOCK_TESTS.md and prints the same table.

LlamaIndex is not measured: the llama-index-embeddings-huggingface sdist ships no tests.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "stock-tests"
OUT = HERE / "STOCK_TESTS.md"
_ST = "haystack_integrations.components.embedders.sentence_transformers"
_OURS = "haystack_integrations.components.embedders.promptembed"


@dataclass
class Suite:
    """One stock test suite: where its files come from and the two rewrites."""

    name: str
    package: str
    version: str
    files: list[str]
    deselect: str  # pytest -k expression for tests of other classes in the same files
    hub_models: list[str]  # hub ids the tests load: replaced by the bundled model in both runs
    ours: list[tuple[str, str]]  # (stock text, our text) replaced in the ours run; each must occur
    results: dict[str, dict[str, str]] = field(default_factory=dict)


SUITES = [
    Suite(
        name="langchain-huggingface HuggingFaceEmbeddings",
        package="langchain-huggingface",
        version="1.2.3",
        files=["tests/integration_tests/test_embeddings_standard.py"],
        deselect="not Endpoint",
        hub_models=["sentence-transformers/all-mpnet-base-v2"],
        ours=[
            (
                "from langchain_huggingface.embeddings import (\n    HuggingFaceEmbeddings,\n",
                "from langchain_promptembed import PromptEmbeddings\nfrom langchain_huggingface.embeddings import (\n",
            ),
            ("type[HuggingFaceEmbeddings]", "type[PromptEmbeddings]"),
            ("return HuggingFaceEmbeddings\n", "return PromptEmbeddings\n"),
        ],
    ),
    Suite(
        name="sentence-transformers-haystack text + document embedders",
        package="sentence-transformers-haystack",
        version="2.0.0",
        files=[
            "tests/test_sentence_transformers_text_embedder.py",
            "tests/test_sentence_transformers_document_embedder.py",
        ],
        deselect="",
        hub_models=["sentence-transformers-testing/stsb-bert-tiny-safetensors"],
        ours=[
            (f"{_ST}.sentence_transformers_text_embedder", f"{_OURS}.text_embedder"),
            (f"{_ST}.sentence_transformers_document_embedder", f"{_OURS}.document_embedder"),
            ("SentenceTransformersTextEmbedder", "PromptTextEmbedder"),
            ("SentenceTransformersDocumentEmbedder", "PromptDocumentEmbedder"),
        ],
    ),
]

_INTERNALS = re.compile(r"_SentenceTransformersEmbeddingBackend|\.embedding_backend\b|\._client\b")


def fetch(suite: Suite) -> Path:
    """The unpacked sdist of ``suite`` (downloaded once into benchmarks/.work/)."""
    root = WORK / f"{suite.package.replace('-', '_')}-{suite.version}"
    if root.is_dir():
        return root
    WORK.mkdir(parents=True, exist_ok=True)
    spec = f"{suite.package}=={suite.version}"
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", spec, "-d", str(WORK)]
    subprocess.run(cmd, check=True)
    archive = next(WORK.glob(f"{suite.package.replace('-', '_')}-{suite.version}.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(WORK, filter="data")
    return root


def prepare(suite: Suite, sdist: Path, run: str, model: str) -> Path:
    """A copy of the suite's test folder for one run, rewritten as that run needs."""
    dest = WORK / "runs" / suite.package / run
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(sdist / "tests", dest / "tests")
    (dest / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    integration: integration tests\nasyncio_mode = auto\n"
        "asyncio_default_fixture_loop_scope = function\n",
        encoding="utf-8",
    )
    found: set[str] = set()
    for rel in suite.files:
        path = dest / rel
        text = path.read_text(encoding="utf-8")
        for hub_id in suite.hub_models:
            text = text.replace(hub_id, model)
        if run == "ours":
            for old, new in suite.ours:
                found.update([old] if old in text else [])
                text = text.replace(old, new)
        path.write_text(text, encoding="utf-8")
    missing = [old for old, _ in suite.ours if old not in found] if run == "ours" else []
    if missing:
        raise SystemExit(f"{suite.package}: expected text not found, the stock test files changed: {missing}")
    return dest


def run_pytest(suite: Suite, folder: Path, run: str) -> dict[str, str]:
    """Run the suite in ``folder``; returns test id -> "passed" / "failed: first line" / "skipped"."""
    report = folder / "report.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", f"--junitxml={report}"]
    cmd += ["-k", suite.deselect] if suite.deselect else []
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run([*cmd, *suite.files], cwd=folder, env=env, check=False, capture_output=True)
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        test_id = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        for old, new in suite.ours if run == "ours" else []:
            test_id = test_id.replace(new.strip(), old.strip())  # ids in the stock spelling, to compare the runs
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if problem is not None:
            message = (problem.get("message") or problem.text or "").strip().splitlines() or [""]
            outcomes[test_id] = f"failed: {message[0][:160]}"
        elif case.find("skipped") is not None:
            outcomes[test_id] = "skipped"
        else:
            outcomes[test_id] = "passed"
    return outcomes


def reason(suite: Suite, sdist: Path, test_id: str) -> str:
    """Why ours fails a test the stock class passes, as far as the test's own source (decorators included) tells."""
    name = test_id.rsplit("::", 1)[-1].split("[", 1)[0]
    for rel in suite.files:
        source = (sdist / rel).read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
                parts = [ast.get_source_segment(source, n) or "" for n in [*node.decorator_list, node]]
                if _INTERNALS.search("\n".join(parts)):
                    return "replaces or patches the stock implementation's internals (its private embedding backend)"
    return "see the integration README"


def main() -> int:
    from promptembed._loading import default_model_path

    model = str(default_model_path())
    lines = [
        "# The stock integrations' own tests against our classes",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `make stock-tests` (benchmarks/stock_tests.py); offline; hub",
        f"models replaced by the bundled all-MiniLM-L6-v2 in both runs. Python {sys.version.split()[0]}.",
        "",
        "| suite | tests | pass on stock | pass on ours | of those passing on stock, pass on ours |",
        "|---|---|---|---|---|",
    ]
    details: list[str] = []
    for suite in SUITES:
        sdist = fetch(suite)
        stock = run_pytest(suite, prepare(suite, sdist, "stock", model), "stock")
        ours = run_pytest(suite, prepare(suite, sdist, "ours", model), "ours")
        ids = sorted(set(stock) | set(ours))
        stock_ok = [t for t in ids if stock.get(t) == "passed"]
        ours_ok = [t for t in ids if ours.get(t) == "passed"]
        both = [t for t in stock_ok if ours.get(t) == "passed"]
        lines.append(
            f"| {suite.name} {suite.version} | {len(ids)} | {len(stock_ok)} | {len(ours_ok)} | "
            f"{len(both)} of {len(stock_ok)} |"
        )
        details += ["", f"## {suite.name} {suite.version}", ""]
        details += ["| test | stock | ours | reason ours differs |", "|---|---|---|---|"]
        for test_id in ids:
            s, o = stock.get(test_id, "missing"), ours.get(test_id, "missing")
            why = reason(suite, sdist, test_id) if s == "passed" and o != "passed" else ""
            details.append(f"| `{test_id}` | {s} | {o.replace('|', '/')} | {why} |")
    text = "\n".join([*lines, *details, ""])
    OUT.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
