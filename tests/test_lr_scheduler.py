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


# ------------------------------------------------------------------ the schedules torch users
# reach for: MultiStepLR, LinearLR, LambdaLR, CosineAnnealingWarmRestarts, OneCycleLR,
# SequentialLR. Expected values are worked out by hand from each schedule's definition.


def lrs_of(s, opt, n, group=0):
    return [row[group] for row in lr_sequence(s, opt, n)]


def test_multistep_lr_by_hand():
    opt = make_opt((1.0, 0.5))
    seq = lr_sequence(sched.MultiStepLR(opt, milestones=[5, 2], gamma=0.1), opt, 6)
    expected = [1, 1, 0.1, 0.1, 0.1, 0.01, 0.01]
    assert [r[0] for r in seq] == pytest.approx(expected, rel=1e-12)
    assert [r[1] for r in seq] == pytest.approx([e / 2 for e in expected], rel=1e-12)
    opt = make_opt((1.0,))  # a repeated milestone applies gamma once per occurrence
    assert lrs_of(sched.MultiStepLR(opt, [3, 3], gamma=0.5), opt, 4) == \
        pytest.approx([1, 1, 1, 0.25, 0.25], rel=1e-12)


def test_linear_lr_by_hand():
    opt = make_opt((0.1,))
    # factor 0.5 -> 1 over 4 epochs: 0.5, 0.625, 0.75, 0.875, 1, then 1.
    assert lrs_of(sched.LinearLR(opt, start_factor=0.5, total_iters=4), opt, 6) == \
        pytest.approx([0.05, 0.0625, 0.075, 0.0875, 0.1, 0.1, 0.1], rel=1e-12)
    opt = make_opt((1.0,))
    assert lrs_of(sched.LinearLR(opt, 1.0, 0.0, total_iters=2), opt, 3) == \
        pytest.approx([1.0, 0.5, 0.0, 0.0], abs=1e-15)


def test_lambda_lr_by_hand_and_per_group():
    opt = make_opt((0.2, 1.0))
    s = sched.LambdaLR(opt, [lambda e: 0.5 ** e, lambda e: e + 1])
    seq = lr_sequence(s, opt, 3)
    assert [r[0] for r in seq] == pytest.approx([0.2, 0.1, 0.05, 0.025], rel=1e-12)
    assert [r[1] for r in seq] == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("bad,exc,match", [
    (lambda e: "x", TypeError, r"lr_lambda\[0\]\(0\) returned str"),
    (lambda e: -1.0, ValueError, ">= 0"),
    (lambda e: float("nan"), ValueError, "finite"),
    (lambda e: 1.0 if e < 2 else float("inf"), ValueError, r"lr_lambda\[0\]\(2\)"),
])
def test_lambda_lr_bad_factor(bad, exc, match):
    opt = make_opt()
    with pytest.raises(exc, match=match):
        s = sched.LambdaLR(opt, bad)
        s.step()
        s.step()


def test_lambda_lr_state_saves_callable_objects_not_functions():
    class Warmup:
        def __init__(self):
            self.scale = 2.0

        def __call__(self, e):
            return self.scale * (e + 1)

    opt = make_opt((0.1, 0.1))
    w = Warmup()
    s = sched.LambdaLR(opt, [lambda e: 1.0, w])
    s.step()
    w.scale = 3.0
    state = json.loads(json.dumps(s.state_dict()))
    assert state["lr_lambdas"] == [None, {"scale": 3.0}]
    w2 = Warmup()
    opt2 = make_opt((0.1, 0.1))
    s2 = sched.LambdaLR(opt2, [lambda e: 1.0, w2])
    s2.load_state_dict(state)
    assert w2.scale == 3.0 and s2.last_epoch == 1
    s2.step()
    assert opt2.param_groups[1]["lr"] == pytest.approx(0.1 * 3.0 * 3)


def test_warm_restarts_by_hand():
    opt = make_opt((1.0,))
    s = sched.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2)
    c = math.cos
    # cycles of 2, 4, 8 epochs: restarts (lr back to 1) at epochs 2 and 6
    expected = [1, 0.5, 1, (1 + c(math.pi / 4)) / 2, 0.5, (1 + c(3 * math.pi / 4)) / 2, 1,
                (1 + c(math.pi / 8)) / 2]
    assert lrs_of(s, opt, 7) == pytest.approx(expected, rel=1e-12)
    assert (s.T_cur, s.T_i) == (1, 8)
    opt = make_opt((1.0,))
    s = sched.CosineAnnealingWarmRestarts(opt, T_0=3, eta_min=0.1)
    lrs = lrs_of(s, opt, 6)
    assert lrs[0] == lrs[3] == lrs[6] == 1.0
    assert lrs[1] == pytest.approx(0.1 + 0.9 * (1 + c(math.pi / 3)) / 2, rel=1e-12)


def test_warm_restarts_step_with_epoch():
    opt = make_opt((1.0,))
    s = sched.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2)
    s.step(4.0)  # epoch 4 lies in the second cycle (epochs 2..5) at T_cur 2 of 4
    assert (s.T_cur, s.T_i, s.last_epoch) == (2, 4, 4)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5, rel=1e-12)
    s.step(0.5)
    assert opt.param_groups[0]["lr"] == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    with pytest.raises(ValueError, match="non-negative"):
        s.step(-1)
    with pytest.raises(TypeError, match="epoch"):
        s.step("3")


def test_one_cycle_linear_by_hand():
    opt = optim.SGD([P(np.zeros(3))], lr=0.5, momentum=0.9)
    s = sched.OneCycleLR(opt, max_lr=1.0, total_steps=10, anneal_strategy="linear",
                         div_factor=10.0, final_div_factor=100.0, pct_start=0.3)
    g = opt.param_groups[0]
    assert (g["initial_lr"], g["max_lr"], g["min_lr"]) == (0.1, 1.0, 0.001)
    lrs, moms = [g["lr"]], [g["momentum"]]
    for _ in range(9):
        s.step()
        lrs.append(g["lr"])
        moms.append(g["momentum"])
    # warm-up over steps 0..2 (end_step = 0.3·10 − 1 = 2), then down to min_lr at step 9
    expected = [0.1, 0.55, 1.0] + [1.0 + (0.001 - 1.0) * (k - 2) / 7 for k in range(3, 10)]
    assert lrs == pytest.approx(expected, rel=1e-12)
    expected_m = [0.95, 0.9, 0.85] + [0.85 + 0.1 * (k - 2) / 7 for k in range(3, 10)]
    assert moms == pytest.approx(expected_m, rel=1e-12)
    s.step()  # step 10 = total_steps is still allowed (torch's bound) ...
    with pytest.raises(ValueError, match="Tried to step 11 times"):
        s.step()  # ... one more is not


def test_one_cycle_three_phase_cos_and_betas():
    opt = optim.Adam([P(np.zeros(3))], lr=0.5, betas=(0.9, 0.99))
    s = sched.OneCycleLR(opt, max_lr=1.0, total_steps=9, three_phase=True, pct_start=0.25,
                         div_factor=4.0, final_div_factor=5.0, base_momentum=0.8,
                         max_momentum=0.9)
    g = opt.param_groups[0]
    seq = [(g["lr"], g["betas"])]
    for _ in range(8):
        s.step()
        seq.append((g["lr"], g["betas"]))
    # phases end at 1.25, 2.5 and 8: 0.25 -> 1 -> 0.25 -> 0.05, cosine within each.
    def cos(a, b, pct):
        return b + (a - b) / 2 * (1 + math.cos(math.pi * pct))
    expected = [cos(0.25, 1, 0), cos(0.25, 1, 1 / 1.25), cos(1, 0.25, (2 - 1.25) / 1.25)]
    expected += [cos(0.25, 0.05, (k - 2.5) / 5.5) for k in range(3, 9)]
    assert [lr for lr, _ in seq] == pytest.approx(expected, rel=1e-12)
    assert seq[-1][0] == pytest.approx(0.05, rel=1e-12)
    assert all(b[1] == 0.99 for _, b in seq) and seq[0][1][0] == 0.9
    assert seq[1][1][0] == pytest.approx(cos(0.9, 0.8, 1 / 1.25), rel=1e-12)


@pytest.mark.parametrize("make,exc,match", [
    (lambda o: sched.OneCycleLR(o, 1.0), ValueError, "total_steps"),
    (lambda o: sched.OneCycleLR(o, 1.0, total_steps=0), ValueError, "total_steps"),
    (lambda o: sched.OneCycleLR(o, 1.0, epochs=2, steps_per_epoch=2.5), TypeError,
     "steps_per_epoch"),
    (lambda o: sched.OneCycleLR(o, 1.0, 10, pct_start=1.5), ValueError, "pct_start"),
    (lambda o: sched.OneCycleLR(o, 1.0, 10, anneal_strategy="exp"), ValueError, "anneal"),
    (lambda o: sched.OneCycleLR(o, [1.0, 2.0], 10), ValueError, "max_lr"),
    (lambda o: sched.OneCycleLR(o, -1.0, 10), ValueError, "max_lr"),
    (lambda o: sched.OneCycleLR(o, 1.0, 10, div_factor=0), ValueError, "div_factor"),
    (lambda o: sched.OneCycleLR(o, 1.0, 10, three_phase=1), TypeError, "three_phase"),
    (lambda o: sched.OneCycleLR(o, 1.0, 10, pct_start=0.1), ValueError, "phase 0 is empty"),
    (lambda o: sched.OneCycleLR(o, 1.0, 10, last_epoch=3), KeyError, "max_lr"),
    (lambda o: sched.MultiStepLR(o, [2, -1]), ValueError, r"milestones\[1\]"),
    (lambda o: sched.MultiStepLR(o, 3), TypeError, "milestones"),
    (lambda o: sched.MultiStepLR(o, [2.5]), TypeError, "milestones"),
    (lambda o: sched.LinearLR(o, start_factor=0), ValueError, "start_factor"),
    (lambda o: sched.LinearLR(o, end_factor=1.5), ValueError, "end_factor"),
    (lambda o: sched.LinearLR(o, total_iters=0), ValueError, "total_iters"),
    (lambda o: sched.LambdaLR(o, 0.5), TypeError, "callable"),
    (lambda o: sched.LambdaLR(o, [lambda e: 1, lambda e: 1]), ValueError, "lr_lambdas"),
    (lambda o: sched.CosineAnnealingWarmRestarts(o, 0), ValueError, "T_0"),
    (lambda o: sched.CosineAnnealingWarmRestarts(o, 2, T_mult=1.5), TypeError, "T_mult"),
    (lambda o: sched.CosineAnnealingWarmRestarts(o, 2, eta_min=-1), ValueError, "eta_min"),
    (lambda o: sched.SequentialLR(o, [], []), ValueError, "at least one"),
    (lambda o: sched.SequentialLR(o, [sched.StepLR(o, 2)], [1]), ValueError, "milestone"),
    (lambda o: sched.SequentialLR(o, [sched.StepLR(o, 2), sched.StepLR(o, 3)], [4.0]),
     TypeError, "milestones"),
    (lambda o: sched.SequentialLR(o, [sched.StepLR(o, 2), sched.ReduceLROnPlateau(o)], [2]),
     ValueError, "ReduceLROnPlateau"),
    (lambda o: sched.SequentialLR(o, [sched.StepLR(o, 2), object()], [2]), TypeError,
     r"schedulers\[1\]"),
    (lambda o: sched.SequentialLR(o, [sched.StepLR(make_opt(), 2)], []), ValueError,
     "same optimizer"),
    (lambda o: sched.SequentialLR(o, [sched.StepLR(o, 2)] * 3, [4, 2]), ValueError,
     "non-decreasing"),
])
def test_new_schedule_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make(make_opt())


def test_one_cycle_needs_momentum_unless_told_not_to():
    opt = optim.Adagrad([P(np.zeros(2))])
    with pytest.raises(ValueError, match="cycle_momentum=False"):
        sched.OneCycleLR(opt, 0.1, 10)
    s = sched.OneCycleLR(opt, 0.1, 10, cycle_momentum=False)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 / 25) and s.last_epoch == 0


def test_sequential_lr_by_hand():
    opt = make_opt((1.0,))
    s = sched.SequentialLR(opt, [sched.LinearLR(opt, start_factor=0.5, total_iters=2),
                                 sched.ExponentialLR(opt, gamma=0.5)], milestones=[3])
    # warm-up 0.5, 0.75, 1; at epoch 3 the exponential schedule starts at its epoch 0
    assert lrs_of(s, opt, 5) == pytest.approx([0.5, 0.75, 1.0, 1.0, 0.5, 0.25], rel=1e-12)


def test_sequential_lr_state_round_trip_and_mismatch():
    def build():
        opt = make_opt((1.0, 0.2))
        return opt, sched.SequentialLR(
            opt, [sched.LinearLR(opt, total_iters=3), sched.MultiStepLR(opt, [2, 4])], [3])

    opt, s = build()
    lr_sequence(s, opt, 4)
    state = json.loads(json.dumps(s.state_dict()))
    assert [type(x) for x in state["_schedulers"]] == [dict, dict]
    more = lr_sequence(s, opt, 6)
    opt2, s2 = build()
    opt2.load_state_dict(opt.state_dict())
    opt2.param_groups[0]["lr"], opt2.param_groups[1]["lr"] = more[0]
    s2.load_state_dict(state)
    assert lr_sequence(s2, opt2, 6) == more

    before = s2.state_dict()
    bad = json.loads(json.dumps(state))
    bad["_schedulers"][1]["T_cur"] = 3  # a state entry MultiStepLR does not have
    with pytest.raises(ValueError, match="T_cur"):
        s2.load_state_dict(bad)
    assert s2.state_dict() == before  # checked before anything was loaded
    with pytest.raises(ValueError, match="_schedulers"):
        s2.load_state_dict({k: v for k, v in state.items() if k != "_schedulers"})


def test_scheduler_state_of_another_kind_is_refused():
    opt = make_opt()
    s = sched.CosineAnnealingWarmRestarts(opt, 3)
    other = sched.StepLR(make_opt(), 2).state_dict()
    before = s.state_dict()
    with pytest.raises(ValueError, match="step_size"):
        s.load_state_dict(other)
    assert s.state_dict() == before
    with pytest.raises(TypeError, match="dict"):
        s.load_state_dict([("last_epoch", 3)])


NEW_SCHEDULES = {
    "MultiStepLR": lambda o: sched.MultiStepLR(o, [1, 3], gamma=0.5),
    "LinearLR": lambda o: sched.LinearLR(o, start_factor=0.25, total_iters=4),
    "LambdaLR": lambda o: sched.LambdaLR(o, lambda e: 1 / (e + 1)),
    "CosineAnnealingWarmRestarts": lambda o: sched.CosineAnnealingWarmRestarts(o, 2, 2),
    "OneCycleLR": lambda o: sched.OneCycleLR(o, max_lr=0.05, total_steps=6),
    "SequentialLR": lambda o: sched.SequentialLR(
        o, [sched.LinearLR(o, total_iters=2), sched.ExponentialLR(o, 0.5)], [2]),
}


@pytest.mark.parametrize("name", sorted(NEW_SCHEDULES))
def test_trainer_checkpoint_round_trips_new_schedules(tmp_path, name):
    """rnnkit.save of a Trainer stores the schedule's state as JSON; loading into a trainer
    with the same kind of schedule resumes the uninterrupted lr sequence."""
    import rnnkit
    from rnnkit import losses, nn
    from rnnkit.train import Trainer

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))

    def trainer():
        model = nn.Sequential(nn.Linear(3, 2, dtype="float64", seed=1))
        opt = optim.Adam(model.parameters(), lr=0.01)
        return Trainer(model, losses.MSELoss(), opt, scheduler=NEW_SCHEDULES[name](opt),
                       seed=0)

    full = trainer()
    lrs_full = []
    for _ in range(5):  # one epoch per call: a fit call trains `epochs` more epochs
        full.fit(x, y, epochs=1, batch_size=4, verbose=0)
        lrs_full.append(full.optimizer.param_groups[0]["lr"])
    assert len(set(lrs_full)) > 1  # the schedule did move
    first = trainer()
    first.fit(x, y, epochs=2, batch_size=4, verbose=0)
    rnnkit.save(first, tmp_path / "t.rnnkit")
    second = rnnkit.load(tmp_path / "t.rnnkit", into=trainer())
    assert second.scheduler.get_last_lr() == first.scheduler.get_last_lr()
    assert second.optimizer.param_groups[0]["lr"] == lrs_full[1]
    lrs = []
    for total in (3, 1, 1):  # the first fit after a restore takes the run's total epochs
        second.fit(x, y, epochs=total, batch_size=4, verbose=0)
        lrs.append(second.optimizer.param_groups[0]["lr"])
    assert lrs == lrs_full[2:]
