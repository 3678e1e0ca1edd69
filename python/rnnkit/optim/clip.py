"""Gradient clipping against exploding gradients (torch.nn.utils.clip_grad_norm_ /
clip_grad_value_)."""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, List, Union

import numpy as np

from .. import _core
from .optimizer import _FLOAT_DTYPES

ParamsArg = Union[Any, Iterable[Any]]


def _grads(parameters: ParamsArg) -> List[np.ndarray]:
    """The non-None gradients of `parameters` (one parameter or an iterable of them)."""
    if hasattr(parameters, "grad"):
        parameters = [parameters]
    grads = []
    for i, p in enumerate(parameters):
        if not hasattr(p, "grad"):
            raise TypeError(f"parameters[{i}]: expected a parameter with .grad, got "
                            f"{type(p).__name__}")
        g = p.grad
        if g is None:
            continue
        if not isinstance(g, np.ndarray) or g.dtype not in _FLOAT_DTYPES:
            raise TypeError(f"parameters[{i}].grad must be a float32 or float64 numpy.ndarray, "
                            f"got {getattr(g, 'dtype', type(g).__name__)}")
        if not g.flags.writeable:
            raise ValueError(f"parameters[{i}].grad is read-only (it is clipped in place)")
        grads.append(g)
    return grads


def _abs_pow_sum(g: np.ndarray, p: float) -> float:
    if not g.flags.c_contiguous:
        g = np.ascontiguousarray(g)
    return float(_core.abs_pow_sum(g, p))


def clip_grad_norm_(parameters: ParamsArg, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> float:
    r"""Scale all gradients together so that their joint norm is at most ``max_norm``.

    The total norm is the ``norm_type``-norm of all gradients viewed as one vector,
    :math:`\lVert g\rVert_p = (\sum_i |g_i|^p)^{1/p}` (``max |g_i|`` for ``p = inf``),
    accumulated in float64 and rounded to the gradients' dtype. Every gradient is then
    multiplied in place by ``min(1, max_norm / (total_norm + 1e-6))``, computed in that dtype,
    exactly as ``torch.nn.utils.clip_grad_norm_`` (which multiplies even when the factor is 1).

    Non-finite gradients give a NaN or inf total norm. With ``error_if_nonfinite=True`` that
    raises ``RuntimeError`` and leaves the gradients untouched; otherwise the norm is returned
    and the gradients are scaled by the resulting factor (NaN for a NaN norm, 0 for an inf one),
    as torch does, without a warning.

    Args:
        parameters: a parameter or an iterable of parameters (objects with ``.grad``);
            parameters whose grad is None are skipped.
        max_norm: the largest allowed total norm (>= 0).
        norm_type: p of the p-norm, > 0, or ``float('inf')``.
        error_if_nonfinite: raise instead of clipping when the total norm is NaN or inf.

    Returns:
        The total norm of the gradients before clipping, as a Python float.
    """
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real):
        raise TypeError(f"max_norm must be a real number, got {type(max_norm).__name__}")
    if not max_norm >= 0:
        raise ValueError(f"max_norm must be >= 0, got {max_norm}")
    if isinstance(norm_type, str):
        if norm_type != "inf":
            raise ValueError(f"norm_type must be a number > 0 or 'inf', got {norm_type!r}")
        norm_type = math.inf
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"norm_type must be a real number, got {type(norm_type).__name__}")
    p = float(norm_type)
    if not p > 0:
        raise ValueError(f"norm_type must be > 0 or inf, got {norm_type}")
    grads = _grads(parameters)
    if not grads:
        return 0.0
    if math.isinf(p):
        total = max((_abs_pow_sum(g, p) for g in grads), key=lambda x: (x != x, x))
    else:
        s = sum(_abs_pow_sum(g, p) for g in grads)
        total = math.sqrt(s) if p == 2.0 else s ** (1.0 / p)
    # torch computes the norm and the factor in the gradients' (promoted) dtype.
    dtype = np.result_type(*grads)
    total_t = dtype.type(total)
    if error_if_nonfinite and not np.isfinite(total_t):
        raise RuntimeError(
            f"The total norm of order {p} for gradients from `parameters` is non-finite, so it "
            "cannot be clipped. To disable this error and scale the gradients by the "
            "non-finite norm anyway, set `error_if_nonfinite=False`")
    with np.errstate(all="ignore"):
        coef = dtype.type(max_norm) / (total_t + dtype.type(1e-6))
        coef = coef if coef < 1 or coef != coef else dtype.type(1.0)
        for g in grads:
            g *= g.dtype.type(coef)
    return float(total_t)


def clip_grad_value_(parameters: ParamsArg, clip_value: float) -> None:
    """Clamp every gradient elementwise to ``[-clip_value, clip_value]``, in place
    (``torch.nn.utils.clip_grad_value_``; NaN stays NaN).

    Args:
        parameters: a parameter or an iterable of parameters (objects with ``.grad``);
            parameters whose grad is None are skipped.
        clip_value: the bound (>= 0).
    """
    if isinstance(clip_value, bool) or not isinstance(clip_value, numbers.Real):
        raise TypeError(f"clip_value must be a real number, got {type(clip_value).__name__}")
    if not clip_value >= 0:
        raise ValueError(f"clip_value must be >= 0, got {clip_value}")
    for g in _grads(parameters):
        bound = g.dtype.type(clip_value)
        np.clip(g, -bound, bound, out=g)
