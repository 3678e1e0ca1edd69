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

    __slots__ = ("data", "grad")

    def __init__(self, data: Any, dtype: Any = None) -> None:
        self.data: np.ndarray = np.array(data, dtype=dtype, copy=True)
        if self.data.dtype.kind != "f":
            raise TypeError(f"Parameter data must be floating point, got dtype {self.data.dtype}")
        self.grad: np.ndarray = np.zeros_like(self.data)

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def zero_grad(self) -> None:
        """Set ``grad`` to zero in place (an optimiser may hold a reference to it)."""
        self.grad[...] = 0

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"
