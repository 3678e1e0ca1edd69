"""ONNX import: ``load(path_or_model) -> OnnxModel``, a graph evaluated node by node whose
LSTM, GRU and RNN nodes run on rnnkit's kernels.

Scope. The recurrent ops with every attribute of their schemas (``direction`` forward /
reverse / bidirectional, ``layout`` 0 / 1, ``clip``, ``activations`` with
``activation_alpha`` / ``activation_beta``, ``input_forget``, ``linear_before_reset``,
``hidden_size``) and every optional input (B, sequence_lens, initial_h, initial_c, P); the
ops that torch's and tf2onnx's exporters put around them (embedding lookups, linear heads,
the shape arithmetic that builds zero initial states, layout changes, softmaxes); and Scan,
which rnnkit's own exporter writes for cells ONNX's ops cannot express. See
:data:`SUPPORTED_OPS`. Any other op, anywhere (Scan bodies included), or an op of another
domain raises :class:`OnnxUnsupportedError` at load, naming the op type and the node. The
activations rnnkit's kernels compute are Sigmoid, Tanh, Relu and HardSigmoid; a recurrent
node asking for another (Elu, Softsign, ...) is refused the same way.

How it runs. :func:`load` reads the file (bounded by ``max_bytes``; nothing in it is ever
executed: protobuf is data), checks it with ``onnx.checker``, converts the initializers to
numpy once, folds every node whose inputs are all constants (a torch export's Constant ->
Unsqueeze -> Concat chains), and converts each recurrent node's constant W, R, B and P from
ONNX's gate order (LSTM i, o, f, c; GRU z, r, h) to rnnkit's (torch's: i, f, g, o; r, z, n)
with :mod:`rnnkit.interop.onnx_layout`, once. :meth:`OnnxModel.run` then evaluates the nodes
the requested outputs need, in topological order. A recurrent node is one
``rnnkit.ops.*_forward`` call per direction (``reverse=True`` for the backward direction,
``lengths`` for sequence_lens, the initial states as given), its output placed in ONNX's
layout, (T, D, B, H) or, with layout=1, (B, T, D, H). MatMul and Gemm with a 2-D weight run
on rnnkit's GEMM (``nn.Linear``'s), Relu / Tanh / Sigmoid / Gelu / Softmax / LogSoftmax
through ``rnnkit.nn``'s layers, everything else in numpy: a model rnnkit exported with ONNX's
recurrent ops imports to the same bits. A Scan runs its body once per step.

sequence_lens. Outputs of Y past a sequence's length are 0, and Y_h / Y_c are the states
after its last valid step, the backward direction starting at that step (ONNX Runtime's
behaviour). A sequence of length 0 gets Y_h = Y_c = 0, as ONNX Runtime gives (rnnkit's own
layers, like torch, return the initial state there instead; the two agree when it is zero).

Only the ``onnx`` package is needed (``pip install "rnnkit[onnx]"``); it is imported when
:func:`load` is called, never by ``import rnnkit``.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .. import nn, ops
from ..io import open_regular
from ..ops.gates import GateOptions
from . import onnx_layout
from .onnx_numpy_ops import (_NUMPY_OPS, RECURRENT_OPS, SUPPORTED_OPS, Array,
                             OnnxUnsupportedError, _Node, _np_dtype, _ints, _onnx)

# Protobuf cannot parse one message of 2 GiB or more, so nothing larger is worth reading.
DEFAULT_MAX_BYTES = 2 ** 31 - 1

# ---------------------------------------------------------------------------------- reading


def _read_bytes(path: str, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path`` (:func:`rnnkit.io.open_regular`), refusing
    (ValueError) anything else and any file over ``max_bytes`` before reading it."""
    try:
        f, size = open_regular(path, "an ONNX model")
    except FileNotFoundError:
        raise
    except ValueError as exc:
        raise ValueError(f"{path!r} {exc}") from None
    with f:
        if size > max_bytes:
            raise ValueError(f"{path!r} has {size} bytes, more than max_bytes={max_bytes}")
        data = f.read(max_bytes + 1)  # bounded even if the file grows meanwhile
    if len(data) > max_bytes:
        raise ValueError(f"{path!r} grew past max_bytes={max_bytes} while being read")
    return data


def _model_proto(source: Any, max_bytes: int) -> Tuple[Any, str]:
    """(ModelProto, a name for messages) from a path, bytes or a ModelProto."""
    onnx = _onnx()
    if isinstance(source, onnx.ModelProto):
        return source, "the ModelProto"
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, where = bytes(source), "the given bytes"
        if len(data) > max_bytes:
            raise ValueError(f"{where}: {len(data)} bytes, more than max_bytes={max_bytes}")
    elif isinstance(source, (str, os.PathLike)):
        where = os.fspath(source)
        if isinstance(where, bytes):
            where = os.fsdecode(where)
        data = _read_bytes(where, max_bytes)
        where = repr(where)
    else:
        raise TypeError(f"load() takes a path, bytes or an onnx.ModelProto, got "
                        f"{type(source).__name__}")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError and friends: not a model
        raise ValueError(f"{where} is not an ONNX model (protobuf cannot parse it: "
                         f"{exc})") from None
    return model, where


def _check_model(model: Any, where: str) -> None:
    """onnx.checker's structural checks, as ValueError naming the source."""
    onnx = _onnx()
    if not model.HasField("graph") or not model.graph.output:
        raise ValueError(f"{where} is not an ONNX model: it has no graph or no graph output")
    for t in list(model.graph.initializer):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise ValueError(f"{where}: initializer {t.name!r} keeps its data in an external "
                             "file, which this importer does not read (save the model with "
                             "its weights inside, onnx.save(..., save_as_external_data=False))")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx.checker.ValidationError, and its C++ errors
        raise ValueError(f"{where} is not a valid ONNX model: {exc}") from None


# ---------------------------------------------------------------------- the recurrent ops

# rnnkit's kernels compute these of ONNX's activations (rnnkit.ops.gates).
_ACTIVATIONS = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu",
                "hardsigmoid": "hard_sigmoid"}
# ONNX's activations that read alpha and/or beta: how many of each list they consume.
_ALPHA_BETA_USE = {"hardsigmoid": (1, 1), "leakyrelu": (1, 0), "thresholdedrelu": (1, 0),
                   "elu": (1, 0), "affine": (1, 1), "scaledtanh": (1, 1)}
_SLOTS = {"lstm": 3, "gru": 2, "rnn": 1}
_INPUT_SLOTS = {"lstm": ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"),
                "gru": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
                "rnn": ("X", "W", "R", "B", "sequence_lens", "initial_h")}
_DEFAULT_ACTIVATIONS = {"lstm": ("Sigmoid", "Tanh", "Tanh"), "gru": ("Sigmoid", "Tanh"),
                        "rnn": ("Tanh",)}

# One direction's weights in rnnkit's layout: w_ih, w_hh, b_ih, b_hh, peephole.
_Weights = Tuple[Array, Array, Optional[Array], Optional[Array], Optional[Array]]


class _Recurrent:
    """An ONNX LSTM / GRU / RNN node prepared for rnnkit's kernels: attributes checked and
    turned into kernel arguments once, constant weights converted once."""

    def __init__(self, node: _Node, constants: Mapping[str, Array]) -> None:
        self.node = node
        self.family = onnx_layout.FAMILY_OF_OP[node.op_type]
        a = node.attrs
        direction = a.get("direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            raise ValueError(f"{node.where()}: direction must be forward, reverse or "
                             f"bidirectional, got {direction!r}")
        self.direction = direction
        self.num_directions = 2 if direction == "bidirectional" else 1
        self.layout = int(a.get("layout", 0))
        if self.layout not in (0, 1):
            raise ValueError(f"{node.where()}: layout must be 0 or 1, got {self.layout}")
        self.hidden_size = a.get("hidden_size")
        lbr = int(a.get("linear_before_reset", 0))
        if lbr not in (0, 1):
            raise ValueError(f"{node.where()}: linear_before_reset must be 0 or 1, got {lbr}")
        # ONNX's linear_before_reset=1 is torch's GRU (rnnkit's reset_after=True).
        self.reset_after = bool(lbr)
        if self.family != "gru" and "linear_before_reset" in a:
            raise ValueError(f"{node.where()}: linear_before_reset is the GRU's attribute")
        if self.family != "lstm" and "input_forget" in a:
            raise ValueError(f"{node.where()}: input_forget is the LSTM's attribute")
        self.slot = {s: (node.inputs[k] if k < len(node.inputs) else "")
                     for k, s in enumerate(_INPUT_SLOTS[self.family])}
        if not self.slot["X"] or not self.slot["W"] or not self.slot["R"]:
            raise ValueError(f"{node.where()}: inputs X, W and R are required")
        self.nonlinearity, self.options = self._gate_options()
        # Weights that are constants (initializers, folded Constant chains): converted now.
        names = [self.slot.get(s, "") for s in ("W", "R", "B", "P")]  # P: the LSTM's only
        self.weights: Optional[List[_Weights]] = None
        if all(n == "" or n in constants for n in names):
            self.weights = self._convert(*(constants[n] if n else None for n in names))

    # --------------------------------------------------------------- attributes
    def _gate_options(self) -> Tuple[Optional[str], List[Optional[GateOptions]]]:
        """(the RNN's nonlinearity for the kernels, GateOptions per direction or None where
        the direction runs the cell's usual math)."""
        node, family, nd = self.node, self.family, self.num_directions
        a = node.attrs
        slots = _SLOTS[family]
        acts = list(a.get("activations", []) or [])
        if not acts:
            acts = list(_DEFAULT_ACTIVATIONS[family]) * nd
        elif len(acts) == slots and nd == 2:
            acts = acts * 2  # one direction's list for both (as ONNX Runtime accepts)
        if len(acts) != slots * nd:
            raise ValueError(f"{node.where()}: activations lists {len(acts)} function(s), "
                             f"expected {slots} per direction x {nd} direction(s)")
        for name in acts:
            if name.lower() not in _ACTIVATIONS:
                raise OnnxUnsupportedError(
                    f"{node.where()}: activation {name!r} is not supported (rnnkit computes "
                    "Sigmoid, Tanh, Relu and HardSigmoid)")
        alphas = list(a.get("activation_alpha", []) or [])
        betas = list(a.get("activation_beta", []) or [])
        clip = a.get("clip")
        input_forget = bool(a.get("input_forget", 0))
        options: List[GateOptions] = []
        for d in range(nd):
            mine = acts[d * slots:(d + 1) * slots]
            # alpha and beta are consumed in turn by the activations that read them, across
            # both directions' lists: this direction's share comes off the front.
            n_alpha = sum(_ALPHA_BETA_USE.get(m.lower(), (0, 0))[0] for m in mine)
            n_beta = sum(_ALPHA_BETA_USE.get(m.lower(), (0, 0))[1] for m in mine)
            my_alphas, alphas = alphas[:n_alpha], alphas[n_alpha:]
            my_betas, betas = betas[:n_beta], betas[n_beta:]
            try:
                opt = GateOptions.from_onnx(mine, my_alphas, my_betas, clip, input_forget)
                opt.core(family)  # checks the slots and input_forget against the family
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{node.where()}: {exc}") from None
            options.append(opt)
        if family == "rnn":
            plain = {opt.activations[0][0] for opt in options}
            if clip is None and len(plain) == 1 and plain <= {"tanh", "relu"}:
                # An Elman RNN of one plain nonlinearity: the kernels' own cells.
                return plain.pop(), [None] * nd
        return None, [None if opt.is_default_for(family) else opt for opt in options]

    # --------------------------------------------------------------- weights
    def _convert(self, W: Optional[Array], R: Optional[Array], B: Optional[Array],
                 P: Optional[Array]) -> List[_Weights]:
        """Per direction, W, R, B (split into its input and recurrent halves) and P in
        rnnkit's gate order and layout, checked against the node's attributes."""
        node, family, nd = self.node, self.family, self.num_directions
        g = onnx_layout.GATES[family]
        for name, arr in (("W", W), ("R", R)):
            if arr is None or arr.ndim != 3:
                raise ValueError(f"{node.where()}: {name} must be 3-D, got shape "
                                 f"{None if arr is None else arr.shape}")
        if W.dtype not in (np.float32, np.float64):
            raise OnnxUnsupportedError(f"{node.where()}: tensors of {W.dtype} are not "
                                       "supported (float32 and float64 are)")
        h = R.shape[-1]
        if self.hidden_size is not None and int(self.hidden_size) != h:
            raise ValueError(f"{node.where()}: hidden_size={self.hidden_size} but R has shape "
                             f"{R.shape}")
        i = W.shape[-1]
        expect = {"W": (nd, g * h, i), "R": (nd, g * h, h), "B": (nd, 2 * g * h),
                  "P": (nd, 3 * h)}
        for name, arr in (("W", W), ("R", R), ("B", B), ("P", P)):
            if arr is None:
                continue
            if arr.shape != expect[name]:
                raise ValueError(f"{node.where()}: {name} has shape {arr.shape}, expected "
                                 f"{expect[name]} (direction={self.direction!r}, "
                                 f"hidden_size={h})")
            if arr.dtype != W.dtype:
                raise TypeError(f"{node.where()}: {name} is {arr.dtype}, W is {W.dtype}")
        if P is not None and not P.any():
            P = None  # all-zero peepholes add exactly nothing: the faster plain cell
        out: List[_Weights] = []
        for d in range(nd):
            w_ih = onnx_layout.gates_from_onnx(W[d], family)
            w_hh = onnx_layout.gates_from_onnx(R[d], family)
            b_ih = b_hh = peep = None
            if B is not None:
                b_ih = onnx_layout.gates_from_onnx(B[d, :g * h], family)
                b_hh = onnx_layout.gates_from_onnx(B[d, g * h:], family)
            if P is not None:
                peep = onnx_layout.peephole_from_onnx(P[d])
            arrays = [None if w is None else np.ascontiguousarray(w)
                      for w in (w_ih, w_hh, b_ih, b_hh, peep)]
            for w in arrays:
                if w is not None:
                    w.flags.writeable = False  # shared by every run
            out.append(tuple(arrays))  # type: ignore[arg-type]
        return out

    # --------------------------------------------------------------- running
    def run(self, v: Dict[str, Optional[Array]]) -> List[Optional[Array]]:
        """Y, Y_h[, Y_c] of the node for its input values ``v`` (by slot)."""
        family, nd = self.family, self.num_directions
        weights = self.weights
        if weights is None:
            weights = self._convert(v["W"], v["R"], v.get("B"), v.get("P"))
        x = v["X"]
        if x.ndim != 3:
            raise ValueError(f"X must be 3-D, got shape {x.shape}")
        dt = weights[0][0].dtype
        if x.dtype != dt:
            raise TypeError(f"X is {x.dtype}, W is {dt}")
        xt = x.swapaxes(0, 1) if self.layout else x  # time-major view, no copy
        t, b, _ = xt.shape
        h = weights[0][1].shape[1]
        lengths = v.get("sequence_lens")
        if lengths is not None:
            lengths = np.asarray(lengths)
            if lengths.dtype.kind not in "iu":
                raise TypeError(f"sequence_lens must be integers, got {lengths.dtype}")
            lengths = lengths.astype(np.int64)
        states0 = []
        for s in ("initial_h", "initial_c")[:2 if family == "lstm" else 1]:
            s0 = v.get(s)
            if s0 is not None:
                want = (b, nd, h) if self.layout else (nd, b, h)
                if s0.shape != want:
                    raise ValueError(f"{s} has shape {s0.shape}, expected {want}")
                if s0.dtype != dt:
                    raise TypeError(f"{s} is {s0.dtype}, X is {dt}")
                s0 = s0.swapaxes(0, 1) if self.layout else s0  # (D, B, H)
            states0.append(s0)
        # Y in ONNX's layout, each direction's (T, B, H) output copied into its view of it.
        y = np.empty((b, t, nd, h) if self.layout else (t, nd, b, h), dt)
        finals: List[List[Array]] = [[] for _ in states0]
        for d in range(nd):
            w_ih, w_hh, b_ih, b_hh, peep = weights[d]
            out = y[:, :, d].swapaxes(0, 1) if self.layout else y[:, d]
            s0 = [None if s is None else np.ascontiguousarray(s[d]) for s in states0]
            reverse = self.direction == "reverse" or d == 1
            kw: Dict[str, Any] = dict(lengths=lengths, reverse=reverse, training=False,
                                      options=self.options[d])
            if family == "lstm":
                y_d, h_n, c_n, _ = ops.lstm_forward(xt, s0[0], s0[1], w_ih, w_hh, b_ih,
                                                    b_hh, peephole=peep, **kw)
                states = [h_n, c_n]
            elif family == "gru":
                y_d, h_n, _ = ops.gru_forward(xt, s0[0], w_ih, w_hh, b_ih, b_hh,
                                              reset_after=self.reset_after, **kw)
                states = [h_n]
            else:
                y_d, h_n, _ = ops.rnn_forward(xt, s0[0], w_ih, w_hh, b_ih, b_hh,
                                              nonlinearity=self.nonlinearity or "tanh", **kw)
                states = [h_n]
            out[...] = y_d  # into ONNX's layout (T, D, B, H) or (B, T, D, H)
            for k, s in enumerate(states):
                finals[k].append(s)
        results: List[Optional[Array]] = [y]
        for f in finals:
            s = np.stack(f)  # (D, B, H)
            if lengths is not None and (lengths == 0).any():
                s[:, lengths == 0] = 0  # an empty sequence's state is 0, as ONNX Runtime's
            results.append(np.ascontiguousarray(s.swapaxes(0, 1)) if self.layout else s)
        return results


# ---------------------------------------------------------------------------- the graphs


def _value_info(vi: Any) -> Tuple[Optional[np.dtype], Optional[Tuple[Optional[int], ...]]]:
    """(dtype, shape with None for symbolic or unknown dims) of a graph input or output; None
    for what the file leaves unsaid."""
    t = vi.type
    if not t.HasField("tensor_type"):
        return None, None
    tt = t.tensor_type
    dtype = None
    if tt.elem_type:
        try:
            dtype = _np_dtype(tt.elem_type)
        except OnnxUnsupportedError:
            dtype = None
    shape = None
    if tt.HasField("shape"):
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
    return dtype, shape


def _read_only(a: Any) -> Array:
    a = np.asarray(a)
    a.flags.writeable = False
    return a


class _Graph:
    """A graph prepared to run: the model's, or a Scan's body.

    Nodes sorted topologically; every op checked against :data:`SUPPORTED_OPS` (bodies
    included); nodes whose inputs are all constants evaluated once (folded); recurrent nodes
    prepared (:class:`_Recurrent`) and Scan bodies built. ``outer`` names what an enclosing
    graph defines, which a body may read (``outer_const``: those of them that are constants).
    """

    def __init__(self, proto: Any, opset: int, where: str, outer: Sequence[str] = (),
                 outer_const: Optional[Mapping[str, Array]] = None,
                 overridable: bool = False) -> None:
        from onnx import numpy_helper
        self.where, self.opset = where, opset
        self.initializers: Dict[str, Array] = {}
        for t in proto.initializer:
            a = numpy_helper.to_array(t)
            if a.dtype.kind not in "biuf":
                raise OnnxUnsupportedError(f"{where}: initializer {t.name!r} is of type "
                                           f"{a.dtype}, not a numeric tensor")
            self.initializers[t.name] = _read_only(a)
        if len(proto.sparse_initializer):
            raise OnnxUnsupportedError(f"{where}: sparse initializers are not supported")
        self.input_names: List[str] = [vi.name for vi in proto.input]
        self.output_names: List[str] = [vi.name for vi in proto.output]
        # The model's inputs that have an initializer of the same name are defaults a caller
        # may override (older exporters list the weights as inputs too): no constants.
        self.overridable = [n for n in self.input_names
                            if overridable and n in self.initializers]
        known = set(outer) | set(self.input_names) | set(self.initializers)
        self.nodes = self._sorted_nodes(proto, known)
        self._refuse_unsupported()
        # What this graph reads from enclosing ones (a body's implicit inputs).
        defined = set(self.input_names) | set(self.initializers) | {
            o for n in self.nodes for o in n.outputs if o}
        const: Dict[str, Array] = dict(outer_const or {})
        const.update(self.initializers)
        for name in self.overridable + self.input_names:
            const.pop(name, None)   # a graph input is never a constant
        self.prepared: Dict[int, Any] = {}
        self.free_names: List[str] = []
        runtime: List[_Node] = []
        for node in self.nodes:
            if node.op_type in RECURRENT_OPS or node.op_type == "Scan":
                try:
                    if node.op_type == "Scan":
                        scope = sorted(known | defined)
                        prep: Any = _Scan(node, opset, where, scope, const)
                        reads = prep.body.free_names
                    else:
                        prep = _Recurrent(node, const)
                        reads = []
                except OnnxUnsupportedError as exc:
                    raise OnnxUnsupportedError(f"{where}: {exc}") from None
                except (ValueError, TypeError) as exc:
                    raise type(exc)(f"{where}: {exc}") from None
                self.prepared[node.index] = prep
                node.cache["reads"] = [n for n in reads if n not in const]
                runtime.append(node)
            elif all(n == "" or n in const for n in node.inputs):
                try:
                    folded = self.evaluate_node(node, const)
                except (ValueError, TypeError) as exc:
                    raise type(exc)(f"{where}: {exc}") from None
                for name, val in zip(node.outputs, folded):
                    if name and val is not None:
                        const[name] = _read_only(val)
                continue
            else:
                runtime.append(node)
        for node in self.nodes:
            for name in list(node.inputs) + node.cache.get("reads", []):
                if name and name not in defined and name not in self.free_names:
                    self.free_names.append(name)
        self.const = const
        self.runtime = runtime

    def _sorted_nodes(self, proto: Any, known: set) -> List[_Node]:
        """The nodes in a topological order (the file's order where it already is one), or
        ValueError for a cycle or an input nothing defines."""
        nodes = [_Node(p, k, self.opset) for k, p in enumerate(proto.node)]
        producer: Dict[str, int] = {}
        for node in nodes:
            for name in node.outputs:
                if not name:
                    continue
                if name in producer or name in self.initializers or name in self.input_names:
                    raise ValueError(f"{self.where}: {node.where()} writes {name!r}, which "
                                     "another node or a graph input already defines")
                producer[name] = node.index
        for node in nodes:
            for name in node.inputs:
                if name and name not in producer and name not in known:
                    raise ValueError(f"{self.where}: {node.where()} reads {name!r}, which no "
                                     "node, graph input or initializer defines")
        for name in self.output_names:
            if name not in producer and name not in known:
                raise ValueError(f"{self.where}: graph output {name!r} is never computed")
        order: List[_Node] = []
        done = set(known)
        pending = list(nodes)
        while pending:
            rest = [n for n in pending if not all(i == "" or i in done for i in n.inputs)]
            ready = [n for n in pending if n not in rest]
            if not ready:
                raise ValueError(f"{self.where}: the graph has a cycle through "
                                 f"{rest[0].where()}")
            for n in ready:
                order.append(n)
                done.update(o for o in n.outputs if o)
            pending = rest
        return order

    def _refuse_unsupported(self) -> None:
        for node in self.nodes:
            if node.domain not in ("", "ai.onnx"):
                raise OnnxUnsupportedError(
                    f"{self.where}: op {node.op_type!r} of domain {node.domain!r} (node "
                    f"{node.name!r}) is not supported by rnnkit's ONNX importer (only the "
                    "default ONNX domain is)")
            if node.op_type not in SUPPORTED_OPS:
                raise OnnxUnsupportedError(
                    f"{self.where}: op {node.op_type!r} (node {node.name!r}) is not "
                    f"supported by rnnkit's ONNX importer; supported ops: "
                    f"{', '.join(SUPPORTED_OPS)}")

    def evaluate_node(self, node: _Node, values: Mapping[str, Array]
                      ) -> List[Optional[Array]]:
        """One node's outputs (a list, one per declared output) from ``values``."""
        args = [values[n] if n else None for n in node.inputs]
        try:
            if node.op_type in RECURRENT_OPS:
                rec = self.prepared[node.index]
                out: Any = rec.run(dict(zip(_INPUT_SLOTS[rec.family], args)))
            elif node.op_type == "Scan":
                out = self.prepared[node.index].run(args, values)
            else:
                with np.errstate(all="ignore"):  # inf / nan propagate, as in any runtime
                    out = _NUMPY_OPS[node.op_type](node, args)
        except OnnxUnsupportedError:
            raise
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{node.where()}: {exc}") from exc
        except (IndexError, KeyError, AttributeError) as exc:  # numpy's, on bad values
            raise ValueError(f"{node.where()}: {type(exc).__name__}: {exc}") from exc
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        return [np.asarray(o) if o is not None else None for o in outs][:len(node.outputs)]

    def evaluate(self, values: Dict[str, Array], wanted: Sequence[str]) -> Dict[str, Array]:
        """Run the nodes that ``wanted`` depends on; ``values`` holds the graph inputs and the
        enclosing graphs' values (it receives every value computed)."""
        for name, a in self.const.items():
            values.setdefault(name, a)
        needed = set(wanted)
        chosen: List[_Node] = []
        for node in reversed(self.runtime):
            if any(o in needed for o in node.outputs):
                chosen.append(node)
                needed.update(i for i in node.inputs if i)
                needed.update(node.cache.get("reads", []))
        for node in reversed(chosen):
            for name, val in zip(node.outputs, self.evaluate_node(node, values)):
                if name and val is not None:
                    values[name] = val
        return values

    def count_ops(self) -> Dict[str, int]:
        kinds: Dict[str, int] = {}
        for node in self.nodes:
            kinds[node.op_type] = kinds.get(node.op_type, 0) + 1
        return kinds


class _Scan:
    """ONNX's Scan (opset 9 on): the body run once per step with numpy (its LSTM / GRU / RNN
    nodes, if any, on rnnkit's kernels), states carried, scan outputs stacked."""

    def __init__(self, node: _Node, opset: int, where: str, scope: Sequence[str],
                 const: Mapping[str, Array]) -> None:
        if opset < 9:
            raise OnnxUnsupportedError(f"{node.where()}: Scan before opset 9 (with its "
                                       "batch axis and sequence_lens) is not supported")
        self.node = node
        self.m = int(node.attr("num_scan_inputs"))
        self.body = _Graph(node.attr("body"), opset, f"{where}, the body of {node.where()}",
                           scope, const)
        n_in = len(self.body.input_names)
        self.n = n_in - self.m   # the state variables
        self.k = len(self.body.output_names) - self.n
        if self.n < 0 or self.k < 0 or len([i for i in node.inputs if i]) != n_in:
            raise ValueError(f"{node.where()}: the body's {n_in} inputs and "
                             f"{len(self.body.output_names)} outputs do not fit "
                             f"num_scan_inputs={self.m} and the node's {len(node.inputs)} "
                             "inputs")
        self.in_dirs = list(node.attr("scan_input_directions") or [0] * self.m)
        self.in_axes = list(node.attr("scan_input_axes") or [0] * self.m)
        self.out_dirs = list(node.attr("scan_output_directions") or [0] * self.k)
        self.out_axes = list(node.attr("scan_output_axes") or [0] * self.k)

    def run(self, args: List[Optional[Array]], outer: Mapping[str, Array]) -> List[Array]:
        body, n = self.body, self.n
        states = list(args[:n])
        scans = list(args[n:])
        axes = [a % s.ndim for a, s in zip(self.in_axes, scans)]
        steps = {s.shape[a] for s, a in zip(scans, axes)}
        if len(steps) != 1:
            raise ValueError(f"the scan inputs have different lengths {sorted(steps)}")
        t_len = steps.pop()
        if t_len == 0:
            raise ValueError("a Scan over 0 steps (its outputs' shapes are unknown)")
        free = {name: outer[name] for name in body.free_names}
        per_step: List[List[Array]] = [[] for _ in range(self.k)]
        for t in range(t_len):
            values: Dict[str, Array] = dict(free)
            values.update(zip(body.input_names[:n], states))
            for name, s, a, d in zip(body.input_names[n:], scans, axes, self.in_dirs):
                values[name] = np.take(s, t_len - 1 - t if d else t, axis=a)
            body.evaluate(values, body.output_names)
            out = [values[name] for name in body.output_names]
            states = out[:n]
            for k in range(self.k):
                per_step[k].append(out[n + k])
        results = list(states)
        for k, parts in enumerate(per_step):
            if self.out_dirs[k]:
                parts = parts[::-1]
            stacked = np.stack(parts)
            axis = self.out_axes[k] % stacked.ndim
            results.append(np.moveaxis(stacked, 0, axis) if axis else stacked)
        return results


# ---------------------------------------------------------------------------- the model


class OnnxModel:
    """An imported ONNX graph: call it like the model it was exported from.

    ``model(*inputs, **named)`` feeds the graph inputs (positionally in
    :attr:`input_names` order, or by name) and returns the graph's output, or a tuple of its
    outputs in :attr:`output_names` order when it has several. :meth:`run` takes and returns
    dicts and can ask for any subset of the outputs. Inputs are numpy arrays (or anything
    numpy converts), cast to the dtype the graph declares for them when that is a change of
    the same kind (int32 tokens for an int64 input, say); a float for an integer input, a
    wrong rank or a wrong fixed dimension raises TypeError / ValueError naming the input.
    Every run evaluates only the nodes the requested outputs depend on. The LSTM / GRU / RNN
    nodes run on rnnkit's kernels, MatMul and Gemm on rnnkit's GEMM (``nn.Linear``'s), the
    activations and softmaxes through ``rnnkit.nn``'s layers, the rest in numpy; each in its
    inputs' dtype.

    Attributes:
        input_names: the graph inputs a caller feeds (initializers excluded).
        output_names: the graph outputs, in the file's order.
        inputs: {name: (dtype or None, shape with None for dims the file leaves open)}.
        opset: the default ONNX domain's opset version of the file.
        producer: who wrote the file (``producer_name`` and version).
        initializers: {name: read-only array} of the graph's weights, as stored (ONNX's gate
            order and layout for the recurrent nodes).
    """

    def __init__(self, model: Any, where: str) -> None:
        """Prepare ``model`` (an onnx.ModelProto already checked by :func:`load`)."""
        self.opset = 1
        for o in model.opset_import:
            if o.domain in ("", "ai.onnx"):
                self.opset = int(o.version)
        self.producer = " ".join(p for p in (model.producer_name, model.producer_version) if p)
        self._where = where
        self._graph = _Graph(model.graph, self.opset, where, overridable=True)
        if self._graph.free_names:
            raise ValueError(f"{where}: the graph reads {self._graph.free_names}, which "
                             "nothing defines")
        self.initializers: Dict[str, Array] = self._graph.initializers
        self.inputs: Dict[str, Tuple[Optional[np.dtype], Optional[Tuple[Optional[int], ...]]]]
        self.inputs = {vi.name: _value_info(vi) for vi in model.graph.input}
        self.input_names: List[str] = [n for n in self.inputs if n not in self.initializers]
        self.output_names: List[str] = list(self._graph.output_names)
        self.sequential_lengths_input: Optional[str] = None

    def _feed(self, name: str, value: Any) -> Array:
        """A caller's value for graph input ``name``, checked against its declaration."""
        dtype, shape = self.inputs[name]
        a = value if isinstance(value, np.ndarray) else np.asarray(value)
        if dtype is not None and a.dtype != dtype:
            same_kind = (a.dtype.kind in "iu") == (dtype.kind in "iu") and \
                (a.dtype.kind == "b") == (dtype.kind == "b")
            if not same_kind:
                raise TypeError(f"input {name!r} must be {dtype}, got {a.dtype}")
            a = a.astype(dtype)
        if shape is not None:
            if a.ndim != len(shape) or any(s is not None and s != n
                                           for s, n in zip(shape, a.shape)):
                want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
                raise ValueError(f"input {name!r} has shape {a.shape}, expected {want}")
        return a

    def run(self, feeds: Mapping[str, Any], output_names: Optional[Sequence[str]] = None
            ) -> Dict[str, Array]:
        """Evaluate the graph: ``{output name: array}`` for ``output_names`` (default: every
        graph output; any value the graph computes may be named) from ``feeds`` ``{input
        name: array}``, which must give every name of :attr:`input_names` (and may override
        an initializer that the file also lists as a graph input).

        Raises:
            KeyError: a missing input, or an unknown input or output name.
            TypeError, ValueError: an input of the wrong kind or shape, or a node that fails
                on its values (the message names the node).
        """
        g = self._graph
        names = list(self.output_names if output_names is None else output_names)
        unknown = [n for n in feeds if n not in self.inputs]
        if unknown:
            raise KeyError(f"unknown input(s) {unknown}; the model's inputs are "
                           f"{self.input_names}")
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise KeyError(f"missing input(s) {missing}; the model's inputs are "
                           f"{self.input_names}")
        computable = set(self.inputs) | set(g.const) | {o for n in g.runtime
                                                        for o in n.outputs if o}
        bad = [n for n in names if n not in computable]
        if bad:
            raise KeyError(f"unknown output(s) {bad}; the model's outputs are "
                           f"{self.output_names}")
        values: Dict[str, Array] = {n: self.initializers[n] for n in g.overridable}
        for n, v in feeds.items():
            values[n] = self._feed(n, v)
        g.evaluate(values, names)
        # A read-only value (an initializer, a folded constant, a view of one) is copied, so
        # no caller can change the model by writing into a result.
        return {n: values[n] if values[n].flags.writeable else np.array(values[n])
                for n in names}

    def __call__(self, *inputs: Any, **named: Any) -> Union[Array, Tuple[Array, ...]]:
        """``model(x)`` / ``model(tokens=x)``: the graph's output (a tuple of them, in
        :attr:`output_names` order, when there are several)."""
        if len(inputs) > len(self.input_names):
            raise TypeError(f"the model takes {len(self.input_names)} input(s) "
                            f"{self.input_names}, got {len(inputs)} positional")
        feeds = dict(zip(self.input_names, inputs))
        twice = [n for n in named if n in feeds]
        if twice:
            raise TypeError(f"input(s) {twice} given both by position and by name")
        feeds.update(named)
        out = self.run(feeds)
        result = tuple(out[n] for n in self.output_names)
        return result[0] if len(result) == 1 else result

    def to_sequential(self) -> Any:
        """The graph as an ``rnnkit.nn.Sequential`` of layers holding its weights, where it
        is a chain that rnnkit's layers express; the same model, trainable and savable with
        ``rnnkit.save``.

        Recognised, in order from the data input to the single output: an embedding lookup
        (Gather of a constant table) -> Embedding; each LSTM / GRU / RNN node (forward or
        bidirectional, zero or absent initial states, its final states unused, its Y folded
        to (T, B, D*H) by a Squeeze or a Transpose + Reshape, optionally between Transposes
        to and from time-major: batch_first) -> a one-layer LSTM / GRU / RNN with its options;
        MatMul by a constant [+ Add of a constant bias], or Gemm -> Linear; Gather of step
        -1 -> Last; Relu, Tanh, Sigmoid, Gelu, Softmax / LogSoftmax (opset 13 on) -> their
        layers; Identity and Dropout -> nothing. Shape arithmetic that only builds zero
        initial states is skipped. A stacked recurrent layer becomes one layer per stack
        level (the same model at inference).

        When the recurrent nodes read sequence_lens from a graph input, pass that input as
        the Sequential's ``lengths`` (:attr:`sequential_lengths_input` names it after this
        call). The Sequential is in eval mode.

        Raises:
            ValueError: naming the node where the graph stops being such a chain (a reverse
                direction alone, non-zero initial states, used final states, two outputs,
                an op no layer expresses, ...).
        """
        seq, self.sequential_lengths_input = _Chain(self).build()
        return seq

    @property
    def recurrent_nodes(self) -> List[str]:
        """The names of the graph's LSTM / GRU / RNN nodes (run on rnnkit's kernels)."""
        return [p.node.name for p in self._graph.prepared.values()
                if isinstance(p, _Recurrent)]

    def __repr__(self) -> str:
        summary = ", ".join(f"{k} x{n}" if n > 1 else k
                            for k, n in sorted(self._graph.count_ops().items()))
        return (f"OnnxModel(inputs={self.input_names}, outputs={self.output_names}, "
                f"opset={self.opset}, nodes: {summary})")


# ------------------------------------------------------------- the graph as rnnkit layers


class _Chain:
    """Reads an imported graph as a chain of rnnkit layers (see OnnxModel.to_sequential)."""

    def __init__(self, model: "OnnxModel") -> None:
        self.model = model
        self.g = model._graph
        self.consumers: Dict[str, List[_Node]] = {}
        self.producer: Dict[str, _Node] = {}
        # Only the nodes the output depends on: an exporter may leave dead ones behind (the
        # stacked final states a Sequential drops).
        needed = set(model.output_names)
        live: List[_Node] = []
        for node in reversed(self.g.runtime):
            if any(o in needed for o in node.outputs):
                live.append(node)
                needed.update(i for i in node.inputs if i)
        for node in reversed(live):
            for name in node.inputs:
                if name:
                    self.consumers.setdefault(name, []).append(node)
            for name in node.outputs:
                if name:
                    self.producer[name] = node
        self.lengths_input: Optional[str] = None

    def refuse(self, why: str) -> ValueError:
        return ValueError(f"{self.model._where}: the graph is not a chain of rnnkit layers: "
                          f"{why}")

    def const(self, name: str) -> Optional[Array]:
        return self.g.const.get(name) if name else None

    def is_zero(self, name: str, depth: int = 0) -> bool:
        """Whether the value ``name`` is all zeros whatever the inputs: a zero constant, or
        built from zeros by ConstantOfShape / Expand / reshaping ops (torch's initial
        states)."""
        c = self.const(name)
        if c is not None:
            return not c.any()
        node = self.producer.get(name)
        if node is None or depth > 32:
            return False
        if node.op_type == "ConstantOfShape":
            value = node.attr("value")
            return value is None or not np.asarray(value).any()
        # Ops that only move or pick elements of their first input: zeros in, zeros out.
        if node.op_type in ("Expand", "Reshape", "Unsqueeze", "Squeeze", "Tile", "Identity",
                            "Cast", "Transpose", "Slice", "Gather", "Split", "Flatten"):
            return self.is_zero(node.inputs[0], depth + 1)
        if node.op_type == "Concat":
            return all(self.is_zero(n, depth + 1) for n in node.inputs if n)
        return False

    def only_shapes_read(self, name: str) -> bool:
        """Whether everything reading ``name`` reads only its shape."""
        return all(n.op_type == "Shape" for n in self.consumers.get(name, []))

    def next_node(self, name: str) -> Optional[_Node]:
        """The one node that reads the value ``name`` (Shape nodes aside), or None at the
        graph's output."""
        users = [n for n in self.consumers.get(name, []) if n.op_type != "Shape"]
        if name in self.model.output_names and not users:
            return None
        if len(users) != 1 or name in self.model.output_names:
            raise self.refuse(f"{name!r} is read by {len(users)} nodes "
                              f"{[n.name for n in users]}" +
                              (" and is a graph output" if name in self.model.output_names
                               else ""))
        return users[0]

    def unused(self, name: str) -> bool:
        return not name or (name not in self.model.output_names and
                            self.only_shapes_read(name))

    def lengths_of(self, node: _Node, rec: "_Recurrent") -> None:
        name = rec.slot.get("sequence_lens", "")
        if not name:
            return
        src = name
        while src in self.producer and self.producer[src].op_type in ("Cast", "Identity"):
            src = self.producer[src].inputs[0]
        if src not in self.model.input_names:
            raise self.refuse(f"{node.where()}'s sequence_lens is computed, not a graph input")
        if self.lengths_input not in (None, src):
            raise self.refuse("the recurrent nodes read different sequence_lens")
        self.lengths_input = src

    # ------------------------------------------------------------------ layers
    def recurrent(self, node: _Node, batch_first: bool) -> Tuple[Any, str]:
        """The layer of a recurrent node and the name of its (T, B, D*H) output (after the
        Squeeze or Transpose + Reshape that fold ONNX's direction axis)."""
        rec: _Recurrent = self.g.prepared[node.index]
        if rec.direction == "reverse":
            raise self.refuse(f"{node.where()} runs the reverse direction alone, which no "
                              "rnnkit layer does")
        if rec.weights is None:
            raise self.refuse(f"{node.where()}'s weights are computed, not constants")
        for slot in ("initial_h", "initial_c"):
            if rec.slot.get(slot) and not self.is_zero(rec.slot[slot]):
                raise self.refuse(f"{node.where()}'s {slot} is not zeros (a layer in a "
                                  "Sequential starts from zero states)")
        outs = node.outputs + [""] * 3
        if not all(self.unused(n) for n in outs[1:3]):
            raise self.refuse(f"{node.where()}'s final states are used (a Sequential drops "
                              "them)")
        self.lengths_of(node, rec)
        if rec.options[0] != rec.options[-1]:
            raise self.refuse(f"{node.where()}'s directions have different activations")
        family, nd = rec.family, rec.num_directions
        w_ih, w_hh, b_ih, _, peep = rec.weights[0]
        h, i = w_hh.shape[1], w_ih.shape[1]
        kw: Dict[str, Any] = dict(bias=b_ih is not None, bidirectional=nd == 2,
                                  dtype=w_ih.dtype.name, batch_first=batch_first or
                                  bool(rec.layout))
        opt = rec.options[0]
        if opt is not None:
            kw["activations"] = [a if a[0] == "hard_sigmoid" else a[0]
                                 for a in opt.activations]
            kw["clip"] = opt.clip
            if family == "lstm":
                kw["input_forget"] = opt.input_forget
        if family == "lstm":
            layer = nn.LSTM(i, h, peephole=peep is not None, **kw)
        elif family == "gru":
            layer = nn.GRU(i, h, reset_after=rec.reset_after, **kw)
        else:
            layer = nn.RNN(i, h, nonlinearity=rec.nonlinearity or "tanh", **kw)
        state: Dict[str, Array] = {}
        for d in range(nd):
            sfx = "_l0" + ("_reverse" if d else "")
            for base, a in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh", "peephole"),
                               rec.weights[d]):
                if a is not None:
                    state[base + sfx] = a
        layer.load_state_dict(state)
        # ONNX's Y is (T, D, B, H) (layout 1: (B, T, D, H)); the layer's y (T, B, D*H).
        y = outs[0]
        fold = self.next_node(y)
        if fold is None:
            raise self.refuse(f"{node.where()}'s Y, with its direction axis, is the output")
        if fold.op_type == "Squeeze" and nd == 1 and not rec.layout and \
                self._ints_of(fold, 1, "axes") == [1]:
            return layer, fold.outputs[0]
        if fold.op_type == "Transpose" and not rec.layout and \
                list(fold.attr("perm") or []) == [0, 2, 1, 3]:
            fold = self.next_node(fold.outputs[0])
        elif not rec.layout:
            fold = None
        if fold is not None and fold.op_type == "Reshape":
            shape = self.const(fold.inputs[1]) if len(fold.inputs) > 1 else None
            if shape is not None and shape.shape == (3,) and int(shape[2]) in (-1, nd * h) \
                    and all(int(v) >= 0 for v in shape[:2]):
                return layer, fold.outputs[0]
        raise self.refuse(f"{node.where()}'s Y is not folded to (T, B, D*H) by a Squeeze "
                          "or a Transpose + Reshape")

    def _ints_of(self, node: _Node, k: int, attr: str) -> Optional[List[int]]:
        if node.opset < 13:
            a = node.attr(attr)
            return None if a is None else list(a)
        c = self.const(node.inputs[k]) if len(node.inputs) > k else None
        return None if c is None else _ints(c)

    def linear(self, node: _Node) -> Tuple[Any, str]:
        """A Linear from MatMul(x, W) [+ Add(b)] or Gemm(x, W, b)."""
        if node.op_type == "MatMul":
            w = self.const(node.inputs[1])
            if w is None or w.ndim != 2:
                raise self.refuse(f"{node.where()} does not multiply by a constant matrix")
            rows, out = np.ascontiguousarray(w.T), node.outputs[0]
            bias = None
            add = self.next_node(out)
            if add is not None and add.op_type == "Add":
                other = [n for n in add.inputs if n != out]
                b = self.const(other[0]) if len(other) == 1 else None
                if b is not None and b.shape == (w.shape[1],):
                    bias, out = b, add.outputs[0]
        else:
            w, c = self.const(node.inputs[1]), self.const(_input_name(node, 2))
            if w is None or w.ndim != 2 or node.attr("transA", 0) or \
                    node.attr("alpha", 1.0) != 1.0 or node.attr("beta", 1.0) != 1.0 or \
                    (c is not None and c.ndim != 1) or \
                    (_input_name(node, 2) and c is None):
                raise self.refuse(f"{node.where()} is not a Linear (x Wᵀ + b)")
            rows = np.ascontiguousarray(w if node.attr("transB", 0) else w.T)
            bias, out = c, node.outputs[0]
        layer = nn.Linear(rows.shape[1], rows.shape[0], bias=bias is not None,
                          dtype=rows.dtype.name)
        layer.load_state_dict({"weight": rows, **({} if bias is None else {"bias": bias})})
        return layer, out

    def build(self) -> Tuple[Any, Optional[str]]:
        model = self.model
        if len(model.output_names) != 1:
            raise self.refuse(f"it has {len(model.output_names)} outputs "
                              f"{model.output_names}; a Sequential returns one")
        for node in self.g.runtime:
            if node.op_type in RECURRENT_OPS:
                self.lengths_of(node, self.g.prepared[node.index])
        data = [n for n in model.input_names if n != self.lengths_input]
        if len(data) != 1:
            raise self.refuse(f"it has data inputs {data}; a Sequential takes one")
        layers: List[Any] = []
        cur = data[0]
        transposed = False
        while True:
            node = self.next_node(cur)
            if node is None:
                break
            op = node.op_type
            if op in ("Identity", "Dropout"):
                cur = node.outputs[0]
            elif op == "Gather" and not layers and node.inputs[1] == cur and \
                    self.const(node.inputs[0]) is not None and not node.attr("axis", 0):
                w = self.const(node.inputs[0])
                layer = nn.Embedding(w.shape[0], w.shape[1], dtype=w.dtype.name)
                layer.load_state_dict({"weight": w})
                layers.append(layer)
                cur = node.outputs[0]
            elif op == "Gather" and node.inputs[0] == cur:
                idx = self.const(node.inputs[1])
                if idx is None or idx.shape != () or int(idx) != -1 or \
                        node.attr("axis", 0) not in (0, 1) or self.lengths_input:
                    raise self.refuse(f"{node.where()} is not the last step (Last) of a "
                                      "model without lengths")
                layers.append(nn.Last(batch_first=node.attr("axis", 0) == 1))
                cur = node.outputs[0]
            elif op == "Transpose" and list(node.attr("perm") or []) == [1, 0, 2] and \
                    not transposed:
                transposed, cur = True, node.outputs[0]
                if self.next_node(cur) is None or \
                        self.next_node(cur).op_type not in RECURRENT_OPS:
                    raise self.refuse(f"{node.where()} is not a batch-first recurrent "
                                      "layer's input transpose")
            elif op in RECURRENT_OPS and node.inputs[0] == cur:
                layer, cur = self.recurrent(node, transposed)
                layers.append(layer)
                if transposed:
                    # Batch-major data transposed to time-major for a stack of recurrent
                    # nodes: each is a batch_first layer, up to the Transpose back.
                    after = self.next_node(cur)
                    if after is not None and after.op_type == "Transpose" and \
                            list(after.attr("perm") or []) == [1, 0, 2]:
                        cur, transposed = after.outputs[0], False
                    elif after is None or after.op_type not in RECURRENT_OPS:
                        raise self.refuse(f"{node.where()}: its input is transposed to "
                                          "time-major but its output is not transposed back")
            elif op in ("MatMul", "Gemm") and node.inputs[0] == cur:
                layer, cur = self.linear(node)
                layers.append(layer)
            elif op in ("Relu", "Tanh", "Sigmoid"):
                layers.append({"Relu": nn.ReLU, "Tanh": nn.Tanh, "Sigmoid": nn.Sigmoid}[op]())
                cur = node.outputs[0]
            elif op == "Gelu":
                layers.append(nn.GELU(approximate=node.attr("approximate", "none")))
                cur = node.outputs[0]
            elif op in ("Softmax", "LogSoftmax") and node.opset >= 13:
                cls = nn.Softmax if op == "Softmax" else nn.LogSoftmax
                layers.append(cls(dim=int(node.attr("axis", -1))))
                cur = node.outputs[0]
            else:
                raise self.refuse(f"{node.where()} maps to no rnnkit layer here")
        if not layers:
            raise self.refuse("it holds no layer")
        seq = nn.Sequential(*layers)
        seq.eval()
        return seq, self.lengths_input


def _input_name(node: _Node, k: int) -> str:
    return node.inputs[k] if k < len(node.inputs) else ""


def load(source: Union[str, "os.PathLike[str]", bytes, Any], *,
         max_bytes: int = DEFAULT_MAX_BYTES) -> OnnxModel:
    """Import an ONNX model: a path, the file's bytes or an ``onnx.ModelProto``.

    Returns an :class:`OnnxModel`: ``model(x)`` or ``model.run({"x": x})``. Its LSTM, GRU and
    RNN nodes run on rnnkit's kernels (weights converted to rnnkit's gate order once, here);
    every other node in numpy (see :data:`SUPPORTED_OPS`).

    ``max_bytes`` bounds the file read (a larger file is refused before reading). The file is
    parsed as protobuf data and checked with ``onnx.checker``; nothing in it is executed, and
    weights stored in external files are refused rather than followed.

    Raises:
        ImportError: the onnx package is missing (``pip install "rnnkit[onnx]"``).
        FileNotFoundError: ``source`` names no file.
        ValueError: naming the path, for anything that is not a valid ONNX model (not a
            regular file, over ``max_bytes``, not protobuf, failing onnx.checker, a graph
            whose nodes read undefined values or form a cycle, a recurrent node whose
            attributes and weights disagree).
        OnnxUnsupportedError (a NotImplementedError): an op the importer does not implement,
            naming the op type and the node, or an activation rnnkit does not compute.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
    model, where = _model_proto(source, max_bytes)
    _check_model(model, where)
    return OnnxModel(model, where)
