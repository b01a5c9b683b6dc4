"""GPU fp32 vs bf16 throughput of PromptEmbedder (run on a lent GPU machine; needs no network).

The all-MiniLM-L6-v2 weights (90 MB) cannot travel to the GPU machine, so the MiniLM-shaped model here has the
real config and tokenizer (benchmarks/minilm_shape/) with random weights: the same compute per token. The tiny
EmbeddingGemma-shaped model comes from promptembed.testing. Corpus: the zaragoza-construction-faq answers
(CC BY 4.0, Zaragoza AB), installed from a carried wheel. Prints a Markdown table.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build_minilm_shaped(dest: Path) -> Path:
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    shutil.copytree(HERE / "minilm_shape", dest)
    torch.manual_seed(0)
    BertModel(BertConfig.from_pretrained(str(dest))).save_pretrained(str(dest))
    return dest


def main() -> None:
    import torch
    import zaragoza_construction_faq as z

    from promptembed import PromptEmbedder
    from promptembed.testing import build_tiny_embeddinggemma

    docs = [r["a"] for r in z.load(lang="en")] * 8  # 4024 passages
    work = Path(tempfile.mkdtemp())
    models = {
        "all-MiniLM-L6-v2-shaped (random weights)": build_minilm_shaped(work / "minilm"),
        "tiny EmbeddingGemma-shaped": build_tiny_embeddinggemma(work / "gemma", max_seq_length=256),
    }
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}; {len(docs)} passages, batch 128\n")
    print("| model | dtype | docs/s | vs fp32 | min cosine to fp32 |\n|---|---|---|---|---|")
    for name, path in models.items():
        ref = None
        base = 0.0
        for dtype in ("float32", "bfloat16"):
            with PromptEmbedder(model=path, device="cuda", dtype=dtype, batch_size=128) as emb:
                emb.embed_documents(docs[:256])  # warm-up
                runs = []
                for _ in range(3):
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    vecs = emb.embed_documents(docs)
                    torch.cuda.synchronize()
                    runs.append(time.perf_counter() - t0)
            rate = len(docs) / statistics.median(runs)
            if ref is None:
                ref, base = vecs, rate
            cos = float((vecs * ref).sum(axis=1).min())
            print(f"| {name} | {dtype} | {rate:,.0f} | {rate / base:.2f}x | {cos:.4f} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
