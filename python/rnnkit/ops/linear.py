"""Functional affine map on rows, on rnnkit's own GEMM (see cpp/layers/linear.h for why)."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import _core


def linear_forward(x: np.ndarray, weight: np.ndarray, bias: Optional[np.ndarray]) -> np.ndarray:
    """``y (M, O) = x (M, I) · weightᵀ (O, I) + bias (O,)``; bias may be None.

    Arrays must be C-contiguous and of one dtype (float32 or float64); every shape is checked
    by the compiled kernel, which names the argument on a mismatch.
    """
    return _core.linear_forward(x, weight, bias)


def linear_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray, dw: np.ndarray,
                    db: Optional[np.ndarray], want_dx: bool = True) -> Optional[np.ndarray]:
    """Adds ``dyᵀ · x`` into ``dw`` (O, I) and ``Σ_rows dy`` into ``db`` (O,) in place, and
    returns ``dx = dy · weight`` (M, I), or None without ``want_dx``."""
    return _core.linear_backward(dy, x, weight, dw, db, want_dx)


def quantized_linear(weight: np.ndarray, bias: Optional[np.ndarray], kind: str = "int8") -> Any:
    """``weight`` (O, I) float32 stored as ``kind`` ("int8": quantized per output row;
    "bfloat16": rounded) and packed once, with ``bias`` (O,) or None: an object whose
    ``forward(x (M, I))`` returns x·weightᵀ + bias in float32, x quantized (int8, per row) or
    rounded (bfloat16) at each call (cpp/kernels/int8_driver.inl, bf16_driver.inl)."""
    return _core.QuantizedLinear(weight, bias, kind)
