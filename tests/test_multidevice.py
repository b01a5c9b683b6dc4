"""Several devices: one persistent worker pool per embedder, same vectors and prompts as one device."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from promptembed import PromptEmbedder

TEXTS = [f"passage {i} about roofs, permits and heat pumps" for i in range(40)]


@pytest.mark.timeout(300)
def test_pool_is_persistent_and_matches_single_device(tiny_gemma_dir: Path) -> None:
    before = set(multiprocessing.active_children())
    with PromptEmbedder(model=tiny_gemma_dir, truncate_dim=16) as single:
        q_ref, d_ref = single.embed_queries(TEXTS), single.embed_documents(TEXTS, titles=["Roofs"] * len(TEXTS))
    multi = PromptEmbedder(model=tiny_gemma_dir, device=["cpu", "cpu"], truncate_dim=16, batch_size=8)
    try:
        assert multi._pool is not None
        workers = list(multi._pool["processes"])
        assert len(workers) == 2 and all(p.is_alive() for p in workers)
        np.testing.assert_allclose(multi.embed_queries(TEXTS), q_ref, atol=2e-6)
        np.testing.assert_allclose(multi.embed_documents(TEXTS, titles=["Roofs"] * len(TEXTS)), d_ref, atol=2e-6)
        assert list(multi._pool["processes"]) == workers and all(p.is_alive() for p in workers)  # same pool, reused
        pids = [p.pid for p in workers]
        assert multi.config()["device"] == ["cpu", "cpu"]
    finally:
        multi.close()
    assert multi._pool is None
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # stopped and reaped
    assert set(multiprocessing.active_children()) <= before
