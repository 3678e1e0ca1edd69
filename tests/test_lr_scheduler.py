"""Learning-rate schedules: lr sequences vs their closed forms, vs torch's schedulers (where
torch is installed), ReduceLROnPlateau's rules, state_dict round trips and argument checks."""
import json
import math

import numpy as np
import pytest

from rnnkit import optim
from rnnkit.optim import lr_scheduler as sched


class P:
    def __init__(self, data, grad=None):
        self.data = data
        self.grad = grad


def make_opt(lrs=(0.1,)):
    groups = [{"params": [P(np.zeros(3))], "lr": lr} for lr in lrs]
    return optim.SGD(groups, lr=lrs[0])


def lr_sequence(s, opt, n):
    seq = [[g["lr"] for g in opt.param_groups]]
    for _ in range(n):
        opt.step()
        s.step()
        seq.append([g["lr"] for g in opt.param_groups])
        assert s.get_last_lr() == seq[-1]
    return seq


@pytest.mark.parametrize("step_size,gamma", [(1, 0.5), (3, 0.1), (4, 0.9)])
def test_step_lr_closed_form(step_size, gamma):
    opt = make_opt((0.1, 0.02))
    seq = lr_sequence(sched.StepLR(opt, step_size, gamma), opt, 20)
    for t, lrs in enumerate(seq):
        for base, lr in zip((0.1, 0.02), lrs):
            assert lr == pytest.approx(base * gamma ** (t // step_size), rel=1e-12)


@pytest.mark.parametrize("gamma", [0.5, 0.95])
def test_exponential_lr_closed_form(gamma):
    opt = make_opt((0.1, 0.3))
    seq = lr_sequence(sched.ExponentialLR(opt, gamma), opt, 30)
    for t, lrs in enumerate(seq):
        for base, lr in zip((0.1, 0.3), lrs):
            assert lr == pytest.approx(base * gamma ** t, rel=1e-12)


@pytest.mark.parametrize("T_max,eta_min", [(10, 0.0), (7, 0.001), (1, 0.01)])
def test_cosine_annealing_closed_form(T_max, eta_min):
    opt = make_opt((0.1, 0.05))
    seq = lr_sequence(sched.CosineAnnealingLR(opt, T_max, eta_min), opt, 3 * T_max + 2)
    for t, lrs in enumerate(seq):
        for base, lr in zip((0.1, 0.05), lrs):
            expected = eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / T_max)) / 2
            assert lr == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert seq[T_max][0] == pytest.approx(eta_min, abs=1e-15)


def test_scheduler_records_initial_lr_and_resumes():
    opt = make_opt((0.1,))
    s = sched.StepLR(opt, 2, 0.5)
    assert opt.param_groups[0]["initial_lr"] == 0.1 and s.base_lrs == [0.1]
    assert s.last_epoch == 0
    lr_sequence(s, opt, 5)
    state = json.loads(json.dumps(s.state_dict()))
    opt_state = opt.state_dict()
    more = lr_sequence(s, opt, 5)

    opt2 = make_opt((0.1,))
    opt2.load_state_dict(opt_state)
    s2 = sched.StepLR(opt2, 2, 0.5, last_epoch=4)
    s2.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == more[0][0]
    assert lr_sequence(s2, opt2, 5) == more


def test_resume_without_initial_lr_raises():
    with pytest.raises(KeyError, match="initial_lr"):
        sched.ExponentialLR(make_opt(), 0.9, last_epoch=3)


def test_plateau_min_mode_patience_cooldown_min_lr():
    opt = make_opt((1.0, 0.5))
    s = sched.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2, cooldown=1,
                                min_lr=[0.1, 0.2])
    lrs = []
    for m in [10, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]:
        s.step(m)
        lrs.append([g["lr"] for g in opt.param_groups])
    # Epoch 1 sets best=10, 2 improves (best 9); 3,4,5 are bad -> reduce at 5; one cooldown
    # epoch (6) does not count; 7,8,9 bad -> reduce at 9; 10 cooldown; 11,12,13 -> reduce at 13.
    assert [lr[0] for lr in lrs] == [1, 1, 1, 1, .5, .5, .5, .5, .25, .25, .25, .25, .125]
    assert [lr[1] for lr in lrs] == [.5, .5, .5, .5, .25, .25, .25, .25, .2, .2, .2, .2, .2]
    assert s.get_last_lr() == lrs[-1]


def test_plateau_thresholds():
    opt = make_opt((1.0,))
    s = sched.ReduceLROnPlateau(opt, mode="max", factor=0.1, patience=0, threshold=0.1,
                                threshold_mode="rel")
    s.step(1.0)
    s.step(1.05)  # not > 1.0 * 1.1: bad, patience 0 -> reduce
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    s.step(1.2)  # > 1.1: improvement
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    opt = make_opt((1.0,))
    s = sched.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=0, threshold=0.5,
                                threshold_mode="abs")
    s.step(2.0)
    s.step(1.6)  # not < 2.0 - 0.5
    assert opt.param_groups[0]["lr"] == 0.5
    s.step(1.0)  # < 1.5
    assert opt.param_groups[0]["lr"] == 0.5


def test_plateau_eps_blocks_tiny_reductions():
    opt = make_opt((1e-9,))
    s = sched.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    s.step(1.0)
    s.step(2.0)
    assert opt.param_groups[0]["lr"] == 1e-9


def test_plateau_state_dict_round_trip():
    opt = make_opt((1.0,))
    s = sched.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    for m in [3, 2, 2]:
        s.step(m)
    state = json.loads(json.dumps(s.state_dict()))
    opt2 = make_opt((1.0,))
    opt2.load_state_dict(opt.state_dict())
    s2 = sched.ReduceLROnPlateau(opt2)
    s2.load_state_dict(state)
    for m in [2, 2, 2, 1, 1, 1]:
        s.step(m)
        s2.step(m)
        assert opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"]
    assert s2.best == s.best and s2.patience == 1


@pytest.mark.parametrize("make,exc,match", [
    (lambda o: sched.StepLR(o, 0), ValueError, "step_size"),
    (lambda o: sched.StepLR(o, 2.5), TypeError, "step_size"),
    (lambda o: sched.ExponentialLR(o, -0.1), ValueError, "gamma"),
    (lambda o: sched.CosineAnnealingLR(o, 0), ValueError, "T_max"),
    (lambda o: sched.CosineAnnealingLR(o, 5, eta_min=-1), ValueError, "eta_min"),
    (lambda o: sched.ReduceLROnPlateau(o, factor=1.0), ValueError, "factor"),
    (lambda o: sched.ReduceLROnPlateau(o, mode="up"), ValueError, "mode"),
    (lambda o: sched.ReduceLROnPlateau(o, threshold_mode="x"), ValueError, "threshold_mode"),
    (lambda o: sched.ReduceLROnPlateau(o, min_lr=[0, 0]), ValueError, "min_lrs"),
    (lambda o: sched.StepLR(object(), 2), TypeError, "Optimizer"),
])
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make(make_opt())


# ------------------------------------------------------------------ vs torch


def _torch_pair(lrs):
    torch = pytest.importorskip("torch")
    groups = [{"params": [torch.nn.Parameter(torch.zeros(3))], "lr": lr} for lr in lrs]
    return torch, torch.optim.SGD(groups, lr=lrs[0])


@pytest.mark.parametrize("name,args", [
    ("StepLR", dict(step_size=3, gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.93)),
    ("CosineAnnealingLR", dict(T_max=9, eta_min=0.001)),
    ("CosineAnnealingLR", dict(T_max=4)),
])
def test_chainable_vs_torch(name, args):
    lrs = (0.1, 0.037)
    torch, topt = _torch_pair(lrs)
    opt = make_opt(lrs)
    s = getattr(sched, name)(opt, **args)
    ts = getattr(torch.optim.lr_scheduler, name)(topt, **args)
    assert s.get_last_lr() == ts.get_last_lr()
    for _ in range(30):
        opt.step()
        topt.step()
        s.step()
        ts.step()
        assert s.get_last_lr() == ts.get_last_lr()  # same float arithmetic: exact
        assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in topt.param_groups]


def test_plateau_vs_torch():
    lrs = (1.0, 0.3)
    torch, topt = _torch_pair(lrs)
    opt = make_opt(lrs)
    kw = dict(mode="min", factor=0.3, patience=2, threshold=0.01, cooldown=2, min_lr=0.01)
    s = sched.ReduceLROnPlateau(opt, **kw)
    ts = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw)
    rng = np.random.default_rng(0)
    metric = 10.0
    for _ in range(60):
        metric = metric * rng.uniform(0.97, 1.02)
        s.step(metric)
        ts.step(metric)
        assert s.get_last_lr() == ts.get_last_lr()
        assert s.num_bad_epochs == ts.num_bad_epochs and s.best == ts.best
    assert opt.param_groups[0]["lr"] < 1.0  # the walk did plateau: reductions were exercised
