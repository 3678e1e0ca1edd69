"""Anchors the float64 numpy references of the LayerNorm LSTM and GRU (tests/reference.py):
their hand-written BPTT against central finite differences for every input and parameter,
forward and gradients against torch autograd of a per-step torch module, the lengths / reverse
semantics, and that LN normalises the whole G*H vector rather than each gate."""

import numpy as np
import pytest
import reference as ref

# Only numpy (and torch where installed): helpers.py imports rnnkit, whose import fails while
# the compiled core and rnnkit._cellspec disagree, i.e. exactly while a new cell is being
# added, and this file anchors the references that such a cell is checked against.


def assert_close(actual, expected, rtol, atol, name):
    """|a - e| <= atol + rtol * |e| everywhere, else say how far off and where (as
    helpers.assert_close does)."""
    assert actual is not None and expected is not None, f"{name}: got None"
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{name}: shape {a.shape} != expected {e.shape}"
    diff = np.abs(a - e)
    ok = diff <= atol + rtol * np.abs(e)  # False for NaN, so a NaN fails too
    if ok.all():
        return
    bad = tuple(int(i) for i in np.argwhere(~ok)[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.nanmax(np.where(diff == 0, 0.0, diff / np.abs(e)))
    raise AssertionError(
        f"{name}: not close (rtol={rtol:g}, atol={atol:g}) shape {a.shape}: "
        f"{int((~ok).sum())}/{ok.size} bad; max abs diff {np.nanmax(diff):.3e}, max rel diff "
        f"{rel:.3e}; first bad index {bad}: actual {a[bad]!r}, expected {e[bad]!r}")


CELLS = ("layernorm_lstm", "layernorm_gru")
GATES = {"layernorm_lstm": 4, "layernorm_gru": 3}
# name -> width in units of H of each LayerNorm parameter, per cell (gains, then the c bias)
LN_PARAMS = {
    "layernorm_lstm": {"ln_weight_ih": 4, "ln_weight_hh": 4, "ln_weight_c": 1, "ln_bias_c": 1},
    "layernorm_gru": {"ln_weight_ih": 3, "ln_weight_hh": 3},
}
STATES = {"layernorm_lstm": ("h", "c"), "layernorm_gru": ("h",)}


def inputs(cell):
    """Every array the loss is differentiated w.r.t., named as the forward's arguments; the
    gradient of `name` is field "d" + name of the backward's named tuple."""
    return ("x",) + tuple(s + "0" for s in STATES[cell]) + ("w_ih", "w_hh", "b_ih", "b_hh") \
        + tuple(LN_PARAMS[cell])


def make_ln_problem(cell, T, B, I, H, *, seed, lengths=None, states=True, bias=True):
    """A random problem (dict): inputs, LN parameters, lengths (None, an array or "mixed") and
    the loss's random weights dy, dh_n (and dc_n).  Gains are drawn in 0.5..1.5, all different,
    so that a gain applied to the wrong element would show."""
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    k = 1.0 / np.sqrt(I + H + 1)
    if isinstance(lengths, str) and lengths == "mixed":
        # random in 0..T with one empty and one full sequence, neither first (B >= 3)
        assert B >= 3
        lengths = rng.integers(0, T + 1, size=B)
        lengths[1], lengths[-1] = 0, T

    def u(*shape, lo=-1.0, hi=1.0):
        return rng.uniform(lo, hi, size=shape)

    p = {"cell": cell, "x": u(T, B, I), "w_ih": u(G * H, I) * 1.7 * k,
         "w_hh": u(G * H, H) * 1.7 * k,
         "b_ih": u(G * H) * 0.5 if bias else None, "b_hh": u(G * H) * 0.5 if bias else None,
         "lengths": None if lengths is None else np.asarray(lengths, dtype=np.int64),
         "dy": u(T, B, H)}
    for s in STATES[cell]:
        p[s + "0"] = u(B, H) * 0.8 if states else None
        p["d" + s + "_n"] = u(B, H)
    for name, width in LN_PARAMS[cell].items():
        if name.startswith("ln_weight"):
            p[name] = u(width * H, lo=0.5, hi=1.5)
        else:
            p[name] = u(width * H) * 0.5
    return p


def run_forward(p, reverse=False):
    """(outputs (y, h_n[, c_n]), cache) of the reference for problem p."""
    fn = getattr(ref, p["cell"] + "_forward")
    states = [p[s + "0"] for s in STATES[p["cell"]]]
    ln = {name: p[name] for name in LN_PARAMS[p["cell"]]}
    out = fn(p["x"], *states, p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], lengths=p["lengths"],
             reverse=reverse, **ln)
    return tuple(out[:-1]), out[-1]


def run_backward(p, cache):
    fn = getattr(ref, p["cell"] + "_backward")
    return fn(cache, p["dy"], *(p["d" + s + "_n"] for s in STATES[p["cell"]]))


def ln_loss(outputs, p):
    """The scalar backward differentiates: <dy, y> + <dh_n, h_n> (+ <dc_n, c_n>)."""
    finals = outputs[1:]
    return float(np.sum(outputs[0] * p["dy"]) + sum(
        np.sum(f * p["d" + s + "_n"]) for f, s in zip(finals, STATES[p["cell"]])))


def fd_grad(p, name, reverse, eps=1e-6):
    """Central finite differences of ln_loss w.r.t. p[name]; a None state is taken at zeros
    (what None means)."""
    q = dict(p)
    # Weights of f(+2e), f(+e), f(-e), f(-2e) and the divisor: the plain central difference,
    # or the fourth-order one at a None (zero) state. There the hidden side normalises
    # W_hh h0 = 0, whose variance is far below LN's eps, so LN's gain is 1/sqrt(1e-5) ~ 316
    # and the loss curves on a scale some 300x finer in h0 than anywhere else: the plain
    # difference with step 1e-6 is off by up to ~3e-4 relative in dh0 (measured), while the
    # fourth-order stencil with step 3e-7 is within ~1e-8.
    stencil, div = (0.0, 1.0, -1.0, 0.0), 2.0
    if q[name] is None:
        q[name] = np.zeros((p["x"].shape[1], p["w_hh"].shape[1]))
        stencil, div, eps = (-1.0, 8.0, -8.0, 1.0), 12.0, eps * 0.3
    base = np.array(q[name], dtype=np.float64)
    q[name] = base
    grad = np.zeros_like(base)
    for idx in np.ndindex(base.shape):
        old = base[idx]
        total = 0.0
        for w, step in zip(stencil, (2.0, 1.0, -1.0, -2.0)):
            if w != 0.0:
                base[idx] = old + step * eps
                total += w * ln_loss(run_forward(q, reverse)[0], q)
        base[idx] = old
        grad[idx] = total / (div * eps)
    return grad


# --------------------------------------------------------------- BPTT vs finite differences


def check_against_fd(p, reverse, rtol=1e-6, atol=1e-8):
    _, cache = run_forward(p, reverse)
    g = run_backward(p, cache)
    assert g._fields == tuple("d" + n for n in inputs(p["cell"]))
    for name in inputs(p["cell"]):
        got = getattr(g, "d" + name)
        if name in ("b_ih", "b_hh") and p[name] is None:
            assert got is None, f"d{name} should be None when the biases are None"
            continue
        want = fd_grad(p, name, reverse)
        assert_close(got, want, rtol, atol, "d" + name)
        if name.startswith("ln_"):
            # a zero gradient would pass only against a zero FD: make sure it is not
            assert np.abs(want).max() > 1e-3, f"d{name} too small to test"


@pytest.mark.parametrize("bias, states", [(True, True), (False, False), (True, False),
                                          (False, True)],
                         ids=["bias-h0", "nobias-noh0", "bias-noh0", "nobias-h0"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("cell", CELLS)
def test_backward_matches_finite_differences_mixed_lengths(cell, reverse, bias, states):
    p = make_ln_problem(cell, T=4, B=3, I=3, H=3, seed=31, lengths="mixed", states=states,
                        bias=bias)
    assert 0 in p["lengths"] and 4 in p["lengths"]
    check_against_fd(p, reverse)


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("cell", CELLS)
def test_backward_matches_finite_differences_full_length(cell, reverse):
    # sizes unlike the test above (T = 5, B = 2, I != H) so no shape is silently transposed
    p = make_ln_problem(cell, T=5, B=2, I=2, H=4, seed=32)
    check_against_fd(p, reverse)


@pytest.mark.parametrize("cell", CELLS)
def test_missing_upstream_final_state_gradients_mean_zero(cell):
    p = make_ln_problem(cell, T=3, B=2, I=2, H=3, seed=33, lengths=np.array([3, 1]))
    _, cache = run_forward(p)
    g_none = getattr(ref, cell + "_backward")(cache, p["dy"])
    zeros = [np.zeros_like(p["d" + s + "_n"]) for s in STATES[cell]]
    g_zero = getattr(ref, cell + "_backward")(cache, p["dy"], *zeros)
    for field in g_zero._fields:
        assert_close(getattr(g_none, field), getattr(g_zero, field), 0, 0, field)


# ------------------------------------------------------------------ lengths and reverse


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("cell", CELLS)
def test_lengths_and_reverse_are_per_sequence(cell, reverse):
    """Sequence b of a batch == that sequence run alone, truncated to its length (flipped for
    reverse); padding outputs are zero and an empty sequence keeps its initial states."""
    p = make_ln_problem(cell, T=5, B=4, I=3, H=4, seed=34, lengths=np.array([3, 0, 5, 1]))
    (y, *finals), _ = run_forward(p, reverse)
    for b, L in enumerate(p["lengths"]):
        assert_close(y[L:, b], np.zeros_like(y[L:, b]), 0, 0, f"padding y[:, {b}]")
        if L == 0:
            for f, s in zip(finals, STATES[cell]):
                assert_close(f[b], p[s + "0"][b], 0, 0, f"{s}_n of the empty sequence")
            continue
        xb = p["x"][:L, b:b + 1]
        q = dict(p, x=xb[::-1] if reverse else xb, lengths=None,
                 **{s + "0": p[s + "0"][b:b + 1] for s in STATES[cell]})
        (yb, *fb), _ = run_forward(q)
        assert_close(y[:L, b], yb[::-1, 0] if reverse else yb[:, 0], 0, 0, f"y[:, {b}]")
        for f, f1, s in zip(finals, fb, STATES[cell]):
            assert_close(f[b], f1[0], 0, 0, f"{s}_n[{b}]")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("name", ["ln_weight_ih", "ln_weight_hh"])
def test_ln_parameter_of_wrong_shape_or_missing_is_refused(cell, name):
    p = make_ln_problem(cell, T=2, B=1, I=2, H=3, seed=35)
    width = 3 * GATES[cell]
    with pytest.raises(ValueError, match=rf"{name}.*\({width},\).*\(3,\)"):
        run_forward(dict(p, **{name: np.ones(3)}))
    with pytest.raises(ValueError, match=rf"{name}: required"):
        run_forward(dict(p, **{name: None}))


# ---------------------------------------------------------- LN is over the whole G*H vector


def plain_ln(v, per_gate_of=None):
    """LN with unit gain, written out here independently of reference.py; per_gate_of=G
    normalises each of the G gate blocks on its own (the wrong reading of the cells)."""
    if per_gate_of is not None:
        return np.concatenate([plain_ln(part) for part in np.split(v, per_gate_of)])
    return (v - v.mean()) / np.sqrt(v.var() + 1e-5)


def one_step_by_hand(cell, x, w_ih, H, per_gate):
    """The first step from h0 = c0 = 0 with unit gains and no biases: W_hh h0 = 0, whose LN is
    exactly 0, so only the input side is left."""
    G = GATES[cell]
    a = plain_ln(w_ih @ x, G if per_gate else None)
    sig = ref.sigmoid
    if cell == "layernorm_lstm":
        c = sig(a[:H]) * np.tanh(a[2 * H:3 * H])        # f * c0 = 0
        return sig(a[3 * H:]) * np.tanh(plain_ln(c))    # ln_bias_c = 0
    z, n = sig(a[H:2 * H]), np.tanh(a[2 * H:])          # r multiplies ah_n = 0
    return (1.0 - z) * n


@pytest.mark.parametrize("cell", CELLS)
def test_layernorm_is_over_the_whole_gate_vector(cell):
    T, B, I, H = 3, 2, 4, 5
    G = GATES[cell]
    rng = np.random.default_rng(36)
    # large inputs, so that eps = 1e-5 is negligible next to the variance and the normalised
    # rows have variance 1 to ~1e-9; the first input is a constant 1 whose weights differ
    # by gate, so the gate blocks have clearly different means (per-gate LN would remove them)
    x = rng.uniform(-100.0, 100.0, size=(T, B, I))
    x[..., 0] = 100.0
    w_ih = rng.uniform(-1.0, 1.0, size=(G * H, I))
    w_ih[:, 0] += np.repeat(np.arange(G, dtype=np.float64), H)
    w_hh = rng.uniform(-1.0, 1.0, size=(G * H, H))
    ln = {name: np.ones(width * H) if name.startswith("ln_weight") else np.zeros(width * H)
          for name, width in LN_PARAMS[cell].items()}
    states = [None] * len(STATES[cell])
    out = getattr(ref, cell + "_forward")(x, *states, w_ih, w_hh, None, None, **ln)
    y, cache = out[0], out[-1]

    # gains of one: the tape's normalised rows are LN's output, mean 0 and variance 1 over
    # all G*H entries of each side, while the gate blocks keep different means
    for b, steps in enumerate(cache["tape"]):
        for s in steps:
            for side in ("x_hat", "h_hat"):
                v = s[side]
                if side == "h_hat" and not np.any(v):
                    continue  # the first step normalises W_hh h0 = 0, which stays 0
                assert v.shape == (G * H,)
                assert abs(v.mean()) < 1e-12, (side, v.mean())
                # var(v_hat) = var / (var + eps): 1 to ~1e-9 for the large inputs; the hidden
                # side sees only |h| < 1, so there the eps term is checked as it is
                u = w_ih @ x[s["t"], b] if side == "x_hat" else w_hh @ s["h_prev"]
                want_var = 1.0 if side == "x_hat" else u.var() / (u.var() + 1e-5)
                assert abs(v.var() - want_var) < 1e-8, (side, v.var(), want_var)
            gate_means = s["x_hat"].reshape(G, H).mean(axis=1)
            assert np.ptp(gate_means) > 0.5, gate_means

    # the first step, by hand: matches whole-vector LN and differs from per-gate LN
    for b in range(B):
        whole = one_step_by_hand(cell, x[0, b], w_ih, H, per_gate=False)
        per_gate = one_step_by_hand(cell, x[0, b], w_ih, H, per_gate=True)
        assert_close(y[0, b], whole, 1e-12, 1e-14, f"y[0, {b}] vs whole-vector LN")
        assert np.abs(y[0, b] - per_gate).max() > 1e-2, "per-gate LN gives the same output"


# ------------------------------------------------------------------------------- torch


def torch_problem_grads(p, reverse):
    """Outputs and gradients of a per-step torch module (F.layer_norm over the full 4H / 3H /
    H vector, weight only, eps = 1e-5) with autograd, for a full-length problem p."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    cell = p["cell"]
    T = p["x"].shape[0]
    H = p["w_hh"].shape[1]
    G = GATES[cell]
    leaves = {n: torch.tensor(p[n], dtype=torch.float64, requires_grad=True)
              for n in inputs(cell) if p[n] is not None}

    def ln(v, name, width):
        return F.layer_norm(v, (width,), weight=leaves[name], bias=None, eps=1e-5)

    def bias(name):
        return leaves.get(name, 0.0)  # None biases: no leaf, add nothing

    x = leaves["x"]
    h = leaves["h0"]
    c = leaves.get("c0")
    ys = [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        ax = ln(x[t] @ leaves["w_ih"].T, "ln_weight_ih", G * H) + bias("b_ih")
        ah = ln(h @ leaves["w_hh"].T, "ln_weight_hh", G * H) + bias("b_hh")
        if cell == "layernorm_lstm":
            i, f, g, o = (ax + ah).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            m = ln(c, "ln_weight_c", H) + leaves["ln_bias_c"]
            h = torch.sigmoid(o) * torch.tanh(m)
        else:
            xr, xz, xn = ax.chunk(3, dim=1)
            hr, hz, hn = ah.chunk(3, dim=1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = (1.0 - z) * n + z * h
        ys[t] = h
    y = torch.stack(ys)
    finals = (h, c) if cell == "layernorm_lstm" else (h,)
    total = (y * torch.from_numpy(p["dy"])).sum()
    for f, s in zip(finals, STATES[cell]):
        total = total + (f * torch.from_numpy(p["d" + s + "_n"])).sum()
    total.backward()
    outs = [y.detach().numpy()] + [f.detach().numpy() for f in finals]
    return outs, {n: v.grad.numpy() for n, v in leaves.items()}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("cell", CELLS)
def test_reference_matches_torch_autograd(cell, reverse, bias):
    pytest.importorskip("torch")
    p = make_ln_problem(cell, T=5, B=3, I=4, H=5, seed=37, bias=bias)
    want_outs, want_grads = torch_problem_grads(p, reverse)
    outs, cache = run_forward(p, reverse)
    g = run_backward(p, cache)
    # both float64 with the same formulas, only summation orders differ: a few ulp, grown
    # a little by the recurrence and by rstd (~1/std) in the LN backward
    for name, got, want in zip(("y",) + tuple(s + "_n" for s in STATES[cell]), outs,
                               want_outs):
        assert_close(got, want, 1e-11, 1e-13, name)
    for name in inputs(cell):
        got = getattr(g, "d" + name)
        if p[name] is None:
            assert got is None, f"d{name} should be None when the biases are None"
            continue
        assert_close(got, want_grads[name], 1e-10, 1e-12, "d" + name)
