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
edit it). The cache keeps its own copy of ``lengths``. Every function takes the recurrence's
regularisers ``recurrent_mask`` and ``zoneout`` (see :func:`sequence_forward`).

Every cell runs through the two generic functions :func:`sequence_forward` and
:func:`sequence_backward`, driven by its :class:`rnnkit._cellspec.CellSpec`; ``lstm_forward``
and the others are the public per-cell forms of them.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from .._cellspec import CELLS, CellSpec, cell_for, family_cells
from . import _validate as v
from . import checkpointed
from .gates import GateOptions

LSTMGrads = CELLS["lstm"].grads
LSTMPeepholeGrads = CELLS["lstm_peephole"].grads
LSTMProjectedGrads = CELLS["lstm"].projected_grads
GRUGrads = CELLS["gru"].grads
RNNGrads = CELLS["rnn_tanh"].grads
LayerNormLSTMGrads = CELLS["layernorm_lstm"].grads
LayerNormGRUGrads = CELLS["layernorm_gru"].grads
NONLINEARITIES = tuple(s.nonlinearity for s in family_cells("rnn").values())


class SequenceCache:
    """What a training-mode forward keeps for its backward. Opaque: pass it back unchanged."""

    __slots__ = ("spec", "x", "state0", "w_ih", "w_hh", "b_ih", "b_hh", "y", "saved",
                 "lengths", "reverse", "extra", "w_hr", "options", "recurrent_mask", "zoneout",
                 "checkpoints")

    def __init__(self, spec: CellSpec, x: np.ndarray, state0: Tuple[Any, ...],
                 w_ih: np.ndarray, w_hh: np.ndarray, b_ih: Optional[np.ndarray],
                 b_hh: Optional[np.ndarray], y: np.ndarray, saved: Tuple[np.ndarray, ...],
                 lengths: Optional[np.ndarray], reverse: bool, extra: Tuple[np.ndarray, ...] = (),
                 w_hr: Optional[np.ndarray] = None, options: Optional[tuple] = None,
                 recurrent_mask: Optional[np.ndarray] = None, zoneout: Any = None,
                 checkpoints: Optional[checkpointed.Checkpoints] = None) -> None:
        self.spec, self.x, self.state0, self.w_ih, self.w_hh = spec, x, state0, w_ih, w_hh
        # Recomputation (ops.checkpointed): saved is then empty and y not read by the backward.
        self.checkpoints = checkpoints
        self.recurrent_mask, self.zoneout = recurrent_mask, zoneout
        # The biases too: a row-wise cell's backward (the LayerNorm cells) recomputes with them.
        self.b_ih, self.b_hh = b_ih, b_hh
        self.y, self.saved, self.lengths, self.reverse = y, saved, lengths, reverse
        self.extra, self.w_hr, self.options = extra, w_hr, options

    @property
    def has_bias(self) -> Tuple[bool, bool]:
        return self.b_ih is not None, self.b_hh is not None

    @property
    def segment(self) -> Optional[int]:
        """A recomputing forward's segment length (None: every activation stored)."""
        return None if self.checkpoints is None else self.checkpoints.segment

    @property
    def starts(self) -> List[Any]:
        """A recomputing forward's segment-entering states (time order); [] when stored."""
        return [] if self.checkpoints is None else self.checkpoints.starts

    def __repr__(self) -> str:
        t, b, _ = self.x.shape
        return (f"SequenceCache({self.spec.name}, T={t}, B={b}, H={self.w_hh.shape[1]}, "
                f"dtype={self.x.dtype})")


def _keep(y: np.ndarray) -> np.ndarray:
    """The cache keeps y itself (backward reads h_t from it) instead of a copy, so it is
    returned read-only: an in-place edit raises rather than silently corrupting backward."""
    y.flags.writeable = False
    return y


# ---------------------------------------------------------------- the generic pair
def sequence_forward(spec: CellSpec, x: np.ndarray, state0: Sequence[Optional[np.ndarray]],
                     w_ih: np.ndarray, w_hh: np.ndarray, b_ih: Optional[np.ndarray],
                     b_hh: Optional[np.ndarray], *, lengths: Optional[np.ndarray] = None,
                     reverse: bool = False, training: bool = True,
                     out: Optional[np.ndarray] = None, extra: Sequence[np.ndarray] = (),
                     w_hr: Optional[np.ndarray] = None, options: Optional[GateOptions] = None,
                     recurrent_mask: Optional[np.ndarray] = None, zoneout: Any = None,
                     checkpoint_every: Optional[int] = None
                     ) -> Tuple[np.ndarray, Tuple[np.ndarray, ...], Optional[SequenceCache]]:
    """Cell `spec` over a whole sequence: ``y (T,B,H), final states, cache``.

    ``extra`` holds the cell's own parameters, one (width*H,) array each as ``spec.extra``
    lists them (the peephole LSTM's peephole); none for the other cells. ``w_hr`` (P, H)
    projects the LSTM's output, as torch's ``proj_size=P``: h = W_hr (o ⊙ tanh(c)) is then P
    wide (y (T,B,P), h0 and h_n (B,P); c stays (B,H)) and w_hh is (4H, P). ``options``
    (:class:`rnnkit.ops.gates.GateOptions`): ONNX's activations, clip and input_forget.

    Recurrence regularisers (masks drawn by the caller, e.g. from a seeded generator):
    ``recurrent_mask`` (B, H) multiplies h_{t-1} in every step's recurrent product (recurrent
    dropout, Keras's recurrent_dropout: one mask per sequence; what the cell itself reads of
    h_{t-1}, GRU's z ⊙ h, is unmasked; not for the GRU with reset_after=False).
    ``zoneout`` (Krueger et al.), a probability p or (T, B, H) weights z: h_t = z ⊙ h_{t-1} +
    (1 - z) ⊙ ĥ_t with ĥ_t the cell's output (0/1 weights in training, p in inference; the
    LSTM's c is not zoned). Neither with ``w_hr``.

    ``checkpoint_every=k`` (training only): keep the activations of no step, only the states
    entering every k-th step (k rounded up to a multiple of ``_core.grad_block_steps(B)``),
    and recompute each segment in the backward (:mod:`rnnkit.ops.checkpointed`): O(T/k + k)
    activation memory for one more forward, gradients bitwise equal to the stored version's.
    Not for the cells with parameters of their own (peephole, LayerNorm).

    ``state0`` holds one (B, H) array or None (zeros) per state of the cell (``spec.states``:
    h, then c for the LSTM); the final states come back in the same order. With
    ``training=False``, x may be any view whose last axis is contiguous (a batch-first array
    swapped to (T, B, I), say) and ``out`` a writable (T, B, H) view of the same kind that
    receives y (a batch-first or bidirectional output buffer): nothing is copied.
    """
    x = v.floating_input("x", x, 3, "(T, B, I)", rows_only=not training)
    dt = x.dtype
    t, b, i = x.shape
    g = spec.gates
    if w_hr is None:
        h = p = v.hidden_size(w_hh, g, dt)
        w_hh = v.array("w_hh", w_hh, (g * h, h), dt)
    else:
        if not spec.projectable:
            raise TypeError(f"the {spec.name} cell takes no projection (w_hr): torch's "
                            "proj_size is the LSTM's")
        if not isinstance(w_hr, np.ndarray):
            raise TypeError(f"w_hr must be a numpy.ndarray, got {type(w_hr).__name__}")
        if w_hr.ndim != 2 or 0 in w_hr.shape:
            raise ValueError(f"w_hr has shape {w_hr.shape}, expected (P, H) with P, H >= 1")
        w_hr = v.array("w_hr", w_hr, w_hr.shape, dt)
        p, h = w_hr.shape
        w_hh = v.array("w_hh", w_hh, (g * h, p), dt,
                       f"(gates*H, P), with P, H from w_hr's shape {w_hr.shape}")
    w_ih = v.array("w_ih", w_ih, (g * h, i), dt, "(gates*H, I)")
    b_ih = v.optional_array("b_ih", b_ih, (g * h,), dt)
    b_hh = v.optional_array("b_hh", b_hh, (g * h,), dt)
    names = spec.state0_names
    if len(state0) != len(names):
        raise TypeError(f"{spec.family} needs {len(names)} initial state(s) {names}, got "
                        f"{len(state0)}")
    state0 = tuple([None if s is None else
                    v.array(n, s, (b, p if k == 0 else h), dt, "(B, P)" if k == 0 and
                            w_hr is not None else "(B, H)")
                    for k, (n, s) in enumerate(zip(names, state0))])
    extra = _extra_arrays(spec, extra, h, dt)
    lengths = v.lengths_array(lengths, b, t)
    if out is not None:
        if training:
            raise ValueError("out is for inference (training=False) only: the training cache "
                             "keeps y itself")
        if not isinstance(out, np.ndarray) or out.dtype != dt or out.shape != (t, b, p) or \
                not v.rows_contiguous(out):
            raise ValueError(f"out must be a writable {dt} array (T, B, H) = ({t}, {b}, {p}) "
                             "with a contiguous last axis")
    if options is not None and not isinstance(options, GateOptions):
        raise TypeError(f"options must be a rnnkit.ops.gates.GateOptions, got "
                        f"{type(options).__name__}")
    core = None if options is None else options.core(spec.family, spec.nonlinearity)
    recurrent_mask, zoneout = _regularizers(spec, recurrent_mask, zoneout, (t, b, h), dt,
                                            w_hr is not None)
    segment = _segment(spec, checkpoint_every, t, b) if training else None
    checkpoints = None
    if segment:
        call = checkpointed.SegmentCall(spec, w_ih, w_hh, b_ih, b_hh, lengths, bool(reverse),
                                        extra, w_hr, core, recurrent_mask, zoneout)
        y, finals, checkpoints = checkpointed.forward(call, x, state0, segment)
        saved: Tuple[np.ndarray, ...] = ()
    else:
        y, finals, saved = spec.forward(x, state0, w_ih, w_hh, b_ih, b_hh, lengths,
                                        bool(reverse), bool(training), out, extra, w_hr, core,
                                        recurrent_mask, zoneout)
    cache = None
    if training:
        cache = SequenceCache(spec=spec, x=x, state0=state0, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih,
                              b_hh=b_hh, y=y if segment else _keep(y),
                              saved=saved, lengths=lengths, reverse=bool(reverse),
                              extra=extra, w_hr=w_hr, options=core,
                              recurrent_mask=recurrent_mask, zoneout=zoneout,
                              checkpoints=checkpoints)
    return y, finals, cache


def _segment(spec: CellSpec, checkpoint_every: Any, steps: int, batch: int) -> Optional[int]:
    """The recomputing forward's segment length (ops.checkpointed), or None for the stored
    version: no checkpoint_every, or a sequence no longer than one segment."""
    if checkpoint_every is None:
        return None
    if isinstance(checkpoint_every, (bool, np.bool_)) or \
            not isinstance(checkpoint_every, (int, np.integer)) or checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be an integer >= 1 (steps per segment), got "
                         f"{checkpoint_every!r}")
    why = checkpointed.supports(spec)
    if why:
        raise ValueError(f"checkpoint_every (recompute) is not supported: {why}")
    segment = checkpointed.segment_steps(int(checkpoint_every), batch)
    return segment if steps > segment else None


def _regularizers(spec: CellSpec, recurrent_mask: Any, zoneout: Any, shape: Tuple[int, ...],
                  dt: np.dtype, projected: bool) -> Tuple[Optional[np.ndarray], Any]:
    """recurrent_mask and zoneout checked (see sequence_forward): arrays of x's dtype, or a
    float zoneout probability (None where 0: the plain recurrence)."""
    t, b, h = shape
    if (recurrent_mask is not None or zoneout is not None) and projected:
        raise ValueError("recurrent_mask and zoneout are not supported with a projection (w_hr)")
    if recurrent_mask is not None:
        if spec.two_phase:
            raise ValueError(f"the {spec.name} cell takes no recurrent_mask: its second "
                             "recurrent product reads r ⊙ h (use reset_after=True)")
        recurrent_mask = v.array("recurrent_mask", recurrent_mask, (b, h), dt, "(B, H)")
    if zoneout is None or isinstance(zoneout, np.ndarray):
        if zoneout is not None:
            zoneout = v.array("zoneout", zoneout, (t, b, h), dt, "(T, B, H), like y")
        return recurrent_mask, zoneout
    if isinstance(zoneout, (bool, np.bool_)) or not isinstance(zoneout, (int, float,
                                                                        np.integer,
                                                                        np.floating)):
        raise TypeError(f"zoneout must be a probability or a (T, B, H) array, got "
                        f"{type(zoneout).__name__}")
    if not 0.0 <= float(zoneout) <= 1.0:
        raise ValueError(f"zoneout must be a probability in [0, 1], got {zoneout!r}")
    return recurrent_mask, (float(zoneout) or None)


def _extra_arrays(spec: CellSpec, extra: Sequence[Any], h: int,
                  dt: np.dtype) -> Tuple[np.ndarray, ...]:
    extra = tuple(extra)
    if len(extra) != len(spec.extra):
        names = ", ".join(spec.extra_names) or "none"
        raise TypeError(f"the {spec.name} cell takes {len(spec.extra)} extra parameter(s) "
                        f"({names}), got {len(extra)}")
    return tuple(v.array(name, a, (width * h,), dt, f"({width}*H,)")
                 for (name, width), a in zip(spec.extra, extra))


def sequence_backward(cache: SequenceCache, dy: np.ndarray,
                      dstate_n: Optional[Sequence[Optional[np.ndarray]]] = None, *,
                      into: Optional[Sequence[Optional[np.ndarray]]] = None,
                      fn: str = "sequence_backward", family: Optional[str] = None
                      ) -> Tuple[np.ndarray, Tuple[np.ndarray, ...], Tuple[Any, ...]]:
    """Backpropagation through time for :func:`sequence_forward`.

    ``dy`` (T,B,H) is d(loss)/dy; ``dstate_n`` one (B,H) array or None (zero) per final state.
    Returns ``dx, d(initial states), (dw_ih, dw_hh, db_ih, db_hh, *d(extra)[, dw_hr])``
    (dw_hr for a projected forward). The weight
    gradients are ADDED to the arrays of ``into`` (same order) when it is given (the layers
    pass their ``Parameter.grad`` arrays, so nothing is allocated or summed twice); otherwise
    they are fresh arrays. db_ih / db_hh are None where the bias was None.
    """
    c = _check_cache(cache, family, fn)
    spec = c.spec
    t, b, i = c.x.shape
    p = c.w_hh.shape[1]      # the width of h and y: H, or the projection's P
    h = c.w_hh.shape[0] // spec.gates
    dt = c.x.dtype
    dy = v.array("dy", dy, (t, b, p), dt, "(T, B, P), like y (P: the projection's size, else H)")
    names = spec.dstate_n_names
    dstate_n = (None,) * len(names) if dstate_n is None else tuple(dstate_n)
    dstate_n = tuple([None if a is None else
                      v.array(n, a, (b, p if k == 0 else h), dt, f"(B, ·), like {n[1:]}")
                      for k, (n, a) in enumerate(zip(names, dstate_n))])
    gh = spec.gates * h
    projected = c.w_hr is not None
    if into is None:
        into = (np.zeros((gh, i), dt), np.zeros((gh, p), dt),
                np.zeros(gh, dt) if c.has_bias[0] else None,
                np.zeros(gh, dt) if c.has_bias[1] else None) + tuple(
                    np.zeros_like(e) for e in c.extra) + (
                        (np.zeros_like(c.w_hr),) if projected else ())
    n_into = 4 + len(c.extra) + projected
    if len(into) != n_into:
        names = ("dw_ih", "dw_hh", "db_ih", "db_hh") + tuple(
            "d" + n for n in spec.extra_names) + (("dw_hr",) if projected else ())
        raise ValueError(f"into must have {len(names)} entries ({', '.join(names)}), got "
                         f"{len(into)}")
    dw_ih, dw_hh, db_ih, db_hh = into[:4]
    dextra = tuple(into[4:4 + len(c.extra)])
    dw_hr = into[-1] if projected else None
    db_ih = db_ih if c.has_bias[0] else None
    db_hh = db_hh if c.has_bias[1] else None
    if c.checkpoints is not None:
        dx, dstate0 = checkpointed.backward(c.checkpoints, c.x, dy, dstate_n, dw_ih, dw_hh,
                                            db_ih, db_hh, dextra, dw_hr)
    else:
        dx, dstate0 = spec.backward(dy, dstate_n, c.x, c.state0, c.w_ih, c.w_hh, c.y, c.saved,
                                    c.lengths, c.reverse, dw_ih, dw_hh, db_ih, db_hh, c.extra,
                                    dextra, c.w_hr, dw_hr, c.options, c.b_ih, c.b_hh,
                                    c.recurrent_mask, c.zoneout)
    return dx, dstate0, (dw_ih, dw_hh, db_ih, db_hh, *dextra) + (
        (dw_hr,) if projected else ())


def _check_cache(cache: object, family: Optional[str], fn: str) -> SequenceCache:
    if cache is None:
        raise RuntimeError(f"{fn}: cache is None - the forward ran with training=False, which "
                           "keeps no activations; run it with training=True to backpropagate")
    if not isinstance(cache, SequenceCache) or (family and cache.spec.family != family):
        raise TypeError(f"{fn}: cache must be the cache returned by "
                        f"{family + '_forward' if family else 'a forward'}, got "
                        f"{type(cache).__name__}"
                        + (f" from {cache.spec.family}_forward"
                           if isinstance(cache, SequenceCache) else ""))
    return cache


def _grads(cache: SequenceCache, dy: Any, dstate_n: Sequence[Any], family: str) -> Any:
    dx, dstate0, weights = sequence_backward(cache, dy, dstate_n, fn=f"{family}_backward",
                                             family=family)
    grads = cache.spec.projected_grads if cache.w_hr is not None else cache.spec.grads
    return grads(dx, *dstate0, *weights)


# ---------------------------------------------------------------- the public per-cell forms
def lstm_forward(x: np.ndarray, h0: Optional[np.ndarray], c0: Optional[np.ndarray],
                 w_ih: np.ndarray, w_hh: np.ndarray, b_ih: Optional[np.ndarray],
                 b_hh: Optional[np.ndarray], *, lengths: Optional[np.ndarray] = None,
                 reverse: bool = False, training: bool = True,
                 peephole: Optional[np.ndarray] = None, w_hr: Optional[np.ndarray] = None,
                 options: Optional[GateOptions] = None,
                 recurrent_mask: Optional[np.ndarray] = None, zoneout: Any = None
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[SequenceCache]]:
    """LSTM over a whole sequence. Returns ``y (T,B,H), h_n (B,H), c_n (B,H), cache``.

    i, f, o = σ(W_i· x + b_i· + W_h· h + b_h·); g = tanh(...); c' = f⊙c + i⊙g; h' = o⊙tanh(c').
    ``peephole`` (3H,) = [p_i, p_f, p_o] makes it the peephole LSTM (ONNX's P input, in this
    order): i = σ(... + p_i⊙c), f = σ(... + p_f⊙c), o = σ(... + p_o⊙c'); its backward then
    returns ``dpeephole`` too. ``w_hr`` (P, H) adds torch's projection (``proj_size=P``):
    h' = W_hr (o⊙tanh(c')), so y, h0 and h_n are P wide and w_hh is (4H, P); its backward then
    returns :class:`LSTMProjectedGrads` (``dw_hr`` last). ``options``: ONNX's activations,
    clip and input_forget (:class:`rnnkit.ops.gates.GateOptions`).
    """
    spec = cell_for("lstm", peephole=peephole is not None)
    y, (h_n, c_n), cache = sequence_forward(spec, x, (h0, c0), w_ih, w_hh, b_ih, b_hh,
                                            lengths=lengths, reverse=reverse,
                                            training=training,
                                            extra=() if peephole is None else (peephole,),
                                            w_hr=w_hr, options=options,
                                            recurrent_mask=recurrent_mask, zoneout=zoneout)
    return y, h_n, c_n, cache


def lstm_backward(cache: SequenceCache, dy: np.ndarray, dh_n: Optional[np.ndarray] = None,
                  dc_n: Optional[np.ndarray] = None) -> Any:
    """Backpropagation through time for :func:`lstm_forward` (a peephole forward's returns
    :class:`LSTMPeepholeGrads`, with ``dpeephole`` last).

    ``dy`` (T,B,H) is d(loss)/dy; ``dh_n``, ``dc_n`` (B,H) the gradients reaching the final
    states (None = 0). Returns :class:`LSTMGrads` ``(dx, dh0, dc0, dw_ih, dw_hh, db_ih,
    db_hh)`` of fresh arrays; db_ih/db_hh are None where the bias was None.
    """
    return _grads(cache, dy, (dh_n, dc_n), "lstm")


def gru_forward(x: np.ndarray, h0: Optional[np.ndarray], w_ih: np.ndarray, w_hh: np.ndarray,
                b_ih: Optional[np.ndarray], b_hh: Optional[np.ndarray], *,
                lengths: Optional[np.ndarray] = None, reverse: bool = False,
                training: bool = True, reset_after: bool = True,
                options: Optional[GateOptions] = None,
                recurrent_mask: Optional[np.ndarray] = None, zoneout: Any = None
                ) -> Tuple[np.ndarray, np.ndarray, Optional[SequenceCache]]:
    """GRU over a whole sequence. Returns ``y (T,B,H), h_n (B,H), cache``.

    r, z = σ(W_i· x + b_i· + W_h· h + b_h·); n = tanh(W_in x + b_in + r⊙(W_hn h + b_hn));
    h' = (1 - z)⊙n + z⊙h. With ``reset_after=False`` (Cho et al.'s original formula, ONNX's
    linear_before_reset=0, Keras's reset_after=False), n = tanh(W_in x + b_in + W_hn (r⊙h) +
    b_hn); same weights, shapes and gate order. ``options``: ONNX's activations and clip
    (:class:`rnnkit.ops.gates.GateOptions`).
    """
    spec = cell_for("gru", reset_after=reset_after)
    y, (h_n,), cache = sequence_forward(spec, x, (h0,), w_ih, w_hh, b_ih, b_hh,
                                        lengths=lengths, reverse=reverse, training=training,
                                        options=options, recurrent_mask=recurrent_mask,
                                        zoneout=zoneout)
    return y, h_n, cache


def gru_backward(cache: SequenceCache, dy: np.ndarray, dh_n: Optional[np.ndarray] = None) -> Any:
    """Backpropagation through time for :func:`gru_forward` (see :func:`lstm_backward`):
    :class:`GRUGrads` ``(dx, dh0, dw_ih, dw_hh, db_ih, db_hh)``."""
    return _grads(cache, dy, (dh_n,), "gru")


def rnn_forward(x: np.ndarray, h0: Optional[np.ndarray], w_ih: np.ndarray, w_hh: np.ndarray,
                b_ih: Optional[np.ndarray], b_hh: Optional[np.ndarray], *,
                nonlinearity: str = "tanh", lengths: Optional[np.ndarray] = None,
                reverse: bool = False, training: bool = True,
                options: Optional[GateOptions] = None,
                recurrent_mask: Optional[np.ndarray] = None, zoneout: Any = None
                ) -> Tuple[np.ndarray, np.ndarray, Optional[SequenceCache]]:
    """Elman RNN over a whole sequence: h' = act(W_ih x + b_ih + W_hh h + b_hh).

    ``nonlinearity`` is "tanh" or "relu". Returns ``y (T,B,H), h_n (B,H), cache``.
    ``options``: ONNX's activation and clip (:class:`rnnkit.ops.gates.GateOptions`).
    """
    spec = cell_for("rnn", nonlinearity)
    y, (h_n,), cache = sequence_forward(spec, x, (h0,), w_ih, w_hh, b_ih, b_hh,
                                        lengths=lengths, reverse=reverse, training=training,
                                        options=options, recurrent_mask=recurrent_mask,
                                        zoneout=zoneout)
    return y, h_n, cache


def rnn_backward(cache: SequenceCache, dy: np.ndarray, dh_n: Optional[np.ndarray] = None) -> Any:
    """Backpropagation through time for :func:`rnn_forward` (see :func:`lstm_backward`):
    :class:`RNNGrads` ``(dx, dh0, dw_ih, dw_hh, db_ih, db_hh)``."""
    return _grads(cache, dy, (dh_n,), "rnn")


def layernorm_lstm_forward(x: np.ndarray, h0: Optional[np.ndarray], c0: Optional[np.ndarray],
                           w_ih: np.ndarray, w_hh: np.ndarray, b_ih: Optional[np.ndarray],
                           b_hh: Optional[np.ndarray], *, ln_weight_ih: np.ndarray,
                           ln_weight_hh: np.ndarray, ln_weight_c: np.ndarray,
                           ln_bias_c: np.ndarray, lengths: Optional[np.ndarray] = None,
                           reverse: bool = False, training: bool = True,
                           recurrent_mask: Optional[np.ndarray] = None, zoneout: Any = None
                           ) -> Tuple[np.ndarray, np.ndarray, np.ndarray,
                                      Optional[SequenceCache]]:
    """LayerNorm LSTM (Ba et al. 2016; haste's LayerNormLSTM) over a whole sequence. Returns
    ``y (T,B,H), h_n (B,H), c_n (B,H), cache``.

    With LN(v; γ) = γ ⊙ (v - mean(v)) / sqrt(var(v) + 1e-5) over all 4H values of a row::

        a = LN(W_ih x; ln_weight_ih) + b_ih + LN(W_hh h; ln_weight_hh) + b_hh
        i, f, o = σ(a_i, a_f, a_o);  g = tanh(a_g);  c' = f⊙c + i⊙g
        h' = o ⊙ tanh(LN(c'; ln_weight_c) + ln_bias_c)        (LN over the H units)

    Weights and gate order as :func:`lstm_forward`; the biases are the gate LayerNorms' β
    (None: none). ``ln_weight_ih``, ``ln_weight_hh`` are (4H,), ``ln_weight_c``,
    ``ln_bias_c`` (H,). The state carried is c' itself, not its normalisation.
    """
    spec = cell_for("layernorm_lstm")
    y, (h_n, c_n), cache = sequence_forward(
        spec, x, (h0, c0), w_ih, w_hh, b_ih, b_hh, lengths=lengths, reverse=reverse,
        training=training, extra=(ln_weight_ih, ln_weight_hh, ln_weight_c, ln_bias_c),
        recurrent_mask=recurrent_mask, zoneout=zoneout)
    return y, h_n, c_n, cache


def layernorm_lstm_backward(cache: SequenceCache, dy: np.ndarray,
                            dh_n: Optional[np.ndarray] = None,
                            dc_n: Optional[np.ndarray] = None) -> Any:
    """Backpropagation through time for :func:`layernorm_lstm_forward`:
    :class:`LayerNormLSTMGrads` ``(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dln_weight_ih,
    dln_weight_hh, dln_weight_c, dln_bias_c)``, as :func:`lstm_backward`."""
    return _grads(cache, dy, (dh_n, dc_n), "layernorm_lstm")


def layernorm_gru_forward(x: np.ndarray, h0: Optional[np.ndarray], w_ih: np.ndarray,
                          w_hh: np.ndarray, b_ih: Optional[np.ndarray],
                          b_hh: Optional[np.ndarray], *, ln_weight_ih: np.ndarray,
                          ln_weight_hh: np.ndarray, lengths: Optional[np.ndarray] = None,
                          reverse: bool = False, training: bool = True,
                          recurrent_mask: Optional[np.ndarray] = None, zoneout: Any = None
                          ) -> Tuple[np.ndarray, np.ndarray, Optional[SequenceCache]]:
    """LayerNorm GRU (haste's LayerNormGRU) over a whole sequence. Returns ``y (T,B,H),
    h_n (B,H), cache``.

    With LN over all 3H values of a row (see :func:`layernorm_lstm_forward`)::

        ax = LN(W_ih x; ln_weight_ih) + b_ih;   ah = LN(W_hh h; ln_weight_hh) + b_hh
        r = σ(ax_r + ah_r);  z = σ(ax_z + ah_z);  n = tanh(ax_n + r ⊙ ah_n)
        h' = (1 - z)⊙n + z⊙h

    Weights and gate order as :func:`gru_forward`; ``ln_weight_ih``, ``ln_weight_hh`` (3H,).
    """
    spec = cell_for("layernorm_gru")
    y, (h_n,), cache = sequence_forward(spec, x, (h0,), w_ih, w_hh, b_ih, b_hh,
                                        lengths=lengths, reverse=reverse, training=training,
                                        extra=(ln_weight_ih, ln_weight_hh),
                                        recurrent_mask=recurrent_mask, zoneout=zoneout)
    return y, h_n, cache


def layernorm_gru_backward(cache: SequenceCache, dy: np.ndarray,
                           dh_n: Optional[np.ndarray] = None) -> Any:
    """Backpropagation through time for :func:`layernorm_gru_forward`:
    :class:`LayerNormGRUGrads` ``(dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dln_weight_ih,
    dln_weight_hh)``."""
    return _grads(cache, dy, (dh_n,), "layernorm_gru")
