"""``dtype="int8"``: the CPU fast path, dynamic int8 quantization of a model's ``nn.Linear`` layers.

Weights are stored as int8 (one scale per output channel); activations are quantized per batch at run time,
by torch's built-in ``quantize_dynamic`` (fbgemm/oneDNN kernels on x86, QNNPACK on ARM). A Linear layer whose
inputs carry outlier features (a few channels far larger than the rest, typical of a transformer's first
feed-forward output layers) loses too much precision when its activations share one int8 scale, so such
layers stay float32: each layer's input is measured on a few built-in calibration sentences, and a layer whose
largest |x| exceeds :data:`OUTLIER_RATIO` times its mean |x| is kept. On all-MiniLM-L6-v2 this keeps 3 of its
37 Linear layers (the feed-forward outputs of layers 0-2) and ran at 1.9x float32's speed on 2 CPU cores
with nDCG@10 within 0.2% (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import hashlib
import warnings
from typing import TYPE_CHECKING, Any

from promptembed.errors import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

#: A Linear layer stays float32 when max|input| > OUTLIER_RATIO * mean|input| on the calibration sentences.
OUTLIER_RATIO = 100.0
#: Version of the rule above; part of the vector cache's model identity, so a changed rule never reuses vectors.
RULE = f"int8-dynamic-per-channel-v1-outlier{OUTLIER_RATIO:g}"

# Short, varied sentences (questions, instructions, prose, code, numbers, other languages) written for this
# module; they only locate outlier channels, which are a property of the weights, not of the domain.
CALIBRATION: tuple[str, ...] = (
    "How do I reset my password if I no longer have access to my email?",
    "The contract may be terminated by either party with thirty days' written notice.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Apply firm pressure to the wound and keep the injured limb raised above the heart.",
    "def mean(xs): return sum(xs) / len(xs)",
    "Quarterly revenue rose 12% to $4.3 billion, driven by cloud services.",
    "What time does the museum open on Sundays and public holidays?",
    "Der Zug nach Berlin fährt um 14:35 Uhr von Gleis 7 ab.",
    "La réunion est reportée à jeudi prochain en raison de la grève.",
    "Replace the filter every six months or sooner if the airflow drops.",
    "title: none | text: Matryoshka embeddings can be truncated to smaller dimensions.",
    "task: search result | query: side effects of ibuprofen",
)


def _quantize_dynamic() -> tuple[Any, Any]:
    import torch

    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError as exc:  # pragma: no cover - a future torch without torch.ao.quantization
        raise ConfigError(
            f"dtype='int8' uses torch.ao.quantization.quantize_dynamic, which torch {torch.__version__} does "
            "not provide; use dtype='float32' (or 'bfloat16' on CPUs with avx512_bf16/AMX)"
        ) from exc
    return quantize_dynamic, per_channel_dynamic_qconfig


def outlier_ratios(model: SentenceTransformer) -> dict[str, float]:
    """max|x| / mean|x| of each ``nn.Linear`` layer's input over :data:`CALIBRATION` (one sentence per pass)."""
    import torch

    stats: dict[str, list[float]] = {}
    handles = []

    def hook(name: str):  # type: ignore[no-untyped-def]
        def record(_module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], _output: object) -> None:
            x = inputs[0].detach().float().abs()
            acc = stats.setdefault(name, [0.0, 0.0, 0.0])  # max, sum, count
            acc[0] = max(acc[0], float(x.max()))
            acc[1] += float(x.sum())
            acc[2] += x.numel()

        return record

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            handles.append(module.register_forward_hook(hook(name)))
    try:
        # batch_size=1: no padding tokens in the statistics.
        model.encode(list(CALIBRATION), batch_size=1, show_progress_bar=False, convert_to_numpy=True)
    finally:
        for handle in handles:
            handle.remove()
    return {name: (mx / (total / count) if total > 0 else 0.0) for name, (mx, total, count) in stats.items()}


def quantize(
    model: SentenceTransformer, weights_fingerprint: str, *, outlier_ratio: float | None = None
) -> tuple[list[str], str]:
    """Quantize ``model`` in place; return (names of the Linear layers kept float32, the int8 model's identity).

    ``outlier_ratio`` overrides :data:`OUTLIER_RATIO` (``float("inf")`` quantizes every Linear layer; the
    benchmark uses it to show what keeping the outlier layers buys).

    Raises:
        ConfigError: This torch has no dynamic quantization, or the model has no Linear layer to quantize.
    """
    import torch

    quantize_dynamic, qconfig = _quantize_dynamic()
    ratios = outlier_ratios(model)
    limit = OUTLIER_RATIO if outlier_ratio is None else outlier_ratio
    kept = sorted(name for name, ratio in ratios.items() if ratio > limit)
    spec = {name: qconfig for name in ratios if name not in kept}
    if not spec:
        raise ConfigError("dtype='int8' found no Linear layer it can quantize in this model; use dtype='float32'")
    with warnings.catch_warnings():
        # torch marks torch.ao.quantization deprecated in favour of torchao, whose CPU int8 path needs
        # torch.compile to be fast; the eager kernels used here are the ones that run fast today.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        warnings.filterwarnings("ignore", message=".*quantize_per_channel.*")
        quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)
    identity = hashlib.sha256(f"{weights_fingerprint}|{RULE}|{limit:g}|{','.join(kept)}".encode()).hexdigest()
    return kept, identity
