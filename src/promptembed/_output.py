"""The output folder of ``promptembed embed``: atomic parts, the job and manifest files, one schema at the end.

Each part is written to a temporary name, flushed to disk and renamed into place, so a part file that exists is
complete; ``_job.json`` (the inputs and options) and ``_embedder.json`` (what the options resolved to) are written
before the first part and ``_manifest.json`` after the last. A rerun with the same inputs and options, where they
resolve alike, keeps the finished parts and embeds only the missing ones; a SIGKILL at any point loses at most the
parts in flight.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptembed.errors import ConfigError, InputError

if TYPE_CHECKING:
    import pyarrow as pa

    from promptembed._corpus import PartSpec

__all__ = ["EMBEDDER_FILE", "JOB_FILE", "MANIFEST_FILE", "OutputFolder", "spec_dict"]

logger = logging.getLogger("promptembed")

JOB_FILE, MANIFEST_FILE = "_job.json", "_manifest.json"  # "_": Parquet readers of the folder skip them
#: How the first run resolved the embedder (dtype, dimension, prompt), which every resume must resolve alike.
EMBEDDER_FILE = "_embedder.json"
#: The parts of that resolution that decide the vectors (the device may change between runs of one job).
_RESOLVED = ("dtype", "dimension", "prompt")


def _fsync_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class OutputFolder:
    """The output folder's commit protocol (see the module docstring)."""

    path: Path

    def prepare(self, job_info: dict[str, Any], *, overwrite: bool) -> set[str]:
        """Create or reuse the folder; returns the names of finished parts that a rerun keeps."""
        p = self.path
        if p.exists() and not p.is_dir():
            raise ConfigError(f"--output {p} is a file; give a folder path")
        if p.exists() and any(p.iterdir()):
            ours = (p / JOB_FILE).is_file()
            if overwrite:
                if not ours:
                    raise ConfigError(
                        f"--output {p} is not empty and is not a promptembed embed output (no {JOB_FILE}); "
                        "refusing to delete it with --overwrite: choose an empty or new folder"
                    )
                shutil.rmtree(p)
            elif (p / MANIFEST_FILE).is_file():
                raise ConfigError(f"--output {p} already holds a finished job; pass --overwrite to replace it")
            elif not ours:
                raise ConfigError(f"--output {p} is not empty; choose a new folder, or an empty one")
            else:
                before = json.loads((p / JOB_FILE).read_text(encoding="utf-8"))
                if before != job_info:
                    changed = sorted(k for k in set(before) | set(job_info) if before.get(k) != job_info.get(k))
                    if changed == ["plan"]:
                        raise ConfigError(
                            f"--output {p} holds an unfinished job whose input was cut into parts another way "
                            "(probably by another promptembed version); its parts cannot be resumed: pass --overwrite "
                            "to start over"
                        )
                    raise ConfigError(
                        f"--output {p} holds an unfinished job with other {', '.join(changed)}; rerun with the same "
                        "input and options to resume it, or pass --overwrite to start over"
                    )
        p.mkdir(parents=True, exist_ok=True)
        for leftover in p.glob(".*.tmp-*"):  # parts in flight when a previous run was killed
            leftover.unlink(missing_ok=True)
        if not (p / JOB_FILE).is_file():
            self.write_json(JOB_FILE, job_info)
        return {f.stem for f in p.glob("part-*.parquet")}

    def check_embedder(self, info: dict[str, Any]) -> None:
        """Record how this job's embedder resolved, or refuse a resume where it resolves another way.

        ``--dtype auto`` is float32 on a CPU and bfloat16 on most GPUs: a job started on one and resumed on the
        other would hold parts of two precisions, so that resume is refused before anything is embedded.

        Raises:
            ConfigError: The finished parts were embedded with another dtype, dimension or prompt.
        """
        now = json.loads(json.dumps({k: info[k] for k in _RESOLVED}, default=str))  # as it reads back
        path = self.path / EMBEDDER_FILE
        has_parts = any(self.path.glob("part-*.parquet"))
        if not path.is_file() or not has_parts:  # a first run, or one killed before its first part
            if has_parts:  # a folder from before the record existed: nothing to compare with
                logger.warning(
                    "%s has parts but no %s: cannot check they were embedded alike", self.path, EMBEDDER_FILE
                )
            self.write_json(EMBEDDER_FILE, now)
            return
        before = json.loads(path.read_text(encoding="utf-8"))
        changed = [k for k in _RESOLVED if before.get(k) != now[k]]
        if changed:
            shown = ", ".join(f"{k} {before.get(k)!r} then, {now[k]!r} here" for k in changed)
            raise ConfigError(
                f"--output {self.path} holds parts embedded with another {', '.join(changed)} ({shown}; "
                f"{info.get('device', 'this device')} resolves the options so); resume it where they resolve as "
                "before (--dtype auto gives float32 on a CPU, so `--device cpu` resumes a job started on one; "
                "bfloat16 or float16 on a GPU, by its kind), or pass --overwrite to start over here"
            )

    def write_part(self, name: str, table: pa.Table) -> Path:
        """Write one part atomically: a temporary file, flushed, renamed to ``<name>.parquet``."""
        import pyarrow.parquet as pq

        final = self.path / f"{name}.parquet"
        _fsync_write(final, lambda f: pq.write_table(table, f))
        return final

    def unify_parts(self, names: list[str], vector_column: str, dimension: int) -> None:
        """Give every part one schema: the same columns in the same order, with the same types.

        JSONL parts take the types of the whole JSONL input, but a CSV or Parquet file's column can be missing from
        other files, be null in one and text in another, or hold integers of another width; and a part whose rows
        were all skipped has no vector column. Readers of the folder (``pyarrow.parquet.read_table``, DuckDB, Ray
        Data) take one file's schema for all, so they would fail or drop columns. Each part that differs from the
        union of the parts' schemas (nulls and missing columns filled, integers widened) is rewritten atomically.

        Raises:
            InputError: Two parts' columns cannot share a type (nested values of other kinds).
        """
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        from promptembed._parquet import open_native
        from promptembed._tables import vector_array

        if not names:  # an empty input: no part to unify
            return
        paths = [self.path / f"{n}.parquet" for n in names]
        schemas = []
        for p in paths:
            with open_native(p) as source:
                schemas.append(pq.read_schema(source))
        vector = next((s.field(vector_column) for s in schemas if vector_column in s.names), None)
        if vector is None:  # every row of every part was skipped
            vector = pa.field(vector_column, vector_array(np.zeros((0, dimension), dtype=np.float32)).type)

        def plain(f: pa.Field) -> pa.Field:  # a dictionary-encoded column does not merge with its plain values
            return f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f

        def unified(decode: bool) -> pa.Schema:
            return pa.unify_schemas(
                [pa.schema([plain(f) if decode else f for f in s if f.name != vector_column]) for s in schemas],
                promote_options="permissive",
            )

        try:
            try:
                inputs = unified(decode=False)  # parts that agree keep their types, dictionary encoding included
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                inputs = unified(decode=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InputError(
                f"The parts in {self.path} cannot share one schema ({exc}); give each column one type in every input "
                "row, then rerun with --overwrite"
            ) from None
        target = inputs.append(vector)
        for path, schema in zip(paths, schemas, strict=True):
            if schema.remove_metadata().equals(target):
                continue
            with open_native(path) as source:
                table = pq.read_table(source)
            try:
                columns = [
                    table.column(f.name).cast(f.type)
                    if f.name in table.column_names
                    else pa.nulls(table.num_rows, f.type)
                    for f in target
                ]
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:  # e.g. an integer above 2**53 in a float column
                raise InputError(
                    f"Part {path.name} cannot take the folder's schema ({exc}); give each column one type in every "
                    "input row, then rerun with --overwrite"
                ) from None
            fixed = pa.Table.from_arrays(columns, schema=target)
            _fsync_write(path, lambda f, t=fixed: pq.write_table(t, f))

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        """Write a JSON file atomically (as UTF-8; text that UTF-8 cannot hold, a lone surrogate, as JSON escapes)."""
        text = json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError:  # e.g. a model path given by a name that is not UTF-8 (input paths: path_text)
            raw = (json.dumps(data, indent=2, default=str) + "\n").encode("ascii")
        _fsync_write(self.path / name, lambda f: f.write(raw))


def spec_dict(spec: PartSpec) -> dict[str, Any]:
    """JSON-ready part summary for the manifest."""
    from promptembed._parquet import path_text

    return {"name": spec.name, "file": path_text(spec.path), "rows": spec.n_good, "skipped": len(spec.skip)}
