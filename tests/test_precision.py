"""Device and weight-dtype (dtype=) rules (pure functions, checked for every device kind without needing one)."""

from __future__ import annotations

import gc
import re
from pathlib import Path

import pytest

from promptembed import ConfigError, PromptEmbedder, _loading


@pytest.fixture
def cuda(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    return monkeypatch


def test_cpu_auto_is_float32() -> None:
    assert _loading.resolve_dtype("auto", "cpu", "bert") == "float32"
    assert _loading.resolve_dtype("auto", "cpu", "gemma3_text") == "float32"


def test_cuda_auto_prefers_bf16_then_fp16(cuda: pytest.MonkeyPatch) -> None:
    import torch

    cuda.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert _loading.resolve_dtype("auto", "cuda", "bert") == "bfloat16"
    assert _loading.resolve_dtype("auto", "cuda:1", "gemma3_text") == "bfloat16"
    cuda.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert _loading.resolve_dtype("auto", "cuda", "bert") == "float16"


@pytest.mark.parametrize("model_type", sorted(_loading.FP16_UNSAFE_MODEL_TYPES))
def test_gemma_never_gets_fp16_under_auto(cuda: pytest.MonkeyPatch, model_type: str) -> None:
    import torch

    cuda.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert _loading.resolve_dtype("auto", "cuda", model_type) == "float32"
    assert _loading.resolve_dtype("auto", "mps", model_type) == "float32"


def test_explicit_fp16_on_gemma_is_refused_with_reason(tiny_gemma_dir: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("dtype='float16' on a gemma3_text model: Gemma-family")):
        PromptEmbedder(model=tiny_gemma_dir, dtype="float16")


def test_explicit_dtypes_honoured() -> None:
    for p in ("float32", "bfloat16", "float16"):
        assert _loading.resolve_dtype(p, "cpu", "bert") == p


def test_model_type_read_from_folder(tiny_gemma_dir: Path, minilm_dir: Path) -> None:
    assert _loading.read_model_type(str(tiny_gemma_dir), True, trust_remote_code=False, revision=None) == "gemma3_text"
    assert _loading.read_model_type(str(minilm_dir), True, trust_remote_code=False, revision=None) == "bert"


def test_auto_device_order(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert _loading.pick_device("auto") == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert _loading.pick_device("auto") == "cuda:1"  # one spelling per device: the current one, with its index
    assert _loading.pick_device("cuda") == "cuda:1" and _loading.pick_device("cuda:0") == "cuda:0"
    assert _loading.pick_device("mps:0") == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _loading.pick_device("auto") == "cpu"
    assert _loading.pick_device("cpu:0") == "cpu"
    for wrong in ("cpu:7", "cpu:banana"):
        with pytest.raises(ConfigError, match=re.escape(f"Unknown device {wrong!r}; this machine has one cpu device")):
            _loading.pick_device(wrong)


def test_unavailable_device_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=re.escape("device='cuda' but CUDA is not available")):
        _loading.pick_device("cuda")


@pytest.mark.gpu
def test_gpu_auto_dtype_and_memory_release(tiny_gemma_dir: Path, tiny_bert_dir: Path) -> None:
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    texts = ["Which planet is known as the Red Planet?", "Mars is red."]
    gc.collect()
    base = torch.cuda.memory_allocated()
    with PromptEmbedder(model=tiny_bert_dir, device="cuda") as emb:
        assert emb.device == f"cuda:{torch.cuda.current_device()}"  # one spelling per device
        assert emb.dtype == ("bfloat16" if torch.cuda.is_bf16_supported() else "float16")
        assert torch.cuda.memory_allocated() > base
        ref = SentenceTransformer(str(tiny_bert_dir), device="cpu").encode(texts, normalize_embeddings=True)
        cos = np.sum(emb.embed_queries(texts) * ref, axis=1)
        assert (cos > 0.99).all(), cos
    assert torch.cuda.memory_allocated() <= base
    with PromptEmbedder(model=tiny_gemma_dir, device="cuda") as gemma:
        assert gemma.dtype in ("bfloat16", "float32")
        ref = SentenceTransformer(str(tiny_gemma_dir), device="cpu").encode_query(texts)
        cos = np.sum(gemma.embed_queries(texts) * ref, axis=1)
        assert (cos > 0.99).all(), cos
    assert torch.cuda.memory_allocated() <= base


def test_native_bf16_read_from_cpu_flags() -> None:
    assert _loading.cpu_native_bf16("flags\t\t: fpu sse2 avx2 avx512f\n") is None
    assert _loading.cpu_native_bf16("flags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n") == "avx512_bf16"
    assert _loading.cpu_native_bf16("flags\t\t: avx512_bf16 amx_bf16 amx_tile\n") == "amx_bf16"
    assert _loading.cpu_native_bf16("Features\t: fp asimd bf16 i8mm\n") == "bf16"
    assert _loading.cpu_native_bf16("") is None


def test_emulated_bf16_on_cpu_warns(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(_loading, "cpu_native_bf16", lambda: None)
    with caplog.at_level("WARNING", logger="promptembed"):
        assert _loading.resolve_dtype("bfloat16", "cpu", "bert") == "bfloat16"
    assert "without avx512_bf16 or AMX" in caplog.text and "dtype='int8'" in caplog.text
    caplog.clear()
    monkeypatch.setattr(_loading, "cpu_native_bf16", lambda: "avx512_bf16")
    with caplog.at_level("WARNING", logger="promptembed"):
        _loading.resolve_dtype("bfloat16", "cpu", "bert")
    assert caplog.text == ""
