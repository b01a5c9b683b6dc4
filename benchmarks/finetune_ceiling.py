"""How far real questions take the student on zaragoza: a ceiling for issue #16's pseudo-query levers.

    python benchmarks/finetune_ceiling.py [--threads 2] [--only real-e8,pseudo-e2]

zaragoza's 503 answers are split in two folds (seeded). For each fold, the student (the bundled
all-MiniLM-L6-v2) is trained on the REAL questions whose answer is in that fold, with their answers as positives,
and tested on the questions whose answer is in the other fold, against all the answers. Beside that: the library's
documents-only pairs (the defaults' `sentence,keyphrase`, 3 per chunk, 10% of the chunks held out, seed 0), and both
together. The training is the library's (MNRL scale 30, batch 32, lr 2e-5, bf16 on a CPU with AMX, batches without
duplicates). A user without questions never has the real ones: this measures what question-shaped training data is
worth to this student on questions about answers it was not trained on, not a lever. One line per run in
`benchmarks/finetune_ceiling.jsonl`; the table is in benchmarks/FINETUNE.md.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE / "finetune_ceiling.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated conditions (default: all)")
    a = ap.parse_args()

    import torch
    from datasets import Dataset
    from finetune_domains import DOMAINS, training_chunks
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Args
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer import losses

    from promptembed import _loading
    from promptembed.finetune._steps import split_chunks
    from promptembed.finetune.evaluate import evaluate_retrieval
    from promptembed.finetune.pairs import generate_pairs

    torch.set_num_threads(a.threads)
    only = set(a.only.split(",")) if a.only else None
    d = DOMAINS["zaragoza"]()
    pids = sorted(d.corpus)
    random.Random(7).shuffle(pids)
    folds = [set(pids[: len(pids) // 2]), set(pids[len(pids) // 2 :])]

    def fresh() -> Any:
        return SentenceTransformer(str(_loading.default_model_path()), device="cpu")

    base = fresh()
    chunks = training_chunks(d.docs, base.tokenizer)  # as finetune()
    train_chunks, _ = split_chunks(chunks, 0.1, 0)
    made = generate_pairs(
        train_chunks, strategies=["sentence", "keyphrase"], max_per_chunk=3, corpus=chunks, seed=0, progress=False
    )
    pseudo = [{"anchor": p.query, "positive": p.positive} for p in made.pairs]

    def train(rows: list[dict[str, str]], epochs: int) -> Any:
        model = fresh()
        args = Args(
            output_dir="/tmp/finetune-ceiling", num_train_epochs=epochs, per_device_train_batch_size=32,
            learning_rate=2e-5, warmup_steps=0.1, seed=0, data_seed=0,
            bf16=_loading.cpu_native_bf16() is not None, use_cpu=True, batch_sampler=BatchSamplers.NO_DUPLICATES,
            save_strategy="no", report_to=[], dataloader_num_workers=0,
        )  # fmt: skip
        loss = losses.MultipleNegativesRankingLoss(model, scale=30.0)
        SentenceTransformerTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), loss=loss).train()
        return model

    for fold in (0, 1):
        trained_on, tested_on = folds[fold], folds[1 - fold]
        queries = {q: t for q, t in d.queries.items() if d.relevant[q] & tested_on}
        relevant = {q: d.relevant[q] for q in queries}
        real = [
            {"anchor": d.queries[q], "positive": d.corpus[next(iter(d.relevant[q]))]}
            for q in d.queries
            if d.relevant[q] & trained_on
        ]
        base_ndcg = evaluate_retrieval(base, queries, d.corpus, relevant, name="test").ndcg_at_10
        conditions = {
            "real-e2": (real, 2), "real-e4": (real, 4), "real-e8": (real, 8), "real-e16": (real, 16),
            "pseudo-e2": (pseudo, 2), "pseudo+real-e2": (pseudo + real, 2),
        }  # fmt: skip
        for name, (rows, epochs) in conditions.items():
            if only is not None and name not in only:
                continue
            began = time.time()
            model = train(rows, epochs)
            ndcg = evaluate_retrieval(model, queries, d.corpus, relevant, name="test").ndcg_at_10
            result = {
                "fold": fold, "cond": name, "rows": len(rows), "epochs": epochs, "test_q": len(queries),
                "base": base_ndcg, "ndcg": ndcg, "gain": round(ndcg - base_ndcg, 4),
                "train_s": round(time.time() - began), "threads": a.threads,
            }  # fmt: skip
            print(json.dumps(result), flush=True)
            with OUT.open("a", encoding="utf-8") as f:
                f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
