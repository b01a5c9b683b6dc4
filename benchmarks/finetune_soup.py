"""A uniform model soup of kept benchmark runs, scored on the domain's real questions (issue #16's "model soups").

    python benchmarks/finetune_soup.py zaragoza zaragoza_defaults-bf16-scale30_seed0 \\
        zaragoza_defaults-bf16-scale30_seed1 zaragoza_defaults-bf16-scale30_seed2

The weights of the named kept runs (folders under ``FINETUNE_BENCH_KEEP``, by default
``~/.cache/promptembed-bench/runs``) are averaged, and the soup is evaluated as the benchmark evaluates a run (debian:
the manual's chunks as distractors). Result in benchmarks/FINETUNE.md.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> None:
    import torch
    from finetune_bench import KEPT, _prepare
    from finetune_domains import DOMAINS
    from sentence_transformers import SentenceTransformer

    from promptembed.finetune.api import load_eval_queries
    from promptembed.finetune.evaluate import evaluate_retrieval

    domain, names = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(2)
    d = DOMAINS[domain]()
    queries, corpus, relevant = d.queries, d.corpus, d.relevant
    if d.distractor_docs:
        with tempfile.TemporaryDirectory(prefix="soup-") as tmp:
            _, questions, distractors = _prepare(domain, Path(tmp))
            queries, corpus, relevant = load_eval_queries(questions, distractors)
    models = [SentenceTransformer(str(KEPT / n), device="cpu") for n in names]
    soup = models[0]
    states = [m.state_dict() for m in models]
    soup.load_state_dict({k: sum(s[k].float() for s in states) / len(states) for k in states[0]})
    print(f"soup of {len(names)}: nDCG@10 {evaluate_retrieval(soup, queries, corpus, relevant).ndcg_at_10:.4f}")


if __name__ == "__main__":
    main()
