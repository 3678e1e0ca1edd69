"""Functional sequence kernels: validate, call the compiled core once per sequence, return.

All tensors are time-major: x is (T, B, I), y is (T, B, H). Shapes, weight layout and gate
order are PyTorch's (see ../shared/API.md)::

    LSTM  w_ih (4H, I)  w_hh (4H, H)  b_ih, b_hh (4H,)   gates i, f, g, o
    GRU   w_ih (3H, I)  w_hh (3H, H)  b_ih, b_hh (3H,)   gates r, z, n
    RNN   w_ih (H, I)   w_hh (H, H)   b_ih, b_hh (H,)    h_t = act(W_ih x + b_ih + W_hh h + b_hh)

``lengths`` (B,) marks padded batches: outputs at t >= lengths[b] are 0 and the final state
is the state after step lengths[b]-1 (h0 if 0). ``reverse`` runs each sequence from its own
last valid step back to 0. With ``training=True`` the forward returns an opaque cache that the
matching backward consumes; it holds references to the inputs and weights, so do not modify
them in place in between, and y comes back read-only (the cache reads h_t from it; copy y to
edit it).
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np

from .. import _core
from . import _validate as v


class LSTMGrads(NamedTuple):
    dx: np.ndarray
    dh0: np.ndarray
    dc0: np.ndarray
    dw_ih: np.ndarray
    dw_hh: np.ndarray
    db_ih: Optional[np.ndarray]
    db_hh: Optional[np.ndarray]


class GRUGrads(NamedTuple):
    dx: np.ndarray
    dh0: np.ndarray
    dw_ih: np.ndarray
    dw_hh: np.ndarray
    db_ih: Optional[np.ndarray]
    db_hh: Optional[np.ndarray]


RNNGrads = GRUGrads


class SequenceCache:
    """What a training-mode forward keeps for its backward. Opaque: pass it back unchanged."""

    __slots__ = ("cell", "x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "y", "saved",
                 "lengths", "reverse", "nonlinearity")

    def __init__(self, **fields: object) -> None:
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    def __repr__(self) -> str:
        t, b, _ = self.x.shape
        return (f"SequenceCache({self.cell}, T={t}, B={b}, H={self.w_hh.shape[1]}, "
                f"dtype={self.x.dtype})")


def _keep(y: np.ndarray) -> np.ndarray:
    """The cache keeps y itself (backward reads h_t from it) instead of a copy, so it is
    returned read-only: an in-place edit raises rather than silently corrupting backward."""
    y.flags.writeable = False
    return y


def _suffix(dtype: np.dtype) -> str:
    return "f32" if dtype == np.float32 else "f64"


def _check_common(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, gates: int):
    x = v.floating_input("x", x, 3, "(T, B, I)")
    dt = x.dtype
    t, b, i = x.shape
    h = v.hidden_size(w_hh, gates, dt)
    w_hh = v.array("w_hh", w_hh, (gates * h, h), dt)
    w_ih = v.array("w_ih", w_ih, (gates * h, i), dt, "(gates*H, I)")
    h0 = v.optional_array("h0", h0, (b, h), dt, "(B, H)")
    b_ih = v.optional_array("b_ih", b_ih, (gates * h,), dt)
    b_hh = v.optional_array("b_hh", b_hh, (gates * h,), dt)
    lengths = v.lengths_array(lengths, b, t)
    return x, h0, w_ih, w_hh, b_ih, b_hh, lengths


def _check_cache(cache: object, cell: str, fn: str) -> "SequenceCache":
    if cache is None:
        raise RuntimeError(f"{fn}: cache is None - the forward ran with training=False, which "
                           "keeps no activations; run it with training=True to backpropagate")
    if not isinstance(cache, SequenceCache) or cache.cell != cell:
        raise TypeError(f"{fn}: cache must be the cache returned by {cell}_forward, got "
                        f"{type(cache).__name__}"
                        + (f" from {cache.cell}_forward" if isinstance(cache, SequenceCache)
                           else ""))
    return cache


def _check_grad_out(cache: "SequenceCache", dy, dh_n, dc_n=None):
    t, b, _ = cache.x.shape
    h = cache.w_hh.shape[1]
    dt = cache.x.dtype
    dy = v.array("dy", dy, (t, b, h), dt, "(T, B, H), like y")
    dh_n = v.optional_array("dh_n", dh_n, (b, h), dt, "(B, H), like h_n")
    dc_n = v.optional_array("dc_n", dc_n, (b, h), dt, "(B, H), like c_n")
    return dy, dh_n, dc_n


# ---------------------------------------------------------------- LSTM
def lstm_forward(x: np.ndarray, h0: Optional[np.ndarray], c0: Optional[np.ndarray],
                 w_ih: np.ndarray, w_hh: np.ndarray, b_ih: Optional[np.ndarray],
                 b_hh: Optional[np.ndarray], *, lengths: Optional[np.ndarray] = None,
                 reverse: bool = False, training: bool = True
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[SequenceCache]]:
    """LSTM over a whole sequence. Returns ``y (T,B,H), h_n (B,H), c_n (B,H), cache``.

    i, f, o = σ(W_i· x + b_i· + W_h· h + b_h·); g = tanh(...); c' = f⊙c + i⊙g; h' = o⊙tanh(c').
    """
    x, h0, w_ih, w_hh, b_ih, b_hh, lengths = _check_common(x, h0, w_ih, w_hh, b_ih, b_hh,
                                                           lengths, 4)
    c0 = v.optional_array("c0", c0, (x.shape[1], w_hh.shape[1]), x.dtype, "(B, H)")
    kernel = getattr(_core, "lstm_forward_" + _suffix(x.dtype))
    y, h_n, c_n, gates, cells = kernel(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths,
                                       bool(reverse), bool(training))
    cache = None
    if training:
        cache = SequenceCache(cell="lstm", x=x, h0=h0, c0=c0, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih,
                              b_hh=b_hh, y=_keep(y), saved=(gates, cells), lengths=lengths,
                              reverse=bool(reverse))
    return y, h_n, c_n, cache


def lstm_backward(cache: SequenceCache, dy: np.ndarray, dh_n: Optional[np.ndarray] = None,
                  dc_n: Optional[np.ndarray] = None) -> LSTMGrads:
    """Backpropagation through time for :func:`lstm_forward`.

    ``dy`` (T,B,H) is d(loss)/dy; ``dh_n``, ``dc_n`` (B,H) the gradients reaching the final
    states (None = 0). Returns fresh arrays; db_ih/db_hh are None where the bias was None.
    """
    c = _check_cache(cache, "lstm", "lstm_backward")
    dy, dh_n, dc_n = _check_grad_out(c, dy, dh_n, dc_n)
    kernel = getattr(_core, "lstm_backward_" + _suffix(c.x.dtype))
    has_bias = c.b_ih is not None or c.b_hh is not None
    dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh = kernel(
        dy, dh_n, dc_n, c.x, c.h0, c.c0, c.w_ih, c.w_hh, has_bias, c.y, c.saved[0], c.saved[1],
        c.lengths, c.reverse)
    return LSTMGrads(dx, dh0, dc0, dw_ih, dw_hh, db_ih if c.b_ih is not None else None,
                     db_hh if c.b_hh is not None else None)


# ---------------------------------------------------------------- GRU
def gru_forward(x: np.ndarray, h0: Optional[np.ndarray], w_ih: np.ndarray, w_hh: np.ndarray,
                b_ih: Optional[np.ndarray], b_hh: Optional[np.ndarray], *,
                lengths: Optional[np.ndarray] = None, reverse: bool = False,
                training: bool = True
                ) -> Tuple[np.ndarray, np.ndarray, Optional[SequenceCache]]:
    """GRU over a whole sequence. Returns ``y (T,B,H), h_n (B,H), cache``.

    r, z = σ(W_i· x + b_i· + W_h· h + b_h·); n = tanh(W_in x + b_in + r⊙(W_hn h + b_hn));
    h' = (1 - z)⊙n + z⊙h.
    """
    x, h0, w_ih, w_hh, b_ih, b_hh, lengths = _check_common(x, h0, w_ih, w_hh, b_ih, b_hh,
                                                           lengths, 3)
    kernel = getattr(_core, "gru_forward_" + _suffix(x.dtype))
    y, h_n, gates, hn = kernel(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, bool(reverse),
                               bool(training))
    cache = None
    if training:
        cache = SequenceCache(cell="gru", x=x, h0=h0, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih,
                              b_hh=b_hh, y=_keep(y), saved=(gates, hn), lengths=lengths,
                              reverse=bool(reverse))
    return y, h_n, cache


def gru_backward(cache: SequenceCache, dy: np.ndarray,
                 dh_n: Optional[np.ndarray] = None) -> GRUGrads:
    """Backpropagation through time for :func:`gru_forward` (see :func:`lstm_backward`)."""
    c = _check_cache(cache, "gru", "gru_backward")
    dy, dh_n, _ = _check_grad_out(c, dy, dh_n)
    kernel = getattr(_core, "gru_backward_" + _suffix(c.x.dtype))
    has_bias = c.b_ih is not None or c.b_hh is not None
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = kernel(
        dy, dh_n, c.x, c.h0, c.w_ih, c.w_hh, has_bias, c.y, c.saved[0], c.saved[1], c.lengths,
        c.reverse)
    return GRUGrads(dx, dh0, dw_ih, dw_hh, db_ih if c.b_ih is not None else None,
                    db_hh if c.b_hh is not None else None)


# ---------------------------------------------------------------- RNN
NONLINEARITIES = ("tanh", "relu")


def rnn_forward(x: np.ndarray, h0: Optional[np.ndarray], w_ih: np.ndarray, w_hh: np.ndarray,
                b_ih: Optional[np.ndarray], b_hh: Optional[np.ndarray], *,
                nonlinearity: str = "tanh", lengths: Optional[np.ndarray] = None,
                reverse: bool = False, training: bool = True
                ) -> Tuple[np.ndarray, np.ndarray, Optional[SequenceCache]]:
    """Elman RNN over a whole sequence: h' = act(W_ih x + b_ih + W_hh h + b_hh).

    ``nonlinearity`` is "tanh" or "relu". Returns ``y (T,B,H), h_n (B,H), cache``.
    """
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    x, h0, w_ih, w_hh, b_ih, b_hh, lengths = _check_common(x, h0, w_ih, w_hh, b_ih, b_hh,
                                                           lengths, 1)
    kernel = getattr(_core, "rnn_forward_" + _suffix(x.dtype))
    y, h_n, acts = kernel(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity, lengths, bool(reverse),
                          bool(training))
    cache = None
    if training:
        cache = SequenceCache(cell="rnn", x=x, h0=h0, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih,
                              b_hh=b_hh, y=_keep(y), saved=(acts,), lengths=lengths,
                              reverse=bool(reverse), nonlinearity=nonlinearity)
    return y, h_n, cache


def rnn_backward(cache: SequenceCache, dy: np.ndarray,
                 dh_n: Optional[np.ndarray] = None) -> RNNGrads:
    """Backpropagation through time for :func:`rnn_forward` (see :func:`lstm_backward`)."""
    c = _check_cache(cache, "rnn", "rnn_backward")
    dy, dh_n, _ = _check_grad_out(c, dy, dh_n)
    kernel = getattr(_core, "rnn_backward_" + _suffix(c.x.dtype))
    has_bias = c.b_ih is not None or c.b_hh is not None
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = kernel(
        dy, dh_n, c.x, c.h0, c.w_ih, c.w_hh, has_bias, c.y, c.saved[0], c.nonlinearity,
        c.lengths, c.reverse)
    return RNNGrads(dx, dh0, dw_ih, dw_hh, db_ih if c.b_ih is not None else None,
                    db_hh if c.b_hh is not None else None)
