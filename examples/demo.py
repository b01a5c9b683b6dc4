"""`make demo`: the whole journey on real data, on the bundled default model, on CPU.

1. The answers of the zaragoza-construction-faq package become "your documents" (one file per answer).
2. promptembed generates query/passage pairs from them (no LLM), finetunes the bundled all-MiniLM-L6-v2 on CPU,
   and evaluates base vs finetuned on the REAL questions (503, of which 6 are asked twice with two answers: 497
   distinct) against all 503 answers.
3. The finetuned model, prompts intact, answers two real questions through LangChain + FAISS.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import zaragoza

OUT = Path(__file__).resolve().parent.parent / "demo-output"


def main() -> None:
    from langchain_community.vectorstores import FAISS
    from langchain_promptembed import PromptEmbeddings

    from promptembed.finetune import finetune
    from promptembed.finetune.heldout import SPECIALIZATION_LIMIT

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.time()
    print(zaragoza.CREDIT)
    records = zaragoza.load_faq()
    docs = zaragoza.write_documents(records, OUT / "documents")
    questions = zaragoza.write_eval_queries(records, OUT / "real_questions.jsonl")
    print(f"{len(records)} answers written to {docs} (the questions are used only for evaluation)\n")

    result = finetune([docs], output=OUT / "finetuned-minilm", eval_queries=questions, overwrite=True, seed=0)

    n_questions = result.evaluations["eval_queries"]["base"].n_queries
    print(f"\nRetrieval on the {n_questions} distinct real questions, all 503 answers as the corpus:")
    ev = result.evaluations["eval_queries"]
    for label, key in (("nDCG@10", "ndcg_at_10"), ("MRR@10", "mrr_at_10"), ("recall@10", "recall_at_10")):
        before, after = getattr(ev["base"], key), getattr(ev["finetuned"], key)
        print(f"  {label:<10} base {before:.4f}   finetuned {after:.4f}   ({after - before:+.4f})")
    held = result.evaluations.get("heldout_pseudo_queries")
    if held:
        b, t = held["base"].ndcg_at_10, held["finetuned"].ndcg_at_10
        print(f"  held-out pseudo-queries ({held['base'].n_queries}, what you would see without real questions): "
              f"nDCG@10 {b:.4f} -> {t:.4f} ({t - b:+.4f})")  # fmt: skip
    if result.specialization is not None:
        print(f"  held-out keyword queries: {result.specialization:.0%} of the base model's misses closed (above "
              f"{SPECIALIZATION_LIMIT:.0%}, and without real questions, the model would be flagged)")  # fmt: skip
    wall = {k: v for k, v in result.timings.items() if not k.startswith("cpu_")}
    print("  time by stage (s): " + ", ".join(f"{k} {v:.0f}" for k, v in wall.items()))
    print(f"\n{result.verdict}")
    print(f"training pairs: {result.train_pairs}   report: {result.report_md}   plot: {result.plot}\n")

    print("The finetuned model in LangChain + FAISS (its prompts are picked up automatically):")
    with PromptEmbeddings(model=str(result.output)) as embeddings:
        store = FAISS.from_texts([r["answer"] for r in records], embeddings)
        for record in (records[0], records[len(records) // 2]):
            hit = store.similarity_search(record["question"], k=1)[0].page_content
            golds = {r["answer"] for r in records if r["question"] == record["question"]}  # some are asked twice
            mark = "gold answer" if hit in golds else "not the gold answer"
            print(f"  Q: {record['question']}\n  A: {hit[:220]}{'...' if len(hit) > 220 else ''}  [{mark}]\n")
    print(f"done in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
