"""Parameter: a trainable array and the gradient that backward passes accumulate into."""
from __future__ import annotations

from typing import Any

import numpy as np


class Parameter:
    """A trainable tensor: ``data`` and ``grad``, numpy arrays of one shape and dtype.

    ``grad`` starts at zeros. Layers' ``backward`` methods ADD into it (as torch's autograd
    does), so gradients of several backward passes sum until :meth:`zero_grad` clears them.
    Optimisers update ``data`` in place.
    """

    __slots__ = ("data", "grad", "version")

    def __init__(self, data: Any, dtype: Any = None) -> None:
        self.data: np.ndarray = np.array(data, dtype=dtype, copy=True)
        if self.data.dtype.kind != "f":
            raise TypeError(f"Parameter data must be floating point, got dtype {self.data.dtype}")
        self.grad: np.ndarray = np.zeros_like(self.data)
        # Bumped by optimisers and load_state_dict; layers that keep a packed copy of their
        # weights (the eval-mode single-step path) repack when it changes. They never lock or
        # otherwise touch ``data``: if you modify it in place yourself, call mark_changed().
        self.version = 0

    def mark_changed(self) -> None:
        """Record that ``data`` changed in place (invalidates packed copies of it)."""
        self.version += 1

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def accumulate(self, g: np.ndarray) -> None:
        """``grad += g``; a ``grad`` of None (``optimizer.zero_grad(set_to_none=True)``) starts
        again from zeros, as torch's autograd does."""
        if self.grad is None:
            self.grad = np.zeros_like(self.data)
        self.grad += g

    def writable_grad(self) -> np.ndarray:
        """``grad`` as an array that kernels may accumulate into in place (allocated if None)."""
        g = self.grad
        if g is not None:
            flags = g.flags         # one flags object: this runs per parameter per backward
            if flags.c_contiguous and flags.writeable and g.dtype == self.data.dtype \
                    and g.shape == self.data.shape:
                return g
        self.grad = np.zeros_like(self.data) if g is None else \
            np.ascontiguousarray(g, self.data.dtype).copy()
        return self.grad

    def zero_grad(self) -> None:
        """Set ``grad`` to zero in place (an optimiser may hold a reference to it); a ``grad`` of
        None (``optimizer.zero_grad(set_to_none=True)``) stays None."""
        if self.grad is not None:
            self.grad[...] = 0

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"
