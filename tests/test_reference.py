"""Anchors the numpy reference itself: hand-computed tiny forwards, the lengths / reverse
semantics of API.md, and its hand-written BPTT against central finite differences."""

import math
import re

import numpy as np
import pytest

import reference as ref
from helpers import CELLS, GRAD_OF, assert_close, backward, forward, grad_fields, loss, \
    make_problem, numeric_grad


def sig(a):
    return 1.0 / (1.0 + math.exp(-a))


# ------------------------------------------------------------------- hand-computed forwards
# One unit, one input, one step; the pre-activations below were added up by hand from
#   x = 0.5, h0 = 0.1, w_ih = [0.1, 0.2, 0.3, 0.4], w_hh = [-0.5, 0.6, -0.7, 0.8],
#   b_ih = [0.01, 0.02, 0.03, 0.04], b_hh = [0.1, -0.1, 0.2, -0.2]   (gate order as API.md)
X, H0, C0 = 0.5, 0.1, 0.2
W_IH = [0.1, 0.2, 0.3, 0.4]
W_HH = [-0.5, 0.6, -0.7, 0.8]
B_IH = [0.01, 0.02, 0.03, 0.04]
B_HH = [0.1, -0.1, 0.2, -0.2]


def col(v, g):
    return np.array(v[:g], dtype=np.float64).reshape(g, 1)


def vec(v, g):
    return np.array(v[:g], dtype=np.float64)


def test_lstm_hand_computed_one_step():
    x = np.full((1, 1, 1), X)
    y, h_n, c_n, _ = ref.lstm_forward(x, np.full((1, 1), H0), np.full((1, 1), C0),
                                      col(W_IH, 4), col(W_HH, 4), vec(B_IH, 4), vec(B_HH, 4))
    # i: 0.05 + 0.01 - 0.05 + 0.1 = 0.11    f: 0.1 + 0.02 + 0.06 - 0.1 = 0.08
    # g: 0.15 + 0.03 - 0.07 + 0.2 = 0.31    o: 0.2 + 0.04 + 0.08 - 0.2 = 0.12
    i, f, g, o = sig(0.11), sig(0.08), math.tanh(0.31), sig(0.12)
    c = f * C0 + i * g
    h = o * math.tanh(c)
    assert_close(c_n, [[c]], 1e-14, 1e-15, "c_n")
    assert_close(h_n, [[h]], 1e-14, 1e-15, "h_n")
    assert_close(y, [[[h]]], 1e-14, 1e-15, "y")


def test_gru_hand_computed_one_step():
    x = np.full((1, 1, 1), X)
    y, h_n, _ = ref.gru_forward(x, np.full((1, 1), H0), col(W_IH, 3), col(W_HH, 3),
                                vec(B_IH, 3), vec(B_HH, 3))
    r = sig(0.05 + 0.01 - 0.05 + 0.1)               # 0.11
    z = sig(0.1 + 0.02 + 0.06 - 0.1)                # 0.08
    # r multiplies the whole hidden-side term, b_hn included: -0.07 + 0.2 = 0.13
    n = math.tanh(0.15 + 0.03 + r * 0.13)
    h = (1.0 - z) * n + z * H0
    assert_close(h_n, [[h]], 1e-14, 1e-15, "h_n")
    assert_close(y, [[[h]]], 1e-14, 1e-15, "y")


@pytest.mark.parametrize("b_ih, expected", [(0.03, math.tanh(0.31)), (-0.5, None)])
@pytest.mark.parametrize("nl", ["tanh", "relu"])
def test_rnn_hand_computed_one_step(nl, b_ih, expected):
    x = np.full((1, 1, 1), X)
    y, h_n, _ = ref.rnn_forward(x, np.full((1, 1), H0), [[0.3]], [[-0.7]], [b_ih], [0.2],
                                nonlinearity=nl)
    a = 0.15 - 0.07 + b_ih + 0.2                    # 0.31 or -0.22
    want = math.tanh(a) if nl == "tanh" else max(a, 0.0)
    assert_close(h_n, [[want]], 1e-14, 1e-15, "h_n")
    assert_close(y, [[[want]]], 1e-14, 1e-15, "y")


def test_rnn_hand_computed_backward_one_step():
    x = np.full((1, 1, 1), X)
    _, _, cache = ref.rnn_forward(x, np.full((1, 1), H0), [[0.3]], [[-0.7]], [0.03], [0.2])
    g = ref.rnn_backward(cache, np.full((1, 1, 1), 2.0), np.full((1, 1), 0.5))
    da = 2.5 * (1.0 - math.tanh(0.31) ** 2)         # (dy + dh_n) * tanh'
    assert_close(g.dx, [[[0.3 * da]]], 1e-14, 1e-15, "dx")
    assert_close(g.dh0, [[-0.7 * da]], 1e-14, 1e-15, "dh0")
    assert_close(g.dw_ih, [[X * da]], 1e-14, 1e-15, "dw_ih")
    assert_close(g.dw_hh, [[H0 * da]], 1e-14, 1e-15, "dw_hh")
    assert_close(g.db_ih, [da], 1e-14, 1e-15, "db_ih")
    assert_close(g.db_hh, [da], 1e-14, 1e-15, "db_hh")


def test_rnn_hand_computed_lengths_and_reverse():
    """T=2, three sequences with the same inputs and lengths 2, 1, 0 (one unit)."""
    x = np.array([0.5, -1.0])[:, None, None] * np.ones((2, 3, 1))
    h0 = np.array([[0.0], [0.0], [0.25]])
    w = ([[0.3]], [[-0.7]], [0.03], [0.2])           # a = 0.3 x - 0.7 h + 0.23
    lengths = np.array([2, 1, 0])

    y, h_n, _ = ref.rnn_forward(x, h0, *w, lengths=lengths)
    h1 = math.tanh(0.15 + 0.23)
    h2 = math.tanh(-0.3 - 0.7 * h1 + 0.23)
    assert_close(y[:, :, 0], [[h1, h1, 0.0], [h2, 0.0, 0.0]], 1e-14, 1e-15, "y")
    assert_close(h_n[:, 0], [h2, h1, 0.25], 1e-14, 1e-15, "h_n")

    y, h_n, _ = ref.rnn_forward(x, h0, *w, lengths=lengths, reverse=True)
    r1 = math.tanh(-0.3 + 0.23)                      # sequence 0 starts at t = 1
    r0 = math.tanh(0.15 - 0.7 * r1 + 0.23)
    s0 = math.tanh(0.15 + 0.23)                      # sequence 1 starts at its own t = 0
    assert_close(y[:, :, 0], [[r0, s0, 0.0], [r1, 0.0, 0.0]], 1e-14, 1e-15, "y reverse")
    assert_close(h_n[:, 0], [r0, s0, 0.25], 1e-14, 1e-15, "h_n reverse")


# ----------------------------------------------------------------- semantics as identities


@pytest.mark.parametrize("cell", CELLS)
def test_reverse_is_forward_on_flipped_valid_part(cell):
    """reverse=True on sequence b == forward on x[lengths[b]-1::-1, b], outputs flipped."""
    p = make_problem(cell, T=5, B=4, I=3, H=4, seed=7, lengths=np.array([3, 0, 5, 1]))
    (y, h_n, *c_n), _ = forward(ref, p, reverse=True)
    for b, L in enumerate(p["lengths"]):
        q = dict(p, x=p["x"][:L, b:b + 1][::-1], lengths=None,
                 h0=p["h0"][b:b + 1], c0=None if p["c0"] is None else p["c0"][b:b + 1])
        if L == 0:
            assert_close(h_n[b], p["h0"][b], 0, 0, "h_n of empty sequence")
            if c_n:
                assert_close(c_n[0][b], p["c0"][b], 0, 0, "c_n of empty sequence")
            assert_close(y[:, b], np.zeros_like(y[:, b]), 0, 0, "y of empty sequence")
            continue
        (yb, hb, *cb), _ = forward(ref, q)
        assert_close(y[:L, b], yb[::-1, 0], 0, 0, f"y[:, {b}]")
        assert_close(y[L:, b], np.zeros_like(y[L:, b]), 0, 0, f"padding y[:, {b}]")
        assert_close(h_n[b], hb[0], 0, 0, f"h_n[{b}]")
        if c_n:
            assert_close(c_n[0][b], cb[0][0], 0, 0, f"c_n[{b}]")


@pytest.mark.parametrize("cell", CELLS)
def test_lengths_is_truncation(cell):
    """Forward with lengths == forward of each sequence truncated to its length."""
    p = make_problem(cell, T=5, B=4, I=3, H=4, seed=8, lengths=np.array([3, 0, 5, 1]))
    (y, h_n, *c_n), _ = forward(ref, p)
    for b, L in enumerate(p["lengths"]):
        if L == 0:
            continue
        q = dict(p, x=p["x"][:L, b:b + 1], lengths=None, h0=p["h0"][b:b + 1],
                 c0=None if p["c0"] is None else p["c0"][b:b + 1])
        (yb, hb, *cb), _ = forward(ref, q)
        assert_close(y[:L, b], yb[:, 0], 0, 0, f"y[:, {b}]")
        assert_close(y[L:, b], np.zeros_like(y[L:, b]), 0, 0, f"padding y[:, {b}]")
        assert_close(h_n[b], hb[0], 0, 0, f"h_n[{b}]")


# --------------------------------------------------------------- BPTT vs finite differences


def check_against_fd(p, reverse, rtol=1e-6, atol=1e-8):
    outs, cache = forward(ref, p, reverse=reverse)
    g = backward(ref, p, cache)
    for field in grad_fields(p["cell"]):
        name = GRAD_OF[field]
        got = getattr(g, field)
        if name in ("b_ih", "b_hh") and p[name] is None:
            assert got is None, f"{field} should be None when biases are None"
            continue
        want = numeric_grad(ref, p, name, reverse=reverse)
        assert got.shape == want.shape, field
        assert_close(got, want, rtol, atol, field)


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("lengths", [None, "mixed"])
@pytest.mark.parametrize("cell", CELLS)
def test_backward_matches_finite_differences(cell, lengths, reverse):
    p = make_problem(cell, T=4, B=4, I=3, H=3, seed=11, lengths=lengths)
    if lengths is not None:
        assert 0 in p["lengths"] and 4 in p["lengths"]
    check_against_fd(p, reverse)


@pytest.mark.parametrize("cell", CELLS)
def test_backward_fd_without_state_bias_or_dh_n(cell):
    p = make_problem(cell, T=3, B=3, I=2, H=3, seed=12, lengths=np.array([2, 0, 3]),
                     h0=False, c0=False, bias=False, dh_n=False, dc_n=False)
    check_against_fd(p, reverse=True)
    check_against_fd(p, reverse=False)


@pytest.mark.parametrize("cell", CELLS)
def test_padding_gets_zero_gradient(cell):
    p = make_problem(cell, T=4, B=3, I=2, H=2, seed=13, lengths=np.array([2, 0, 4]))
    _, cache = forward(ref, p)
    g = backward(ref, p, cache)
    assert np.all(g.dx[2:, 0] == 0) and np.all(g.dx[:, 1] == 0)
    assert_close(g.dh0[1], p["dh_n"][1], 0, 0, "dh0 of empty sequence is dh_n")


# ------------------------------------------------- variants: GRU reset_after=False, peephole LSTM
# The new cells of issue 10 are compared against these references, so they get the same anchors
# as the plain cells: a hand-computed step, the lengths / reverse identities and BPTT against
# central finite differences, for every gradient (the peephole's included).

P_IFO = [0.3, -0.4, 0.5]        # peephole [p_i, p_f, p_o] of the one-unit hand computation

# variant name -> (cell whose problem it uses, extra forward keywords)
VARIANTS = {
    "gru_reset_before": ("gru", {"reset_after": False}),
    "lstm_peephole": ("lstm", {}),  # its peephole is drawn per problem, see variant_problem
}


def variant_problem(variant, **kw):
    """make_problem for the variant's base cell plus the variant's forward keywords (a random
    (3H,) peephole for the LSTM, drawn on the same scale as the weights)."""
    cell, extra = VARIANTS[variant]
    p = make_problem(cell, **kw)
    extra = dict(extra)
    if variant == "lstm_peephole":
        H = p["w_hh"].shape[1]
        rng = np.random.default_rng(kw.get("seed", 0) + 1000)
        extra["peephole"] = rng.uniform(-1.0, 1.0, size=3 * H)
    return p, extra


def test_gru_reset_before_hand_computed_one_step():
    x = np.full((1, 1, 1), X)
    y, h_n, _ = ref.gru_forward(x, np.full((1, 1), H0), col(W_IH, 3), col(W_HH, 3),
                                vec(B_IH, 3), vec(B_HH, 3), reset_after=False)
    r = sig(0.05 + 0.01 - 0.05 + 0.1)               # 0.11
    z = sig(0.1 + 0.02 + 0.06 - 0.1)                # 0.08
    # r scales h before W_hn; b_hn = 0.2 is added unscaled (reset_after=True: r * 0.13)
    n = math.tanh(0.15 + 0.03 + (-0.7) * (r * H0) + 0.2)
    h = (1.0 - z) * n + z * H0
    assert_close(h_n, [[h]], 1e-14, 1e-15, "h_n")
    assert_close(y, [[[h]]], 1e-14, 1e-15, "y")


def test_gru_reset_before_hand_computed_backward_one_step():
    """dL/dh0 and dL/dw_hn of one step, chain rule written out by hand for one unit."""
    x = np.full((1, 1, 1), X)
    _, _, cache = ref.gru_forward(x, np.full((1, 1), H0), col(W_IH, 3), col(W_HH, 3),
                                  vec(B_IH, 3), vec(B_HH, 3), reset_after=False)
    g = ref.gru_backward(cache, np.full((1, 1, 1), 1.0))
    r, z = sig(0.11), sig(0.08)
    n = math.tanh(0.18 - 0.7 * r * H0 + 0.2)
    dan = (1.0 - z) * (1.0 - n * n)
    daz = (H0 - n) * z * (1.0 - z)
    dar = dan * (-0.7) * H0 * r * (1.0 - r)
    # h0 reaches h' directly (z), through r and z (w_hr = -0.5, w_hz = 0.6) and through r * h0
    dh0 = z + (-0.5) * dar + 0.6 * daz + dan * (-0.7) * r
    assert_close(g.dh0, [[dh0]], 1e-13, 1e-15, "dh0")
    assert_close(g.dw_hh, [[H0 * dar], [H0 * daz], [r * H0 * dan]], 1e-13, 1e-15, "dw_hh")
    assert_close(g.db_hh, [dar, daz, dan], 1e-13, 1e-15, "db_hh")


def test_lstm_peephole_hand_computed_one_step():
    x = np.full((1, 1, 1), X)
    y, h_n, c_n, _ = ref.lstm_forward(x, np.full((1, 1), H0), np.full((1, 1), C0),
                                      col(W_IH, 4), col(W_HH, 4), vec(B_IH, 4), vec(B_HH, 4),
                                      peephole=np.array(P_IFO))
    # pre-activations as in test_lstm_hand_computed_one_step, plus p * c
    i = sig(0.11 + 0.3 * C0)
    f = sig(0.08 - 0.4 * C0)
    g = math.tanh(0.31)
    c = f * C0 + i * g
    o = sig(0.12 + 0.5 * c)                         # o sees the new cell state
    h = o * math.tanh(c)
    assert_close(c_n, [[c]], 1e-14, 1e-15, "c_n")
    assert_close(h_n, [[h]], 1e-14, 1e-15, "h_n")
    assert_close(y, [[[h]]], 1e-14, 1e-15, "y")


def test_lstm_peephole_hand_computed_backward_one_step():
    """dL/dpeephole and dL/dc0 of one step with L = h', chain rule by hand for one unit."""
    x = np.full((1, 1, 1), X)
    _, _, _, cache = ref.lstm_forward(x, np.full((1, 1), H0), np.full((1, 1), C0),
                                      col(W_IH, 4), col(W_HH, 4), vec(B_IH, 4), vec(B_HH, 4),
                                      peephole=np.array(P_IFO))
    g = ref.lstm_backward(cache, np.full((1, 1, 1), 1.0))
    i, f, gg = sig(0.11 + 0.3 * C0), sig(0.08 - 0.4 * C0), math.tanh(0.31)
    c = f * C0 + i * gg
    o = sig(0.12 + 0.5 * c)
    dao = math.tanh(c) * o * (1.0 - o)
    dc = o * (1.0 - math.tanh(c) ** 2) + dao * 0.5
    dai = dc * gg * i * (1.0 - i)
    daf = dc * C0 * f * (1.0 - f)
    assert_close(g.dpeephole, [dai * C0, daf * C0, dao * c], 1e-13, 1e-15, "dpeephole")
    assert_close(g.dc0, [[dc * f + dai * 0.3 + daf * (-0.4)]], 1e-13, 1e-15, "dc0")


def test_zero_peephole_is_the_plain_lstm():
    """A zero peephole adds exact zeros, so forward and the common gradients are bitwise the
    plain LSTM's; the plain LSTM's backward keeps its seven fields."""
    p = make_problem("lstm", T=4, B=3, I=2, H=3, seed=21, lengths=np.array([4, 0, 2]))
    (y0, h0, c0), cache0 = forward(ref, p)
    (y1, h1, c1), cache1 = forward(ref, p, peephole=np.zeros(9))
    for name, a, b in (("y", y1, y0), ("h_n", h1, h0), ("c_n", c1, c0)):
        assert_close(a, b, 0, 0, name)
    g0, g1 = backward(ref, p, cache0), backward(ref, p, cache1)
    assert g0._fields == ("dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh")
    assert g1._fields == g0._fields + ("dpeephole",)
    for field in g0._fields:
        assert_close(getattr(g1, field), getattr(g0, field), 0, 0, field)


@pytest.mark.parametrize("bad", [np.zeros(8), np.zeros((3, 3)), np.zeros(12)],
                         ids=["short", "2d", "4H"])
def test_peephole_of_wrong_shape_is_refused(bad):
    p = make_problem("lstm", T=2, B=1, I=2, H=3, seed=22)
    with pytest.raises(ValueError, match=r"peephole.*\(9,\).*" + re.escape(str(bad.shape))):
        forward(ref, p, peephole=bad)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_lengths_and_reverse_are_per_sequence(variant):
    """With lengths (0 included) and reverse, sequence b of a batch == that sequence run alone,
    truncated to its length (and flipped for reverse), padding zero, empty ones keep h0/c0."""
    p, extra = variant_problem(variant, T=5, B=4, I=3, H=4, seed=23,
                               lengths=np.array([3, 0, 5, 1]))
    for reverse in (False, True):
        (y, h_n, *c_n), _ = forward(ref, p, reverse=reverse, **extra)
        for b, L in enumerate(p["lengths"]):
            assert_close(y[L:, b], np.zeros_like(y[L:, b]), 0, 0, f"padding y[:, {b}]")
            if L == 0:
                assert_close(h_n[b], p["h0"][b], 0, 0, "h_n of empty sequence")
                if c_n:
                    assert_close(c_n[0][b], p["c0"][b], 0, 0, "c_n of empty sequence")
                continue
            xb = p["x"][:L, b:b + 1]
            q = dict(p, x=xb[::-1] if reverse else xb, lengths=None, h0=p["h0"][b:b + 1],
                     c0=None if p["c0"] is None else p["c0"][b:b + 1])
            (yb, hb, *cb), _ = forward(ref, q, **extra)
            assert_close(y[:L, b], yb[::-1, 0] if reverse else yb[:, 0], 0, 0, f"y[:, {b}]")
            assert_close(h_n[b], hb[0], 0, 0, f"h_n[{b}]")
            if c_n:
                assert_close(c_n[0][b], cb[0][0], 0, 0, f"c_n[{b}]")


def numeric_grad_peephole(p, peephole, reverse, eps=1e-6):
    """Central finite differences of loss() w.r.t. the LSTM's peephole vector."""
    base = np.array(peephole, dtype=np.float64)
    grad = np.zeros_like(base)
    for k in range(base.size):
        old = base[k]
        base[k] = old + eps
        lp = loss(forward(ref, p, reverse=reverse, peephole=base)[0], p)
        base[k] = old - eps
        lm = loss(forward(ref, p, reverse=reverse, peephole=base)[0], p)
        base[k] = old
        grad[k] = (lp - lm) / (2.0 * eps)
    return grad


def check_variant_against_fd(p, extra, reverse, rtol=1e-6, atol=1e-8):
    _, cache = forward(ref, p, reverse=reverse, **extra)
    g = backward(ref, p, cache)
    assert g._fields[:len(grad_fields(p["cell"]))] == grad_fields(p["cell"])
    for field in grad_fields(p["cell"]):
        name = GRAD_OF[field]
        got = getattr(g, field)
        if name in ("b_ih", "b_hh") and p[name] is None:
            assert got is None, f"{field} should be None when biases are None"
            continue
        want = numeric_grad(ref, p, name, reverse=reverse, **extra)
        assert_close(got, want, rtol, atol, field)
    if "peephole" in extra:
        want = numeric_grad_peephole(p, extra["peephole"], reverse)
        assert_close(g.dpeephole, want, rtol, atol, "dpeephole")
        # a gradient that is zero everywhere would pass the check above only if FD were zero
        assert np.abs(want).max() > 1e-3


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("lengths", [None, "mixed"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_backward_matches_finite_differences(variant, lengths, reverse):
    p, extra = variant_problem(variant, T=4, B=4, I=3, H=3, seed=24, lengths=lengths)
    if lengths is not None:
        assert 0 in p["lengths"] and 4 in p["lengths"]
    check_variant_against_fd(p, extra, reverse)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_backward_fd_without_state_bias_or_dh_n(variant):
    p, extra = variant_problem(variant, T=3, B=3, I=2, H=3, seed=25,
                               lengths=np.array([2, 0, 3]), h0=False, c0=False, bias=False,
                               dh_n=False, dc_n=False)
    check_variant_against_fd(p, extra, reverse=True)
    check_variant_against_fd(p, extra, reverse=False)
