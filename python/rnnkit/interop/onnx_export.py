"""ONNX export of rnnkit models: :func:`export` writes a ``.onnx`` file that ONNX Runtime and
OpenVINO run with rnnkit's results (float32, to ~1e-5 relative).

Each recurrent layer becomes, per stacked layer, either ONNX's own LSTM / GRU / RNN op (one
node per layer, both directions in one ``direction="bidirectional"`` node) or, where that op
would not give rnnkit's result in both runtimes, an ONNX ``Scan`` whose body is one step of the
cell written out in elementwise ops (see :func:`export`'s ``recurrence``). Weights come from
the layer's parameters through :mod:`.onnx_layout` (gate orders, the peephole vector).

``onnx`` is imported only when :func:`export` is called: ``import rnnkit`` never needs it.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import nn
from .._runtime import __version__
from ..io import write_atomically
from ..ops.gates import GateOptions
from .onnx_layout import ONNX_ACTIVATION, ONNX_OP, gates_to_onnx, peephole_to_onnx

__all__ = ["export"]

_INSTALL_HINT = 'ONNX export needs the onnx package: pip install "rnnkit[onnx]"'
_RECURRENT = (nn.LSTM, nn.GRU, nn.RNN)
_LAYERNORM = (nn.LayerNormLSTM, nn.LayerNormGRU)
_ACTIVATION_OPS = {nn.Tanh: "Tanh", nn.ReLU: "Relu", nn.Sigmoid: "Sigmoid"}
_DEFAULT_ACTIVATIONS = {"lstm": ("sigmoid", "tanh", "tanh"), "gru": ("sigmoid", "tanh")}
_LN_EPS = 1e-5               # the LayerNorm cells' epsilon (rnnkit.nn.LayerNormLSTM)
_MIN_OPSET = 17              # LayerNormalization; Split/Squeeze/Clip with tensor inputs
_RECURRENCE = ("auto", "op", "scan")
_TIME, _BATCH = "T", "B"     # the graph's dynamic axes

Dims = Tuple[Union[int, str], ...]
Activation = Tuple[str, float, float]


@dataclass
class _Value:
    """A tensor of the graph being built: its name and (symbolic) dims."""

    name: str
    dims: Dims


@dataclass
class _Builder:
    """Nodes and initializers of one graph (the model's, or a Scan body), with names that are
    unique across the model: a body's names share the outer graph's counter."""

    onnx: Any
    dtype: np.dtype
    counter: List[int] = field(default_factory=lambda: [0])
    nodes: List[Any] = field(default_factory=list)
    inits: List[Any] = field(default_factory=list)

    def fresh(self, hint: str) -> str:
        self.counter[0] += 1
        return f"{hint}_{self.counter[0]}"

    def sub(self) -> "_Builder":
        return _Builder(self.onnx, self.dtype, self.counter)

    def const(self, a: Any, hint: str = "const", dtype: Any = None) -> str:
        arr = np.array(a, dtype or self.dtype, order="C")  # (0-d stays 0-d)
        name = self.fresh(hint)
        self.inits.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def ints(self, values: Sequence[int], hint: str = "ints") -> str:
        return self.const(np.asarray(values, np.int64), hint, np.int64)

    def op(self, op_type: str, inputs: Sequence[str], hint: Optional[str] = None,
           outputs: Union[int, Sequence[str]] = 1, **attrs: Any) -> Any:
        """Add a node; returns its output name (a list of them when outputs > 1 or a list of
        names is given)."""
        if isinstance(outputs, int):
            names = [self.fresh(hint or op_type.lower()) for _ in range(outputs)]
        else:
            names = list(outputs)
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), names,
                                                     name=self.fresh(op_type), **attrs))
        return names[0] if isinstance(outputs, int) and outputs == 1 else names

    def zeros_state(self, x_tm: str, width: int) -> str:
        """A (B, width) zero state, B read from the time-major (T, B, ·) tensor x_tm."""
        batch = self.op("Slice", [self.op("Shape", [x_tm]), self.ints([1]), self.ints([2])])
        shape = self.op("Concat", [batch, self.ints([width])], axis=0)
        return self.op("ConstantOfShape", [shape],
                       value=self.onnx.numpy_helper.from_array(np.zeros(1, self.dtype)))


# ------------------------------------------------------------------------- layer analysis


def _layer_name(index: Optional[int], layer: Any) -> str:
    where = "the model" if index is None else f"layer {index}"
    return f"{where} ({type(layer).__name__})"


def _flatten(model: Any) -> List[Any]:
    """The model's layers in order (nested Sequentials flattened); a lone layer is a list of
    one."""
    if isinstance(model, nn.Sequential):
        out: List[Any] = []
        for layer in model:
            out.extend(_flatten(layer) if isinstance(layer, nn.Sequential) else [layer])
        return out
    return [model]


def _family(layer: Any) -> str:
    return layer._family


def _gate_options(layer: Any) -> GateOptions:
    """The layer's ONNX gate options, normalised (activations as (name, alpha, beta))."""
    return GateOptions(tuple(layer.activations or ()), layer.clip, bool(layer.input_forget))


def _activations(layer: Any) -> List[Activation]:
    """Each activation slot's (name, alpha, beta): the layer's ONNX options, else its cell's
    usual functions (the RNN's nonlinearity)."""
    acts = _gate_options(layer).activations
    if acts:
        return [tuple(a) for a in acts]                      # type: ignore[misc]
    family = _family(layer)
    names = (layer.nonlinearity or "tanh",) if family == "rnn" else _DEFAULT_ACTIVATIONS[family]
    return [(n, 0.0, 0.0) for n in names]


def _cell_option(layer: Any, name: str, default: Any) -> Any:
    return dict(layer._spec.options).get(name, default)


def _op_cannot(layer: Any) -> Optional[str]:
    """Why ONNX's LSTM/GRU/RNN op cannot express this layer at inference, or None."""
    if isinstance(layer, _LAYERNORM):
        return "its LayerNorm cells (ONNX's LSTM and GRU have no normalisation)"
    if getattr(layer, "proj_size", 0):
        return f"proj_size={layer.proj_size} (ONNX's LSTM has no projection)"
    if getattr(layer, "zoneout", 0.0):
        return (f"zoneout={layer.zoneout} (at inference h' = z h + (1 - z) cell(x, h), which "
                "ONNX's ops cannot express)")
    return None


def _openvino_differs(layer: Any, lengths: bool) -> Optional[str]:
    """Why OpenVINO (2026.4) would not compute this layer's ONNX op as ONNX Runtime and rnnkit
    do, or None: measured, each of these gives other numbers (or fails to compile) there."""
    if _cell_option(layer, "peephole", False):
        return "peephole (OpenVINO ignores the LSTM's P input)"
    if layer.input_forget:
        return "input_forget (OpenVINO ignores it)"
    if any(a[0] == "hard_sigmoid" for a in _activations(layer)):
        return "a hard_sigmoid activation (OpenVINO's LSTM/GRU/RNN cannot compile it)"
    if lengths:
        return ("lengths (with a dynamic axis, OpenVINO runs a one-layer op over every step of "
                "every sequence, as if there were no sequence_lens)")
    return None


def _use_scan(layer: Any, index: Optional[int], recurrence: str, lengths: bool) -> bool:
    cannot = _op_cannot(layer)
    if recurrence == "op":
        if cannot:
            raise NotImplementedError(
                f"{_layer_name(index, layer)}: recurrence='op' cannot export {cannot}; use "
                "recurrence='auto' (an ONNX Scan) instead")
        return False
    if recurrence == "scan":
        return True
    return bool(cannot or _openvino_differs(layer, lengths))


# ------------------------------------------------------------------------- small layers


def _embedding(b: _Builder, layer: Any, x: _Value, params: Dict[str, np.ndarray]) -> _Value:
    w = b.const(params["weight"], "embedding_weight")
    return _Value(b.op("Gather", [w, x.name], axis=0), x.dims + (layer.embedding_dim,))


def _linear(b: _Builder, layer: Any, x: _Value, params: Dict[str, np.ndarray]) -> _Value:
    if isinstance(x.dims[-1], int) and x.dims[-1] != layer.in_features:
        raise ValueError(f"Linear(in_features={layer.in_features}) receives {x.dims[-1]} "
                         "features from the layer before it")
    y = b.op("MatMul", [x.name, b.const(params["weight"].T, "linear_weight_t")])
    if "bias" in params:
        y = b.op("Add", [y, b.const(params["bias"], "linear_bias")])
    return _Value(y, x.dims[:-1] + (layer.out_features,))


def _gelu(b: _Builder, layer: Any, x: str, opset: int) -> str:
    if opset >= 20:
        return b.op("Gelu", [x], approximate=layer.approximate)
    half = b.const(0.5)
    one = b.const(1.0)
    if layer.approximate == "tanh":
        cube = b.op("Mul", [b.op("Mul", [x, x]), x])
        inner = b.op("Add", [x, b.op("Mul", [cube, b.const(0.044715)])])
        t = b.op("Tanh", [b.op("Mul", [inner, b.const(math.sqrt(2.0 / math.pi))])])
    else:
        t = b.op("Erf", [b.op("Mul", [x, b.const(1.0 / math.sqrt(2.0))])])
    return b.op("Mul", [b.op("Mul", [x, half]), b.op("Add", [t, one])])


def _last(b: _Builder, layer: Any, x: _Value, lengths: Optional[str]) -> _Value:
    if len(x.dims) != 3:
        raise ValueError(f"Last needs a 3-D input (T, B, F) or (B, T, F); the layer before it "
                         f"gives {len(x.dims)}-D")
    time_axis = 1 if layer.batch_first else 0
    dims = (x.dims[1 - time_axis], x.dims[2])
    if lengths is None:                        # every sequence is T long: its step T - 1
        return _Value(b.op("Gather", [x.name, b.const(np.int64(-1), "last", np.int64)],
                           axis=time_axis), dims)
    xb = x.name if layer.batch_first else b.op("Transpose", [x.name], perm=[1, 0, 2])
    one = b.ints([1])
    step = b.op("Max", [b.op("Sub", [lengths, one]), b.ints([0])])      # (B,): a length 0 ...
    picked = b.op("GatherND", [xb, b.op("Unsqueeze", [step, one])], batch_dims=1)
    valid = b.op("Unsqueeze", [b.op("Greater", [lengths, b.ints([0])]), one])
    zero = b.const(np.zeros(1))                                     # ... gives zeros, as rnnkit
    return _Value(b.op("Where", [valid, picked, zero]), dims)


# ------------------------------------------------------------------------- recurrent layers


def _direction_params(layer: Any, params: Dict[str, np.ndarray], k: int,
                      d: int) -> Dict[str, np.ndarray]:
    """One layer and direction's parameters by their base name (weight_ih, peephole, ...)."""
    sfx = f"_l{k}" + ("_reverse" if d else "")
    return {base: params[base + sfx] for base in layer._weight_names if base + sfx in params}


def _op_layer(b: _Builder, layer: Any, params: Dict[str, np.ndarray], k: int, x_tm: str,
              seq_lens: Optional[str]) -> Tuple[str, List[str]]:
    """Stacked layer k as one ONNX LSTM/GRU/RNN node: ((T, B, D*H) output, its final states
    (D, B, H) each)."""
    family = _family(layer)
    h = layer.hidden_size
    dirs = layer.num_directions
    per = [_direction_params(layer, params, k, d) for d in range(dirs)]
    w = np.stack([gates_to_onnx(p["weight_ih"], family) for p in per])
    r = np.stack([gates_to_onnx(p["weight_hh"], family) for p in per])
    inputs = [x_tm, b.const(w, "W"), b.const(r, "R")]
    if layer.bias:
        inputs.append(b.const(np.stack([np.concatenate([gates_to_onnx(p["bias_ih"], family),
                                                        gates_to_onnx(p["bias_hh"], family)])
                                        for p in per]), "B"))
    else:
        inputs.append("")
    inputs.append(seq_lens or "")
    if _cell_option(layer, "peephole", False):
        inputs += ["", "", b.const(np.stack([peephole_to_onnx(p["peephole"]) for p in per]),
                                   "P")]
    while inputs[-1] == "":
        inputs.pop()
    attrs: Dict[str, Any] = {"hidden_size": h,
                             "direction": "bidirectional" if dirs == 2 else "forward"}
    acts = _activations(layer) * dirs               # ONNX lists each direction's in turn
    attrs["activations"] = [ONNX_ACTIVATION[a[0]] for a in acts]
    if any(a[0] == "hard_sigmoid" for a in acts):   # consumed by the activations taking them
        attrs["activation_alpha"] = [a[1] for a in acts if a[0] == "hard_sigmoid"]
        attrs["activation_beta"] = [a[2] for a in acts if a[0] == "hard_sigmoid"]
    if layer.clip is not None:
        attrs["clip"] = float(layer.clip)
    if family == "lstm" and layer.input_forget:
        attrs["input_forget"] = 1
    if family == "gru":
        attrs["linear_before_reset"] = int(_cell_option(layer, "reset_after", True))
    n_states = 2 if family == "lstm" else 1
    outs = b.op(ONNX_OP[family], inputs, outputs=1 + n_states, hint=f"{family}_l{k}", **attrs)
    y = outs[0]                                                      # (T, D, B, H)
    if dirs == 1:
        y = b.op("Squeeze", [y, b.ints([1])])
    else:
        y = b.op("Reshape", [b.op("Transpose", [y], perm=[0, 2, 1, 3]), b.ints([0, 0, -1])])
    return y, outs[1:]


def _act(b: _Builder, a: Activation, x: str, clip: Optional[float]) -> str:
    """One activation slot on x (its input clipped first, as ONNX's ops and rnnkit do)."""
    if clip is not None:
        x = b.op("Clip", [x, b.const(-clip), b.const(clip)])
    name, alpha, beta = a
    if name == "hard_sigmoid":
        return b.op("HardSigmoid", [x], alpha=alpha, beta=beta)
    return b.op(ONNX_ACTIVATION[name], [x])


def _product_epilogue(b: Any, v: str, p: Dict[str, np.ndarray], which: str, layernorm: bool,
                      rows: Optional[int] = None) -> str:
    """What follows a gate product (``which``: "ih" or "hh") in the Scan's cell: the LayerNorm
    cells' LayerNormalization (gain ``ln_weight_{which}``, the bias as its beta), else the bias
    (its first ``rows`` rows), else nothing."""
    bias = p.get(f"bias_{which}")
    if layernorm:
        inputs = [v, b.const(p[f"ln_weight_{which}"], f"ln_w_{which}")]
        if bias is not None:
            inputs.append(b.const(bias, f"b_{which}"))
        return b.op("LayerNormalization", inputs, axis=-1, epsilon=_LN_EPS)
    if bias is not None:
        return b.op("Add", [v, b.const(bias if rows is None else bias[:rows], f"b_{which}")])
    return v


def _scan_direction(b: _Builder, layer: Any, p: Dict[str, np.ndarray], x_tm: str,
                    mask: Optional[str], reverse: bool) -> Tuple[str, List[str]]:
    """One layer and direction as an ONNX Scan over the time-major (T, B, I) input x_tm: its
    (T, B, out) output and final states (B, width) each (h, then c for the LSTMs).

    The input products of every step come first, as one MatMul; the body does one step: the
    recurrent product, the cell, zoneout's expectation, and (with a mask (T, B, 1) from the
    lengths) a step that is past a sequence's end keeps its state and outputs zeros, so a
    reverse direction starts at each sequence's own last valid step."""
    family = _family(layer)
    layernorm = isinstance(layer, _LAYERNORM)
    lstm = family in ("lstm", "layernorm_lstm")
    h = layer.hidden_size
    out = getattr(layer, "proj_size", 0) or h
    g = 4 if lstm else (3 if family in ("gru", "layernorm_gru") else 1)
    clip = None if layernorm else layer.clip
    acts = [("sigmoid", 0.0, 0.0), ("tanh", 0.0, 0.0), ("tanh", 0.0, 0.0)] if layernorm \
        else _activations(layer)
    xw = b.op("MatMul", [x_tm, b.const(p["weight_ih"].T, "w_ih_t")])         # (T, B, G*H)
    xw = _product_epilogue(b, xw, p, "ih", layernorm)

    s = b.sub()
    h_prev, x_t = s.fresh("h_prev"), s.fresh("xw_t")
    c_prev = s.fresh("c_prev") if lstm else None
    m_t = s.fresh("mask_t") if mask is not None else None
    onnx = b.onnx
    tp = onnx.helper.np_dtype_to_tensor_dtype(b.dtype)

    def vi(name: str, width: Any, elem: int = tp) -> Any:
        return onnx.helper.make_tensor_value_info(name, elem, [_BATCH, width])

    def split(v: str, n: int) -> List[str]:
        return s.op("Split", [v, s.ints([h] * n)], outputs=n, axis=1)

    two_phase = family == "gru" and not _cell_option(layer, "reset_after", True)
    w_hh = p["weight_hh"]
    rows = 2 * h if two_phase else g * h          # the two-phase GRU's n rows read r ⊙ h
    gh = s.op("MatMul", [h_prev, s.const(w_hh[:rows].T, "w_hh_t")])
    gh = _product_epilogue(s, gh, p, "hh", layernorm, rows)
    c_new = None
    if lstm:
        ai, af, ag, ao = split(s.op("Add", [x_t, gh]), 4)
        if "peephole" in p:                        # i and f see c_{t-1}, o sees c_t
            p_i, p_f, p_o = (s.const(v, "peephole") for v in np.split(p["peephole"], 3))
            ai = s.op("Add", [ai, s.op("Mul", [p_i, c_prev])])
            af = s.op("Add", [af, s.op("Mul", [p_f, c_prev])])
        i = _act(s, acts[0], ai, clip)
        f = (s.op("Sub", [s.const(1.0), i]) if not layernorm and layer.input_forget
             else _act(s, acts[0], af, clip))
        gg = _act(s, acts[1], ag, clip)
        c_new = s.op("Add", [s.op("Mul", [f, c_prev]), s.op("Mul", [i, gg])])
        if "peephole" in p:
            ao = s.op("Add", [ao, s.op("Mul", [p_o, c_new])])
        o = _act(s, acts[0], ao, clip)
        c_act = c_new
        if layernorm:
            ln_in = [c_new, s.const(p["ln_weight_c"], "ln_w_c"),
                     s.const(p["ln_bias_c"], "ln_b_c")]
            c_act = s.op("LayerNormalization", ln_in, axis=-1, epsilon=_LN_EPS)
        h_new = s.op("Mul", [o, _act(s, acts[2], c_act, None)])   # (ONNX: h's input unclipped)
        if out != h:
            h_new = s.op("MatMul", [h_new, s.const(p["weight_hr"].T, "w_hr_t")])
    elif g == 3:
        xr, xz, xn = split(x_t, 3)
        if two_phase:
            hr, hz = split(gh, 2)
        else:
            hr, hz, hn = split(gh, 3)
        r = _act(s, acts[0], s.op("Add", [xr, hr]), clip)
        z = _act(s, acts[0], s.op("Add", [xz, hz]), clip)
        if two_phase:                              # n = g(W_in x + b_in + W_hn (r ⊙ h) + b_hn)
            hn = s.op("MatMul", [s.op("Mul", [r, h_prev]),
                                 s.const(w_hh[2 * h:].T, "w_hn_t")])
            if "bias_hh" in p:
                hn = s.op("Add", [hn, s.const(p["bias_hh"][2 * h:], "b_hn")])
            n_in = s.op("Add", [xn, hn])
        else:                                      # n = g(W_in x + b_in + r ⊙ (W_hn h + b_hn))
            n_in = s.op("Add", [xn, s.op("Mul", [r, hn])])
        n = _act(s, acts[1], n_in, clip)
        h_new = s.op("Add", [s.op("Mul", [s.op("Sub", [s.const(1.0), z]), n]),
                             s.op("Mul", [z, h_prev])])
    else:
        h_new = _act(s, acts[0], s.op("Add", [x_t, gh]), clip)
    zoneout = float(getattr(layer, "zoneout", 0.0))
    if zoneout:                                    # its expectation, as rnnkit's eval mode
        h_new = s.op("Add", [s.op("Mul", [s.const(zoneout), h_prev]),
                             s.op("Mul", [s.const(1.0 - zoneout), h_new])])
    y_t = h_new
    if m_t is not None:                            # past the end: keep the state, output 0
        h_new = s.op("Where", [m_t, h_new, h_prev])
        if c_new is not None:
            c_new = s.op("Where", [m_t, c_new, c_prev])
        y_t = s.op("Where", [m_t, y_t, s.const(np.zeros(1))])
    # Scan wants each body output a name of its own.
    h_out = s.op("Identity", [h_new], hint="h_next")
    c_out = s.op("Identity", [c_new], hint="c_next") if c_new is not None else None
    y_out = s.op("Identity", [y_t], hint="y_t")

    body_in = [vi(h_prev, out)] + ([vi(c_prev, h)] if lstm else []) + [vi(x_t, g * h)]
    if m_t is not None:
        body_in.append(vi(m_t, 1, onnx.TensorProto.BOOL))
    body_out = [vi(h_out, out)] + ([vi(c_out, h)] if lstm else []) + [vi(y_out, out)]
    body = onnx.helper.make_graph(s.nodes, b.fresh("step"), body_in, body_out,
                                  initializer=s.inits)
    states0 = [b.zeros_state(x_tm, out)] + ([b.zeros_state(x_tm, h)] if lstm else [])
    scan_in = states0 + [xw] + ([mask] if mask is not None else [])
    n_scan = 2 if mask is not None else 1
    outs = b.op("Scan", scan_in, outputs=len(states0) + 1, hint=f"{family}_scan", body=body,
                num_scan_inputs=n_scan, scan_input_directions=[int(reverse)] * n_scan,
                scan_output_directions=[int(reverse)])
    return outs[-1], outs[:-1]


def _recurrent(b: _Builder, layer: Any, index: Optional[int], x: _Value,
               params: Dict[str, np.ndarray], lengths: Optional[str], scan: bool,
               cache: Dict[str, str]) -> Tuple[_Value, List[_Value]]:
    """A recurrent layer (all its stacked layers): its output and its final states
    (L*D, B, width) each, as the layer returns them."""
    if len(x.dims) != 3:
        raise ValueError(f"{_layer_name(index, layer)} needs a 3-D input; the layer before it "
                         f"gives {len(x.dims)}-D")
    if isinstance(x.dims[2], int) and x.dims[2] != layer.input_size:
        raise ValueError(f"{_layer_name(index, layer)} has input_size={layer.input_size} but "
                         f"receives {x.dims[2]} features")
    x_tm = b.op("Transpose", [x.name], perm=[1, 0, 2]) if layer.batch_first else x.name
    t_dim, b_dim = (x.dims[1], x.dims[0]) if layer.batch_first else (x.dims[0], x.dims[1])
    dirs = layer.num_directions
    lstm = _family(layer) in ("lstm", "layernorm_lstm")
    out = getattr(layer, "proj_size", 0) or layer.hidden_size
    mask = seq_lens = None
    if lengths is not None and scan:
        # (T, B, 1): step t is valid for sequence b where t < lengths[b]
        steps = b.op("Range", [b.const(np.int64(0), "zero", np.int64),
                               b.op("Squeeze", [b.op("Slice", [b.op("Shape", [x_tm]),
                                                               b.ints([0]), b.ints([1])]),
                                                b.ints([0])]),
                               b.const(np.int64(1), "one", np.int64)])
        valid = b.op("Less", [b.op("Unsqueeze", [steps, b.ints([1])]),
                              b.op("Unsqueeze", [lengths, b.ints([0])])])
        mask = b.op("Unsqueeze", [valid, b.ints([2])], hint="step_mask")
    elif lengths is not None:
        if "seq_lens" not in cache:
            cache["seq_lens"] = b.op("Cast", [lengths], hint="sequence_lens",
                                     to=b.onnx.TensorProto.INT32)
        seq_lens = cache["seq_lens"]
    finals: List[List[str]] = [[] for _ in range(2 if lstm else 1)]
    inp = x_tm
    for k in range(layer.num_layers):
        if scan:
            ys = []
            for d in range(dirs):
                y_d, states = _scan_direction(b, layer, _direction_params(layer, params, k, d),
                                              inp, mask, bool(d))
                ys.append(y_d)
                for i, st in enumerate(states):
                    finals[i].append(b.op("Unsqueeze", [st, b.ints([0])]))
            inp = ys[0] if dirs == 1 else b.op("Concat", ys, axis=2)
        else:
            inp, states = _op_layer(b, layer, params, k, inp, seq_lens)
            for i, st in enumerate(states):
                finals[i].append(st)
    y = b.op("Transpose", [inp], perm=[1, 0, 2]) if layer.batch_first else inp
    y_dims = ((b_dim, t_dim) if layer.batch_first else (t_dim, b_dim)) + (dirs * out,)
    states_out = []
    for i, parts in enumerate(finals):
        s = parts[0] if len(parts) == 1 else b.op("Concat", parts, axis=0)
        states_out.append(_Value(s, (layer.num_layers * dirs, b_dim,
                                     out if i == 0 else layer.hidden_size)))
    return _Value(y, y_dims), states_out


# ------------------------------------------------------------------------------- export


def _import_onnx() -> Any:
    try:
        import onnx
        import onnx.checker
        import onnx.helper
        import onnx.numpy_helper
    except ImportError as e:
        raise ImportError(_INSTALL_HINT) from e
    return onnx


def _check_dtype(layers: List[Any], dtype: Any) -> np.dtype:
    model_dtypes = {np.dtype(layer.dtype).name for layer in layers if hasattr(layer, "dtype")}
    if dtype is None:
        if model_dtypes - {"float32"}:
            raise ValueError(
                f"the model is {', '.join(sorted(model_dtypes))}; ONNX Runtime has no float64 "
                "LSTM/GRU/RNN kernels, so export writes float32 graphs: pass dtype='float32' to "
                "export this model with its weights rounded to float32")
        return np.dtype(np.float32)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt != np.float32:
        raise ValueError(f"dtype must be None or 'float32' (ONNX Runtime has no float64 "
                         f"LSTM/GRU/RNN kernels), got {dtype!r}")
    return dt


def _check_layers(layers: List[Any], single: bool) -> None:
    known = (nn.Embedding, nn.Linear, nn.Dropout, nn.Last, nn.GELU, nn.Softmax,
             nn.LogSoftmax) + tuple(_ACTIVATION_OPS) + _RECURRENT + _LAYERNORM
    if not layers:
        raise ValueError("model is an empty Sequential: there is nothing to export")
    for i, layer in enumerate(layers):
        index = None if single else i
        if not isinstance(layer, known):
            raise TypeError(
                f"{_layer_name(index, layer)} cannot be exported to ONNX: export knows "
                "Embedding, RNN, LSTM, GRU, LayerNormLSTM, LayerNormGRU, Linear, Dropout, Last, "
                "Tanh, ReLU, Sigmoid, GELU, Softmax, LogSoftmax and Sequential of them")
        if isinstance(layer, nn.Embedding) and i:
            raise ValueError(f"{_layer_name(index, layer)}: an Embedding must be the first "
                             "layer (it takes the integer input)")


def _input_value(onnx: Any, layers: List[Any], dtype: np.dtype) -> Tuple[Any, _Value]:
    """The graph input: "ids" (int64) before an Embedding, else "x" (float), with the time
    and batch axes in the order of the first layer that has one (its batch_first)."""
    batch_first = next((bool(layer.batch_first) for layer in layers
                        if hasattr(layer, "batch_first")), False)
    axes: Dims = (_BATCH, _TIME) if batch_first else (_TIME, _BATCH)
    first = layers[0]
    if isinstance(first, nn.Embedding):
        return onnx.helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, axes), \
            _Value("ids", axes)
    width: Union[int, str] = "features"
    for layer in layers:                            # the first layer that fixes the width
        if isinstance(layer, (_RECURRENT, _LAYERNORM)):
            width = layer.input_size
            break
        if isinstance(layer, nn.Linear):
            width = layer.in_features
            break
        if isinstance(layer, nn.Last):
            break
    dims = axes + (width,)
    elem = onnx.helper.np_dtype_to_tensor_dtype(dtype)
    return onnx.helper.make_tensor_value_info("x", elem, dims), _Value("x", dims)


def export(model: Any, path: Union[str, "os.PathLike[str]"], *, lengths: bool = False,
           recurrence: str = "auto", opset: int = 22, dtype: Any = None) -> Any:
    """Write ``model`` (a :class:`~rnnkit.nn.Sequential`, or one layer) as an ONNX file.

    The file computes the model's inference (``eval()``) forward whatever mode the model is
    in, with dynamic time and batch axes, and runs in ONNX Runtime and OpenVINO with rnnkit's
    float32 results (tested to 1e-5 relative in onnxruntime 1.32 and openvino 2026.4, the
    LayerNorm cells to 1e-4, as their float32 row statistics round differently; give
    OpenVINO's CPU plugin ``{"INFERENCE_PRECISION_HINT": "f32"}``, as it may otherwise compute
    in bfloat16 on CPUs that have it). Example::

        model = Sequential(Embedding(V, E), LSTM(E, H, batch_first=True),
                           Last(batch_first=True), Linear(H, C))
        export(model, "classifier.onnx", lengths=True)
        # onnxruntime: sess.run(None, {"ids": ids (B, T) int64, "lengths": (B,) int64})

    Layers: Embedding (first only), RNN, LSTM, GRU, LayerNormLSTM, LayerNormGRU, Linear,
    Dropout (the identity at inference: no node), Last, Tanh, ReLU, Sigmoid, GELU, Softmax,
    LogSoftmax, and Sequentials of them (flattened). Anything else raises a TypeError naming
    the layer.

    Recurrent layers, every option: num_layers, bidirectional, batch_first, bias=False, the
    RNN's relu, GRU reset_after True / False (ONNX's linear_before_reset 1 / 0), LSTM
    peephole (ONNX's P input), ONNX's activations / clip / input_forget, proj_size, zoneout
    (at inference its expectation ``h' = z h + (1 - z) cell(x, h)``, which is exported) and
    the LayerNorm cells. ``dropout`` between layers and ``recurrent_dropout`` act in training
    only: at inference they are the identity, so nothing of them is exported. The initial
    states are zeros (the graph has no h0 / c0 inputs); ``carry_state`` is not exported, nor
    is unbatched (2-D) input: the graph's inputs always have a batch axis.

    Args:
        model: the model; its parameters are copied into the file (later changes to the model
            do not change the file).
        path: the file to write (replaced atomically: a temporary file in the same folder,
            then ``os.replace``).
        lengths: add the graph input "lengths" and pass it to the layers that take it (the
            recurrent layers and Last), with rnnkit's meaning: outputs at t >= lengths[b] are
            0, final states are each sequence's state after its last valid step, the reverse
            direction starts there. Each value must lie in [0, T] (the graph does not check).
        recurrence: how recurrent layers are written.

            - "auto" (default): ONNX's LSTM / GRU / RNN op per stacked layer where ONNX
              Runtime and OpenVINO both compute it as rnnkit does, else an ONNX Scan over one
              cell step. The Scan is used for what the op cannot express (proj_size, zoneout,
              the LayerNorm cells), and for what OpenVINO 2026.4 computes otherwise than ONNX
              (measured): peephole (OpenVINO ignores P), input_forget (ignored), hard_sigmoid
              (OpenVINO cannot compile it), and lengths (with a dynamic axis OpenVINO runs a
              one-layer LSTM / GRU / RNN op over every step, as if sequence_lens were absent).
              In ONNX Runtime the Scan runs about as fast as the op (measured: a 2-layer
              bidirectional LSTM, H=128, T=100, B=16, 2 cores: 22 ms vs 24 ms).
            - "op": always ONNX's op (lengths as its ``sequence_lens``): the file ONNX's own
              tools expect; exact in ONNX Runtime, but in OpenVINO only where "auto" would
              pick the op too. proj_size, zoneout and the LayerNorm cells raise
              NotImplementedError.
            - "scan": always the Scan.
        opset: the ONNX opset to write, 17 (LayerNormalization) up to onnx's newest; GELU is
            ONNX's Gelu op from opset 20, else written out with Erf or Tanh.
        dtype: None (default) for a float32 model, or "float32" to export a float64 model with
            its weights rounded to float32. Graphs are always float32: ONNX Runtime has no
            float64 LSTM / GRU / RNN kernels.

    Graph inputs (T and B are dynamic axes named "T" and "B"):
        ids: int64 (T, B), or (B, T) when the first layer with a batch_first says so, when
            the first layer is an Embedding; else
        x: float32 (T, B, I) or (B, T, I);
        lengths: int64 (B,), with ``lengths=True``.

    Graph outputs:
        y: the model's output, float32, of the shape rnnkit returns: e.g. (T, B, D*H) after a
            recurrent layer, (B, F) after Last, (..., O) after Linear;
        h_n, c_n: only when ``model`` is a lone recurrent layer (not in a Sequential, which
            drops the states too): its final states (L*D, B, width) as the layer returns them
            (h_n's width proj_size for a projected LSTM), c_n for the LSTMs only.

    Returns:
        The ``onnx.ModelProto`` written (checked with ``onnx.checker.check_model``).

    Raises:
        ImportError: onnx is not installed (``pip install "rnnkit[onnx]"``).
        TypeError: a layer that export does not know, or a non-boolean lengths.
        ValueError: bad arguments (recurrence, opset, dtype), an Embedding that is not first,
            lengths=True without a layer that takes them, mismatched layer sizes.
        NotImplementedError: recurrence="op" with a layer the op cannot express.
    """
    onnx = _import_onnx()
    if not isinstance(lengths, (bool, np.bool_)):
        raise TypeError(f"lengths must be True or False, got {lengths!r}")
    if recurrence not in _RECURRENCE:
        raise ValueError(f"recurrence must be one of {', '.join(map(repr, _RECURRENCE))}, got "
                         f"{recurrence!r}")
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) \
            or not _MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an integer in [{_MIN_OPSET}, {newest}] (the installed "
                         f"onnx {onnx.__version__}'s newest), got {opset!r}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a rnnkit.nn Module (a Sequential or a layer), got "
                        f"{type(model).__name__}")
    single = not isinstance(model, nn.Sequential)
    layers = _flatten(model)
    _check_layers(layers, single)
    dt = _check_dtype(layers, dtype)
    takes_lengths = [layer for layer in layers if getattr(layer, "_takes_lengths", False)]
    if lengths and not takes_lengths:
        raise ValueError("lengths=True but no layer of the model takes lengths (only the "
                         "recurrent layers and Last do)")

    b = _Builder(onnx, dt)
    graph_inputs: List[Any] = []
    vi, x = _input_value(onnx, layers, dt)
    graph_inputs.append(vi)
    lengths_name: Optional[str] = None
    if lengths:
        graph_inputs.append(onnx.helper.make_tensor_value_info(
            "lengths", onnx.TensorProto.INT64, [_BATCH]))
        lengths_name = "lengths"
    cache: Dict[str, str] = {}
    states: List[_Value] = []
    for i, layer in enumerate(layers):
        index = None if single else i
        params = {name: np.asarray(a, dt) for name, a in layer.state_dict().items()}
        if isinstance(layer, nn.Embedding):
            x = _embedding(b, layer, x, params)
        elif isinstance(layer, nn.Linear):
            x = _linear(b, layer, x, params)
        elif isinstance(layer, nn.Dropout):
            continue
        elif isinstance(layer, nn.Last):
            x = _last(b, layer, x, lengths_name)
        elif isinstance(layer, (_RECURRENT, _LAYERNORM)):
            scan = _use_scan(layer, index, recurrence, bool(lengths))
            x, states = _recurrent(b, layer, index, x, params, lengths_name, scan, cache)
        elif isinstance(layer, nn.GELU):
            x = _Value(_gelu(b, layer, x.name, int(opset)), x.dims)
        elif isinstance(layer, (nn.Softmax, nn.LogSoftmax)):
            if not -len(x.dims) <= layer.dim < len(x.dims):
                raise ValueError(f"{_layer_name(index, layer)}: dim={layer.dim} is out of range "
                                 f"for its {len(x.dims)}-D input")
            x = _Value(b.op(type(layer).__name__, [x.name], axis=layer.dim), x.dims)
        else:
            x = _Value(b.op(_ACTIVATION_OPS[type(layer)], [x.name]), x.dims)

    elem = onnx.helper.np_dtype_to_tensor_dtype(dt)
    results = [("y", x)]
    if single and isinstance(layers[0], (_RECURRENT, _LAYERNORM)):
        results += list(zip(("h_n", "c_n"), states))
    graph_outputs = []
    for name, v in results:
        b.op("Identity", [v.name], outputs=[name])
        graph_outputs.append(onnx.helper.make_tensor_value_info(name, elem, list(v.dims)))
    graph = onnx.helper.make_graph(
        b.nodes, "rnnkit_" + type(model).__name__, graph_inputs, graph_outputs,
        initializer=b.inits,
        doc_string=f"rnnkit {__version__} export of {type(model).__name__}: inputs "
                   f"{', '.join(v.name for v in graph_inputs)}; outputs "
                   f"{', '.join(n for n, _ in results)}")
    proto = onnx.helper.make_model(graph, producer_name="rnnkit", producer_version=__version__,
                                   opset_imports=[onnx.helper.make_opsetid("", int(opset))])
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    write_atomically(os.fspath(path), lambda f: f.write(data))
    return proto
