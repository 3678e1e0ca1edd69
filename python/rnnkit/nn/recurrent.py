"""Sequence layers RNN, LSTM and GRU, with torch.nn's arguments, names, shapes and init.

Each layer and direction is one call of the single-direction kernels in :mod:`rnnkit.ops`
(no Python loop over time steps); multi-layer and bidirectional stacks are compositions here.

Shape legend: T steps, B batch, I input_size, H hidden_size, L num_layers, D = 2 if
bidirectional else 1, G gates (RNN 1, GRU 3, LSTM 4).

======================  =====================================================
x                       (T, B, I), or (B, T, I) with batch_first, or (T, I) unbatched
y                       (T, B, D*H), or (B, T, D*H) with batch_first, or (T, D*H)
h0, c0, h_n, c_n        (L*D, B, H) (never batch-first), or (L*D, H) unbatched;
                        index k*D + d is layer k, direction d (1 = reverse)
lengths                 (B,) ints in [0, T]: sequence b's valid steps are t < lengths[b]
======================  =====================================================
"""
from __future__ import annotations

import functools
import math
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import ops
from .._cellspec import EXTRA_INIT, CellSpec, cell_for
from ..ops import _validate, checkpointed
from ..ops._validate import _shape_str as _shape
from ..ops._validate import rows_contiguous
from ._calls import CallState
from ._directions import run_directions
from ._options import (GATE_DEFAULTS, RECOMPUTE_DEFAULTS, REGULARIZER_DEFAULTS,
                       cell_options_repr, flag, set_gate_options, without_defaults)
from .module import (Module, _dtype, _lengths_arg, _no_cache_error, _positive_int,
                     _probability)
from .packed_steps import PackedSteps
from .parameter import Parameter, checked_data

# Eval-mode batches up to this size run on weights packed once per parameter change (see
# _run_locked); measured on AVX-512 (Intel Xeon, 2 cores) the packed path is 1.04-4.3x faster
# from B = 1 to 32 at H 256-1024.
PACKED_MAX_BATCH = 32


def _as_float_array(name: str, a: Any) -> np.ndarray:
    """``a`` as an ndarray (no copy yet), rejecting non-numeric input with a TypeError."""
    arr = a if isinstance(a, np.ndarray) else np.asarray(a)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    return arr


def _state_array(name: str, a: Any, shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    arr = _as_float_array(name, a)
    if arr.shape != shape:
        layout = ("(num_layers*num_directions, B, width)" if len(shape) == 3 else
                  "(num_layers*num_directions, width) for unbatched input")
        layout += " (width: hidden_size, or proj_size for a projected LSTM's h)"
        raise ValueError(f"{name} has shape {_shape(arr.shape)}, expected {_shape(shape)} "
                         f"{layout}")
    return np.ascontiguousarray(arr, dtype)


# family -> layer class, filled as the classes below are defined: what benchmarks, tests and
# layer-building code use to go from a cell spec (rnnkit._cellspec) to its layer.
LAYER_CLASSES: Dict[str, type] = {}


class _RNNBase(Module):
    """Shared machinery of :class:`RNN`, :class:`LSTM` and :class:`GRU`: everything is driven
    by the layer's cell spec (gates, states); nothing here knows which cell it runs."""

    _family = ""              # the cell family of rnnkit._cellspec ("lstm", "gru", "rnn")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls._family and cls.__module__ == __name__:
            LAYER_CLASSES[cls._family] = cls

    _takes_lengths = True     # Sequential passes ``lengths`` on to this layer
    _returns_state = True     # forward returns (y, state); Sequential keeps y only

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, bias: bool,
                 batch_first: bool, dropout: float, bidirectional: bool, dtype: Any,
                 seed: Optional[int], nonlinearity: Optional[str] = None,
                 proj_size: int = 0, gates: Optional[Dict[str, Any]] = None,
                 recurrent_dropout: float = 0.0, zoneout: float = 0.0,
                 recompute: bool = False, checkpoint_every: Optional[int] = None,
                 **cell_options: Any) -> None:
        super().__init__()
        self.input_size = _positive_int("input_size", input_size)
        self.hidden_size = _positive_int("hidden_size", hidden_size)
        self.num_layers = _positive_int("num_layers", num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = _probability("dropout", dropout)
        self.bidirectional = bool(bidirectional)
        self._spec: CellSpec = cell_for(self._family, nonlinearity, **cell_options)
        self.nonlinearity = nonlinearity
        for name, value in cell_options.items():  # e.g. GRU's reset_after, for get_config
            setattr(self, name, value)
        # ONNX's activations, clip and input_forget (rnnkit.ops.gates); None when they are
        # the cell's usual math.
        self._gates = set_gate_options(self, self._family, nonlinearity, gates)
        self.dtype = _dtype(dtype)
        if self.dropout > 0 and self.num_layers == 1:
            # As torch: dropout acts between layers only, so one layer makes it a no-op.
            warnings.warn(f"dropout={self.dropout} has no effect with num_layers=1: dropout "
                          "is applied to the outputs of every layer but the last",
                          UserWarning, stacklevel=3)
        self.proj_size = self._checked_proj_size(proj_size)
        # The recurrence's own regularisers (ops.sequence_forward), masks from self._rng.
        self.recurrent_dropout = _probability("recurrent_dropout", recurrent_dropout)
        self.zoneout = _probability("zoneout", zoneout)
        if (self.recurrent_dropout or self.zoneout) and self.proj_size:
            raise ValueError("recurrent_dropout and zoneout are not supported with proj_size")
        if self.recurrent_dropout and self._spec.two_phase:
            raise ValueError(f"recurrent_dropout is not supported by {type(self).__name__}'s "
                             f"{self._spec.name} cell (its second recurrent product reads "
                             "r ⊙ h); use reset_after=True")
        self.recompute, self.checkpoint_every = self._checked_recompute(recompute,
                                                                        checkpoint_every)
        g, h = self._spec.gates, self.hidden_size
        out = self.proj_size or h  # the width of h and of each direction's output
        self._out_size = out
        d_count = 2 if self.bidirectional else 1
        self._rng = np.random.default_rng(seed)
        bound = 1.0 / math.sqrt(h)
        # (parameter name, shape) per layer and direction, in torch's order: w_ih, w_hh, b_ih,
        # b_hh; then the cell's extra parameters (the peephole LSTM's peephole_l{k}) and the
        # projection weight_hr_l{k} (P, H) of a proj_size LSTM.
        self._weight_names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") + \
            self._spec.extra_names + (("weight_hr",) if self.proj_size else ())
        self._weight_checks = [
            [list(zip((n + self._suffix(k, d) for n in self._weight_names),
                      ((g * h, self.input_size if k == 0 else d_count * out), (g * h, out),
                       (g * h,), (g * h,)) + tuple((w * h,) for _, w in self._spec.extra)
                      + (((out, h),) if self.proj_size else ())))
             for d in range(d_count)] for k in range(self.num_layers)]
        for k in range(self.num_layers):
            for d in range(d_count):
                for (name, shape), base in zip(self._weight_checks[k][d], self._weight_names):
                    if not self.bias and name.startswith("bias_"):
                        continue
                    if base in EXTRA_INIT:  # a LayerNorm's gain (1) or bias (0): no draw
                        w = np.full(shape, EXTRA_INIT[base])
                    else:
                        w = self._rng.uniform(-bound, bound, shape)
                    setattr(self, name, Parameter(w, self.dtype))
        self._hx_names = self._state_names("hx", self._spec.state0_names)
        self._dhx_names = self._state_names("dhx", self._spec.dstate_n_names)
        self._calls = CallState()
        # Eval mode at small batches (serving, generation, streaming): each layer's and
        # direction's weights packed once (weight set k * num_directions + d).
        self._packed = PackedSteps(self._spec, lambda: list(self._parameters.values()),
                                   lambda: [self._weight_data(k, d)
                                            for k in range(self.num_layers)
                                            for d in range(self.num_directions)],
                                   self._gates.core(self._family, nonlinearity)
                                   if self._gates else None)
        # Stateful mode for truncated BPTT: with carry_state set, a forward without hx starts
        # from the previous forward's final states (values only: no gradient flows back).
        self.carry_state = False
        self._carried: Optional[List[np.ndarray]] = None

    def _checked_proj_size(self, proj_size: Any) -> int:
        if isinstance(proj_size, bool) or not isinstance(proj_size, (int, np.integer)) \
                or proj_size < 0:
            raise ValueError(f"proj_size must be an integer >= 0, got {proj_size!r}")
        if proj_size and not self._spec.projectable:
            raise ValueError(f"proj_size is the LSTM's ({type(self).__name__} has none)")
        if proj_size >= self.hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size={self.hidden_size}, "
                             f"got {proj_size} (as torch requires)")
        return int(proj_size)

    def _checked_recompute(self, recompute: Any, every: Any) -> Tuple[bool, Optional[int]]:
        recompute = flag("recompute", recompute)
        if every is not None:
            if isinstance(every, (bool, np.bool_)) or not isinstance(every, (int, np.integer)) \
                    or every < 1:
                raise ValueError(f"checkpoint_every must be None or an integer >= 1, got "
                                 f"{every!r}")
            if not recompute:
                raise ValueError("checkpoint_every is the segment length of recompute=True; "
                                 "set recompute=True too")
            every = int(every)
        why = checkpointed.supports(self._spec) if recompute else None
        if why:
            raise ValueError(f"recompute=True is not supported by {type(self).__name__}: {why}")
        return recompute, every

    def _checkpoint_every(self, steps: int) -> Optional[int]:
        """The segment length asked of the kernels in training (None: store everything)."""
        if not (self.training and self.recompute):
            return None
        return self.checkpoint_every or checkpointed.auto_segment(steps)

    def _state_width(self, i: int) -> int:
        """The width of state i: h is proj_size wide in a projected LSTM, c hidden_size."""
        return self._out_size if i == 0 else self.hidden_size

    def reset_state(self) -> None:
        """Forget the carried state: the next forward starts from zeros (or its hx)."""
        self._carried = None

    # ------------------------------------------------------------------ helpers
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction else "")

    def _weights(self, layer: int, direction: int) -> List[Optional[Parameter]]:
        """w_ih, w_hh, b_ih, b_hh (None without biases), then the extra parameters."""
        sfx = self._suffix(layer, direction)
        return [self._parameters.get(n + sfx) for n in self._weight_names]

    def _weight_data(self, layer: int, direction: int) -> List[Optional[np.ndarray]]:
        """The weights' arrays of one layer and direction, checked by name (checked_data)."""
        return checked_data(self._parameters, self._weight_checks[layer][direction], self.dtype)

    def _on_mode_change(self) -> None:
        self._calls.clear()
        self._packed.drop()

    @property
    def _quantizable(self) -> Tuple[str, ...]:  # type: ignore[override]
        """The weight matrices (weight_ih/hh/hr of every layer and direction). None for the
        LayerNorm cells: their LayerNorms rescale each product to unit variance, and with it
        the int8 error (measured 5.6% of y for a LayerNormLSTM, H 96, against ~1% elsewhere)."""
        if self._family.startswith("layernorm"):
            return ()
        return tuple(n for n in self._parameters if n.startswith("weight_"))

    def _check_quantizable(self, kind: str) -> None:
        super()._check_quantizable(kind)
        if self.zoneout:
            raise ValueError(f"{type(self).__name__} with zoneout has no {kind} form yet")

    def _set_quantized(self, kind: str) -> None:
        super()._set_quantized(kind)
        self._packed.quantized = kind

    def _on_dtype_change(self) -> None:
        self._on_mode_change()
        if self._carried is not None:     # the carried state continues in the new dtype
            self._carried = [a.astype(self.dtype) for a in self._carried]

    def flatten_parameters(self) -> None:
        """No-op, for scripts ported from torch (weights are always one array each)."""

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        s += cell_options_repr(self)
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False), ("proj_size", 0),
                              ("recurrent_dropout", 0.0), ("zoneout", 0.0),
                              ("recompute", False), ("checkpoint_every", None)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        return s + f", dtype={self.dtype.name}"

    def _prepare_input(self, x: Any) -> Tuple[np.ndarray, bool]:
        """x as a time-major (T, B, I) array of the layer dtype: C-contiguous in training (one
        copy at most); in eval mode a view wherever its rows already are contiguous (the
        inference kernels read a batch-first array in place)."""
        arr = _as_float_array("x", x)
        if arr.ndim not in (2, 3):
            raise ValueError(f"x must be 3-D {'(B, T, I)' if self.batch_first else '(T, B, I)'}"
                             f" or 2-D (T, I) unbatched, got shape {_shape(arr.shape)}")
        if arr.shape[-1] != self.input_size:
            raise ValueError(f"x has shape {_shape(arr.shape)}, expected last axis "
                             f"input_size={self.input_size}")
        unbatched = arr.ndim == 2
        if unbatched:
            arr = arr[:, None, :]
        elif self.batch_first:
            arr = arr.swapaxes(0, 1)
        if not self.training and arr.dtype == self.dtype and (arr.flags.c_contiguous
                                                               or rows_contiguous(arr)):
            return arr, unbatched
        return np.ascontiguousarray(arr, self.dtype), unbatched

    def _state_names(self, prefix: str, names: Tuple[str, ...]) -> List[str]:
        """How states are named in errors: "hx (h0)", or "hx[0] (h0)", "hx[1] (c0)"."""
        if len(names) == 1:
            return [f"{prefix} ({names[0]})"]
        return [f"{prefix}[{i}] ({n})" for i, n in enumerate(names)]

    def _prepare_states(self, hx: Any, batch: int, unbatched: bool) -> List[Optional[np.ndarray]]:
        """hx as a list of (L*D, B, H) arrays, one per cell state (h0, plus c0 for the LSTM);
        None = zeros."""
        spec = self._spec
        n_states = len(spec.states)
        if hx is None:
            return [None] * n_states
        if n_states > 1:
            if not isinstance(hx, (tuple, list)) or len(hx) != n_states:
                raise TypeError(f"{type(self).__name__} hx must be a tuple "
                                f"({', '.join(spec.state0_names)}) of arrays, got "
                                f"{type(hx).__name__}")
            items = list(hx)
        else:
            if isinstance(hx, (tuple, list)):
                raise TypeError(f"{type(self).__name__} hx must be one array h0, got a "
                                f"{type(hx).__name__}")
            items = [hx]
        names = self._hx_names
        ld = self.num_layers * self.num_directions
        out = []
        for i, (name, a) in enumerate(zip(names, items)):
            if a is None:
                out.append(None)
                continue
            w = self._state_width(i)
            arr = _state_array(name, a, (ld, w) if unbatched else (ld, batch, w), self.dtype)
            out.append(arr[:, None, :].copy() if unbatched else arr)
        return out

    def _dropout_mask(self, shape: Tuple[int, ...]) -> np.ndarray:
        p = self.dropout
        if p >= 1.0:
            return np.zeros(shape, self.dtype)
        keep = self._rng.random(shape) >= p
        return keep.astype(self.dtype) * self.dtype.type(1.0 / (1.0 - p))

    def _regularizers(self, shape: Tuple[int, int, int]) -> Dict[str, Any]:
        """One layer and direction's recurrent_mask and zoneout for ops.sequence_forward, at
        shape (T, B, H): in training masks drawn from the layer's generator (recurrent mask
        first), in eval no recurrent dropout and zoneout's expectation (its probability)."""
        t, b, h = shape
        kw: Dict[str, Any] = {}
        if self.training and self.recurrent_dropout > 0:
            p = self.recurrent_dropout
            keep = self._rng.random((b, h)) >= p
            kw["recurrent_mask"] = keep.astype(self.dtype) * self.dtype.type(
                0.0 if p >= 1.0 else 1.0 / (1.0 - p))
        if self.zoneout > 0:
            kw["zoneout"] = ((self._rng.random(shape) < self.zoneout).astype(self.dtype)
                             if self.training else self.zoneout)
        return kw

    # ------------------------------------------------------------------ forward
    def _run(self, x: Any, hx: Any, lengths: Any) -> Tuple[np.ndarray, List[np.ndarray]]:
        with self._calls.lock:
            return self._run_locked(x, hx, lengths)

    def _run_locked(self, x: Any, hx: Any, lengths: Any) -> Tuple[np.ndarray, List[np.ndarray]]:
        if self.quantized:
            self._inference_only()
        xt, unbatched = self._prepare_input(x)
        t, b, _ = xt.shape
        if unbatched and lengths is not None:
            raise ValueError("lengths needs batched input: x is 2-D (T, I) (unbatched); "
                             "give x as (T, 1, I) with lengths of shape (1,)")
        # Checked and copied once here rather than by each layer and direction's kernel call.
        lengths = _validate.lengths_array(_lengths_arg(lengths), b, t)
        if hx is None and self.carry_state and self._carried is not None:
            if self.bidirectional:
                raise ValueError("carry_state (truncated BPTT) needs a unidirectional layer: "
                                 "the reverse direction cannot continue across chunks")
            if self._carried[0].shape[1] != b:
                raise ValueError(f"carry_state: the batch has {b} sequences but the carried "
                                 f"state has {self._carried[0].shape[1]}; call reset_state()")
            states = list(self._carried)
        else:
            states = self._prepare_states(hx, b, unbatched)
        spec, training = self._spec, self.training
        run_training = training
        d_count, h = self.num_directions, self._out_size  # h: each direction's output width
        ld = self.num_layers * d_count
        finals = [np.empty((ld, b, self._state_width(i)), self.dtype)
                  for i in range(len(states))]
        caches: List[List[Any]] = []
        masks: List[Optional[np.ndarray]] = []
        # One step of a unidirectional layer in eval mode (generation, streaming): compiled
        # steps with each layer's weights packed once, as the cells do.
        one_step = not run_training and t == 1 and lengths is None and d_count == 1
        # Inference at a small batch is bound by reading the weights: run it on the weights
        # packed once (kept until a parameter changes) instead of packing them on every call,
        # which costs as much as the steps. Larger batches are bound by arithmetic, and the
        # sequence kernel splits their work over more threads.
        # int8 and bfloat16 weights live only in the packed form: any batch runs there, with
        # lengths too.
        packed_run = (not run_training and not one_step and t > 0 and not self.zoneout
                      and (self.quantized or (lengths is None and b <= PACKED_MAX_BATCH)))
        # Inference writes every direction straight into its slot of the layer's output, laid
        # out as the caller wants it: no concatenation of directions, no batch-first transposes
        # (a time-major unidirectional layer has neither to save).
        in_place = (not run_training and not one_step and not unbatched
                    and (self.batch_first or d_count > 1))
        inp = xt
        for k in range(self.num_layers):
            ys, layer_caches = [], []
            buf = out_tm = None
            if in_place:
                buf = np.empty((b, t, d_count * h) if self.batch_first else (t, b, d_count * h),
                               self.dtype)
                out_tm = buf.swapaxes(0, 1) if self.batch_first else buf   # (T, B, D*H) view
            inp_packed = np.ascontiguousarray(inp) if packed_run else None  # both directions
            # One call per direction, prepared here in direction order (the regularisers draw
            # from the layer's generator) and run by run_directions, concurrently where the
            # threads allow it.
            calls = []
            for d in range(d_count):
                idx = k * d_count + d
                s0 = [None if s is None else s[idx] for s in states]
                if one_step or packed_run:   # compiled steps need every state, contiguous
                    s0 = [np.zeros((b, self._state_width(i)), self.dtype) if a is None
                          else np.ascontiguousarray(a) for i, a in enumerate(s0)]
                if one_step:
                    calls.append(functools.partial(self._one_step, idx, inp, s0))
                elif packed_run:
                    calls.append(functools.partial(
                        self._packed_sequence, idx, inp_packed, s0, d, out_tm, h, lengths))
                else:
                    w = self._weight_data(k, d)
                    n_extra = len(spec.extra)
                    calls.append(functools.partial(
                        ops.sequence_forward, spec, inp, s0, *w[:4], lengths=lengths,
                        reverse=bool(d), training=run_training, extra=w[4:4 + n_extra],
                        w_hr=w[-1] if self.proj_size else None, options=self._gates,
                        out=None if out_tm is None else out_tm[:, :, d * h:(d + 1) * h],
                        checkpoint_every=self._checkpoint_every(t),
                        **self._regularizers((t, b, h))))
            results = (run_directions(calls) if not (one_step or packed_run)
                       else [call() for call in calls])
            for d, (y, state_n, cache) in enumerate(results):
                for i, s in enumerate(state_n):
                    finals[i][k * d_count + d] = s
                ys.append(y)
                layer_caches.append(cache)
            if out_tm is not None:
                out = out_tm
            else:
                out = ys[0] if d_count == 1 else np.concatenate(ys, axis=2)
            mask = None
            if training and self.dropout > 0 and k < self.num_layers - 1:
                mask = self._dropout_mask(out.shape)
                out = out * mask
            caches.append(layer_caches)
            masks.append(mask)
            inp = out
        self._calls.put({"caches": caches, "masks": masks, "unbatched": unbatched,
                         "shape": (t, b)} if training else None)
        if self.carry_state and not unbatched:
            self._carried = [f.copy() for f in finals]
        if unbatched:
            return inp[:, 0, :], [f[:, 0, :] for f in finals]
        if in_place:
            return buf, finals               # already in the caller's layout
        if self.batch_first:
            return np.ascontiguousarray(inp.swapaxes(0, 1)), finals
        return inp, finals

    def _one_step(self, idx: int, inp: np.ndarray, s0: List[np.ndarray]) -> Tuple[Any, ...]:
        """One eval step of weight set idx on the packed weights: (y, states, no cache)."""
        state_n = self._packed.step(idx, np.ascontiguousarray(inp[0]), s0)
        if self.zoneout:  # its expectation, as the sequence kernel's inference
            p = self.dtype.type(self.zoneout)
            state_n = (p * s0[0] + (1 - p) * state_n[0],) + tuple(state_n[1:])
        return state_n[0][None], state_n, None

    def _packed_sequence(self, idx: int, inp: np.ndarray, s0: List[np.ndarray], d: int,
                         out_tm: Optional[np.ndarray], h: int,
                         lengths: Optional[np.ndarray]) -> Tuple[Any, ...]:
        """An eval sequence of weight set idx on the packed weights, written into direction
        d's slot of out_tm where given: (y, states, no cache)."""
        y, state_n = self._packed.sequence(idx, inp, s0, reverse=bool(d), lengths=lengths)
        if out_tm is not None:
            out_tm[:, :, d * h:(d + 1) * h] = y
        return y, state_n, None

    # ------------------------------------------------------------------ backward
    def _backprop(self, dy: Any, dstates: List[Any]) -> Tuple[np.ndarray, List[np.ndarray]]:
        with self._calls.lock:
            c = self._calls.take()     # one backward per forward, as torch frees its graph
            if c is None:
                raise _no_cache_error(self)
            try:
                return self._backprop_locked(c, dy, dstates)
            except (TypeError, ValueError):
                self._calls.put(c)     # a rejected argument consumes nothing: try again
                raise

    def _backprop_locked(self, c: dict, dy: Any,
                         dstates: List[Any]) -> Tuple[np.ndarray, List[np.ndarray]]:
        t, b = c["shape"]
        unbatched = c["unbatched"]
        d_count, h = self.num_directions, self._out_size  # h: each direction's output width
        ld = self.num_layers * d_count
        if unbatched:
            y_shape: Tuple[int, ...] = (t, d_count * h)
        elif self.batch_first:
            y_shape = (b, t, d_count * h)
        else:
            y_shape = (t, b, d_count * h)
        dy_arr = _as_float_array("dy", dy)
        if dy_arr.shape != y_shape:
            raise ValueError(f"dy has shape {_shape(dy_arr.shape)}, expected "
                             f"{_shape(y_shape)} (the shape of y)")
        names = self._dhx_names
        dfinal = []
        for i, (name, a) in enumerate(zip(names, dstates)):
            if a is None:
                dfinal.append(None)
                continue
            w = self._state_width(i)
            arr = _state_array(name, a, (ld, w) if unbatched else (ld, b, w), self.dtype)
            dfinal.append(arr[:, None, :].copy() if unbatched else arr)
        if unbatched:
            d_out = np.ascontiguousarray(dy_arr[:, None, :], self.dtype)
        elif self.batch_first:
            d_out = np.ascontiguousarray(dy_arr.swapaxes(0, 1), self.dtype)
        else:
            d_out = np.ascontiguousarray(dy_arr, self.dtype)
        dinit = [np.zeros((ld, b, self._state_width(i)), self.dtype)
                 for i in range(len(dstates))]
        for k in reversed(range(self.num_layers)):
            mask = c["masks"][k]
            if mask is not None:
                d_out = d_out * mask
            calls = []
            for d in range(d_count):
                idx = k * d_count + d
                dy_kd = d_out if d_count == 1 else d_out[:, :, d * h:(d + 1) * h]
                dn = [None if s is None else s[idx] for s in dfinal]
                # ADDED straight into each Parameter.grad: no fresh arrays, no second sum.
                into = [None if p is None else p.writable_grad() for p in self._weights(k, d)]
                calls.append(functools.partial(ops.sequence_backward, c["caches"][k][d], dy_kd,
                                               dn, into=into))
            d_in = None
            for d, (dx, dstate0, _) in enumerate(run_directions(calls)):
                for i, g in enumerate(dstate0):
                    dinit[i][k * d_count + d] = g
                d_in = dx if d_in is None else d_in + dx
            d_out = d_in
        if unbatched:
            return d_out[:, 0, :], [s[:, 0, :] for s in dinit]
        if self.batch_first:
            return np.ascontiguousarray(d_out.swapaxes(0, 1)), dinit
        return d_out, dinit


_ARGS_DOC = """
    Args:
        input_size: I, features per step of x.
        hidden_size: H, features of the hidden state.
        num_layers: L stacked layers; layer k > 0 takes layer k-1's output (D*H features).
        bias: if False, no bias_ih / bias_hh parameters.
        batch_first: x and y are (B, T, ·) instead of (T, B, ·); states never are.
        dropout: probability of zeroing each output of every layer but the last, in
            training mode only (inverted dropout; masks from the layer's seeded generator).
        bidirectional: add a reverse direction per layer; outputs are concatenated
            [forward, reverse] on the last axis.
        recurrent_dropout: probability of dropping each unit of h in the recurrent product,
            in training mode only, with one mask per sequence and call, as Keras's
            ``recurrent_dropout`` (Gal & Ghahramani); the cell's own use of h (GRU's z ⊙ h) is
            unmasked. Not with proj_size, nor with GRU(reset_after=False).
        zoneout: probability that a unit of h keeps its previous value at a step (Krueger et
            al.; haste's zoneout): h' = z ⊙ h + (1 - z) ⊙ cell(x, h); in eval mode the
            expectation z = zoneout. The LSTM's c is not zoned. Not with proj_size.
            Both draw their masks from the layer's seeded generator.
        recompute: False (default) or True: training forwards keep no step's activations,
            only the states entering every ``checkpoint_every``-th step, and the backward
            recomputes each segment from its checkpoint (:mod:`rnnkit.ops.checkpointed`):
            activation memory O(T/k + k) instead of O(T) for one more forward per step, with
            gradients bitwise equal to ``recompute=False``'s. Not with peephole=True.
        checkpoint_every: the segment length k of recompute=True; None (default): ⌈√T⌉ for
            each sequence of T steps. Rounded up to a multiple of ⌈512 / B⌉ steps (the blocks
            in which weight gradients are summed, which keeps them bitwise equal).
        dtype: "float32" (default) or "float64"; inputs are converted to it.
        seed: seeds ``np.random.default_rng`` for the initialisation U(-1/sqrt(H), 1/sqrt(H))
            (drawn in parameter order) and the dropout masks.

    Parameters (torch's names and order, for layer k; ``_reverse`` suffix for direction 1):
        weight_ih_l{k} (G*H, I or D*H), weight_hh_l{k} (G*H, H), bias_ih_l{k} (G*H,),
        bias_hh_l{k} (G*H,).

    ``lengths`` (B,) gives padded batches exact semantics: outputs at t >= lengths[b] are 0,
    the final state of sequence b is its state after step lengths[b]-1 (h0 if the length is
    0), and the reverse direction starts at each sequence's own last valid step, as with
    torch's ``pack_padded_sequence``.

    ``backward`` needs a forward in training mode (an ``eval()`` forward keeps no cache); it
    ADDS the parameter gradients into each ``Parameter.grad`` and consumes the cache (one
    backward per forward; a second forward replaces the cache of the first). In training mode
    a time-major single-direction output may be read-only: the cache reads the hidden states
    from it rather than keeping a copy (copy y before editing it in place).
"""


class LSTM(_RNNBase):
    __doc__ = """Multi-layer long short-term memory, as ``torch.nn.LSTM``.

    Per layer and direction (gates i, f, g, o stacked in that order, G = 4)::

        i = σ(W_ii x + b_ii + W_hi h + b_hi)     f = σ(W_if x + b_if + W_hf h + b_hf)
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)  o = σ(W_io x + b_io + W_ho h + b_ho)
        c' = f ⊙ c + i ⊙ g                      h' = o ⊙ tanh(c')

    Call: ``y, (h_n, c_n) = lstm(x, hx=None, lengths=None)`` with ``hx = (h0, c0)``.
    Backward: ``dx, (dh0, dc0) = lstm.backward(dy, dhx=None)`` with ``dhx = (dh_n, dc_n)``
    (either may be None).

    Args (besides those below):
        proj_size: 0 (default) or P < hidden_size: torch's projection, ``h' = W_hr (o ⊙
            tanh(c'))`` with ``weight_hr_l{k}`` (P, hidden_size) per layer and direction; h0,
            h_n and each direction's output are then P wide (c stays hidden_size wide) and
            ``weight_hh_l{k}`` is (4*hidden_size, P), so a torch ``nn.LSTM(proj_size=P)``
            state dict loads unchanged.
        activations, clip, input_forget: ONNX's options (:mod:`rnnkit.ops.gates`): the
            activation of each slot f, g, h (default sigmoid, tanh, tanh; also relu and
            hard_sigmoid), a clip of the gates' inputs, and the coupled gates f = 1 - i.
        peephole: False (default, torch's LSTM) or True: the gates also see the cell state,
            ``i = σ(... + p_i ⊙ c)``, ``f = σ(... + p_f ⊙ c)``, ``o = σ(... + p_o ⊙ c')``
            (ONNX's LSTM with its P input, oneDNN's peephole LSTM). Each layer and direction
            then has one more parameter, ``peephole_l{k}`` (``peephole_l{k}_reverse``) of shape
            (3*hidden_size,) = [p_i, p_f, p_o] (ONNX's P orders them i, o, f), drawn like the
            other weights from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).
""" + _ARGS_DOC

    _family = "lstm"
    _config_args = ("input_size", "hidden_size", "num_layers", "bias", "batch_first",
                    "dropout", "bidirectional", "proj_size", "dtype", "peephole",
                    "activations", "clip", "input_forget", "recurrent_dropout", "zoneout",
                    "recompute", "checkpoint_every")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, *, peephole: bool = False,
                 activations: Sequence[Any] = (), clip: Optional[float] = None,
                 input_forget: bool = False, recurrent_dropout: float = 0.0,
                 zoneout: float = 0.0, recompute: bool = False,
                 checkpoint_every: Optional[int] = None, dtype: Any = "float32",
                 seed: Optional[int] = None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype, seed, proj_size=proj_size,
                         gates=dict(activations=activations, clip=clip,
                                    input_forget=input_forget),
                         recurrent_dropout=recurrent_dropout, zoneout=zoneout,
                         recompute=recompute, checkpoint_every=checkpoint_every,
                         peephole=flag("peephole", peephole))

    def get_config(self) -> Dict[str, Any]:
        return without_defaults(super().get_config(), {"peephole": False, "proj_size": 0,
                                                       **GATE_DEFAULTS, **REGULARIZER_DEFAULTS,
                                                       **RECOMPUTE_DEFAULTS})

    def forward(self, x: Any, hx: Optional[Tuple[Any, Any]] = None,
                lengths: Any = None) -> Tuple[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        y, (h_n, c_n) = self._run(x, hx, lengths)
        return y, (h_n, c_n)

    def backward(self, dy: Any, dhx: Optional[Tuple[Any, Any]] = None
                 ) -> Tuple[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        if dhx is None:
            dhx = (None, None)
        elif not isinstance(dhx, (tuple, list)) or len(dhx) != 2:
            raise TypeError(f"{type(self).__name__}.backward: dhx must be a tuple (dh_n, dc_n) "
                            f"or None, got {type(dhx).__name__}")
        dx, (dh0, dc0) = self._backprop(dy, list(dhx))
        return dx, (dh0, dc0)


class GRU(_RNNBase):
    __doc__ = """Multi-layer gated recurrent unit, as ``torch.nn.GRU``.

    Per layer and direction (gates r, z, n stacked in that order, G = 3)::

        r = σ(W_ir x + b_ir + W_hr h + b_hr)     z = σ(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
        h' = (1 - z) ⊙ n + z ⊙ h

    Call: ``y, h_n = gru(x, hx=None, lengths=None)``.
    Backward: ``dx, dh0 = gru.backward(dy, dhx=None)`` with ``dhx = dh_n`` (or None).

    Args (besides those below):
        reset_after: True (default, torch's and cuDNN's formula above) or False: the reset
            gate applies before the recurrent product, ``n = tanh(W_in x + b_in +
            W_hn (r ⊙ h) + b_hn)`` (Cho et al.'s original GRU, ONNX's default
            ``linear_before_reset=0``, Keras's ``reset_after=False``). Same parameter names,
            shapes and gate order either way.
        activations, clip: ONNX's options (:mod:`rnnkit.ops.gates`): the activation of
            slots f (r, z) and g (n), and a clip of their inputs.
""" + _ARGS_DOC

    _family = "gru"
    _config_args = ("input_size", "hidden_size", "num_layers", "bias", "batch_first",
                    "dropout", "bidirectional", "dtype", "reset_after", "activations", "clip",
                    "recurrent_dropout", "zoneout", "recompute", "checkpoint_every")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, *, reset_after: bool = True,
                 activations: Sequence[Any] = (), clip: Optional[float] = None,
                 recurrent_dropout: float = 0.0, zoneout: float = 0.0,
                 recompute: bool = False, checkpoint_every: Optional[int] = None,
                 dtype: Any = "float32", seed: Optional[int] = None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype, seed,
                         gates=dict(activations=activations, clip=clip),
                         recurrent_dropout=recurrent_dropout, zoneout=zoneout,
                         recompute=recompute, checkpoint_every=checkpoint_every,
                         reset_after=flag("reset_after", reset_after))

    def get_config(self) -> Dict[str, Any]:
        return without_defaults(super().get_config(), {"reset_after": True, **GATE_DEFAULTS,
                                                       **REGULARIZER_DEFAULTS,
                                                       **RECOMPUTE_DEFAULTS})

    def forward(self, x: Any, hx: Any = None,
                lengths: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        y, (h_n,) = self._run(x, hx, lengths)
        return y, h_n

    def backward(self, dy: Any, dhx: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        dx, (dh0,) = self._backprop(dy, [dhx])
        return dx, dh0


class RNN(_RNNBase):
    __doc__ = """Multi-layer Elman RNN, as ``torch.nn.RNN`` (G = 1)::

        h' = act(W_ih x + b_ih + W_hh h + b_hh),   act = tanh (default) or relu

    Call: ``y, h_n = rnn(x, hx=None, lengths=None)``.
    Backward: ``dx, dh0 = rnn.backward(dy, dhx=None)`` with ``dhx = dh_n`` (or None).

    Args (besides those below):
        nonlinearity: "tanh" or "relu".
        activations, clip: ONNX's options (:mod:`rnnkit.ops.gates`): one activation (also
            sigmoid and hard_sigmoid) in place of the nonlinearity, and a clip of its input.
""" + _ARGS_DOC

    _family = "rnn"
    _config_args = ("input_size", "hidden_size", "num_layers", "nonlinearity", "bias",
                    "batch_first", "dropout", "bidirectional", "dtype", "activations", "clip",
                    "recurrent_dropout", "zoneout", "recompute", "checkpoint_every")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, *,
                 activations: Sequence[Any] = (), clip: Optional[float] = None,
                 recurrent_dropout: float = 0.0, zoneout: float = 0.0,
                 recompute: bool = False, checkpoint_every: Optional[int] = None,
                 dtype: Any = "float32", seed: Optional[int] = None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype, seed, nonlinearity,
                         gates=dict(activations=activations, clip=clip),
                         recurrent_dropout=recurrent_dropout, zoneout=zoneout,
                         recompute=recompute, checkpoint_every=checkpoint_every)

    def get_config(self) -> Dict[str, Any]:
        return without_defaults(super().get_config(),
                                {**GATE_DEFAULTS, **REGULARIZER_DEFAULTS, **RECOMPUTE_DEFAULTS})

    def forward(self, x: Any, hx: Any = None,
                lengths: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        y, (h_n,) = self._run(x, hx, lengths)
        return y, h_n

    def backward(self, dy: Any, dhx: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        dx, (dh0,) = self._backprop(dy, [dhx])
        return dx, dh0


_LAYERNORM_ARGS_DOC = """
    Args: as :class:`LSTM`'s and :class:`GRU`'s (input_size, hidden_size, num_layers, bias,
    batch_first, dropout, bidirectional, recurrent_dropout, zoneout, dtype, seed); no
    proj_size and no ONNX options.

    Parameters per layer k (``_reverse`` suffix for direction 1): torch's weight_ih_l{k},
    weight_hh_l{k} and, with bias, bias_ih_l{k}, bias_hh_l{k} (the two gate LayerNorms' β),
    initialised as torch's; then the gains ``ln_weight_ih_l{k}``, ``ln_weight_hh_l{k}`` (G*H,)
    (and for the LSTM the cell LayerNorm's ``ln_weight_c_l{k}`` and ``ln_bias_c_l{k}`` (H,)),
    initialised to 1 (gains) and 0 (bias), as ``torch.nn.LayerNorm``'s.

    The LayerNorms run inside the fused kernels: each step's statistics span a whole row of
    G*H products, so the step's recurrent product is formed whole before one thread per row
    normalises it (results do not depend on the thread count). LN uses eps = 1e-5.
"""


class LayerNormLSTM(_RNNBase):
    __doc__ = """Multi-layer LayerNorm LSTM (Ba et al. 2016; haste's LayerNormLSTM).

    Per layer and direction, with LN(v; γ) = γ ⊙ (v - mean(v)) / sqrt(var(v) + 1e-5) over all
    4H products of a row (gates i, f, g, o stacked as :class:`LSTM`'s)::

        a = LN(W_ih x; γ_ih) + b_ih + LN(W_hh h; γ_hh) + b_hh
        i, f, o = σ(a_i, a_f, a_o);  g = tanh(a_g);  c' = f ⊙ c + i ⊙ g
        h' = o ⊙ tanh(LN(c'; γ_c) + β_c)                  (LN over the H units)

    The state carried from step to step is c' itself. Calls as :class:`LSTM`:
    ``y, (h_n, c_n) = layer(x, hx=None, lengths=None)``;
    ``dx, (dh0, dc0) = layer.backward(dy, dhx=None)``.
""" + _LAYERNORM_ARGS_DOC

    _family = "layernorm_lstm"
    _config_args = ("input_size", "hidden_size", "num_layers", "bias", "batch_first",
                    "dropout", "bidirectional", "dtype", "recurrent_dropout", "zoneout")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, *, recurrent_dropout: float = 0.0,
                 zoneout: float = 0.0, dtype: Any = "float32",
                 seed: Optional[int] = None) -> None:
        # (explicit base: LayerNormGRU shares this constructor)
        _RNNBase.__init__(self, input_size, hidden_size, num_layers, bias, batch_first,
                          dropout, bidirectional, dtype, seed,
                          recurrent_dropout=recurrent_dropout, zoneout=zoneout)

    def get_config(self) -> Dict[str, Any]:
        return without_defaults(_RNNBase.get_config(self), dict(REGULARIZER_DEFAULTS))

    forward = LSTM.forward
    backward = LSTM.backward


class LayerNormGRU(_RNNBase):
    __doc__ = """Multi-layer LayerNorm GRU (haste's LayerNormGRU).

    Per layer and direction, with LN over all 3H products of a row (gates r, z, n stacked as
    :class:`GRU`'s; see :class:`LayerNormLSTM`)::

        ax = LN(W_ih x; γ_ih) + b_ih;   ah = LN(W_hh h; γ_hh) + b_hh
        r = σ(ax_r + ah_r);  z = σ(ax_z + ah_z);  n = tanh(ax_n + r ⊙ ah_n)
        h' = (1 - z) ⊙ n + z ⊙ h

    Calls as :class:`GRU`: ``y, h_n = layer(x, hx=None, lengths=None)``;
    ``dx, dh0 = layer.backward(dy, dhx=None)``.
""" + _LAYERNORM_ARGS_DOC

    _family = "layernorm_gru"
    _config_args = LayerNormLSTM._config_args

    __init__ = LayerNormLSTM.__init__
    get_config = LayerNormLSTM.get_config
    forward = GRU.forward
    backward = GRU.backward


RecurrentLayer = Union[RNN, LSTM, GRU, LayerNormLSTM, LayerNormGRU]


def make_layer(spec: CellSpec, *args: Any, **kwargs: Any) -> "_RNNBase":
    """The sequence layer of cell `spec`, built with `args`/`kwargs` (plus the options that
    select the cell in its family: the RNN's nonlinearity, the GRU's reset_after)."""
    kwargs.update(spec.kwargs)
    return LAYER_CLASSES[spec.family](*args, **kwargs)

