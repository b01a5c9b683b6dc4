"""Fixtures for the three adapters' end-to-end tests: a real Chroma server on the loopback interface.

``chroma_server`` starts ``chroma run`` (shipped in the ``chromadb`` package) once per test session, on a free
port of 127.0.0.1 and a temporary folder, waits for its heartbeat and stops it at the end. Each test uses its own
collection; ``ChromaServer.restart()`` stops the process and starts a new one on the same folder and port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

#: Seconds to wait for the server's heartbeat after starting it (it answers in about a second on a quiet machine).
START_TIMEOUT_S = 60.0
#: Seconds to wait for a clean exit after SIGTERM before killing the process.
STOP_TIMEOUT_S = 15.0


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> list[str]:
    """A command prefix that makes the server get SIGTERM when the test process dies, even by SIGKILL or os._exit.

    util-linux's ``setpriv --pdeathsig`` sets the parent-death signal, which survives its exec of the server; where
    it is missing the prefix is empty. Fixture teardown stops the server in every orderly exit; this covers the
    others (a killed or timed-out run). No ``preexec_fn``: no Python runs between fork and exec.
    """
    setpriv = shutil.which("setpriv") if sys.platform == "linux" else None
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def _chroma_executable() -> str:
    beside_python = Path(sys.executable).parent / "chroma"
    found = str(beside_python) if beside_python.exists() else shutil.which("chroma")
    if found is None:
        pytest.fail(
            "The `chroma` command (package chromadb, in requirements/dev.txt) was not found beside "
            f"{sys.executable} nor on PATH; run `make setup`.",
            pytrace=False,
        )
    return found


class ChromaServer:
    """A throw-away ``chroma run`` process: loopback only, one data folder, one port for its whole life."""

    def __init__(self, path: Path, *, host: str = "127.0.0.1") -> None:
        self.path = path
        self.host = host
        self.port = _free_port(host)
        self.log_path = path.parent / f"{path.name}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's own output (stdout and stderr), for failure messages."""
        if self._log is not None:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError as exc:
            return f"<no server log: {exc}>"

    def heartbeat(self) -> bool:
        """True when the server answers ``GET /api/v2/heartbeat`` with 200."""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start the server and block until its heartbeat answers; fail with its log if it does not."""
        if self._process is not None:
            raise RuntimeError("Chroma server already running; stop() it first")
        if self.heartbeat():
            pytest.fail(f"Another Chroma server already answers at {self.url}; not starting a second", pytrace=False)
        self.path.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "NO_COLOR": "1"}
        command = [*_die_with_parent(), _chroma_executable(), "run", "--path", str(self.path)]
        command += ["--host", self.host, "--port", str(self.port)]
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                pytest.fail(
                    f"`{' '.join(command)}` exited with code {code} before answering its heartbeat.\n"
                    f"Server log ({self.log_path}):\n{self.log_tail()}",
                    pytrace=False,
                )
            if self.heartbeat():
                return
            time.sleep(0.1)
        self.stop()
        pytest.fail(
            f"Chroma server at {self.url} did not answer its heartbeat within {timeout:.0f} s.\n"
            f"Server log ({self.log_path}):\n{self.log_tail()}",
            pytrace=False,
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT_S`); the data folder stays."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        """Stop the server and start a new process on the same folder and port."""
        self.stop()
        if self.heartbeat():
            pytest.fail(f"Something still answers at {self.url} after the Chroma server was stopped", pytrace=False)
        self.start()

    def client(self) -> Any:
        """A ``chromadb.HttpClient`` for this server (telemetry off)."""
        import chromadb
        from chromadb.config import Settings

        return chromadb.HttpClient(host=self.host, port=self.port, settings=Settings(anonymized_telemetry=False))


@pytest.fixture
def new_chroma_server(tmp_path: Path) -> Iterator[Callable[[], ChromaServer]]:
    """A factory of not-yet-started servers in this test's folder; each is stopped when the test ends."""
    made: list[ChromaServer] = []

    def make() -> ChromaServer:
        made.append(ChromaServer(tmp_path / f"chroma-{len(made)}"))
        return made[-1]

    yield make
    for server in made:
        server.stop()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """One Chroma server for the test session (127.0.0.1, a free port, a temporary folder)."""
    server = ChromaServer(tmp_path_factory.mktemp("chroma") / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


#: Prompts the end-to-end tests give the bundled MiniLM (which saves none), so that a store which skipped the
#: document prompt or the query prompt would hold or search with different vectors than the references below.
E2E_PROMPTS = {"query": "query: ", "document": "passage: "}


@dataclass(frozen=True)
class PlanetReference:
    """What a vector store must hold and find for the planet example, computed outside any host."""

    prompts: dict[str, str]
    truncate_dim: int | None
    documents: list[str]
    questions: dict[str, int]
    """Question -> index of its answer in ``documents``."""
    query: str
    """The release post's query (its answer is Mars, ``documents[1]``)."""
    core_documents: np.ndarray
    """``PromptEmbedder.embed_documents(documents)``: what the store must hold, row by row."""
    st_documents: np.ndarray
    """``SentenceTransformer.encode_document(documents, prompt=...)``, truncated and re-normalized like the core."""
    core_queries: dict[str, np.ndarray]
    """``PromptEmbedder.embed_queries([question])[0]`` per question."""

    def stored(self, texts: list[str], vectors: Any) -> np.ndarray:
        """Vectors read back from a store, reordered to ``documents``' order by their text."""
        by_text = dict(zip(texts, np.asarray(vectors, dtype=np.float32), strict=True))
        assert sorted(by_text) == sorted(self.documents), f"store holds {sorted(by_text)}"
        return np.stack([by_text[d] for d in self.documents])

    def check_chroma_collection(self, raw: dict[str, Any]) -> None:
        """A Chroma ``get(include=["embeddings", "documents"])`` result holds the core's vectors exactly (and
        sentence-transformers' within 2e-6), at the truncated dimension."""
        stored = self.stored(raw["documents"], raw["embeddings"])
        assert stored.shape == (len(self.documents), self.truncate_dim or 384)
        np.testing.assert_array_equal(stored, self.core_documents)
        np.testing.assert_allclose(stored, self.st_documents, atol=2e-6)

    def squared_l2(self, question: str, document: str) -> float:
        """Chroma's default (``l2``) distance between the core's query vector and stored document vector."""
        diff = self.core_queries[question] - self.core_documents[self.documents.index(document)]
        return float(diff @ diff)


@pytest.fixture(scope="session")
def planet_reference(
    minilm_dir: Path, planet_docs: list[str], planet_questions: dict[str, int]
) -> Callable[[int | None], PlanetReference]:
    """``planet_reference(truncate_dim)``: the bundled MiniLM's reference vectors for the planet example."""
    from sentence_transformers import SentenceTransformer

    from promptembed import PromptEmbedder

    cache: dict[int | None, PlanetReference] = {}
    st_models: list[SentenceTransformer] = []

    def build(truncate_dim: int | None) -> PlanetReference:
        if truncate_dim not in cache:
            if not st_models:
                st_models.append(SentenceTransformer(str(minilm_dir), device="cpu"))
            full = st_models[0].encode_document(planet_docs, prompt=E2E_PROMPTS["document"])[:, :truncate_dim]
            with PromptEmbedder(model=minilm_dir, prompts=E2E_PROMPTS, truncate_dim=truncate_dim) as core:
                cache[truncate_dim] = PlanetReference(
                    prompts=dict(E2E_PROMPTS),
                    truncate_dim=truncate_dim,
                    documents=list(planet_docs),
                    questions=dict(planet_questions),
                    query=next(q for q, answer in planet_questions.items() if "Red Planet" in q and answer == 1),
                    core_documents=core.embed_documents(planet_docs),
                    st_documents=full / np.linalg.norm(full, axis=1, keepdims=True),
                    core_queries={q: core.embed_queries([q])[0] for q in planet_questions},
                )
        return cache[truncate_dim]

    return build


@pytest.fixture(scope="module")
def hold_minilm(minilm_dir: Path) -> Iterator[None]:
    """Keep the bundled MiniLM loaded for one test module, so that its adapters share it instead of reloading it.

    Prompts and ``truncate_dim`` are not part of the shared model's identity; the model is released at the end of
    the module, so later tests' registry checks are unaffected.
    """
    from promptembed import PromptEmbedder

    with PromptEmbedder(model=minilm_dir):
        yield
