"""Linear: an affine map on the last axis."""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from ..ops.linear import linear_backward, linear_forward, quantized_linear
from ._calls import CallState
from .module import Module, _dtype, _no_cache_error, _positive_int
from .parameter import Parameter, checked_data, values_key


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
    _config_args = ("in_features", "out_features", "bias", "dtype")

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
        self._calls = CallState()

    def _on_mode_change(self) -> None:
        self._calls.clear()

    def _data(self) -> list:
        """[weight, bias or None], checked by name (checked_data), C-contiguous."""
        return [None if a is None else np.ascontiguousarray(a) for a in
                checked_data(self._parameters, (("weight", (self.out_features, self.in_features)),
                                                ("bias", (self.out_features,))), self.dtype)]

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
        rows = arr.reshape(-1, self.in_features)
        if self.quantized:
            self._inference_only()
            return self._packed_quantized().forward(rows).reshape(arr.shape[:-1] +
                                                                  (self.out_features,))
        # rnnkit's own GEMM rather than numpy's matmul: faster here, deterministic, and on the
        # same threads as the recurrent kernels (see cpp/layers/linear.h).
        w, b = self._data()
        with self._calls.lock:
            y = linear_forward(rows, w, b)
            self._calls.put(arr if self.training else None)
        return y.reshape(arr.shape[:-1] + (self.out_features,))

    _quantizable = ("weight",)

    def _packed_quantized(self) -> Any:
        """The weights packed as int8 or bfloat16 (ops.linear.quantized_linear), repacked when
        a parameter changes."""
        params = [p for p in (self.weight, self.bias) if p is not None]
        key = (self.quantized,) + values_key(params)
        packed = getattr(self, "_quantized_packed", None)
        if packed is None or packed[0] != key:
            w, b = self._data()
            packed = (key, quantized_linear(w, b, self.quantized))
            object.__setattr__(self, "_quantized_packed", packed)
        return packed[1]

    def backward(self, dy: Any) -> np.ndarray:
        with self._calls.lock:
            x = self._calls.take()
            if x is None:
                raise _no_cache_error(self)
            shape = x.shape[:-1] + (self.out_features,)
            dy_arr = np.asarray(dy)
            if dy_arr.shape != shape:
                self._calls.put(x)    # a rejected argument consumes nothing
                raise ValueError(f"dy has shape {dy_arr.shape}, expected {shape} (the shape "
                                 "of y)")
            dy2 = np.ascontiguousarray(dy_arr, self.dtype).reshape(-1, self.out_features)
            w = self._data()[0]
            # A frozen weight gets scratch from writable_grad (the kernel computes dW with dx);
            # a frozen bias is simply not asked for.
            bias = self.bias
            db = None if bias is None or not bias.requires_grad else bias.writable_grad()
            dx = linear_backward(dy2, x.reshape(-1, self.in_features), w,
                                 self.weight.writable_grad(), db, True)
        return dx.reshape(x.shape)
