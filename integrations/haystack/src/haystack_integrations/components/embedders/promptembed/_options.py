"""Settings shared by both components: device translation, building the core embedder, serialization."""

from __future__ import annotations

from typing import Any

from haystack.utils import ComponentDevice

from promptembed import PromptEmbedder

__all__ = ["EmbedderOptions"]


class EmbedderOptions:
    """The core options of a component, kept as given so ``to_dict`` is lossless."""

    def __init__(
        self,
        *,
        model: str | None,
        device: ComponentDevice | str | None,
        dtype: str,
        truncate_dim: int | None,
        normalize: bool,
        batch_size: int,
        prompts: dict[str, str] | None,
        prompt_name: str | None,
        trust_remote_code: bool,
        progress_bar: bool,
        allow_pickle: bool = False,
        cache_dir: str | None = None,
    ) -> None:
        if device is not None and not isinstance(device, ComponentDevice | str):
            raise TypeError(
                f"device must be a haystack ComponentDevice, a str such as 'cuda:0', or None; got {device!r}"
            )
        self.model = model
        self.device = device
        self.dtype = dtype
        self.truncate_dim = truncate_dim
        self.normalize = normalize
        self.batch_size = batch_size
        self.prompts = dict(prompts) if prompts is not None else None
        self.prompt_name = prompt_name
        self.trust_remote_code = trust_remote_code
        self.progress_bar = progress_bar
        self.allow_pickle = allow_pickle
        self.cache_dir = cache_dir

    def core_device(self) -> str:
        """The core's device string: ``"auto"`` for None (cuda, then mps, then cpu)."""
        if self.device is None:
            return "auto"
        if isinstance(self.device, ComponentDevice):
            return self.device.to_torch_str()
        return self.device

    def build(self) -> PromptEmbedder:
        """Create (or share) the core embedder; validates every option and the prompt name."""
        embedder = PromptEmbedder(
            model=self.model,
            device=self.core_device(),
            dtype=self.dtype,  # type: ignore[arg-type]
            truncate_dim=self.truncate_dim,
            normalize=self.normalize,
            batch_size=self.batch_size,
            prompts=self.prompts,
            trust_remote_code=self.trust_remote_code,
            show_progress_bar=self.progress_bar,
            allow_pickle=self.allow_pickle,
            cache_dir=self.cache_dir,
        )
        if self.prompt_name is not None:
            try:
                embedder.embed([], prompt_name=self.prompt_name)
            except Exception:
                embedder.close()
                raise
        return embedder

    def to_init_parameters(self) -> dict[str, Any]:
        """Init parameters for ``default_to_dict``."""
        device: Any = self.device.to_dict() if isinstance(self.device, ComponentDevice) else self.device
        return {
            "model": self.model,
            "device": device,
            "dtype": self.dtype,
            "truncate_dim": self.truncate_dim,
            "normalize": self.normalize,
            "batch_size": self.batch_size,
            "prompts": dict(self.prompts) if self.prompts is not None else None,
            "prompt_name": self.prompt_name,
            "trust_remote_code": self.trust_remote_code,
            "progress_bar": self.progress_bar,
            "allow_pickle": self.allow_pickle,
            "cache_dir": self.cache_dir,
        }


def device_from_dict(init_parameters: dict[str, Any]) -> None:
    """Turn a serialized ``ComponentDevice`` back into one, in place."""
    device = init_parameters.get("device")
    if isinstance(device, dict):
        init_parameters["device"] = ComponentDevice.from_dict(device)
