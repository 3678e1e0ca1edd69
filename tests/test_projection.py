"""The projected LSTM (torch's proj_size): h = W_hr (o ⊙ tanh(c)), P wide; c stays H wide.

Without torch: the forward against a float64 numpy implementation of the formula, every
gradient against central finite differences of the forward, lengths against each sequence run
alone, thread counts bitwise, the layer's files and its errors. tests/test_projection_torch.py
compares with torch.nn.LSTM(proj_size=P).
"""
import numpy as np
import pytest

import rnnkit
from helpers import central_differences
from rnnkit import nn, ops

T, B, I, H, P = 5, 4, 3, 6, 2


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def numpy_projected_lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths, reverse):
    """The formula, one sequence at a time, float64 (gates i, f, g, o as torch)."""
    t_steps, batch, _ = x.shape
    hid, proj = w_hr.shape[1], w_hr.shape[0]
    y = np.zeros((t_steps, batch, proj))
    h_n, c_n = np.zeros((batch, proj)), np.zeros((batch, hid))
    for b in range(batch):
        h, c = h0[b].copy(), c0[b].copy()
        steps = range(lengths[b])
        for t in (reversed(steps) if reverse else steps):
            a = w_ih @ x[t, b] + b_ih + w_hh @ h + b_hh
            i, f = _sigmoid(a[:hid]), _sigmoid(a[hid:2 * hid])
            g, o = np.tanh(a[2 * hid:3 * hid]), _sigmoid(a[3 * hid:])
            c = f * c + i * g
            h = w_hr @ (o * np.tanh(c))
            y[t, b] = h
        h_n[b], c_n[b] = h, c
    return y, h_n, c_n


def _problem(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(H)
    p = dict(x=rng.standard_normal((T, B, I)), h0=rng.standard_normal((B, P)) * 0.5,
             c0=rng.standard_normal((B, H)) * 0.5, w_ih=rng.uniform(-k, k, (4 * H, I)) * 2,
             w_hh=rng.uniform(-k, k, (4 * H, P)) * 2, b_ih=rng.uniform(-k, k, 4 * H),
             b_hh=rng.uniform(-k, k, 4 * H), w_hr=rng.uniform(-k, k, (P, H)) * 2)
    return {n: v.astype(dtype) for n, v in p.items()}


def _forward(p, lengths, reverse, training=True):
    return ops.lstm_forward(p["x"], p["h0"], p["c0"], p["w_ih"], p["w_hh"], p["b_ih"],
                            p["b_hh"], w_hr=p["w_hr"], lengths=lengths, reverse=reverse,
                            training=training)


LENGTHS = [None, np.array([5, 0, 3, 1])]


@pytest.mark.parametrize("lengths", LENGTHS, ids=["full", "mixed"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_forward_matches_the_formula(lengths, reverse):
    p = _problem()
    full = np.full(B, T) if lengths is None else lengths
    want = numpy_projected_lstm(*(p[n] for n in ("x", "h0", "c0", "w_ih", "w_hh", "b_ih",
                                                 "b_hh", "w_hr")), full, reverse)
    for training in (True, False):
        y, h_n, c_n, _ = _forward(p, lengths, reverse, training)
        for got, ref in zip((y, h_n, c_n), want):
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("lengths", LENGTHS, ids=["full", "mixed"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_backward_matches_finite_differences(lengths, reverse):
    p = _problem(1)
    rng = np.random.default_rng(2)
    y, h_n, c_n, cache = _forward(p, lengths, reverse)
    dy, dh_n, dc_n = (rng.standard_normal(a.shape) for a in (y, h_n, c_n))
    if lengths is not None:
        dy *= (np.arange(T)[:, None] < lengths[None, :])[..., None]
    g = ops.lstm_backward(cache, dy, dh_n, dc_n)
    assert type(g).__name__ == "LSTMProjectedGrads" and g._fields[-1] == "dw_hr"

    def loss(q):
        yy, hh, cc, _ = _forward(q, lengths, reverse, training=False)
        return float((yy * dy).sum() + (hh * dh_n).sum() + (cc * dc_n).sum())
    for name, grad in (("x", g.dx), ("h0", g.dh0), ("c0", g.dc0), ("w_ih", g.dw_ih),
                       ("w_hh", g.dw_hh), ("b_ih", g.db_ih), ("b_hh", g.db_hh),
                       ("w_hr", g.dw_hr)):
        np.testing.assert_allclose(grad, central_differences(loss, p, name), rtol=1e-6,
                                   atol=1e-7, err_msg=name)


def test_bitwise_identical_for_any_thread_count():
    rng = np.random.default_rng(3)
    b, t, i, h, p = 16, 6, 32, 256, 64   # enough work per step for a second thread
    x = rng.standard_normal((t, b, i)).astype(np.float32)
    w = [rng.uniform(-0.05, 0.05, s).astype(np.float32)
         for s in ((4 * h, i), (4 * h, p), (4 * h,), (4 * h,), (p, h))]
    lengths = rng.integers(0, t + 1, b)
    before = rnnkit.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            rnnkit.set_num_threads(threads)
            y, h_n, c_n, cache = ops.lstm_forward(x, None, None, *w[:4], w_hr=w[4],
                                                  lengths=lengths)
            g = ops.lstm_backward(cache, np.ones_like(y))
            ye = ops.lstm_forward(x, None, None, *w[:4], w_hr=w[4], lengths=lengths,
                                  training=False)[0]
            results.append((y, h_n, c_n, ye) + tuple(g))
    finally:
        rnnkit.set_num_threads(before)
    for a, c in zip(*results):
        np.testing.assert_array_equal(a, c)


def test_layer_lengths_equal_each_sequence_alone_and_files_round_trip(tmp_path):
    m = nn.LSTM(I, H, num_layers=2, proj_size=P, bidirectional=True, batch_first=True,
                dtype="float64", seed=4)
    assert m.weight_hh_l1.shape == (4 * H, P) and m.weight_ih_l1.shape == (4 * H, 2 * P)
    assert m.weight_hr_l0_reverse.shape == (P, H)
    x = np.random.default_rng(5).standard_normal((B, T, I))
    lengths = np.array([5, 2, 0, 4])
    y, (h_n, c_n) = m(x, lengths=lengths)
    assert y.shape == (B, T, 2 * P) and h_n.shape == (4, B, P) and c_n.shape == (4, B, H)
    for b, n in enumerate(lengths):
        if n == 0:
            assert not y[b].any() and not h_n[:, b].any() and not c_n[:, b].any()
            continue
        yb, (hb, cb) = m(x[b:b + 1, :n])
        np.testing.assert_allclose(y[b, :n], yb[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(h_n[:, b], hb[:, 0], rtol=1e-12, atol=1e-14)
        assert not y[b, n:].any()
    rnnkit.save(m, tmp_path / "p.rnnkit")
    m2 = rnnkit.load(tmp_path / "p.rnnkit")
    assert m2.proj_size == P and "proj_size=2" in repr(m2)
    np.testing.assert_array_equal(m2(x, lengths=lengths)[0], y)
    assert "proj_size" not in nn.LSTM(I, H).get_config()   # default files stay as they were


@pytest.mark.parametrize("make, error, match", [
    (lambda: nn.LSTM(3, 4, proj_size=4), ValueError, "smaller than hidden_size=4"),
    (lambda: nn.LSTM(3, 4, proj_size=-1), ValueError, "proj_size must be an integer >= 0"),
    (lambda: nn.LSTM(3, 4, proj_size=True), ValueError, "proj_size must be an integer"),
    (lambda: nn.GRU(3, 4, proj_size=2), TypeError, "proj_size"),
])
def test_bad_proj_size_is_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_ops_refuse_a_projection_of_the_wrong_shape_or_cell():
    p = _problem()
    with pytest.raises(ValueError, match=r"w_hh has shape \(24, 2\), expected \(28, 2\)"):
        ops.lstm_forward(p["x"], None, None, p["w_ih"], p["w_hh"], None, None,
                         w_hr=np.zeros((2, 7)))
    with pytest.raises(ValueError, match=r"h0 has shape \(4, 6\), expected \(4, 2\)"):
        ops.lstm_forward(p["x"], np.zeros((B, H)), None, p["w_ih"], p["w_hh"], None, None,
                         w_hr=p["w_hr"])
    from rnnkit._cellspec import CELLS
    with pytest.raises(TypeError, match="takes no projection"):
        ops.sequence_forward(CELLS["gru"], p["x"], (None,), np.zeros((3 * H, I)),
                             np.zeros((3 * H, P)), None, None, w_hr=p["w_hr"])


@pytest.mark.parametrize("threads", [1, 2])
def test_eval_single_steps_equal_the_sequence_bitwise(threads):
    """Streaming (eval, one step per call: weights packed once, with the projection) gives
    the sequence kernel's bits, states and outputs, with 1 and 2 threads."""
    m = nn.LSTM(32, 256, num_layers=2, proj_size=64, dtype="float64", seed=6).eval()
    x = np.random.default_rng(7).standard_normal((5, 8, 32))
    before = rnnkit.get_num_threads()
    try:
        rnnkit.set_num_threads(threads)
        ys, (hs, cs) = m(x)
        hx, outs = None, []
        for t in range(x.shape[0]):
            y, hx = m(x[t:t + 1], hx)
            outs.append(y[0])
    finally:
        rnnkit.set_num_threads(before)
    np.testing.assert_array_equal(np.array(outs), ys)
    np.testing.assert_array_equal(hx[0], hs)
    np.testing.assert_array_equal(hx[1], cs)
