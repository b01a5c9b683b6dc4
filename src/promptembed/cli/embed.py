"""``promptembed embed INPUT --output OUT``: embed a corpus into Parquet parts plus a manifest, resumably.

In this process (the default) each part is read, embedded by one PromptEmbedder and written before the next is
read, so memory holds one part; with ``--ray`` the parts are read by Ray tasks on the node that runs this command,
embedded by :func:`promptembed.ray.embed_dataset` actors anywhere on the cluster, and written here. Both paths
run the same per-table step (``promptembed._tables.embed_table``), so their outputs are identical.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from promptembed._corpus import PartReader, PartSpec, find_inputs, plan_parts, read_part
from promptembed._extras import require_module
from promptembed._output import EMBEDDER_FILE, JOB_FILE, MANIFEST_FILE, OutputFolder, spec_dict
from promptembed._parquet import path_text
from promptembed._tables import TableJob, embed_table
from promptembed.errors import ConfigError, PromptEmbedError

if TYPE_CHECKING:
    import pyarrow as pa

    from promptembed.embedder import PromptEmbedder

__all__ = ["add_command"]

_PART_COLUMN = "__promptembed_part"
_DESCRIPTION = """\
Embed a corpus into Parquet parts (every input column kept, plus the vector column) and a _manifest.json that
states which model, prompt, dimension and dtype made the vectors.

INPUT is a .jsonl/.parquet/.csv file or a folder of them. Without --ray the job runs in this process, one part
in memory at a time; with --ray it runs on a Ray cluster (input read and output written on this machine).
A rerun after a crash keeps the finished parts and embeds only the missing ones, where the options resolve as
before (--dtype auto is float32 on a CPU, bfloat16 or float16 on a GPU; _embedder.json records it); a finished
output is only replaced with --overwrite. A row whose text is not a string, or a JSONL value of another kind than
most rows hold in its column (a Parquet column holds one type), fails the job (default, naming the row and the
column) or, with --on-bad-row skip, is left out and listed in _manifest.json. Every part has the same schema.
"""


def _weights_sha256(source: str) -> str | None:
    """SHA-256 over a local model folder's weight files (names and bytes); ``None`` for a hub id.

    Training checkpoints (``checkpoint-*`` folders, which the model never loads) and hidden folders (``.git``,
    ``.cache``) are left out: saving a checkpoint beside a model does not change the job's identity.
    """
    folder = Path(source)
    if not folder.is_dir():
        return None

    def loaded(path: Path) -> bool:
        parts = path.relative_to(folder).parts[:-1]
        return not any(p.startswith((".", "checkpoint-")) for p in parts)

    digest = hashlib.sha256()
    weights = (p for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin") and p.is_file() and loaded(p))
    for f in sorted(weights):
        digest.update(f.relative_to(folder).as_posix().encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def _describe_options(options: dict[str, Any], job: TableJob) -> dict[str, Any]:
    """:func:`_describe` of a PromptEmbedder built from ``options`` (run as a Ray task, where the actors run)."""
    from promptembed.embedder import PromptEmbedder

    with PromptEmbedder(**{**options, "show_progress_bar": False}) as emb:
        return _describe(emb, options, job)


def _describe(
    emb: PromptEmbedder, options: dict[str, Any], job: TableJob, weights_sha256: str | None = None
) -> dict[str, Any]:
    """Model identity, the prompt used, dimension and dtype, as the embedding side resolves them.

    ``weights_sha256``: the weights' hash when the caller has it already (hashing a large model takes seconds).
    """
    if job.role == "query":
        prompt = emb.query_prompt
    elif job.role == "document":
        prompt = emb.document_prompt
    else:
        prompt = emb.prompts.get(job.prompt_name or "", "")
        emb.embed([""], prompt_name=job.prompt_name)  # an unknown prompt name fails here, before any part
    return {
        "model": {"given": options["model"], "source": emb.model_source, "revision": options["revision"],
                  "weights_sha256": weights_sha256 or _weights_sha256(emb.model_source)},
        "prompt": {"role": job.role, "prompt_name": job.prompt_name, "text": prompt,
                   "title_column": job.title_column, "title_slot": emb.has_title_slot},
        "dimension": emb.dimension, "dtype": emb.dtype, "device": emb.device,
    }  # fmt: skip


def _embed_in_process(
    specs: list[PartSpec], out: OutputFolder, job: TableJob, options: dict[str, Any], bar: Any, weights: str | None
) -> dict[str, Any]:
    from promptembed.embedder import PromptEmbedder

    with PromptEmbedder(**{**options, "show_progress_bar": False}) as emb, PartReader() as reader:
        info = _describe(emb, options, job, weights)
        out.check_embedder(info)
        for spec in specs:
            table = reader.read(spec)
            if spec.n_good:  # a part whose rows were all skipped is written as read: no rows
                table, _ = embed_table(emb, table, job)
            out.write_part(spec.name, table)
            bar.update(spec.n_rows)
    return info


def _embed_on_ray(
    specs: list[PartSpec], out: OutputFolder, job: TableJob, options: dict[str, Any], args: argparse.Namespace, bar: Any
) -> dict[str, Any]:
    from promptembed.ray import embed_dataset, require_ray

    ray = require_ray()
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=None if args.ray == "local" else args.ray, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(
                f"--ray {args.ray}: could not connect to a Ray cluster ({exc}); start one with `ray start --head`, "
                "pass its address (ray://HOST:10001), or use --ray local for a one-machine instance"
            ) from None
    try:
        here = {"ray.io/node-id": ray.get_runtime_context().get_node_id()}  # this node's built-in label
        describe = ray.remote(num_gpus=args.gpus_per_worker, num_cpus=args.cpus_per_worker or 1)(_describe_options)
        info: dict[str, Any] = ray.get(describe.remote(options, job))  # resolved where the actors run
        out.check_embedder(info)
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        # an error raised in the actors comes back as itself (wrapped by Ray), not as Ray Data's UserCodeException,
        # whose cause does not survive Ray's serialization; _raised_in_task finds it for the one-line message
        ctx.raise_original_map_exception = True
        items = ray.data.from_items([{"i": i} for i in range(len(specs))], override_num_blocks=max(1, len(specs)))
        parts = items.map_batches(
            lambda one: _read_indexed(specs, one), batch_size=1, batch_format="pyarrow", label_selector=here, num_cpus=0
        )  # read on this node (INPUT only has to exist here), with no CPU reserved: actors may hold every CPU
        embedded = embed_dataset(
            parts, column=job.column, role=job.role, prompt_name=job.prompt_name, title_column=job.title_column,
            output_column=job.output_column, id_column=job.id_column, on_bad_row=job.on_bad_row,
            group_column=_PART_COLUMN,  # each part embedded alone, as in-process: the same vector bytes
            dtype=options["dtype"], model=options["model"], truncate_dim=options["truncate_dim"],
            prompts=options["prompts"], revision=options["revision"], trust_remote_code=options["trust_remote_code"],
            allow_pickle=options["allow_pickle"], batch_size=None, model_batch_size=args.batch_size,
            max_batch_tokens=args.max_batch_tokens, engine=args.engine,
            concurrency=args.workers,
            num_gpus=args.gpus_per_worker, num_cpus=args.cpus_per_worker,
        )  # fmt: skip
        pending: dict[int, list[pa.Table]] = {}
        got: dict[int, int] = {}
        for batch in embedded.iter_batches(batch_size=None, batch_format="pyarrow"):
            for i, piece in _split_by_part(batch):
                pending.setdefault(i, []).append(piece)
                got[i] = got.get(i, 0) + piece.num_rows
                if got[i] == specs[i].n_good:
                    out.write_part(specs[i].name, _restore(pending.pop(i), specs[i]))
                    bar.update(specs[i].n_rows)
        for spec in specs:  # parts whose rows were all skipped never reach iter_batches: written as read
            if spec.n_good == 0:
                out.write_part(spec.name, _restore([], spec))
        return info
    except Exception as exc:
        cause = _raised_in_task(exc, ray.exceptions.RayError)
        if cause is None:
            raise
        raise cause from None  # the one-line message, not Ray's wrapper with the worker's traceback
    finally:
        if started_here:
            ray.shutdown()


def _raised_in_task(exc: BaseException, wrappers: type[BaseException]) -> PromptEmbedError | None:
    """The promptembed error a Ray task or actor raised, found under Ray's wrappers (``None`` if there is none).

    Ray re-raises a task's error as a ``RayTaskError`` that also subclasses the error's own class, with the remote
    traceback in its message; the original is its ``cause``. Ray Data (with ``raise_original_map_exception``)
    appends its retry advice to the original's message, which is cut off.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, PromptEmbedError) and not isinstance(current, wrappers):
            text = str(current)
            ray_note = text.find("\nFailed to apply UDF transform")  # Ray Data appends its retry advice
            if ray_note >= 0:
                current.args = (text[:ray_note],)
            return current
        current = getattr(current, "cause", None) or current.__cause__
    return None


def _read_indexed(specs: list[PartSpec], one: pa.Table) -> pa.Table:
    import pyarrow as pa

    index = one.column("i")[0].as_py()
    table = read_part(specs[index])
    return table.append_column(_PART_COLUMN, pa.array([index] * table.num_rows, type=pa.int64()))


def _split_by_part(batch: pa.Table) -> list[tuple[int, pa.Table]]:
    import pyarrow.compute as pc

    ids = batch.column(_PART_COLUMN)
    return [(int(i), batch.filter(pc.equal(ids, i))) for i in pc.unique(ids).to_pylist()]


def _restore(pieces: list[pa.Table], spec: PartSpec) -> pa.Table:
    """The part as the in-process path writes it: input columns with their read types, then the vectors."""
    import pyarrow as pa

    schema = read_part(spec).schema
    if not pieces:
        return pa.table({n: pa.array([], type=t) for n, t in zip(schema.names, schema.types, strict=True)})
    table = pa.concat_tables(pieces).drop_columns([_PART_COLUMN])
    vec_field = table.schema.field(table.schema.names[-1])
    return table.cast(pa.schema([*schema, vec_field]))


#: Options that change how fast the vectors come, not which (up to float rounding): a resume may change them.
_SPEED_ONLY = ("device", "batch_size", "max_batch_tokens", "engine")


def _run(args: argparse.Namespace) -> int:
    require_module("pyarrow", needed_by="promptembed embed writes Parquet with pyarrow", install="pip install pyarrow")
    from tqdm.auto import tqdm

    started = time.time()
    role: Literal["query", "document"] | None = None if args.prompt_name else (args.role or "document")
    job = TableJob(column=args.column, role=role, prompt_name=args.prompt_name,
                   title_column=args.title_column, output_column=args.output_column, id_column=args.id_column,
                   on_bad_row=args.on_bad_row)  # fmt: skip
    from promptembed._inputs import check_int

    check_int("--part-rows", args.part_rows, minimum=1)
    check_int("--batch-size", args.batch_size, minimum=1)
    if args.max_batch_tokens is not None:
        check_int("--max-batch-tokens", args.max_batch_tokens, minimum=1)
    check_int("--workers", args.workers, minimum=1)
    if not args.ray and (args.workers != 1 or args.gpus_per_worker or args.cpus_per_worker is not None):
        raise ConfigError("--workers, --gpus-per-worker and --cpus-per-worker need --ray (auto, ADDRESS or local)")
    if args.ray and args.device != "auto":
        raise ConfigError(
            f"--device {args.device} is the in-process device; with --ray each actor uses its own (a GPU with "
            "--gpus-per-worker, else its CPUs): leave --device out"
        )
    if args.prompt_name is not None and args.role is not None:
        raise ConfigError("--role and --prompt-name both choose the prompt; pass one of them")
    root = Path(args.input).resolve()
    files = find_inputs(root, exclude=Path(args.output).resolve())
    options = {"model": args.model, "device": args.device, "dtype": args.dtype, "truncate_dim": args.truncate_dim,
               "normalize": True, "prompts": None, "revision": args.revision, "batch_size": args.batch_size,
               "max_batch_tokens": args.max_batch_tokens, "engine": args.engine,
               "trust_remote_code": args.trust_remote_code, "allow_pickle": False}  # fmt: skip
    specs = plan_parts(files, job, args.part_rows, root=root if root.is_dir() else root.parent)
    job_info = {
        "inputs": [{"path": path_text(f), "bytes": f.stat().st_size, "mtime_ns": f.stat().st_mtime_ns} for f in files],
        "job": {k: getattr(job, k) for k in TableJob.__dataclass_fields__ if k != "group_column"},  # as before it
        "embedder": {k: v for k, v in options.items() if k not in _SPEED_ONLY},
        "part_rows": args.part_rows,
        # where each part starts and how many rows it has: a promptembed that cuts the same input another way (a
        # CSV's blank lines once counted as rows) must not resume this job, or rows between the old and new cuts
        # would be lost
        "plan": hashlib.sha256(json.dumps([[s.name, s.start, s.n_rows] for s in specs]).encode()).hexdigest()[:16],
    }
    if args.model is not None and Path(args.model).is_dir():  # new weights saved under the same path: another job
        job_info["model_weights_sha256"] = _weights_sha256(args.model)
    out = OutputFolder(Path(args.output).resolve())
    with contextlib.ExitStack() as keep:
        if root.is_relative_to(out.path):
            raise ConfigError(f"The input {root} lies inside --output {out.path}; choose an output folder elsewhere")
        if args.overwrite and not args.ray and out.path.is_dir() and any(out.path.iterdir()):
            # check the new run's model and prompt before the old output is deleted (an in-process run shares it;
            # with --ray the model is resolved where the actors run, so it is not loaded here)
            from promptembed.embedder import PromptEmbedder

            probe = keep.enter_context(PromptEmbedder(**{**options, "show_progress_bar": False}))
            if job.prompt_name is not None:
                probe.embed([], prompt_name=job.prompt_name)
        new_job, new_folder = not (out.path / JOB_FILE).is_file() or args.overwrite, not out.path.exists()
        done = out.prepare(job_info, overwrite=args.overwrite)
        todo = [s for s in specs if s.name not in done]
        total = sum(s.n_rows for s in specs)
        try:
            with tqdm(total=total, initial=total - sum(s.n_rows for s in todo), unit="row", desc="embedding") as bar:
                if args.ray:
                    info = _embed_on_ray(todo, out, job, options, args, bar)
                else:
                    info = _embed_in_process(todo, out, job, options, bar, job_info.get("model_weights_sha256"))
        except Exception:
            # failed before its first part (a wrong prompt name, a model that does not load): leave nothing, so the
            # corrected command does not meet an "unfinished job" of this one
            if new_job and not any(out.path.glob("part-*.parquet")):
                for written in [out.path / JOB_FILE, out.path / EMBEDDER_FILE, *out.path.glob(".*.tmp-*")]:
                    written.unlink(missing_ok=True)
                if new_folder:
                    with contextlib.suppress(OSError):
                        out.path.rmdir()
            raise
        out.unify_parts([s.name for s in specs], job.output_column, info["dimension"])
    skipped = [b.to_dict() for s in specs for b in s.bad]
    manifest = {
        "format": "promptembed-embeddings/1",
        **info,
        "precision": "float32",
        "normalize": True,
        "truncate_dim": args.truncate_dim,
        "vector_column": job.output_column,
        "vector_type": f"fixed_size_list<float32>[{info['dimension']}]",
        "rows": sum(s.n_good for s in specs),
        "input_rows": total,
        "skipped_rows": skipped,
        "parts": [spec_dict(s) for s in specs],
        "resumed_parts": sorted(done & {s.name for s in specs}),
        "engine": f"ray ({args.ray}, {args.workers} workers)" if args.ray else "in-process",
        "encode_engine": args.engine,
        "seconds": round(time.time() - started, 1),
    }
    out.write_json(MANIFEST_FILE, manifest)
    print(
        f"{manifest['rows']} rows embedded into {len(specs)} parts in {path_text(out.path)} "
        f"({MANIFEST_FILE}, {JOB_FILE}, {EMBEDDER_FILE})"
    )
    if skipped:
        shown = ", ".join(s["row"] for s in skipped[:20])
        print(f"skipped {len(skipped)} bad row(s): {shown}{' ...' if len(skipped) > 20 else ''} (see {MANIFEST_FILE})")
    return 0


def add_command(sub: Any) -> None:  # argparse's _SubParsersAction is private
    """Register ``embed`` on the ``promptembed`` parser."""
    p = sub.add_parser(
        "embed",
        help="embed a corpus (JSONL/Parquet/CSV) into Parquet parts with a manifest; resumable; --ray for a cluster",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="a .jsonl/.parquet/.csv file, or a folder of them")
    p.add_argument(
        "--output", "-o", required=True,
        help="folder for the Parquet parts, _job.json, _embedder.json and _manifest.json",
    )  # fmt: skip
    p.add_argument("--model", default=None, help="model folder or hub id (default: bundled all-MiniLM-L6-v2)")
    p.add_argument("--column", default="text", help="text column (default: text)")
    p.add_argument("--id-column", default=None, help="column that names rows in errors and skip reports")
    p.add_argument("--title-column", default=None, help="titles for a document prompt with a title slot")
    p.add_argument("--role", default=None, choices=["document", "query"], help="prompt role (default: document)")
    p.add_argument("--prompt-name", default=None, help="a named prompt of the model instead of a role (e.g. STS)")
    p.add_argument("--output-column", default="embedding", help="vector column name (default: embedding)")
    p.add_argument(
        "--on-bad-row",
        default="fail",
        choices=["fail", "skip"],
        help="a bad row (text not a string, a value of its column's rarer kind): fail the job (default), or skip "
        "it and report it",
    )
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16", "int8"],
                   help="weight dtype (default: auto = float32 on CPU, bfloat16 on CUDA)")  # fmt: skip
    p.add_argument("--truncate-dim", type=int, default=None, help="Matryoshka dimension to keep")
    p.add_argument(
        "--batch-size", type=int, default=32, help="texts per forward pass of sentence-transformers' loop (default: 32)"
    )
    p.add_argument(
        "--max-batch-tokens",
        type=int,
        default=None,
        help="token budget per forward pass of the engine (default: 2048 on CPU, 32768 on CUDA)",
    )
    p.add_argument(
        "--engine",
        default="auto",
        choices=["auto", "compile", "sentence-transformers"],
        help="encode loop: auto (token-budget batches, default), compile (the same with torch.compile: pays off "
        "for large models on a GPU, after a first batch that compiles for minutes), sentence-transformers",
    )
    p.add_argument("--part-rows", type=int, default=10_000, help="rows per output part (default: 10000)")
    p.add_argument("--device", default="auto", help="in-process device (default: auto)")
    p.add_argument("--revision", default=None, help="hub revision of the model")
    p.add_argument("--trust-remote-code", action="store_true", help="run code shipped with a hub model")
    p.add_argument("--overwrite", action="store_true", help="replace a finished (or different) job in --output")
    p.add_argument(
        "--ray",
        default=None,
        metavar="auto|ADDRESS|local",
        help="run on Ray: auto (the running cluster), ADDRESS (ray://host:10001), local (start one)",
    )
    p.add_argument("--workers", type=int, default=1, help="Ray actors, one model each (default: 1)")
    p.add_argument("--gpus-per-worker", type=float, default=0, help="GPUs per Ray actor (default: 0)")
    p.add_argument("--cpus-per-worker", type=float, default=None, help="CPUs per Ray actor (default: Ray's 1)")
    p.set_defaults(func=_run)
