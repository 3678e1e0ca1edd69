"""rnnkit's CTCLoss against torch.nn.CTCLoss (2.13): values, and gradients w.r.t. the logits
of a log_softmax, for float64 (tight) and float32, every reduction, zero_infinity on and off,
padded and concatenated targets, repeated labels and impossible alignments.

Why logits: torch's native ctc_loss returns, as d(loss)/d(log_probs), exp(log_probs) plus the
true gradient (its value after a log_softmax); rnnkit returns the true one. The two agree once
chained through log_softmax, so both sides apply one: torch by autograd, rnnkit by a numpy
log_softmax backward (g - softmax · Σ g)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rnnkit.ctc import CTCLoss  # noqa: E402
from reference_ctc import check as reference_check, log_softmax  # noqa: E402


def check(ours, theirs, rtol, atol, what):
    """ours against torch's (reference_ctc.check, with torch's tensor as the reference)."""
    ref = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    reference_check(ours, ref, rtol, atol, what + " (vs torch)")


def log_softmax_backward(g, logp):
    """d/dz of Σ g · log_softmax(z), given logp = log_softmax(z)."""
    return g - np.exp(logp) * g.sum(axis=-1, keepdims=True)


def case(seed, dtype, blank):
    """Logits (T, N, C) and targets with repeats (few classes), empty targets, lengths 0 and
    short inputs that make some alignments impossible."""
    rng = np.random.default_rng(seed)
    steps, n, classes, width = 12, 7, 5, 6
    z = (rng.standard_normal((steps, n, classes)) * 2).astype(dtype)
    labels = [k for k in range(classes) if k != blank]
    il = np.array([12, 12, 9, 3, 0, 5, 12])
    tl = np.array([6, 4, 3, 3, 0, 4, 0])
    targets = np.full((n, width), blank, np.int64)  # torch reads no padding; any value will do
    for i in range(n):
        targets[i, :tl[i]] = rng.choice(labels, tl[i])
    targets[1, :4] = labels[0]  # [a, a, a, a]: needs 7 steps, has 12
    targets[3, :3] = labels[1]  # [b, b, b] in 3 steps: impossible
    return z, targets, il, tl


def run_torch(z, targets, il, tl, blank, reduction, zero_infinity, up):
    zt = torch.tensor(z, requires_grad=True)
    fn = torch.nn.CTCLoss(blank=blank, reduction=reduction, zero_infinity=zero_infinity)
    loss = fn(zt.log_softmax(-1), torch.tensor(targets), torch.tensor(il), torch.tensor(tl))
    (loss * torch.tensor(up, dtype=loss.dtype)).sum().backward()
    return loss, zt.grad


@pytest.mark.parametrize("dtype, rtol, atol", [(np.float64, 1e-10, 1e-12),
                                               (np.float32, 2e-5, 2e-6)])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("layout", ["padded", "concatenated"])
def test_matches_torch(dtype, rtol, atol, reduction, zero_infinity, layout):
    blank = 0 if layout == "padded" else 3
    seed = ["none", "sum", "mean"].index(reduction) * 2 + zero_infinity
    z, targets, il, tl = case(seed, dtype, blank)
    up = np.linspace(0.5, 1.5, len(il)) if reduction == "none" else np.array(0.75)
    lt, gt = run_torch(z, targets, il, tl, blank, reduction, zero_infinity, up)
    if layout == "concatenated":
        targets = np.concatenate([targets[i, :tl[i]] for i in range(len(tl))])
    logp = log_softmax(z)
    fn = CTCLoss(blank=blank, reduction=reduction, zero_infinity=zero_infinity)
    value = fn(logp, targets, il, tl)
    g = fn.backward(up if reduction == "none" else float(up))
    assert g.dtype == dtype
    check(value, lt, rtol, atol, "loss")
    check(log_softmax_backward(g.astype(np.float64), logp.astype(np.float64)), gt, rtol,
          atol, "logits gradient")
    if reduction == "none":  # sample 3 is impossible: the case covers what it should
        assert np.isinf(value[3]) != zero_infinity


@pytest.mark.parametrize("seed", range(3))
def test_random_cases_match_torch(seed):
    rng = np.random.default_rng(100 + seed)
    steps, n, classes = 20, 6, 4
    z = rng.standard_normal((steps, n, classes)) * 3
    il = rng.integers(0, steps + 1, n)
    tl = rng.integers(0, 9, n)
    targets = rng.integers(1, classes, (n, 8))
    for reduction in ("none", "sum", "mean"):
        up = np.ones(n) if reduction == "none" else np.array(1.0)
        lt, gt = run_torch(z, targets, il, tl, 0, reduction, True, up)
        logp = log_softmax(z)
        fn = CTCLoss(reduction=reduction, zero_infinity=True)
        check(fn(logp, targets, il, tl), lt, 1e-10, 1e-12, f"{reduction} loss")
        check(log_softmax_backward(fn.backward(), logp), gt, 1e-10, 1e-12,
              f"{reduction} logits gradient")


def test_unbatched_matches_torch():
    rng = np.random.default_rng(7)
    z = rng.standard_normal((9, 4))
    target = np.array([1, 1, 3])
    zt = torch.tensor(z, requires_grad=True)
    lt = torch.nn.CTCLoss(reduction="none")(zt.log_softmax(-1), torch.tensor(target),
                                              torch.tensor(9), torch.tensor(3))
    lt.backward()
    logp = log_softmax(z)
    fn = CTCLoss(reduction="none")
    value = fn(logp, target, 9, 3)
    assert value.shape == tuple(lt.shape) == ()
    check(value, lt, 1e-12, 0, "loss")
    check(log_softmax_backward(fn.backward(), logp), zt.grad, 1e-10, 1e-12, "logits gradient")
