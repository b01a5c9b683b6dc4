"""GPU throughput: raw ``SentenceTransformer.encode`` vs today's path vs the token-budget engine (lent GPU machine).

Weights cannot travel to the GPU machine (64 MiB), so both models are built there with random weights from real
configs: all-MiniLM-L6-v2-shaped (benchmarks/minilm_shape/: config and tokenizer) and full-size
EmbeddingGemma-300M-shaped (benchmarks/embeddinggemma_shape/: google/embeddinggemma-300m's configs, prompts and
tokenizer, no weights; Gemma Terms of Use, see its NOTICE). Same compute per token as the real models.

Corpus, a realistic length mix: the zaragoza-construction-faq answers (Zaragoza AB, CC BY 4.0) plus passages of
200-500 tokens joined from consecutive answers. Contestants, all bf16 (the core's CUDA default), documents with the
model's document prompt: raw encode at batch sizes 256-1024 (its best is the baseline), today's path
(``engine="sentence-transformers"`` at raw's best batch size) and the new engine (a token-budget sweep, the default
marked) and the engine with the model compiled (``engine="compile"``, ``torch.compile``, its first call's compile
time reported on its own). Reports docs/s,
tokens/s (prompt included, no padding), model FLOPs utilisation against the GPU's bf16 peak (datasheet, and a
matmul measured in the same run), and the min cosine of the engine's bf16 vectors to float32.
Writes the "Token-budget engine" section of benchmarks/GPU.md.

    python benchmarks/gpu.py            # on the GPU machine: more than 5 minutes (the compiled rows compile first)
    python benchmarks/gpu.py --smoke    # any machine, tiny sizes: checks that the script runs (tests do this)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import lzma
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GPU_MD = HERE / "GPU.md"
SECTION = "## Token-budget engine (`benchmarks/gpu.py`)"
#: Dense bf16 peak (TFLOP/s) from the vendors' datasheets, by device-name fragment (the SXM parts lent here).
SMOKE_SIZES = {"answers_times": 1, "passages": 4, "answers": 24}
DATASHEET_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0}


def build_minilm_shaped(dest: Path, *, smoke: bool) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    shutil.copytree(HERE / "minilm_shape", dest)
    config = BertConfig.from_pretrained(str(dest))
    if smoke:
        config.num_hidden_layers = 1
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(dest))
    return dest


def build_embeddinggemma_shaped(dest: Path, *, smoke: bool, device: str) -> Path:
    """EmbeddingGemma-300M's module stack, prompts and tokenizer with random weights (smoke: 2 narrow layers)."""
    import torch
    from transformers import Gemma3TextConfig, Gemma3TextModel

    src = HERE / "embeddinggemma_shape"
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("*.xz", "NOTICE.md"))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (dest / name).write_bytes(lzma.decompress((src / f"{name}.xz").read_bytes()))
    config = Gemma3TextConfig.from_pretrained(str(dest))
    hidden = config.hidden_size
    if smoke:
        hidden = 64
        config.hidden_size, config.intermediate_size, config.head_dim = hidden, 128, 32
        config.num_hidden_layers, config.layer_types = 2, ["sliding_attention", "full_attention"]
        config.num_attention_heads, config.num_key_value_heads = 2, 1
        (dest / "config.json").write_text(config.to_json_string(), encoding="utf-8")
        for sub, (i, o) in {"2_Dense": (hidden, 4 * hidden), "3_Dense": (4 * hidden, hidden)}.items():
            cfg = json.loads((dest / sub / "config.json").read_text())
            cfg["in_features"], cfg["out_features"] = i, o
            (dest / sub / "config.json").write_text(json.dumps(cfg))
        pooling = json.loads((dest / "1_Pooling" / "config.json").read_text())
        pooling["word_embedding_dimension"] = hidden
        (dest / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    torch.manual_seed(0)
    with torch.device(device):  # random init on the GPU: seconds instead of a minute for 300M parameters
        model = Gemma3TextModel(config).to(torch.bfloat16)
    model.save_pretrained(str(dest))
    del model
    from safetensors.torch import save_file

    for sub in ("2_Dense", "3_Dense"):
        cfg = json.loads((dest / sub / "config.json").read_text())
        weight = torch.randn(cfg["out_features"], cfg["in_features"]) / cfg["in_features"] ** 0.5
        save_file({"linear.weight": weight.contiguous()}, str(dest / sub / "model.safetensors"))
    return dest


def corpus(
    tokenizer: Any, *, answers_times: int, passages: int, answers: int | None = None, seed: int = 0
) -> list[str]:
    """FAQ answers (all, or the first ``answers``) ``answers_times`` over, plus ``passages`` texts of 200-500 tokens
    (by ``tokenizer``) joined from consecutive answers, shuffled."""
    import random

    import zaragoza_construction_faq as z

    texts_all = [r["a"] for r in z.load(lang="en")]
    answer_texts = texts_all[:answers] if answers else texts_all
    lengths = [len(ids) for ids in tokenizer(answer_texts, add_special_tokens=False)["input_ids"]]
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(passages):
        target, i = rng.randint(200, 500), rng.randrange(len(answer_texts))
        parts: list[str] = []
        total = 0
        while total < target:
            j = i % len(answer_texts)
            parts.append(answer_texts[j])
            total += lengths[j]
            i += 1
        words = " ".join(parts).split()
        out.append(" ".join(words[: max(1, int(len(words) * target / total))]))
    texts = answer_texts * answers_times + out
    rng.shuffle(texts)
    return texts


def flops_per_doc(model: Any, lengths: list[int]) -> float:
    """Model FLOPs of a forward pass over documents of ``lengths`` tokens (no padding): 2 x non-embedding
    parameters per token, plus attention (QK^T and AV: 4 x heads x head_dim x attended tokens per token per layer).
    """
    params = sum(p.numel() for name, p in model.named_parameters() if "embed" not in name)
    cfg = model[0].auto_model.config
    width = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    width *= cfg.num_attention_heads
    window = getattr(cfg, "sliding_window", None)
    types = getattr(cfg, "layer_types", None) or ["full_attention"] * cfg.num_hidden_layers
    total = 0.0
    for n in lengths:
        attended = sum(min(n, window) if t == "sliding_attention" and window else n for t in types)
        total += 2.0 * params * n + 4.0 * width * n * attended
    return total


def measured_matmul_tflops(device: str) -> float | None:
    import torch

    if not device.startswith("cuda"):
        return None
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 10 * 2 * 8192**3 / (start.elapsed_time(end) / 1000) / 1e12


def bench_model(
    name: str,
    path: Path,
    *,
    device: str,
    smoke: bool,
    sizes: dict[str, int],
    batch_sizes: tuple[int, ...] | None = None,
    budgets: tuple[int, ...] | None = None,
    earlier: list[dict] | None = None,
) -> list[dict]:
    """One model's rows; ``earlier`` (the rows of models measured before) is written to $OUT/gpu.json with them."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from promptembed import PromptEmbedder
    from promptembed.engine import default_max_batch_tokens

    cuda = device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    raw = SentenceTransformer(str(path), device=device, model_kwargs={"dtype": dtype})
    raw.to(dtype)
    docs = corpus(raw.tokenizer, **sizes)
    prompt = raw.prompts.get("document", "") or ""
    lengths = [len(x) for x in raw.tokenizer([prompt + d for d in docs], truncation=True)["input_ids"]]
    n_tokens = sum(lengths)
    flops = flops_per_doc(raw, lengths)
    rows: list[dict] = []

    runs = 1 if smoke else 2

    def timed(label: str, fn: Callable[[], object]) -> dict:
        fn()  # warm-up (kernels, allocator, tokenizer caches)
        ts = []
        for _ in range(runs):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - t0)
        s = statistics.median(ts)
        row = {
            "model": name,
            "contestant": label,
            "docs_s": len(docs) / s,
            "tokens_s": n_tokens / s,
            "tflops": flops / s / 1e12,
        }
        print(f"  {label:<55} {row['docs_s']:>10,.0f} docs/s {row['tokens_s']:>12,.0f} tok/s", flush=True)
        rows.append(row)
        return row

    print(f"{name}: {len(docs)} docs, {n_tokens:,} tokens (prompt included), {flops / n_tokens / 1e6:.1f} MFLOP/token")
    # 512, the largest batch tried, was raw's best for both models in both H100 runs (2026-11-26), 64 and 128 never
    # were: the sweep goes up to 1024 instead
    batch_sizes = batch_sizes or ((8, 32) if smoke else (256, 512, 1024))
    raw_rows = [
        timed(f"raw encode, batch_size={bs}", lambda bs=bs: raw.encode_document(docs, batch_size=bs))
        for bs in batch_sizes
    ]
    best = max(raw_rows, key=lambda r: r["docs_s"])
    best["best_raw"] = True
    best_bs = int(best["contestant"].split("=")[1])
    with PromptEmbedder(model=path, device=device, engine="sentence-transformers", batch_size=best_bs) as old:
        timed(f"today's path (engine='sentence-transformers', batch_size={best_bs})", lambda: old.embed_documents(docs))
    budgets = budgets or ((256, 2048) if smoke else (16384, 32768, 65536))  # 8192 was never the best (2026-11-26)
    for budget in budgets:
        with PromptEmbedder(model=path, device=device, max_batch_tokens=budget) as emb:
            row = timed(f"new engine, max_batch_tokens={budget}", lambda emb=emb: emb.embed_documents(docs))
            row["default"] = budget == default_max_batch_tokens(device) or None
    with PromptEmbedder(model=path, device=device) as emb:
        if emb.max_batch_tokens not in budgets:
            row = timed(
                f"new engine, default max_batch_tokens={emb.max_batch_tokens}", lambda: emb.embed_documents(docs)
            )
            row["default"] = True
        got = emb.embed_documents(docs[:512])
    _dump([*(earlier or []), *rows])  # before the compiled rows, whose first call may outlast the machine's time
    # engine='compile': torch.compile of the model. The embedders share one loaded model and so one compiled graph
    # (dynamic shapes): the first call compiles, and its time is reported on its own.
    compiled_budgets = budgets[-2:] if len(budgets) > 1 else budgets
    with contextlib.ExitStack() as stack:
        for budget in compiled_budgets:
            emb = stack.enter_context(
                PromptEmbedder(model=path, device=device, max_batch_tokens=budget, engine="compile")
            )
            sync()
            t0 = time.perf_counter()
            emb.embed_documents(docs[:256])
            sync()
            first_call = time.perf_counter() - t0
            print(
                f"  engine='compile', max_batch_tokens={budget}: first call (256 docs) {first_call:.1f} s", flush=True
            )
            row = timed(f"engine='compile', max_batch_tokens={budget}", lambda emb=emb: emb.embed_documents(docs))
            row["first_call_s"] = first_call if budget == compiled_budgets[0] else None  # later ones reuse the graph
            row["vectors"] = np.asarray(emb.embed_documents(docs[:512]))
    with PromptEmbedder(model=path, device=device, dtype="float32") as f32:
        ref = f32.embed_documents(docs[:512])  # float32 vs bf16 on CUDA (on CPU both are float32: 1.0)
    cosine = float((np.asarray(got) * ref).sum(axis=1).min())
    for row in rows:  # the ratio to raw's best is taken in write_report (also for rows a cut-off run dumped)
        row["min_cosine_to_fp32"] = cosine if row["contestant"].startswith("new engine") else None
        if "vectors" in row:  # engine='compile': its own vectors against float32
            row["min_cosine_to_fp32"] = float((row.pop("vectors") * ref).sum(axis=1).min())
    if cuda:
        torch.cuda.empty_cache()
    return rows


def write_report(
    rows: list[dict],
    *,
    device_name: str,
    peak: float | None,
    matmul: float | None,
    smoke: bool,
    setting: str | None = None,
) -> str:
    """The section's Markdown; ``setting`` replaces the run's date, versions and cores (a report made afterwards)."""
    import sentence_transformers
    import torch

    setting = setting or (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {device_name}, torch {torch.__version__}, sentence-transformers"
        f" {sentence_transformers.__version__}, {'float32 (no GPU)' if device_name == 'CPU' else 'bf16'},"
        f" {os.cpu_count()} CPU cores, TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', 'unset')}"
    )
    lines = [
        SECTION,
        "",
        f"{'SMOKE RUN (tiny sizes, not a measurement): ' if smoke else ''}`python benchmarks/gpu.py` on {setting}."
        " Documents with the document prompt; FAQ answers plus 200-500-token passages. MFU: model FLOPs / time"
        " against the datasheet dense bf16 peak"
        f" ({peak or 'n/a'} TFLOP/s) and against an 8192^3 bf16 matmul measured in this run"
        f" ({f'{matmul:.0f}' if matmul else 'n/a'} TFLOP/s).",
        "",
        "| model | contestant | docs/s | tokens/s | vs raw encode (best batch) | MFU (datasheet / matmul) |"
        " min cos to fp32 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:  # against raw encode's best batch size of the same model, in the same run
        raw = [x["docs_s"] for x in rows if x["model"] == r["model"] and x["contestant"].startswith("raw encode")]
        r["vs_best_raw"] = r["docs_s"] / max(raw)
    for r in rows:
        mark = " **(raw's best)**" if r.get("best_raw") else " **(default)**" if r.get("default") else ""
        if r.get("first_call_s") is not None:
            mark += f" (first call, compiling: {r['first_call_s']:.0f} s)"
        mfu = f"{r['tflops'] / peak * 100:.1f}%" if peak else "n/a"
        mfu += f" / {r['tflops'] / matmul * 100:.1f}%" if matmul else ""
        cos = f"{r['min_cosine_to_fp32']:.4f}" if r.get("min_cosine_to_fp32") is not None else ""
        lines.append(
            f"| {r['model']} | {r['contestant']}{mark} | {r['docs_s']:,.0f} | {r['tokens_s']:,.0f} |"
            f" {r['vs_best_raw']:.2f}x | {mfu} | {cos} |"
        )
    for model in dict.fromkeys(r["model"] for r in rows):
        new = [r for r in rows if r["model"] == model and r["contestant"].startswith("new engine")]
        default = next((r for r in new if r.get("default")), None)
        top = max((r for r in new if "max_batch_tokens=" in r["contestant"]), key=lambda r: r["vs_best_raw"])
        compiled = [r for r in rows if r["model"] == model and r["contestant"].startswith("engine='compile'")]
        target = 3.0 if "MiniLM" in model else 2.0
        if default is not None:
            lines.append(
                f"\n- {model}: new engine at its default budget {default['vs_best_raw']:.2f}x raw encode at its best"
                f" batch size (best budget: {top['contestant'].split('=')[1]}, {top['vs_best_raw']:.2f}x); target"
                f" >= {target:.0f}x: {'met' if default['vs_best_raw'] >= target else 'NOT met'}."
            )
        if compiled:
            best_c = max(compiled, key=lambda r: r["vs_best_raw"])
            lines.append(
                f"- {model}: engine='compile' at its best budget ({best_c['contestant'].split('=')[-1]})"
                f" {best_c['vs_best_raw']:.2f}x raw encode, {best_c['docs_s'] / top['docs_s']:.2f}x the uncompiled"
                f" engine at its best budget; target >= {target:.0f}x:"
                f" {'met' if best_c['vs_best_raw'] >= target else 'NOT met'}."
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on any device: checks the script runs")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--only", choices=("minilm", "gemma"), default=None, help="one model only")
    parser.add_argument("--output", type=Path, default=GPU_MD, help="Markdown file whose section is replaced")
    parser.add_argument(
        "--report-from",
        type=json.loads,
        default=None,
        metavar="JSON",
        help='{"rows": "gpu.json", "device": "...", "peak": 989.0, "matmul": 793.0, "setting": "date, versions"}:'
        " write the section from the rows a cut-off run left in $OUT/gpu.json (with what its log printed), measuring"
        " nothing",
    )
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=None, help="raw encode's sweep (default 256-1024)"
    )
    parser.add_argument("--budgets", type=int, nargs="+", default=None, help="the engine's token budgets")
    args = parser.parse_args()
    if args.report_from:
        spec = args.report_from
        rows = json.loads(Path(spec["rows"]).read_text(encoding="utf-8"))
        body = write_report(
            rows,
            device_name=spec["device"],
            peak=spec.get("peak"),
            matmul=spec.get("matmul"),
            smoke=False,
            setting=spec.get("setting"),
        )
        _write_section(args.output, body)
        return
    import logging

    import torch

    logging.getLogger("promptembed").setLevel(logging.ERROR)  # the passages over MiniLM's 256 tokens are expected

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    device_name = torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"
    peak = next((v for k, v in DATASHEET_BF16_TFLOPS.items() if k in device_name), None)
    matmul = measured_matmul_tflops(device)
    print(f"device: {device_name}; datasheet bf16 peak {peak} TFLOP/s; measured matmul {matmul} TFLOP/s", flush=True)
    work = Path(tempfile.mkdtemp(prefix="promptembed-gpu-"))
    rows: list[dict] = []
    try:
        if args.only in (None, "gemma"):
            path = build_embeddinggemma_shaped(work / "gemma", smoke=args.smoke, device=device)
            sizes = SMOKE_SIZES if args.smoke else {"answers_times": 2, "passages": 1500}
            rows += bench_model(
                "EmbeddingGemma-300M-shaped", path, device=device, smoke=args.smoke, sizes=sizes,
                batch_sizes=tuple(args.batch_sizes or ()), budgets=tuple(args.budgets or ()),
            )  # fmt: skip
            _dump(rows)
        if args.only in (None, "minilm"):
            path = build_minilm_shaped(work / "minilm", smoke=args.smoke)
            sizes = SMOKE_SIZES if args.smoke else {"answers_times": 8, "passages": 4000}
            rows += bench_model(
                "all-MiniLM-L6-v2-shaped", path, device=device, smoke=args.smoke, sizes=sizes,
                batch_sizes=tuple(args.batch_sizes or ()), budgets=tuple(args.budgets or ()), earlier=rows,
            )  # fmt: skip
            _dump(rows)  # what is measured comes back even if a later model runs past the machine's time limit
    finally:
        shutil.rmtree(work, ignore_errors=True)
    body = write_report(rows, device_name=device_name, peak=peak, matmul=matmul, smoke=args.smoke)
    print(body)
    _write_section(args.output, body)
    _dump(rows)


def _write_section(output: Path, body: str) -> None:
    text = output.read_text(encoding="utf-8") if output.exists() else "# GPU benchmarks\n"
    sys.path.insert(0, str(HERE))
    from engine import replace_section

    output.write_text(replace_section(text, SECTION, body), encoding="utf-8")


def _dump(rows: list[dict]) -> None:
    """Rows so far to $OUT/gpu.json (the device tool's output folder), when set."""
    if os.environ.get("OUT"):
        (Path(os.environ["OUT"]) / "gpu.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
