"""Parameter: a trainable array and the gradient that backward passes accumulate into."""
from __future__ import annotations

from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np


class Parameter:
    """A trainable tensor: ``data`` and ``grad``, numpy arrays of one shape and dtype.

    ``grad`` starts at zeros. Layers' ``backward`` methods ADD into it (as torch's autograd
    does), so gradients of several backward passes sum until :meth:`zero_grad` clears them.
    Optimisers update ``data`` in place.

    ``requires_grad`` (default True) freezes the parameter when set to False, as in torch:
    backward passes leave its ``grad`` exactly as it was (an array stays unchanged, None stays
    None) and optimisers skip it. It is a flag of the live object only: state dicts and
    ``rnnkit.save`` do not store it (torch's ``state_dict`` does not either).
    """

    __slots__ = ("data", "grad", "version", "_requires_grad")

    def __init__(self, data: Any, dtype: Any = None, requires_grad: bool = True) -> None:
        self.data: np.ndarray = np.array(data, dtype=dtype, copy=True)
        if self.data.dtype.kind != "f":
            raise TypeError(f"Parameter data must be floating point, got dtype {self.data.dtype}")
        self.grad: np.ndarray = np.zeros_like(self.data)
        self._requires_grad = _flag("requires_grad", requires_grad)
        # Bumped by optimisers and load_state_dict; layers that keep a packed copy of their
        # weights (the eval-mode single-step path) repack when it changes. They never lock or
        # otherwise touch ``data``: if you modify it in place yourself, call mark_changed().
        self.version = 0

    @property
    def requires_grad(self) -> bool:
        """Whether backward passes accumulate into ``grad`` and optimisers update ``data``."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self._requires_grad = _flag("requires_grad", value)

    def requires_grad_(self, requires_grad: bool = True) -> "Parameter":
        """Set :attr:`requires_grad` and return self (torch's ``Tensor.requires_grad_``)."""
        self.requires_grad = requires_grad
        return self

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
        """``grad`` as an array that kernels may accumulate into in place (allocated if None).

        For a frozen parameter (``requires_grad`` False) a fresh zero array instead, which the
        caller fills and drops: the kernels compute every weight gradient together with the
        input gradient, so the frozen one is computed into scratch and ``grad`` stays as it was.
        """
        if not self._requires_grad:
            return np.zeros_like(self.data)
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


def _flag(name: str, value: Any) -> bool:
    """A bool argument: True/False (numpy's too); anything else raises TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} "
                        f"({type(value).__name__})")
    return bool(value)


def values_key(params: Iterable["Parameter"]) -> Tuple[Tuple[int, int], ...]:
    """What changes when any of ``params`` takes new values: a new ``data`` array or a bumped
    ``version``. Packed copies of weights are rebuilt when it differs from theirs."""
    return tuple((id(p.data), p.version) for p in params)


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
