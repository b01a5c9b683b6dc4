"""Reproduce issue #16's run-5 failure on a slice of zaragoza and compare the old and the new held-out estimate.

    python benchmarks/finetune_guard_check.py [N_ANSWERS=120] [LR=1e-4] [STEPS=30] [BATCH=16]

Trains on templated "question" pairs only (5 per chunk, batch BATCH), then prints nDCG@10 base -> finetuned on:
the N real questions (ground truth), the new held-out estimate (a fixed sentence generator, what finetune()
reports) and the old one (held-out queries made by the training templates). tests/finetune/test_guard.py checks
the same.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))


def main() -> None:
    import torch
    import zaragoza
    from sentence_transformers import SentenceTransformer

    from promptembed import _loading
    from promptembed.finetune import chunk_documents, finetune, generate_pairs, load_documents
    from promptembed.finetune.evaluate import evaluate_retrieval

    torch.set_num_threads(1)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 120
    lr = float(sys.argv[2]) if len(sys.argv) > 2 else 1e-4
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 16
    records = zaragoza.load_faq()[:n]
    root = Path(tempfile.mkdtemp(prefix="guard-"))
    docs = zaragoza.write_documents(records, root / "docs")
    started = time.time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = finetune(
            [docs], output=root / "m", strategies=["question"], max_pairs_per_chunk=5, learning_rate=lr,
            max_steps=steps, batch_size=batch, progress=False, seed=0,
        )  # fmt: skip
    flagged = any("NOT better" in str(w.message) for w in caught)
    base = SentenceTransformer(str(_loading.default_model_path()), device="cpu")
    tuned = SentenceTransformer(str(root / "m"), device="cpu")
    q = {f"q{i}": r["question"] for i, r in enumerate(records)}
    c = {f"a{i}": r["answer"] for i, r in enumerate(records)}
    rel = {f"q{i}": {f"a{i}"} for i in range(n)}
    real = (evaluate_retrieval(base, q, c, rel).ndcg_at_10, evaluate_retrieval(tuned, q, c, rel).ndcg_at_10)
    held = result.evaluations["heldout_pseudo_queries"]
    new = (held["base"].ndcg_at_10, held["finetuned"].ndcg_at_10)
    held_ids = {json.loads(x)["id"] for x in (root / "m" / "heldout_chunks.jsonl").read_text().splitlines()}
    chunks = chunk_documents(load_documents([docs], progress=False).documents, tokenizer=base.tokenizer, max_tokens=252)
    held_chunks = [ch for ch in chunks if ch.id in held_ids]
    pairs = generate_pairs(held_chunks, strategies=["question"], corpus=chunks, max_per_chunk=1, seed=1, progress=False)
    oq = {f"h{i}": p.query for i, p in enumerate(pairs.pairs)}
    orel = {f"h{i}": {p.chunk_id} for i, p in enumerate(pairs.pairs)}
    oc = {ch.id: ch.text for ch in chunks}
    old = (evaluate_retrieval(base, oq, oc, orel).ndcg_at_10, evaluate_retrieval(tuned, oq, oc, orel).ndcg_at_10)
    print(json.dumps({
        "answers": n, "learning_rate": lr, "max_steps": steps, "batch_size": batch, "flagged_by_finetune": flagged,
        "real_questions": real, "heldout_new": new, "heldout_new_queries": held["base"].n_queries,
        "heldout_old_templates": old, "heldout_old_queries": len(oq), "seconds": round(time.time() - started),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
