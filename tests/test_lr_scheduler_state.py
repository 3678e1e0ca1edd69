"""Scheduler load_state_dict: a corrupted state is refused (TypeError for a wrong type,
ValueError for a wrong value, naming the entry and the scheduler) before anything changes, and
a state saved after some steps loads and continues identically, for every scheduler class."""
import json

import numpy as np
import pytest

from rnnkit import optim
from rnnkit.optim import lr_scheduler as sched


class P:
    def __init__(self, data, grad=None):
        self.data = data
        self.grad = grad


def sgd(lrs=(0.1, 0.02)):
    return optim.SGD([{"params": [P(np.zeros(3))], "lr": lr} for lr in lrs], lr=lrs[0],
                     momentum=0.9)


def adam(lrs=(0.1, 0.02)):
    return optim.Adam([{"params": [P(np.zeros(3))], "lr": lr} for lr in lrs], lr=lrs[0])


class Warmup:
    """A callable object: LambdaLR saves its attributes."""

    def __init__(self):
        self.scale = 0.5

    def __call__(self, epoch):
        return self.scale * (epoch + 1)


# name -> (optimiser factory, scheduler factory); every class, OneCycleLR in both layouts.
BUILDERS = {
    "StepLR": (sgd, lambda o: sched.StepLR(o, 2, gamma=0.5)),
    "MultiStepLR": (sgd, lambda o: sched.MultiStepLR(o, [2, 4, 4], gamma=0.5)),
    "ExponentialLR": (sgd, lambda o: sched.ExponentialLR(o, 0.9)),
    "LinearLR": (sgd, lambda o: sched.LinearLR(o, start_factor=0.25, total_iters=5)),
    "LambdaLR": (sgd, lambda o: sched.LambdaLR(o, [lambda e: 0.9 ** e, Warmup()])),
    "CosineAnnealingLR": (sgd, lambda o: sched.CosineAnnealingLR(o, 4, eta_min=0.001)),
    "CosineAnnealingWarmRestarts": (
        sgd, lambda o: sched.CosineAnnealingWarmRestarts(o, 2, T_mult=2, eta_min=0.001)),
    "OneCycleLR": (sgd, lambda o: sched.OneCycleLR(o, [1.0, 0.5], total_steps=12)),
    "OneCycleLR-3": (adam, lambda o: sched.OneCycleLR(o, 1.0, total_steps=12,
                                                      three_phase=True,
                                                      anneal_strategy="linear")),
    "SequentialLR": (sgd, lambda o: sched.SequentialLR(
        o, [sched.LinearLR(o, total_iters=3), sched.MultiStepLR(o, [2, 4])], [3])),
    "ReduceLROnPlateau": (sgd, lambda o: sched.ReduceLROnPlateau(
        o, factor=0.5, patience=1, cooldown=2, min_lr=[0.0, 0.001])),
}
METRICS = [3.0, 2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5]


def build(name):
    make_opt, make_sched = BUILDERS[name]
    opt = make_opt()
    return opt, make_sched(opt)


def groups_of(opt):
    return [(g["lr"], g.get("momentum"), g.get("betas")) for g in opt.param_groups]


def run(s, opt, start, n):
    """n more steps (metrics for ReduceLROnPlateau), the groups' lr/momentum after each."""
    seq = []
    for k in range(start, start + n):
        if isinstance(s, sched.ReduceLROnPlateau):
            s.step(METRICS[k])
        else:
            s.step()
        seq.append(groups_of(opt))
    return seq


def stepped(name, n=4):
    opt, s = build(name)
    run(s, opt, 0, n)
    return opt, s


def saved(s):
    """The state as a trainer checkpoint stores it (JSON)."""
    return json.loads(json.dumps(s.state_dict()))


# --- round trips ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_saved_state_loads_and_continues_identically(name):
    opt, s = stepped(name)
    state, opt_state = saved(s), opt.state_dict()
    more = run(s, opt, 4, 6)

    opt2, s2 = build(name)
    opt2.load_state_dict(opt_state)
    s2.load_state_dict(state)
    assert s2.state_dict() == state
    assert run(s2, opt2, 4, 6) == more
    assert s2.state_dict() == s.state_dict()


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_state_entry_is_checked(name):
    _, s = build(name)
    assert set(s._entry_checks()) == set(s.state_dict())


def test_multistep_milestones_in_torch_counter_layout_load():
    _, s = stepped("MultiStepLR")
    state = saved(s)
    state["milestones"] = {"2": 1, "4": 2}  # a Counter, through JSON
    _, s2 = build("MultiStepLR")
    s2.load_state_dict(state)
    assert s2.state_dict()["milestones"] == [2, 4, 4]


def test_lambda_lr_loads_the_callable_objects_attributes():
    _, s = stepped("LambdaLR")
    s.lr_lambdas[1].scale = 3.0
    state = saved(s)
    _, s2 = build("LambdaLR")
    s2.load_state_dict(state)
    assert s2.lr_lambdas[1].scale == 3.0


# --- corruptions ------------------------------------------------------------------------------

def put(key, value):
    def mutate(state):
        state[key] = value
    return mutate


def drop(key):
    def mutate(state):
        del state[key]
    return mutate


def put_in(path, value):
    """Set state[path[0]][path[1]]... = value."""
    def mutate(state):
        target = state
        for k in path[:-1]:
            target = target[k]
        target[path[-1]] = value
    return mutate


NAN, INF = float("nan"), float("inf")
LR_LIST_CORRUPTIONS = [  # base_lrs and _last_lr: one finite lr >= 0 per group (2 groups)
    (None, TypeError), ("0.1", TypeError), (0.1, TypeError), ([0.1], ValueError),
    ([0.1, 0.2, 0.3], ValueError), ([0.1, "0.2"], TypeError), ([0.1, None], TypeError),
    ([0.1, True], TypeError), ([0.1, -0.2], ValueError), ([0.1, NAN], ValueError),
    ([0.1, INF], ValueError),
]
LAST_EPOCH_CORRUPTIONS = [("x", TypeError), (1.5, TypeError), (2.0, TypeError),
                          (True, TypeError), (None, TypeError), (-2, ValueError)]
EPOCH_DRIVEN = sorted(n for n in BUILDERS if n not in ("ReduceLROnPlateau",))
WITH_BASE_LRS = sorted(n for n in EPOCH_DRIVEN if n != "SequentialLR")

CASES = []  # (scheduler, description, mutate, exception, key named in the message)
for _n in EPOCH_DRIVEN:
    for _v, _e in LAST_EPOCH_CORRUPTIONS:
        CASES.append((_n, f"last_epoch={_v!r}", put("last_epoch", _v), _e, "last_epoch"))
    for _v, _e in LR_LIST_CORRUPTIONS:
        CASES.append((_n, f"_last_lr={_v!r}", put("_last_lr", _v), _e, "_last_lr"))
for _n in WITH_BASE_LRS:
    for _v, _e in LR_LIST_CORRUPTIONS:
        CASES.append((_n, f"base_lrs={_v!r}", put("base_lrs", _v), _e, "base_lrs"))
    for _v, _e in [(0, ValueError), (1.0, TypeError), ("1", TypeError)]:
        CASES.append((_n, f"_step_count={_v!r}", put("_step_count", _v), _e, "_step_count"))
    for _v, _e in [(True, ValueError), ("no", TypeError), (0, TypeError)]:
        CASES.append((_n, f"_is_initial={_v!r}", put("_is_initial", _v), _e, "_is_initial"))
for _v, _e in LR_LIST_CORRUPTIONS:
    CASES.append(("ReduceLROnPlateau", f"_last_lr={_v!r}", put("_last_lr", _v), _e,
                  "_last_lr"))
for _v, _e in [("x", TypeError), (1.5, TypeError), (-1, ValueError)]:
    CASES.append(("ReduceLROnPlateau", f"last_epoch={_v!r}", put("last_epoch", _v), _e,
                  "last_epoch"))

SPECIFIC = {
    "StepLR": [
        ("step_size", -1, ValueError), ("step_size", 0, ValueError),
        ("step_size", 2.0, TypeError), ("step_size", "2", TypeError),
        ("gamma", "0.5", TypeError), ("gamma", None, TypeError), ("gamma", -0.5, ValueError),
        ("gamma", NAN, ValueError),
    ],
    "MultiStepLR": [
        ("milestones", 3, TypeError), ("milestones", "24", TypeError),
        ("milestones", [2, -1], ValueError), ("milestones", [2, 4.0], TypeError),
        ("milestones", {"x": 1}, TypeError), ("milestones", {"2": 0}, ValueError),
        ("milestones", {"2": 1.5}, TypeError), ("gamma", "0.5", TypeError),
        ("gamma", -1.0, ValueError),
    ],
    "ExponentialLR": [("gamma", "0.9", TypeError), ("gamma", -0.9, ValueError),
                      ("gamma", NAN, ValueError)],
    "LinearLR": [
        ("start_factor", 0.0, ValueError), ("start_factor", 1.5, ValueError),
        ("start_factor", "0.5", TypeError), ("end_factor", -0.1, ValueError),
        ("end_factor", 1.1, ValueError), ("end_factor", None, TypeError),
        ("total_iters", 0, ValueError), ("total_iters", 5.0, TypeError),
    ],
    "LambdaLR": [
        ("lr_lambdas", None, TypeError), ("lr_lambdas", {"scale": 1}, TypeError),
        ("lr_lambdas", [None], ValueError), ("lr_lambdas", [None, None, None], ValueError),
        ("lr_lambdas", [None, 5], TypeError), ("lr_lambdas", [None, [1]], TypeError),
        ("lr_lambdas", [None, {1: 2.0}], TypeError),
    ],
    "CosineAnnealingLR": [("T_max", 0, ValueError), ("T_max", "4", TypeError),
                          ("T_max", 4.0, TypeError), ("eta_min", -1.0, ValueError),
                          ("eta_min", "0", TypeError)],
    "CosineAnnealingWarmRestarts": [
        ("T_0", 0, ValueError), ("T_0", 2.5, TypeError), ("T_mult", 0, ValueError),
        ("T_mult", 1.5, TypeError), ("eta_min", -1.0, ValueError), ("eta_min", "0", TypeError),
        ("T_i", "4", TypeError), ("T_i", None, TypeError), ("T_i", 1, ValueError),
        ("T_i", INF, ValueError), ("T_i", NAN, ValueError), ("T_cur", -1, ValueError),
        ("T_cur", 100, ValueError), ("T_cur", "0", TypeError), ("T_cur", NAN, ValueError),
        ("T_cur", INF, ValueError),
    ],
    "OneCycleLR": [
        ("total_steps", 0, ValueError), ("total_steps", "12", TypeError),
        ("total_steps", 12.0, TypeError), ("total_steps", 20, ValueError),
        ("last_epoch", 13, ValueError), ("_anneal_func_type", "exp", ValueError),
        ("_anneal_func_type", 1, TypeError), ("_schedule_phases", None, TypeError),
        ("_schedule_phases", [], ValueError), ("_schedule_phases", [1, 2], TypeError),
        ("cycle_momentum", "yes", TypeError), ("cycle_momentum", 1, TypeError),
        ("cycle_momentum", False, ValueError), ("use_beta1", True, ValueError),
        ("use_beta1", None, TypeError),
    ],
    "OneCycleLR-3": [("use_beta1", False, ValueError), ("_anneal_func_type", None, TypeError)],
    "SequentialLR": [
        ("_milestones", [], ValueError), ("_milestones", [3, 4], ValueError),
        ("_milestones", [1.5], TypeError), ("_milestones", "3", TypeError),
        ("_milestones", [-1], ValueError), ("_milestones", None, TypeError),
        ("_schedulers", 5, TypeError), ("_schedulers", [], ValueError),
        ("_schedulers", [{}, {}], ValueError),
    ],
    "ReduceLROnPlateau": [
        ("factor", 1.0, ValueError), ("factor", -0.5, ValueError), ("factor", "0.5", TypeError),
        ("patience", -1, ValueError), ("patience", 1.0, TypeError),
        ("cooldown", -1, ValueError), ("cooldown", "2", TypeError),
        ("eps", -1e-8, ValueError), ("eps", None, TypeError),
        ("threshold", -1.0, ValueError), ("threshold", "0", TypeError),
        ("mode", "up", ValueError), ("mode", 3, TypeError),
        ("threshold_mode", "x", ValueError), ("threshold_mode", None, TypeError),
        ("default_min_lr", "0", TypeError), ("default_min_lr", -1.0, ValueError),
        ("min_lrs", 0.0, TypeError), ("min_lrs", [0.0], ValueError),
        ("min_lrs", [0.0, -1.0], ValueError), ("min_lrs", [0.0, "0"], TypeError),
        ("mode_worse", -INF, ValueError), ("mode_worse", "inf", TypeError),
        ("best", "1.0", TypeError), ("best", None, TypeError), ("best", NAN, ValueError),
        ("num_bad_epochs", -1, ValueError), ("num_bad_epochs", 2, ValueError),
        ("num_bad_epochs", 1.0, TypeError), ("cooldown_counter", -1, ValueError),
        ("cooldown_counter", 3, ValueError), ("cooldown_counter", None, TypeError),
    ],
}
for _n, rows in SPECIFIC.items():
    for _k, _v, _e in rows:
        CASES.append((_n, f"{_k}={_v!r}", put(_k, _v), _e, _k))

# Nested entries: OneCycleLR's phases, SequentialLR's sub-states.
CASES += [
    ("OneCycleLR", "phase end_step str", put_in(["_schedule_phases", 0, "end_step"], "3"),
     TypeError, "end_step"),
    ("OneCycleLR", "phase end_step nan", put_in(["_schedule_phases", 0, "end_step"], NAN),
     ValueError, "end_step"),
    ("OneCycleLR", "last phase ends early", put_in(["_schedule_phases", 1, "end_step"], 5),
     ValueError, "_schedule_phases"),
    ("OneCycleLR", "first phase past the end", put_in(["_schedule_phases", 0, "end_step"], 12),
     ValueError, "_schedule_phases"),
    ("OneCycleLR", "phase group key renamed",
     put_in(["_schedule_phases", 0, "start_lr"], "lr0"), ValueError, "_schedule_phases"),
    ("OneCycleLR", "phase key dropped", lambda s: s["_schedule_phases"][1].pop("end_lr"),
     ValueError, "_schedule_phases"),
    ("OneCycleLR", "phase key added", put_in(["_schedule_phases", 1, "extra"], 1),
     ValueError, "_schedule_phases"),
    ("OneCycleLR-3", "three-phase middle moved",
     put_in(["_schedule_phases", 1, "end_step"], 4.0), ValueError, "_schedule_phases"),
    ("OneCycleLR-3", "two phases of three", lambda s: s["_schedule_phases"].pop(1),
     ValueError, "_schedule_phases"),
    ("SequentialLR", "sub-state total_iters=0", put_in(["_schedulers", 0, "total_iters"], 0),
     ValueError, "total_iters"),
    ("SequentialLR", "sub-state gamma str", put_in(["_schedulers", 1, "gamma"], "0.1"),
     TypeError, "gamma"),
    ("SequentialLR", "sub-state base_lrs too long",
     put_in(["_schedulers", 1, "base_lrs"], [1, 2, 3]), ValueError, "base_lrs"),
    ("SequentialLR", "sub-state last_epoch str",
     put_in(["_schedulers", 1, "last_epoch"], "x"), TypeError, "last_epoch"),
    ("SequentialLR", "sub-state not a dict", put_in(["_schedulers", 1], [1, 2]), TypeError,
     "dict"),
    ("SequentialLR", "sub-state missing key", lambda s: s["_schedulers"][1].pop("gamma"),
     ValueError, "gamma"),
]
# Missing and unknown entries, every class.
for _n in sorted(BUILDERS):
    CASES.append((_n, "unknown entry", put("extra", 1), ValueError, "extra"))
    for _k in build(_n)[1].state_dict():
        CASES.append((_n, f"no {_k}", drop(_k), ValueError, _k))


def class_name(name):
    return name.split("-")[0]


@pytest.mark.parametrize("name,what,mutate,exc,key", CASES,
                         ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_corrupted_state_is_refused_and_changes_nothing(name, what, mutate, exc, key):
    _, s = stepped(name)
    state = saved(s)
    mutate(state)
    opt2, s2 = stepped(name, 2)  # a scheduler in another state than the saved one
    before, groups_before = s2.state_dict(), groups_of(opt2)
    with pytest.raises(exc) as info:
        s2.load_state_dict(state)
    assert type(info.value) is exc
    message = str(info.value)
    assert key in message and class_name(name) in message, message
    assert s2.state_dict() == before
    assert groups_of(opt2) == groups_before
    # and it still steps as before the failed load
    twin_opt, twin = stepped(name, 2)
    assert run(s2, opt2, 2, 3) == run(twin, twin_opt, 2, 3)


def test_lambda_lr_failed_load_leaves_the_callable_objects_alone():
    _, s = stepped("LambdaLR")
    state = saved(s)
    state["lr_lambdas"][1] = {"scale": 9.0}
    state["last_epoch"] = -5
    _, s2 = build("LambdaLR")
    with pytest.raises(ValueError, match="last_epoch"):
        s2.load_state_dict(state)
    assert s2.lr_lambdas[1].scale == 0.5


def test_failed_sequential_load_leaves_the_sub_schedulers_alone():
    _, s = stepped("SequentialLR")
    state = saved(s)
    state["_schedulers"][1]["gamma"] = -1.0  # the last entry checked: the others were fine
    _, s2 = build("SequentialLR")
    subs_before = [sub.state_dict() for sub in s2._schedulers]
    with pytest.raises(ValueError, match=r"SequentialLR.*_schedulers\[1\].*MultiStepLR.*gamma"):
        s2.load_state_dict(state)
    assert [sub.state_dict() for sub in s2._schedulers] == subs_before


@pytest.mark.parametrize("key,value,exc", [
    ("last_epoch", "x", TypeError), ("gamma", "0.5", TypeError), ("step_size", -1, ValueError),
    ("base_lrs", [1, 2, 3], ValueError), ("_last_lr", None, TypeError),
])
def test_review_examples_one_group_step_lr(key, value, exc):
    """The corruptions the review found, on an optimiser with one param group."""
    opt = sgd((0.1,))
    s = sched.StepLR(opt, 2, gamma=0.5)
    s.step()
    state = saved(s)
    state[key] = value
    before = s.state_dict()
    with pytest.raises(exc, match=rf"StepLR.*{key}"):
        s.load_state_dict(state)
    assert s.state_dict() == before
    s.step()
    assert s.get_last_lr() == [0.05]
