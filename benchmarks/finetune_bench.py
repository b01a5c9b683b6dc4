"""`make bench-finetune`: finetune configurations on two real domains, real questions for testing only.

Each (domain, configuration, seed) is one run of ``promptembed.finetune.finetune`` in its own process (peak
memory per run), appended as one JSON line to ``benchmarks/finetune_runs.jsonl`` as soon as it finishes; a rerun
skips the finished ones, so an interrupted sweep resumes. ``FINETUNE.md`` is rewritten from that file after each
run (``--report`` rewrites it without running anything).

    python benchmarks/finetune_bench.py                  # every configuration not yet run, in priority order
    python benchmarks/finetune_bench.py --only default   # runs whose configuration name matches
    python benchmarks/finetune_bench.py --keys zaragoza/epochs2/seed1 debian/default/seed0   # these runs, in order
    python benchmarks/finetune_bench.py --jobs 2 --threads 1
    python benchmarks/finetune_bench.py --report
    touch benchmarks/.finetune_stop                      # let the running runs finish, start no new one

The real questions never reach training: they go in ``eval_queries`` (the held-out pseudo-queries are made from
held-out chunks of the documents, as for a user without questions). Zaragoza is the development set; the Debian
FAQ is the test set (see finetune_domains.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "finetune_runs.jsonl"
STOP = HERE / ".finetune_stop"
GEMMA = Path.home() / ".cache" / "promptembed-models" / "embeddinggemma-300m"
# Each run's finetuned model, held-out chunk ids and training pairs are kept here (about 90 MB a MiniLM run), so
# held-out estimate designs can be scored on every finished configuration afterwards (finetune_heldout_designs.py).
KEPT = Path(os.environ.get("FINETUNE_BENCH_KEEP", Path.home() / ".cache" / "promptembed-bench" / "runs"))

# name -> finetune() keyword arguments on top of the library defaults. Order = priority.
CONFIGS: dict[str, dict[str, object]] = {
    "default": {},
    "epochs2": {"epochs": 2.0},
    "epochs2-hardneg1": {"epochs": 2.0, "hard_negatives": 1},
    "epochs2-ask": {"epochs": 2.0, "strategies": ["sentence", "keyphrase", "ask"]},
    "epochs2-roundtrip3": {"epochs": 2.0, "filter": "both", "filter_top_k": 3},
    "epochs2-lr5e-5": {"epochs": 2.0, "learning_rate": 5e-5},
    "epochs2-bs64": {"epochs": 2.0, "batch_size": 64},
    "issue-run5": {
        "learning_rate": 5e-5,
        "max_pairs_per_chunk": 5,
        "strategies": ["sentence", "keyphrase", "phrase", "question"],
    },
    "question-only": {"epochs": 2.0, "strategies": ["question"]},
    "epochs2-wise0.7": {"epochs": 2.0, "interpolate": 0.7},
    "epochs3": {"epochs": 3.0},
    "epochs2-cosine": {"epochs": 2.0, "lr_scheduler": "cosine"},
    "epochs2-cached-mnrl": {"epochs": 2.0, "loss": "cached_mnrl"},
    "teacher-gemma": {"epochs": 1.0, "teacher": str(GEMMA)},
    "teacher-gemma-epochs2": {"epochs": 2.0, "teacher": str(GEMMA)},
    "smoke": {"max_steps": 2},
    # tried on a lent GPU first (benchmarks/gpu_finetune.py): the seed 003 shape, and bolder schedules
    "bs64": {"batch_size": 64},
    "epochs3-lr5e-5": {"epochs": 3.0, "learning_rate": 5e-5},
    "epochs2-lr5e-5-roundtrip3": {"epochs": 2.0, "learning_rate": 5e-5, "filter": "both", "filter_top_k": 3},
    "epochs4-bs128-lr1e-4": {"epochs": 4.0, "batch_size": 128, "learning_rate": 1e-4},
    "epochs3-pairs5": {"epochs": 3.0, "max_pairs_per_chunk": 5},
    "epochs2-pairs5": {"epochs": 2.0, "max_pairs_per_chunk": 5},
    "epochs2-gist": {"epochs": 2.0, "loss": "gist"},
    "default-bf16": {"train_dtype": "bfloat16"},
    # the run 5 again, in bf16 (fast), so its model is kept and the held-out designs can be scored on it
    "issue-run5-bf16": {
        "learning_rate": 5e-5,
        "max_pairs_per_chunk": 5,
        "strategies": ["sentence", "keyphrase", "phrase", "question"],
        "train_dtype": "bfloat16",
    },
    # the library defaults since 2026-11-26 (bf16 on a CPU with AMX, MNRL scale 30), under their own name
    "defaults-bf16-scale30": {},
    # the library defaults again, under another name: the 1 MB speed row rerun on a quiet machine with 2 threads
    "default-speed": {},
    # the library defaults since 2026-11-26 (later): epochs="auto" (two epochs under 1500 training rows, else one)
    "defaults-auto-epochs": {},
    # configurations a user could pick that may hurt real retrieval: test cases for the held-out guard
    "lr1e-4": {"learning_rate": 1e-4},
    "keyphrase-only": {"epochs": 2.0, "strategies": ["keyphrase"]},
    "phrase-question": {"max_pairs_per_chunk": 5, "strategies": ["phrase", "question"]},
}
# (domain, configuration, seed) in the order to run them.
PLAN: list[tuple[str, str, int]] = [
    ("zaragoza", "default", 0),
    ("zaragoza", "epochs2", 0),
    ("debian", "default", 0),
    ("zaragoza", "epochs2-hardneg1", 0),
    ("zaragoza", "epochs2-roundtrip3", 0),
    ("zaragoza", "issue-run5", 0),
    ("debian", "epochs2", 0),
    ("zaragoza", "teacher-gemma", 0),
    ("zaragoza", "epochs2-lr5e-5", 0),
    ("zaragoza", "epochs2-bs64", 0),
    ("debian", "issue-run5", 0),
    ("zaragoza", "question-only", 0),
    ("zaragoza", "epochs2-wise0.7", 0),
    ("zaragoza", "epochs2", 1),
    ("zaragoza", "epochs2", 2),
    ("debian", "epochs2", 1),
    ("debian", "epochs2", 2),
    ("debian", "teacher-gemma", 0),
    ("zaragoza", "epochs3", 0),
    ("zaragoza", "epochs2-cosine", 0),
    ("zaragoza", "epochs2-cached-mnrl", 0),
    ("zaragoza", "default", 1),
    ("zaragoza", "default", 2),
    ("debian", "default", 1),
    ("debian", "default", 2),
    ("zaragoza", "defaults-auto-epochs", 0),
    ("zaragoza", "defaults-auto-epochs", 1),
    ("zaragoza", "defaults-auto-epochs", 2),
]


def run_key(domain: str, config: str, seed: int) -> str:
    return f"{domain}/{config}/seed{seed}"


def finished() -> dict[str, dict[str, object]]:
    if not RESULTS.is_file():
        return {}
    out = {}
    for line in RESULTS.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out[row["key"]] = row
    return out


def _prepare(domain_name: str, work: Path) -> tuple[Path, Path, Path | None]:
    """Documents folder, questions JSONL and (for debian) distractor JSONL: the manual's chunks."""
    sys.path.insert(0, str(HERE))
    import finetune_domains

    domain = finetune_domains.DOMAINS[domain_name]()
    questions = work / "questions.jsonl"
    with questions.open("w", encoding="utf-8") as f:
        for qid, text in domain.queries.items():
            gold = next(iter(domain.relevant[qid]))
            f.write(json.dumps({"query": text, "positive": domain.corpus[gold]}, ensure_ascii=False) + "\n")
    distractors = None
    if domain.distractor_docs:
        from sentence_transformers import SentenceTransformer

        from promptembed import _loading
        from promptembed.finetune import chunk_documents, load_documents

        model = SentenceTransformer(str(_loading.default_model_path()), device="cpu")
        loaded = load_documents(domain.distractor_docs, progress=False)
        budget = int(model.max_seq_length) - 4  # the finetune's own budget for a model without a document prompt
        chunks = chunk_documents(loaded.documents, tokenizer=model.tokenizer, max_tokens=budget, progress=False)
        distractors = work / "distractors.jsonl"
        with distractors.open("w", encoding="utf-8") as f:
            for c in chunks:
                f.write(json.dumps({"text": c.text}, ensure_ascii=False) + "\n")
    return domain.docs, questions, distractors


def run_one(domain: str, config: str, seed: int, threads: int) -> dict[str, object]:
    """One finetune in this process; returns the JSON row."""
    import resource

    import torch

    torch.set_num_threads(threads)
    from promptembed.finetune import finetune

    kwargs = dict(CONFIGS[config])
    load_before = os.getloadavg()[0]
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="ftbench-") as tmp:
        work = Path(tmp)
        docs, questions, distractors = _prepare(domain, work)
        prepared = time.time() - started
        result = finetune(
            [docs], output=work / "model", eval_queries=questions, eval_corpus=distractors, seed=seed,
            progress=False, **kwargs,  # type: ignore[arg-type]
        )  # fmt: skip
        report = json.loads((result.output / "report.json").read_text(encoding="utf-8"))
        kept = KEPT / run_key(domain, config, seed).replace("/", "_")
        if kept.exists():
            shutil.rmtree(kept)
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(result.output, kept)
    return {
        "key": run_key(domain, config, seed),
        "domain": domain,
        "config": config,
        "seed": seed,
        "kwargs": kwargs,
        "evaluations": report["evaluations"],
        "train_rows": report["data"]["train_pairs"],
        "chunks": report["data"]["chunks"],
        "pair_stats": report["data"]["pair_stats"],
        "timings_s": report["timings_s"],
        "benchmark_prepare_s": round(prepared, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "process_cpu_s": round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), 1),
        "wall_s": round(time.time() - started, 1),
        "torch_threads": threads,
        "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _child(key: str, threads: int) -> dict[str, object] | None:
    cmd = [sys.executable, __file__, "--one", key, "--threads", str(threads)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    log = HERE / ".finetune_logs"
    log.mkdir(exist_ok=True)
    with (log / (key.replace("/", "_") + ".log")).open("w") as f:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True, env=env, check=False)
    if proc.returncode != 0:
        print(f"FAILED {key} (exit {proc.returncode}); see {log}", flush=True)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="configuration names to run (default: the whole plan)")
    parser.add_argument("--keys", nargs="*", help="explicit runs DOMAIN/CONFIG/seedN, in this order (overrides PLAN)")
    parser.add_argument("--domains", default="zaragoza,debian")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (default: cores / jobs)")
    parser.add_argument("--report", action="store_true", help="only rewrite FINETUNE.md from the results file")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    threads = args.threads or max(1, (os.cpu_count() or 2) // max(args.jobs, 1))
    if args.one:
        if STOP.exists():  # `touch benchmarks/.finetune_stop`: runs in progress finish, no new one starts
            sys.exit(f"{STOP} exists: not starting {args.one}")
        domain, config, seed = args.one.split("/")
        print(json.dumps(run_one(domain, config, int(seed.removeprefix("seed")), threads)))
        return
    from finetune_report import write_report

    if args.report:
        write_report(list(finished().values()))
        return
    domains = set(args.domains.split(","))
    todo = [
        run_key(d, c, s)
        for d, c, s in PLAN
        if d in domains and (not args.only or c in args.only) and run_key(d, c, s) not in finished()
    ]
    if any("teacher" in k for k in todo) and not GEMMA.is_dir():
        print(f"teacher runs skipped: no EmbeddingGemma at {GEMMA} (run ../shared/tools/get-embeddinggemma.sh)")
    if args.keys:
        todo = [k for k in args.keys if k not in finished()]
    todo = [k for k in todo if "teacher" not in k or GEMMA.is_dir()]
    print(f"{len(todo)} runs to do: {todo}", flush=True)

    lock = threading.Lock()

    def work(key: str) -> None:
        started = time.time()
        row = _child(key, threads)
        if row is not None:
            with lock:
                with RESULTS.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                write_report(list(finished().values()))
            print(f"done {key} in {time.time() - started:.0f} s", flush=True)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(work, todo))


if __name__ == "__main__":
    main()
