"""CrossEntropyLoss's compiled path (cpp/losses/cross_entropy.h), taken for class targets on
float32/float64 logits: loss and gradient against a plain float64 numpy reference written from
the formula (itself checked by finite differences), on every SIMD level, row lengths around the
vector widths, weights, label smoothing, ignore_index, every reduction, upstream gradients and
non-finite logits."""
from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit import losses

TOL = {np.float32: (2e-5, 1e-6), np.float64: (1e-12, 1e-14)}


def reference(z, t, ignore, w, eps, reduction):
    """float64 loss (reduced) and d(loss)/dz, straight from torch's documented formula."""
    z = np.asarray(z, np.float64).reshape(-1, z.shape[-1])
    t = np.asarray(t).reshape(-1)
    n, c = z.shape
    w = np.ones(c) if w is None else np.asarray(w, np.float64)
    valid = t != ignore
    m = z.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    logp = z - lse
    p = np.exp(logp)
    per = np.zeros(n)
    grad = np.zeros_like(z)
    for i in np.flatnonzero(valid):
        a = (eps / c) * w.copy()
        a[t[i]] += (1 - eps) * w[t[i]]
        per[i] = -(a * logp[i]).sum()
        grad[i] = p[i] * a.sum() - a
    denom = w[t[valid]].sum()
    if reduction == "mean":
        return per.sum() / denom, grad / denom
    if reduction == "sum":
        return per.sum(), grad
    return per, grad


def test_reference_matches_finite_differences():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4, 6))
    t = np.array([1, 5, -100, 0])
    w = rng.random(6) + 0.5
    loss, grad = reference(z, t, -100, w, 0.2, "mean")
    num = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        d = np.zeros_like(z)
        d[idx] = 1e-6
        num[idx] = (reference(z + d, t, -100, w, 0.2, "mean")[0] -
                    reference(z - d, t, -100, w, 0.2, "mean")[0]) / 2e-6
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [1, 5, 8, 16, 17, 33, 1000])
@pytest.mark.parametrize("weighted,eps", [(False, 0.0), (True, 0.0), (False, 0.15),
                                          (True, 0.3)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_fused_matches_reference(simd, dtype, c, weighted, eps, reduction):
    rng = np.random.default_rng(c)
    z = (rng.standard_normal((3, 7, c)) * 4).astype(dtype)
    t = rng.integers(0, c, (3, 7))
    t[0, 2] = t[2, 6] = -100
    w = (rng.random(c) + 0.25) if weighted else None
    ce = losses.CrossEntropyLoss(reduction=reduction, weight=w, label_smoothing=eps)
    got = ce(z, t)
    grad = ce.backward()
    want, want_grad = reference(z, t, -100, w, eps, reduction)
    rtol, atol = TOL[dtype]
    assert grad.dtype == dtype and grad.shape == z.shape
    np.testing.assert_allclose(np.asarray(got, np.float64).reshape(-1) if reduction == "none"
                               else got, want, rtol=rtol, atol=atol)
    np.testing.assert_allclose(grad.reshape(-1, c), want_grad, rtol=rtol, atol=atol)
    assert not grad[0, 2].any() and not grad[2, 6].any()


def test_non_finite_logits(simd):
    z = np.zeros((6, 20), np.float32)
    z[0, 3:] = -np.inf          # masked classes: a finite loss, zero gradient there
    z[1, 4] = np.inf            # +inf: nan, as torch
    z[2, :] = -np.inf           # only -inf: nan
    z[3, 7] = np.nan            # nan: nan
    z[4, :] = np.nan            # ignored: exactly 0 whatever the logits
    z[5, 19] = 1e30             # huge but finite: no overflow
    t = np.array([1, 0, 0, 0, -100, 19])
    ce = losses.CrossEntropyLoss(reduction="none")
    per = ce(z, t)
    grad = ce.backward()
    np.testing.assert_allclose(per[0], np.log(3.0), rtol=1e-6)
    assert np.all(grad[0, 3:] == 0) and np.isfinite(grad[0]).all()
    assert np.isnan(per[1:4]).all() and np.isnan(grad[1:4]).all()
    assert per[4] == 0 and not grad[4].any()
    assert per[5] == 0 and np.isfinite(grad[5]).all()


@pytest.mark.parametrize("dloss", [2.5, np.inf])
def test_upstream_gradient_leaves_ignored_rows_zero(dloss):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((5, 9)).astype(np.float32)
    t = np.array([1, -100, 3, 8, -100])
    ce = losses.CrossEntropyLoss(reduction="sum")
    ce(z, t)
    grad = ce.backward(dloss)
    _, want = reference(z, t, -100, None, 0.0, "sum")
    assert not grad[[1, 4]].any()
    if np.isfinite(dloss):
        np.testing.assert_allclose(grad, dloss * want, rtol=2e-5, atol=1e-6)
    none = losses.CrossEntropyLoss(reduction="none")
    none(z, t)
    up = np.array([1.0, np.nan, 2.0, -1.0, np.inf])
    g = none.backward(up)
    assert not g[[1, 4]].any()
    np.testing.assert_allclose(g[[0, 2, 3]], (up[[0, 2, 3], None] * want[[0, 2, 3]]),
                               rtol=2e-5, atol=1e-6)


def test_layouts_and_threads_give_the_same_bits():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((300, 12, 50)).astype(np.float32)   # enough rows for 2 threads
    t = rng.integers(0, 50, (300, 12))
    results = []
    before = rnnkit.get_num_threads()
    try:
        for threads, arr in ((1, z), (2, z), (2, np.asfortranarray(z))):
            rnnkit.set_num_threads(threads)
            ce = losses.CrossEntropyLoss()
            results.append((ce(arr, t), ce.backward()))
    finally:
        rnnkit.set_num_threads(before)
    for loss, grad in results[1:]:
        assert loss == results[0][0] and np.array_equal(grad, results[0][1])


def test_empty_and_all_ignored():
    ce = losses.CrossEntropyLoss()
    z = np.ones((3, 4), np.float32)
    assert np.isnan(ce(z, np.full(3, -100)))
    assert not ce.backward().any()
    assert np.isnan(ce(np.ones((0, 4), np.float32), np.zeros(0, int)))
    assert ce.backward().shape == (0, 4)
