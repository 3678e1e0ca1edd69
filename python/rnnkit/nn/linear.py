"""Linear: an affine map on the last axis."""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .module import Module, _dtype, _no_cache_error, _positive_int
from .parameter import Parameter


class Linear(Module):
    """``y = x · Wᵀ + b`` on the last axis, as ``torch.nn.Linear``.

    Args:
        in_features: I; out_features: O; bias: add b (default True).
        dtype: "float32" (default) or "float64"; x is converted to it.
        seed: seeds torch's initialisation, W and b ~ U(-1/sqrt(I), 1/sqrt(I)) (what
            kaiming_uniform_(a=sqrt(5)) reduces to).

    Parameters: weight (O, I), bias (O,). Shapes: x (..., I) -> y (..., O).
    ``backward(dy)`` adds dW = Σ dyᵀ x and db = Σ dy into the gradients and returns
    dx = dy · W.
    """

    _takes_lengths = False

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 dtype: Any = "float32", seed: Optional[int] = None) -> None:
        super().__init__()
        self.in_features = _positive_int("in_features", in_features)
        self.out_features = _positive_int("out_features", out_features)
        self.dtype = _dtype(dtype)
        rng = np.random.default_rng(seed)
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight = Parameter(rng.uniform(-bound, bound, (self.out_features,
                                                            self.in_features)), self.dtype)
        if bias:
            self.bias = Parameter(rng.uniform(-bound, bound, (self.out_features,)), self.dtype)
        else:
            self.bias = None
        self._cache: Optional[np.ndarray] = None

    def _on_mode_change(self) -> None:
        self._cache = None

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, dtype={self.dtype.name}")

    def forward(self, x: Any) -> np.ndarray:
        arr = x if isinstance(x, np.ndarray) else np.asarray(x)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"x must be a numeric array, got dtype {arr.dtype}")
        if arr.ndim < 1 or arr.shape[-1] != self.in_features:
            raise ValueError(f"x has shape {arr.shape}, expected (..., {self.in_features}) "
                             f"(in_features on the last axis)")
        arr = np.ascontiguousarray(arr, self.dtype)
        y = arr @ self.weight.data.T
        if self.bias is not None:
            y += self.bias.data
        self._cache = arr if self.training else None
        return y

    def backward(self, dy: Any) -> np.ndarray:
        x = self._cache
        if x is None:
            raise _no_cache_error(self)
        shape = x.shape[:-1] + (self.out_features,)
        dy_arr = np.asarray(dy)
        if dy_arr.shape != shape:
            raise ValueError(f"dy has shape {dy_arr.shape}, expected {shape} (the shape of y)")
        self._cache = None
        dy2 = np.asarray(dy_arr, self.dtype).reshape(-1, self.out_features)
        self.weight.grad += dy2.T @ x.reshape(-1, self.in_features)
        if self.bias is not None:
            self.bias.grad += dy2.sum(axis=0)
        return (dy2 @ self.weight.data).reshape(x.shape)
