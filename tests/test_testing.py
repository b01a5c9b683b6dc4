"""The tiny test models are the same in every session, so a test's outcome cannot depend on the session."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptembed.testing import build_tiny_bert, build_tiny_embeddinggemma


@pytest.mark.parametrize("build", [build_tiny_bert, build_tiny_embeddinggemma])
def test_a_tiny_model_is_built_the_same_every_time(build: object, tmp_path: Path) -> None:
    first, second = build(tmp_path / "a"), build(tmp_path / "b")  # type: ignore[operator]
    kept = (".json", ".safetensors")  # the README model card is not compared
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file() and p.suffix in kept)
    assert Path("tokenizer.json") in files and any(p.suffix == ".safetensors" for p in files)
    for name in files:  # a tokenizer learned at build time broke its ties another way in every process
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_builders_keep_the_callers_random_stream_and_honor_max_seq_length(tmp_path: Path) -> None:
    import torch

    from promptembed import PromptEmbedder

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    path = build_tiny_bert(tmp_path / "long", max_seq_length=200)
    assert torch.equal(torch.rand(3), expected)  # a seeded test's stream goes on as if the builder had not run
    with PromptEmbedder(model=path) as emb:
        assert emb.max_seq_length == 200  # it was capped at 128, the model's position table
