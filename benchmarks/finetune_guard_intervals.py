"""The held-out estimate on every kept benchmark run, with its 95% interval: can it flag a harmful configuration?

    python benchmarks/finetune_guard_intervals.py [--domain zaragoza]   # writes finetune_guard_intervals.json

For each run that ``finetune_bench.py`` kept, this rebuilds the held-out pseudo-queries ``finetune()`` made (the run's
own held-out chunks, the ``sentence`` generator, seed + 1), evaluates the base and the finetuned model on them with
:func:`~promptembed.finetune.evaluate.evaluate_retrieval`, and computes the gain's paired-bootstrap interval with
:func:`~promptembed.finetune.evaluate.gain_interval`, which is what ``finetune()`` reports. It also records how
the finetune changed the corpus geometry (mean cosine between the chunks, after / before), a guard that was
tried and dropped. Runs already in the JSON file are skipped. The table it prints is in benchmarks/FINETUNE.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE / "finetune_guard_intervals.json"


def _mean_cosine(model: object, texts: list[str]) -> float:
    from promptembed.finetune.evaluate import embed_texts

    e = embed_texts(model, texts, "document")
    total = e.sum(0)
    return float((total @ total - len(texts)) / (len(texts) * (len(texts) - 1)))  # unit vectors, diagonal removed


def main() -> None:
    import torch
    from finetune_bench import KEPT, finished
    from finetune_heldout_designs import domain_chunks, kept_heldout
    from sentence_transformers import SentenceTransformer

    from promptembed import _loading
    from promptembed.finetune.evaluate import RetrievalMetrics, evaluate_retrieval, gain_interval
    from promptembed.finetune.heldout import heldout_queries

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--domain", default=None, help="only runs of this domain")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cache = json.loads(OUT.read_text()) if OUT.is_file() else {}
    base = SentenceTransformer(str(_loading.default_model_path()), device="cpu")
    chunk_cache: dict[str, list] = {}
    base_cache: dict[tuple[str, frozenset[str], int], tuple[RetrievalMetrics, float]] = {}
    for key, row in sorted(finished().items()):
        folder = KEPT / key.replace("/", "_")
        if key in cache or not folder.is_dir() or (a.domain and row["domain"] != a.domain):
            continue
        domain = row["domain"]
        if domain not in chunk_cache:
            chunk_cache[domain] = domain_chunks(domain, base.tokenizer)
        held_ids, held = kept_heldout(folder, chunk_cache[domain])
        queries, corpus, relevant = heldout_queries(held, chunk_cache[domain], seed=row["seed"] + 1)
        texts = list(corpus.values())
        bkey = (domain, held_ids, row["seed"])
        if bkey not in base_cache:
            base_cache[bkey] = (evaluate_retrieval(base, queries, corpus, relevant), _mean_cosine(base, texts))
        before, base_cos = base_cache[bkey]
        tuned = SentenceTransformer(str(folder), device="cpu")
        after = evaluate_retrieval(tuned, queries, corpus, relevant)
        interval = gain_interval(before, after)
        real = row["evaluations"]["eval_queries"]
        cache[key] = {
            "real_gain": real["finetuned"]["ndcg_at_10"] - real["base"]["ndcg_at_10"],
            "heldout_gain": after.ndcg_at_10 - before.ndcg_at_10,
            "interval": interval, "queries": len(queries),
            "mean_cosine_ratio": _mean_cosine(tuned, texts) / base_cos,
        }  # fmt: skip
        OUT.write_text(json.dumps(cache, indent=1))
    print("| run | real gain | held-out gain | 95% interval | mean cosine after / before |")
    print("|---|---|---|---|---|")
    for key, v in sorted(cache.items()):
        low, high = v["interval"] or (float("nan"), float("nan"))
        print(f"| {key} | {v['real_gain']:+.4f} | {v['heldout_gain']:+.4f} | {low:+.3f} to {high:+.3f} | "
              f"x{v['mean_cosine_ratio']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
