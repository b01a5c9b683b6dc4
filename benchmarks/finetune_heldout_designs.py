"""Score held-out estimate designs on every kept benchmark run: does the held-out gain rank runs as real questions do?

    python benchmarks/finetune_heldout_designs.py            # writes benchmarks/finetune_heldout_designs.json
    python benchmarks/finetune_heldout_designs.py zaragoza   # only that domain's runs (the others stay as they were)

``finetune_bench.py`` keeps each run's finetuned model and its held-out chunk ids. For every kept run this
rebuilds the run's chunks (same chunker, same budget), makes held-out queries with each generator of
:func:`promptembed.finetune.heldout.heldout_queries` from the run's held-out chunks only (never trained on), and
evaluates the base and the finetuned model on them, the whole corpus as distractors, exactly as ``finetune()``
does. Base scores are computed once per (domain, held-out split). The real-question gain comes from the run's row
in finetune_runs.jsonl. The Spearman correlations are printed per domain and over both.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# design name -> (generator, queries per held-out chunk)
DESIGNS = {"sentence": ("sentence", 1), "sentence3": ("sentence", 3), "ask": ("ask", 1), "ask3": ("ask", 3),
           "keyphrase": ("keyphrase", 1)}  # fmt: skip
# + "llm": the held-out chunks' queries written by Qwen2.5-Coder-1.5B-Instruct (`finetune_local_llm.py --writer
# qwen2.5-coder-1.5b --queries-only`), the chunk kept whole; scored only where that cache exists for the domain
LLM_QUERIES = Path.home() / ".cache" / "promptembed-bench" / "llm-queries-qwen2.5-coder-1.5b-{domain}.json"
GENERATORS = (*DESIGNS, "llm")
OUT = HERE / "finetune_heldout_designs.json"


def llm_heldout(
    held: list, chunks: list, domain: str
) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]] | None:
    """Held-out queries written by the LLM for the held-out chunks (every chunk a distractor), or None (no cache)."""
    path = Path(str(LLM_QUERIES).format(domain=domain))
    if not path.is_file():
        return None
    written = json.loads(path.read_text(encoding="utf-8"))
    queries: dict[str, str] = {}
    relevant: dict[str, set[str]] = {}
    for chunk in held:
        for q in written.get(" ".join(chunk.text.split()), []):
            queries[f"l{len(queries)}"] = q
            relevant[f"l{len(relevant)}"] = {chunk.id}
    return queries, {c.id: c.text for c in chunks}, relevant


def domain_chunks(domain: str, tokenizer: object) -> list:
    """The domain's chunks as ``finetune()`` makes them: same chunker, budget 252, deduplicated by normalized text."""
    from finetune_domains import DOMAINS

    from promptembed.finetune import chunk_documents, load_documents

    docs = load_documents([DOMAINS[domain]().docs], progress=False).documents
    unique: dict[str, object] = {}
    for c in chunk_documents(docs, tokenizer=tokenizer, max_tokens=252, progress=False):
        unique.setdefault(" ".join(c.text.split()), c)
    return list(unique.values())


def kept_heldout(folder: Path, chunks: list) -> tuple[frozenset[str], list]:
    """A kept run's held-out chunk ids (its ``heldout_chunks.jsonl``) and those chunks."""
    lines = (folder / "heldout_chunks.jsonl").read_text().splitlines()
    held_ids = frozenset(json.loads(x)["id"] for x in lines)
    return held_ids, [c for c in chunks if c.id in held_ids]


def main() -> None:
    import torch
    from finetune_bench import KEPT, finished
    from scipy.stats import spearmanr
    from sentence_transformers import SentenceTransformer

    from promptembed import _loading
    from promptembed.finetune.evaluate import evaluate_retrieval
    from promptembed.finetune.heldout import heldout_queries

    torch.set_num_threads(2)
    only = set(sys.argv[1].split(",")) if len(sys.argv) > 1 else None  # e.g. `zaragoza`: score that domain's runs
    rows = {k: v for k, v in finished().items() if only is None or v["domain"] in only}
    cache = json.loads(OUT.read_text()) if OUT.is_file() else {}
    base = SentenceTransformer(str(_loading.default_model_path()), device="cpu")
    chunk_cache: dict[str, list] = {}
    base_scores: dict[tuple[str, frozenset[str], str], float] = {}
    for key, row in sorted(rows.items()):
        folder = KEPT / key.replace("/", "_")
        if not folder.is_dir():  # teacher runs are scored too: their `teacher` is a model path
            continue
        has_llm = Path(str(LLM_QUERIES).format(domain=row["domain"])).is_file()
        wanted = [g for g in GENERATORS if g != "llm" or has_llm]
        if key in cache and all(g in cache[key]["heldout"] for g in wanted):
            continue
        domain = row["domain"]
        if domain not in chunk_cache:
            chunk_cache[domain] = domain_chunks(domain, base.tokenizer)
        chunks = chunk_cache[domain]
        held_ids, held = kept_heldout(folder, chunks)
        tuned = SentenceTransformer(str(folder), device="cpu")
        out: dict[str, dict[str, float]] = dict(cache[key]["heldout"]) if key in cache else {}
        for gen in [g for g in wanted if g not in out]:  # only the designs not scored yet
            if gen == "llm":
                q, corpus, rel = llm_heldout(held, chunks, domain) or ({}, {}, {})
            else:
                generator, per_chunk = DESIGNS[gen]
                q, corpus, rel = heldout_queries(
                    held, chunks, seed=row["seed"] + 1, generator=generator, per_chunk=per_chunk
                )
            if not q:
                continue
            bkey = (domain, held_ids, gen)
            if bkey not in base_scores:
                base_scores[bkey] = evaluate_retrieval(base, q, corpus, rel).ndcg_at_10
            out[gen] = {"base": base_scores[bkey], "finetuned": evaluate_retrieval(tuned, q, corpus, rel).ndcg_at_10,
                        "n": len(q)}  # fmt: skip
        real = row["evaluations"]["eval_queries"]
        cache[key] = {
            "domain": domain, "config": row["config"], "seed": row["seed"],
            "real_gain": real["finetuned"]["ndcg_at_10"] - real["base"]["ndcg_at_10"], "heldout": out,
        }  # fmt: skip
        OUT.write_text(json.dumps(cache, indent=1))
        print(key, {g: round(v["finetuned"] - v["base"], 4) for g, v in out.items()}, flush=True)
    for domain in ("zaragoza", "debian", None):
        mine = [v for v in cache.values() if domain is None or v["domain"] == domain]
        if len(mine) < 3:
            continue
        real = [v["real_gain"] for v in mine]
        for gen in (*GENERATORS, "min", "mean"):
            gains = []
            for v in mine:
                g = [
                    h["finetuned"] - h["base"]
                    for d, h in v["heldout"].items()
                    if d in ("sentence3", "ask3", "keyphrase")
                ]
                one = v["heldout"].get(gen)
                if gen not in ("min", "mean") and one is None:
                    continue
                gains.append(
                    min(g) if gen == "min" else sum(g) / len(g) if gen == "mean" else one["finetuned"] - one["base"]
                )
            if len(gains) != len(real):  # a design scored on some runs only (llm: where its cache exists)
                pairs = [(v["heldout"][gen]["finetuned"] - v["heldout"][gen]["base"], v["real_gain"])
                         for v in mine if gen in v["heldout"]]  # fmt: skip
                gains, reals = [a for a, _ in pairs], [b for _, b in pairs]
            else:
                reals = real
            if len(gains) < 3:
                continue
            rho = spearmanr(gains, reals).statistic
            print(f"{domain or 'both'}: {gen:<10} Spearman {rho:+.2f} over {len(gains)} runs")


if __name__ == "__main__":
    main()
