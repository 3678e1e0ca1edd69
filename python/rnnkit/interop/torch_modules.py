"""rnnkit's kernels inside PyTorch: drop-in ``torch.nn.LSTM``, ``GRU`` and ``RNN`` modules.

    import rnnkit.torch as rk            # (the opt-in facade of this module)
    model.rnn = rk.GRU(256, 512, batch_first=True)   # instead of torch.nn.GRU(...)

The classes take torch's constructor arguments, have torch's parameter names, shapes and
initialisation (so ``load_state_dict`` moves weights between them and torch's modules either
way, and the same ``torch.manual_seed`` gives the same weights), and are called as torch's:
``output, h_n = gru(input, hx=None)`` with a (T, B, I) or, with ``batch_first``, (B, T, I)
tensor, an unbatched (T, I) tensor, or a ``PackedSequence`` (which gives a PackedSequence
back). Each layer and direction runs as one call of rnnkit's fused sequence kernel, forward
and backward, through two custom operators registered with ``torch.library``:

    torch.ops.rnnkit.recurrent_forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr,
                                       lengths, reverse, training) -> (y, finals, saved)
    torch.ops.rnnkit.recurrent_backward(cell, dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, b_ih,
                                        b_hh, w_hr, lengths, y, saved, reverse)
                                        -> (dx, dstates0, dweights)

They carry fake (meta) implementations and an autograd formula, so autograd reaches the
input, hx and every parameter, and ``torch.compile`` traces them without graph breaks. What
the backward needs from the forward (the kernel's saved gate activations) travels as ordinary
tensor outputs, not as a Python object, which is what lets a compiled graph hold it.

CPU tensors of float32 or float64 only; a tensor passes to the kernels as a numpy view of the
same memory (no copy where it is contiguous), and their results come back the same way.
Dropout between layers uses ``torch.nn.functional.dropout`` on the tensors torch's own
modules drop (the time-major layer output, or a packed batch's data), so for the same seed
the masks are torch's. rnnkit's thread count is its own: ``rnnkit.set_num_threads(n)``
(``torch.set_num_threads`` does not reach the kernels).

Not supported (clear errors): other devices and dtypes, double backward (the backward is not
itself differentiable).
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from .. import ops
from .._cellspec import CELLS, CellSpec
from . import torch_convert
from ..ops import _validate
from ..ops.cells import SequenceCache

__all__ = ["LSTM", "GRU", "RNN", "use_rnnkit_kernels", "LSTMOutput", "GRUOutput",
           "RNNOutput", "recurrent_forward", "recurrent_backward", "CELL_NAMES"]

# torch's RNNBase.mode -> rnnkit's cell (rnnkit._cellspec): the cells the custom ops run.
CELL_NAMES = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu"}
_FLOAT_DTYPES = (torch.float32, torch.float64)


def _spec(cell: str) -> CellSpec:
    if cell not in CELL_NAMES.values():
        raise ValueError(f"cell must be one of {', '.join(sorted(CELL_NAMES.values()))}, "
                         f"got {cell!r}")
    return CELLS[cell]


def _np(name: str, t: Optional[Tensor], floating: bool = True) -> Optional[np.ndarray]:
    """A CPU tensor as a numpy array over the same memory (None stays None)."""
    if t is None:
        return None
    if t.device.type != "cpu":
        raise ValueError(f"rnnkit's kernels run on the CPU only: {name} is on {t.device}")
    if floating and t.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {t.dtype}")
    # resolve_*: numpy cannot view a tensor with a pending lazy negation/conjugation (autograd
    # can hand such views to a backward); both are no-ops otherwise.
    return t.detach().resolve_conj().resolve_neg().numpy()


def _lengths_np(lengths: Optional[Tensor]) -> Optional[np.ndarray]:
    if lengths is None:
        return None
    if lengths.dtype.is_floating_point or lengths.dtype in (torch.bool, torch.complex64,
                                                            torch.complex128):
        raise TypeError(f"lengths must be an integer tensor, got {lengths.dtype}")
    return _np("lengths", lengths, floating=False)


def _from_np(a: np.ndarray) -> Tensor:
    return torch.from_numpy(a)


def _state0(spec: CellSpec, h0: Optional[Tensor],
            c0: Optional[Tensor]) -> List[Optional[np.ndarray]]:
    if len(spec.states) == 1:
        if c0 is not None:
            raise ValueError(f"the {spec.name} cell has no cell state: c0 must be None")
        return [_np("h0", h0)]
    return [_np("h0", h0), _np("c0", c0)]


def _saved_shapes(spec: CellSpec, t: Any, b: Any, h: Any,
                  projected: bool) -> List[Tuple[Any, ...]]:
    """The shapes of the kernel's saved activations (what ``saved`` holds), per the cell
    registry: (T, B, width*H) each, plus the pre-projection h (T, B, H) of a projected LSTM."""
    shapes = [(t, b, w * h) for _, w in spec.saved]
    return shapes + [(t, b, h)] if projected else shapes


# ------------------------------------------------------------------ the custom operators
@torch.library.custom_op("rnnkit::recurrent_forward", mutates_args=(), device_types="cpu")
def recurrent_forward(cell: str, x: Tensor, h0: Optional[Tensor], c0: Optional[Tensor],
                      w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor],
                      b_hh: Optional[Tensor], w_hr: Optional[Tensor],
                      lengths: Optional[Tensor], reverse: bool,
                      training: bool) -> Tuple[Tensor, List[Tensor], List[Tensor]]:
    """One layer and direction of ``cell`` ("lstm", "gru", "rnn_tanh", "rnn_relu") over a
    time-major sequence x (T, B, I), as :func:`rnnkit.ops.sequence_forward`.

    h0, c0 (B, H) or None (zeros; c0 for the LSTM only); biases may be None; ``w_hr`` (P, H)
    is the LSTM's projection (torch's proj_size) or None; ``lengths`` (B,) int64 or None.
    Returns ``y (T, B, H or P)``, the final states ``[h_n]`` or ``[h_n, c_n]`` and ``saved``,
    the activations the backward reads (empty with ``training=False``).
    """
    spec = _spec(cell)
    y, finals, cache = ops.sequence_forward(
        spec, _np("x", x), _state0(spec, h0, c0), _np("w_ih", w_ih), _np("w_hh", w_hh),
        _np("b_ih", b_ih), _np("b_hh", b_hh), lengths=_lengths_np(lengths),
        reverse=bool(reverse), training=bool(training), w_hr=_np("w_hr", w_hr))
    saved: Sequence[np.ndarray] = ()
    if cache is not None:
        saved = cache.saved
        # The kernel's cache would read h_t from y, so ops hands y back read-only; here the
        # cache is dropped and autograd's version counter guards y (it is saved for backward).
        y.flags.writeable = True
    return _from_np(y), [_from_np(a) for a in finals], [_from_np(a) for a in saved]


@recurrent_forward.register_fake
def _recurrent_forward_fake(cell: str, x: Tensor, h0: Optional[Tensor], c0: Optional[Tensor],
                            w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor],
                            b_hh: Optional[Tensor], w_hr: Optional[Tensor],
                            lengths: Optional[Tensor], reverse: bool,
                            training: bool) -> Tuple[Tensor, List[Tensor], List[Tensor]]:
    spec = _spec(cell)
    t, b = x.shape[0], x.shape[1]
    h = w_hh.shape[0] // spec.gates
    p = h if w_hr is None else w_hr.shape[0]
    widths = [p] + [h] * (len(spec.states) - 1)
    finals = [x.new_empty((b, w)) for w in widths]
    saved = [x.new_empty(s) for s in _saved_shapes(spec, t, b, h, w_hr is not None)]
    return x.new_empty((t, b, p)), finals, saved if training else []


@torch.library.custom_op("rnnkit::recurrent_backward", mutates_args=(), device_types="cpu")
def recurrent_backward(cell: str, dy: Optional[Tensor], dh_n: Optional[Tensor],
                       dc_n: Optional[Tensor], x: Tensor, h0: Optional[Tensor],
                       c0: Optional[Tensor], w_ih: Tensor, w_hh: Tensor,
                       b_ih: Optional[Tensor], b_hh: Optional[Tensor], w_hr: Optional[Tensor],
                       lengths: Optional[Tensor], y: Tensor, saved: List[Tensor],
                       reverse: bool) -> Tuple[Tensor, List[Tensor], List[Tensor]]:
    """Backpropagation through time for :func:`recurrent_forward`, given its inputs, its y
    and saved outputs and the gradients reaching y, h_n and c_n (None = zeros).

    Returns ``dx``, the initial states' gradients ``[dh0]`` or ``[dh0, dc0]`` (also where h0
    was None) and the weight gradients ``[dw_ih, dw_hh, db_ih, db_hh, dw_hr]`` with the
    entries of the None biases and projection left out.
    """
    spec = _spec(cell)
    xn = _np("x", x)
    dt = xn.dtype
    # Rebuild the kernel's cache from tensors. Everything is checked here, since this op may
    # be called directly, and a wrong shape must raise rather than reach the kernel.
    xn = _validate.floating_input("x", xn, 3, "(T, B, I)")
    t, b, i = xn.shape
    g = spec.gates
    w_hr_n = None if w_hr is None else _validate.array("w_hr", _np("w_hr", w_hr),
                                                        tuple(w_hr.shape), dt)
    h = w_hh.shape[0] // g if w_hr is None else w_hr.shape[1]
    p = h if w_hr is None else w_hr.shape[0]
    w_ih_n = _validate.array("w_ih", _np("w_ih", w_ih), (g * h, i), dt, "(gates*H, I)")
    w_hh_n = _validate.array("w_hh", _np("w_hh", w_hh), (g * h, p), dt, "(gates*H, H or P)")
    b_ih_n = _validate.optional_array("b_ih", _np("b_ih", b_ih), (g * h,), dt)
    b_hh_n = _validate.optional_array("b_hh", _np("b_hh", b_hh), (g * h,), dt)
    state0 = tuple(None if s is None else _validate.array(n, s, (b, p if k == 0 else h), dt)
                   for k, (n, s) in enumerate(zip(spec.state0_names,
                                                  _state0(spec, h0, c0))))
    yn = _validate.array("y", _np("y", y), (t, b, p), dt, "(T, B, H or P), the forward's y")
    shapes = _saved_shapes(spec, t, b, h, w_hr is not None)
    if len(saved) != len(shapes):
        raise ValueError(f"saved must hold the {len(shapes)} tensors the training forward "
                         f"returned, got {len(saved)} (was the forward run with "
                         "training=False?)")
    saved_n = tuple(_validate.array(f"saved[{k}]", _np(f"saved[{k}]", s), shape, dt)
                    for k, (s, shape) in enumerate(zip(saved, shapes)))
    cache = SequenceCache(spec, xn, state0, w_ih_n, w_hh_n, b_ih_n, b_hh_n, yn, saved_n,
                          _validate.lengths_array(_lengths_np(lengths), b, t), bool(reverse),
                          w_hr=w_hr_n)
    dy_n = np.zeros((t, b, p), dt) if dy is None else _np("dy", dy)
    dstates = [_np("dh_n", dh_n)] + ([_np("dc_n", dc_n)] if len(spec.states) > 1 else [])
    dx, dstate0, dweights = ops.sequence_backward(cache, dy_n, dstates,
                                                  fn="rnnkit::recurrent_backward")
    return (_from_np(dx), [_from_np(a) for a in dstate0],
            [_from_np(a) for a in dweights if a is not None])


@recurrent_backward.register_fake
def _recurrent_backward_fake(cell: str, dy: Optional[Tensor], dh_n: Optional[Tensor],
                             dc_n: Optional[Tensor], x: Tensor, h0: Optional[Tensor],
                             c0: Optional[Tensor], w_ih: Tensor, w_hh: Tensor,
                             b_ih: Optional[Tensor], b_hh: Optional[Tensor],
                             w_hr: Optional[Tensor], lengths: Optional[Tensor], y: Tensor,
                             saved: List[Tensor],
                             reverse: bool) -> Tuple[Tensor, List[Tensor], List[Tensor]]:
    spec = _spec(cell)
    b = x.shape[1]
    h = w_hh.shape[0] // spec.gates
    p = h if w_hr is None else w_hr.shape[0]
    widths = [p] + [h] * (len(spec.states) - 1)
    weights = [w for w in (w_ih, w_hh, b_ih, b_hh, w_hr) if w is not None]
    return (torch.empty_like(x, memory_format=torch.contiguous_format),
            [x.new_empty((b, w)) for w in widths],
            [torch.empty_like(w, memory_format=torch.contiguous_format) for w in weights])


def _setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Any) -> None:
    cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, reverse, training = inputs
    y, _, saved = output
    ctx.cell, ctx.reverse, ctx.training = cell, reverse, training
    # Gradients of outputs nobody used stay None instead of zero tensors: the saved
    # activations are several times y's size and never receive a gradient.
    ctx.set_materialize_grads(False)
    ctx.mark_non_differentiable(*saved)
    ctx.save_for_backward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, y, *saved)


def _backward(ctx: Any, dy: Optional[Tensor], dfinals: List[Optional[Tensor]],
              dsaved: Any) -> Tuple[Optional[Tensor], ...]:
    if not ctx.training:
        raise RuntimeError("rnnkit::recurrent_forward ran with training=False, which keeps no "
                           "activations for the backward; run it with training=True")
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, y, *saved = ctx.saved_tensors
    dh_n = dfinals[0] if dfinals else None
    dc_n = dfinals[1] if len(dfinals) > 1 else None
    n_inputs = 12
    if dy is None and dh_n is None and dc_n is None:
        return (None,) * n_inputs
    dx, dstate0, dweights = recurrent_backward(ctx.cell, dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh,
                                               b_ih, b_hh, w_hr, lengths, y, saved,
                                               ctx.reverse)
    it = iter(dweights)
    dw = [None if w is None else next(it) for w in (w_ih, w_hh, b_ih, b_hh, w_hr)]
    dh0 = dstate0[0] if h0 is not None else None
    dc0 = dstate0[1] if c0 is not None else None
    return (None, dx, dh0, dc0, dw[0], dw[1], dw[2], dw[3], dw[4], None, None, None)


recurrent_forward.register_autograd(_backward, setup_context=_setup_context)


# ------------------------------------------------------------------ the modules
def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


class _RNNBase(nn.Module):
    """What :class:`LSTM`, :class:`GRU` and :class:`RNN` share: torch's RNNBase arguments,
    parameters and call convention, with each layer and direction one custom-op call.

    Shape legend: T steps, B batch, I input_size, H hidden_size (P = proj_size for the LSTM's
    h where set), L num_layers, D = 2 if bidirectional else 1.
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0,
                 device: Any = None, dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        self.mode = mode                  # torch's RNNBase.mode: "LSTM", "GRU", "RNN_TANH"...
        self._cell = CELL_NAMES[mode]
        self.input_size = _check_int("input_size", input_size, 1)
        self.hidden_size = _check_int("hidden_size", hidden_size, 1)
        self.num_layers = _check_int("num_layers", num_layers, 1)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Number) or \
                not 0 <= float(dropout) <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             f"probability of an element being zeroed, got {dropout!r}")
        self.dropout = float(dropout)
        if self.dropout > 0 and self.num_layers == 1:
            # As torch: dropout acts between layers, so a single layer never applies it.
            warnings.warn("dropout acts after every recurrent layer but the last, so a "
                          f"non-zero dropout needs num_layers > 1; got dropout={dropout} and "
                          f"num_layers={num_layers}", UserWarning, stacklevel=3)
        self.bidirectional = bool(bidirectional)
        self.proj_size = _check_int("proj_size", proj_size, 0)
        if self.proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size has to be smaller than hidden_size, got proj_size="
                             f"{proj_size} and hidden_size={hidden_size}")
        dtype = torch.get_default_dtype() if dtype is None else dtype
        if dtype not in _FLOAT_DTYPES:
            raise TypeError(f"dtype must be torch.float32 or torch.float64 (rnnkit's kernels), "
                            f"got {dtype}")
        device = torch.device("cpu") if device is None else torch.device(device)
        if device.type != "cpu":
            raise ValueError(f"rnnkit's kernels run on the CPU only, got device={device}")
        gates = CELLS[self._cell].gates
        out = self.proj_size or self.hidden_size      # the width of h and of each direction
        d_count = 2 if self.bidirectional else 1
        # (names per layer and direction, in torch's order), as torch's _flat_weights_names.
        self._weight_names: List[List[List[str]]] = []
        for k in range(self.num_layers):
            layer_in = self.input_size if k == 0 else d_count * out
            per_dir = []
            for d in range(d_count):
                sfx = f"_l{k}" + ("_reverse" if d else "")
                shapes = [("weight_ih", (gates * hidden_size, layer_in)),
                          ("weight_hh", (gates * hidden_size, out))]
                if self.bias:
                    shapes += [("bias_ih", (gates * hidden_size,)),
                               ("bias_hh", (gates * hidden_size,))]
                if self.proj_size:
                    shapes.append(("weight_hr", (self.proj_size, hidden_size)))
                for name, shape in shapes:
                    setattr(self, name + sfx, nn.Parameter(torch.empty(shape, dtype=dtype,
                                                                       device=device)))
                per_dir.append([n + sfx for n, _ in shapes])
            self._weight_names.append(per_dir)
        self.reset_parameters()

    # -------------------------------------------------------------- torch's extras
    def reset_parameters(self) -> None:
        """Every parameter ~ U(-1/sqrt(H), 1/sqrt(H)), drawn in parameter order from torch's
        generator: the same seed gives torch's own module's weights."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for w in self.parameters():
            nn.init.uniform_(w, -bound, bound)

    def flatten_parameters(self) -> None:
        """No-op (each weight is already one array to the kernels), for ported scripts."""

    @property
    def all_weights(self) -> List[List[nn.Parameter]]:
        """The parameters per layer and direction, as torch's ``all_weights``."""
        return [[getattr(self, n) for n in names] for per_dir in self._weight_names
                for names in per_dir]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        return s

    # -------------------------------------------------------------- forward
    def _weights(self, layer: int, direction: int) -> List[Optional[Tensor]]:
        """w_ih, w_hh, b_ih, b_hh, w_hr of one layer and direction (None where absent)."""
        named = {n.rsplit("_l", 1)[0]: getattr(self, n)
                 for n in self._weight_names[layer][direction]}
        return [named.get(n) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh",
                                       "weight_hr")]

    def _check_tensor(self, name: str, t: Any, dtype: torch.dtype) -> Tensor:
        if not isinstance(t, Tensor):
            raise TypeError(f"{type(self).__name__}: {name} must be a torch.Tensor, got "
                            f"{type(t).__name__}")
        if t.device.type != "cpu":
            raise ValueError(f"{type(self).__name__} runs rnnkit's CPU kernels: {name} is on "
                             f"{t.device}; keep the module and its inputs on the CPU")
        if t.dtype != dtype:
            raise TypeError(f"{type(self).__name__}: {name} has dtype {t.dtype} but the "
                            f"module's parameters are {dtype} (convert one to the other)")
        return t

    def _run(self, input: Any, hx: Optional[List[Optional[Tensor]]]) -> Tuple[Any, List[Tensor]]:
        """The shared forward: ``output, [h_n] or [h_n, c_n]`` (hx: one tensor per state)."""
        name = type(self).__name__
        w0 = self.weight_ih_l0
        dtype = w0.dtype
        if dtype not in _FLOAT_DTYPES or w0.device.type != "cpu":
            raise TypeError(f"{name}'s parameters are {dtype} on {w0.device}; rnnkit's kernels "
                            "take float32 or float64 CPU tensors (use .float() or .double())")
        packed = isinstance(input, PackedSequence)
        lengths: Optional[Tensor] = None
        index: Optional[Tensor] = None
        sorted_indices = unsorted_indices = None
        unbatched = False
        if packed:
            data, batch_sizes, sorted_indices, unsorted_indices = input
            data = self._check_tensor("input.data", data, dtype)
            if data.dim() != 2 or data.shape[1] != self.input_size:
                raise ValueError(f"{name}: a PackedSequence's data must be (N, input_size="
                                 f"{self.input_size}), got {tuple(data.shape)}")
            # Unpack into a time-major padded batch (in the packed, sorted order) plus
            # lengths: index[n] is the padded row (t*B + b) of packed row n.
            steps = batch_sizes.numel()
            batch = int(batch_sizes[0])
            valid = torch.arange(batch)[None, :] < batch_sizes[:, None]      # (T, B)
            index = valid.reshape(-1).nonzero().reshape(-1)
            lengths = valid.sum(0)
            x = data.new_zeros((steps * batch, self.input_size)).index_copy(0, index, data)
            x = x.view(steps, batch, self.input_size)
        else:
            x = self._check_tensor("input", input, dtype)
            if x.dim() not in (2, 3):
                layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
                raise ValueError(f"{name}: input must be 3-D {layout} or 2-D (T, input_size) "
                                 f"unbatched, got shape {tuple(x.shape)}")
            if x.shape[-1] != self.input_size:
                raise ValueError(f"{name}: input has shape {tuple(x.shape)}, expected its last "
                                 f"axis to be input_size={self.input_size}")
            unbatched = x.dim() == 2
            if unbatched:
                x = x.unsqueeze(1)
            elif self.batch_first:
                x = x.transpose(0, 1)
        steps, batch = x.shape[0], x.shape[1]
        d_count = 2 if self.bidirectional else 1
        ld = self.num_layers * d_count
        out = self.proj_size or self.hidden_size
        widths = [out] + [self.hidden_size] * (len(hx or []) - 1)
        states: List[Optional[Tensor]] = []
        if hx is not None:
            for k, (h, w) in enumerate(zip(hx, widths)):
                label = "hx" if len(hx) == 1 else f"hx[{k}]"
                h = self._check_tensor(label, h, dtype)
                want = (ld, w) if unbatched else (ld, batch, w)
                if tuple(h.shape) != want:
                    raise ValueError(f"{name}: {label} has shape {tuple(h.shape)}, expected "
                                     f"{want} (num_layers*num_directions, "
                                     + ("" if unbatched else "batch, ")
                                     + ("proj_size" if k == 0 and self.proj_size else
                                        "hidden_size") + ")")
                if unbatched:
                    h = h.unsqueeze(1)
                elif sorted_indices is not None:
                    h = h.index_select(1, sorted_indices)   # into the packed (sorted) order
                states.append(h.contiguous())
        all_weights = [w for per_dir in self._weight_names for names in per_dir
                       for w in (getattr(self, n) for n in names)]
        # Only keep activations where a backward can follow (no_grad or inputs and weights
        # that need no gradient: the kernels' inference path, which saves nothing).
        training = torch.is_grad_enabled() and (
            x.requires_grad or any(s is not None and s.requires_grad for s in states)
            or any(w.requires_grad for w in all_weights))
        # The backward reads x as one contiguous block: make it so once here (a batch-first
        # input is transposed by this copy) rather than inside the kernel at every call.
        layer_in = x.contiguous() if training else x
        n_states = len(CELLS[self._cell].states)
        finals: List[List[Tensor]] = [[] for _ in range(n_states)]
        for k in range(self.num_layers):
            ys = []
            for d in range(d_count):
                idx = k * d_count + d
                w_ih, w_hh, b_ih, b_hh, w_hr = self._weights(k, d)
                h0 = states[0][idx] if states else None
                c0 = states[1][idx] if len(states) > 1 else None
                y, fin, _ = recurrent_forward(self._cell, layer_in, h0, c0, w_ih, w_hh, b_ih,
                                              b_hh, w_hr, lengths, bool(d), training)
                ys.append(y)
                for i, f in enumerate(fin):
                    finals[i].append(f)
            layer_out = ys[0] if d_count == 1 else torch.cat(ys, 2)
            if self.training and self.dropout > 0 and k < self.num_layers - 1:
                layer_out = self._dropout(layer_out, index)
            layer_in = layer_out
        final_states = [torch.stack(f) for f in finals]
        y = layer_in
        if packed:
            assert index is not None
            data_out = y.reshape(steps * batch, y.shape[2]).index_select(0, index)
            if unsorted_indices is not None:
                final_states = [f.index_select(1, unsorted_indices) for f in final_states]
            return PackedSequence(data_out, batch_sizes, sorted_indices,
                                  unsorted_indices), final_states
        if unbatched:
            return y.squeeze(1), [f.squeeze(1) for f in final_states]
        if self.batch_first:
            y = y.transpose(0, 1)
        return y, final_states

    def _dropout(self, y: Tensor, index: Optional[Tensor]) -> Tensor:
        """Dropout of a layer's output, on the tensor torch's modules drop, so the same seed
        draws the same mask: the (T, B, D*H) output, or a packed batch's (N, D*H) data."""
        if index is None:
            return F.dropout(y, self.dropout, True)
        steps, batch, width = y.shape
        data = F.dropout(y.reshape(steps * batch, width).index_select(0, index),
                         self.dropout, True)
        return y.new_zeros((steps * batch, width)).index_copy(0, index, data).view(
            steps, batch, width)


class LSTM(_RNNBase):
    """``torch.nn.LSTM`` on rnnkit's kernels: same arguments, parameters and call.

    ``output, (h_n, c_n) = lstm(input, hx=None)`` with ``hx = (h_0, c_0)``: input (T, B, I)
    (or (B, T, I) with batch_first, (T, I) unbatched, or a PackedSequence), h_0 and h_n
    (L*D, B, H or proj_size), c_0 and c_n (L*D, B, H), output (T, B, D*(H or proj_size)).
    Gates i, f, g, o, torch's order; ``proj_size`` adds ``weight_hr_l{k}`` (P, H) as torch's.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device: Any = None,
                 dtype: Optional[torch.dtype] = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, device, dtype)

    def forward(self, input: Union[Tensor, PackedSequence],
                hx: Optional[Tuple[Tensor, Tensor]] = None
                ) -> Tuple[Union[Tensor, PackedSequence], Tuple[Tensor, Tensor]]:
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTM: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
        y, (h_n, c_n) = self._run(input, None if hx is None else list(hx))
        return y, (h_n, c_n)


class GRU(_RNNBase):
    """``torch.nn.GRU`` on rnnkit's kernels: same arguments, parameters and call.

    ``output, h_n = gru(input, hx=None)``; shapes as :class:`LSTM`'s h. Gates r, z, n and
    torch's formula n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device: Any = None,
                 dtype: Optional[torch.dtype] = None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, 0, device, dtype)

    def forward(self, input: Union[Tensor, PackedSequence],
                hx: Optional[Tensor] = None) -> Tuple[Union[Tensor, PackedSequence], Tensor]:
        if hx is not None and not isinstance(hx, Tensor):
            raise TypeError(f"GRU: hx must be a tensor h_0, got {type(hx).__name__}")
        y, (h_n,) = self._run(input, None if hx is None else [hx])
        return y, h_n


class RNN(_RNNBase):
    """``torch.nn.RNN`` on rnnkit's kernels: h' = act(W_ih x + b_ih + W_hh h + b_hh) with
    ``nonlinearity`` "tanh" (default) or "relu"; call and shapes as :class:`GRU`'s."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device: Any = None,
                 dtype: Optional[torch.dtype] = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             "'relu'.")
        super().__init__("RNN_" + nonlinearity.upper(), input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, 0, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Union[Tensor, PackedSequence],
                hx: Optional[Tensor] = None) -> Tuple[Union[Tensor, PackedSequence], Tensor]:
        if hx is not None and not isinstance(hx, Tensor):
            raise TypeError(f"RNN: hx must be a tensor h_0, got {type(hx).__name__}")
        y, (h_n,) = self._run(input, None if hx is None else [hx])
        return y, h_n


class LSTMOutput(LSTM):
    """:class:`LSTM` whose forward returns the output alone, to sit inside
    ``torch.nn.Sequential`` (the rnnkit-kernel twin of ``torch_convert.LSTMOutput``)."""

    def forward(self, input: Any, hx: Any = None) -> Any:  # type: ignore[override]
        return super().forward(input, hx)[0]


class GRUOutput(GRU):
    """:class:`GRU` whose forward returns the output alone (see :class:`LSTMOutput`)."""

    def forward(self, input: Any, hx: Any = None) -> Any:  # type: ignore[override]
        return super().forward(input, hx)[0]


class RNNOutput(RNN):
    """:class:`RNN` whose forward returns the output alone (see :class:`LSTMOutput`)."""

    def forward(self, input: Any, hx: Any = None) -> Any:  # type: ignore[override]
        return super().forward(input, hx)[0]


_TORCH_TO_RNNKIT = {nn.LSTM: LSTM, nn.GRU: GRU, nn.RNN: RNN,
                    torch_convert.LSTMOutput: LSTMOutput, torch_convert.GRUOutput: GRUOutput,
                    torch_convert.RNNOutput: RNNOutput}


def _swapped(m: nn.Module) -> nn.Module:
    """The rnnkit-kernel module equivalent to torch recurrent module m, weights copied."""
    cls = _TORCH_TO_RNNKIT[type(m)]
    w = m.weight_ih_l0
    kw: dict = dict(num_layers=m.num_layers, bias=m.bias, batch_first=m.batch_first,
                    dropout=float(m.dropout), bidirectional=m.bidirectional, device=w.device,
                    dtype=w.dtype)
    if issubclass(cls, RNN):
        kw["nonlinearity"] = m.nonlinearity
    if m.proj_size:
        kw["proj_size"] = m.proj_size
    with warnings.catch_warnings():
        # torch warned about dropout with one layer when m was built; once is enough.
        warnings.filterwarnings("ignore", message="dropout acts after every recurrent layer",
                                category=UserWarning)
        new = cls(m.input_size, m.hidden_size, **kw)
    with torch.no_grad():
        new.load_state_dict(m.state_dict())
    new.train(m.training)
    return new


def use_rnnkit_kernels(model: nn.Module) -> nn.Module:
    """Replace every ``torch.nn.LSTM``, ``GRU`` and ``RNN`` in ``model`` (at any depth) by
    this module's class of the same name, with the same settings, weights (copied) and mode,
    and return the model (or, when ``model`` itself is one of them, its replacement).

    ``to_torch``'s output-only ``LSTMOutput`` / ``GRUOutput`` / ``RNNOutput`` become this
    module's classes of those names, so ``use_rnnkit_kernels(to_torch(rnnkit_model))`` is
    the rnnkit model as a torch model on rnnkit's kernels. Only those exact classes are
    swapped (a subclass may have changed what forward does). Build the optimizer afterwards:
    the swapped layers have new Parameter objects.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"use_rnnkit_kernels needs a torch.nn.Module, got "
                        f"{type(model).__name__}")
    if type(model) in _TORCH_TO_RNNKIT:
        return _swapped(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) in _TORCH_TO_RNNKIT:
                setattr(parent, name, _swapped(child))
    return model
