"""Score held-out estimate designs on every kept benchmark run: does the held-out gain rank runs as real questions do?

    python benchmarks/finetune_heldout_designs.py            # writes benchmarks/finetune_heldout_designs.json

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
GENERATORS = tuple(DESIGNS)
OUT = HERE / "finetune_heldout_designs.json"


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
    rows = finished()
    cache = json.loads(OUT.read_text()) if OUT.is_file() else {}
    base = SentenceTransformer(str(_loading.default_model_path()), device="cpu")
    chunk_cache: dict[str, list] = {}
    base_scores: dict[tuple[str, frozenset[str], str], float] = {}
    for key, row in sorted(rows.items()):
        folder = KEPT / key.replace("/", "_")
        if not folder.is_dir() or "teacher" in str(row["kwargs"].get("teacher") or ""):
            continue
        if key in cache and all(g in cache[key]["heldout"] for g in GENERATORS):
            continue
        domain = row["domain"]
        if domain not in chunk_cache:
            chunk_cache[domain] = domain_chunks(domain, base.tokenizer)
        chunks = chunk_cache[domain]
        held_ids, held = kept_heldout(folder, chunks)
        tuned = SentenceTransformer(str(folder), device="cpu")
        out: dict[str, dict[str, float]] = {}
        for gen, (generator, per_chunk) in DESIGNS.items():
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
                gains.append(
                    min(g) if gen == "min" else sum(g) / len(g) if gen == "mean" else one["finetuned"] - one["base"]
                )
            rho = spearmanr(gains, real).statistic
            print(f"{domain or 'both'}: {gen:<10} Spearman {rho:+.2f} over {len(mine)} runs")


if __name__ == "__main__":
    main()
