from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from promptembed import PromptEmbedder
from promptembed import ray as pe_ray
from promptembed.errors import ConfigError
from promptembed.ray import embed_dataset

ray = pytest.importorskip("ray")

TEXTS = [f"Passage {i}: the {['red', 'ringed', 'gas', 'rocky'][i % 4]} planet number {i}." for i in range(40)]
TITLES = [None if i % 3 == 0 else f"Title {i}" for i in range(40)]


def _vectors(rows: list[dict[str, Any]], column: str) -> np.ndarray:
    return np.stack([np.asarray(r[column], dtype=np.float32) for r in rows])


def test_vectors_equal_promptembedder_ids_and_order_kept(
    ray_cluster: Any, minilm_dir: Path, tiny_gemma_dir: Path
) -> None:
    items = [{"id": 1000 + i, "text": t, "title": TITLES[i], "extra": {"k": i}} for i, t in enumerate(TEXTS)]
    ds = ray.data.from_items(items, override_num_blocks=4)
    small = {"batch_size": 8, "num_cpus": 0.5}
    out = embed_dataset(ds, model=minilm_dir, output_column="minilm", **small)
    out = embed_dataset(
        out, model=tiny_gemma_dir, title_column="title", output_column="titled", max_batch_tokens=24, **small
    )  # a small token budget: more, smaller forward passes in the actor, the same vectors
    out = embed_dataset(out, model=tiny_gemma_dir, role=None, prompt_name="STS", output_column="sts", **small)
    rows = out.take_all()

    assert [r["id"] for r in rows] == [1000 + i for i in range(40)]  # order and ids kept
    assert [r["extra"] for r in rows] == [{"k": i} for i in range(40)]  # every input column kept
    with PromptEmbedder(model=minilm_dir) as emb:
        np.testing.assert_allclose(_vectors(rows, "minilm"), emb.embed_documents(TEXTS), atol=2e-6, rtol=0)
    with PromptEmbedder(model=tiny_gemma_dir) as emb:
        np.testing.assert_allclose(_vectors(rows, "titled"), emb.embed_documents(TEXTS, titles=TITLES), atol=2e-6)
        np.testing.assert_allclose(_vectors(rows, "sts"), emb.embed(TEXTS, prompt_name="STS"), atol=2e-6)
        untitled = emb.embed_documents(TEXTS)
    assert not np.allclose(_vectors(rows, "titled")[1], untitled[1])  # the title really reached the prompt
    schema = out.schema()
    assert str(schema.base_schema.field("minilm").type) == "fixed_size_list<item: float>[384]"


class DiesOnce(pe_ray._EmbedBatches):
    """The real actor class, except that the first attempt at the batch holding id 37 kills its process."""

    marker: str = ""

    def __call__(self, batch: Any) -> Any:
        if 37 in batch.column("id").to_pylist() and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)  # the actor dies mid-job, in the middle of a batch
        return super().__call__(batch)


def test_an_actor_dies_mid_job_each_row_once(
    ray_cluster: Any, tiny_gemma_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    marker = tmp_path / "died"
    monkeypatch.setattr(DiesOnce, "marker", str(marker))
    monkeypatch.setattr(pe_ray, "_EmbedBatches", DiesOnce)
    ds = ray.data.from_items([{"id": i, "text": TEXTS[i]} for i in range(40)], override_num_blocks=5)
    rows = embed_dataset(ds, model=tiny_gemma_dir, batch_size=8, concurrency=1).take_all()
    assert marker.exists(), "the actor never died: this test did not test a failure"
    assert sorted(r["id"] for r in rows) == list(range(40))  # each row exactly once
    by_id = {r["id"]: r["embedding"] for r in rows}
    with PromptEmbedder(model=tiny_gemma_dir) as emb:
        ref = emb.embed_documents(TEXTS)
    np.testing.assert_allclose(np.stack([by_id[i] for i in range(40)]), ref, atol=2e-6)


def test_bad_row_fails_naming_id_and_column_or_is_skipped(ray_cluster: Any, tiny_gemma_dir: Path) -> None:
    items = [{"doc_id": f"d{i}", "body": None if i == 5 else TEXTS[i]} for i in range(10)]
    ds = ray.data.from_items(items)
    with pytest.raises(Exception, match=re.escape("Row doc_id='d5': column 'body' is NoneType (None), not str")):
        embed_dataset(ds, model=tiny_gemma_dir, column="body", id_column="doc_id", batch_size=4).take_all()
    rows = embed_dataset(
        ds, model=tiny_gemma_dir, column="body", id_column="doc_id", on_bad_row="skip", batch_size=4
    ).take_all()
    assert [r["doc_id"] for r in rows] == [f"d{i}" for i in range(10) if i != 5]


def test_a_text_column_typed_differently_across_blocks_names_or_skips_its_bad_rows(
    ray_cluster: Any, tiny_gemma_dir: Path
) -> None:
    """Blocks whose text column is int64 in one and string in another: Ray cannot join them into one batch."""
    import pyarrow as pa

    strings = pa.table({"id": [0, 1, 2], "text": TEXTS[:3]})
    numbers = pa.table({"id": [3, 4], "text": pa.array([5, 6], type=pa.int64())})
    ds = ray.data.from_arrow([strings, numbers, pa.table({"id": [5], "text": [TEXTS[5]]})])
    with pytest.raises(Exception, match=re.escape("Row id=3: column 'text' is int (5), not str")):
        embed_dataset(ds, model=tiny_gemma_dir, id_column="id", batch_size=8).take_all()
    rows = embed_dataset(ds, model=tiny_gemma_dir, id_column="id", on_bad_row="skip", batch_size=8).take_all()
    assert sorted(r["id"] for r in rows) == [0, 1, 2, 5]
    with PromptEmbedder(model=tiny_gemma_dir) as emb:
        expected = emb.embed_documents([TEXTS[0], TEXTS[1], TEXTS[2], TEXTS[5]])
    got = _vectors(sorted(rows, key=lambda r: r["id"]), "embedding")
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_options_checked_on_the_driver(ray_cluster: Any) -> None:
    ds = ray.data.from_items([{"text": "a", "vec": 1}])
    with pytest.raises(
        ConfigError, match=re.escape("column='body' is not a column of the input; its columns are ['text', 'vec']")
    ):
        embed_dataset(ds, column="body")
    with pytest.raises(ConfigError, match=re.escape("Unknown option(s) ['batchsize'] for embed_dataset")):
        embed_dataset(ds, batchsize=3)
    with pytest.raises(ConfigError, match="Pass role= or prompt_name="):
        embed_dataset(ds, prompt_name="STS")
    with pytest.raises(ConfigError, match=re.escape("precision='int8' is not supported yet")):
        embed_dataset(ds, precision="int8")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=re.escape("Unknown dtype 'float64'")):  # not an ActorDiedError later
        embed_dataset(ds, dtype="float64")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="concurrency must be an int >= 1"):
        embed_dataset(ds, concurrency=0)
    with pytest.raises(ConfigError, match="max_batch_tokens must be an int >= 1"):
        embed_dataset(ds, max_batch_tokens=0)
    with pytest.raises(ConfigError, match="Unknown engine 'vllm'; use 'auto'"):
        embed_dataset(ds, engine="vllm")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=re.escape("Unknown device 'gpu'; use 'auto', 'cpu', 'cuda', 'cuda:N'")):
        embed_dataset(ds, device="gpu")  # each actor used to fail on it, behind an ActorDiedError
    from promptembed import PromptError

    with pytest.raises(PromptError, match="prompts must be a dict of prompt name -> prompt text, got str"):
        embed_dataset(ds, prompts="query: ")  # type: ignore[arg-type]  # was a bare ValueError from dict()
    with pytest.raises(
        ConfigError, match=re.escape("output_column='vec' is already a column of the input ['text', 'vec']")
    ):
        embed_dataset(ds, output_column="vec")


def test_without_an_id_column_a_bad_row_is_named_by_its_place_in_its_batch(tiny_bert_dir: Path) -> None:
    import pyarrow as pa

    from promptembed._tables import TableJob
    from promptembed.ray import _EmbedBatches

    batch = pa.table({"text": ["fine", None, "also fine"]})  # the second batch of a dataset, say: rows 3 to 5
    actor = _EmbedBatches({"model": str(tiny_bert_dir), "show_progress_bar": False}, TableJob())
    with pytest.raises(Exception, match=re.escape("Row 1 of a batch of 3: column 'text' is NoneType")) as err:
        actor(batch)  # it said "row 1", as if it were the dataset's second row
    assert "pass id_column= (--id-column) to name rows by their id" in str(err.value)


def test_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    from promptembed.errors import MissingExtraError

    with pytest.raises(MissingExtraError, match=re.escape("pip install 'promptembed[ray]'")):
        pe_ray.require_ray()


def test_engine_options_reach_each_actors_embedder(tiny_bert_dir: Path) -> None:
    """What embed_dataset hands Ray: the actor class and its options, which build the actor's PromptEmbedder."""

    class RecordingDataset:  # the Dataset calls embed_dataset makes, recorded instead of run
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        def schema(self, fetch_if_missing: bool = False) -> None:
            return None  # not known yet: the blocks' types are checked by a stage of their own

        def map_batches(self, fn: Any, **kwargs: Any) -> RecordingDataset:
            self.calls.append({"fn": fn, **kwargs})
            self.fn, self.kwargs = fn, kwargs
            return self

    ds = RecordingDataset()
    assert embed_dataset(ds, model=str(tiny_bert_dir), engine="compile", max_batch_tokens=512) is ds  # type: ignore[arg-type]
    check, _ = ds.calls  # the per-block type check, then the actors
    assert check["batch_size"] is None and check["num_cpus"] == 0  # never waits for a CPU the actors hold
    options, job = ds.kwargs["fn_constructor_kwargs"]["options"], ds.kwargs["fn_constructor_kwargs"]["job"]
    assert options["engine"] == "compile" and options["max_batch_tokens"] == 512
    actor = ds.fn(options, job)
    assert actor._embedder.engine == "compile" and actor._embedder.max_batch_tokens == 512
    actor._embedder.close()
