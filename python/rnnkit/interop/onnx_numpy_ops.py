"""The building blocks of ONNX import (:mod:`.onnx_import`): the node record, and the ops that
run in numpy around the recurrent ones (shape arithmetic, embedding lookups, linear heads,
activations, softmaxes), one function per op type in :data:`_NUMPY_OPS`. MatMul and Gemm with
a 2-D weight run on rnnkit's GEMM and the activations through ``rnnkit.nn``'s layers, so that
a model rnnkit exported imports to the same bits.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from .. import nn
from ..ops.linear import linear_forward
from . import onnx_layout

_ONNX_HINT = 'ONNX import needs the onnx package: pip install "rnnkit[onnx]"'

Array = np.ndarray


class OnnxUnsupportedError(NotImplementedError):
    """A graph uses something the importer does not implement: an op (named with its node),
    an activation or attribute value of a recurrent node, or a tensor type."""


def _onnx() -> Any:
    """The onnx package, imported on first use (``import rnnkit`` must not need it)."""
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - exercised where onnx is absent
        raise ImportError(_ONNX_HINT) from exc
    return onnx


# ---------------------------------------------------------------------------- graph nodes


def _attribute_value(attr: Any) -> Any:
    """An attribute as plain Python / numpy: strings decoded, tensors as arrays."""
    onnx = _onnx()
    from onnx import numpy_helper
    A = onnx.AttributeProto
    if attr.type == A.GRAPH:
        return attr.g  # a Scan's body, prepared by _Scan
    if attr.type in (A.GRAPHS, A.SPARSE_TENSOR, A.SPARSE_TENSORS, A.TYPE_PROTO,
                     A.TYPE_PROTOS):
        return attr  # only ops the importer refuses take these
    value = onnx.helper.get_attribute_value(attr)
    if attr.type == A.TENSOR:
        return numpy_helper.to_array(value)
    if attr.type == A.TENSORS:
        return [numpy_helper.to_array(t) for t in value]
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8") for v in value]
    return value


class _Node:
    """One graph node: op type, domain, name, inputs ("" for an absent optional one), outputs,
    attributes as Python values, and the default domain's opset it was exported for.
    ``cache`` keeps what an op derives from a constant input once (a transposed weight)."""

    __slots__ = ("op_type", "domain", "name", "inputs", "outputs", "attrs", "opset", "index",
                 "cache")

    def __init__(self, proto: Any, index: int, opset: int) -> None:
        self.op_type: str = proto.op_type
        self.domain: str = proto.domain
        self.cache: Dict[str, Any] = {}
        self.index = index
        self.name: str = proto.name or f"#{index}"
        self.inputs: List[str] = list(proto.input)
        self.outputs: List[str] = list(proto.output)
        self.attrs: Dict[str, Any] = {a.name: _attribute_value(a) for a in proto.attribute}
        self.opset = opset

    def where(self) -> str:
        return f"ONNX node {self.name!r} ({self.op_type})"

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)


def _input(node: _Node, values: Sequence[Optional[Array]], k: int) -> Optional[Array]:
    return values[k] if k < len(values) else None


def _ints(a: Optional[Array]) -> List[int]:
    return [] if a is None else [int(v) for v in np.asarray(a).reshape(-1)]


# ------------------------------------------------------------------------ the numpy ops


def _sigmoid(x: Array) -> Array:
    # exp of a large positive never happens: e = exp(-|x|) <= 1 (no overflow warning).
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def _floating(x: Array) -> bool:
    return x.dtype in (np.float32, np.float64)


def _layer_op(make: Callable[[_Node], Any], fallback: Callable[[Array], Array]
              ) -> Callable[[_Node, List[Optional[Array]]], Array]:
    """An elementwise op run by the rnnkit.nn activation layer ``make(node)`` builds (in eval
    mode: what an exported model computed), or by ``fallback`` on other dtypes."""
    def run(node: _Node, v: List[Optional[Array]]) -> Array:
        x = v[0]
        if not _floating(x):
            return fallback(x)
        layer = node.cache.get("layer")
        if layer is None:
            layer = node.cache["layer"] = make(node).eval()
        return layer.forward(x)
    return run


def _softmax_op(log: bool) -> Callable[[_Node, List[Optional[Array]]], Array]:
    def run(node: _Node, v: List[Optional[Array]]) -> Array:
        x = v[0]
        if not _floating(x):
            raise TypeError(f"Softmax of {x.dtype}: floats only")
        cls = nn.LogSoftmax if log else nn.Softmax
        if node.opset >= 13:
            return cls(dim=int(node.attr("axis", -1))).eval().forward(x)
        # Before opset 13: x is coerced to 2-D, (prod(dims[:axis]), prod(dims[axis:])).
        axis = int(node.attr("axis", 1)) % max(x.ndim, 1)
        rows = int(np.prod(x.shape[:axis], dtype=np.int64))
        return cls(dim=1).eval().forward(x.reshape(rows, -1)).reshape(x.shape)
    return run


def _hard_sigmoid(node: _Node, v: List[Optional[Array]]) -> Array:
    x = v[0]
    alpha = np.asarray(node.attr("alpha", 0.2), x.dtype)
    beta = np.asarray(node.attr("beta", 0.5), x.dtype)
    return np.clip(alpha * x + beta, 0, 1).astype(x.dtype, copy=False)


def _clip(node: _Node, v: List[Optional[Array]]) -> Array:
    x = v[0]
    if node.opset < 11:
        lo, hi = node.attr("min"), node.attr("max")
    else:
        lo, hi = _input(node, v, 1), _input(node, v, 2)
    if lo is not None:
        x = np.maximum(x, np.asarray(lo, x.dtype))
    if hi is not None:
        x = np.minimum(x, np.asarray(hi, x.dtype))
    return x


def _erf(node: _Node, v: List[Optional[Array]]) -> Array:
    x = v[0]
    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(x.dtype, copy=False)


def _layer_normalization(node: _Node, v: List[Optional[Array]]) -> List[Array]:
    x, scale, bias = v[0], v[1], _input(node, v, 2)
    axis = int(node.attr("axis", -1)) % x.ndim
    axes = tuple(range(axis, x.ndim))
    mean = np.mean(x, axis=axes, keepdims=True)
    centred = x - mean
    inv_std = 1.0 / np.sqrt(np.mean(centred * centred, axis=axes, keepdims=True)
                            + np.asarray(node.attr("epsilon", 1e-5), x.dtype))
    y = centred * inv_std * scale
    if bias is not None:
        y = y + bias
    return [y.astype(x.dtype, copy=False), mean, inv_std]


def _gather_nd(node: _Node, v: List[Optional[Array]]) -> Array:
    data, idx = v
    if idx.dtype.kind not in "iu":
        raise TypeError(f"GatherND indices must be integers, got {idx.dtype}")
    nb = int(node.attr("batch_dims", 0))
    k = idx.shape[-1]
    batch = data.shape[:nb]
    out_shape = batch + idx.shape[nb:-1] + data.shape[nb + k:]
    n = int(np.prod(batch, dtype=np.int64))
    if n == 0:
        return np.zeros(out_shape, data.dtype)
    d_rows = data.reshape((n,) + data.shape[nb:])
    i_rows = idx.reshape((n, -1, k))
    picked = [d[tuple(i.T)] for d, i in zip(d_rows, i_rows)]  # numpy's own bounds check
    return np.stack(picked).reshape(out_shape)


def _weight_rows(node: _Node, b: Array, transposed: bool) -> Array:
    """``b`` as the (N, K) C-contiguous rows rnnkit's GEMM takes (``b`` is (K, N) unless
    ``transposed``); a constant weight is transposed once and kept on the node."""
    if transposed:
        return np.ascontiguousarray(b)
    kept = node.cache.get("rows")
    if kept is None or kept[0] is not b:
        kept = (b, np.ascontiguousarray(b.T))
        node.cache["rows"] = kept
    return kept[1]


def _gemm_fits(a: Array, b: Array) -> bool:
    """Whether a (..., K) · b (K, N) can run on rnnkit's GEMM: floats of one dtype, b 2-D."""
    return (a.dtype == b.dtype and a.dtype in (np.float32, np.float64) and b.ndim == 2
            and a.ndim >= 1 and a.size > 0 and b.size > 0)


def _rows_product(a: Array, rows: Array) -> Array:
    """a (..., K) · rowsᵀ on rnnkit's GEMM (the one ``nn.Linear`` runs: an exported Linear
    imports to the same bits)."""
    k = a.shape[-1]
    y = linear_forward(np.ascontiguousarray(a.reshape(-1, k)), rows, None)
    return y.reshape(a.shape[:-1] + (rows.shape[0],))


def _matmul(node: _Node, v: List[Optional[Array]]) -> Array:
    a, b = v
    if _gemm_fits(a, b) and a.shape[-1] == b.shape[0]:
        return _rows_product(a, _weight_rows(node, b, False))
    return np.matmul(a, b)


def _gemm(node: _Node, v: List[Optional[Array]]) -> Array:
    a, b, c = v[0], v[1], _input(node, v, 2)
    if node.attr("transA", 0):
        a = a.T
    trans_b = bool(node.attr("transB", 0))
    k = b.shape[1] if trans_b else b.shape[0]
    if _gemm_fits(a, b) and a.ndim == 2 and a.shape[1] == k:
        y = _rows_product(a, _weight_rows(node, b, trans_b))
    else:
        y = a @ (b.T if trans_b else b)
    alpha, beta = node.attr("alpha", 1.0), node.attr("beta", 1.0)
    if alpha != 1.0:
        y = y * np.asarray(alpha, y.dtype)
    if c is not None and beta != 0.0:
        y = y + (c if beta == 1.0 else c * np.asarray(beta, c.dtype))
    return y


def _div(node: _Node, v: List[Optional[Array]]) -> Array:
    a, b = v
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        # ONNX (as C) truncates integer quotients toward zero; numpy's // floors.
        q = np.abs(a) // np.abs(b)
        return np.where((a < 0) != (b < 0), -q, q).astype(np.result_type(a, b))
    return a / b


def _transpose(node: _Node, v: List[Optional[Array]]) -> Array:
    perm = node.attr("perm")
    return np.transpose(v[0], None if perm is None else tuple(perm))


def _axes(node: _Node, v: List[Optional[Array]], since: int) -> Optional[List[int]]:
    """An op's axes: its attribute before opset `since`, its second input from then on."""
    if node.opset < since:
        axes = node.attr("axes")
        return None if axes is None else list(axes)
    a = _input(node, v, 1)
    return None if a is None else _ints(a)


def _squeeze(node: _Node, v: List[Optional[Array]]) -> Array:
    axes = _axes(node, v, 13)
    return np.squeeze(v[0], axis=None if axes is None else tuple(axes))


def _unsqueeze(node: _Node, v: List[Optional[Array]]) -> Array:
    axes = _axes(node, v, 13)
    if not axes:
        raise ValueError("Unsqueeze needs axes")
    return np.expand_dims(v[0], tuple(axes))


def _slice(node: _Node, v: List[Optional[Array]]) -> Array:
    x = v[0]
    if node.opset < 10:
        starts, ends = list(node.attr("starts")), list(node.attr("ends"))
        axes = node.attr("axes")
        steps: List[int] = [1] * len(starts)
    else:
        starts, ends = _ints(v[1]), _ints(v[2])
        axes = _input(node, v, 3)
        axes = None if axes is None else _ints(axes)
        st = _input(node, v, 4)
        steps = [1] * len(starts) if st is None else _ints(st)
    axes = list(range(len(starts))) if axes is None else list(axes)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError(f"Slice: starts, ends, axes and steps differ in length ({len(starts)},"
                         f" {len(ends)}, {len(axes)}, {len(steps)})")
    index = [slice(None)] * x.ndim
    for s, e, a, step in zip(starts, ends, axes, steps):
        if step == 0:
            raise ValueError("Slice: a step of 0")
        # Python's slices clamp out-of-range starts and ends exactly as ONNX's Slice does
        # (INT64_MAX / INT64_MIN included, for either sign of step).
        index[a % x.ndim] = slice(s, e, step)
    return x[tuple(index)]


def _concat(node: _Node, v: List[Optional[Array]]) -> Array:
    return np.concatenate([a for a in v if a is not None], axis=int(node.attr("axis")))


def _split(node: _Node, v: List[Optional[Array]]) -> List[Array]:
    x, axis = v[0], int(node.attr("axis", 0))
    n = len(node.outputs)
    if node.opset < 13:
        sizes = node.attr("split")
    else:
        s = _input(node, v, 1)
        sizes = None if s is None else _ints(s)
    dim = x.shape[axis]
    if sizes is None:
        parts = int(node.attr("num_outputs", n))
        size = -(-dim // parts)  # opset 18: all of ceil(dim / n) but the last
        sizes = [min(size, max(dim - k * size, 0)) for k in range(parts)]
    if sum(sizes) != dim:
        raise ValueError(f"Split: sizes {list(sizes)} do not add up to axis {axis}'s {dim}")
    return np.split(x, np.cumsum(sizes)[:-1].tolist(), axis=axis)


def _reshape(node: _Node, v: List[Optional[Array]]) -> Array:
    x = v[0]
    shape = _ints(v[1]) if node.opset >= 5 else list(node.attr("shape"))
    if not node.attr("allowzero", 0):
        # 0 copies the input's dimension (unless allowzero).
        shape = [x.shape[k] if d == 0 else d for k, d in enumerate(shape)]
    return np.reshape(x, shape)


def _flatten(node: _Node, v: List[Optional[Array]]) -> Array:
    x = v[0]
    axis = int(node.attr("axis", 1)) % (x.ndim + 1) if x.ndim else 0
    rows = int(np.prod(x.shape[:axis], dtype=np.int64))
    return x.reshape(rows, int(np.prod(x.shape[axis:], dtype=np.int64)))


def _gather(node: _Node, v: List[Optional[Array]]) -> Array:
    data, idx = v
    if idx.dtype.kind not in "iu":
        raise TypeError(f"Gather indices must be integers, got {idx.dtype}")
    axis = int(node.attr("axis", 0))
    n = data.shape[axis]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise ValueError(f"Gather index out of range [-{n}, {n}) on axis {axis}")
    return np.take(data, idx, axis=axis)


def _shape(node: _Node, v: List[Optional[Array]]) -> Array:
    shape = np.asarray(v[0].shape, np.int64)
    start, end = node.attr("start", 0), node.attr("end")
    return shape[start:end]


def _constant(node: _Node, v: List[Optional[Array]]) -> Array:
    a = node.attrs
    if "value" in a and isinstance(a["value"], np.ndarray):
        return a["value"]
    if "value_float" in a:
        return np.asarray(a["value_float"], np.float32)
    if "value_floats" in a:
        return np.asarray(a["value_floats"], np.float32)
    if "value_int" in a:
        return np.asarray(a["value_int"], np.int64)
    if "value_ints" in a:
        return np.asarray(a["value_ints"], np.int64)
    raise OnnxUnsupportedError(f"{node.where()}: a Constant of {sorted(a)} (only numeric "
                               "tensors, value_float(s) and value_int(s) are supported)")


def _constant_of_shape(node: _Node, v: List[Optional[Array]]) -> Array:
    value = node.attr("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    return np.full(_ints(v[0]), value[0], dtype=value.dtype)


def _np_dtype(onnx_type: int) -> np.dtype:
    onnx = _onnx()
    try:
        dt = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(onnx_type))
    except Exception as exc:
        raise OnnxUnsupportedError(f"ONNX tensor type {onnx_type} has no numpy "
                                   "equivalent") from exc
    if dt.kind not in "biuf":  # strings, float8 etc.: not numbers numpy computes with
        raise OnnxUnsupportedError(f"ONNX tensor type {onnx_type} ({dt}) is not supported")
    return dt


def _cast(node: _Node, v: List[Optional[Array]]) -> Array:
    return v[0].astype(_np_dtype(int(node.attr("to"))))


def _expand(node: _Node, v: List[Optional[Array]]) -> Array:
    x = v[0]
    return np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(_ints(v[1]))))


def _range(node: _Node, v: List[Optional[Array]]) -> Array:
    start, limit, delta = (np.asarray(a).reshape(()) for a in v)
    n = max(int(math.ceil((float(limit) - float(start)) / float(delta))), 0)
    return (start + np.arange(n, dtype=start.dtype) * delta).astype(start.dtype)


def _reduce(fn: Callable[..., Array], axes_input_since: int
            ) -> Callable[[_Node, List[Optional[Array]]], Array]:
    def run(node: _Node, v: List[Optional[Array]]) -> Array:
        axes = _axes(node, v, axes_input_since)
        keep = bool(node.attr("keepdims", 1))
        if not axes:
            if node.attr("noop_with_empty_axes", 0):
                return v[0]
            axes = None
        out = fn(v[0], axis=None if axes is None else tuple(axes), keepdims=keep)
        return np.asarray(out, dtype=v[0].dtype)
    return run


def _argmax(node: _Node, v: List[Optional[Array]]) -> Array:
    x, axis = v[0], int(node.attr("axis", 0))
    if node.attr("select_last_index", 0):
        idx = x.shape[axis] - 1 - np.argmax(np.flip(x, axis), axis=axis)
    else:
        idx = np.argmax(x, axis=axis)
    idx = idx.astype(np.int64)
    return np.expand_dims(idx, axis) if node.attr("keepdims", 1) else idx


def _dropout(node: _Node, v: List[Optional[Array]]) -> List[Array]:
    # Inference: the identity (and a mask of ones for a second output).
    return [v[0], np.ones(v[0].shape, np.bool_)]


def _elementwise(fn: Callable[..., Array]) -> Callable[[_Node, List[Optional[Array]]], Array]:
    def run(node: _Node, v: List[Optional[Array]]) -> Array:
        return fn(*v)
    return run


def _variadic(fn: Callable[[Array, Array], Array]
              ) -> Callable[[_Node, List[Optional[Array]]], Array]:
    def run(node: _Node, v: List[Optional[Array]]) -> Array:
        out = v[0]
        for a in v[1:]:
            out = fn(out, a)
        return out
    return run


def _leaky_relu(node: _Node, v: List[Optional[Array]]) -> Array:
    x = v[0]
    return np.where(x >= 0, x, x * np.asarray(node.attr("alpha", 0.01), x.dtype))


def _relu(x: Array) -> Array:
    return np.maximum(x, np.zeros((), x.dtype))


_NumpyOp = Callable[[_Node, List[Optional[Array]]], Union[Array, List[Array]]]

_NUMPY_OPS: Dict[str, _NumpyOp] = {
    "Identity": lambda node, v: v[0],
    "Dropout": _dropout,
    "Constant": _constant,
    "ConstantOfShape": _constant_of_shape,
    "Shape": _shape,
    "Size": lambda node, v: np.asarray(v[0].size, np.int64),
    "Cast": _cast,
    "CastLike": lambda node, v: v[0].astype(v[1].dtype),
    "Expand": _expand,
    "Range": _range,
    "Gather": _gather,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Add": _elementwise(np.add),
    "Sub": _elementwise(np.subtract),
    "Mul": _elementwise(np.multiply),
    "Div": _div,
    "Pow": _elementwise(lambda a, b: np.power(a, b).astype(a.dtype, copy=False)),
    "Neg": _elementwise(np.negative),
    "Abs": _elementwise(np.abs),
    "Sqrt": _elementwise(np.sqrt),
    "Exp": _elementwise(np.exp),
    "Log": _elementwise(np.log),
    "Reciprocal": _elementwise(np.reciprocal),
    "Relu": _layer_op(lambda node: nn.ReLU(), _relu),
    "LeakyRelu": _leaky_relu,
    "Tanh": _layer_op(lambda node: nn.Tanh(), np.tanh),
    "Sigmoid": _layer_op(lambda node: nn.Sigmoid(), _sigmoid),
    "HardSigmoid": _hard_sigmoid,
    "Gelu": _layer_op(lambda node: nn.GELU(approximate=node.attr("approximate", "none")),
                      np.asarray),
    "Erf": _erf,
    "Clip": _clip,
    "LayerNormalization": _layer_normalization,
    "GatherND": _gather_nd,
    "Softmax": _softmax_op(log=False),
    "LogSoftmax": _softmax_op(log=True),
    "Max": _variadic(np.maximum),
    "Min": _variadic(np.minimum),
    "Sum": _variadic(np.add),
    "Equal": _elementwise(np.equal),
    "Less": _elementwise(np.less),
    "LessOrEqual": _elementwise(np.less_equal),
    "Greater": _elementwise(np.greater),
    "GreaterOrEqual": _elementwise(np.greater_equal),
    "Not": _elementwise(np.logical_not),
    "And": _elementwise(np.logical_and),
    "Or": _elementwise(np.logical_or),
    "Where": _elementwise(np.where),
    "Transpose": _transpose,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Slice": _slice,
    "Concat": _concat,
    "Split": _split,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Tile": lambda node, v: np.tile(v[0], _ints(v[1])),
    "ReduceSum": _reduce(np.sum, 13),
    "ReduceMean": _reduce(np.mean, 18),
    "ReduceMax": _reduce(np.max, 18),
    "ReduceMin": _reduce(np.min, 18),
    "ArgMax": _argmax,
}

# The recurrent ops, run by rnnkit's kernels (see _Recurrent).
RECURRENT_OPS = tuple(onnx_layout.FAMILY_OF_OP)
# Every op type load() accepts (in the default ONNX domain); Scan runs its body per step.
SUPPORTED_OPS = tuple(sorted(RECURRENT_OPS + tuple(_NUMPY_OPS) + ("Scan",)))
