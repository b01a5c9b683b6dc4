"""`make bench` part 3: the token-budget engine vs raw ``SentenceTransformer.encode`` and today's path, on CPU.

One process, bundled all-MiniLM-L6-v2, the first 256 answers of zaragoza-construction-faq (Zaragoza AB, CC BY 4.0)
as documents and its questions as single queries. First a sweep (raw encode's batch sizes, the engine's token
budgets) picks raw encode's best batch size; then paired rounds time every contestant once per round in a rotating
order, and each ratio is taken within its round (this machine is shared: drifts between rounds cancel). Then p50
latency of a 1-text query call, interleaved. Writes its section of benchmarks/RESULTS.md (replacing an earlier one,
keeping every other section).

    python benchmarks/engine.py            # BENCH_ENGINE_ROUNDS=7 BENCH_DOCS=256 BENCH_QUERIES=200 by default
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import zaragoza

ROUNDS = int(os.environ.get("BENCH_ENGINE_ROUNDS", "7"))
N_DOCS = int(os.environ.get("BENCH_DOCS", "256"))
N_QUERIES = int(os.environ.get("BENCH_QUERIES", "200"))
OUT = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Token-budget engine (`benchmarks/engine.py`)"
BATCH_SIZES = (8, 16, 32, 64)
BUDGETS = (512, 1024, 2048, 4096)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def replace_section(text: str, section: str, body: str) -> str:
    """``text`` with ``section`` (up to the next ``## `` heading or ``<!--`` marker line) replaced by ``body``, or
    ``body`` appended."""
    if section not in text:
        return text.rstrip() + "\n\n" + body.rstrip() + "\n"
    before, _, rest = text.partition(section)
    ends = [i for i in (rest.find("\n## "), rest.find("\n<!--")) if i >= 0]
    after = rest[min(ends) + 1 :] if ends else ""
    return before.rstrip() + "\n\n" + body.rstrip() + "\n" + ("\n" + after if after else "")


def main() -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    from promptembed import PromptEmbedder, _loading, engine

    load_at_start = os.getloadavg()[0]
    model = str(_loading.default_model_path())
    records = zaragoza.load_faq()
    docs = [r["answer"] for r in records][:N_DOCS]
    questions = [r["question"] for r in records][:N_QUERIES]
    raw = SentenceTransformer(model, device="cpu")
    n_tokens = sum(len(ids) for ids in raw.tokenizer(docs, truncation=True)["input_ids"])

    # ---- sweep: raw encode's batch sizes vs the engine's token budgets, interleaved, median of 3
    by_budget = {b: PromptEmbedder(model=model, device="cpu", max_batch_tokens=b) for b in BUDGETS}
    sweep: dict[str, list[float]] = {}
    sweepers: dict[str, Callable[[], object]] = {
        **{f"raw encode, batch_size={bs}": (lambda bs=bs: raw.encode(docs, batch_size=bs)) for bs in BATCH_SIZES},
        **{f"engine, max_batch_tokens={b}": (lambda b=b: by_budget[b].embed_documents(docs)) for b in BUDGETS},
    }
    for fn in sweepers.values():
        fn()  # warm-up
    for r in range(3):
        for name in list(sweepers) if r % 2 == 0 else list(reversed(sweepers)):
            sweep.setdefault(name, []).append(timed(sweepers[name]))
    sweep_rate = {name: len(docs) / statistics.median(ts) for name, ts in sweep.items()}
    print({k: round(v, 1) for k, v in sweep_rate.items()}, flush=True)
    best_bs = max(BATCH_SIZES, key=lambda bs: sweep_rate[f"raw encode, batch_size={bs}"])
    best_budget = max(BUDGETS, key=lambda b: sweep_rate[f"engine, max_batch_tokens={b}"])
    for emb in by_budget.values():
        emb.close()

    # ---- paired rounds
    new = PromptEmbedder(model=model, device="cpu")
    old = PromptEmbedder(model=model, device="cpu", engine="sentence-transformers")
    int8_new = PromptEmbedder(model=model, device="cpu", dtype="int8")
    int8_old = PromptEmbedder(model=model, device="cpu", dtype="int8", engine="sentence-transformers")
    bf16_new = PromptEmbedder(model=model, device="cpu", dtype="bfloat16")
    bf16_old = PromptEmbedder(model=model, device="cpu", dtype="bfloat16", engine="sentence-transformers")
    compiled = PromptEmbedder(model=model, device="cpu", engine="compile")  # torch.compile (opt-in)
    t0 = time.perf_counter()
    compiled.embed_documents(docs)  # the first call compiles (torch.compile, once per loaded model)
    compile_s = time.perf_counter() - t0
    contestants: dict[str, Callable[[], object]] = {
        "raw encode, batch_size=32 (default)": lambda: raw.encode(docs, batch_size=32),
        f"raw encode, batch_size={best_bs} (its best)": lambda: raw.encode(docs, batch_size=best_bs),
        "today's path (engine='sentence-transformers')": lambda: old.embed_documents(docs),
        f"new engine (default max_batch_tokens={new.max_batch_tokens})": lambda: new.embed_documents(docs),
        "int8, today's path": lambda: int8_old.embed_documents(docs),
        "int8, new engine": lambda: int8_new.embed_documents(docs),
        "bfloat16, today's path": lambda: bf16_old.embed_documents(docs),
        "bfloat16, new engine": lambda: bf16_new.embed_documents(docs),
        "new engine, engine='compile' (torch.compile)": lambda: compiled.embed_documents(docs),
    }
    names = list(contestants)
    for fn in contestants.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(ROUNDS):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order if r % 2 == 0 else list(reversed(order)):
            times[name].append(timed(contestants[name]))
        print(f"round {r + 1}/{ROUNDS}: " + ", ".join(f"{len(docs) / times[n][-1]:.1f}" for n in names), flush=True)

    def ratio(a: str, b: str) -> tuple[float, float, float]:
        """Median, min and max over rounds of time(b) / time(a): how many times faster ``a`` ran than ``b``."""
        rs = [tb / ta for ta, tb in zip(times[a], times[b], strict=True)]
        return statistics.median(rs), min(rs), max(rs)

    raw32, rawbest, old_name, new_name = names[:4]

    # ---- single-query latency, interleaved
    lat: dict[str, list[float]] = {"raw": [], "today": [], "new": []}
    single: dict[str, Callable[[str], object]] = {
        "raw": lambda q: raw.encode_query([q]),
        "today": lambda q: old.embed_queries([q]),
        "new": lambda q: new.embed_queries([q]),
    }
    for q in questions[:10]:
        for fn in single.values():
            fn(q)
    for i, q in enumerate(questions):
        keys = list(single) if i % 2 == 0 else list(reversed(single))
        for key in keys:
            lat[key].append(timed(lambda key=key, q=q: single[key](q)) * 1000)
    p50 = {k: statistics.median(v) for k, v in lat.items()}
    p90 = {k: float(np.percentile(v, 90)) for k, v in lat.items()}
    paired_lat = statistics.median([a / b for a, b in zip(lat["new"], lat["raw"], strict=True)])

    # ---- vectors: the engine equals raw encode at float32
    ref = raw.encode_document(docs, normalize_embeddings=True)
    max_diff = float(np.abs(new.embed_documents(docs) - ref).max())

    med = {name: statistics.median(ts) for name, ts in times.items()}
    verdict = "not slower" if paired_lat <= 1.0 else f"{(paired_lat - 1) * 100:.1f}% slower"
    lines = [
        SECTION,
        "",
        f"Run with `python benchmarks/engine.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {os.cpu_count()} cores,"
        f" load average at start {load_at_start:.2f}, native bfloat16 on this CPU:"
        f" {_loading.cpu_native_bf16() or 'none (torch emulates it, far slower)'}, torch {torch.__version__}."
        " Bundled all-MiniLM-L6-v2, float32"
        f" unless named; {len(docs)} FAQ answers ({n_tokens:,} tokens) per call. The new engine's vectors differ from"
        f" raw `encode_document` by at most {max_diff:.1e} here (tests hold it to 2e-6).",
        "",
        "Sweep (docs/s, median of 3 interleaved runs): "
        + ", ".join(f"{k} {v:.1f}" for k, v in sweep_rate.items())
        + f". Raw encode's best batch size here: {best_bs}; the engine's best budget: {best_budget}"
        f" (default on CPU: {engine.default_max_batch_tokens('cpu')}).",
        "",
        f"{ROUNDS} rounds; in each, every contestant runs once (rotating order); ratios are taken within a round,"
        " median and range over the rounds.",
        "",
        "| contestant | docs/s | tokens/s | vs raw encode at 32 | vs raw encode at its best |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        s = med[name]
        a, b = ratio(name, raw32), ratio(name, rawbest)
        lines.append(
            f"| {name} | {len(docs) / s:.1f} | {n_tokens / s:,.0f} | {a[0]:.3f}x ({a[1]:.3f}-{a[2]:.3f}) |"
            f" {b[0]:.3f}x ({b[1]:.3f}-{b[2]:.3f}) |"
        )
    new_vs_best, new_vs_32, new_vs_old = ratio(new_name, rawbest), ratio(new_name, raw32), ratio(new_name, old_name)
    int8_old_r, int8_new_r = ratio("int8, today's path", raw32), ratio("int8, new engine", raw32)
    bf16_old_r, bf16_new_r = ratio("bfloat16, today's path", raw32), ratio("bfloat16, new engine", raw32)
    compiled_r = ratio("new engine, engine='compile' (torch.compile)", new_name)
    compiled_diff = float(np.abs(compiled.embed_documents(docs) - ref).max())
    lines += [
        "",
        f"- Target new engine >= 1.0x raw encode at float32: {new_vs_32[0]:.3f}x raw encode at its default batch 32"
        f" ({'met' if new_vs_32[0] >= 1.0 else 'NOT met'}), {new_vs_best[0]:.3f}x raw encode at its best batch"
        f" {best_bs} ({'met' if new_vs_best[0] >= 1.0 else 'NOT met'}); {new_vs_old[0]:.3f}x today's path.",
        f"- Fast paths keep their ratios (vs raw float32 encode at 32, same rounds): int8 {int8_old_r[0]:.2f}x on"
        f" today's path, {int8_new_r[0]:.2f}x on the new engine; bfloat16 {bf16_old_r[0]:.2f}x today,"
        f" {bf16_new_r[0]:.2f}x new.",
        f"- `engine='compile'` (opt-in: `torch.compile`):"
        f" {compiled_r[0]:.3f}x ({compiled_r[1]:.3f}-{compiled_r[2]:.3f}) the default engine"
        f"{' (faster in every round)' if compiled_r[1] > 1 else ' (not faster)' if compiled_r[0] <= 1 else ''}"
        ", after a first call of"
        f" {compile_s:.0f} s that compiles; its vectors differ from raw `encode_document` by at most"
        f" {compiled_diff:.1e}.",
        f"- Single-query latency ({len(questions)} FAQ questions, one call each, interleaved): p50 raw"
        f" `encode_query` {p50['raw']:.2f} ms, today's path {p50['today']:.2f} ms, new engine {p50['new']:.2f} ms"
        f" (p90 {p90['raw']:.2f} / {p90['today']:.2f} / {p90['new']:.2f} ms); paired median new/raw {paired_lat:.3f}"
        f" ({verdict}).",
    ]
    body = "\n".join(lines)
    print(body)
    text = OUT.read_text(encoding="utf-8") if OUT.exists() else "# Benchmarks\n"
    OUT.write_text(replace_section(text, SECTION, body), encoding="utf-8")


if __name__ == "__main__":
    main()
