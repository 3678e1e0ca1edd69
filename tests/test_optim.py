"""rnnkit.optim optimisers vs plain numpy references of each update rule, option by option;
parameter groups, state_dict round trips, thread-count independence and argument checks.
Clipping vs numpy. The references below are written from torch.optim's documented rules, in
the parameter's dtype with numpy's own arithmetic (never from rnnkit's output)."""
import json

import numpy as np
import pytest

import rnnkit
from rnnkit import optim

SHAPES = [(7, 5), (13,), (3, 1, 4)]


class P:
    """A minimal duck-typed parameter."""

    def __init__(self, data, grad=None):
        self.data = data
        self.grad = grad


def make_params(dtype, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [P(rng.standard_normal(s).astype(dtype)) for s in shapes]


def grad_sequence(shapes, steps, dtype, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]


def report(actual, expected, rtol, atol, name):
    a = np.asarray(actual, np.float64)
    e = np.asarray(expected, np.float64)
    err = np.abs(a - e)
    bad = err > atol + rtol * np.abs(e)
    if bad.any():
        idx = np.unravel_index(np.argmax(bad), a.shape)
        rel = np.max(err / np.maximum(np.abs(e), 1e-300))
        raise AssertionError(f"{name}: max abs diff {err.max():.3g}, max rel diff {rel:.3g}, "
                             f"{bad.sum()} bad of {a.size}, first bad at {idx}: "
                             f"{a[idx]!r} vs {e[idx]!r}")


def tol(dtype):
    return (1e-13, 1e-15) if dtype == np.float64 else (2e-6, 1e-7)


# ------------------------------------------------------------------ numpy references


def lerp(a, b, w):
    w = a.dtype.type(w)
    if abs(w) < 0.5:
        return a + w * (b - a)
    return b - (b - a) * (a.dtype.type(1) - w)


class RefSGD:
    def __init__(self, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 maximize=False):
        self.h = dict(lr=lr, momentum=momentum, dampening=dampening, wd=weight_decay,
                      nesterov=nesterov, maximize=maximize)
        self.buf = {}

    def step(self, i, p, g):
        h = self.h
        t = p.dtype.type
        g = -g if h["maximize"] else g
        if h["wd"] != 0:
            g = g + t(h["wd"]) * p
        if h["momentum"] != 0:
            if i not in self.buf:
                self.buf[i] = g.copy()
            else:
                self.buf[i] = self.buf[i] * t(h["momentum"]) + t(1 - h["dampening"]) * g
            g = g + t(h["momentum"]) * self.buf[i] if h["nesterov"] else self.buf[i]
        return p + t(-h["lr"]) * g


class RefAdam:
    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 maximize=False, decoupled=False):
        self.h = dict(lr=lr, b1=betas[0], b2=betas[1], eps=eps, wd=weight_decay,
                      amsgrad=amsgrad, maximize=maximize, decoupled=decoupled)
        self.s = {}

    def step(self, i, p, g):
        h = self.h
        t = p.dtype.type
        st = self.s.setdefault(i, dict(step=0, m=np.zeros_like(p), v=np.zeros_like(p),
                                       vmax=np.zeros_like(p)))
        st["step"] += 1
        k = st["step"]
        g = -g if h["maximize"] else g
        if h["wd"] != 0:
            if h["decoupled"]:
                p = p * t(1 - h["lr"] * h["wd"])
            else:
                g = g + t(h["wd"]) * p
        st["m"] = lerp(st["m"], g, 1 - h["b1"])
        st["v"] = st["v"] * t(h["b2"]) + t(1 - h["b2"]) * g * g
        bc1 = 1 - h["b1"] ** k
        bc2 = 1 - h["b2"] ** k
        v = st["v"]
        if h["amsgrad"]:
            st["vmax"] = np.maximum(st["vmax"], st["v"])
            v = st["vmax"]
        denom = np.sqrt(v) / t(bc2 ** 0.5) + t(h["eps"])
        return p + t(-h["lr"] / bc1) * st["m"] / denom


class RefRMSprop:
    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, maximize=False):
        self.h = dict(lr=lr, alpha=alpha, eps=eps, wd=weight_decay, momentum=momentum,
                      centered=centered, maximize=maximize)
        self.s = {}

    def step(self, i, p, g):
        h = self.h
        t = p.dtype.type
        st = self.s.setdefault(i, dict(sq=np.zeros_like(p), ga=np.zeros_like(p),
                                       buf=np.zeros_like(p)))
        g = -g if h["maximize"] else g
        if h["wd"] != 0:
            g = g + t(h["wd"]) * p
        st["sq"] = st["sq"] * t(h["alpha"]) + t(1 - h["alpha"]) * g * g
        if h["centered"]:
            st["ga"] = lerp(st["ga"], g, 1 - h["alpha"])
            avg = np.sqrt(st["sq"] - st["ga"] * st["ga"])
        else:
            avg = np.sqrt(st["sq"])
        avg = avg + t(h["eps"])
        if h["momentum"] > 0:
            st["buf"] = st["buf"] * t(h["momentum"]) + g / avg
            return p + t(-h["lr"]) * st["buf"]
        return p + t(-h["lr"]) * g / avg


class RefAdagrad:
    def __init__(self, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10, maximize=False):
        self.h = dict(lr=lr, lr_decay=lr_decay, wd=weight_decay,
                      init=initial_accumulator_value, eps=eps, maximize=maximize)
        self.s = {}

    def step(self, i, p, g):
        h = self.h
        t = p.dtype.type
        st = self.s.setdefault(i, dict(step=0, sum=np.full_like(p, h["init"])))
        st["step"] += 1
        g = -g if h["maximize"] else g
        if h["wd"] != 0:
            g = g + t(h["wd"]) * p
        clr = h["lr"] / (1 + (st["step"] - 1) * h["lr_decay"])
        st["sum"] = st["sum"] + g * g
        return p + t(-clr) * g / (np.sqrt(st["sum"]) + t(h["eps"]))


def run_pair(make_opt, ref, dtype, steps=6, seed=0):
    """Run rnnkit's optimiser and the reference on the same gradients; compare each step."""
    params = make_params(dtype, seed)
    ref_params = [p.data.copy() for p in params]
    opt = make_opt(params)
    grads = grad_sequence([p.data.shape for p in params], steps, dtype, seed + 100)
    rtol, atol = tol(dtype)
    for k, gs in enumerate(grads):
        for p, g in zip(params, gs):
            p.grad = g.copy()
        opt.step()
        for i, g in enumerate(gs):
            ref_params[i] = ref.step(i, ref_params[i], g)
            report(params[i].data, ref_params[i], rtol, atol, f"step {k} param {i}")
        for p, g in zip(params, gs):  # the optimiser must not modify gradients
            assert np.array_equal(p.grad, g)


DTYPES = [np.float64, np.float32]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,dampening,nesterov",
                         [(0.0, 0.0, False), (0.9, 0.0, False), (0.9, 0.3, False),
                          (0.8, 0.0, True)])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("maximize", [False, True])
def test_sgd_vs_numpy(dtype, momentum, dampening, nesterov, weight_decay, maximize):
    kw = dict(lr=0.05, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
              nesterov=nesterov, maximize=maximize)
    run_pair(lambda ps: optim.SGD(ps, **kw), RefSGD(**kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.3, 0.5)])
def test_adam_vs_numpy(dtype, amsgrad, weight_decay, maximize, betas):
    kw = dict(lr=0.01, betas=betas, eps=1e-6, weight_decay=weight_decay, amsgrad=amsgrad,
              maximize=maximize)
    run_pair(lambda ps: optim.Adam(ps, **kw), RefAdam(**kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adamw_vs_numpy(dtype, amsgrad, weight_decay):
    kw = dict(lr=0.02, betas=(0.8, 0.99), eps=1e-8, weight_decay=weight_decay, amsgrad=amsgrad)
    run_pair(lambda ps: optim.AdamW(ps, **kw), RefAdam(decoupled=True, **kw), dtype)


def test_adamw_default_weight_decay_differs_from_adam():
    assert optim.AdamW(make_params(np.float64)).param_groups[0]["weight_decay"] == 1e-2
    run_pair(lambda ps: optim.AdamW(ps, lr=0.1), RefAdam(lr=0.1, weight_decay=1e-2,
                                                          decoupled=True), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.7])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("maximize", [False, True])
def test_rmsprop_vs_numpy(dtype, centered, momentum, weight_decay, maximize):
    kw = dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=weight_decay, momentum=momentum,
              centered=centered, maximize=maximize)
    run_pair(lambda ps: optim.RMSprop(ps, **kw), RefRMSprop(**kw), dtype)


def test_rmsprop_alpha_below_half_uses_other_lerp_branch():
    kw = dict(lr=0.01, alpha=0.3, centered=True)
    run_pair(lambda ps: optim.RMSprop(ps, **kw), RefRMSprop(**kw), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lr_decay", [0.0, 0.1])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("initial_accumulator_value", [0.0, 0.5])
@pytest.mark.parametrize("maximize", [False, True])
def test_adagrad_vs_numpy(dtype, lr_decay, weight_decay, initial_accumulator_value, maximize):
    kw = dict(lr=0.1, lr_decay=lr_decay, weight_decay=weight_decay,
              initial_accumulator_value=initial_accumulator_value, eps=1e-10,
              maximize=maximize)
    run_pair(lambda ps: optim.Adagrad(ps, **kw), RefAdagrad(**kw), dtype)


def test_defaults_match_torch():
    ps = make_params(np.float32)
    g = optim.SGD(ps).param_groups[0]
    assert (g["lr"], g["momentum"], g["dampening"], g["weight_decay"], g["nesterov"]) == \
        (1e-3, 0, 0, 0, False)
    g = optim.Adam(ps).param_groups[0]
    assert (g["lr"], g["betas"], g["eps"], g["weight_decay"], g["amsgrad"]) == \
        (1e-3, (0.9, 0.999), 1e-8, 0, False)
    g = optim.RMSprop(ps).param_groups[0]
    assert (g["lr"], g["alpha"], g["eps"], g["weight_decay"], g["momentum"], g["centered"]) == \
        (1e-2, 0.99, 1e-8, 0, 0, False)
    g = optim.Adagrad(ps).param_groups[0]
    assert (g["lr"], g["lr_decay"], g["weight_decay"], g["initial_accumulator_value"],
            g["eps"]) == (1e-2, 0, 0, 0, 1e-10)


# ------------------------------------------------------------------ large tensors, threads

ALL_OPTS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam": lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True, weight_decay=0.01),
    "adamw": lambda ps: optim.AdamW(ps, lr=0.01),
    "rmsprop": lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
    "adagrad": lambda ps: optim.Adagrad(ps, lr=0.1, lr_decay=0.01),
}
ALL_REFS = {
    "sgd": lambda: RefSGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam": lambda: RefAdam(lr=0.01, amsgrad=True, weight_decay=0.01),
    "adamw": lambda: RefAdam(lr=0.01, weight_decay=1e-2, decoupled=True),
    "rmsprop": lambda: RefRMSprop(lr=0.01, momentum=0.5, centered=True),
    "adagrad": lambda: RefAdagrad(lr=0.1, lr_decay=0.01),
}
BIG = [(1000, 613), (5,)]  # 613000 elements: many thread chunks and a ragged tail


@pytest.fixture
def restore_threads():
    n = rnnkit.get_num_threads()
    yield
    rnnkit.set_num_threads(n)


@pytest.mark.parametrize("name", sorted(ALL_OPTS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_large_tensor_vs_numpy(name, dtype, restore_threads):
    rnnkit.set_num_threads(4)
    params = make_params(dtype, 3, BIG)
    ref = ALL_REFS[name]()
    expected = [p.data.copy() for p in params]
    opt = ALL_OPTS[name](params)
    rtol, atol = tol(dtype)
    for gs in grad_sequence(BIG, 3, dtype, 4):
        for i, (p, g) in enumerate(zip(params, gs)):
            p.grad = g
            expected[i] = ref.step(i, expected[i], g)
        opt.step()
    for i, p in enumerate(params):
        report(p.data, expected[i], rtol, atol, f"{name} param {i}")


@pytest.mark.parametrize("name", sorted(ALL_OPTS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_independent_of_thread_count(name, dtype, restore_threads):
    results = []
    for threads in (1, 2, 3):
        rnnkit.set_num_threads(threads)
        params = make_params(dtype, 5, BIG)
        opt = ALL_OPTS[name](params)
        for gs in grad_sequence(BIG, 3, dtype, 6):
            for p, g in zip(params, gs):
                p.grad = g
            opt.step()
        results.append([p.data for p in params])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


# ------------------------------------------------------------------ groups, step, zero_grad


def test_param_groups_own_lr_and_options():
    ps = make_params(np.float64)
    opt = optim.SGD([{"params": ps[:2]}, {"params": [ps[2]], "lr": 0.5, "momentum": 0.9}],
                    lr=0.1)
    refs = [RefSGD(lr=0.1), RefSGD(lr=0.5, momentum=0.9)]
    expected = [p.data.copy() for p in ps]
    for gs in grad_sequence(SHAPES, 3, np.float64, 7):
        for i, (p, g) in enumerate(zip(ps, gs)):
            p.grad = g
            expected[i] = refs[i // 2].step(i, expected[i], g)
        opt.step()
    for p, e in zip(ps, expected):
        report(p.data, e, 1e-14, 0, "group")
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert opt.param_groups[1]["momentum"] == 0.9 and opt.param_groups[0]["momentum"] == 0


def test_lr_change_in_param_group_takes_effect():
    p = P(np.ones(4), np.ones(4))
    opt = optim.SGD([p], lr=0.1)
    opt.step()
    opt.param_groups[0]["lr"] = 0.01
    opt.step()
    np.testing.assert_allclose(p.data, 1 - 0.1 - 0.01, rtol=1e-15)


def test_step_skips_params_without_grad_and_zero_grad():
    ps = make_params(np.float32)
    before = [p.data.copy() for p in ps]
    opt = optim.Adam(ps, lr=0.1)
    ps[0].grad = np.ones_like(ps[0].data)
    opt.step()
    assert not np.array_equal(ps[0].data, before[0])
    assert np.array_equal(ps[1].data, before[1]) and np.array_equal(ps[2].data, before[2])
    assert len(opt.state) == 1
    g = ps[0].grad
    opt.zero_grad()
    assert ps[0].grad is g and not g.any()
    assert ps[1].grad is None
    opt.zero_grad(set_to_none=True)
    assert ps[0].grad is None


def test_step_with_closure_returns_loss():
    p = P(np.ones(3), np.ones(3))
    opt = optim.SGD([p], lr=1.0)
    assert opt.step(lambda: 42.0) == 42.0
    np.testing.assert_array_equal(p.data, 0.0)


def test_non_contiguous_grad_is_accepted():
    data = np.arange(12.0).reshape(3, 4)
    grad = np.asfortranarray(np.ones((3, 4)) * np.arange(4.0))
    p = P(data.copy(), grad)
    optim.SGD([p], lr=0.5).step()
    np.testing.assert_array_equal(p.data, data - 0.5 * np.arange(4.0))


def test_state_buffers_are_owned_numpy_arrays_updated_in_place():
    p = P(np.ones(5, np.float32), np.ones(5, np.float32))
    opt = optim.Adam([p])
    opt.step()
    st = opt.state[id(p)]
    m = st["exp_avg"]
    opt.step()
    assert st["exp_avg"] is m and st["step"] == 2
    assert m.dtype == np.float32 and m.flags.c_contiguous


# ------------------------------------------------------------------ state_dict


def _fresh(name, dtype, seed=11):
    ps = make_params(dtype, seed)
    return ps, ALL_OPTS[name](ps)


def _json_roundtrip(sd):
    """Save the way a checkpoint would: arrays aside (.npz), everything else through JSON."""
    arrays = {}

    def strip(obj, path):
        if isinstance(obj, np.ndarray):
            arrays[path] = obj
            return {"__array__": path}
        if isinstance(obj, dict):
            return {k: strip(v, f"{path}/{k}") for k, v in obj.items()}
        if isinstance(obj, list):
            return [strip(v, f"{path}/{i}") for i, v in enumerate(obj)]
        return obj

    def put(obj):
        if isinstance(obj, dict):
            if set(obj) == {"__array__"}:
                return arrays[obj["__array__"]].copy()
            return {k: put(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [put(v) for v in obj]
        return obj

    return put(json.loads(json.dumps(strip(sd, ""))))


@pytest.mark.parametrize("name", sorted(ALL_OPTS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_round_trip_resumes_bitwise(name, dtype):
    grads = grad_sequence(SHAPES, 8, dtype, 12)
    ps, opt = _fresh(name, dtype)
    for gs in grads[:4]:
        for p, g in zip(ps, gs):
            p.grad = g
        opt.step()
    sd = _json_roundtrip(opt.state_dict())
    ps2 = [P(p.data.copy()) for p in ps]
    opt2 = ALL_OPTS[name](ps2)
    opt2.load_state_dict(sd)
    for gs in grads[4:]:
        for p, p2, g in zip(ps, ps2, gs):
            p.grad = g
            p2.grad = g.copy()
        opt.step()
        opt2.step()
    for p, p2 in zip(ps, ps2):
        assert np.array_equal(p.data, p2.data)


def test_state_dict_layout_and_copies():
    ps, opt = _fresh("adam", np.float32)
    for p in ps:
        p.grad = np.ones_like(p.data)
    opt.step()
    sd = opt.state_dict()
    assert sorted(sd) == ["param_groups", "state"]
    assert sorted(sd["state"]) == ["0", "1", "2"]
    assert sd["param_groups"][0]["params"] == [0, 1, 2]
    assert sd["param_groups"][0]["betas"] == [0.9, 0.999]
    st = sd["state"]["0"]
    assert st["step"] == 1 and sorted(st) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]
    st["exp_avg"][...] = 123  # a copy: the optimiser is unaffected
    assert not (opt.state[id(ps[0])]["exp_avg"] == 123).any()
    opt2 = optim.Adam(ps)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["betas"] == (0.9, 0.999)
    assert opt2.param_groups[0]["amsgrad"] is True and opt2.param_groups[0]["lr"] == 0.01


def test_load_state_dict_rejects_mismatch():
    ps, opt = _fresh("sgd", np.float64)
    sd = opt.state_dict()
    other = optim.SGD(make_params(np.float64)[:2], lr=0.1)
    with pytest.raises(ValueError, match="parameters"):
        other.load_state_dict(sd)
    with pytest.raises(ValueError, match="parameter groups"):
        optim.SGD([{"params": ps[:1]}, {"params": ps[1:]}]).load_state_dict(sd)
    for p in ps:
        p.grad = np.ones_like(p.data)
    opt.step()
    sd = opt.state_dict()
    shapes = [(2, 2), (13,), (3, 1, 4)]
    with pytest.raises(ValueError, match="shape"):
        optim.SGD([P(np.zeros(s)) for s in shapes], momentum=0.9).load_state_dict(sd)


# ------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize("ctor,kwargs,match", [
    (optim.SGD, dict(lr=-0.1), "lr"),
    (optim.SGD, dict(momentum=-0.5), "momentum"),
    (optim.SGD, dict(weight_decay=-1), "weight_decay"),
    (optim.SGD, dict(nesterov=True), "nesterov"),
    (optim.SGD, dict(nesterov=True, momentum=0.9, dampening=0.1), "nesterov"),
    (optim.Adam, dict(lr=-1e-3), "lr"),
    (optim.Adam, dict(betas=(1.0, 0.999)), r"betas\[0\]"),
    (optim.Adam, dict(betas=(0.9, -0.1)), r"betas\[1\]"),
    (optim.Adam, dict(eps=-1.0), "eps"),
    (optim.Adam, dict(weight_decay=-0.1), "weight_decay"),
    (optim.AdamW, dict(betas=(0.9, 1.5)), r"betas\[1\]"),
    (optim.RMSprop, dict(alpha=-0.1), "alpha"),
    (optim.RMSprop, dict(momentum=-1), "momentum"),
    (optim.RMSprop, dict(eps=-1), "eps"),
    (optim.Adagrad, dict(lr_decay=-1), "lr_decay"),
    (optim.Adagrad, dict(initial_accumulator_value=-1), "initial_accumulator_value"),
    (optim.Adagrad, dict(eps=-1), "eps"),
    (optim.Adam, dict(lr=float("nan")), "lr"),
])
def test_bad_hyperparameters_raise_value_error(ctor, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ctor(make_params(np.float32), **kwargs)


@pytest.mark.parametrize("ctor,kwargs,match", [
    (optim.SGD, dict(lr="0.1"), "lr"),
    (optim.Adam, dict(betas=0.9), "betas"),
    (optim.Adam, dict(amsgrad=1), "amsgrad"),
])
def test_bad_hyperparameter_types_raise_type_error(ctor, kwargs, match):
    with pytest.raises(TypeError, match=match):
        ctor(make_params(np.float32), **kwargs)


def test_bad_group_hyperparameter_is_checked():
    ps = make_params(np.float32)
    with pytest.raises(ValueError, match="lr"):
        optim.Adam([{"params": ps[:1]}, {"params": ps[1:], "lr": -1.0}])
    with pytest.raises(ValueError, match="unknown"):
        optim.Adam([{"params": ps, "momentum": 0.9}])


def test_bad_params_raise():
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([])
    with pytest.raises(TypeError, match="iterable"):
        optim.SGD(P(np.zeros(3)))
    with pytest.raises(TypeError, match=r"\.data"):
        optim.SGD([P([1.0, 2.0])])
    with pytest.raises(TypeError, match="float32 or float64"):
        optim.SGD([P(np.zeros(3, np.int64))])
    with pytest.raises(ValueError, match="C-contiguous"):
        optim.SGD([P(np.zeros((4, 4))[:, ::2])])
    p = P(np.zeros(3))
    with pytest.raises(ValueError, match="more than one"):
        optim.SGD([{"params": [p]}, {"params": [p]}])


@pytest.mark.parametrize("name", sorted(ALL_OPTS))
def test_mismatched_grad_raises(name):
    p = P(np.zeros((3, 4), np.float32))
    opt = ALL_OPTS[name]([p])
    p.grad = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"grad has shape \(4, 3\)"):
        opt.step()
    p.grad = np.zeros((3, 4), np.float64)
    with pytest.raises(TypeError, match="grad has dtype float64"):
        opt.step()
    p.grad = [[0.0] * 4] * 3
    with pytest.raises(TypeError, match="grad must be a numpy.ndarray"):
        opt.step()
    p.grad = p.data
    with pytest.raises(ValueError, match="shares memory"):
        opt.step()
    assert not p.data.any()


def test_kernel_binding_checks():
    from rnnkit import _core
    p = np.zeros(5, np.float32)
    kw = dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=False,
              maximize=False, first_step=True)
    with pytest.raises(TypeError, match="grad"):
        _core.sgd_update(p, np.zeros(5, np.float32), np.zeros(5), **kw)
    with pytest.raises(ValueError, match="momentum_buffer: shape"):
        _core.sgd_update(p, np.zeros(6, np.float32), np.zeros(5, np.float32), **kw)
    with pytest.raises(TypeError, match="momentum_buffer"):
        _core.sgd_update(p, None, np.zeros(5, np.float32), **kw)
    ro = np.zeros(5, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="param: array is read-only"):
        _core.sgd_update(ro, np.zeros(5, np.float32), np.zeros(5, np.float32), **kw)
    # one name for both dtypes: the float64 overload, and no silent conversion of param
    p64 = np.zeros(5)
    _core.sgd_update(p64, np.zeros(5), np.ones(5), **kw)
    np.testing.assert_array_equal(p64, np.full(5, -0.1))
    with pytest.raises(TypeError):
        _core.sgd_update(np.zeros(5, np.float16), np.zeros(5, np.float16),
                         np.zeros(5, np.float16), **kw)


# ------------------------------------------------------------------ clipping vs numpy


def grads_params(dtype, seed=0, scale=1.0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [P(np.zeros(s, dtype), (scale * rng.standard_normal(s)).astype(dtype))
            for s in shapes]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, 0.5, float("inf"), "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_vs_numpy(dtype, norm_type, max_norm):
    ps = grads_params(dtype, 1, scale=2.0)
    flat = np.concatenate([p.grad.ravel().astype(np.float64) for p in ps])
    p_ = float(norm_type)
    expected = np.abs(flat).max() if np.isinf(p_) else (np.abs(flat) ** p_).sum() ** (1 / p_)
    before = [p.grad.copy() for p in ps]
    total = optim.clip_grad_norm_(ps, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    rtol = 1e-13 if dtype == np.float64 else 1e-6
    report(total, expected, rtol, 0, "total norm")
    coef = min(1.0, max_norm / (expected + 1e-6))
    for p, b in zip(ps, before):
        report(p.grad, b.astype(np.float64) * coef, rtol * 2, 0, "clipped grad")
        assert p.grad.dtype == dtype
    if max_norm < expected:
        flat = np.concatenate([p.grad.ravel().astype(np.float64) for p in ps])
        got = np.abs(flat).max() if np.isinf(p_) else (np.abs(flat) ** p_).sum() ** (1 / p_)
        assert got == pytest.approx(max_norm, rel=1e-5)


def test_clip_grad_norm_large_tensor_and_threads(restore_threads):
    rng = np.random.default_rng(3)
    g = rng.standard_normal(1_000_003).astype(np.float32)
    norms = []
    for t in (1, 2, 3):
        rnnkit.set_num_threads(t)
        norms.append(optim.clip_grad_norm_([P(None, g.copy())], 1e9))
    assert norms[0] == norms[1] == norms[2]
    assert norms[0] == pytest.approx(float(np.linalg.norm(g.astype(np.float64))), rel=1e-7)


def test_clip_grad_norm_skips_none_single_param_and_empty():
    ps = grads_params(np.float64, 2)
    ps[1].grad = None
    expected = np.sqrt(sum((p.grad ** 2).sum() for p in ps if p.grad is not None))
    assert optim.clip_grad_norm_(ps, 1e9) == pytest.approx(expected, rel=1e-14)
    one = grads_params(np.float64, 3)[0]
    assert optim.clip_grad_norm_(one, 1e9) == pytest.approx(np.linalg.norm(one.grad), rel=1e-14)
    assert optim.clip_grad_norm_([], 1.0) == 0.0
    assert optim.clip_grad_norm_([P(np.zeros(2))], 1.0) == 0.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("norm_type", [2.0, float("inf"), 1.5])
def test_clip_grad_norm_non_finite(bad, norm_type):
    ps = grads_params(np.float32, 4)
    ps[1].grad[3] = bad
    before = [p.grad.copy() for p in ps]
    with pytest.raises(RuntimeError, match="non-finite"):
        optim.clip_grad_norm_(ps, 1.0, norm_type=norm_type, error_if_nonfinite=True)
    for p, b in zip(ps, before):  # untouched on error
        assert np.array_equal(p.grad, b, equal_nan=True)
    total = optim.clip_grad_norm_(ps, 1.0, norm_type=norm_type)
    if np.isnan(bad):
        assert np.isnan(total)
        assert all(np.isnan(p.grad).all() for p in ps)  # scaled by NaN, as torch
    else:
        assert total == np.inf
        assert not ps[0].grad.any()  # scaled by 1 / inf = 0, as torch


def test_clip_grad_value_vs_numpy():
    for dtype in DTYPES:
        ps = grads_params(dtype, 5, scale=3.0)
        ps[0].grad[0, 0] = np.nan
        expected = [np.clip(p.grad.astype(np.float64), -1.25, 1.25) for p in ps]
        assert optim.clip_grad_value_(ps, 1.25) is None
        for p, e in zip(ps, expected):
            assert p.grad.dtype == dtype
            np.testing.assert_array_equal(p.grad, e.astype(dtype))
        assert np.isnan(ps[0].grad[0, 0])


def test_clip_bad_arguments():
    ps = grads_params(np.float32, 6)
    with pytest.raises(ValueError, match="max_norm"):
        optim.clip_grad_norm_(ps, -1.0)
    with pytest.raises(ValueError, match="norm_type"):
        optim.clip_grad_norm_(ps, 1.0, norm_type=0)
    with pytest.raises(TypeError, match="max_norm"):
        optim.clip_grad_norm_(ps, "1")
    with pytest.raises(ValueError, match="clip_value"):
        optim.clip_grad_value_(ps, -1.0)
    with pytest.raises(TypeError, match="grad"):
        optim.clip_grad_norm_([P(None, [1.0, 2.0])], 1.0)

