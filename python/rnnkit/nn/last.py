"""Last: each sequence's last valid step, for many-to-one models."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..ops import _validate
from ._calls import CallState
from .module import Module, _lengths_arg, _no_cache_error


class Last(Module):
    """``y[b] = x[lengths[b] - 1, b]``: the output at each sequence's last valid step.

    Args:
        batch_first: x is (B, T, F) instead of (T, B, F) (match the recurrent layer before).

    Shapes: x (T, B, F) (or (B, T, F)) -> y (B, F); lengths (B,) ints in [0, T] or None
    (= T for all). A length-0 sequence has no valid step and gives zeros. ``backward(dy)``
    scatters dy (B, F) back to those steps (zeros elsewhere). Note: for a bidirectional
    layer the reverse half of the last step has seen one step only; use its ``h_n`` for a
    summary of the whole sequence in both directions.
    """

    _takes_lengths = True
    _returns_state = False

    _config_args = ("batch_first",)

    def __init__(self, batch_first: bool = False) -> None:
        super().__init__()
        self.batch_first = bool(batch_first)
        self._calls = CallState()

    def _on_mode_change(self) -> None:
        self._calls.clear()

    def extra_repr(self) -> str:
        return "batch_first=True" if self.batch_first else ""

    def forward(self, x: Any, lengths: Any = None) -> np.ndarray:
        arr = x if isinstance(x, np.ndarray) else np.asarray(x)
        if arr.ndim != 3:
            raise ValueError(f"x must be 3-D {'(B, T, F)' if self.batch_first else '(T, B, F)'}"
                             f", got shape {arr.shape}")
        xt = arr.swapaxes(0, 1) if self.batch_first else arr
        t, b = xt.shape[:2]
        steps = _validate.lengths_array(_lengths_arg(lengths), b, t)
        if steps is None:
            steps = np.full(b, t, dtype=np.int64)
        valid = steps > 0
        rows = np.arange(b)
        y = np.zeros((b,) + xt.shape[2:], xt.dtype)
        y[valid] = xt[steps[valid] - 1, rows[valid]]
        self._calls.put((arr.shape, arr.dtype, steps) if self.training else None)
        return y

    def backward(self, dy: Any) -> np.ndarray:
        cache = self._calls.take()
        if cache is None:
            raise _no_cache_error(self)
        shape, dtype, steps = cache
        tb_shape = (shape[1], shape[0]) + shape[2:] if self.batch_first else shape
        b = tb_shape[1]
        dy_arr = np.asarray(dy)
        if dy_arr.shape != (b,) + tb_shape[2:]:
            self._calls.put(cache)    # a rejected argument consumes nothing
            raise ValueError(f"dy has shape {dy_arr.shape}, expected {(b,) + tb_shape[2:]} "
                             "(the shape of y)")
        dxt = np.zeros(tb_shape, dtype)
        valid = steps > 0
        dxt[steps[valid] - 1, np.arange(b)[valid]] = dy_arr[valid]
        return np.ascontiguousarray(dxt.swapaxes(0, 1)) if self.batch_first else dxt
