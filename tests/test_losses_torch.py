"""rnnkit.losses against torch.nn.functional (2.13): CrossEntropyLoss with weight, label
smoothing, ignore_index and probability targets, NLLLoss, the empty and all-ignored cases, in
float64 (tight) and float32. torch wants classes on axis 1, rnnkit on the last axis: the
torch side gets the prediction moved, and its gradient moved back."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from rnnkit.losses import (BCEWithLogitsLoss, CrossEntropyLoss, MSELoss,  # noqa: E402
                           NLLLoss)


def check(ours, theirs, rtol, atol, what):
    """ours against a torch tensor, nan where torch has nan; prints the worst difference."""
    ours = np.asarray(ours)
    ref = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs torch {ref.shape}"
    same_nan = np.isnan(ours) == np.isnan(ref)
    assert same_nan.all(), f"{what}: nan at {np.argwhere(~same_nan)[:3].tolist()}"
    ok = ~np.isnan(ref)
    diff = np.abs(ours[ok] - ref[ok]) if ok.any() else np.zeros(1)
    bad = diff > atol + rtol * np.abs(ref[ok])
    assert not bad.any(), (f"{what}: max abs diff {diff.max():.3g}, first bad at "
                           f"{np.argwhere(bad)[0].tolist()}")


def run_torch(fn_torch, z, target, reduction, up, **kw):
    """torch's loss and d(sum(up * loss))/dz for z (..., C), classes moved to axis 1."""
    zt = torch.tensor(z, requires_grad=True)
    moved = zt.movedim(-1, 1) if zt.dim() > 2 else zt
    tt = torch.tensor(target)
    if target.dtype.kind == "f" and target.ndim > 2:
        tt = tt.movedim(-1, 1)
    lt = fn_torch(moved, tt, reduction=reduction, **kw)
    (lt * torch.tensor(up, dtype=lt.dtype)).sum().backward()
    return lt, zt.grad


@pytest.mark.parametrize("dtype,rtol,atol", [(np.float64, 1e-12, 1e-14),
                                             (np.float32, 2e-5, 2e-6)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weight", [None, [0.3, 2.0, 1.0, 0.0, 1.7]])
@pytest.mark.parametrize("eps", [0.0, 0.15, 1.0])
@pytest.mark.parametrize("ignore", [-100, 1])
def test_cross_entropy_matches_torch(dtype, rtol, atol, reduction, weight, eps, ignore):
    rng = np.random.default_rng(0)
    z = (rng.standard_normal((3, 6, 5)) * 3).astype(dtype)
    t = rng.integers(0, 5, (3, 6))
    t[0, 2] = t[2, 5] = ignore
    t[1, 1] = 3                                  # weight 0 when weighted
    up = rng.standard_normal(t.shape) if reduction == "none" else np.float64(1.0)
    kw = {"ignore_index": ignore, "label_smoothing": eps}
    if weight is not None:
        kw["weight"] = torch.tensor(weight, dtype=torch.from_numpy(z).dtype)
    lt, gt = run_torch(F.cross_entropy, z, t, reduction, up, **kw)
    fn = CrossEntropyLoss(ignore_index=ignore, reduction=reduction, weight=weight,
                          label_smoothing=eps)
    check(fn(z, t), lt, rtol, atol, "loss")
    g = fn.backward(up if reduction == "none" else None)
    assert g.dtype == dtype
    check(g, gt, rtol, atol, "gradient")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weight", [None, [0.5, 1.0, 2.0, 0.25]])
@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4)])
def test_cross_entropy_probability_targets_match_torch(reduction, weight, eps, shape):
    rng = np.random.default_rng(1)
    z = rng.standard_normal(shape) * 2
    q = rng.random(shape)
    q /= q.sum(axis=-1, keepdims=True)
    up = rng.standard_normal(shape[:-1]) if reduction == "none" else np.float64(1.0)
    kw = {"label_smoothing": eps}
    if weight is not None:
        kw["weight"] = torch.tensor(weight, dtype=torch.float64)
    lt, gt = run_torch(F.cross_entropy, z, q, reduction, up, **kw)
    fn = CrossEntropyLoss(reduction=reduction, weight=weight, label_smoothing=eps)
    check(fn(z, q), lt, 1e-12, 1e-14, "loss")
    check(fn.backward(up if reduction == "none" else None), gt, 1e-12, 1e-14, "gradient")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weight", [None, [1.0, 0.0, 3.0]])
@pytest.mark.parametrize("dtype,rtol,atol", [(np.float64, 1e-13, 1e-15),
                                             (np.float32, 1e-6, 1e-7)])
def test_nll_matches_torch(reduction, weight, dtype, rtol, atol):
    rng = np.random.default_rng(2)
    x = torch.log_softmax(torch.tensor(rng.standard_normal((4, 5, 3))), -1).numpy()
    x = x.astype(dtype)
    t = rng.integers(0, 3, (4, 5))
    t[0, 0] = t[3, 4] = -100
    up = rng.standard_normal(t.shape) if reduction == "none" else np.float64(1.0)
    kw = {} if weight is None else {"weight": torch.tensor(weight, dtype=torch.from_numpy(
        x).dtype)}
    lt, gt = run_torch(F.nll_loss, x, t, reduction, up, **kw)
    fn = NLLLoss(reduction=reduction, weight=weight)
    check(fn(x, t), lt, rtol, atol, "loss")
    g = fn.backward(up if reduction == "none" else None)
    assert g.dtype == dtype
    check(g, gt, rtol, atol, "gradient")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kw", [{}, {"weight": [1.0, 2.0, 0.5]}, {"label_smoothing": 0.3},
                                {"weight": [1.0, 2.0, 0.5], "label_smoothing": 0.3}])
def test_every_target_ignored_matches_torch(reduction, kw):
    z = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]])
    t = np.array([-100, -100])
    up = np.ones(2) if reduction == "none" else np.float64(1.0)
    tkw = {k: torch.tensor(v, dtype=torch.float64) if k == "weight" else v
           for k, v in kw.items()}
    lt, gt = run_torch(F.cross_entropy, z, t, reduction, up, **tkw)
    fn = CrossEntropyLoss(reduction=reduction, **kw)
    check(fn(z, t), lt, 0, 0, "loss")
    check(fn.backward(up if reduction == "none" else None), gt, 0, 0, "gradient")
    nkw = {k: v for k, v in kw.items() if k == "weight"}       # NLLLoss has no smoothing
    lt, gt = run_torch(F.nll_loss, z, t, reduction, up,
                       **{k: v for k, v in tkw.items() if k == "weight"})
    fn = NLLLoss(reduction=reduction, **nkw)
    check(fn(z, t), lt, 0, 0, "nll loss")
    check(fn.backward(up if reduction == "none" else None), gt, 0, 0, "nll gradient")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_no_classes_matches_torch(reduction):
    z = np.zeros((3, 0))
    t = np.full(3, -100)
    lt = F.cross_entropy(torch.tensor(z), torch.tensor(t), reduction=reduction)
    check(CrossEntropyLoss(reduction=reduction)(z, t), lt, 0, 0, "cross-entropy")
    lt = F.nll_loss(torch.tensor(z), torch.tensor(t), reduction=reduction)
    check(NLLLoss(reduction=reduction)(z, t), lt, 0, 0, "nll")


def test_zero_total_weight_matches_torch():
    # Every counted target has weight 0: torch's weighted mean is 0/0 = nan, and so is the
    # gradient of the counted rows (ignored rows keep 0).
    z = np.array([[0.5, 1.0, -1.0], [2.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    t = np.array([0, -100, 0])
    w = [0.0, 1.0, 2.0]
    for fn_torch, ours in ((F.cross_entropy, CrossEntropyLoss(weight=w)),
                           (F.nll_loss, NLLLoss(weight=w))):
        lt, gt = run_torch(fn_torch, z, t, "mean", np.float64(1.0),
                           weight=torch.tensor(w, dtype=torch.float64))
        check(ours(z, t), lt, 0, 0, "loss")
        check(ours.backward(), gt, 0, 0, "gradient")


def test_ignored_rows_with_non_finite_logits_give_torchs_loss():
    # torch's loss ignores those rows too; its gradient there is nan, rnnkit's is 0 (issue 16)
    z = np.array([[np.inf, 0.0, 1.0], [0.3, -0.2, 1.5], [np.nan, 0.0, 0.0]])
    t = np.array([-100, 2, -100])
    lt, gt = run_torch(F.cross_entropy, z, t, "mean", np.float64(1.0),
                       weight=torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64),
                       label_smoothing=0.1)
    fn = CrossEntropyLoss(weight=[1.0, 2.0, 0.5], label_smoothing=0.1)
    check(fn(z, t), lt, 1e-14, 0, "loss")
    g = fn.backward()
    check(g[1], gt[1], 1e-13, 1e-16, "gradient of the counted row")
    assert np.all(g[[0, 2]] == 0)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_empty_batches_match_torch(reduction):
    e = np.zeros((0, 3))
    for ours, theirs in ((MSELoss(reduction), F.mse_loss),
                         (BCEWithLogitsLoss(reduction), F.binary_cross_entropy_with_logits)):
        lt = theirs(torch.tensor(e), torch.tensor(e), reduction=reduction)
        check(ours(e, e), lt, 0, 0, type(ours).__name__)
    lt = F.cross_entropy(torch.tensor(e), torch.zeros(0, dtype=torch.long), reduction=reduction)
    check(CrossEntropyLoss(reduction=reduction)(e, np.zeros(0, int)), lt, 0, 0, "ce")


def test_float32_mse_and_bce_match_torch():
    rng = np.random.default_rng(3)
    p = (rng.standard_normal((6, 4)) * 4).astype(np.float32)
    y = rng.random((6, 4)).astype(np.float32)
    for ours, theirs in ((MSELoss(), F.mse_loss),
                         (BCEWithLogitsLoss(pos_weight=[1.0, 2.0, 0.5, 3.0]),
                          lambda a, b: F.binary_cross_entropy_with_logits(
                              a, b, pos_weight=torch.tensor([1.0, 2.0, 0.5, 3.0])))):
        pt = torch.tensor(p, requires_grad=True)
        lt = theirs(pt, torch.tensor(y))
        lt.backward()
        check(ours(p, y), lt, 1e-6, 1e-7, type(ours).__name__)
        g = ours.backward()
        assert g.dtype == np.float32
        check(g, pt.grad, 1e-5, 1e-8, type(ours).__name__ + " gradient")
