"""Embed a Ray Dataset on a Ray cluster with the model's own prompts (needs the ``[ray]`` extra).

:func:`embed_dataset` adds a vector column to a ``ray.data.Dataset`` with ``Dataset.map_batches`` and a callable
class: each actor builds one :class:`~promptembed.PromptEmbedder` when it starts and embeds every batch it is
given with it, so every prompt, title, truncation and dtype decision is the core's, made inside the actor.

Vectors are a ``fixed_size_list<float32>[dim]`` column: it is Arrow's and Parquet's own type for a vector
(LanceDB, DuckDB's ``FLOAT[dim]`` and pandas/numpy readers take it as it is), and its values are one contiguous
float32 buffer, so ``column.values.to_numpy().reshape(-1, dim)`` reads the vectors back without a copy. Ray's
tensor extension type stores the same floats but is only understood by Ray; other readers see its storage
(see benchmarks/RESULTS.md, "Vector column type").

Example:
    >>> import ray
    >>> from promptembed.ray import embed_dataset
    >>> ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)  # doctest: +ELLIPSIS
    RayContext(...)
    >>> ds = ray.data.from_items([{"id": 1, "text": "Mars is the Red Planet."}, {"id": 2, "text": "Venus."}])
    >>> rows = embed_dataset(ds, column="text", batch_size=2).take_all()
    >>> [r["id"] for r in rows], len(rows[0]["embedding"])
    ([1, 2], 384)
    >>> ray.shutdown()
"""

from __future__ import annotations

import importlib
import logging
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from promptembed._extras import require_module
from promptembed._tables import OnBadRow, TableJob, embed_table
from promptembed.errors import ConfigError
from promptembed.prompts import Role

if TYPE_CHECKING:
    import pyarrow as pa
    from ray.data import Dataset

    from promptembed.embedder import PromptEmbedder

__all__ = ["embed_dataset", "require_ray"]

logger = logging.getLogger("promptembed")

#: Output quantization values embed_dataset writes today (``precision=``, sentence-transformers' meaning; the core
#: has all five, but the vector column is a fixed-size list of float32).
_PRECISIONS = ("float32",)


def require_ray() -> Any:
    """Import ``ray`` and Ray Data, or raise :class:`MissingExtraError` with the pip command."""
    for name in ("ray", "ray.data", "pyarrow"):
        require_module(
            name, needed_by="promptembed.ray needs the [ray] extra", install="pip install 'promptembed[ray]'"
        )
    return importlib.import_module("ray")


class _EmbedBatches:
    """The callable class Ray Data runs in each actor: one PromptEmbedder per actor, built once."""

    def __init__(self, options: dict[str, Any], job: TableJob) -> None:
        from promptembed.embedder import PromptEmbedder

        self._job = job
        self._embedder: PromptEmbedder = PromptEmbedder(**options)

    def __call__(self, batch: pa.Table) -> pa.Table:
        # Ray Data does not tell a batch where it sits in the dataset: without an id column, a row is named by its
        # place in its batch, and says so (the error and the log then ask for id_column=)
        positions = (
            None if self._job.id_column else [f"{i} of a batch of {batch.num_rows}" for i in range(batch.num_rows)]
        )
        out, bad = embed_table(self._embedder, batch, self._job, positions=positions)
        if bad:
            shown = ", ".join(f"{b.row} ({b.reason})" for b in bad[:20])
            hint = "" if self._job.id_column else "; pass id_column= to name the rows by their id"
            logger.warning("skipped %d bad row(s): %s%s%s", len(bad), shown, " ..." if len(bad) > 20 else "", hint)
        return out


def embed_dataset(
    ds: Dataset,
    *,
    model: str | Path | None = None,
    column: str = "text",
    role: Role | None = "document",
    prompt_name: str | None = None,
    title_column: str | None = None,
    output_column: str = "embedding",
    id_column: str | None = None,
    on_bad_row: OnBadRow = "fail",
    group_column: str | None = None,
    dtype: Literal["auto", "float32", "bfloat16", "float16", "int8"] = "auto",
    precision: Literal["float32"] = "float32",
    truncate_dim: int | None = None,
    normalize: bool = True,
    prompts: dict[str, str] | None = None,
    batch_size: int | None = 256,
    model_batch_size: int = 32,
    max_batch_tokens: int | None = None,
    engine: Literal["auto", "sentence-transformers", "compile"] = "auto",
    concurrency: int | tuple[int, int] = 1,
    num_gpus: float = 0,
    num_cpus: float | None = None,
    device: str = "auto",
    revision: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    **unknown: Any,
) -> Dataset:
    """Add a vector column to ``ds``: one PromptEmbedder per Ray actor, the model's own prompts on every row.

    Lazy, like every Ray Data transform: nothing runs until the result is consumed (``write_parquet``,
    ``iter_batches``, ``take_all``, ...). Every input column is kept, so ids travel with their vectors. Rows keep
    their order within each block; across blocks Ray keeps the input order when
    ``DataContext.get_current().execution_options.preserve_order`` is ``True``. An actor that dies is restarted by
    Ray and its unfinished batches run again, so each row still appears once; an exception raised by the
    embedding itself (a bad row, a bad option) is not retried: it fails the job with its message.

    Args:
        ds: The input dataset (``ray.data.read_parquet``, ``read_json``, ``from_items``, ...).
        model: Model folder or hub id, as :class:`~promptembed.PromptEmbedder` takes it; every actor's node must
            reach it (a shared path, the hub, or the bundled default when ``None``).
        column: The text column.
        role: ``"document"`` or ``"query"``; ``None`` with ``prompt_name`` for a named task prompt.
        prompt_name: A named prompt of the model (e.g. ``"STS"``), with ``role=None``.
        title_column: A column of titles (``str`` or null) for a document prompt with a title slot (EmbeddingGemma).
        output_column: Name of the new vector column.
        id_column: A column that names rows in error messages and skip reports.
        on_bad_row: ``"fail"`` (default): a row whose text is not a ``str`` (null, a number, a list) fails the job
            with an error naming the row (its ``id_column`` value) and the column. ``"skip"``: such rows are
            dropped from the output and their ids are logged by the actor (Ray forwards it to the driver).
        group_column: A column whose rows with the same value, within one actor batch, are embedded by one call of
            their own. A vector's last bits follow the texts embedded with it (the engine's batches change the
            float rounding), so a group that arrives in one batch gets the bytes it gets embedded alone, with the
            same model, device, dtype, budget and, on CPU, torch thread count. ``promptembed embed --ray`` passes
            its part index with ``batch_size=None`` (one block, normally one part, per batch; Ray may still split a
            block over its ``target_max_block_size``, 128 MiB by default), so its parts equal the in-process ones.
        dtype: Weight dtype inside each actor (``"auto"``: float32 on CPU, bfloat16 on CUDA; see PromptEmbedder).
        precision: Output vector quantization; ``"float32"`` (the only value today).
        truncate_dim: Matryoshka dimension to keep (re-normalized).
        normalize: L2-normalize the vectors.
        prompts: Prompt entries that replace or extend the model's saved prompts.
        batch_size: Rows per batch handed to an actor; ``None``: one batch per block, as the blocks come.
        model_batch_size: Texts per forward pass inside the actor when it runs sentence-transformers' loop
            (PromptEmbedder's ``batch_size``).
        max_batch_tokens: Token budget per forward pass of the actor's engine (PromptEmbedder's
            ``max_batch_tokens``); ``None``: the device's default (CPU 2048, CUDA 32768).
        engine: The actor's encode loop (PromptEmbedder's ``engine``): ``"auto"``, ``"sentence-transformers"``, or
            ``"compile"`` (``torch.compile``: each actor compiles at its first batch; for large models on GPUs).
        concurrency: Number of actors (one model each), or ``(min, max)`` for an autoscaling pool.
        num_gpus: GPUs per actor (``1``: one model per GPU).
        num_cpus: CPUs per actor (Ray's default 1; Ray also caps each actor's torch threads to it).
        device: ``"auto"`` picks the actor's GPU when ``num_gpus`` gives it one, else CPU.
        revision: Hub revision for hub ids.
        trust_remote_code: Run code shipped with a hub model (off by default).
        allow_pickle: Allow pickle-only weights.
        **unknown: Refused: an unknown option is an error that lists the valid ones.

    Returns:
        A lazy ``Dataset`` with every input column plus ``output_column``.

    Raises:
        MissingExtraError: Ray is not installed.
        ConfigError: An invalid option (checked here, on the driver) or a missing/clashing column (when the
            dataset's schema is known without running it). What needs the model (a ``truncate_dim`` beyond its
            dimension, an unknown ``prompt_name``, a model that does not load) fails when the actors start,
            with promptembed's message at the end of Ray's ``ActorDiedError``.
        PromptError: ``prompts`` is not a dict of str -> str (on the driver).
    """
    require_ray()
    if unknown:
        raise ConfigError(f"Unknown option(s) {sorted(unknown)} for embed_dataset; valid options are {_OPTIONS}")
    if precision not in _PRECISIONS:
        raise ConfigError(
            f"precision={precision!r} is not supported yet; output quantization supports {list(_PRECISIONS)}. "
            "For the weight dtype use dtype= ('auto', 'float32', 'bfloat16', 'float16', 'int8')"
        )
    job = TableJob(
        column=column,
        role=role,
        prompt_name=prompt_name,
        title_column=title_column,
        output_column=output_column,
        id_column=id_column,
        on_bad_row=on_bad_row,
        group_column=group_column,
    )
    from promptembed._loading import DTYPES

    if dtype not in DTYPES:  # the actors would fail on it one by one, behind an ActorDiedError
        raise ConfigError(f"Unknown dtype {dtype!r}; use one of {list(DTYPES)}")
    from promptembed._loading import check_device_name
    from promptembed.prompts import merge_prompts

    check_device_name(device)  # the spelling only: the driver may have no GPU where the actors do

    merge_prompts({}, prompts)  # a prompts= that is not a dict of str -> str fails here, not in every actor
    rows_per_batch = 1 if batch_size is None else batch_size
    _check_pool(batch_size=rows_per_batch, concurrency=concurrency, num_gpus=num_gpus, num_cpus=num_cpus)
    options = {
        "model": str(model) if model is not None else None,
        "device": device,
        "dtype": dtype,
        "truncate_dim": truncate_dim,
        "normalize": normalize,
        "batch_size": model_batch_size,
        "max_batch_tokens": max_batch_tokens,
        "engine": engine,
        "prompts": dict(prompts) if prompts is not None else None,
        "revision": revision,
        "trust_remote_code": trust_remote_code,
        "allow_pickle": allow_pickle,
        "show_progress_bar": False,
    }
    from promptembed._inputs import check_engine_options, check_options

    check_engine_options(max_batch_tokens, engine)
    check_options({}, batch_size=model_batch_size, truncate_dim=truncate_dim, normalize=normalize,
                  trust_remote_code=trust_remote_code, show_progress_bar=False)  # fmt: skip
    try:
        schema = ds.schema(fetch_if_missing=False)
    except Exception:  # blocks whose types do not unify (a column mixing str and numbers): the blocks' checks name it
        schema = None
    if schema is not None:
        job.check_columns(list(schema.names))
    if batch_size is not None and not _all_strings(schema, job):
        # The actors' batches join blocks, which needs one type per column across blocks. No CPU of its own
        # (num_cpus=0): the actor pools of earlier embed_dataset stages may hold every CPU of the cluster.
        ds = ds.map_batches(partial(_strings_only, job=job), batch_size=None, batch_format="pyarrow",
                            zero_copy_batch=True, num_cpus=0)  # fmt: skip
    from ray.data import ActorPoolStrategy

    pool = (
        ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
        if isinstance(concurrency, tuple)
        else ActorPoolStrategy(size=concurrency)
    )
    return ds.map_batches(
        _actor_class(),
        fn_constructor_kwargs={"options": options, "job": job},
        batch_size=batch_size,
        batch_format="pyarrow",
        zero_copy_batch=True,
        compute=pool,
        num_gpus=num_gpus,
        num_cpus=num_cpus,
    )


def _all_strings(schema: Any, job: TableJob) -> bool:
    """Whether the dataset's known schema gives the text (and title) column a string type in every block."""
    import pyarrow as pa

    if schema is None:
        return False
    names = list(schema.names)
    for name in (job.column, job.title_column):
        if name is None or name not in names:
            continue
        kind = schema.types[names.index(name)]
        if not isinstance(kind, pa.DataType) or not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            return False
    return True


def _strings_only(block: pa.Table, job: TableJob) -> pa.Table:
    """A block whose text (and title) column is not of a string type: its bad rows named (failing) or dropped.

    Ray joins blocks into the actors' batches, and a column that is ``int64`` in one block and ``string`` in another
    cannot be joined: the job would fail in Ray with Arrow's "Unable to merge" before any row is named. So each such
    block is checked here, as the actors check their batches, and what is left is cast to ``string``.
    """
    import pyarrow as pa

    from promptembed._tables import check_rows

    columns = [c for c in (job.column, job.title_column) if c is not None and c in block.column_names]
    if all(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)
           for t in (block.schema.field(c).type for c in columns)):  # fmt: skip
        return block
    positions = None if job.id_column else [f"{i} of a block of {block.num_rows}" for i in range(block.num_rows)]
    good, bad = check_rows(block, job, positions=positions)  # raises on the first bad row when failing
    if bad:
        shown = ", ".join(f"{b.row} ({b.reason})" for b in bad[:20])
        logger.warning("skipped %d bad row(s): %s%s", len(bad), shown, " ..." if len(bad) > 20 else "")
    kept = block.take(pa.array(good, type=pa.int64()))
    for name in columns:
        index = kept.schema.get_field_index(name)
        kept = kept.set_column(index, name, pa.array(kept.column(name).to_pylist(), type=pa.string()))
    return kept


def _actor_class() -> type[_EmbedBatches]:
    return _EmbedBatches  # looked up at call time, so a test can substitute a subclass that fails once


def _check_pool(*, batch_size: object, concurrency: object, num_gpus: object, num_cpus: object) -> None:
    from promptembed._inputs import check_int

    check_int("batch_size", batch_size, minimum=1)
    if isinstance(concurrency, tuple):
        if len(concurrency) != 2:
            raise ConfigError(f"concurrency must be an int or a (min, max) tuple, got {concurrency!r}")
        for value in concurrency:
            check_int("concurrency", value, minimum=1)
        if concurrency[0] > concurrency[1]:
            raise ConfigError(f"concurrency=(min, max) needs min <= max, got {concurrency!r}")
    else:
        check_int("concurrency", concurrency, minimum=1)
    for name, value in (("num_gpus", num_gpus), ("num_cpus", num_cpus)):
        if value is None and name == "num_cpus":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{name} must be a number >= 0 (per actor), got {value!r}")


_OPTIONS = [
    "model", "column", "role", "prompt_name", "title_column", "output_column", "id_column", "on_bad_row",
    "group_column", "dtype",
    "precision", "truncate_dim", "normalize", "prompts", "batch_size", "model_batch_size",
    "max_batch_tokens", "engine", "concurrency", "num_gpus",
    "num_cpus", "device", "revision", "trust_remote_code", "allow_pickle",
]  # fmt: skip
