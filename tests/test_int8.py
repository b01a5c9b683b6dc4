"""dtype="int8", the CPU fast path: rules, what gets quantized, closeness to float32, adapters.

Speed and retrieval quality (nDCG@10 on the zaragoza FAQ) are measured by `make bench`, not asserted here.
Data: zaragoza-construction-faq by Zaragoza AB (https://zaragoza.se), CC BY 4.0.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import zaragoza_construction_faq

from promptembed import ConfigError, PromptEmbedder, _int8, _loading, _registry

ANSWERS = [r["a"] for r in zaragoza_construction_faq.load(lang="en")][:64]
QUESTIONS = [r["q"] for r in zaragoza_construction_faq.load(lang="en")][:64]


def _linears(emb: PromptEmbedder) -> dict[str, type]:
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    model = emb._require().model
    return {n: type(m) for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, DynamicLinear))}


def test_int8_is_cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    assert _loading.resolve_dtype("int8", "cpu", "bert") == "int8"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for device in ("cuda", "cuda:1", "mps"):
        with pytest.raises(ConfigError, match=re.escape("dtype='int8' is the CPU fast path")):
            _loading.resolve_dtype("int8", device, "bert")


def test_int8_with_a_device_pool_is_refused() -> None:
    with pytest.raises(ConfigError, match=re.escape("dtype='int8' runs in this process only")):
        PromptEmbedder(device=["cpu", "cpu"], dtype="int8")


def test_auto_never_picks_int8() -> None:
    assert _loading.resolve_dtype("auto", "cpu", "bert") == "float32"


def test_outlier_layers_stay_float32_the_rest_is_int8(minilm_dir: Path) -> None:
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    with PromptEmbedder(model=minilm_dir, device="cpu") as fp32:
        ratios = _int8.outlier_ratios(fp32._require().model)
    with PromptEmbedder(model=minilm_dir, device="cpu", dtype="int8") as q:
        assert q.dtype == "int8"
        kinds = _linears(q)
    assert set(kinds) == set(ratios)
    kept = {n for n, r in ratios.items() if r > _int8.OUTLIER_RATIO}
    assert kept, "all-MiniLM-L6-v2 has feed-forward outputs with outlier inputs"
    assert len(kept) < len(ratios) // 4
    for name, kind in kinds.items():
        assert kind is (torch.nn.Linear if name in kept else DynamicLinear), name


def test_int8_vectors_stay_close_to_float32_and_rank_alike(minilm_dir: Path) -> None:
    with (
        PromptEmbedder(model=minilm_dir, device="cpu") as fp32,
        PromptEmbedder(model=minilm_dir, device="cpu", dtype="int8") as q,
    ):
        a, b = fp32.embed_documents(ANSWERS), q.embed_documents(ANSWERS)
        qa, qb = fp32.embed_queries(QUESTIONS), q.embed_queries(QUESTIONS)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert float((a * b).sum(axis=1).min()) > 0.95
    assert not np.allclose(a, b, atol=1e-4), "int8 vectors identical to float32: nothing was quantized"
    # Retrieval of each real question's own answer among the 64: int8 finds (almost) as many at rank 1.
    truth = np.arange(len(QUESTIONS))
    hits_fp32 = int(((qa @ a.T).argmax(axis=1) == truth).sum())
    hits_int8 = int(((qb @ b.T).argmax(axis=1) == truth).sum())
    assert hits_fp32 >= 32
    assert hits_int8 >= hits_fp32 - 2, (hits_fp32, hits_int8)


def test_int8_keeps_prompts_and_truncation(tiny_gemma_dir: Path) -> None:
    from sentence_transformers import SentenceTransformer

    texts = ["Which planet is known as the Red Planet?", "Mars is red."]
    with PromptEmbedder(model=tiny_gemma_dir, device="cpu", dtype="int8", truncate_dim=16) as q:
        got_q, got_d = q.embed_queries(texts), q.embed_documents(texts)
        ref_q = q._require().model.encode_query(texts, convert_to_numpy=True)[:, :16]
    ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu")
    full_q = ref.encode_query(texts, convert_to_numpy=True)[:, :16]
    for want in (ref_q, full_q):
        want = want / np.linalg.norm(want, axis=1, keepdims=True)
        assert float((got_q * want).sum(axis=1).min()) > 0.9
    np.testing.assert_allclose(np.linalg.norm(got_q, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(got_q, got_d, atol=1e-3), "query and document prompts must differ"


def test_int8_identity_differs_from_float32(minilm_dir: Path) -> None:
    with (
        PromptEmbedder(model=minilm_dir, device="cpu") as fp32,
        PromptEmbedder(model=minilm_dir, device="cpu", dtype="int8") as q,
    ):
        ids = {_registry.fingerprint(fp32._require()), _registry.fingerprint(q._require())}
    assert len(ids) == 2


def test_rule_edges(tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(_int8, "OUTLIER_RATIO", 0.0)
    with pytest.raises(ConfigError, match="found no Linear layer it can quantize"):
        PromptEmbedder(model=tiny_bert_dir, device="cpu", dtype="int8")
    monkeypatch.setattr(_int8, "OUTLIER_RATIO", float("inf"))
    with PromptEmbedder(model=tiny_bert_dir, device="cpu", dtype="int8") as q:
        assert torch.nn.Linear not in set(_linears(q).values())


def test_adapters_accept_int8_and_match_the_core(tiny_bert_dir: Path) -> None:
    from haystack import Document
    from haystack_integrations.components.embedders.promptembed import PromptDocumentEmbedder
    from langchain_promptembed import PromptEmbeddings
    from llama_index.embeddings.promptembed import PromptEmbedding

    texts = ["first text", "a second, longer text about something else"]
    with PromptEmbedder(model=tiny_bert_dir, device="cpu", dtype="int8") as core:
        want = core.embed_documents(texts)
        # normalization on in all three (LangChain's and Haystack's stock embedders default it off)
        lc = PromptEmbeddings(model=str(tiny_bert_dir), device="cpu", dtype="int8", normalize=True)
        li = PromptEmbedding(model=str(tiny_bert_dir), device="cpu", dtype="int8")
        hs = PromptDocumentEmbedder(
            model=str(tiny_bert_dir), device="cpu", dtype="int8", progress_bar=False, normalize_embeddings=True
        )
        hs.warm_up()
        try:
            np.testing.assert_allclose(lc.embed_documents(texts), want, atol=1e-6)
            np.testing.assert_allclose(li.get_text_embedding_batch(texts), want, atol=1e-6)
            docs = hs.run(documents=[Document(content=t) for t in texts])["documents"]
            np.testing.assert_allclose([d.embedding for d in docs], want, atol=1e-6)
        finally:
            lc.close()
            li.close()
            hs.close()
