"""The four dists as a user gets them: built, checked with twine, installed into a fresh virtual environment.

``python -m build`` builds each project's sdist and then its wheel from that sdist (so a file missing from the
sdist breaks the wheel build here, not on a user's machine). The wheels are installed into a new virtual
environment that sees none of the development environment's packages: torch first (the pinned CPU wheel, from the
same local wheel folder pip is configured with, as ``make setup`` installs it), then the four wheels with their
declared dependencies from the package index, then ``pip check``. Builds, installs and the check use uv (its
resolver and cache take seconds where pip takes minutes; the run is dominated by the first imports in the new
environment).
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import re
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LICENSE = (ROOT / "LICENSE").read_bytes()
TORCH = "torch==2.13.0"  # the Makefile's pin: the CPU wheel that lies on local disk
#: Namespace levels shared with the hosts' own packages: a wheel that ships an __init__.py there breaks them.
NAMESPACE_INITS = {
    "llama_index/__init__.py",
    "llama_index/embeddings/__init__.py",
    "haystack_integrations/__init__.py",
    "haystack_integrations/components/__init__.py",
    "haystack_integrations/components/embedders/__init__.py",
}
#: A Markdown link whose target is relative: it would be broken on the package index's page.
RELATIVE_LINK = re.compile(r"\]\((?!https?://|#)[^)]*\)")


def _uv() -> str:
    found = Path(sys.executable).parent / "uv"
    if not found.exists():
        pytest.fail(
            f"uv (requirements/dev.txt) is not installed beside {sys.executable}; run `make setup`", pytrace=False
        )
    return str(found)


def _find_links() -> list[str]:
    """pip's configured ``find-links`` (where the pinned CPU torch wheel lies) as uv options; uv reads no pip.conf."""
    config = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    folders = {f for value in re.findall(r"find-links='([^']*)'", config) for f in value.split()}
    return [option for folder in sorted(folders) for option in ("--find-links", folder)]


@dataclass(frozen=True)
class Project:
    name: str
    folder: Path
    package_init: str  # the file holding __version__, relative to folder
    module: str

    @property
    def version(self) -> str:
        text = (self.folder / self.package_init).read_text()
        match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
        assert match, f"no __version__ in {self.folder / self.package_init}"
        return match.group(1)

    @property
    def stem(self) -> str:
        return f"{self.name.replace('-', '_')}-{self.version}"


PROJECTS = [
    Project("promptembed", ROOT, "src/promptembed/__init__.py", "promptembed"),
    Project(
        "langchain-promptembed",
        ROOT / "integrations/langchain",
        "langchain_promptembed/__init__.py",
        "langchain_promptembed",
    ),
    Project(
        "llama-index-embeddings-promptembed",
        ROOT / "integrations/llama-index",
        "llama_index/embeddings/promptembed/__init__.py",
        "llama_index.embeddings.promptembed",
    ),
    Project(
        "promptembed-haystack",
        ROOT / "integrations/haystack",
        "src/haystack_integrations/components/embedders/promptembed/__init__.py",
        "haystack_integrations.components.embedders.promptembed",
    ),
]
IDS = [p.name for p in PROJECTS]


def _run(command: list[str], *, what: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    if done.returncode != 0:
        pytest.fail(
            f"{what} failed (exit {done.returncode}): {' '.join(command)}\n"
            f"--- stdout ---\n{done.stdout[-6000:]}\n--- stderr ---\n{done.stderr[-6000:]}",
            pytrace=False,
        )
    return done.stdout


@pytest.fixture(scope="session")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All four projects built with ``python -m build`` (sdist, then the wheel from the sdist) into one folder."""
    out = tmp_path_factory.mktemp("dist")
    for project in PROJECTS:
        command = [sys.executable, "-m", "build", "--installer", "uv", "--outdir", str(out), str(project.folder)]
        _run(command, what=f"build {project.name}")
    return out


def _wheel(dist_dir: Path, project: Project) -> Path:
    return dist_dir / f"{project.stem}-py3-none-any.whl"


def _sdist(dist_dir: Path, project: Project) -> Path:
    return dist_dir / f"{project.stem}.tar.gz"


def _metadata(dist_dir: Path, project: Project) -> Message:
    with zipfile.ZipFile(_wheel(dist_dir, project)) as wheel:
        raw = wheel.read(f"{project.stem}.dist-info/METADATA").decode()
    return email.parser.Parser(policy=email.policy.compat32).parsestr(raw)


def test_each_project_builds_exactly_one_wheel_and_one_sdist_at_its_version(dist_dir: Path) -> None:
    expected = {_wheel(dist_dir, p).name for p in PROJECTS} | {_sdist(dist_dir, p).name for p in PROJECTS}
    assert {f.name for f in dist_dir.iterdir()} == expected


def test_twine_check_passes(dist_dir: Path) -> None:
    output = _run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, sorted(dist_dir.iterdir()))], what="twine check"
    )
    assert output.count("PASSED") == 2 * len(PROJECTS), output


def test_integration_licenses_are_the_root_license() -> None:
    for project in PROJECTS:
        assert (project.folder / "LICENSE").read_bytes() == LICENSE, project.folder
    assert b"Apache License" in LICENSE and b"Version 2.0, January 2004" in LICENSE


@pytest.mark.parametrize("project", PROJECTS, ids=IDS)
def test_license_is_in_the_wheel_and_the_sdist(dist_dir: Path, project: Project) -> None:
    with zipfile.ZipFile(_wheel(dist_dir, project)) as wheel:
        assert wheel.read(f"{project.stem}.dist-info/licenses/LICENSE") == LICENSE
    with tarfile.open(_sdist(dist_dir, project)) as sdist:
        member = sdist.extractfile(f"{project.stem}/LICENSE")
        assert member is not None and member.read() == LICENSE


@pytest.mark.parametrize("project", PROJECTS, ids=IDS)
def test_metadata_is_complete(dist_dir: Path, project: Project) -> None:
    meta = _metadata(dist_dir, project)
    assert meta["Name"] == project.name and meta["Version"] == project.version
    assert meta["License-Expression"] == "Apache-2.0" and meta.get_all("License-File") == ["LICENSE"]
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["Summary"] and meta["Keywords"] and meta["Author"]
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert set(urls) >= {"Homepage", "Repository", "Issues", "Changelog"}, urls
    assert all(u.startswith("https://") for u in urls.values()), urls
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers and "Programming Language :: Python :: 3.11" in classifiers
    assert meta["Description-Content-Type"] == "text/markdown"
    description = meta.get_payload()
    assert description.startswith("# "), description[:200]
    assert not RELATIVE_LINK.findall(description), "relative links break on the package index's page"
    if project.name != "promptembed":
        assert any(r.startswith("promptembed") for r in meta.get_all("Requires-Dist") or [])


@pytest.mark.parametrize("project", PROJECTS, ids=IDS)
def test_wheel_and_sdist_hold_the_package_and_nothing_else(dist_dir: Path, project: Project) -> None:
    package = project.module.replace(".", "/")
    with zipfile.ZipFile(_wheel(dist_dir, project)) as wheel:
        names = set(wheel.namelist())
    assert f"{package}/__init__.py" in names and f"{package}/py.typed" in names
    code = {n for n in names if not n.startswith(f"{project.stem}.dist-info/")}
    assert all(n.startswith(f"{package}/") for n in code), sorted(code)
    assert not names & NAMESPACE_INITS
    with tarfile.open(_sdist(dist_dir, project)) as sdist:
        files = {m.name.removeprefix(f"{project.stem}/") for m in sdist.getmembers() if m.isfile()}
    assert {"pyproject.toml", "README.md", "LICENSE", "PKG-INFO"} <= files
    assert not {f for f in files if f.split("/")[0] in {"tests", "notebooks", "benchmarks", "integrations", "docs"}}
    if project.name == "promptembed":
        assert "CHANGELOG.md" in files


def test_wheels_install_into_a_fresh_venv_and_embed(dist_dir: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], what="uv venv")  # no system site-packages
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env |= {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    install = [_uv(), "pip", "install", "--quiet", "--python", python, *_find_links()]
    _run([*install, TORCH], what=f"install {TORCH}", env=env)
    _run([*install, *(str(_wheel(dist_dir, p)) for p in PROJECTS)], what="install the four wheels", env=env)
    _run([_uv(), "pip", "check", "--python", python], what="uv pip check", env=env)

    smoke = tmp_path / "smoke.py"
    smoke.write_text(
        textwrap.dedent(
            f"""
            import importlib, importlib.metadata, json
            import promptembed
            from promptembed import PromptEmbedder
            from langchain_promptembed import PromptEmbeddings
            from llama_index.embeddings.promptembed import PromptEmbedding
            from haystack_integrations.components.embedders.promptembed import PromptTextEmbedder

            versions = {{}}
            for dist, module in {[(p.name, p.module) for p in PROJECTS]!r}:
                versions[dist] = [importlib.metadata.version(dist), importlib.import_module(module).__version__]
            query = "Which planet is known as the Red Planet?"
            core = PromptEmbedder()  # held: the adapters share its loaded model
            vectors = {{
                "core": core.embed_queries([query])[0].tolist(),
                "langchain": PromptEmbeddings().embed_query(query),
                "llama-index": PromptEmbedding().get_query_embedding(query),
                "haystack": PromptTextEmbedder().run(text=query)["embedding"],
            }}
            print(json.dumps({{"versions": versions, "vectors": vectors, "file": promptembed.__file__}}))
            """
        )
    )
    import json

    report = json.loads(_run([python, str(smoke)], what="import and embed in the fresh venv", env=env).splitlines()[-1])
    assert report["file"].startswith(str(venv)), report["file"]  # the installed wheel, not the source tree
    for project in PROJECTS:
        assert report["versions"][project.name] == [project.version, project.version]
    core = report["vectors"]["core"]
    assert len(core) == 384
    for name, vector in report["vectors"].items():
        assert vector == pytest.approx(core, abs=2e-6), name
    version = _run([str(venv / "bin" / "promptembed"), "--version"], what="promptembed --version", env=env)
    assert version.split() == ["promptembed", PROJECTS[0].version]
    # the corpus command with no extra installed (it needed pyarrow, which only the [ray] extra brought)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "Mars is red."}\n{"text": "Venus is hot."}\n', encoding="utf-8")
    cli = [str(venv / "bin" / "promptembed"), "embed", str(corpus), "-o", str(tmp_path / "vectors")]
    _run(cli, what="promptembed embed in the fresh venv", env=env)
    assert json.loads((tmp_path / "vectors" / "_manifest.json").read_text(encoding="utf-8"))["rows"] == 2
