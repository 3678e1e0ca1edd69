"""Single-step cells RNNCell, LSTMCell and GRUCell, with torch.nn's call forms.

For step-by-step use (streaming, generation, custom loops). In training mode each call is one
step of the sequence kernels (T = 1), kept for backward; in eval mode a call goes straight to a
compiled step with the weights packed once and reused until a parameter changes (an optimiser
step, load_state_dict or Parameter.mark_changed()). Shapes: x (B, I) or (I,) unbatched;
h, c (B, H) or (H,). Parameters as torch: weight_ih (G*H, I), weight_hh (G*H, H),
bias_ih (G*H,), bias_hh (G*H,), initialised U(-1/sqrt(H), 1/sqrt(H)) from ``seed``.

Backward for custom loops: every training-mode call pushes its cache on a stack and each
``backward`` pops the most recent one, so a loop of T forward steps is backpropagated by
T backward calls in reverse order (feed each step the gradient reaching its outputs,
including what the next step's backward returned for its input state). Changing the mode
with ``train()``/``eval()`` drops the stack; generate in ``eval()`` mode so nothing piles up.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import ops
from .._cellspec import EXTRA_INIT, CellSpec, cell_for
from ..ops._validate import _shape_str as _shape
from ._calls import CallState
from ._options import (GATE_DEFAULTS, cell_options_repr, flag, set_gate_options,
                       without_defaults)
from .module import Module, _dtype, _no_cache_error, _positive_int
from .packed_steps import PackedSteps
from .parameter import Parameter, checked_data


# family -> cell class, filled as the classes below are defined (see nn.recurrent's
# LAYER_CLASSES).
CELL_CLASSES: Dict[str, type] = {}


class _CellBase(Module):
    """Shared machinery of the cells, driven by the cell spec (gates, states)."""

    _family = ""              # the cell family of rnnkit._cellspec ("lstm", "gru", "rnn")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls._family and cls.__module__ == __name__:
            CELL_CLASSES[cls._family] = cls

    def __init__(self, input_size: int, hidden_size: int, bias: bool, dtype: Any,
                 seed: Optional[int], nonlinearity: Optional[str] = None,
                 gates: Optional[Dict[str, Any]] = None, **cell_options: Any) -> None:
        super().__init__()
        self.input_size = _positive_int("input_size", input_size)
        self.hidden_size = _positive_int("hidden_size", hidden_size)
        self.bias = bool(bias)
        self._spec: CellSpec = cell_for(self._family, nonlinearity, **cell_options)
        self.nonlinearity = nonlinearity
        for name, value in cell_options.items():  # e.g. GRUCell's reset_after, for get_config
            setattr(self, name, value)
        # ONNX's activations, clip and input_forget (rnnkit.ops.gates); None when they are
        # the cell's usual math.
        self._gates = set_gate_options(self, self._family, nonlinearity, gates)
        self.dtype = _dtype(dtype)
        g, h = self._spec.gates, self.hidden_size
        rng = np.random.default_rng(seed)
        bound = 1.0 / math.sqrt(h)
        shapes = [("weight_ih", (g * h, self.input_size)), ("weight_hh", (g * h, h))]
        if self.bias:
            shapes += [("bias_ih", (g * h,)), ("bias_hh", (g * h,))]
        extra = [(name, (width * h,)) for name, width in self._spec.extra]
        for name, shape in shapes + extra:
            w = np.full(shape, EXTRA_INIT[name]) if name in EXTRA_INIT else \
                rng.uniform(-bound, bound, shape)  # a LayerNorm's gains and bias: 1 and 0
            setattr(self, name, Parameter(w, self.dtype))
        g_h = self._spec.gates * self.hidden_size
        # The four weights and biases, then the cell's extra parameters (the peephole).
        self._weight_checks = [("weight_ih", (g_h, self.input_size)), ("weight_hh", (g_h, h)),
                               ("bias_ih", (g_h,)), ("bias_hh", (g_h,))] + extra
        self._calls = CallState()
        # Inference fast path: the weights packed once for compiled steps (see _fast).
        self._packed = PackedSteps(self._spec, lambda: list(self._parameters.values()),
                                   lambda: [self._weights()],
                                   self._gates.core(self._family, nonlinearity)
                                   if self._gates else None)

    def _on_mode_change(self) -> None:
        self._calls.clear()
        self._packed.drop()

    @property
    def _quantizable(self) -> Tuple[str, ...]:  # type: ignore[override]
        """weight_ih and weight_hh; none for the LayerNorm cells (see the layers')."""
        return () if self._family.startswith("layernorm") else ("weight_ih", "weight_hh")

    def _set_quantized(self, kind: str) -> None:
        super()._set_quantized(kind)
        self._packed.quantized = kind

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        s += cell_options_repr(self)
        return s + f", dtype={self.dtype.name}"

    def _array(self, name: str, a: Any, shape: Tuple[int, ...], layout: str) -> np.ndarray:
        arr = a if isinstance(a, np.ndarray) else np.asarray(a)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
        if arr.shape != shape:
            raise ValueError(f"{name} has shape {_shape(arr.shape)}, expected "
                             f"{_shape(shape)} {layout}")
        return np.ascontiguousarray(arr, self.dtype)

    def _input(self, x: Any) -> Tuple[np.ndarray, bool]:
        arr = x if isinstance(x, np.ndarray) else np.asarray(x)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"x must be a numeric array, got dtype {arr.dtype}")
        if arr.ndim not in (1, 2) or arr.shape[-1] != self.input_size:
            raise ValueError(f"x has shape {_shape(arr.shape)}, expected (B, "
                             f"{self.input_size}) or ({self.input_size},) unbatched")
        unbatched = arr.ndim == 1
        b = 1 if unbatched else arr.shape[0]
        x3 = np.ascontiguousarray(arr.reshape(1, b, self.input_size), self.dtype)
        return x3, unbatched

    def _state(self, name: str, a: Any, batch: int, unbatched: bool) -> Optional[np.ndarray]:
        if a is None:
            return None
        h = self.hidden_size
        shape = (h,) if unbatched else (batch, h)
        arr = self._array(name, a, shape, "(H,)" if unbatched else "(B, H)")
        return arr.reshape(batch, h)

    def _weight_params(self) -> List[Optional[Parameter]]:
        """w_ih, w_hh, b_ih, b_hh (None without biases), then the extra parameters."""
        return [self._parameters.get(name) for name, _ in self._weight_checks]

    def _weights(self) -> List[Optional[np.ndarray]]:
        """The weights' arrays, checked by name (checked_data)."""
        return checked_data(self._parameters, self._weight_checks, self.dtype)

    def _state_labels(self, prefix: str) -> List[str]:
        states = self._spec.states
        if len(states) == 1:
            return [f"{prefix} ({states[0]})"]
        return [f"{prefix}[{i}] ({s})" for i, s in enumerate(states)]

    def _fast(self, x: Any, states: List[Any]) -> Optional[List[np.ndarray]]:
        """Eval-mode step without per-call Python validation or packing: one native call that
        checks shapes itself. Returns None when the input needs the general path (unbatched,
        another dtype, non-contiguous). Every line here runs once per generated token."""
        dtype = self.dtype
        if not (type(x) is np.ndarray and x.ndim == 2 and x.dtype == dtype
                and x.flags.c_contiguous):
            return None
        s = []
        for a in states:
            if a is None:
                a = np.zeros((x.shape[0], self.hidden_size), dtype)
            elif not (type(a) is np.ndarray and a.dtype == dtype and a.flags.c_contiguous):
                return None
            s.append(a)
        return list(self._packed.step(0, x, s))

    def _step(self, x: Any, states: List[Any]) -> Tuple[List[np.ndarray], bool]:
        if self.quantized:
            self._inference_only()
        if not self.training:
            # No lock: a compiled step only reads its packed weights, and two threads that both
            # find them stale each repack a valid copy (the last one is kept).
            outs = self._fast(x, states)
            if outs is not None:
                return outs, False
        with self._calls.lock:
            x3, unbatched = self._input(x)
            b = x3.shape[1]
            s = [self._state(n, a, b, unbatched)
                 for n, a in zip(self._state_labels("hx"), states)]
            training = self.training
            if self.quantized:   # quantized weights live only in the packed form
                full = [np.zeros((b, self.hidden_size), self.dtype) if a is None else a
                        for a in s]
                outs = list(self._packed.step(0, x3[0], full))
                return ([o[0] for o in outs] if unbatched else outs), unbatched
            w = self._weights()
            _, outs, cache = ops.sequence_forward(self._spec, x3, s, *w[:4], extra=w[4:],
                                                  training=training, options=self._gates)
            if training:
                self._calls.push((cache, unbatched))
            outs = list(outs)
            if unbatched:
                outs = [o[0] for o in outs]
            return outs, unbatched

    def _backstep(self, grads: List[Any]) -> Tuple[np.ndarray, List[np.ndarray]]:
        with self._calls.lock:
            entry = self._calls.pop()
            if entry is None:
                raise _no_cache_error(self)
            cache, unbatched = entry
            b = cache.x.shape[1]
            try:
                g_in = [self._state(n, a, b, unbatched)
                        for n, a in zip(["d" + s for s in self._spec.states], grads)]
            except (TypeError, ValueError):
                self._calls.push(entry)   # a rejected argument consumes nothing
                raise
            h = self.hidden_size
            # y[0] is h' itself, so dh reaches the step through dh_n and dy stays zero.
            dy = np.zeros((1, b, h), self.dtype)
            # ADDED straight into each Parameter.grad.
            into = [None if p is None else p.writable_grad() for p in self._weight_params()]
            dx, dstates, _ = ops.sequence_backward(cache, dy, g_in, into=into)
            dx = dx[0]
            if unbatched:
                return dx[0], [d[0] for d in dstates]
            return dx, list(dstates)


class LSTMCell(_CellBase):
    """One LSTM step, as ``torch.nn.LSTMCell`` (gates i, f, g, o)::

        i, f, o = σ(W_i· x + b_i· + W_h· h + b_h·);  g = tanh(W_ig x + b_ig + W_hg h + b_hg)
        c' = f ⊙ c + i ⊙ g;  h' = o ⊙ tanh(c')

    Call ``h', c' = cell(x, (h, c))`` (hx None = zeros). Backward
    ``dx, (dh, dc) = cell.backward(dh', dc'=None)``: gradients reaching h' and c' in,
    gradients of x, h, c out (parameter gradients added into ``.grad``).

    Args: input_size I, hidden_size H, bias=True, peephole=False (True: the peephole LSTM
    of :class:`~rnnkit.nn.LSTM`, with a parameter ``peephole`` (3H,) = [p_i, p_f, p_o]),
    activations=(), clip=None, input_forget=False (ONNX's options, as
    :class:`~rnnkit.nn.LSTM`), dtype="float32", seed=None.
    """

    _family = "lstm"
    _config_args = ("input_size", "hidden_size", "bias", "dtype", "peephole", "activations",
                    "clip", "input_forget")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 peephole: bool = False, activations: Sequence[Any] = (),
                 clip: Optional[float] = None, input_forget: bool = False,
                 dtype: Any = "float32", seed: Optional[int] = None) -> None:
        super().__init__(input_size, hidden_size, bias, dtype, seed,
                         gates=dict(activations=activations, clip=clip,
                                    input_forget=input_forget),
                         peephole=flag("peephole", peephole))

    def get_config(self) -> Dict[str, Any]:
        return without_defaults(super().get_config(), {"peephole": False, **GATE_DEFAULTS})

    def forward(self, x: Any, hx: Optional[Tuple[Any, Any]] = None
                ) -> Tuple[np.ndarray, np.ndarray]:
        if hx is None:
            hx = (None, None)
        elif not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"{type(self).__name__} hx must be a tuple (h, c), got "
                            f"{type(hx).__name__}")
        (h, c), _ = self._step(x, list(hx))
        return h, c

    def backward(self, dh: Any, dc: Any = None) -> Tuple[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        dx, (dh0, dc0) = self._backstep([dh, dc])
        return dx, (dh0, dc0)


class GRUCell(_CellBase):
    """One GRU step, as ``torch.nn.GRUCell`` (gates r, z, n)::

        r, z = σ(W_i· x + b_i· + W_h· h + b_h·)
        n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
        h' = (1 - z) ⊙ n + z ⊙ h

    Call ``h' = cell(x, h)`` (h None = zeros). Backward ``dx, dh = cell.backward(dh')``.

    Args: input_size I, hidden_size H, bias=True, reset_after=True (False: n = tanh(W_in x +
    b_in + W_hn (r ⊙ h) + b_hn), as :class:`~rnnkit.nn.GRU`), activations=(), clip=None
    (ONNX's options), dtype="float32", seed=None.
    """

    _family = "gru"
    _config_args = ("input_size", "hidden_size", "bias", "dtype", "reset_after", "activations",
                    "clip")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 reset_after: bool = True, activations: Sequence[Any] = (),
                 clip: Optional[float] = None, dtype: Any = "float32",
                 seed: Optional[int] = None) -> None:
        super().__init__(input_size, hidden_size, bias, dtype, seed,
                         gates=dict(activations=activations, clip=clip),
                         reset_after=flag("reset_after", reset_after))

    def get_config(self) -> Dict[str, Any]:
        return without_defaults(super().get_config(), {"reset_after": True, **GATE_DEFAULTS})

    def forward(self, x: Any, hx: Any = None) -> np.ndarray:
        (h,), _ = self._step(x, [hx])
        return h

    def backward(self, dh: Any) -> Tuple[np.ndarray, np.ndarray]:
        dx, (dh0,) = self._backstep([dh])
        return dx, dh0


class RNNCell(_CellBase):
    """One Elman RNN step, as ``torch.nn.RNNCell``: h' = act(W_ih x + b_ih + W_hh h + b_hh).

    Call ``h' = cell(x, h)`` (h None = zeros). Backward ``dx, dh = cell.backward(dh')``.

    Args: input_size I, hidden_size H, bias=True, nonlinearity="tanh" (or "relu"),
    activations=(), clip=None (ONNX's options, as :class:`~rnnkit.nn.RNN`), dtype="float32",
    seed=None.
    """

    _family = "rnn"
    _config_args = ("input_size", "hidden_size", "bias", "nonlinearity", "dtype",
                    "activations", "clip")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", *, activations: Sequence[Any] = (),
                 clip: Optional[float] = None, dtype: Any = "float32",
                 seed: Optional[int] = None) -> None:
        super().__init__(input_size, hidden_size, bias, dtype, seed, nonlinearity,
                         gates=dict(activations=activations, clip=clip))

    def get_config(self) -> Dict[str, Any]:
        return without_defaults(super().get_config(), dict(GATE_DEFAULTS))

    def forward(self, x: Any, hx: Any = None) -> np.ndarray:
        (h,), _ = self._step(x, [hx])
        return h

    def backward(self, dh: Any) -> Tuple[np.ndarray, np.ndarray]:
        dx, (dh0,) = self._backstep([dh])
        return dx, dh0


class LayerNormLSTMCell(_CellBase):
    """One step of :class:`~rnnkit.nn.LayerNormLSTM` (its formula, LN over the 4H products of
    a row and over the H units of c')::

        a = LN(W_ih x; γ_ih) + b_ih + LN(W_hh h; γ_hh) + b_hh
        i, f, o = σ(a_i, a_f, a_o);  g = tanh(a_g);  c' = f ⊙ c + i ⊙ g
        h' = o ⊙ tanh(LN(c'; γ_c) + β_c)

    Call ``h', c' = cell(x, (h, c))``; backward as :class:`LSTMCell`'s. Parameters:
    weight_ih, weight_hh, bias_ih, bias_hh (with bias), ln_weight_ih, ln_weight_hh (4H,),
    ln_weight_c, ln_bias_c (H,). Args: input_size I, hidden_size H, bias=True,
    dtype="float32", seed=None.
    """

    _family = "layernorm_lstm"
    _config_args = ("input_size", "hidden_size", "bias", "dtype")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 dtype: Any = "float32", seed: Optional[int] = None) -> None:
        _CellBase.__init__(self, input_size, hidden_size, bias, dtype, seed)

    forward = LSTMCell.forward
    backward = LSTMCell.backward


class LayerNormGRUCell(_CellBase):
    """One step of :class:`~rnnkit.nn.LayerNormGRU` (LN over the 3H products of a row)::

        ax = LN(W_ih x; γ_ih) + b_ih;   ah = LN(W_hh h; γ_hh) + b_hh
        r = σ(ax_r + ah_r);  z = σ(ax_z + ah_z);  n = tanh(ax_n + r ⊙ ah_n)
        h' = (1 - z) ⊙ n + z ⊙ h

    Call ``h' = cell(x, h)``; backward as :class:`GRUCell`'s. Parameters: weight_ih,
    weight_hh, bias_ih, bias_hh (with bias), ln_weight_ih, ln_weight_hh (3H,). Args as
    :class:`LayerNormLSTMCell`'s.
    """

    _family = "layernorm_gru"
    _config_args = LayerNormLSTMCell._config_args

    __init__ = LayerNormLSTMCell.__init__
    forward = GRUCell.forward
    backward = GRUCell.backward


def make_cell(spec: CellSpec, *args: Any, **kwargs: Any) -> _CellBase:
    """The single-step cell of `spec`, built with `args`/`kwargs` (plus the options that
    select it in its family)."""
    kwargs.update(spec.kwargs)
    return CELL_CLASSES[spec.family](*args, **kwargs)
