"""Optimiser edge cases: 0-d (scalar) parameters, frozen parameters (requires_grad False) and
the checks of load_state_dict (every bad entry named, nothing changed by a failed load).
Expected values are worked out by hand from the update rules in the docstrings."""
import copy
import json

import numpy as np
import pytest

from rnnkit import optim

OPTS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.1),
    "sgd_momentum": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
    "adam": lambda ps: optim.Adam(ps, lr=0.1),
    "adamw": lambda ps: optim.AdamW(ps, lr=0.1, weight_decay=0.0),
    "rmsprop": lambda ps: optim.RMSprop(ps, lr=0.1),
    "adagrad": lambda ps: optim.Adagrad(ps, lr=0.1),
}


class P:
    """A duck-typed parameter; ``requires_grad`` only when given (as a stand-in for
    rnnkit.nn.Parameter's freezing flag)."""

    def __init__(self, data, grad=None, **attrs):
        self.data = data
        self.grad = grad
        for k, v in attrs.items():
            setattr(self, k, v)


# ------------------------------------------------------------------ 0-d parameters

# One step from p = 1.5 with g = 0.5, lr = 0.1, by hand (eps at each optimiser's default):
#   SGD:      1.5 - 0.1 * 0.5 = 1.45 (the momentum buffer starts as g: same first step)
#   Adam(W):  m̂ = 0.5, v̂ = 0.25, so 1.5 - 0.1 * 0.5 / (0.5 + 1e-8)
#   RMSprop:  s = 0.01 * 0.25 = 0.0025, √s = 0.05, so 1.5 - 0.1 * 0.5 / (0.05 + 1e-8)
#   Adagrad:  S = 0.25, so 1.5 - 0.1 * 0.5 / (0.5 + 1e-10)
FIRST_STEP = {"sgd": 1.45, "sgd_momentum": 1.45, "adam": 1.5 - 0.05 / (0.5 + 1e-8),
              "adamw": 1.5 - 0.05 / (0.5 + 1e-8), "rmsprop": 1.5 - 0.05 / (0.05 + 1e-8),
              "adagrad": 1.5 - 0.05 / (0.5 + 1e-10)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(OPTS))
def test_scalar_parameter_steps(name, dtype):
    p = P(np.array(1.5, dtype), np.array(0.5, dtype))
    opt = OPTS[name]([p])
    opt.step()
    assert p.data.shape == () and p.data.dtype == dtype
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    assert float(p.data) == pytest.approx(FIRST_STEP[name], rel=rtol)
    for key, value in opt.state[id(p)].items():  # buffers keep the parameter's shape (torch)
        if isinstance(value, np.ndarray):
            assert value.shape == () and value.dtype == dtype, key


@pytest.mark.parametrize("name", sorted(OPTS))
def test_scalar_parameter_follows_a_one_element_vector(name):
    """A 0-d parameter and a (1,) parameter with the same values take identical steps over
    several steps (the 0-d one is not copied or broadcast anywhere)."""
    rng = np.random.default_rng(3)
    grads = rng.standard_normal(6)
    a = P(np.array(0.7))
    b = P(np.array([0.7]))
    opt_a, opt_b = OPTS[name]([a]), OPTS[name]([b])
    data_a = a.data
    for g in grads:
        a.grad = np.array(g)
        b.grad = np.array([g])
        opt_a.step()
        opt_b.step()
        assert a.data is data_a  # updated in place
        assert float(a.data) == float(b.data[0])


@pytest.mark.parametrize("name", sorted(OPTS))
def test_scalar_parameter_state_dict_round_trip(name):
    p = P(np.array(2.0), np.array(-1.0))
    opt = OPTS[name]([p])
    for _ in range(3):
        opt.step()
    sd = opt.state_dict()
    q = P(p.data.copy(), np.array(-1.0))
    opt2 = OPTS[name]([q])
    opt2.load_state_dict(sd)
    p.grad = np.array(0.25)
    q.grad = np.array(0.25)
    opt.step()
    opt2.step()
    assert float(q.data) == float(p.data)


def test_scalar_parameter_mixed_with_matrices_and_clipping():
    temp = P(np.array(1.0, np.float32), np.array(3.0, np.float32))
    w = P(np.ones((2, 2), np.float32), np.full((2, 2), 4.0, np.float32))
    total = optim.clip_grad_norm_([temp, w], max_norm=1.0)
    assert total == pytest.approx(np.sqrt(9.0 + 4 * 16.0), rel=1e-6)
    optim.Adam([{"params": [w]}, {"params": [temp], "lr": 0.5}]).step()
    assert float(temp.data) == pytest.approx(0.5, rel=1e-5)  # Adam's first step: lr·sign(g)


# ------------------------------------------------------------------ frozen parameters


@pytest.mark.parametrize("name", sorted(OPTS))
def test_frozen_parameter_is_not_updated_and_gets_no_state(name):
    live = P(np.ones(3), np.ones(3))
    frozen = P(np.ones(3), np.ones(3), requires_grad=False)
    opt = OPTS[name]([live, frozen])
    for _ in range(2):
        opt.step()
    assert np.array_equal(frozen.data, np.ones(3))
    assert not np.array_equal(live.data, np.ones(3))
    assert id(frozen) not in opt.state and id(live) in opt.state
    assert list(opt.state_dict()["state"]) == ["0"]


@pytest.mark.parametrize("name", sorted(OPTS))
def test_unfrozen_parameter_starts_fresh(name):
    """Unfreezing later: the parameter's first update is the optimiser's first step for it,
    i.e. it equals the first step of a parameter that was never frozen."""
    frozen = P(np.ones(3), np.ones(3), requires_grad=False)
    fresh = P(np.ones(3), np.ones(3))
    opt = OPTS[name]([frozen])
    opt.step()
    frozen.requires_grad = True
    opt.step()
    OPTS[name]([fresh]).step()
    assert np.array_equal(frozen.data, fresh.data)
    assert opt.state[id(frozen)]["step"] == 1


def test_frozen_rnnkit_parameter_and_layer():
    """rnnkit.nn.Parameter's own flag: freezing a layer's weight keeps it fixed while its
    bias trains."""
    from rnnkit import nn

    lin = nn.Linear(3, 2, dtype="float64", seed=0)
    params = dict(lin.named_parameters())
    params["weight"].requires_grad = False
    w0, b0 = params["weight"].data.copy(), params["bias"].data.copy()
    opt = optim.Adam(lin.parameters(), lr=0.1)
    for p in lin.parameters():
        p.grad = np.ones_like(p.data)
    opt.step()
    assert np.array_equal(params["weight"].data, w0)
    np.testing.assert_allclose(params["bias"].data, b0 - 0.1, rtol=1e-6)
    assert list(opt.state) == [id(params["bias"])]


def test_frozen_flag_true_or_missing_means_trainable():
    ps = [P(np.ones(2), np.ones(2), requires_grad=True), P(np.ones(2), np.ones(2))]
    optim.SGD(ps, lr=0.5).step()
    for p in ps:
        assert np.array_equal(p.data, [0.5, 0.5])


# ------------------------------------------------------------------ load_state_dict checks


def trained_adam(amsgrad=False):
    ps = [P(np.ones((2, 3), np.float32)), P(np.ones(4, np.float32))]
    opt = optim.Adam(ps, lr=0.01, amsgrad=amsgrad)
    for p in ps:
        p.grad = np.full_like(p.data, 0.5)
    opt.step()
    opt.step()
    return ps, opt


def snapshot(opt):
    """Everything load_state_dict could change, deep-copied for comparison."""
    groups = [{k: (v if k != "params" else [id(p) for p in v]) for k, v in g.items()}
              for g in opt.param_groups]
    state = {k: {kk: (vv.copy() if isinstance(vv, np.ndarray) else vv)
                 for kk, vv in v.items()} for k, v in opt.state.items()}
    return groups, state, [id(g) for g in opt.param_groups]


def same_snapshot(a, b):
    ga, sa, ia = a
    gb, sb, ib = b
    if ga != gb or ia != ib or sa.keys() != sb.keys():
        return False
    for k in sa:
        if sa[k].keys() != sb[k].keys():
            return False
        for kk in sa[k]:
            x, y = sa[k][kk], sb[k][kk]
            if isinstance(x, np.ndarray):
                if not np.array_equal(x, y):
                    return False
            elif x != y:
                return False
    return True


def _set(path, value):
    def edit(sd):
        d = sd
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return edit


def _delete(path):
    def edit(sd):
        d = sd
        for k in path[:-1]:
            d = d[k]
        del d[path[-1]]
    return edit


BAD = [
    ("exp_avg is a string", _set(["state", "0", "exp_avg"], "x"), TypeError, "exp_avg"),
    ("exp_avg is a list", _set(["state", "1", "exp_avg"], [0.0] * 4), TypeError, "numpy array"),
    ("step -1", _set(["state", "0", "step"], -1), ValueError, "step"),
    ("step 1.5", _set(["state", "0", "step"], 1.5), ValueError, "step"),
    ("step NaN", _set(["state", "0", "step"], float("nan")), ValueError, "step"),
    ("step a string", _set(["state", "1", "step"], "2"), TypeError, "step"),
    ("step a bool", _set(["state", "1", "step"], True), TypeError, "step"),
    ("exp_avg wrong shape", _set(["state", "1", "exp_avg"], np.zeros(5, np.float32)),
     ValueError, r"shape \(5,\).*\(4,\)"),
    ("exp_avg_sq wrong dtype", _set(["state", "0", "exp_avg_sq"], np.zeros((2, 3))),
     TypeError, "float64.*float32"),
    ("exp_avg integer dtype", _set(["state", "0", "exp_avg"], np.zeros((2, 3), np.int32)),
     TypeError, "int32"),
    ("exp_avg NaN", _set(["state", "1", "exp_avg"], np.array([0, np.nan, 0, 0], np.float32)),
     ValueError, "NaN or inf"),
    ("exp_avg_sq inf", _set(["state", "1", "exp_avg_sq"], np.full(4, np.inf, np.float32)),
     ValueError, "NaN or inf"),
    ("exp_avg_sq negative", _set(["state", "1", "exp_avg_sq"], np.full(4, -1.0, np.float32)),
     ValueError, "negative"),
    ("unknown state key", _set(["state", "1", "momentum_buffer"], np.zeros(4, np.float32)),
     ValueError, "momentum_buffer"),
    ("missing exp_avg", _delete(["state", "1", "exp_avg"]), ValueError, "exp_avg"),
    ("missing step", _delete(["state", "0", "step"]), ValueError, "step"),
    ("state entry not a dict", _set(["state", "1"], 3), TypeError, "dict"),
    ("state for an unlisted parameter", _set(["state", "7"], {}), ValueError, "'7'"),
    ("state key not an index", _set(["state", "w"], {}), ValueError, "'w'"),
    ("state not a dict", _set(["state"], [1, 2]), TypeError, "state"),
    ("groups not a list", _set(["param_groups"], {"lr": 1}), TypeError, "param_groups"),
    ("group not a dict", _set(["param_groups", 0], [0, 1]), TypeError, r"param_groups'\]\[0\]"),
    ("group without params", _delete(["param_groups", 0, "params"]), ValueError, "params"),
    ("params not a list", _set(["param_groups", 0, "params"], 0), TypeError, "params"),
    ("params wrong count", _set(["param_groups", 0, "params"], [0]), ValueError, "parameters"),
    ("params not integers", _set(["param_groups", 0, "params"], ["0", "1"]), TypeError,
     "integer"),
    ("params repeated", _set(["param_groups", 0, "params"], [0, 0]), ValueError,
     "more than once"),
    ("lr negative", _set(["param_groups", 0, "lr"], -1.0), ValueError, r"\[0\].*lr"),
    ("lr a string", _set(["param_groups", 0, "lr"], "0.1"), TypeError, "lr"),
    ("betas out of range", _set(["param_groups", 0, "betas"], [0.9, 1.0]), ValueError,
     r"betas\[1\]"),
    ("betas not a pair", _set(["param_groups", 0, "betas"], [0.9]), TypeError, "betas"),
    ("amsgrad not a bool", _set(["param_groups", 0, "amsgrad"], "yes"), TypeError, "amsgrad"),
    ("unknown hyperparameter", _set(["param_groups", 0, "momentum"], 0.9), ValueError,
     "momentum"),
    ("bad scheduler key", _set(["param_groups", 0, "initial_lr"], "x"), TypeError,
     "initial_lr"),
    ("torch flag not a bool", _set(["param_groups", 0, "foreach"], "no"), TypeError,
     "foreach"),
    ("extra top-level key", _set(["extra"], 1), ValueError, "extra"),
    ("missing state", _delete(["state"]), ValueError, "state"),
]


@pytest.mark.parametrize("what,edit,exc,match", BAD, ids=[b[0] for b in BAD])
def test_bad_state_dict_raises_and_changes_nothing(what, edit, exc, match):
    _, source = trained_adam()
    sd = source.state_dict()
    edit(sd)
    ps, opt = trained_adam()
    opt.param_groups[0]["lr"] = 0.5  # differs from the file, so a partial load would show
    before = snapshot(opt)
    with pytest.raises(exc, match=match):
        opt.load_state_dict(sd)
    assert same_snapshot(before, snapshot(opt)), what


def test_not_a_dict_raises_type_error():
    _, opt = trained_adam()
    with pytest.raises(TypeError, match="state_dict must be a dict"):
        opt.load_state_dict([("state", {}), ("param_groups", [])])


def test_failure_in_last_parameter_leaves_earlier_ones_untouched():
    """The check of the second parameter's state fails after the first parameter's state and
    the group were already read: none of it may have been installed."""
    ps, opt = trained_adam()
    sd = optim.Adam(ps, lr=0.3).state_dict()  # fresh: no state, another lr
    _, other = trained_adam()
    good = other.state_dict()
    good["state"]["0"]["exp_avg"] = np.full((2, 3), 7.0, np.float32)
    good["state"]["1"]["exp_avg_sq"] = np.full(4, -1.0, np.float32)
    before = snapshot(opt)
    with pytest.raises(ValueError, match=r"\['1'\]\['exp_avg_sq'\]"):
        opt.load_state_dict(good)
    assert same_snapshot(before, snapshot(opt))
    assert sd["param_groups"][0]["lr"] == 0.3


def test_load_does_not_modify_the_given_dict():
    _, opt = trained_adam()
    sd = opt.state_dict()
    kept = copy.deepcopy(sd)
    _, opt2 = trained_adam()
    opt2.load_state_dict(sd)
    assert json.dumps({k: v for k, v in sd.items() if k != "state"}) == \
        json.dumps({k: v for k, v in kept.items() if k != "state"})
    for i in sd["state"]:
        for k, v in sd["state"][i].items():
            assert np.array_equal(v, kept["state"][i][k])


def test_torch_layout_with_numpy_arrays_loads():
    """torch's state dict layout (int state keys, float32 0-d step, its device flags), with
    numpy arrays in place of tensors: accepted, and stepping continues exactly as the
    optimiser it was taken from."""
    ps, opt = trained_adam(amsgrad=True)
    sd = opt.state_dict()
    torch_like = {
        "state": {int(k): {**{kk: vv for kk, vv in v.items() if kk != "step"},
                           "step": np.array(float(v["step"]), np.float32)}
                  for k, v in sd["state"].items()},
        "param_groups": [{**g, "betas": tuple(g["betas"]), "foreach": None,
                          "capturable": False, "differentiable": False, "fused": None,
                          "lr": np.array(g["lr"])}
                         for g in sd["param_groups"]],
    }
    qs = [P(p.data.copy()) for p in ps]
    opt2 = optim.Adam(qs)
    opt2.load_state_dict(torch_like)
    assert opt2.param_groups[0]["lr"] == 0.01 and opt2.param_groups[0]["amsgrad"] is True
    assert "foreach" not in opt2.param_groups[0]
    assert opt2.state[id(qs[0])]["step"] == 2
    for p, q in zip(ps, qs):
        p.grad = np.full_like(p.data, -0.25)
        q.grad = p.grad.copy()
    opt.step()
    opt2.step()
    for p, q in zip(ps, qs):
        assert np.array_equal(p.data, q.data)


def test_scheduler_keys_in_groups_survive_a_round_trip():
    ps, opt = trained_adam()
    opt.param_groups[0].update(initial_lr=0.01, max_lr=0.1, min_lr=1e-6)
    opt2 = optim.Adam([P(p.data.copy()) for p in ps])
    opt2.load_state_dict(opt.state_dict())
    assert opt2.param_groups[0]["max_lr"] == 0.1 and opt2.param_groups[0]["min_lr"] == 1e-6


def test_sgd_state_without_step_loads_and_counts_from_the_load():
    """torch's SGD keeps only the momentum buffer: no step to load."""
    p = P(np.ones(3), np.ones(3))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    opt.load_state_dict({"state": {0: {"momentum_buffer": np.full(3, 2.0)}},
                         "param_groups": [{"params": [0], "lr": 0.1, "momentum": 0.9,
                                           "dampening": 0, "weight_decay": 0,
                                           "nesterov": False, "maximize": False}]})
    opt.step()
    # b = 0.9·2 + 1 = 2.8; p = 1 - 0.1·2.8
    np.testing.assert_allclose(p.data, 1 - 0.28, rtol=1e-15)
    assert opt.state[id(p)]["step"] == 1
