"""Recurrent dropout masks and zoneout in the sequence kernels (ops level, every cell).

    recurrent_mask m (B, H):  every recurrent product reads h_{t-1} ⊙ m[b] instead of h_{t-1}
                              (the GRU's own z ⊙ h_{t-1} term reads the unmasked h)
    zoneout z (T, B, H) or p: h_t = z[t, b] ⊙ h_{t-1} + (1 - z[t, b]) ⊙ ĥ_t, ĥ_t the cell's
                              output; y_t = h_t; the LSTM's c is not zoned

Checked against a float64 numpy reference written here (one sequence, one step at a time),
backward against central finite differences of rnnkit's own forward, the neutral values
(mask of ones, zoneout 0) against not passing the options at all, zoneout 1 against h0, and
what the kernels refuse (the GRU with reset_after=False + a mask, a projection + either).
"""
import numpy as np
import pytest
import reference as ref
from helpers import (
    CELLS,
    GRAD_OF,
    SPECS,
    as_float64,
    assert_close,
    backward,
    forward,
    grad_fields,
    make_problem,
    numeric_grad,
    output_names,
    scaled,
)
from rnnkit import ops


# float64: kernel and reference differ by summation order only. float32: the reference runs
# in float64 on the float32-rounded inputs, so the difference is the kernel's own rounding
# (a mask entry 1/(1-p) or a float zoneout p rounded to float32 shifts results by ~1e-7 more).
TOL = {np.float32: (1e-4, 1e-5), np.float64: (1e-10, 1e-12)}

# The cells whose pointwise reads h_{t-1} outside the recurrent product (z ⊙ h_{t-1}): the
# reference writes their step out. The others' step is tests/reference.py's forward with T = 1
# run from h0 = h_{t-1} ⊙ m, since their pointwise sees h_{t-1} only through that product.
EXPLICIT_GRU = ("gru", "layernorm_gru")
# Cells that refuse a recurrent mask (r ⊙ h_{t-1} inside the product: the mask would have to
# sit inside the reset gate's product, which the spec leaves out).
NO_MASK = ("gru_reset_before",)
LN_EPS = 1e-5


# --------------------------------------------------------------------- the numpy reference


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _ln(v, gamma):
    """LayerNorm over the whole vector, biased variance, eps as torch.nn.LayerNorm."""
    mu = v.mean()
    return gamma * (v - mu) / np.sqrt(((v - mu) ** 2).mean() + LN_EPS)


def _gru_step(q, x, h, m, layernorm):
    """ĥ of one reset-after GRU step (LayerNorm GRU if `layernorm`): the products read h ⊙ m,
    the interpolation z ⊙ h the unmasked h."""
    H = h.shape[0]
    wx = q["w_ih"] @ x
    wh = q["w_hh"] @ (h * m)
    if layernorm:
        wx, wh = _ln(wx, q["ln_weight_ih"]), _ln(wh, q["ln_weight_hh"])
    gx = wx + (0.0 if q["b_ih"] is None else q["b_ih"])
    gh = wh + (0.0 if q["b_hh"] is None else q["b_hh"])
    r = _sigmoid(gx[:H] + gh[:H])
    z = _sigmoid(gx[H:2 * H] + gh[H:2 * H])
    n = np.tanh(gx[2 * H:] + r * gh[2 * H:])  # b_hn inside r ⊙ (...), as the GRU has it
    return (1.0 - z) * n + z * h


def _reference_step(q, x, h, c, m):
    """ĥ (and c_t) of one step of the LSTM-like and RNN cells through tests/reference.py."""
    one = dict(q, x=x[None, None, :], h0=(h * m)[None], lengths=None)
    if c is not None:
        one["c0"] = c[None]
    outs, _ = forward(ref, one)
    return outs[1][0], (outs[2][0] if c is not None else None)


def zoneout_weights(zoneout, T, B, H):
    """The per-element weights z (T, B, H) in float64 that `zoneout` stands for."""
    if zoneout is None:
        return np.zeros((T, B, H))
    if isinstance(zoneout, float):
        return np.full((T, B, H), zoneout)
    return np.asarray(zoneout, dtype=np.float64)


def reference_forward(p, reverse, mask, zoneout):
    """(y, h_n[, c_n]) in float64 for problem p with the two options, per sequence, per step."""
    cell = p["cell"]
    q = as_float64(p)
    x = q["x"]
    T, B, _ = x.shape
    H = q["w_hh"].shape[1]
    has_c = "c0" in SPECS[cell].state0_names
    assert mask is None or cell not in NO_MASK
    m = np.ones((B, H)) if mask is None else np.asarray(mask, dtype=np.float64)
    z = zoneout_weights(zoneout, T, B, H)
    h0 = np.zeros((B, H)) if q["h0"] is None else q["h0"]
    c0 = np.zeros((B, H)) if (not has_c or q["c0"] is None) else q["c0"]
    lengths = np.full(B, T) if q["lengths"] is None else q["lengths"]
    y = np.zeros((T, B, H))
    h_n, c_n = np.zeros((B, H)), np.zeros((B, H))
    for b in range(B):
        h, c = h0[b].copy(), (c0[b].copy() if has_c else None)
        steps = range(lengths[b] - 1, -1, -1) if reverse else range(lengths[b])
        for t in steps:
            if cell in EXPLICIT_GRU:
                h_hat = _gru_step(q, x[t, b], h, m[b], layernorm=cell == "layernorm_gru")
            else:
                h_hat, c = _reference_step(q, x[t, b], h, c, m[b])
            h = z[t, b] * h + (1.0 - z[t, b]) * h_hat
            y[t, b] = h
        h_n[b] = h
        if has_c:
            c_n[b] = c
    return (y, h_n, c_n) if has_c else (y, h_n)


# ---------------------------------------------------------------------------- building


def recurrent_mask(rng, B, H, dtype, p=0.4):
    """A dropout mask of 0 and 1/(1-p), with both values present."""
    keep = rng.random((B, H)) >= p
    keep.flat[0], keep.flat[-1] = False, True
    return (keep / (1.0 - p)).astype(dtype)


def zoneout_array(rng, kind, T, B, H, dtype):
    """'01': random 0/1 (training's draw); 'frac': weights anywhere in [0, 1], 0 and 1 too."""
    if kind == "01":
        z = (rng.random((T, B, H)) < 0.4).astype(np.float64)
        z.flat[0], z.flat[-1] = 0.0, 1.0
    else:
        z = rng.random((T, B, H))
        z.flat[0], z.flat[1] = 0.0, 1.0
    return z.astype(dtype)


def options(p, rng, mask, zone):
    """The two keyword arguments for problem p: mask True/False; zone None, a float, '01' or
    'frac'."""
    T, B, _ = p["x"].shape
    H = p["w_hh"].shape[1]
    dtype = p["x"].dtype
    m = recurrent_mask(rng, B, H, dtype) if mask else None
    z = zoneout_array(rng, zone, T, B, H, dtype) if isinstance(zone, str) else zone
    return m, z


# name: (mask, zoneout, h0 given, c0 given, lengths)
CASES = {
    "mask": (True, None, True, True, "mixed"),
    "zone01": (False, "01", False, True, "mixed"),
    "zonefloat": (False, 0.3, True, True, None),
    "both01": (True, "01", False, False, "mixed"),
    "bothfloat": (True, 0.25, True, True, "mixed"),
    "bothfrac": (True, "frac", True, False, None),
}
FORWARD_PARAMS = [pytest.param(cell, case, id=f"{cell}-{case}") for cell in CELLS
                  for case, spec in CASES.items() if not (spec[0] and cell in NO_MASK)]


def _outputs(p, reverse, m, z, **kw):
    outs, cache = forward(ops, p, reverse=reverse, recurrent_mask=m, zoneout=z, **kw)
    return outs, cache


# ------------------------------------------------------------- 1. forward vs the reference


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell,case", FORWARD_PARAMS)
def test_forward_matches_reference(simd, cell, case, dtype, reverse):
    mask, zone, h0, c0, lengths = CASES[case]
    # B = 5 with mixed lengths: a 0 and a T, unsorted, so a kernel that reads the mask or the
    # zoneout rows in its length-sorted order instead of batch order is caught.
    p = make_problem(cell, T=5, B=5, I=4, H=7, dtype=dtype, seed=11, lengths=lengths, h0=h0,
                     c0=c0)
    m, z = options(p, np.random.default_rng(12), mask, zone)
    outs, _ = _outputs(p, reverse, m, z)
    want = reference_forward(p, reverse, m, z)
    rtol, atol = TOL[dtype]
    for name, got, exp in zip(output_names(cell), outs, want):
        assert got.dtype == dtype, f"{cell} {case} {name}: dtype {got.dtype}"
        assert_close(got, exp, rtol, scaled(atol, exp), f"{cell} {case} {name}")
    if lengths is not None:
        assert np.all(outs[0][np.arange(5)[:, None] >= p["lengths"][None, :]] == 0)


@pytest.mark.parametrize("cell,case", [pc for pc in FORWARD_PARAMS
                                       if pc.values[1] in ("both01", "bothfloat", "zonefloat")])
def test_training_false_gives_the_same_outputs(cell, case):
    """The inference path applies the options too (a float zoneout is its usual use)."""
    mask, zone, h0, c0, lengths = CASES[case]
    p = make_problem(cell, T=5, B=4, I=3, H=6, seed=13, lengths=lengths, h0=h0, c0=c0)
    m, z = options(p, np.random.default_rng(14), mask, zone)
    for reverse in (False, True):
        train, _ = _outputs(p, reverse, m, z)
        infer, cache = _outputs(p, reverse, m, z, training=False)
        assert cache is None
        for name, a, b in zip(output_names(cell), train, infer):
            assert np.array_equal(a, b), (
                f"{cell} {case} reverse={reverse} {name}: training=False differs, max abs "
                f"diff {np.abs(a - b).max():.3e}")


def test_reference_reduces_to_tests_reference_without_options():
    """The reference here, with neither option, is tests/reference.py (so its per-step
    bookkeeping - order, lengths, finals - is right before it judges rnnkit)."""
    for cell in CELLS:
        p = make_problem(cell, T=4, B=4, I=3, H=5, seed=15, lengths="mixed")
        for reverse in (False, True):
            want, _ = forward(ref, as_float64(p), reverse=reverse)
            got = reference_forward(p, reverse, None, None)
            for name, a, e in zip(output_names(cell), got, want):
                assert_close(a, e, 1e-13, 1e-14, f"reference {cell} {name}")


def test_generic_entry_points_take_the_options():
    """ops.sequence_forward / sequence_backward with the options = the family function."""
    for cell in CELLS:
        spec = SPECS[cell]
        p = make_problem(cell, T=4, B=3, I=3, H=5, seed=16, lengths="mixed")
        m, z = options(p, np.random.default_rng(17), cell not in NO_MASK, "frac")
        outs, cache = _outputs(p, True, m, z)
        g = backward(ops, p, cache)
        y, finals, c2 = ops.sequence_forward(
            spec, p["x"], tuple(p[n] for n in spec.state0_names), p["w_ih"], p["w_hh"],
            p["b_ih"], p["b_hh"], lengths=p["lengths"], reverse=True,
            extra=tuple(p[n] for n in spec.extra_names), recurrent_mask=m, zoneout=z)
        dx, dstate0, weights = ops.sequence_backward(
            c2, p["dy"], tuple(p["d" + n] for n in spec.state_n_names))
        got = [y, *finals, dx, *dstate0, *weights]
        want = [*outs, g.dx, *(getattr(g, "d" + n) for n in spec.state0_names),
                *(getattr(g, f) for f in ("dw_ih", "dw_hh", "db_ih", "db_hh")),
                *(getattr(g, "d" + n) for n in spec.extra_names)]
        assert len(got) == len(want)
        for k, (a, e) in enumerate(zip(got, want)):
            assert np.array_equal(a, e), f"{cell}: sequence_* result #{k} differs"


# ------------------------------------------------------------ 2. backward vs finite diffs


FD_PARAMS = [pytest.param(cell, zone, id=f"{cell}-{zone}") for cell in CELLS
             for zone in ("frac", 0.3)]


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("cell,zone", FD_PARAMS)
def test_backward_matches_finite_differences(cell, zone, reverse):
    # Both options on (the GRU with reset_after=False: zoneout only, as it refuses a mask),
    # every input perturbed with the mask and the zoneout weights held fixed.
    p = make_problem(cell, T=4, B=3, I=3, H=4, seed=21, lengths=np.array([2, 0, 4]))
    m, z = options(p, np.random.default_rng(22), cell not in NO_MASK, zone)
    arrays = [a for a in (m, z) if isinstance(a, np.ndarray)]
    kept = [a.copy() for a in arrays]
    _, cache = _outputs(p, reverse, m, z)
    g = backward(ops, p, cache)
    for f in grad_fields(cell):
        want = numeric_grad(ops, p, GRAD_OF[f], reverse=reverse, recurrent_mask=m, zoneout=z)
        assert_close(getattr(g, f), want, 1e-6, 1e-8, f"{cell} zoneout={zone} {f} vs FD")
    for a, b in zip(arrays, kept):
        assert np.array_equal(a, b), f"{cell}: the mask or the zoneout weights were modified"


@pytest.mark.parametrize("cell", CELLS)
def test_float32_backward_matches_float64(cell):
    """The float32 backward (its own instantiation) against the float64 one, which the finite
    differences above vouch for, on the same float32-exact inputs."""
    p32 = make_problem(cell, T=5, B=4, I=3, H=6, dtype=np.float32, seed=23, lengths="mixed")
    m32, z32 = options(p32, np.random.default_rng(24), cell not in NO_MASK, "frac")
    p64 = as_float64(p32)
    m64 = None if m32 is None else m32.astype(np.float64)
    results = {}
    for key, p, m, z in (("f32", p32, m32, z32), ("f64", p64, m64, z32.astype(np.float64))):
        for reverse in (False, True):
            outs, cache = _outputs(p, reverse, m, z)
            results[key, reverse] = list(outs) + list(backward(ops, p, cache))
    names = list(output_names(cell)) + list(grad_fields(cell))
    for reverse in (False, True):
        for name, a, e in zip(names, results["f32", reverse], results["f64", reverse]):
            assert_close(a, e, 1e-4, scaled(1e-5, e), f"{cell} reverse={reverse} {name}")


# --------------------------------------------------------------- 3. the neutral values


def _everything(p, reverse, **kw):
    outs, cache = forward(ops, p, reverse=reverse, **kw)
    return [np.array(o) for o in outs] + list(backward(ops, p, cache))


def _neutral(cell, dtype):
    p = make_problem(cell, T=5, B=4, I=3, H=6, dtype=dtype, seed=31, lengths="mixed")
    T, B, _ = p["x"].shape
    H = p["w_hh"].shape[1]
    ones = np.ones((B, H), dtype)
    variants = {"zoneout=0.0": {"zoneout": 0.0}}
    if cell not in NO_MASK:
        variants["mask of ones"] = {"recurrent_mask": ones}
        variants["both"] = {"recurrent_mask": ones, "zoneout": 0.0}
    return p, variants, np.zeros((T, B, H), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
def test_neutral_values_are_bitwise_no_options(cell, dtype):
    p, variants, _ = _neutral(cell, dtype)
    names = list(output_names(cell)) + list(grad_fields(cell))
    for reverse in (False, True):
        base = _everything(p, reverse)
        for what, kw in variants.items():
            got = _everything(p, reverse, **kw)
            for name, a, b in zip(names, got, base):
                if b is None:
                    assert a is None, f"{cell} {what} {name}: expected None"
                    continue
                assert a.dtype == b.dtype and np.array_equal(a, b), (
                    f"{cell} {what} reverse={reverse} {name}: differs from no options, max "
                    f"abs diff {np.abs(a.astype(np.float64) - b).max():.3e}")


@pytest.mark.parametrize("cell", CELLS)
def test_zoneout_array_of_zeros_is_no_zoneout(cell):
    # Not required bitwise (the zoned path may add a 0 * h_{t-1} term), only to rounding.
    p, _, zeros = _neutral(cell, np.float64)
    names = list(output_names(cell)) + list(grad_fields(cell))
    base = _everything(p, True)
    for name, a, b in zip(names, _everything(p, True, zoneout=zeros), base):
        if b is not None:
            assert_close(a, b, 1e-13, scaled(1e-14, b), f"{cell} zoneout zeros {name}")


@pytest.mark.parametrize("h0", [True, False], ids=["h0", "no_h0"])
@pytest.mark.parametrize("cell", CELLS)
def test_zoneout_one_keeps_h0(cell, h0):
    p = make_problem(cell, T=5, B=4, I=3, H=6, seed=41, lengths="mixed", h0=h0)
    T, B, _ = p["x"].shape
    H = p["w_hh"].shape[1]
    start = p["h0"] if h0 else np.zeros((B, H))
    ran = np.arange(T)[:, None] < p["lengths"][None, :]  # (T, B): steps that run
    masks = [None] if cell in NO_MASK else [None, recurrent_mask(np.random.default_rng(42),
                                                                 B, H, np.float64)]
    for m in masks:
        for reverse in (False, True):
            (y, h_n, *_), cache = _outputs(p, reverse, m, 1.0)
            want_y = np.where(ran[:, :, None], start[None], 0.0)
            assert np.array_equal(y, want_y), (
                f"{cell} mask={m is not None} reverse={reverse}: y is not h0 where steps run "
                f"(0 elsewhere), max abs diff {np.abs(y - want_y).max():.3e}")
            assert np.array_equal(h_n, start), f"{cell}: h_n is not h0"
            if len(SPECS[cell].states) == 1:
                # h_t = h0 for every t, and nothing else carries state: dh0 is dh_n plus the
                # dy of every step that ran, and no gradient reaches x or the weights.
                g = backward(ops, p, cache)
                want = p["dh_n"] + np.sum(np.where(ran[:, :, None], p["dy"], 0.0), axis=0)
                assert_close(g.dh0, want, 1e-13, 1e-14, f"{cell} zoneout=1 dh0")
                for f in ("dx", "dw_ih", "dw_hh", "db_ih", "db_hh"):
                    assert np.all(getattr(g, f) == 0), f"{cell} zoneout=1: {f} is not 0"


# --------------------------------------------------------------------------- 4. refusals


def _call(p, **kw):
    return forward(ops, p, **kw)


def test_gru_reset_before_refuses_a_mask():
    p = make_problem("gru_reset_before", T=3, B=2, I=3, H=4, seed=51)
    m = np.ones((2, 4))
    with pytest.raises(ValueError, match="recurrent_mask"):
        _call(p, recurrent_mask=m)
    with pytest.raises(ValueError, match="recurrent_mask"):
        _call(p, recurrent_mask=m, zoneout=0.5)
    spec = SPECS["gru_reset_before"]
    with pytest.raises(ValueError, match="recurrent_mask"):
        ops.sequence_forward(spec, p["x"], (p["h0"],), p["w_ih"], p["w_hh"], p["b_ih"],
                             p["b_hh"], recurrent_mask=m)


@pytest.mark.parametrize("cell", [c for c in CELLS if c not in NO_MASK])
def test_bad_masks_are_refused_naming_the_argument(cell):
    p = make_problem(cell, T=3, B=2, I=3, H=4, seed=52)
    for shape in ((4, 2), (2, 5), (1, 4), (4,), (3, 2, 4), (2, 4, 1)):
        with pytest.raises(ValueError, match="recurrent_mask"):
            _call(p, recurrent_mask=np.ones(shape))
    for bad in (np.ones((2, 4), np.float32), np.ones((2, 4), np.int64),
                np.ones((2, 4), np.bool_), [[1.0] * 4] * 2):
        with pytest.raises(TypeError, match="recurrent_mask"):
            _call(p, recurrent_mask=bad)


@pytest.mark.parametrize("cell", CELLS)
def test_bad_zoneout_is_refused_naming_the_argument(cell):
    p = make_problem(cell, T=3, B=2, I=3, H=4, seed=53)
    for shape in ((2, 4), (3, 2, 5), (3, 4, 2), (2, 2, 4), (3, 2, 4, 1)):
        with pytest.raises(ValueError, match="zoneout"):
            _call(p, zoneout=np.zeros(shape))
    for bad in (np.zeros((3, 2, 4), np.float32), np.zeros((3, 2, 4), np.int64), "0.5"):
        with pytest.raises(TypeError, match="zoneout"):
            _call(p, zoneout=bad)
    for value in (-0.1, 1.0 + 1e-9, 2.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="zoneout"):
            _call(p, zoneout=value)


def test_float32_problem_takes_float32_options_only():
    p = make_problem("lstm", T=3, B=2, I=3, H=4, dtype=np.float32, seed=54)
    with pytest.raises(TypeError, match="recurrent_mask"):
        _call(p, recurrent_mask=np.ones((2, 4)))
    with pytest.raises(TypeError, match="zoneout"):
        _call(p, zoneout=np.zeros((3, 2, 4)))


def test_projection_refuses_either_option():
    rng = np.random.default_rng(55)
    T, B, I, H, P = 3, 2, 3, 4, 2
    x = rng.uniform(-1, 1, (T, B, I))
    w_ih, w_hh = rng.uniform(-0.5, 0.5, (4 * H, I)), rng.uniform(-0.5, 0.5, (4 * H, P))
    w_hr = rng.uniform(-0.5, 0.5, (P, H))
    ops.lstm_forward(x, None, None, w_ih, w_hh, None, None, w_hr=w_hr)  # fine without them
    # h is P wide under a projection: masks of h's width and of the cell's, either way refused
    for kw in ({"recurrent_mask": np.ones((B, P))}, {"recurrent_mask": np.ones((B, H))},
               {"zoneout": 0.5}, {"zoneout": np.zeros((T, B, P))},
               {"recurrent_mask": np.ones((B, P)), "zoneout": 0.5}):
        with pytest.raises(ValueError):
            ops.lstm_forward(x, None, None, w_ih, w_hh, None, None, w_hr=w_hr, **kw)
        with pytest.raises(ValueError):
            ops.sequence_forward(SPECS["lstm"], x, (None, None), w_ih, w_hh, None, None,
                                 w_hr=w_hr, **kw)
