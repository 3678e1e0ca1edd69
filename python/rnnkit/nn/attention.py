"""Attention: Luong's dot and general scores and Bahdanau's additive score, with key masks."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..ops import _validate
from ._calls import CallState
from .module import Module, _dtype, _lengths_arg, _no_cache_error, _positive_int
from .parameter import Parameter, checked_data

SCORES = ("dot", "general", "additive")

# The additive score needs tanh(W_q q_i + W_k k_j + b) for every (i, j) pair: a
# (B, Tq, Tk, A) tensor. It is built for a block of query steps at a time, each block at most
# this many bytes, so memory stays bounded however long the sequences are (the blocks are
# rows of independent work, not a time recurrence). Backward rebuilds the blocks instead of
# keeping them, for the same reason.
_CHUNK_BYTES = 64 << 20


def _shape(s: Tuple[int, ...]) -> str:
    return "(" + ", ".join(str(v) for v in s) + ("," if len(s) == 1 else "") + ")"


def _numeric(name: str, a: Any) -> np.ndarray:
    """``a`` as an ndarray (no copy yet); non-numeric input is a TypeError naming it."""
    arr = a if isinstance(a, np.ndarray) else np.asarray(a)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    return arr


class Attention(Module):
    """Attention of queries over keys, pooling values: Luong's "dot" and "general" scores
    and Bahdanau's "additive" score, with an optional mask of padded keys.

    For each sequence b and query step i, over key steps j < key_lengths[b]::

        dot:       s_ij = q_i · k_j          (/ sqrt(key_size) with scale=True)
        general:   s_ij = q_iᵀ W k_j                              (Luong et al. 2015)
        additive:  s_ij = vᵀ tanh(W_q q_i + W_k k_j + b)          (Bahdanau et al. 2015)

        a_ij = exp(s_ij) / Σ_j' exp(s_ij')      (softmax over the valid key steps)
        c_i  = Σ_j a_ij v_j

    Args:
        query_size: Hq, the width of a query.
        key_size: Hk, the width of a key (default query_size; "dot" needs Hk == Hq).
        score: "dot" (default), "general" or "additive".
        attention_size: A, the hidden width of the additive score (default query_size);
            only for score="additive".
        scale: divide the dot score by sqrt(key_size), as the Transformer's scaled dot
            product; only for score="dot" (default False).
        batch_first: query, keys, values and context are (B, T, H) instead of the time-major
            (T, B, H) of the recurrent layers (default False). ``weights`` is (B, Tq, Tk)
            either way.
        dtype: "float32" (default) or "float64"; inputs are converted to it.
        seed: seeds the initialisation, torch's Linear rule U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            with each weight taken as the Linear it is: W as Linear(key_size, query_size)
            acting on k (fan_in Hk); W_q as Linear(query_size, A) (fan_in Hq); W_k and b as
            Linear(key_size, A) (fan_in Hk); v as Linear(A, 1) (fan_in A). Drawn in the
            order of the parameters below.

    Parameters: "dot" none; "general" weight (Hq, Hk); "additive" weight_query (A, Hq),
    weight_key (A, Hk), bias (A,), v (A,).

    Call: ``context, weights = attn(query, keys, values=None, key_lengths=None)``.

    =========== ===================== ===================== ===================
    argument    batch_first=False     batch_first=True      unbatched (2-D)
    =========== ===================== ===================== ===================
    query       (Tq, B, Hq)           (B, Tq, Hq)           (Tq, Hq)
    keys        (Tk, B, Hk)           (B, Tk, Hk)           (Tk, Hk)
    values      (Tk, B, Hv)           (B, Tk, Hv)           (Tk, Hv)
    context     (Tq, B, Hv)           (B, Tq, Hv)           (Tq, Hv)
    weights     (B, Tq, Tk)           (B, Tq, Tk)           (Tq, Tk)
    =========== ===================== ===================== ===================

    ``weights`` is batch-major in every layout, as torch's ``MultiheadAttention`` returns
    them: ``weights[b, i]`` is query step i's distribution over the key steps of sequence b.
    ``values`` defaults to ``keys`` (then Hv = Hk). ``key_lengths`` (B,) ints in [0, Tk]
    (None: all Tk steps valid; batched input only): key steps j >= key_lengths[b] get weight
    exactly 0 and their keys and values influence nothing, even when they hold NaN or inf.
    A sequence with key_lengths[b] == 0 has no key to attend to: its weights and context are
    defined as 0 (not NaN) and it passes no gradient.

    ``backward(dcontext, dweights=None)`` returns ``(dquery, dkeys, dvalues)`` in the
    layouts of the inputs, and ADDS the parameter gradients into ``.grad``. ``dweights`` is
    an optional gradient of the loss with respect to ``weights`` (an attention penalty, say).
    When ``values`` was not given, keys served as values too: ``dvalues`` is then None and
    that gradient is included in ``dkeys``. Padded key steps get exactly zero gradient.

    The additive score's (B, Tq, Tk, A) tanh tensor is built in blocks of query steps of at
    most 64 MB each (and rebuilt in backward rather than kept), so memory stays bounded.
    """

    _takes_lengths = False
    _config_args = ("query_size", "key_size", "score", "attention_size", "scale",
                    "batch_first", "dtype")

    def __init__(self, query_size: int, key_size: Optional[int] = None, *,
                 score: str = "dot", attention_size: Optional[int] = None,
                 scale: bool = False, batch_first: bool = False, dtype: Any = "float32",
                 seed: Optional[int] = None) -> None:
        super().__init__()
        self.query_size = _positive_int("query_size", query_size)
        self.key_size = self.query_size if key_size is None else \
            _positive_int("key_size", key_size)
        if not isinstance(score, str) or score not in SCORES:
            raise ValueError(f"score must be one of {', '.join(map(repr, SCORES))}, got "
                             f"{score!r}")
        self.score = score
        if score == "dot" and self.key_size != self.query_size:
            raise ValueError(f"score='dot' needs key_size == query_size, got key_size="
                             f"{self.key_size} and query_size={self.query_size} (use "
                             "score='general' or 'additive' for keys of another width)")
        if score == "additive":
            self.attention_size: Optional[int] = self.query_size if attention_size is None \
                else _positive_int("attention_size", attention_size)
        elif attention_size is not None:
            raise ValueError(f"attention_size is the additive score's hidden width; "
                             f"score={score!r} takes none, got attention_size={attention_size!r}")
        else:
            self.attention_size = None
        self.scale = bool(scale)
        if self.scale and score != "dot":
            raise ValueError(f"scale=True scales the dot score; score={score!r} learns its own "
                             "scale through its weights")
        self.batch_first = bool(batch_first)
        self.dtype = _dtype(dtype)
        rng = np.random.default_rng(seed)
        hq, hk = self.query_size, self.key_size

        def uniform(shape: Tuple[int, ...], fan_in: int) -> Parameter:
            bound = 1.0 / math.sqrt(fan_in)
            return Parameter(rng.uniform(-bound, bound, shape), self.dtype)

        self._checks: Tuple[Tuple[str, Tuple[int, ...]], ...] = ()
        if score == "general":
            self.weight = uniform((hq, hk), hk)
            self._checks = (("weight", (hq, hk)),)
        elif score == "additive":
            a = self.attention_size
            assert a is not None
            self.weight_query = uniform((a, hq), hq)
            self.weight_key = uniform((a, hk), hk)
            self.bias = uniform((a,), hk)
            self.v = uniform((a,), a)
            self._checks = (("weight_query", (a, hq)), ("weight_key", (a, hk)),
                            ("bias", (a,)), ("v", (a,)))
        self._calls = CallState()

    def _on_mode_change(self) -> None:
        self._calls.clear()

    def extra_repr(self) -> str:
        s = f"query_size={self.query_size}, key_size={self.key_size}, score={self.score!r}"
        if self.attention_size is not None:
            s += f", attention_size={self.attention_size}"
        if self.scale:
            s += ", scale=True"
        if self.batch_first:
            s += ", batch_first=True"
        return s + f", dtype={self.dtype.name}"

    def _data(self) -> List[np.ndarray]:
        """The parameters' arrays, checked by name and shape (checked_data)."""
        return [np.ascontiguousarray(a) for a in
                checked_data(self._parameters, self._checks, self.dtype)]

    # ------------------------------------------------------------------ inputs
    def _layout(self, t: str, h: str) -> str:
        return f"(B, {t}, {h})" if self.batch_first else f"({t}, B, {h})"

    def _batch_major(self, name: str, a: Any, t: str, h: str, unbatched: Optional[bool]
                     ) -> Tuple[np.ndarray, bool, Tuple[int, ...]]:
        """``a`` as a C-contiguous (B, T, H) array of the layer dtype, whether it was 2-D, and
        its shape as given. ``unbatched`` is the query's rank decision (None for the query
        itself). In training mode the array never shares memory with ``a``: it is kept for
        backward, and the caller may change ``a`` in between."""
        arr = _numeric(name, a)
        given = tuple(arr.shape)
        if unbatched is None:
            if arr.ndim not in (2, 3):
                raise ValueError(f"{name} must be 3-D {self._layout(t, h)} or 2-D ({t}, {h}) "
                                 f"unbatched, got shape {_shape(given)}")
        elif arr.ndim != (2 if unbatched else 3):
            want = f"2-D ({t}, {h}), unbatched as query is" if unbatched else \
                f"3-D {self._layout(t, h)}, batched as query is"
            raise ValueError(f"{name} must be {want}, got shape {_shape(given)}")
        if arr.ndim == 2:
            view = arr[None]
        else:
            view = arr if self.batch_first else arr.swapaxes(0, 1)
        out = np.ascontiguousarray(view, self.dtype)
        if self.training and np.may_share_memory(out, arr):
            out = out.copy()
        return out, arr.ndim == 2, given

    def _given_shape(self, bsz: int, t: int, h: int, unbatched: bool) -> Tuple[int, ...]:
        """The caller's layout of a batch-major (B, T, H) shape."""
        if unbatched:
            return (t, h)
        return (bsz, t, h) if self.batch_first else (t, bsz, h)

    def _from_batch_major(self, arr: np.ndarray, unbatched: bool) -> np.ndarray:
        if unbatched:
            return arr[0]
        return arr if self.batch_first else np.ascontiguousarray(arr.swapaxes(0, 1))

    def _check_inputs(self, query: Any, keys: Any, values: Any
                      ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], bool]:
        q, unbatched, qs = self._batch_major("query", query, "Tq", "Hq", None)
        k, _, ks = self._batch_major("keys", keys, "Tk", "Hk", unbatched)
        # Axes in the caller's layout, for the messages below.
        t_axis, b_axis = (1, 0) if self.batch_first else (0, 1)
        if unbatched:
            t_axis = 0
        if q.shape[2] != self.query_size:
            raise ValueError(f"query has shape {_shape(qs)}, expected last axis query_size="
                             f"{self.query_size}")
        if k.shape[2] != self.key_size:
            raise ValueError(f"keys has shape {_shape(ks)}, expected last axis key_size="
                             f"{self.key_size}")
        if k.shape[0] != q.shape[0]:
            raise ValueError(f"keys has shape {_shape(ks)}, expected batch {q.shape[0]} on "
                             f"axis {b_axis} (the batch of query {_shape(qs)})")
        if values is None:
            return q, k, None, unbatched
        v, _, vs = self._batch_major("values", values, "Tk", "Hv", unbatched)
        if v.shape[0] != q.shape[0]:
            raise ValueError(f"values has shape {_shape(vs)}, expected batch {q.shape[0]} on "
                             f"axis {b_axis} (the batch of query {_shape(qs)})")
        if v.shape[1] != k.shape[1]:
            raise ValueError(f"values has shape {_shape(vs)}, expected {k.shape[1]} steps on "
                             f"axis {t_axis} (Tk of keys {_shape(ks)}: one value per key)")
        return q, k, v, unbatched

    @staticmethod
    def _key_lengths(key_lengths: Any, batch: int, steps: int) -> Optional[np.ndarray]:
        try:
            return _validate.lengths_array(_lengths_arg(key_lengths), batch, steps)
        except (TypeError, ValueError) as exc:
            # The shared validator names its argument "lengths"; here it is key_lengths.
            msg = str(exc)
            if msg.startswith("lengths"):
                msg = "key_lengths" + msg[len("lengths"):].replace("[0, T=", "[0, Tk=")
            raise type(exc)(msg) from None

    # ------------------------------------------------------------------ forward
    def forward(self, query: Any, keys: Any, values: Any = None,
                key_lengths: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        with self._calls.lock:
            return self._forward_locked(query, keys, values, key_lengths)

    def _forward_locked(self, query: Any, keys: Any, values: Any,
                        key_lengths: Any) -> Tuple[np.ndarray, np.ndarray]:
        q, k, v_in, unbatched = self._check_inputs(query, keys, values)
        bsz, tk = k.shape[:2]
        if unbatched and key_lengths is not None:
            raise ValueError("key_lengths needs batched input: query and keys are 2-D "
                             "(unbatched); give them with a batch axis of 1 and key_lengths "
                             "of shape (1,)")
        lengths = self._key_lengths(key_lengths, bsz, tk)
        valid = None if lengths is None else np.arange(tk)[None, :] < lengths[:, None]  # (B, Tk)
        if valid is not None:
            # Padded keys and values are replaced by zeros, so that NaN or inf there cannot
            # reach the outputs or the gradients through 0 * NaN (their weights are 0).
            k = np.where(valid[:, :, None], k, 0).astype(self.dtype, copy=False)
            if v_in is not None:
                v_in = np.where(valid[:, :, None], v_in, 0).astype(self.dtype, copy=False)
        v = k if v_in is None else v_in
        params = self._data()
        scores, saved = self._scores(q, k, params)          # (B, Tq, Tk)
        weights = _masked_softmax(scores, valid)
        context = np.matmul(weights, v)                     # (B, Tq, Hv)
        self._calls.put(dict(q=q, k=k, v=v_in, weights=weights, saved=saved,
                             unbatched=unbatched) if self.training else None)
        if self.training:
            weights = weights.copy()    # the cache keeps its own: the caller may change these
        return self._from_batch_major(context, unbatched), (weights[0] if unbatched else weights)

    def _scores(self, q: np.ndarray, k: np.ndarray, params: List[np.ndarray]
                ) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
        """The scores s (B, Tq, Tk) and what backward needs besides q and k."""
        kt = k.transpose(0, 2, 1)                           # (B, Hk, Tk)
        if self.score == "dot":
            s = np.matmul(q, kt)
            if self.scale:
                s *= self.dtype.type(1.0 / math.sqrt(self.key_size))
            return s, {}
        if self.score == "general":
            (w,) = params
            qw = np.matmul(q, w)                            # (B, Tq, Hk): q_iᵀ W
            return np.matmul(qw, kt), {"qw": qw}
        w_q, w_k, bias, v = params
        eq = np.matmul(q, w_q.T)                            # (B, Tq, A)
        ek = np.matmul(k, w_k.T) + bias                     # (B, Tk, A)
        bsz, tq, tk = q.shape[0], q.shape[1], k.shape[1]
        s = np.empty((bsz, tq, tk), self.dtype)
        for i0, i1 in self._blocks(bsz, tq, tk):
            e = eq[:, i0:i1, None, :] + ek[:, None, :, :]     # (B, c, Tk, A)
            np.tanh(e, out=e)
            s[:, i0:i1] = np.matmul(e, v)
        return s, {"eq": eq, "ek": ek}

    def _blocks(self, bsz: int, tq: int, tk: int) -> List[Tuple[int, int]]:
        """Query-step ranges [i0, i1) whose (B, i1-i0, Tk, A) block fits in _CHUNK_BYTES."""
        assert self.attention_size is not None
        row = bsz * tk * self.attention_size * self.dtype.itemsize
        step = max(1, _CHUNK_BYTES // max(row, 1))
        return [(i0, min(i0 + step, tq)) for i0 in range(0, tq, step)]

    # ------------------------------------------------------------------ backward
    def backward(self, dcontext: Any, dweights: Any = None
                 ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        with self._calls.lock:
            c = self._calls.take()      # one backward per forward, as the other layers
            if c is None:
                raise _no_cache_error(self)
            try:
                dc, dw = self._grad_args(c, dcontext, dweights)
            except (TypeError, ValueError):
                self._calls.put(c)      # a rejected argument consumes nothing: try again
                raise
            return self._backward_locked(c, dc, dw)

    def _grad_args(self, c: Dict[str, Any], dcontext: Any, dweights: Any
                   ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        unbatched, weights = c["unbatched"], c["weights"]
        v = c["k"] if c["v"] is None else c["v"]
        bsz, tq, tk = weights.shape
        ctx_shape = self._given_shape(bsz, tq, v.shape[2], unbatched)
        dc_arr = _numeric("dcontext", dcontext)
        if dc_arr.shape != ctx_shape:
            raise ValueError(f"dcontext has shape {_shape(dc_arr.shape)}, expected "
                             f"{_shape(ctx_shape)} (the shape of context)")
        dc = self._batch_major("dcontext", dc_arr, "Tq", "Hv", unbatched)[0]
        dw = None
        if dweights is not None:
            w_shape = (tq, tk) if unbatched else (bsz, tq, tk)
            dw_arr = _numeric("dweights", dweights)
            if dw_arr.shape != w_shape:
                raise ValueError(f"dweights has shape {_shape(dw_arr.shape)}, expected "
                                 f"{_shape(w_shape)} (the shape of weights)")
            dw = np.ascontiguousarray(dw_arr, self.dtype).reshape(bsz, tq, tk)
        return dc, dw

    def _backward_locked(self, c: Dict[str, Any], dc: np.ndarray, dw: Optional[np.ndarray]
                         ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        q, k, v_in, weights = c["q"], c["k"], c["v"], c["weights"]
        v = k if v_in is None else v_in
        # context = a v:  dv = aᵀ dc, da = dc vᵀ (+ dweights).
        dv = np.matmul(weights.transpose(0, 2, 1), dc)          # (B, Tk, Hv)
        da = np.matmul(dc, v.transpose(0, 2, 1))                # (B, Tq, Tk)
        if dw is not None:
            da += dw
        # Softmax: ds = a ⊙ (da - Σ_j a da). Masked steps have a = 0 exactly, so ds = 0 there
        # and they pass no gradient (a zero-length row has a = 0 everywhere).
        ds = weights * (da - np.sum(weights * da, axis=2, keepdims=True))
        dq, dk = self._score_backward(q, k, ds, c["saved"])
        if v_in is None:
            dk += dv                                            # keys served as values too
        unbatched = c["unbatched"]
        return (self._from_batch_major(dq, unbatched), self._from_batch_major(dk, unbatched),
                None if v_in is None else self._from_batch_major(dv, unbatched))

    def _score_backward(self, q: np.ndarray, k: np.ndarray, ds: np.ndarray,
                        saved: Dict[str, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        """dq, dk from ds (B, Tq, Tk); parameter gradients added into ``.grad``."""
        dst = ds.transpose(0, 2, 1)                             # (B, Tk, Tq)
        if self.score == "dot":
            if self.scale:
                ds = ds * self.dtype.type(1.0 / math.sqrt(self.key_size))
                dst = ds.transpose(0, 2, 1)
            return np.matmul(ds, k), np.matmul(dst, q)
        params = self._data()
        hq, hk = self.query_size, self.key_size
        if self.score == "general":
            (w,) = params
            dqw = np.matmul(ds, k)                              # (B, Tq, Hk)
            dk = np.matmul(dst, saved["qw"])                    # (B, Tk, Hk)
            if self.weight.requires_grad:                       # dW = Σ qᵀ dqw
                self.weight.writable_grad()[...] += \
                    q.reshape(-1, hq).T @ dqw.reshape(-1, hk)
            return np.matmul(dqw, w.T), dk
        w_q, w_k, _, v = params
        eq, ek = saved["eq"], saved["ek"]
        bsz, tq, tk = ds.shape
        a = self.attention_size
        assert a is not None
        # z = W_q q_i + W_k k_j + b, e = tanh(z), s = e v: dz = (1 - e²) ⊙ ds v. The e blocks
        # are rebuilt from eq and ek (see _CHUNK_BYTES) rather than kept from the forward.
        deq = np.empty_like(eq)                                 # (B, Tq, A) = Σ_j dz
        dek = np.zeros_like(ek)                                 # (B, Tk, A) = Σ_i dz
        dv_param = np.zeros(a, self.dtype)
        for i0, i1 in self._blocks(bsz, tq, tk):
            e = eq[:, i0:i1, None, :] + ek[:, None, :, :]             # (B, c, Tk, A)
            np.tanh(e, out=e)
            d = ds[:, i0:i1]                                          # (B, c, Tk)
            dv_param += (d.reshape(1, -1) @ e.reshape(-1, a))[0]      # Σ ds e
            np.multiply(e, e, out=e)
            np.subtract(1, e, out=e)
            e *= d[..., None]
            e *= v                                                    # e is now dz
            deq[:, i0:i1] = e.sum(axis=2)
            dek += e.sum(axis=1)
        if self.weight_query.requires_grad:
            self.weight_query.writable_grad()[...] += deq.reshape(-1, a).T @ q.reshape(-1, hq)
        if self.weight_key.requires_grad:
            self.weight_key.writable_grad()[...] += dek.reshape(-1, a).T @ k.reshape(-1, hk)
        if self.bias.requires_grad:
            self.bias.writable_grad()[...] += dek.reshape(-1, a).sum(axis=0)
        if self.v.requires_grad:
            self.v.writable_grad()[...] += dv_param
        return np.matmul(deq, w_q), np.matmul(dek, w_k)


def _masked_softmax(s: np.ndarray, valid: Optional[np.ndarray]) -> np.ndarray:
    """Softmax of s (B, Tq, Tk) over its last axis, restricted to the key steps where
    ``valid`` (B, Tk) is True: masked steps get exactly 0, and a row with no valid step
    gets all zeros instead of 0/0 = NaN."""
    if valid is not None:
        s = np.where(valid[:, None, :], s, -np.inf)
    m = np.max(s, axis=2, keepdims=True, initial=-np.inf)
    # A fully masked (or empty) row has max -inf; shifting by 0 there keeps exp(-inf) = 0
    # rather than -inf - -inf = NaN. Elsewhere the shift by the max keeps exp from overflowing.
    m[m == -np.inf] = 0
    e = np.exp(s - m)
    total = np.sum(e, axis=2, keepdims=True)
    total[total == 0] = 1
    e /= total
    return e
