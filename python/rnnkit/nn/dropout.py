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

    One module may be applied several times in one forward (reused in a model, as torch
    allows): each training-mode forward keeps its own mask on a stack, and each backward
    takes the most recent one, so backward calls in the reverse order of the forwards (as
    ``Sequential.backward`` and any reverse-mode chain make them) get the matching masks.
    A mask stays until a backward takes it; ``train()``/``eval()`` drop them all, and so does
    an eval-mode forward.
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
            # Nothing for a backward; masks of earlier training forwards are dropped, as a
            # mode change drops them (an eval forward keeps no cache, see the API).
            while self._calls.pop() is not None:    # this thread's stack only
                pass
            return arr
        if self.p == 0.0:
            self._calls.push((arr.shape, None))
            return arr.copy()
        if self.p >= 1.0:
            mask = np.zeros(arr.shape, arr.dtype)
        else:
            mask = (self._rng.random(arr.shape) >= self.p).astype(arr.dtype)
            mask *= arr.dtype.type(1.0 / (1.0 - self.p))
        self._calls.push((arr.shape, mask))
        return arr * mask

    def backward(self, dy: Any) -> np.ndarray:
        """``dy ⊙ m / (1 - p)`` with the mask of the most recent training forward that no
        backward has taken yet (see the class docstring for reuse)."""
        cache = self._calls.pop()
        if cache is None:
            raise _no_cache_error(self)
        shape, mask = cache
        dy_arr = np.asarray(dy)
        if dy_arr.shape != shape:
            self._calls.push(cache)    # a rejected argument consumes nothing
            raise ValueError(f"dy has shape {dy_arr.shape}, expected {shape} (the shape of y "
                             "of the latest forward not yet taken by a backward)")
        return dy_arr.copy() if mask is None else dy_arr * mask
