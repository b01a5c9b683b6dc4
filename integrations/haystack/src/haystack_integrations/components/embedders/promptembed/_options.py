"""What both components share: the stock embedders' parameters, the core embedder, serialization, async."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from haystack.utils import ComponentDevice, Secret, deserialize_secrets_inplace
from haystack.utils.hf import deserialize_hf_model_kwargs, serialize_hf_model_kwargs

from promptembed import ConfigError, PromptEmbedder
from promptembed.compat import (
    Side,
    build_embedder,
    check_engine_options,
    check_precision,
    encode_options,
    normalize_with_truncation,
)

__all__ = ["STOCK_DEFAULTS", "EmbedderBase", "default_token", "init_params_from_dict"]


def default_token() -> Secret:
    """The stock default token: the ``HF_API_TOKEN`` or ``HF_TOKEN`` environment variable, if set."""
    return Secret.from_env_var(["HF_API_TOKEN", "HF_TOKEN"], strict=False)


#: Parameters of sentence-transformers-haystack's embedders (in their order), written by ``to_dict`` always.
STOCK_PARAMETERS = (
    "model",
    "device",
    "token",
    "prefix",
    "suffix",
    "batch_size",
    "progress_bar",
    "normalize_embeddings",
    "trust_remote_code",
    "revision",
    "local_files_only",
    "truncate_dim",
    "model_kwargs",
    "tokenizer_kwargs",
    "config_kwargs",
    "precision",
    "encode_kwargs",
    "backend",
    "quantization_ranges",
)
#: promptembed's own parameters and their defaults: ``to_dict`` writes them only when they differ, so a component
#: with these defaults serializes to exactly the stock component's parameters (and the stock class can load it).
STOCK_DEFAULTS: dict[str, Any] = {
    "dtype": "auto",
    "prompts": None,
    "prompt_name": None,
    "allow_pickle": False,
    "cache_dir": None,
    "max_batch_tokens": None,
    "engine": "auto",
}
#: The parameters ``warm_up`` compares with those the component was set up with.
_SETTINGS = (*STOCK_PARAMETERS, *STOCK_DEFAULTS)
#: encode_kwargs keys that repeat one of the component's own parameters (the stock component passes both to its
#: backend and fails on them too) -> the parameter to use instead.
_OWN_PARAMETERS = {
    "batch_size": "batch_size",
    "show_progress_bar": "progress_bar",
    "normalize_embeddings": "normalize_embeddings",
    "precision": "precision",
    "quantization_ranges": "quantization_ranges",
}


class EmbedderBase:
    """Parameters, core embedder and serialization of :class:`PromptTextEmbedder` / :class:`PromptDocumentEmbedder`."""

    _role: str = "query"

    def _set_parameters(self, **params: Any) -> None:
        device = params.pop("device")
        if device is not None and not isinstance(device, ComponentDevice | str):
            raise TypeError(
                f"device must be a haystack ComponentDevice, a str such as 'cuda:0', or None; got {device!r}"
            )
        self.device = ComponentDevice.resolve_device(
            ComponentDevice.from_str(device) if isinstance(device, str) else device
        )
        if params["token"] is not None and not isinstance(params["token"], Secret):
            raise TypeError(
                "token must be a haystack Secret (Secret.from_env_var('HF_TOKEN') or Secret.from_token(...)) or None, "
                f"got {type(params['token']).__name__}"
            )
        if params["prompts"] is not None:
            params["prompts"] = dict(params["prompts"])
        for name, value in params.items():
            setattr(self, name, value)
        check_precision(self.precision, self.quantization_ranges if self.precision in ("int8", "uint8") else None)
        check_engine_options(self.max_batch_tokens, self.engine)  # when the pipeline is built, not at its first run
        self._enc = encode_options(self.encode_kwargs, where="encode_kwargs")
        repeated = [k for k in _OWN_PARAMETERS if k in (self.encode_kwargs or {})]
        if repeated:
            raise ConfigError(
                f"encode_kwargs {repeated} repeat parameters of the component; pass them as "
                f"{', '.join(f'{_OWN_PARAMETERS[k]}=' for k in repeated)} instead"
            )
        if self.prompt_name is not None:
            if self._enc.chooses_prompt:
                raise ConfigError(f"prompt_name={self.prompt_name!r} and a prompt in encode_kwargs both choose it")
            self._enc = dataclasses.replace(self._enc, prompt_name=self.prompt_name)
        self._side: Side | None = None
        self._settings = self._snapshot()

    def _snapshot(self) -> str:
        return repr([getattr(self, name) for name in _SETTINGS])

    def warm_up(self) -> None:
        """Load the model once (shared with every promptembed object on the same model).

        A parameter changed since (``emb.prefix = ...``, ``emb.encode_kwargs = ...``) is checked and applies from
        here on, as the stock components read their parameters at each run.
        """
        if self._snapshot() != self._settings:
            old = self._side
            self._set_parameters(**{name: getattr(self, name) for name in _SETTINGS})  # checks; clears the side
            if old is not None:
                old.embedder.close()
        if self._side is not None:
            return
        ranges = self.quantization_ranges if self.precision in ("int8", "uint8") else None
        tokenizer_kwargs = dict(self.tokenizer_kwargs or {})
        # encode_kwargs' truncate_dim overrides the parameter, as sentence-transformers' encode() does the model's
        truncate_dim = self._enc.truncate_dim if self._enc.truncate_dim is not None else self.truncate_dim
        embedder = build_embedder(
            dict(
                model=self.model,
                device=self.device.to_torch_str(),
                token=self.token.resolve_value() if self.token else None,
                trust_remote_code=self.trust_remote_code,
                revision=self.revision,
                local_files_only=self.local_files_only,
                truncate_dim=truncate_dim,
                model_kwargs=self.model_kwargs,
                tokenizer_kwargs=tokenizer_kwargs or None,
                config_kwargs=self.config_kwargs,
                backend=self.backend,
                max_seq_length=tokenizer_kwargs.get("model_max_length"),  # as the stock component sets it
                dtype=self.dtype,
                prompts=self.prompts,
                allow_pickle=self.allow_pickle,
                cache_dir=self.cache_dir,
                batch_size=self.batch_size,
                max_batch_tokens=self.max_batch_tokens,
                engine=self.engine,
                show_progress_bar=self.progress_bar,
                normalize=normalize_with_truncation(self.normalize_embeddings, truncate_dim),
                precision=self.precision,
                quantization_ranges=ranges,
                forward_kwargs=self._enc.forward_kwargs or None,
            ),
            where="encode_kwargs",
            not_in_where=_OWN_PARAMETERS,
        )
        try:
            self._side = Side(embedder, role=self._role, enc=self._enc, plain=bool(self.prefix))  # type: ignore[arg-type]
        except BaseException:
            embedder.close()
            raise

    @property
    def embedder(self) -> PromptEmbedder:
        """The underlying :class:`promptembed.PromptEmbedder` (loads the model if needed)."""
        return self._warm_side().embedder

    def _warm_side(self) -> Side:
        self.warm_up()
        if self._side is None:  # pragma: no cover - warm_up sets it or raises
            raise RuntimeError("model not loaded")
        return self._side

    def close(self) -> None:
        """Release the shared model; a later ``run`` loads it again."""
        if self._side is not None:
            self._side.embedder.close()
            self._side = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle and copy the parameters only: a copy loads (or shares) the model at its first run."""
        return {**self.__dict__, "_side": None}

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> EmbedderBase:
        new = type(self).__new__(type(self))
        new.__dict__.update(copy.deepcopy(self.__getstate__(), memo))
        return new

    def _init_parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {name: getattr(self, name) for name in STOCK_PARAMETERS}
        params["device"] = self.device.to_dict()
        params["token"] = self.token.to_dict() if self.token else None  # a token-based Secret refuses: never written
        if params["model_kwargs"] is not None:
            params["model_kwargs"] = copy.deepcopy(params["model_kwargs"])
            serialize_hf_model_kwargs(params["model_kwargs"])
        for name, default in STOCK_DEFAULTS.items():
            if getattr(self, name) != default:
                params[name] = getattr(self, name)
        return params


def init_params_from_dict(data: dict[str, Any]) -> dict[str, Any]:
    """Turn serialized ``device``, ``token`` and ``model_kwargs`` back into objects, in place; returns ``data``."""
    params = data.get("init_parameters", {})
    if isinstance(params.get("device"), dict):
        params["device"] = ComponentDevice.from_dict(params["device"])
    deserialize_secrets_inplace(params, keys=["token"])
    if params.get("model_kwargs") is not None:
        deserialize_hf_model_kwargs(params["model_kwargs"])
    return data
