"""The schedules added after the first four (MultiStepLR, LambdaLR, LinearLR,
CosineAnnealingWarmRestarts, OneCycleLR, SequentialLR) vs torch.optim.lr_scheduler: the same
lr (and, for OneCycleLR, momentum / beta1) at every step, two parameter groups, 30-60 steps,
and the same sequence after a state_dict round trip in the middle."""
import json

import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402

from rnnkit import optim  # noqa: E402
from rnnkit.optim import lr_scheduler as sched  # noqa: E402

LRS = (0.1, 0.037)


class P:
    def __init__(self, data, grad=None):
        self.data = data
        self.grad = grad


def pair(kind="sgd", **kw):
    """Our optimiser and torch's, two groups with their own lr, same options."""
    ours = [{"params": [P(np.zeros(3))], "lr": lr} for lr in LRS]
    theirs = [{"params": [torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))], "lr": lr}
              for lr in LRS]
    if kind == "sgd":
        return optim.SGD(ours, lr=LRS[0], **kw), torch.optim.SGD(theirs, lr=LRS[0], **kw)
    return optim.Adam(ours, lr=LRS[0], **kw), torch.optim.Adam(theirs, lr=LRS[0], **kw)


def groups_state(opt, keys):
    return [[tuple(g[k]) if isinstance(g[k], (list, tuple)) else g[k] for k in keys]
            for g in opt.param_groups]


def compare(opt, topt, s, ts, steps, keys=("lr",), tol=0.0):
    """Step both side by side; lrs exactly equal (same float arithmetic) unless `tol`."""
    def check(k):
        ours, theirs = groups_state(opt, keys), groups_state(topt, keys)
        if tol == 0.0:
            assert ours == theirs, f"step {k}: {ours} vs {theirs}"
        else:
            np.testing.assert_allclose(np.array(ours, float), np.array(theirs, float),
                                       rtol=tol, err_msg=f"step {k}")
        assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=tol or 1e-300, abs=0)

    check(0)
    for k in range(1, steps + 1):
        opt.step()
        topt.step()
        s.step()
        ts.step()
        check(k)


CASES = {
    "MultiStepLR": (dict(milestones=[3, 7, 7, 12], gamma=0.5), 20),
    "MultiStepLR-unsorted": (dict(milestones=[9, 2], gamma=0.3), 12),
    "LinearLR-default": (dict(), 10),
    "LinearLR-warmup": (dict(start_factor=0.25, end_factor=1.0, total_iters=4), 10),
    "LinearLR-decay": (dict(start_factor=1.0, end_factor=0.1, total_iters=7), 12),
    "CosineAnnealingWarmRestarts": (dict(T_0=5), 40),
    "CosineAnnealingWarmRestarts-mult": (dict(T_0=3, T_mult=2, eta_min=1e-4), 50),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_schedule_vs_torch(case):
    name = case.split("-")[0]
    kw, steps = CASES[case]
    opt, topt = pair()
    s = getattr(sched, name)(opt, **kw)
    ts = getattr(torch.optim.lr_scheduler, name)(topt, **kw)
    compare(opt, topt, s, ts, steps)


@pytest.mark.parametrize("per_group", [False, True])
def test_lambda_lr_vs_torch(per_group):
    fns = [lambda e: 0.95 ** e, lambda e: max(0.0, 1 - e / 10)]
    arg = fns if per_group else (lambda e: 1 / (1 + e))
    opt, topt = pair()
    compare(opt, topt, sched.LambdaLR(opt, arg), torch.optim.lr_scheduler.LambdaLR(topt, arg),
            15)


def test_warm_restarts_fractional_epochs_vs_torch():
    """step(epoch) with per-batch fractions of an epoch, as torch's docs show."""
    opt, topt = pair()
    s = sched.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2, eta_min=0.001)
    ts = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(topt, T_0=2, T_mult=2,
                                                              eta_min=0.001)
    for epoch in range(12):
        for i in range(4):
            opt.step()
            topt.step()
            s.step(epoch + i / 4)
            ts.step(epoch + i / 4)
            assert [g["lr"] for g in opt.param_groups] == \
                [g["lr"] for g in topt.param_groups], (epoch, i)
            assert s.T_cur == ts.T_cur and s.T_i == ts.T_i


ONE_CYCLE = {
    "cos": dict(max_lr=0.5, total_steps=30),
    "linear": dict(max_lr=[0.5, 0.2], total_steps=30, anneal_strategy="linear"),
    "three-phase": dict(max_lr=0.4, total_steps=40, three_phase=True, pct_start=0.25),
    "epochs": dict(max_lr=0.3, epochs=4, steps_per_epoch=7, div_factor=10.0,
                   final_div_factor=100.0, pct_start=0.4),
    "momentum-bounds": dict(max_lr=0.3, total_steps=25, base_momentum=[0.8, 0.7],
                            max_momentum=0.9),
    "no-momentum": dict(max_lr=0.3, total_steps=25, cycle_momentum=False),
}


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("case", sorted(ONE_CYCLE))
def test_one_cycle_vs_torch(case, kind):
    kw = ONE_CYCLE[case]
    opt, topt = pair(kind, **({"momentum": 0.9} if kind == "sgd" else {}))
    s = sched.OneCycleLR(opt, **kw)
    ts = torch.optim.lr_scheduler.OneCycleLR(topt, **kw)
    keys = ("lr", "initial_lr", "max_lr", "min_lr")
    keys += ("momentum",) if kind == "sgd" else ("betas",)
    total = s.total_steps
    # Every step the schedule allows: last_epoch runs up to total_steps.
    compare(opt, topt, s, ts, total, keys=keys)
    with pytest.raises(ValueError, match="Tried to step"):
        ts.step()
    with pytest.raises(ValueError, match="Tried to step"):
        s.step()


SEQUENCES = {
    "warmup-cosine": (lambda m, o: [m.LinearLR(o, start_factor=0.1, total_iters=5),
                                    m.CosineAnnealingLR(o, T_max=20, eta_min=0.001)], [5], 40),
    "three": (lambda m, o: [m.ExponentialLR(o, gamma=0.9), m.StepLR(o, 2, gamma=0.5),
                            m.MultiStepLR(o, [3, 4], gamma=0.1)], [3, 9], 20),
    "lambda-restarts": (lambda m, o: [m.LambdaLR(o, lambda e: (e + 1) / 4),
                                      m.CosineAnnealingWarmRestarts(o, T_0=4)], [4], 25),
    "same-milestone": (lambda m, o: [m.LinearLR(o, total_iters=2), m.ExponentialLR(o, 0.5),
                                     m.StepLR(o, 3)], [3, 3], 12),
}


@pytest.mark.parametrize("case", sorted(SEQUENCES))
def test_sequential_vs_torch(case):
    make, milestones, steps = SEQUENCES[case]
    opt, topt = pair()
    s = sched.SequentialLR(opt, make(sched, opt), milestones)
    ts = torch.optim.lr_scheduler.SequentialLR(topt, make(torch.optim.lr_scheduler, topt),
                                               milestones)
    compare(opt, topt, s, ts, steps)


RESUMABLE = {
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, [2, 6, 6], gamma=0.5),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.2, total_iters=8),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lambda e: 0.9 ** e),
    "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, 3, 2),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=0.4, total_steps=20),
    "SequentialLR": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, total_iters=3), m.CosineAnnealingLR(o, T_max=9)], [4]),
}


@pytest.mark.parametrize("name", sorted(RESUMABLE))
def test_resume_from_state_dict_follows_torch(name):
    """Stop after 6 steps, save optimiser and schedule (JSON, as a trainer checkpoint does),
    rebuild both, load, continue: the rest of the sequence is torch's uninterrupted one."""
    make = RESUMABLE[name]
    opt, topt = pair("sgd", momentum=0.9)
    s, ts = make(sched, opt), make(torch.optim.lr_scheduler, topt)
    for _ in range(6):
        opt.step()
        topt.step()
        s.step()
        ts.step()
    saved_opt = opt.state_dict()
    saved = json.loads(json.dumps(s.state_dict()))
    opt2, _ = pair("sgd", momentum=0.9)
    s2 = make(sched, opt2)          # built fresh (it writes its epoch-0 lr) ...
    opt2.load_state_dict(saved_opt)  # ... then the checkpoint overrides both
    s2.load_state_dict(saved)
    compare(opt2, topt, s2, ts, 10)
