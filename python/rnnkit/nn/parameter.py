"""Parameter: a trainable array and the gradient that backward passes accumulate into."""
from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, Tuple

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


def checked_data(params: Mapping[str, "Parameter"], checks: Sequence[Tuple[str, Tuple[int, ...]]],
                 dtype: np.dtype) -> List[Optional[np.ndarray]]:
    """``params[name].data`` for each (name, shape) of `checks` (None where the parameter is
    absent, e.g. no bias), each checked against the shape and dtype its layer was built with,
    so that a ``.data`` replaced by a wrong-shaped array is named here rather than met by a
    kernel. Runs per layer per call: the builtin dtypes are singletons, so ``is`` comes first."""
    out: List[Optional[np.ndarray]] = []
    for name, shape in checks:
        p = params.get(name)
        if p is None:
            out.append(None)
            continue
        data = p.data
        if data.shape != shape or (data.dtype is not dtype and data.dtype != dtype):
            raise ValueError(f"parameter {name} has shape {_shape_text(data.shape)} and dtype "
                             f"{data.dtype}, expected {_shape_text(shape)} {dtype} (was its "
                             ".data replaced?)")
        out.append(data)
    return out


def _shape_text(s: Tuple[int, ...]) -> str:
    return "(" + ", ".join(str(v) for v in s) + ("," if len(s) == 1 else "") + ")"
