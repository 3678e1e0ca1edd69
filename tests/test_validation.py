"""Bad input to rnnkit.ops raises ValueError (shape, rank, range) or TypeError (dtype) naming the
argument and the shape it got (API.md "Conventions"); a backward without a training-mode
forward raises RuntimeError; non-contiguous inputs work and give the same results as
contiguous copies.  Nothing crashes the interpreter."""

import re

import numpy as np
import pytest

import rnnkit.ops as ops
from helpers import CELLS, GATES, SPECS, backward, forward, grad_fields, make_problem, \
    output_names

T, B, I, H = 4, 3, 6, 4


def _final_grads(cell):
    """The backward's arguments for the final states' gradients (dh_n, dc_n for the LSTM)."""
    return tuple("d" + n for n in SPECS[cell].state_n_names)


def _state_args(cell):
    """The arguments that carry a state: initial states and final states' gradients."""
    return SPECS[cell].state0_names + _final_grads(cell)


_STATE_ARGS = {a for cell in CELLS for a in _state_args(cell)}


def has_arg(cell, arg):
    """Whether the kernels of `cell` take `arg` (c0 and dc_n only where there is a c)."""
    return arg not in _STATE_ARGS or arg in _state_args(cell)


def problem(cell, dtype=np.float32, **kw):
    return make_problem(cell, T, B, I, H, dtype=dtype, seed=0, lengths=np.array([4, 0, 2]),
                        **kw)


def names(arg, shape=None):
    """A regex that needs the argument name and, if given, the shape it got (as numpy prints
    it, the trailing comma of a 1-tuple optional), in any order."""
    pat = r"(?s)(?=.*\b" + re.escape(arg) + r"\b)"
    if shape is not None:
        inner = ", ".join(str(s) for s in shape)
        pat += r"(?=.*\(" + re.escape(inner) + ("" if len(shape) != 1 else ",?") + r"\))"
    return pat


def fwd(p, **kw):
    return forward(ops, p, **kw)


# ----------------------------------------------------------------------- shapes and ranks


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", [(T * B, I), (T, B, I, 1), (I,)])
def test_x_wrong_rank(cell, shape):
    p = problem(cell)
    p["x"] = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=names("x", shape)):
        fwd(p)


@pytest.mark.parametrize("cell", CELLS)
def test_x_input_size_mismatch(cell):
    p = problem(cell)
    p["x"] = np.zeros((T, B, I + 1), np.float32)
    with pytest.raises(ValueError, match=r"\b(x|w_ih)\b"):
        fwd(p)


_WRONG_SHAPES = [
    ("h0", (B + 1, H)), ("h0", (B, H + 1)), ("h0", (1, B, H)), ("h0", (H,)),
    ("c0", (B, H + 2)), ("c0", (B - 1, H)),
    ("w_ih", ("GH", I + 1)), ("w_ih", ("GH+1", I)), ("w_ih", ("GH",)),
    ("w_hh", ("GH", H + 1)), ("w_hh", ("GH+1", H)), ("w_hh", ("GH", H, 1)),
    ("b_ih", ("GH+1",)), ("b_ih", (1, "GH")), ("b_ih", ("GH+H",)),
    ("b_hh", ("GH-1",)), ("b_hh", ("GH", 1)),
]


@pytest.mark.parametrize("cell, arg, shape", [
    (cell, arg, shape) for cell in CELLS for arg, shape in _WRONG_SHAPES
    if has_arg(cell, arg)])
def test_wrong_shape_names_argument_and_shape(cell, arg, shape):
    G = GATES[cell]
    sub = {"GH": G * H, "GH+1": G * H + 1, "GH-1": G * H - 1, "GH+H": (G + 1) * H}
    shape = tuple(sub.get(s, s) for s in shape)
    p = problem(cell)
    p[arg] = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=names(arg, shape)):
        fwd(p)


def test_w_hh_example_message():
    """The example of the brief: GRU with H=4 gets w_hh (12, 5) instead of (12, 4)."""
    p = problem("gru")
    p["w_hh"] = np.zeros((12, 5), np.float32)
    with pytest.raises(ValueError, match=names("w_hh", (12, 5))):
        fwd(p)


# ------------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("cell, arg", [
    (cell, arg) for cell in CELLS
    for arg in SPECS[cell].state0_names + ("w_ih", "w_hh", "b_ih", "b_hh")])
def test_mismatched_float_dtype(cell, arg):
    p = problem(cell)  # float32
    p[arg] = p[arg].astype(np.float64)
    with pytest.raises(TypeError, match=names(arg)):
        fwd(p)


@pytest.mark.parametrize("cell", CELLS)
def test_float32_x_with_float64_weights(cell):
    p = problem(cell, dtype=np.float64)
    p["x"] = p["x"].astype(np.float32)
    with pytest.raises(TypeError):
        fwd(p)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.complex128, np.float16, np.bool_])
def test_unsupported_x_dtype(cell, dtype):
    p = problem(cell)
    p["x"] = np.ones((T, B, I), dtype=dtype)
    with pytest.raises(TypeError, match=names("x")):
        fwd(p)


@pytest.mark.parametrize("cell", CELLS)
def test_all_float16_is_rejected(cell):
    p = problem(cell)
    for k in ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"):
        if p[k] is not None:
            p[k] = p[k].astype(np.float16)
    with pytest.raises(TypeError):
        fwd(p)


# ------------------------------------------------------------------------------- lengths


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("lengths", [np.array([4, 0]), np.array([4, 0, 2, 1]),
                                     np.array([[4, 0, 2]])], ids=["short", "long", "2d"])
def test_lengths_wrong_shape(cell, lengths):
    p = problem(cell)
    p["lengths"] = lengths
    with pytest.raises(ValueError, match=names("lengths", lengths.shape)):
        fwd(p)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bad", [-1, T + 1, 10**9], ids=["negative", "T+1", "huge"])
def test_lengths_out_of_range(cell, bad):
    p = problem(cell)
    p["lengths"] = np.array([4, bad, 2])
    with pytest.raises(ValueError, match=names("lengths")):
        fwd(p)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex64])
def test_lengths_non_integer(cell, dtype):
    p = problem(cell)
    p["lengths"] = np.array([4, 0, 2], dtype=dtype)
    with pytest.raises((TypeError, ValueError), match=names("lengths")):
        fwd(p)


# -------------------------------------------------------------------- backward arguments


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", [(T, B, H + 1), (T - 1, B, H), (T, B), (T, B, H, 1)])
def test_dy_wrong_shape(cell, shape):
    p = problem(cell)
    _, cache = fwd(p)
    p["dy"] = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=names("dy", shape)):
        backward(ops, p, cache)


@pytest.mark.parametrize("cell, arg", [
    (cell, arg) for cell in CELLS for arg in ("dy",) + _final_grads(cell)])
def test_backward_grad_wrong_dtype(cell, arg):
    p = problem(cell)
    _, cache = fwd(p)
    p[arg] = p[arg].astype(np.float64)
    with pytest.raises(TypeError, match=names(arg)):
        backward(ops, p, cache)


@pytest.mark.parametrize("cell, arg", [
    (cell, arg) for cell in CELLS for arg in _final_grads(cell)])
@pytest.mark.parametrize("shape", [(B, H + 1), (1, B, H), (B + 1, H)])
def test_final_state_grad_wrong_shape(cell, arg, shape):
    p = problem(cell)
    _, cache = fwd(p)
    p[arg] = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=names(arg, shape)):
        backward(ops, p, cache)


@pytest.mark.parametrize("cell", CELLS)
def test_backward_after_inference_forward(cell):
    p = problem(cell)
    _, cache = fwd(p, training=False)
    assert cache is None
    with pytest.raises(RuntimeError, match=r"(?i)train"):
        backward(ops, p, cache)


@pytest.mark.parametrize("cell", CELLS)
def test_backward_with_foreign_cache_does_not_crash(cell):
    p = problem(cell)
    # the next registered cell of another family (its cache is of another kind)
    i = CELLS.index(cell)
    other = next(c for c in CELLS[i + 1:] + CELLS[:i] if SPECS[c].family != SPECS[cell].family)
    _, cache = fwd(problem(other))
    with pytest.raises((TypeError, ValueError, RuntimeError)):
        backward(ops, p, cache)
    with pytest.raises((TypeError, ValueError, RuntimeError)):
        backward(ops, p, "not a cache")


def test_unknown_nonlinearity():
    p = problem("rnn_tanh")
    with pytest.raises(ValueError, match=r"nonlinearity|sigmoid"):
        ops.rnn_forward(p["x"], p["h0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"],
                        nonlinearity="sigmoid")


# ------------------------------------------------------------------ zero sizes: no crash


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dims", [(0, B, I), (T, 0, I)], ids=["T0", "B0"])
def test_empty_sizes_work_or_raise_value_error(cell, dims):
    """Not specified beyond "nothing crashes": either a clean ValueError or right shapes."""
    t, b, i = dims
    p = make_problem(cell, t, b, i, H, dtype=np.float32, seed=0)
    try:
        (y, h_n, *rest), cache = fwd(p)
    except ValueError:
        return
    assert y.shape == (t, b, H) and h_n.shape == (b, H)
    g = backward(ops, p, cache)
    assert g.dx.shape == (t, b, i)


# -------------------------------------------------------------------- non-contiguous input


def _strided(a, kind):
    """The same values as `a` in a non-contiguous array."""
    if a is None:
        return None
    if kind == "fortran":
        out = np.asfortranarray(a)
        return out if a.ndim > 1 else a
    # every other element of a twice-as-large buffer along the last axis
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


@pytest.mark.parametrize("kind", ["strided", "fortran"])
@pytest.mark.parametrize("cell", CELLS)
def test_non_contiguous_inputs_give_same_results(cell, kind):
    p = make_problem(cell, 5, 4, 6, 7, dtype=np.float32, seed=1, lengths=np.array([5, 0, 3, 1]))
    outs_c, cache_c = fwd(p, reverse=True)
    g_c = backward(ops, p, cache_c)

    q = dict(p)
    for k in ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "dy", "dh_n", "dc_n"):
        q[k] = _strided(p[k], kind)
    q["lengths"] = _strided(p["lengths"], "strided")
    assert not q["x"].flags.c_contiguous and not q["w_hh"].flags.c_contiguous
    outs_s, cache_s = fwd(q, reverse=True)
    g_s = backward(ops, q, cache_s)

    for name, a, b in zip(output_names(cell), outs_c, outs_s):
        assert np.array_equal(a, b), f"{name} differs for {kind} input"
    for f in grad_fields(cell):
        assert np.array_equal(getattr(g_c, f), getattr(g_s, f)), f"{f} differs for {kind} input"


@pytest.mark.parametrize("cell", CELLS)
def test_negative_strides_and_transposed_weights(cell):
    p = make_problem(cell, 5, 4, 6, 7, dtype=np.float64, seed=2)
    outs_c, cache_c = fwd(p)
    g_c = backward(ops, p, cache_c)
    q = dict(p)
    q["x"] = np.ascontiguousarray(p["x"][::-1])[::-1]          # negative time stride
    q["w_ih"] = np.ascontiguousarray(p["w_ih"].T).T             # transposed storage
    q["w_hh"] = np.ascontiguousarray(p["w_hh"].T).T
    q["h0"] = np.ascontiguousarray(p["h0"][:, ::-1])[:, ::-1]
    q["dy"] = np.ascontiguousarray(p["dy"].transpose(2, 1, 0)).transpose(2, 1, 0)
    assert q["x"].strides[0] < 0 and not q["w_hh"].flags.c_contiguous
    outs_s, cache_s = fwd(q)
    g_s = backward(ops, q, cache_s)
    for name, a, b in zip(output_names(cell), outs_c, outs_s):
        assert np.array_equal(a, b), f"{name} differs"
    for f in grad_fields(cell):
        assert np.array_equal(getattr(g_c, f), getattr(g_s, f)), f"{f} differs"
