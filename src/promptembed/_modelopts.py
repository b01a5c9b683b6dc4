"""The options that reach the model when it loads, checked and turned into part of the shared-model identity.

``model_kwargs`` / ``tokenizer_kwargs`` / ``config_kwargs`` (the Hugging Face ``from_pretrained`` keyword arguments,
as in ``SentenceTransformer(model_kwargs=..., processor_kwargs=..., config_kwargs=...)``), ``token``,
``local_files_only``, ``backend``, ``cache_folder`` and ``max_seq_length`` all change which model object a process
holds, so each is a field of :class:`promptembed._registry.ModelKey`. The token never enters the key in plain text:
the key holds a keyed hash of it (the key is random per process), enough to tell two tokens apart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from promptembed.errors import ConfigError

__all__ = ["BACKENDS", "ModelOptions", "dtype_from_kwargs"]

BACKENDS: tuple[str, ...] = ("torch", "onnx", "openvino")
_TOKEN_KEYS = ("token", "use_auth_token")
_DTYPE_KEYS = ("dtype", "torch_dtype")
_DTYPE_NAMES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16", "auto": "auto"}
#: Per-process secret for the token's identity hash: the hash tells tokens apart, it cannot be looked up elsewhere.
_TOKEN_SALT = secrets.token_bytes(32)


def _canonical(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def token_identity(token: str | bool | None) -> str | None:
    """A keyed hash standing for ``token`` in identities and reprs (``None``/``True``/``False`` kept as is)."""
    if token is None or isinstance(token, bool):
        return None if token is None else str(token)
    digest = hmac.new(_TOKEN_SALT, token.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"sha256-hmac:{digest[:16]}"


def dtype_from_kwargs(model_kwargs: Mapping[str, Any]) -> str | None:
    """The weight dtype asked for through ``model_kwargs`` (``dtype`` / ``torch_dtype``), as a dtype name.

    Raises:
        ConfigError: Both keys with different values, or a dtype promptembed does not load.
    """
    found = {k: model_kwargs[k] for k in _DTYPE_KEYS if model_kwargs.get(k) is not None}
    names = {k: _dtype_name(k, v) for k, v in found.items()}
    if len(set(names.values())) > 1:
        raise ConfigError(f"model_kwargs gives two different dtypes {found}; keep one of 'dtype' or 'torch_dtype'")
    return next(iter(names.values()), None)


def _dtype_name(key: str, value: object) -> str:
    text = str(value).removeprefix("torch.")
    if text in _DTYPE_NAMES:
        return _DTYPE_NAMES[text]
    raise ConfigError(
        f"model_kwargs[{key!r}]={value!r} is not a weight dtype promptembed loads; use one of "
        "'float32', 'bfloat16', 'float16', 'auto' (or the torch dtypes), or pass dtype= to promptembed"
    )


@dataclass(frozen=True)
class ModelOptions:
    """The load-time options after checking; ``identity()`` gives the hashable, token-free form for the key."""

    model_kwargs: dict[str, Any] = field(default_factory=dict)
    tokenizer_kwargs: dict[str, Any] = field(default_factory=dict)
    config_kwargs: dict[str, Any] = field(default_factory=dict)
    token: str | bool | None = field(default=None, repr=False)
    local_files_only: bool = False
    backend: Literal["torch", "onnx", "openvino"] = "torch"
    cache_folder: str | None = None
    max_seq_length: int | None = None

    @classmethod
    def build(
        cls,
        *,
        model_kwargs: Mapping[str, Any] | None,
        tokenizer_kwargs: Mapping[str, Any] | None,
        config_kwargs: Mapping[str, Any] | None,
        token: str | bool | None,
        local_files_only: bool,
        backend: str,
        cache_folder: str | None,
        max_seq_length: int | None,
    ) -> ModelOptions:
        """Check the options; a token inside one of the ``*_kwargs`` moves to ``token`` (so it never enters a key).

        The weight dtype inside ``model_kwargs`` (``dtype``/``torch_dtype``) is removed here: the caller reads it
        first with :func:`dtype_from_kwargs` and passes it on as promptembed's ``dtype``.

        Raises:
            ConfigError: A wrong type, an unknown backend, or two different tokens.
        """
        dicts: dict[str, dict[str, Any]] = {}
        for name, value in (
            ("model_kwargs", model_kwargs),
            ("tokenizer_kwargs", tokenizer_kwargs),
            ("config_kwargs", config_kwargs),
        ):
            if value is not None and not isinstance(value, Mapping):
                raise ConfigError(f"{name} must be a dict of keyword arguments or None, got {value!r}")
            dicts[name] = {str(k): v for k, v in (value or {}).items()}
        if token is not None and not isinstance(token, str | bool):
            raise ConfigError(f"token must be a str, True/False or None, got {type(token).__name__}")
        for name, kwargs in dicts.items():
            for key in _TOKEN_KEYS:
                if key in kwargs:
                    inner = kwargs.pop(key)
                    if token is not None and inner is not None and inner != token:
                        raise ConfigError(f"{name}[{key!r}] and token= give two different tokens; pass token= only")
                    token = inner if token is None else token
        for key in _DTYPE_KEYS:
            dicts["model_kwargs"].pop(key, None)
        if dicts["model_kwargs"].get("use_safetensors") is False:
            raise ConfigError(
                "model_kwargs={'use_safetensors': False} asks for pickle weights; pass allow_pickle=True instead "
                "(promptembed loads safetensors only unless you opt in)"
            )
        dicts["model_kwargs"].pop("use_safetensors", None)
        if not isinstance(local_files_only, bool):
            raise ConfigError(f"local_files_only must be True or False, got {local_files_only!r}")
        if backend not in BACKENDS:
            raise ConfigError(f"Unknown backend {backend!r}; use one of {list(BACKENDS)}")
        if cache_folder is not None and not isinstance(cache_folder, str):
            cache_folder = str(cache_folder)
        if max_seq_length is not None and (
            isinstance(max_seq_length, bool) or not isinstance(max_seq_length, int) or max_seq_length < 1
        ):
            raise ConfigError(f"max_seq_length must be an int >= 1 or None, got {max_seq_length!r}")
        return cls(
            model_kwargs=dicts["model_kwargs"],
            tokenizer_kwargs=dicts["tokenizer_kwargs"],
            config_kwargs=dicts["config_kwargs"],
            token=token,
            local_files_only=local_files_only,
            backend=backend,  # type: ignore[arg-type]
            cache_folder=cache_folder,
            max_seq_length=max_seq_length,
        )

    def identity(self) -> dict[str, Any]:
        """The fields of :class:`~promptembed._registry.ModelKey` these options decide (hashable, no token)."""
        return {
            "model_kwargs": _canonical(self.model_kwargs),
            "tokenizer_kwargs": _canonical(self.tokenizer_kwargs),
            "config_kwargs": _canonical(self.config_kwargs),
            "token": token_identity(self.token),
            "local_files_only": self.local_files_only,
            "backend": self.backend,
            "cache_folder": self.cache_folder,
            "max_seq_length": self.max_seq_length,
        }
