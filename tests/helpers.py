"""Shared test helpers: a verbose assert_close, random-problem builders, uniform calls into
either the numpy reference (tests/reference.py) or rnnkit.ops, and finite differences."""

import numpy as np

from rnnkit._cellspec import CELLS as SPECS

# Every test that runs per cell parametrises from the registry: a new cell is tested by
# adding its reference function (tests/reference.py), not by editing these lists.
CELLS = tuple(SPECS)
# The cells torch computes too, which the torch comparisons run over: torch's modules take the
# RNN's nonlinearity; every other option must be at torch's value (torch has no GRU with
# reset_after=False, no peephole LSTM), and the family must be torch's (no LayerNorm cells).
_TORCH_VALUES = {"reset_after": True, "peephole": False}
TORCH_CELLS = tuple(c for c in CELLS if SPECS[c].family in ("lstm", "gru", "rnn") and all(
    k == "nonlinearity" or _TORCH_VALUES.get(k, object()) == v for k, v in SPECS[c].options))
GATES = {name: spec.gates for name, spec in SPECS.items()}
PARAM_NAMES = ("w_ih", "w_hh", "b_ih", "b_hh")
# gradient field -> the input it is the gradient of
GRAD_OF = {"dx": "x", "dw_ih": "w_ih", "dw_hh": "w_hh", "db_ih": "b_ih", "db_hh": "b_hh",
           **{"d" + n: n for spec in SPECS.values() for n in spec.state0_names},
           **{"d" + n: n for spec in SPECS.values() for n in spec.extra_names}}


def grad_fields(cell):
    return SPECS[cell].grads._fields


def output_names(cell):
    return ("y",) + SPECS[cell].state_n_names


def pack_state(cell, states):
    """A list of per-state arrays in the form the layers, the cells and torch take and return:
    a tuple for a cell with two or more states (the LSTM's (h, c)), the array itself for one."""
    states = tuple(states)
    assert len(states) == len(SPECS[cell].states), (cell, len(states))
    return states if len(states) > 1 else states[0]


def unpack_state(cell, state):
    """The inverse of pack_state: the per-state arrays of `state` as a list."""
    return list(state) if len(SPECS[cell].states) > 1 else [state]


# ------------------------------------------------------------------------------ comparing


def assert_close(actual, expected, rtol, atol, name="array"):
    """np.allclose-style check (|a - e| <= atol + rtol * |e|) that, on failure, says how far
    off it is: max abs diff, max rel diff, number of bad elements and the first bad index."""
    if expected is None or actual is None:
        assert actual is None and expected is None, (
            f"{name}: expected {'None' if expected is None else 'an array'}, got "
            f"{'None' if actual is None else type(actual).__name__}")
        return
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (
        f"{name}: shape {actual.shape} != expected {expected.shape}")
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    if not np.all(np.isfinite(a)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise AssertionError(f"{name}: non-finite value {float(a[bad])} at index {bad}")
    diff = np.abs(a - e)
    ok = diff <= atol + rtol * np.abs(e)
    if np.all(ok):
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / np.abs(e))
    bad = tuple(int(i) for i in np.argwhere(~ok)[0])
    raise AssertionError(
        f"{name}: not close (rtol={rtol:g}, atol={atol:g}) shape {a.shape}: "
        f"{int(np.sum(~ok))}/{ok.size} bad; max abs diff {diff.max():.3e}, "
        f"max rel diff {np.nanmax(rel):.3e}; first bad index {bad}: "
        f"actual {float(a[bad]):.17g}, expected {float(e[bad]):.17g}")


def max_errors(actual, expected):
    """(max abs diff, max rel diff) between two arrays, rel diff taken where |expected| is not
    tiny (relative error of near-zero values says nothing)."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    diff = np.abs(a - e)
    if diff.size == 0:
        return 0.0, 0.0
    scale = max(np.abs(e).max(), 1e-300)
    mask = np.abs(e) > 1e-3 * scale
    rel = (diff[mask] / np.abs(e[mask])).max() if mask.any() else 0.0
    return float(diff.max()), float(rel)


def scaled(atol, expected):
    """An absolute tolerance scaled by the magnitude of what is compared (sums of many terms
    such as dW carry rounding error proportional to their size, not to 1)."""
    if expected is None:
        return atol
    e = np.asarray(expected)
    return atol * max(1.0, float(np.abs(e).max()) if e.size else 1.0)


# ------------------------------------------------------------------------------- building


def mixed_lengths(T, B, rng):
    """Random lengths in 0..T that include a full-length sequence and, when B > 1, an empty
    one (placed so they are neither first nor sorted when B > 2)."""
    lengths = rng.integers(0, T + 1, size=B).astype(np.int64)
    lengths[-1] = T
    if B > 1:
        lengths[B // 2 - 1 if B > 2 else 0] = 0
    return lengths


def make_problem(cell, T, B, I, H, *, dtype=np.float64, seed=0, lengths=None, h0=True,
                 c0=True, bias=True, dh_n=True, dc_n=True):
    """A random problem: dict with inputs x, h0, c0, w_ih, w_hh, b_ih, b_hh (None where left
    out), the cell's extra parameters by name (peephole), lengths (None, an array, or "mixed" to draw one), and upstream gradients dy, dh_n,
    dc_n.  Weights are drawn so gate pre-activations are O(1): the nonlinearities are
    exercised without saturating."""
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    k = 1.0 / np.sqrt(I + H + 1)
    if isinstance(lengths, str):
        assert lengths == "mixed"
        lengths = mixed_lengths(T, B, rng)

    def u(*shape, scale=1.0):
        return (rng.uniform(-1.0, 1.0, size=shape) * scale).astype(dtype)

    p = dict(
        cell=cell,
        x=u(T, B, I),
        h0=u(B, H, scale=0.8) if h0 else None,
        c0=u(B, H, scale=0.8) if (c0 and "c0" in SPECS[cell].state0_names) else None,
        w_ih=u(G * H, I, scale=1.7 * k),
        w_hh=u(G * H, H, scale=1.7 * k),
        b_ih=u(G * H, scale=0.5) if bias else None,
        b_hh=u(G * H, scale=0.5) if bias else None,
        lengths=None if lengths is None else np.asarray(lengths, dtype=np.int64),
        dy=u(T, B, H),
        dh_n=u(B, H) if dh_n else None,
        dc_n=u(B, H) if (dc_n and "c_n" in SPECS[cell].state_n_names) else None,
    )
    # The cell's extra parameters (the peephole), drawn last so that the other cells'
    # problems are what they always were.
    for name, width in SPECS[cell].extra:
        p[name] = u(width * H, scale=0.5)
    return p


def as_float64(p):
    """The same problem with every float array converted (exactly) to float64."""
    q = dict(p)
    for k, v in p.items():
        if isinstance(v, np.ndarray) and v.dtype.kind == "f":
            q[k] = v.astype(np.float64)
    return q


# -------------------------------------------------------------------------------- calling


def forward(impl, p, *, reverse=False, **kw):
    """Calls impl.<family>_forward on problem p; impl is tests.reference or rnnkit.ops.
    Returns (outputs tuple, cache): (y, h_n[, c_n]). The options that select the cell in its
    family (nonlinearity, reset_after) and its extra parameters (peephole) are passed too;
    `kw` may override them."""
    spec = SPECS[p["cell"]]
    extra = {n: p[n] for n in spec.extra_names}
    out = getattr(impl, spec.family + "_forward")(
        p["x"], *(p[n] for n in spec.state0_names), p["w_ih"], p["w_hh"], p["b_ih"],
        p["b_hh"], lengths=p["lengths"], reverse=reverse, **{**spec.ops_kwargs, **extra, **kw})
    return tuple(out[:-1]), out[-1]


def backward(impl, p, cache):
    spec = SPECS[p["cell"]]
    return getattr(impl, spec.family + "_backward")(
        cache, p["dy"], *(p["d" + n] for n in spec.state_n_names))


def loss(outputs, p):
    """The scalar whose gradient backward computes: <dy, y> + <dh_n, h_n> (+ <dc_n, c_n>)."""
    total = float(np.sum(np.asarray(outputs[0], np.float64) * p["dy"]))
    if p["dh_n"] is not None:
        total += float(np.sum(np.asarray(outputs[1], np.float64) * p["dh_n"]))
    if len(outputs) == 3 and p["dc_n"] is not None:
        total += float(np.sum(np.asarray(outputs[2], np.float64) * p["dc_n"]))
    return total


def numeric_grad(impl, p, name, *, reverse=False, eps=1e-6, **kw):
    """Central finite differences of loss() w.r.t. input `name` of problem p (float64).
    For a None h0 / c0 the gradient is taken at zeros (what None means), with the fourth-order
    stencil: a LayerNorm of the zero recurrent product W_hh·0 has rstd = 1/sqrt(eps) ≈ 316, so
    the loss curves too sharply there for the second-order one at this step."""
    q = dict(p)
    B = p["x"].shape[1]
    H = p["w_hh"].shape[1]
    at_none = q[name] is None
    if at_none:
        assert name in ("h0", "c0")
        q[name] = np.zeros((B, H), dtype=np.float64)
    base = np.array(q[name], dtype=np.float64)
    q[name] = base
    grad = np.zeros_like(base)
    # (offset, weight) of each evaluation, in units of eps
    stencil = ((2, -1 / 12), (1, 8 / 12), (-1, -8 / 12), (-2, 1 / 12)) if at_none else \
        ((1, 0.5), (-1, -0.5))
    it = np.nditer(base, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        old = base[idx]
        total = 0.0
        for offset, weight in stencil:
            base[idx] = old + offset * eps
            total += weight * loss(forward(impl, q, reverse=reverse, **kw)[0], q)
        base[idx] = old
        grad[idx] = total / eps
    return grad


def central_differences(loss, params, name, eps=1e-6):
    """d loss / d params[name] by central differences: loss takes a dict like params (each
    entry perturbed in a copy)."""
    grad = np.zeros_like(params[name])
    for idx in np.ndindex(params[name].shape):
        q = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in params.items()}
        q[name][idx] += eps
        up = loss(q)
        q[name][idx] -= 2 * eps
        grad[idx] = (up - loss(q)) / (2 * eps)
    return grad


def loss_fd_check(fn, pred, target, rng, eps=1e-6, rtol=1e-6, atol=1e-10):
    """A loss's backward() against directional central finite differences of the (reduced)
    loss, along 3 random directions."""
    fn(pred, target)
    g = fn.backward()
    assert g.shape == pred.shape and g.dtype == pred.dtype
    for _ in range(3):
        v = rng.standard_normal(pred.shape)
        fd = (fn(pred + eps * v, target) - fn(pred - eps * v, target)) / (2 * eps)
        an = float(np.sum(g * v))
        assert abs(fd - an) <= atol + rtol * abs(fd), f"analytic {an!r} vs fd {fd!r}"
