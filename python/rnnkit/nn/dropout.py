"""Dropout: inverted dropout, active in training mode only."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._calls import CallState
from .module import Module, _no_cache_error, _probability


class Dropout(Module):
    """Zero each element with probability p and scale the rest by 1/(1-p) (training only).

    As ``torch.nn.Dropout``: ``y = x ⊙ m / (1 - p)`` with m ~ Bernoulli(1 - p) drawn from
    ``np.random.default_rng(seed)``; in ``eval()`` mode ``y = x``. p = 1 zeroes everything.
    The output keeps x's floating dtype (other inputs become float64).
    ``backward(dy)`` returns ``dy ⊙ m / (1 - p)``.
    """

    _takes_lengths = False
    _config_args = ("p",)

    def __init__(self, p: float = 0.5, *, seed: Optional[int] = None) -> None:
        super().__init__()
        self.p = _probability("p", p)
        self._rng = np.random.default_rng(seed)
        self._calls = CallState()

    def _on_mode_change(self) -> None:
        self._calls.clear()

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: Any) -> np.ndarray:
        arr = x if isinstance(x, np.ndarray) else np.asarray(x)
        if arr.dtype.kind != "f":
            arr = arr.astype(np.float64)
        if not self.training:
            self._calls.put(None)
            return arr
        if self.p == 0.0:
            self._calls.put((arr.shape, None))
            return arr.copy()
        if self.p >= 1.0:
            mask = np.zeros(arr.shape, arr.dtype)
        else:
            mask = (self._rng.random(arr.shape) >= self.p).astype(arr.dtype)
            mask *= arr.dtype.type(1.0 / (1.0 - self.p))
        self._calls.put((arr.shape, mask))
        return arr * mask

    def backward(self, dy: Any) -> np.ndarray:
        cache = self._calls.take()
        if cache is None:
            raise _no_cache_error(self)
        shape, mask = cache
        dy_arr = np.asarray(dy)
        if dy_arr.shape != shape:
            self._calls.put(cache)    # a rejected argument consumes nothing
            raise ValueError(f"dy has shape {dy_arr.shape}, expected {shape} (the shape of y)")
        return dy_arr.copy() if mask is None else dy_arr * mask
