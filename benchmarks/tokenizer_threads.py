"""Tokenizer threads: texts/s of the engine's tokenization with 1 and more threads, with and without
``TOKENIZERS_PARALLELISM=false`` (the setting Makefiles and notebooks often use to silence the fork warning).

Tokenization only (``promptembed.engine._features.tokenize``), on benchmarks/gpu.py's corpus (zaragoza-construction-faq
answers, Zaragoza AB, CC BY 4.0, plus 200-500-token passages), with the MiniLM and EmbeddingGemma tokenizers. Each
setting runs in a fresh process (the environment variable is read when the tokenizer first runs).

Also the first threaded call on a freshly loaded tokenizer: the threads share the model's tokenizer; before
2026-11-27 each made its own copy first (``--copies`` restores that, for the comparison), which for EmbeddingGemma's
262k-token vocabulary took seconds per thread.

    python benchmarks/tokenizer_threads.py        # prints two Markdown tables (about two minutes on 2 cores)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent


def measure(threads: int, *, copies: bool = False) -> dict[str, float]:
    import lzma
    import shutil

    sys.path.insert(0, str(HERE))
    import gpu

    from promptembed._loading import default_model_path
    from promptembed.engine import _features

    if copies:  # the engine before 2026-11-27: every tokenizer thread first made its own copy of the tokenizer
        _features._encode_shared = _features._encode_with_copy  # type: ignore[assignment]
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        gemma = Path(tmp) / "gemma"
        src = HERE / "embeddinggemma_shape"
        shutil.copytree(src, gemma, ignore=shutil.ignore_patterns("*.xz", "NOTICE.md", "*Dense", "*Pooling"))
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (gemma / name).write_bytes(lzma.decompress((src / f"{name}.xz").read_bytes()))
        from transformers import AutoTokenizer

        for label, tok_dir in (("MiniLM", default_model_path()), ("EmbeddingGemma", gemma)):
            tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
            limit = json.loads((Path(tok_dir) / "sentence_bert_config.json").read_text())["max_seq_length"]
            tokenizer.model_max_length = limit  # as sentence-transformers sets it
            model = [SimpleNamespace(tokenizer=tokenizer)]  # tokenize() reads model[0].tokenizer only
            texts = gpu.corpus(tokenizer, answers_times=8, passages=4000)
            t0 = time.perf_counter()
            _features.tokenize(model, texts[:2000], threads=threads)  # the first call (and warm-up)
            out[f"{label} first"] = time.perf_counter() - t0
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                _features.tokenize(model, texts, threads=threads)
                times.append(time.perf_counter() - t0)
            out[label] = len(texts) / statistics.median(times)
    return out


def main() -> None:
    if len(sys.argv) >= 3 and sys.argv[1] == "--one":
        print(json.dumps(measure(int(sys.argv[2]), copies="--copies" in sys.argv)))
        return
    threads = sorted({1, 2, os.cpu_count() or 1})
    lines = [
        f"Tokenization only, {os.cpu_count()} CPU cores; texts/s over 8,024 texts (gpu.py corpus)",
        "",
        "| TOKENIZERS_PARALLELISM | threads | MiniLM tokenizer | EmbeddingGemma tokenizer |",
        "|---|---|---|---|",
    ]
    for setting in ("unset", "false"):
        env = {k: v for k, v in os.environ.items() if k != "TOKENIZERS_PARALLELISM"}
        if setting == "false":
            env["TOKENIZERS_PARALLELISM"] = "false"
        for n in threads:
            got = subprocess.run(
                [sys.executable, __file__, "--one", str(n)], env=env, capture_output=True, text=True, check=True
            )
            row = json.loads(got.stdout.strip().splitlines()[-1])
            lines.append(f"| {setting} | {n} | {row['MiniLM']:,.0f} | {row['EmbeddingGemma']:,.0f} |")
            print(lines[-1], flush=True)
    lines += [
        "",
        "First threaded call on a freshly loaded tokenizer (2,000 texts, TOKENIZERS_PARALLELISM=false), seconds:",
        "",
        "| threads | tokenizer | shared (now) | a copy per thread (before) |",
        "|---|---|---|---|",
    ]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    for n in sorted({2, max(2, os.cpu_count() or 1)}):
        rows = []
        for extra in ([], ["--copies"]):
            got = subprocess.run(
                [sys.executable, __file__, "--one", str(n), *extra], env=env, capture_output=True, text=True, check=True
            )
            rows.append(json.loads(got.stdout.strip().splitlines()[-1]))
        for label in ("MiniLM", "EmbeddingGemma"):
            lines.append(f"| {n} | {label} | {rows[0][label + ' first']:.2f} | {rows[1][label + ' first']:.2f} |")
            print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
