"""Activation layers: Tanh, ReLU, Sigmoid, GELU, Softmax and LogSoftmax, as in ``torch.nn``.

They have no parameters and act elementwise (Softmax and LogSoftmax along one axis), so they
sit anywhere in a :class:`~rnnkit.nn.Sequential`. Each keeps x's floating dtype (float32 or
float64; integer input becomes float64, as Dropout's does) and, in training mode, what its
backward needs, following the derivatives-from-outputs habit of the recurrent kernels:
tanh' = 1 - y², σ' = y(1 - y), softmax from y itself. ``backward(dy)`` returns dx; a backward
needs a training-mode forward first and consumes its cache (one backward per forward).

Tanh, Sigmoid, Softmax and LogSoftmax keep their output y itself for backward rather than a
copy, so in training mode that y is returned read-only (as the recurrent layers' y may be):
copy it before editing it in place.
"""
from __future__ import annotations

import math
from typing import Any, Tuple

import numpy as np

from ._calls import CallState
from .module import Module, _no_cache_error

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_C = 0.044715       # torch's constant of the tanh approximation

# erfc(a) for a >= 0 in float64, without scipy (numpy has no erf). Below _ERF_SPLIT,
# 1 - erf(a) from the series erf(a) = 2/√π e^{-a²} Σ_n 2^n a^(2n+1) / (2n+1)!! (positive
# terms: no cancellation); at and above it the continued fraction
# erfc(a) = e^{-a²}/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + ...)))), evaluated from a fixed
# depth. With 32 series terms and depth 60 both are within ~1e-15 relative of mpmath's erf /
# erfc on their ranges (checked on a fine grid); erfc just below the split, where 1 - erf
# loses digits, is still within ~2e-13 relative. Beyond 30, erfc underflows to 0 anyway, and
# clipping keeps a² finite.
_ERF_SPLIT = 2.0
_ERF_SERIES_TERMS = 32
_ERFC_CF_DEPTH = 60
_ERFC_CLIP = 30.0
# 1/(2n+1)!! for n = 0 .. _ERF_SERIES_TERMS - 1.
_ERF_SERIES_COEFFS = tuple(1.0 / math.prod(range(1, 2 * n + 2, 2))
                           for n in range(_ERF_SERIES_TERMS))


def _erfc_nonneg(a: np.ndarray) -> np.ndarray:
    """erfc(a) elementwise for a float64 array with a >= 0 (NaN propagates)."""
    out = np.empty_like(a)
    small = a < _ERF_SPLIT
    s = a[small]
    if s.size:
        # Horner in w = 2s² over the coefficients 1/(2n+1)!! (a loop over terms, in place).
        w = 2.0 * s * s
        poly = np.full_like(s, _ERF_SERIES_COEFFS[-1])
        for c in _ERF_SERIES_COEFFS[-2::-1]:
            poly *= w
            poly += c
        out[small] = 1.0 - 2.0 * _INV_SQRT_PI * np.exp(-s * s) * s * poly
    big = ~small
    z = np.minimum(a[big], _ERFC_CLIP)
    if z.size:
        f = z.copy()
        for k in range(_ERFC_CF_DEPTH, 0, -1):
            np.divide(0.5 * k, f, out=f)
            f += z
        out[big] = _INV_SQRT_PI * np.exp(-z * z) / f
    return out


# Elements per block of _normal_cdf: the series makes ~65 passes over its input, which stay
# in cache for a block this size (2-3x faster than whole-array passes on large inputs).
_CDF_BLOCK = 16384


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    """Φ(x) = (1 + erf(x/√2)) / 2 for float64 x, as 0.5·erfc(-x/√2): accurate in the left
    tail too, where 1 + erf would cancel."""
    flat = x.reshape(-1)
    out = np.empty_like(flat)
    for start in range(0, flat.size, _CDF_BLOCK):      # a loop over blocks, not elements
        z = flat[start:start + _CDF_BLOCK] * _SQRT1_2
        half_erfc = 0.5 * _erfc_nonneg(np.abs(z))
        out[start:start + _CDF_BLOCK] = np.where(z < 0, half_erfc, 1.0 - half_erfc)
    return out.reshape(x.shape)


def _float_input(x: Any) -> np.ndarray:
    """x as an array of its own floating dtype (integers become float64)."""
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    if arr.dtype.kind == "f":
        return arr
    if arr.dtype.kind not in "iu":
        raise TypeError(f"x must be a numeric (floating or integer) array, got dtype "
                        f"{arr.dtype}")
    return arr.astype(np.float64)


class _Activation(Module):
    """Shared forward/backward protocol: subclasses give ``_forward(x) -> (y, saved)`` and
    ``_backward(saved, dy) -> dx`` on arrays of x's dtype."""

    _takes_lengths = False
    _keeps_output = False     # the cache holds y itself (returned read-only in training)

    def __init__(self) -> None:
        super().__init__()
        self._calls = CallState()

    def _on_mode_change(self) -> None:
        self._calls.clear()

    def _forward(self, x: np.ndarray) -> Tuple[np.ndarray, Any]:
        raise NotImplementedError

    def _backward(self, saved: Any, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def forward(self, x: Any) -> np.ndarray:
        """y = f(x), of x's shape and floating dtype."""
        arr = _float_input(x)
        y, saved = self._forward(arr)
        y = np.asarray(y)     # ufuncs give a numpy scalar for 0-d input: keep it an array
        if self.training:
            if self._keeps_output:
                y.flags.writeable = False     # an in-place edit would corrupt the backward
            self._calls.put((arr.shape, arr.dtype, saved))
        else:
            self._calls.put(None)
        return y

    def backward(self, dy: Any) -> np.ndarray:
        """dx = dy ⊙ f'(x) (for Softmax/LogSoftmax the Jacobian product along ``dim``)."""
        cache = self._calls.take()
        if cache is None:
            raise _no_cache_error(self)
        shape, dtype, saved = cache
        dy_arr = np.asarray(dy)
        if dy_arr.shape != shape:
            self._calls.put(cache)    # a rejected argument consumes nothing
            raise ValueError(f"dy has shape {dy_arr.shape}, expected {shape} (the shape of y)")
        if dy_arr.dtype.kind not in "fiu":
            self._calls.put(cache)
            raise TypeError(f"dy must be a numeric array, got dtype {dy_arr.dtype}")
        return np.asarray(self._backward(saved, dy_arr.astype(dtype, copy=False)))


class Tanh(_Activation):
    """``y = tanh(x)``, as ``torch.nn.Tanh``; backward ``dx = dy ⊙ (1 - y²)``."""

    _keeps_output = True

    def _forward(self, x: np.ndarray) -> Tuple[np.ndarray, Any]:
        y = np.tanh(x)
        return y, y

    def _backward(self, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
        return dy * (1 - y * y)


class ReLU(_Activation):
    """``y = max(x, 0)``, as ``torch.nn.ReLU``; backward ``dx = dy ⊙ [x > 0]`` (0 at x = 0,
    as torch)."""

    def _forward(self, x: np.ndarray) -> Tuple[np.ndarray, Any]:
        # np.maximum rather than a mask so that NaN propagates, as torch.relu does.
        return np.maximum(x, x.dtype.type(0)), x > 0

    def _backward(self, keep: np.ndarray, dy: np.ndarray) -> np.ndarray:
        return np.where(keep, dy, dy.dtype.type(0))


class Sigmoid(_Activation):
    """``y = σ(x) = 1 / (1 + e^{-x})``, as ``torch.nn.Sigmoid``; backward
    ``dx = dy ⊙ y(1 - y)``. Evaluated through e^{-|x|}, so no exponential overflows."""

    _keeps_output = True

    def _forward(self, x: np.ndarray) -> Tuple[np.ndarray, Any]:
        e = np.exp(-np.abs(x))
        one = x.dtype.type(1)
        y = np.where(x >= 0, one / (one + e), e / (one + e))
        return y, y

    def _backward(self, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
        return dy * y * (1 - y)


class GELU(_Activation):
    """Gaussian error linear unit, as ``torch.nn.GELU``.

    ``approximate="none"`` (default, torch's exact form): ``y = x Φ(x)`` with
    Φ(x) = (1 + erf(x/√2)) / 2, and ``dx = dy ⊙ (Φ(x) + x φ(x))``, φ the standard normal
    density. ``approximate="tanh"``: ``y = x (1 + tanh(u)) / 2`` with
    u = √(2/π) (x + 0.044715 x³), and its exact derivative.

    Both are evaluated in float64 and rounded to x's dtype (numpy has no erf: Φ comes from a
    series and a continued fraction accurate to ~1e-15, computed as erfc in the left tail,
    where torch's 1 + erf cancels).
    """

    _config_args = ("approximate",)

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}" if self.approximate != "none" else ""

    def _forward(self, x: np.ndarray) -> Tuple[np.ndarray, Any]:
        x64 = x.astype(np.float64)
        # Overflow (x³, x² of huge inputs) saturates to the right limits; inf/NaN inputs give
        # NaN quietly, as in torch.
        with np.errstate(over="ignore", invalid="ignore"):
            if self.approximate == "tanh":
                t = np.tanh(_SQRT_2_OVER_PI * (x64 + _GELU_TANH_C * (x64 * x64 * x64)))
                y = 0.5 * x64 * (1.0 + t)
                saved: Any = (x64, t)
            else:
                cdf = _normal_cdf(x64)
                y = x64 * cdf
                saved = (x64, cdf)
        return y.astype(x.dtype), saved

    def _backward(self, saved: Any, dy: np.ndarray) -> np.ndarray:
        x64, s = saved
        with np.errstate(over="ignore", invalid="ignore"):
            if self.approximate == "tanh":
                du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_TANH_C * x64 * x64)
                sech2 = 1.0 - s * s
                # Where tanh has saturated, sech² is 0 and x·du may be inf: the term is 0.
                d = 0.5 * (1.0 + s) + np.where(sech2 == 0, 0.0, 0.5 * x64 * sech2 * du)
            else:
                d = s + x64 * _INV_SQRT_2PI * np.exp(-0.5 * x64 * x64)
        return (dy * d).astype(dy.dtype)


def _axis(dim: Any) -> int:
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    return int(dim)


def _check_axis(dim: int, x: np.ndarray) -> int:
    """``dim`` as an axis of x (negative counts from the end), or a ValueError naming it."""
    if x.ndim == 0:
        raise ValueError("x must have at least 1 dimension for a softmax, got a 0-d array")
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"dim={dim} is out of range for x of shape {x.shape} (expected "
                         f"{-x.ndim} <= dim < {x.ndim})")
    return dim % x.ndim


class _SoftmaxBase(_Activation):
    _config_args = ("dim",)
    _keeps_output = True

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = _axis(dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

    def _log_softmax(self, x: np.ndarray) -> Tuple[np.ndarray, int]:
        """log softmax along dim, shifted by the maximum so no exponential overflows."""
        axis = _check_axis(self.dim, x)
        if x.shape[axis] == 0:
            return x.copy(), axis
        m = np.max(x, axis=axis, keepdims=True)
        # A slice whose maximum is not finite (all -inf, or a +inf or NaN in it) is NaN as a
        # whole, as in torch; shifting it by NaN says so without the warnings of inf - inf.
        m = np.where(np.isfinite(m), m, x.dtype.type(np.nan))
        s = x - m
        return s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True)), axis


class LogSoftmax(_SoftmaxBase):
    """``y = x - log Σ_dim e^x`` along ``dim`` (default -1, the class axis of this package's
    heads and losses; torch's implicit-dim default is deprecated), as ``torch.nn.LogSoftmax``.

    Computed as ``s - log Σ e^s`` with ``s = x - max(x)``, so large logits neither overflow
    nor lose the small ones. Backward: ``dx = dy - softmax(x) ⊙ Σ_dim dy``.
    """

    def _forward(self, x: np.ndarray) -> Tuple[np.ndarray, Any]:
        y, axis = self._log_softmax(x)
        return y, (y, axis)

    def _backward(self, saved: Any, dy: np.ndarray) -> np.ndarray:
        y, axis = saved
        return dy - np.exp(y) * np.sum(dy, axis=axis, keepdims=True)


class Softmax(_SoftmaxBase):
    """``y = e^x / Σ_dim e^x`` along ``dim`` (default -1), as ``torch.nn.Softmax``, computed
    from the shifted log softmax (no overflow). Backward: ``dx = y ⊙ (dy - Σ_dim dy ⊙ y)``."""

    def _forward(self, x: np.ndarray) -> Tuple[np.ndarray, Any]:
        logy, axis = self._log_softmax(x)
        y = np.exp(logy)
        return y, (y, axis)

    def _backward(self, saved: Any, dy: np.ndarray) -> np.ndarray:
        y, axis = saved
        return y * (dy - np.sum(dy * y, axis=axis, keepdims=True))


__all__ = ["Tanh", "ReLU", "Sigmoid", "GELU", "LogSoftmax", "Softmax"]
