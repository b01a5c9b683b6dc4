"""``precision=``: quantized output vectors, with sentence-transformers' meaning and its ``quantize_embeddings``.

``"float32"`` (default) returns the float vectors; ``"int8"`` / ``"uint8"`` map each dimension's range onto 256
buckets; ``"binary"`` / ``"ubinary"`` keep one bit per dimension, packed 8 to a byte. int8/uint8 need a range per
dimension: from ``quantization_ranges`` (shape ``(2, dim)``: minimums, then maximums, as Haystack takes them), or,
as ``SentenceTransformer.encode(precision=...)`` does, from the vectors of the call itself (which cannot work for a
single text, and gives different buckets per call: pass ranges computed from a representative sample).

The weight dtype is a different option, ``dtype=``; the old spellings of ``precision`` that named a weight dtype
(``"auto"``, ``"bfloat16"``, ``"float16"``) raise an error naming ``dtype=``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from promptembed.errors import ConfigError

__all__ = ["PRECISIONS", "Precision", "check_precision", "check_ranges", "empty", "quantize"]

Precision = Literal["float32", "int8", "uint8", "binary", "ubinary"]
PRECISIONS: tuple[str, ...] = ("float32", "int8", "uint8", "binary", "ubinary")
_WEIGHT_DTYPES = ("auto", "bfloat16", "float16", "fp16", "bf16")


def check_precision(precision: object, quantization_ranges: object) -> np.ndarray | None:
    """Validate ``precision`` and ``quantization_ranges``; return the ranges as a float32 ``(2, dim)`` array.

    Raises:
        ConfigError: An unknown precision (an old weight-dtype spelling names ``dtype=``), ranges with a precision
            that does not use them, or ranges of the wrong shape.
    """
    if precision in _WEIGHT_DTYPES:
        raise ConfigError(
            f"precision={precision!r} names a weight dtype, and that option is now dtype= (dtype={precision!r}). "
            f"precision= means the output vectors' quantization, as in sentence-transformers: one of "
            f"{list(PRECISIONS)}"
        )
    if precision not in PRECISIONS:
        raise ConfigError(
            f"Unknown precision {precision!r}; use one of {list(PRECISIONS)} (output quantization), "
            "or dtype= for the model's weight dtype"
        )
    if quantization_ranges is None:
        return None
    if precision not in ("int8", "uint8"):
        raise ConfigError(
            f"quantization_ranges apply to precision='int8' or 'uint8' only, not precision={precision!r}; "
            "drop quantization_ranges or change precision"
        )
    try:
        ranges = np.asarray(quantization_ranges, dtype=np.float32)
    except (TypeError, ValueError):
        ranges = np.empty(0, dtype=np.float32)
    if ranges.ndim != 2 or ranges.shape[0] != 2 or ranges.shape[1] == 0 or not np.isfinite(ranges).all():
        raise ConfigError(
            "quantization_ranges must be two rows of finite numbers, shape (2, dim): the minimum of each dimension "
            f"in the first row, the maximum in the second; got shape {getattr(ranges, 'shape', None)}"
        )
    return ranges


def check_ranges(ranges: np.ndarray | None, dimension: int) -> None:
    """Refuse ranges whose width is not the output dimension (after ``truncate_dim``)."""
    if ranges is not None and ranges.shape[1] != dimension:
        raise ConfigError(
            f"quantization_ranges have {ranges.shape[1]} columns but the vectors have {dimension} dimensions "
            "(after truncate_dim); compute the ranges from vectors of this model and dimension"
        )


def empty(precision: str, dimension: int) -> np.ndarray:
    """The ``(0, width)`` result of an empty call, in the precision's dtype and width."""
    if precision == "float32":
        return np.zeros((0, dimension), dtype=np.float32)
    dtype = np.int8 if precision in ("int8", "binary") else np.uint8
    width = (dimension + 7) // 8 if precision.endswith("binary") else dimension
    return np.zeros((0, width), dtype=dtype)


def quantize(vectors: np.ndarray, precision: str, ranges: np.ndarray | None) -> np.ndarray:
    """Quantize float32 ``vectors`` with sentence-transformers' ``quantize_embeddings``.

    Raises:
        ConfigError: int8/uint8 without ranges on a single vector (no range can be computed from one).
    """
    if precision == "float32":
        return vectors
    from sentence_transformers import quantize_embeddings

    if ranges is None and precision in ("int8", "uint8") and vectors.shape[0] < 2:
        raise ConfigError(
            f"precision={precision!r} without quantization_ranges computes each dimension's range from the vectors "
            "of the call, and one vector has no range; pass quantization_ranges (shape (2, dim)) computed from a "
            "representative sample of vectors (LangChain: in encode_kwargs / query_encode_kwargs)"
        )
    out: Any = quantize_embeddings(vectors, precision=precision, ranges=ranges)
    return np.asarray(out)


def ranges_as_list(ranges: np.ndarray | None) -> Sequence[Sequence[float]] | None:
    """``quantization_ranges`` back as a list of two lists of floats (for ``config()``)."""
    return None if ranges is None else ranges.tolist()
