"""finetune(): seed recipes on small local data, prompts and Matryoshka kept, no leakage, crash safety."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from promptembed import ConfigError, PromptEmbedder
from promptembed.finetune import finetune
from promptembed.testing import EMBEDDINGGEMMA_PROMPTS

TOPICS = {
    "permits": "A carport needs a building permit in most municipalities. The roof area decides whether it does.",
    "energy": "Heat pumps lower energy bills for houses. Ground source pumps cost more to install than air pumps.",
    "roofs": "Roof repairs with the same material need no permit. Changing the colour of the roof may need one.",
    "insurance": "The contractor must have liability insurance. Ask for the certificate before any work starts.",
    "drainage": "Drainage must be checked before the foundation is poured. Water damage is expensive to repair.",
    "windows": "Replacing windows with the same look needs no permit. New window openings in a facade need one.",
    "fences": "A fence taller than one metre near a street may need a permit. Hedges are usually exempt from it.",
    "sheds": "Small sheds under fifteen square metres are often exempt. Larger outbuildings need a building permit.",
}


@pytest.fixture
def docs(write_docs: Callable[[Mapping[str, str]], Path]) -> Path:
    folder = write_docs(TOPICS)
    (folder / "junk.bin.txt").write_bytes(b"\x00\x00binary")
    return folder


@pytest.fixture
def eval_file(tmp_path: Path) -> Path:
    path = tmp_path / "eval.jsonl"
    qs = ["do I need a permit for a carport", "are heat pumps cheaper to run", "who needs liability insurance"]
    keys = ["permits", "energy", "insurance"]
    path.write_text(
        "".join(json.dumps({"query": q, "positive": TOPICS[k]}) + "\n" for q, k in zip(qs, keys, strict=True))
    )
    return path


def _changed(base: Path, tuned: Path) -> bool:
    texts = ["carport permit", "heat pump"]
    a = SentenceTransformer(str(base), device="cpu").encode(texts)
    b = SentenceTransformer(str(tuned), device="cpu").encode(texts)
    return not np.allclose(a, b)


def test_documents_to_model_with_report_and_no_leakage(docs: Path, tmp_path: Path, minilm_dir: Path) -> None:
    out = tmp_path / "model"
    result = finetune(
        [docs], output=out, base=minilm_dir, heldout_fraction=0.25, max_steps=2, batch_size=4, progress=False
    )
    assert result.output == out.resolve() and out.is_dir()
    assert {"report.json", "report.md", "before_after.png", "README.md", "train_pairs.jsonl"} <= {
        p.name for p in out.iterdir()
    }
    assert (out / "before_after.png").read_bytes()[:4] == b"\x89PNG"
    assert [Path(s["path"]).name for s in result.skipped] == ["junk.bin.txt"]
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["loss"] == "mnrl"
    assert set(report["evaluations"]) == {"heldout_pseudo_queries"}
    assert report["improved"] == result.improved
    # No leakage: held-out chunks never appear in training pairs.
    held_rows = [json.loads(line) for line in (out / "heldout_chunks.jsonl").read_text().splitlines()]
    assert len(held_rows) == report["data"]["heldout_chunks"] > 0
    held = [h["text"] for h in held_rows]
    pairs = [json.loads(line) for line in (out / "train_pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == report["data"]["train_pairs"] > 0
    assert {p["chunk_id"] for p in pairs}.isdisjoint({h["id"] for h in held_rows})
    for h in held:
        for p in pairs:
            assert p["positive"] != h and p["anchor"] != h
            if len(h) > 40:  # a real passage, not a two-word tail shared by chance
                assert h not in p["positive"] and p["anchor"] not in h
    assert _changed(minilm_dir, out)
    assert not list(tmp_path.glob(".model.*"))  # no temp or work folders left behind
    with PromptEmbedder(model=out) as emb:
        assert emb.embed_queries(["x"]).shape == (1, 384)


def test_pairs_file_mnrl_recipe(tmp_path: Path, tiny_bert_dir: Path, eval_file: Path) -> None:
    """Seed 004 shape: (anchor, positive) pairs -> MultipleNegativesRankingLoss."""
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("anchor,positive\n" + "".join(f"{k} question,{v}\n" for k, v in TOPICS.items()))
    out = tmp_path / "m"
    result = finetune(
        supervision=pairs,
        output=out,
        base=tiny_bert_dir,
        eval_queries=eval_file,
        max_steps=2,
        batch_size=4,
        progress=False,
    )
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["loss"] == "mnrl" and result.train_pairs == len(TOPICS)
    assert set(result.evaluations) == {"eval_queries"}
    assert _changed(tiny_bert_dir, out)


def test_scored_pairs_cosent_recipe_with_korean(tmp_path: Path, tiny_bert_dir: Path, eval_file: Path) -> None:
    """Seed 002 shape: (text1, text2, score) incl. Korean -> CoSENTLoss."""
    scored = tmp_path / "scored.jsonl"
    rows = [
        {"sentence1": "오늘 날씨가 좋다", "sentence2": "날씨가 맑다", "score": 0.9},
        {"sentence1": "오늘 날씨가 좋다", "sentence2": "주식 시장이 하락했다", "score": 0.1},
        {"sentence1": "A carport needs a permit", "sentence2": "Permits are needed for carports", "score": 0.95},
        {"sentence1": "A carport needs a permit", "sentence2": "Heat pumps save energy", "score": 0.05},
    ]
    scored.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "m"
    finetune(
        supervision=scored,
        output=out,
        base=tiny_bert_dir,
        eval_queries=eval_file,
        max_steps=2,
        batch_size=4,
        progress=False,
    )
    assert json.loads((out / "report.json").read_text())["training"]["loss"] == "cosent"
    assert _changed(tiny_bert_dir, out)


def test_embeddinggemma_keeps_prompts_and_matryoshka(docs: Path, tmp_path: Path, tiny_gemma_dir: Path) -> None:
    out = tmp_path / "gemma-tuned"
    finetune([docs], output=out, base=tiny_gemma_dir, max_steps=2, batch_size=4, heldout_fraction=0.25, progress=False)
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["matryoshka_dims"] == [32, 16, 8]
    assert "matryoshka_dims: [32, 16, 8]" in (out / "README.md").read_text()
    saved = json.loads((out / "config_sentence_transformers.json").read_text())["prompts"]
    assert {k: saved[k] for k in EMBEDDINGGEMMA_PROMPTS} == EMBEDDINGGEMMA_PROMPTS
    ref = SentenceTransformer(str(out), device="cpu")
    with PromptEmbedder(model=out, truncate_dim=16) as emb:
        assert emb.query_prompt == EMBEDDINGGEMMA_PROMPTS["query"]
        full = ref.encode_query(["carport permit"])[:, :16]
        np.testing.assert_allclose(emb.embed_queries(["carport permit"]), full / np.linalg.norm(full), atol=2e-6)


def test_empty_or_binary_only_folder_is_a_clear_error(tmp_path: Path, tiny_bert_dir: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="No readable documents"):
        finetune([empty], output=tmp_path / "m", base=tiny_bert_dir, progress=False)
    (empty / "a.txt").write_bytes(b"\x00\x01")
    with pytest.raises(ConfigError, match=re.escape("binary file (NUL bytes), not text")):
        finetune([empty], output=tmp_path / "m", base=tiny_bert_dir, progress=False)
    assert not (tmp_path / "m").exists()


def test_bad_output_checked_before_training(
    docs: Path, tmp_path: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="a-file, which is a file, not a folder"):
        finetune([docs], output=blocker / "sub" / "model", base=tiny_bert_dir, progress=False)
    with pytest.raises(ConfigError, match="a-file is a file; give a folder path"):  # not "pass overwrite=True"
        finetune([docs], output=blocker, base=tiny_bert_dir, progress=False)
    existing = tmp_path / "exists"
    existing.mkdir()
    with pytest.raises(ConfigError, match="already exists; pass overwrite=True"):
        finetune([docs], output=existing, base=tiny_bert_dir, progress=False)
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10, 10, 0))  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="Only 0 MB free next to"):
        finetune([docs], output=tmp_path / "m", base=tiny_bert_dir, progress=False)


def test_preflight_asks_for_room_for_two_checkpoints_and_the_model(
    tmp_path: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    size = sum(p.stat().st_size for p in tiny_bert_dir.rglob("*") if p.is_file())
    # 5x the model: enough for the 4x asked before, not for two checkpoints (3.7x each) during rotation
    monkeypatch.setattr(shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10 * size, 5 * size, 5 * size))  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"Only \d+ MB free next to .*m; finetuning this \d+ MB model needs"):
        finetune([tmp_path / "never-read"], output=tmp_path / "m", base=tiny_bert_dir, progress=False)


def test_an_output_under_a_file_is_refused_before_any_document_is_read(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    # no documents there: a run that got past the output checks would fail on them instead
    with pytest.raises(
        ConfigError, match=re.escape(f"Output {blocker / 'model'} lies under {blocker}, which is a file")
    ):
        finetune([tmp_path / "never-read"], output=blocker / "model", progress=False)


_KILLABLE = """
import sys, time
from sentence_transformers import SentenceTransformerTrainer
step = SentenceTransformerTrainer.training_step
def slow(self, *a, **k):
    time.sleep(0.3)
    return step(self, *a, **k)
SentenceTransformerTrainer.training_step = slow
from promptembed.finetune import finetune
finetune([sys.argv[1]], output=sys.argv[2], base=sys.argv[3], max_steps=40, save_steps=2, batch_size=4, progress=False)
"""


def test_sigkill_mid_training_leaves_no_output_and_rerun_resumes(
    docs: Path, tmp_path: Path, tiny_bert_dir: Path
) -> None:
    out = tmp_path / "model"
    work = tmp_path / ".model.work"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE, str(docs), str(out), str(tiny_bert_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not list(work.glob("checkpoint-*/trainer_state.json")):
        time.sleep(0.2)
    assert list(work.glob("checkpoint-*/trainer_state.json")), "no checkpoint was written"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not out.exists()
    assert not list(tmp_path.glob(".model.tmp-*"))
    result = finetune([docs], output=out, base=tiny_bert_dir, max_steps=40, save_steps=2, batch_size=4, progress=False)
    report = json.loads((out / "report.json").read_text())  # the same run again: it resumes
    assert report["training"]["metrics"]["resumed_from"].startswith("checkpoint-")
    assert result.output.is_dir() and not work.exists()
    with PromptEmbedder(model=out) as emb:
        assert np.isfinite(emb.embed_queries(["carport"])).all()


def test_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from promptembed import MissingExtraError

    for name in [m for m in sys.modules if m.startswith("promptembed.finetune")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "bm25s", None)
    with pytest.raises(MissingExtraError, match=re.escape("install it with: pip install 'promptembed[train]'")):
        import promptembed.finetune  # noqa: F401


def test_an_extra_that_is_installed_but_fails_to_import_is_not_called_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from promptembed import MissingExtraError

    # datasets installed, but pyarrow beneath it built for another numpy: the message said "missing: datasets"
    (tmp_path / "broken_extra_pkg.py").write_text("raise ImportError('pyarrow requires NumPy 2.0')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import promptembed._extras as extras

    with pytest.raises(MissingExtraError) as raised:
        extras.require_module("broken_extra_pkg", needed_by="X needs the [train] extra", install="pip install y")
    assert "missing" not in str(raised.value)
    assert (
        "X needs the [train] extra, and broken_extra_pkg is installed but fails to import (ImportError: pyarrow "
        "requires NumPy 2.0); versions that do not fit together are the usual cause: run `pip check`"
        in str(raised.value)
    )
    with pytest.raises(MissingExtraError, match=re.escape("X needs it (missing: no_such_pkg_xyz); install it with")):
        extras.require_module("no_such_pkg_xyz", needed_by="X needs it", install="pip install z")


@pytest.mark.gpu
def test_finetune_on_cuda_evaluates_on_the_gpu(docs: Path, tmp_path: Path, tiny_bert_dir: Path) -> None:
    """On CUDA the corpus embeddings made once for both evaluations meet query embeddings on the GPU (the first GPU
    run, 2026-11-26, failed with "mat2 is on cpu" before this test)."""
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        "".join(json.dumps({"query": f"what about {name}?", "positive": text}) + "\n" for name, text in TOPICS.items())
    )
    out = tmp_path / "m"
    result = finetune(
        [docs], output=out, base=tiny_bert_dir, eval_queries=questions, device="cuda", max_steps=2, batch_size=4,
        heldout_fraction=0.3, progress=False,
    )  # fmt: skip
    report = json.loads((result.output / "report.json").read_text())
    assert set(report["evaluations"]) == {"heldout_pseudo_queries", "eval_queries"}
    assert report["evaluations"]["eval_queries"]["base"]["n_queries"] == len(TOPICS)


def test_checkpoints_of_another_run_are_not_resumed(
    docs: Path, tmp_path: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import promptembed.finetune.api as api

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full while saving")

    out, work = tmp_path / "m", tmp_path / ".m.work"
    run = {"output": out, "base": tiny_bert_dir, "max_steps": 4, "save_steps": 2, "batch_size": 4, "progress": False}
    with monkeypatch.context() as m:
        m.setattr(api, "write_card", crash)  # run A trains, then dies while saving: its checkpoints stay
        with pytest.raises(ConfigError, match=r"failed \(OSError: disk full while saving\); nothing was written"):
            finetune([docs], **run)  # type: ignore[arg-type]
    assert (work / "checkpoint-4").is_dir() and not out.exists()
    other = tmp_path / "other-docs"
    other.mkdir()
    for name in ("permits", "energy", "roofs", "insurance", "drainage", "windows"):
        (other / f"{name}.txt").write_text(TOPICS[name].replace("permit", "licence"))
    finetune([other], **run, seed=7)  # type: ignore[arg-type]  # run B: other documents and seed
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["metrics"]["resumed_from"] is None  # it resumed run A's weights before the fix
    assert "holds checkpoints of another run (rows, rows_sha256, seed differ)" in caplog.text


def test_an_empty_work_folder_is_a_fresh_start_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Under torchrun the other ranks make the folder before rank 0 looks: that is no other run's checkpoints."""
    from promptembed.finetune._workdir import start_or_resume

    work = tmp_path / ".m.work"
    work.mkdir()
    with caplog.at_level("WARNING", "promptembed"):
        start_or_resume(work, {"seed": 0})
    assert "holds checkpoints" not in caplog.text and json.loads((work / "run.json").read_text()) == {"seed": 0}
    (work / "checkpoint-2").mkdir()  # a folder with something in it but no run.json is another run's
    (work / "run.json").unlink()
    with caplog.at_level("WARNING", "promptembed"):
        start_or_resume(work, {"seed": 0})
    assert "holds checkpoints of another run (seed differ)" in caplog.text and not (work / "checkpoint-2").exists()


def test_an_interrupted_overwrite_puts_the_previous_model_back(
    docs: Path, tmp_path: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "m"
    run = {"output": out, "base": tiny_bert_dir, "max_steps": 2, "batch_size": 4, "progress": False}
    finetune([docs], **run)  # type: ignore[arg-type]
    before = (out / "report.json").read_bytes()
    real_rename = Path.rename

    def rename(self: Path, target: Path) -> Path:  # Ctrl-C between "old model aside" and "new model in"
        if self.name.startswith(".m.tmp-"):
            raise KeyboardInterrupt
        return real_rename(self, target)

    with monkeypatch.context() as m:
        m.setattr(Path, "rename", rename)
        with pytest.raises(KeyboardInterrupt):
            finetune([docs], **run, overwrite=True)  # type: ignore[arg-type]
    assert (out / "report.json").read_bytes() == before  # there was no model at the output before the fix
    from promptembed.finetune._workdir import saving_folder

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = gone.stdout.strip()
    real_rename(out, tmp_path / f".m.old-{dead}")  # a SIGKILL at that point: the next run puts it back
    (tmp_path / (saving_folder(out).name.rsplit("-", 1)[0] + f"-{dead}")).mkdir()  # the new model, not yet in place
    with pytest.raises(ConfigError, match="already exists"):
        finetune([docs], **run)  # type: ignore[arg-type]
    assert (out / "report.json").read_bytes() == before and not (tmp_path / f".m.old-{dead}").exists()
    finetune([docs], **run, overwrite=True)  # type: ignore[arg-type]  # a whole overwrite leaves nothing hidden
    assert sorted(p.name for p in tmp_path.glob(".m*")) == []


def test_eval_files_are_checked_before_any_document_is_read(
    docs: Path, tmp_path: Path, tiny_bert_dir: Path, eval_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import promptembed.finetune.api as api

    def too_late(*args: object, **kwargs: object) -> None:
        raise AssertionError("the documents were read before the eval files were checked")

    monkeypatch.setattr(api, "load_documents", too_late)
    run = {"output": tmp_path / "m", "base": tiny_bert_dir, "progress": False}
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"q": "q", "a": "a"}) + "\n")
    with pytest.raises(
        ConfigError,
        match=r"wrong.jsonl: columns \['a', 'q'\] are not eval queries; eval queries need the columns query and pos",
    ):
        finetune([docs], eval_queries=wrong, **run)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="Eval queries file .*missing.jsonl does not exist"):
        finetune([docs], eval_queries=tmp_path / "missing.jsonl", **run)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"eval_corpus= \(--eval-corpus\) holds distractors for eval_queries="):
        finetune([docs], eval_corpus=eval_file, **run)  # type: ignore[arg-type]
    broken = tmp_path / "corpus.jsonl"
    broken.write_text(json.dumps({"text": "fine"}) + "\n" + '{"text": "a\tb"\n')
    with pytest.raises(ConfigError, match=r"corpus.jsonl:2: not valid JSON \(.*\); each line of the eval corpus"):
        finetune([docs], eval_queries=eval_file, eval_corpus=broken, **run)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an int >= 1, got 0"),
        ({"learning_rate": -1.0}, "learning_rate=-1.0 must be a number in (0, 1)"),
        ({"seed": -1}, "seed must be an int >= 0, got -1"),
        ({"seed": 2**32}, "seed=4294967296 must be below 2**32"),
        ({"max_steps": 0}, "max_steps must be an int >= 1, got 0"),  # it trained 1 step (and -3: two epochs)
        ({"lr_scheduler": "bogus"}, "Unknown lr_scheduler='bogus'; use one of 'linear'"),
        ({"teacher": "/nope/teacher"}, "Model '/nope/teacher' not found"),
    ],
)
def test_bad_trainer_options_fail_before_any_document_is_read(
    docs: Path, tmp_path: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch, option: dict, message: str
) -> None:
    import promptembed.finetune.api as api
    from promptembed.errors import PromptEmbedError

    def too_late(*args: object, **kwargs: object) -> None:
        raise AssertionError(
            "the documents were read (and pairs made, maybe by an LLM) before the options were checked"
        )

    monkeypatch.setattr(api, "load_documents", too_late)
    with pytest.raises(PromptEmbedError, match=re.escape(message)):
        finetune([docs], output=tmp_path / "m", base=tiny_bert_dir, progress=False, **option)


def test_a_supervision_file_that_would_drop_the_generated_pairs_is_refused(
    docs: Path, tmp_path: Path, tiny_bert_dir: Path
) -> None:
    triplets = tmp_path / "triplets.csv"
    triplets.write_text("anchor,positive,negative\nq1,p1,n1\nq2,p2,n2\nq3,p3,n3\n")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("anchor,positive\nq1,p1\nq2,p2\n")
    run = {"output": tmp_path / "m", "base": tiny_bert_dir, "progress": False}
    with pytest.raises(ConfigError, match=re.escape("Triplets (anchor,positive,negative) cannot be mixed with pairs")):
        finetune([docs], supervision=triplets, **run)  # it trained on the 3 triplets alone, without a word
    with pytest.raises(ConfigError, match=re.escape("hard_negatives= mines negatives for the pairs generated from")):
        finetune([docs], supervision=pairs, hard_negatives=1, **run)  # the negatives were silently not mined


def test_what_killed_runs_left_beside_the_output_is_swept(docs: Path, tmp_path: Path, tiny_bert_dir: Path) -> None:
    out = tmp_path / "model [v2]"  # glob characters in the name
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    from promptembed.finetune._workdir import saving_folder

    dead = f".model [v2].tmp-{gone.stdout.strip()}"  # a process that no longer exists (an earlier version's name)
    ours = saving_folder(out).name.rsplit("-", 1)[0] + f"-{gone.stdout.strip()}"  # this machine's: dead, so at once
    swept = [dead, ours, ".model [v2].trash-abc_1234"]  # and a mkdtemp trash folder
    kept = [
        f".model [v2].tmp-another-machine-{gone.stdout.strip()}",  # its pid means nothing here: the hour applies
        f".model [v2].tmp-{os.getppid()}",  # a live process (this one's parent) may be saving right now
        ".model [v2].tmp-12x",  # not a pid
        ".model [v2].trash-old.work",  # a neighbour: the work folder of an output named "model [v2].trash-old"
        f".model [v2].tmp-{gone.stdout.strip()}.old-{gone.stdout.strip()}",  # a neighbour's model to be put back
    ]
    for name in swept + kept:
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"x" * 100)
    hours_ago = time.time() - 2 * 3600
    for name in (dead, kept[1], kept[-1]):
        os.utime(tmp_path / name, (hours_ago, hours_ago))  # idle for two hours (the others: written just now)
    recent = tmp_path / ".model [v2].tmp-999999999"  # dead pid, but written to a minute ago: maybe another machine
    recent.mkdir()
    finetune([docs], output=out, base=tiny_bert_dir, max_steps=2, batch_size=4, progress=False)
    assert sorted(p.name for p in tmp_path.glob(".model*")) == sorted([*kept, recent.name])


def test_an_interrupted_overwrite_is_put_back_under_a_name_with_glob_characters(
    docs: Path, tmp_path: Path, tiny_bert_dir: Path
) -> None:
    out = tmp_path / "model [v2]"
    finetune([docs], output=out, base=tiny_bert_dir, max_steps=2, batch_size=4, progress=False)
    before = (out / "report.json").read_bytes()
    out.rename(tmp_path / ".model [v2].old-999")  # killed between the two renames of an overwrite
    (tmp_path / ".model [v2].tmp-999").mkdir()  # (the new model not yet renamed into place)
    with pytest.raises(ConfigError, match="already exists"):
        finetune([docs], output=out, base=tiny_bert_dir, max_steps=2, batch_size=4, progress=False)
    assert (out / "report.json").read_bytes() == before  # put back (glob read "[v2]" as a character class)


def test_a_stale_old_model_is_swept_not_restored(tmp_path: Path) -> None:
    from promptembed.finetune._workdir import restore_interrupted_overwrite, saving_folder, sweep_leftovers

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(gone.stdout)
    out = tmp_path / "m"

    def model(name: str) -> Path:
        (tmp_path / name).mkdir()
        (tmp_path / name / "modules.json").write_text("[]")
        return tmp_path / name

    # killed after the new model was in place, before the old one went to the trash; then the user deleted
    # the output: the old model must not come back
    stale = model(f".m.old-{dead}")
    restore_interrupted_overwrite(out)
    assert not out.exists()
    sweep_leftovers(out)
    assert not stale.exists()
    # the same with the output in place: swept too
    stale = model(f".m.old-{dead}")
    out.mkdir()
    sweep_leftovers(out)
    assert not stale.exists()
    out.rmdir()
    # killed between the two renames (its saving folder still holds the new model): put back
    between = model(f".m.old-{dead}")
    (saving_folder(out).parent / (saving_folder(out).name.rsplit("-", 1)[0] + f"-{dead}")).mkdir()
    restore_interrupted_overwrite(out)
    assert (out / "modules.json").is_file() and not between.exists()
    # a live process's .old is left alone
    alive = model(f".m.old-{os.getppid()}")
    sweep_leftovers(out)
    assert alive.exists()


def test_a_run_killed_after_training_resumes_without_another_step(
    docs: Path, tmp_path: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import promptembed.finetune.api as api

    # a constant schedule, so that a step more would change the weights (linear decays the last step's lr to 0)
    run = {"base": tiny_bert_dir, "lr_scheduler": "constant", "learning_rate": 1e-3, "max_steps": 2, "save_steps": 2,
           "batch_size": 4, "progress": False}  # fmt: skip
    clean = finetune([docs], output=tmp_path / "clean", **run)  # type: ignore[arg-type]

    from safetensors import SafetensorError

    def disk_full(*args: object, **kwargs: object) -> None:  # what safetensors raises on ENOSPC: not an OSError
        raise SafetensorError("Error while serializing: IoError(No space left on device (os error 28))")

    out = tmp_path / "resumed"

    def a_bug(*args: object, **kwargs: object) -> None:
        raise TypeError("a bug in the report")

    with monkeypatch.context() as m:  # not a save failure: raised as it is, not as "free space and rerun"
        m.setattr(api, "write_reports", a_bug)
        with pytest.raises(TypeError, match="a bug in the report"):
            finetune([docs], output=out, **run)  # type: ignore[arg-type]
    assert not out.exists()
    with monkeypatch.context() as m:  # failed while saving, after the final checkpoint-2
        m.setattr(api, "write_card", disk_full)
        message = (
            f"Saving the model to {out} failed (SafetensorError: Error while serializing: IoError(No space left on "
            f"device (os error 28))); nothing was written there. The trained checkpoint is kept in "
            f"{tmp_path / '.resumed.work'}: free space (or fix the cause) and rerun the same command to resume from it"
        )
        with pytest.raises(ConfigError, match=re.escape(message)):
            finetune([docs], output=out, **run)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.glob(".resumed*")) == [".resumed.work"]  # no half-written model
    resumed = finetune([docs], output=tmp_path / "resumed", **run)  # type: ignore[arg-type]
    metrics = json.loads((tmp_path / "resumed" / "report.json").read_text())["training"]["metrics"]
    assert metrics["resumed_from"] == "checkpoint-2" and metrics["global_step"] == 2  # it trained a third step
    assert (
        metrics["epoch"] == json.loads((tmp_path / "clean" / "report.json").read_text())["training"]["metrics"]["epoch"]
    )
    a = SentenceTransformer(str(clean.output), device="cpu").state_dict()
    b = SentenceTransformer(str(resumed.output), device="cpu").state_dict()
    assert all(np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-6) for k in a)


def test_too_few_chunks_to_mine_negatives_from_is_a_warning(
    write_docs: Callable[[Mapping[str, str]], Path],
    tmp_path: Path,
    tiny_bert_dir: Path,
    eval_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    two = write_docs({"permits": "A carport needs a permit.", "energy": "Heat pumps save energy."})  # two chunks
    with caplog.at_level("WARNING", "promptembed"):
        finetune([two], output=tmp_path / "m", base=tiny_bert_dir, hard_negatives=1, eval_queries=eval_file,
                 heldout_fraction=0.0, max_steps=1, batch_size=4, progress=False)  # fmt: skip
    assert "hard negatives skipped: 2 training chunks leave none to mine from" in caplog.text  # it said nothing
    assert "negative_1" not in (tmp_path / "m" / "train_pairs.jsonl").read_text()


def test_a_checkpoint_cut_off_while_it_was_saved_is_passed_over_and_removed(tmp_path: Path) -> None:
    """transformers writes trainer_state.json last and in place: a kill or a full disk leaves it empty or cut. Every
    rerun used to pick that newest checkpoint and fail on it (JSONDecodeError) until the work folder was deleted."""
    from promptembed.finetune.train import latest_checkpoint

    def checkpoint(step: int, state: str | None) -> Path:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"weights")
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
        return folder

    good = checkpoint(2, json.dumps({"global_step": 2, "max_steps": 9}))
    checkpoint(1, json.dumps({"global_step": 1, "max_steps": 9}))
    empty = checkpoint(3, "")  # a full disk
    cut = checkpoint(4, '{"global_step": 4, "max_st')  # killed mid-write
    unsaved = checkpoint(5, None)  # killed before the state was written
    assert latest_checkpoint(tmp_path) == good
    assert not empty.exists() and not cut.exists() and not unsaved.exists()  # or the trainer's rotation keeps them
    assert (tmp_path / "checkpoint-1").exists()  # older complete ones are the trainer's to rotate


def test_the_finetune_package_imports_without_the_unix_only_resource_module() -> None:
    """``import resource`` at the top of finetune/api.py made all of promptembed.finetune fail on Windows."""
    code = (
        "import sys; sys.modules['resource'] = None\n"  # what `import resource` meets where it does not exist
        "import promptembed.finetune\n"
        "from promptembed.finetune.report import peak_rss_mb\n"
        "assert peak_rss_mb() is None, peak_rss_mb()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    from promptembed.finetune.report import peak_rss_mb

    peak = peak_rss_mb()
    assert peak is not None and peak > 50  # this process, in MB (a KiB or byte count would be off by 1024)
