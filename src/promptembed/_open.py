"""Opening the shared model for a :class:`~promptembed.PromptEmbedder`: options in, a registry entry out."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from promptembed import _loading, _registry
from promptembed._inputs import device_list
from promptembed._modelopts import ModelOptions
from promptembed.errors import ConfigError

__all__ = ["Opened", "open_model"]

logger = logging.getLogger("promptembed")


@dataclass
class Opened:
    """What opening a model decided: the shared entry, where it came from, and the device pool to start."""

    entry: _registry.LoadedModel
    source: str
    is_local: bool
    model_type: str | None
    dtype: str
    pool_devices: list[str] | None
    cache_variant: str


def open_model(
    *,
    model: str | Path | None,
    device: str | Sequence[str],
    dtype: str,
    revision: str | None,
    trust_remote_code: bool,
    allow_pickle: bool,
    options: ModelOptions,
    model_kwargs_dtype: str | None,
) -> Opened:
    """Resolve the model's identity and acquire it from the registry (loading it on first use).

    ``dtype`` is the ``dtype=`` option; ``model_kwargs_dtype`` the one given inside ``model_kwargs``, if any.

    Raises:
        ConfigError: Two different dtypes, an unusable device or dtype, int8 with a device pool.
        ModelLoadError: The model cannot be found or loaded.
    """
    if model_kwargs_dtype is not None and model_kwargs_dtype != "auto" and dtype not in ("auto", model_kwargs_dtype):
        raise ConfigError(
            f"dtype={dtype!r} and model_kwargs dtype {model_kwargs_dtype!r} disagree; pass only one of them"
        )
    if dtype == "auto" and model_kwargs_dtype is not None:
        dtype = model_kwargs_dtype
    source, is_local = _loading.resolve_source(model)
    if is_local:
        _loading.check_weights_safe(source, allow_pickle=allow_pickle)
    devices = device_list(device)
    pool_devices = [_loading.pick_device(d) for d in devices] if len(devices) > 1 else None
    resolved_device = pool_devices[0] if pool_devices else _loading.pick_device(devices[0])
    model_type = _loading.read_model_type(
        source, is_local, trust_remote_code=trust_remote_code, revision=revision, options=options
    )
    if dtype == "auto" and model_kwargs_dtype == "auto" and options.backend == "torch":
        # Hugging Face's dtype="auto", asked for explicitly: the dtype the checkpoint was saved in, as
        # sentence-transformers loads it (promptembed's own "auto" is the device's safe dtype instead)
        saved = _loading.checkpoint_dtype(
            source, is_local, trust_remote_code=trust_remote_code, revision=revision, options=options
        )
        if saved == "float16" and model_type in _loading.FP16_UNSAFE_MODEL_TYPES:
            logger.warning(
                "%s was saved in float16, which overflows in a %s model: model_kwargs dtype 'auto' loads it in "
                "promptembed's safe dtype for the device instead (float32 on a CPU, bfloat16 on most GPUs)",
                source,
                model_type,
            )
        else:
            dtype = saved
    resolved_dtype = _loading.resolve_dtype(dtype, resolved_device, model_type, options.backend)
    if pool_devices is not None and resolved_dtype == "int8":
        raise ConfigError(
            "dtype='int8' runs in this process only (quantized weights cannot be sent to pool workers); "
            "pass a single device='cpu', or use dtype='float32' with a list of devices"
        )
    identity = options.identity()
    if is_local:  # where hub downloads go, and whether to download, cannot change a local folder's model
        identity.update(cache_folder=None, local_files_only=False, folder_stamp=_loading.folder_stamp(source))
    key = _registry.ModelKey(
        source=source,
        revision=revision,
        device=resolved_device,
        dtype=resolved_dtype,
        trust_remote_code=trust_remote_code,
        **identity,
    )
    entry = _registry.acquire(
        key,
        load=lambda: _loading.load_model(key, is_local=is_local, allow_pickle=allow_pickle, options=options),
        model_type=model_type,
    )
    return Opened(
        entry=entry,
        source=source,
        is_local=is_local,
        model_type=model_type,
        dtype=dtype,
        pool_devices=pool_devices,
        cache_variant=_cache_variant(key),
    )


def _cache_variant(key: _registry.ModelKey) -> str:
    """The vector cache's model variant: the weight dtype, plus the load options that change vectors, if any."""
    changed = {
        name: getattr(key, name)
        for name, default in (
            ("model_kwargs", "{}"),
            ("tokenizer_kwargs", "{}"),
            ("config_kwargs", "{}"),
            ("backend", "torch"),
            ("max_seq_length", None),
        )
        if getattr(key, name) != default
    }
    return key.dtype if not changed else f"{key.dtype}|{json.dumps(changed, sort_keys=True)}"
