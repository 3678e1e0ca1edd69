"""Anchors the numpy reference itself: hand-computed tiny forwards, the lengths / reverse
semantics of API.md, and its hand-written BPTT against central finite differences."""

import math

import numpy as np
import pytest

import reference as ref
from helpers import CELLS, GRAD_OF, assert_close, backward, forward, grad_fields, \
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
