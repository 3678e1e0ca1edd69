"""rnnkit.optim vs torch.optim and torch.nn.utils clipping on the same gradients: parameter
trajectories over 20 steps (float32 and float64) for every optimiser and its options."""
import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402

from rnnkit import optim  # noqa: E402

SHAPES = [(6, 5), (11,), (2, 3, 4)]
STEPS = 20


class P:
    def __init__(self, data, grad=None):
        self.data = data
        self.grad = grad


def report(actual, expected, rtol, atol, name):
    a = np.asarray(actual, np.float64)
    e = np.asarray(expected, np.float64)
    err = np.abs(a - e)
    bad = err > atol + rtol * np.abs(e)
    if bad.any():
        idx = np.unravel_index(np.argmax(bad), a.shape)
        raise AssertionError(f"{name}: max abs diff {err.max():.3g}, {bad.sum()} bad of "
                             f"{a.size}, first bad at {idx}: {a[idx]!r} vs {e[idx]!r}")


def trajectory(ours, theirs, dtype, steps=STEPS, seed=0, grad_scale=1.0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ps = [P(x.copy()) for x in init]
    tps = [torch.nn.Parameter(torch.from_numpy(x.copy())) for x in init]
    opt = ours(ps)
    topt = theirs(tps)
    # float32: torch's vectorised CPU kernels fuse multiply-adds, rnnkit's baseline build does
    # not, so the two differ by rounding that accumulates slowly over the steps.
    rtol, atol = (1e-12, 1e-14) if dtype == np.float64 else (1e-5, 1e-6)
    for k in range(steps):
        gs = [(grad_scale * rng.standard_normal(s)).astype(dtype) for s in SHAPES]
        for p, tp, g in zip(ps, tps, gs):
            p.grad = g.copy()
            tp.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
        for i, (p, tp) in enumerate(zip(ps, tps)):
            report(p.data, tp.detach().numpy(), rtol, atol, f"step {k} param {i}")


DTYPES = [np.float64, np.float32]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [
    dict(lr=0.05),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.5, weight_decay=0.01),
    dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1),
    dict(lr=0.05, momentum=0.8, nesterov=True, maximize=True),
], ids=str)
def test_sgd(dtype, kw):
    trajectory(lambda ps: optim.SGD(ps, **kw), lambda ps: torch.optim.SGD(ps, **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [
    dict(),
    dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, amsgrad=True),
    dict(lr=0.01, amsgrad=True, weight_decay=0.05, maximize=True),
    dict(lr=0.01, betas=(0.3, 0.4)),
], ids=str)
def test_adam(dtype, kw):
    trajectory(lambda ps: optim.Adam(ps, **kw), lambda ps: torch.optim.Adam(ps, **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [
    dict(),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, amsgrad=True, weight_decay=0.3, maximize=True),
], ids=str)
def test_adamw(dtype, kw):
    trajectory(lambda ps: optim.AdamW(ps, **kw), lambda ps: torch.optim.AdamW(ps, **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [
    dict(),
    dict(lr=0.01, alpha=0.9, weight_decay=0.1),
    dict(lr=0.01, momentum=0.9),
    dict(lr=0.01, centered=True),
    dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.01, maximize=True),
    dict(lr=0.01, alpha=0.3, centered=True),
], ids=str)
def test_rmsprop(dtype, kw):
    trajectory(lambda ps: optim.RMSprop(ps, **kw), lambda ps: torch.optim.RMSprop(ps, **kw),
               dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [
    dict(),
    dict(lr=0.1, lr_decay=0.05),
    dict(lr=0.1, weight_decay=0.1, initial_accumulator_value=0.3),
    dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, maximize=True),
], ids=str)
def test_adagrad(dtype, kw):
    trajectory(lambda ps: optim.Adagrad(ps, **kw), lambda ps: torch.optim.Adagrad(ps, **kw),
               dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_param_groups_with_own_lr(dtype):
    def ours(ps):
        return optim.Adam([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.05}], lr=0.01)

    def theirs(ps):
        return torch.optim.Adam([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.05}], lr=0.01)

    trajectory(ours, theirs, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_with_scheduler(dtype):
    """Optimiser + ExponentialLR together follow torch's pair."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal(8).astype(dtype)
    p, tp = P(x.copy()), torch.nn.Parameter(torch.from_numpy(x.copy()))
    opt, topt = optim.SGD([p], lr=0.1, momentum=0.9), torch.optim.SGD([tp], lr=0.1, momentum=0.9)
    sch = optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
    tsch = torch.optim.lr_scheduler.ExponentialLR(topt, gamma=0.9)
    for _ in range(10):
        g = rng.standard_normal(8).astype(dtype)
        p.grad, tp.grad = g.copy(), torch.from_numpy(g.copy())
        opt.step()
        topt.step()
        sch.step()
        tsch.step()
        assert sch.get_last_lr() == tsch.get_last_lr()
    report(p.data, tp.detach().numpy(), 1e-12 if dtype == np.float64 else 1e-5, 1e-7, "param")


# ------------------------------------------------------------------ 0-d, frozen, torch state

CASES = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05)),
    ("AdamW", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", CASES, ids=[c[0] for c in CASES])
def test_scalar_parameter_trajectory(name, kw, dtype):
    """A 0-d parameter (a learned temperature) beside a matrix, over 20 steps."""
    rng = np.random.default_rng(5)
    init = [np.array(rng.standard_normal(), dtype), rng.standard_normal((3, 2)).astype(dtype)]
    ps = [P(x.copy()) for x in init]
    tps = [torch.nn.Parameter(torch.from_numpy(x.copy())) for x in init]
    opt, topt = getattr(optim, name)(ps, **kw), getattr(torch.optim, name)(tps, **kw)
    rtol, atol = (1e-12, 1e-14) if dtype == np.float64 else (1e-5, 1e-6)
    for k in range(STEPS):
        for p, tp in zip(ps, tps):
            g = rng.standard_normal(p.data.shape).astype(dtype)
            p.grad, tp.grad = g, torch.from_numpy(g.copy())
        opt.step()
        topt.step()
        for i, (p, tp) in enumerate(zip(ps, tps)):
            assert p.data.shape == tuple(tp.shape)
            report(p.data, tp.detach().numpy(), rtol, atol, f"step {k} param {i}")


@pytest.mark.parametrize("name,kw", CASES, ids=[c[0] for c in CASES])
def test_frozen_parameter_like_torch_without_grad(name, kw):
    """requires_grad False here behaves as torch's frozen parameter, whose grad stays None:
    not updated, no state; the other parameters follow torch."""
    rng = np.random.default_rng(6)
    init = [rng.standard_normal(4), rng.standard_normal((2, 2))]
    ps = [P(init[0].copy()), P(init[1].copy())]
    ps[1].requires_grad = False
    tps = [torch.nn.Parameter(torch.from_numpy(x.copy())) for x in init]
    tps[1].requires_grad_(False)
    opt, topt = getattr(optim, name)(ps, **kw), getattr(torch.optim, name)(tps, **kw)
    for _ in range(5):
        g = rng.standard_normal(4)
        ps[0].grad, tps[0].grad = g, torch.from_numpy(g.copy())
        ps[1].grad = np.ones((2, 2))  # a stale gradient: ignored because frozen
        opt.step()
        topt.step()
        report(ps[0].data, tps[0].detach().numpy(), 1e-12, 1e-14, "trainable")
    assert np.array_equal(ps[1].data, init[1])
    if name != "Adagrad":  # torch's Adagrad creates state for every parameter up front
        assert sorted(opt.state_dict()["state"]) == \
            [str(k) for k in sorted(topt.state_dict()["state"])]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", CASES, ids=[c[0] for c in CASES])
def test_load_torch_state_dict_and_continue(name, kw, dtype):
    """A state dict from torch.optim (tensors, int keys, float steps, torch's flags) loads
    into the same rnnkit optimiser, and both continue along the same trajectory."""
    rng = np.random.default_rng(7)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    tps = [torch.nn.Parameter(torch.from_numpy(x.copy())) for x in init]
    topt = getattr(torch.optim, name)([{"params": tps[:1]}, {"params": tps[1:], "lr": 0.02}],
                                      **kw)
    for _ in range(5):
        for tp in tps:
            tp.grad = torch.from_numpy(rng.standard_normal(tuple(tp.shape)).astype(dtype))
        topt.step()
    ps = [P(tp.detach().numpy().copy()) for tp in tps]
    opt = getattr(optim, name)([{"params": ps[:1]}, {"params": ps[1:]}])
    opt.load_state_dict(topt.state_dict())
    assert opt.param_groups[1]["lr"] == 0.02
    for p in ps:
        assert opt.state[id(p)].get("step") == (None if name == "SGD" else 5)  # SGD: no step
    rtol, atol = (1e-12, 1e-14) if dtype == np.float64 else (1e-5, 1e-6)
    for k in range(10):
        for p, tp in zip(ps, tps):
            g = rng.standard_normal(p.data.shape).astype(dtype)
            p.grad, tp.grad = g, torch.from_numpy(g.copy())
        opt.step()
        topt.step()
        for i, (p, tp) in enumerate(zip(ps, tps)):
            report(p.data, tp.detach().numpy(), rtol, atol, f"step {k} param {i}")


def test_load_torch_state_dict_with_wrong_dtype_or_shape_is_refused():
    tp = torch.nn.Parameter(torch.zeros(3, 2, dtype=torch.float64))
    topt = torch.optim.Adam([tp])
    tp.grad = torch.ones(3, 2, dtype=torch.float64)
    topt.step()
    sd = topt.state_dict()
    opt = optim.Adam([P(np.zeros((3, 2), np.float32))])
    with pytest.raises(TypeError, match="exp_avg.*float64.*float32"):
        opt.load_state_dict(sd)
    assert opt.state == {}
    opt = optim.Adam([P(np.zeros(6))])
    with pytest.raises(ValueError, match=r"shape \(3, 2\).*\(6,\)"):
        opt.load_state_dict(sd)
    with pytest.raises(ValueError, match="unknown hyperparameter 'betas'"):
        optim.SGD([P(np.zeros((3, 2)))]).load_state_dict(sd)


# ------------------------------------------------------------------ clipping


def _pair(dtype, seed, scale):
    rng = np.random.default_rng(seed)
    grads = [(scale * rng.standard_normal(s)).astype(dtype) for s in SHAPES]
    ps = [P(np.zeros(s, dtype), g.copy()) for s, g in zip(SHAPES, grads)]
    tps = []
    for s, g in zip(SHAPES, grads):
        t = torch.nn.Parameter(torch.zeros(s, dtype=torch.from_numpy(g).dtype))
        t.grad = torch.from_numpy(g.copy())
        tps.append(t)
    return ps, tps


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.3, 1e5])
def test_clip_grad_norm(dtype, norm_type, max_norm):
    ps, tps = _pair(dtype, 1, 3.0)
    total = optim.clip_grad_norm_(ps, max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type=norm_type)
    rtol = 1e-13 if dtype == np.float64 else 2e-6
    report(total, ttotal.item(), rtol, 0, "total norm")
    for p, tp in zip(ps, tps):
        report(p.grad, tp.grad.numpy(), 2 * rtol, 1e-30, "clipped grad")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_clip_grad_norm_non_finite(bad):
    ps, tps = _pair(np.float32, 2, 1.0)
    ps[0].grad[1, 1] = bad
    tps[0].grad[1, 1] = float(bad)
    with pytest.raises(RuntimeError):
        torch.nn.utils.clip_grad_norm_(tps, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="non-finite"):
        optim.clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    total = optim.clip_grad_norm_(ps, 1.0)
    ttotal = torch.nn.utils.clip_grad_norm_(tps, 1.0)
    assert np.array_equal(total, ttotal.item(), equal_nan=True)
    for p, tp in zip(ps, tps):
        np.testing.assert_array_equal(p.grad, tp.grad.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_grad_value(dtype):
    ps, tps = _pair(dtype, 3, 2.0)
    optim.clip_grad_value_(ps, 0.7)
    torch.nn.utils.clip_grad_value_(tps, 0.7)
    for p, tp in zip(ps, tps):
        np.testing.assert_array_equal(p.grad, tp.grad.numpy())
