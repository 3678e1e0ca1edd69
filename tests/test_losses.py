"""rnnkit.losses: values against direct numpy formulas, gradients by finite differences in
float64, stability at extreme logits, ignore_index and reductions, errors."""

import numpy as np
import pytest

from helpers import loss_fd_check as fd_check

from rnnkit.losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss




def naive_ce(z, t, ignore=-100):
    """Per-target cross-entropy the obvious way (float64, moderate logits only)."""
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    out = np.zeros(t.shape)
    for idx in np.ndindex(t.shape):
        if t[idx] != ignore:
            out[idx] = -np.log(p[idx + (t[idx],)])
    return out


@pytest.mark.parametrize("shape", [(6, 4), (3, 5, 4)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_value_and_gradient(shape, reduction):
    rng = np.random.default_rng(0)
    z = rng.standard_normal(shape)
    t = rng.integers(0, shape[-1], shape[:-1])
    t.flat[1] = -100
    t.flat[3] = -100
    fn = CrossEntropyLoss(reduction=reduction)
    loss = fn(z, t)
    assert isinstance(loss, float)
    per = naive_ce(z, t)
    n_valid = np.sum(t != -100)
    expected = per.sum() / n_valid if reduction == "mean" else per.sum()
    assert loss == pytest.approx(expected, rel=1e-12)
    fd_check(fn, z, t, rng)
    fn(z, t)
    g = fn.backward()
    assert np.all(g.reshape(-1, shape[-1])[[1, 3]] == 0), "ignored targets get no gradient"


def test_cross_entropy_none_reduction_ignore_index_and_stability():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((4, 3))
    t = np.array([0, 2, 1, 7])
    fn = CrossEntropyLoss(ignore_index=7, reduction="none")
    per = fn(z, t)
    np.testing.assert_allclose(per, naive_ce(z, t, ignore=7), rtol=1e-12)
    w = rng.standard_normal(4)
    g = fn.backward(w)
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    expected = (p - np.eye(3)[np.where(t == 7, 0, t)]) * w[:, None]
    expected[3] = 0
    np.testing.assert_allclose(g, expected, rtol=1e-12, atol=1e-15)
    # huge logits: log-sum-exp keeps it finite and exact
    big = np.array([[1000.0, 0.0, -1000.0], [-5000.0, 5000.0, 0.0]], np.float32)
    fn = CrossEntropyLoss()
    assert fn(big, np.array([0, 0])) == pytest.approx(10000.0 / 2, rel=1e-6)
    g = fn.backward()
    assert g.dtype == np.float32 and np.all(np.isfinite(g))
    np.testing.assert_allclose(g, [[0, 0, 0], [-0.5, 0.5, 0]], atol=1e-6)
    # everything ignored: as torch, the mean over no targets is nan (0/0), the sum is 0, and
    # the gradient is 0 either way
    fn = CrossEntropyLoss()
    assert np.isnan(fn(z[:2], np.array([-100, -100])))
    assert fn.count(z[:2], np.array([-100, -100])) == 0
    assert np.all(fn.backward() == 0)
    fn = CrossEntropyLoss(reduction="sum")
    assert fn(z[:2], np.array([-100, -100])) == 0.0
    assert np.all(fn.backward() == 0)


def test_cross_entropy_errors():
    fn = CrossEntropyLoss()
    with pytest.raises(ValueError, match=r"target has shape \(3,\)"):
        fn(np.zeros((2, 4)), np.zeros(3, int))
    with pytest.raises(ValueError, match="out of range"):
        fn(np.zeros((2, 4)), np.array([0, 4]))
    with pytest.raises(TypeError, match="integer"):
        fn(np.zeros((2, 4)), np.zeros(2))
    with pytest.raises(RuntimeError, match="before the loss was computed"):
        CrossEntropyLoss().backward()
    with pytest.raises(ValueError, match="reduction"):
        CrossEntropyLoss(reduction="avg")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse(reduction):
    rng = np.random.default_rng(2)
    p, y = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 4, 2))
    fn = MSELoss(reduction)
    sq = (p - y) ** 2
    assert fn(p, y) == pytest.approx(sq.mean() if reduction == "mean" else sq.sum(), rel=1e-12)
    fd_check(fn, p, y, rng)
    fn(p.astype(np.float32), y)
    assert fn.backward().dtype == np.float32
    np.testing.assert_allclose(MSELoss("none")(p, y), sq, rtol=1e-12)
    with pytest.raises(ValueError, match="target has shape"):
        fn(p, y[0])


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("pos_weight", [None, [0.5, 2.0, 3.0]])
def test_bce_with_logits(reduction, pos_weight):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 3)) * 3
    y = rng.random((5, 3))
    fn = BCEWithLogitsLoss(reduction, pos_weight=pos_weight)
    w = 1.0 if pos_weight is None else np.asarray(pos_weight)
    s = 1 / (1 + np.exp(-x))
    per = -(w * y * np.log(s) + (1 - y) * np.log(1 - s))
    assert fn(x, y) == pytest.approx(per.mean() if reduction == "mean" else per.sum(),
                                     rel=1e-12)
    fd_check(fn, x, y, rng)


def test_bce_stable_at_extreme_logits():
    x = np.array([-800.0, -40.0, 0.0, 40.0, 800.0], np.float32)
    y = np.array([1.0, 0.0, 1.0, 1.0, 0.0], np.float32)
    fn = BCEWithLogitsLoss("none")
    per = fn(x, y)
    np.testing.assert_allclose(per, [800.0, 4.248354e-18, np.log(2), 4.248354e-18, 800.0],
                               rtol=1e-5)
    g = fn.backward()
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, [-1.0, 4.248354e-18, -0.5, -4.248354e-18, 1.0],
                               rtol=1e-5, atol=1e-30)
