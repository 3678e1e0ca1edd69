"""The nn pieces torch users reach for first: activation layers, Module.to/double/float,
named_modules, freezing parameters (requires_grad) and empty batches with ``lengths=[]``.

References are plain numpy or Python's math module: central finite differences for every
backward, math.erf/erfc for GELU, models built natively in the other dtype for ``to``, and
models that were never frozen for ``requires_grad``."""

import math

import numpy as np
import pytest

import rnnkit
import rnnkit.nn as nn
from helpers import assert_close
from rnnkit.optim import SGD

ACTIVATIONS = {
    "Tanh": lambda: nn.Tanh(),
    "ReLU": lambda: nn.ReLU(),
    "Sigmoid": lambda: nn.Sigmoid(),
    "GELU": lambda: nn.GELU(),
    "GELU-tanh": lambda: nn.GELU(approximate="tanh"),
    "LogSoftmax": lambda: nn.LogSoftmax(),
    "LogSoftmax-dim0": lambda: nn.LogSoftmax(dim=0),
    "Softmax": lambda: nn.Softmax(dim=1),
}


def _numeric_dx(layer, x, w, eps=1e-6):
    """Central differences of sum(w * layer(x)) with respect to every element of x."""
    layer.eval()
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (np.sum(w * layer(xp)) - np.sum(w * layer(xm))) / (2 * eps)
    layer.train()
    return g


def _away_from_kink(rng, shape):
    # ReLU has a kink at 0: keep every element at least 0.1 away so differences are exact.
    x = rng.standard_normal(shape) * 2
    return np.where(np.abs(x) < 0.1, 0.5, x)


# ------------------------------------------------------------------ activations
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_backward_matches_finite_differences(name):
    rng = np.random.default_rng(0)
    x = _away_from_kink(rng, (3, 4, 5))
    w = rng.standard_normal((3, 4, 5))
    layer = ACTIVATIONS[name]()
    y = layer(x)
    assert y.shape == x.shape and y.dtype == np.float64
    dx = layer.backward(w)
    assert_close(dx, _numeric_dx(layer, x, w), rtol=1e-6, atol=1e-8, name=f"{name} dx")


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_float32_keeps_dtype_and_matches_float64(name):
    rng = np.random.default_rng(1)
    x = _away_from_kink(rng, (4, 6))
    dy = rng.standard_normal((4, 6))
    l32, l64 = ACTIVATIONS[name](), ACTIVATIONS[name]()
    y32 = l32(x.astype(np.float32))
    dx32 = l32.backward(dy.astype(np.float32))
    y64 = l64(x)
    dx64 = l64.backward(dy)
    assert y32.dtype == np.float32 and dx32.dtype == np.float32
    assert_close(y32, y64, rtol=1e-5, atol=1e-6, name=f"{name} y")
    assert_close(dx32, dx64, rtol=1e-5, atol=1e-5, name=f"{name} dx")


def test_activation_forward_values_by_hand():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    assert_close(nn.Tanh()(x), [math.tanh(v) for v in x], 1e-15, 0, "tanh")
    assert_close(nn.ReLU()(x), [0.0, 0.0, 0.0, 0.5, 3.0], 0, 0, "relu")
    assert_close(nn.Sigmoid()(x), [1 / (1 + math.exp(-v)) for v in x], 1e-15, 0, "sigmoid")
    u = [math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3) for v in x]
    assert_close(nn.GELU("tanh")(x), [0.5 * v * (1 + math.tanh(a)) for v, a in zip(x, u)],
                 1e-15, 1e-300, "gelu tanh")
    z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    lse = [math.log(math.exp(1) + math.exp(2) + math.exp(3)), math.log(3.0)]
    assert_close(nn.LogSoftmax()(z), z - np.array(lse)[:, None], 1e-15, 1e-15, "logsoftmax")
    assert_close(nn.Softmax()(z)[1], [1 / 3] * 3, 1e-15, 0, "softmax")


def test_gelu_exact_matches_math_erf_on_a_wide_grid():
    x = np.concatenate([np.linspace(-40, 40, 4001), [-1e-8, 1e-8, 1e6, -1e6]])
    y = nn.GELU()(x)
    # x Φ(x) with Φ from math.erf where it is well conditioned (x >= 0) and math.erfc in the
    # left tail (where 1 + erf loses every digit); relative to each value.
    ref = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) if v >= 0
                    else 0.5 * v * math.erfc(-v / math.sqrt(2)) for v in x])
    tiny = np.abs(ref) < 1e-300        # underflowed tail: compare absolutely
    assert_close(y[~tiny], ref[~tiny], rtol=1e-12, atol=0, name="gelu exact")
    assert np.all(np.abs(y[tiny]) < 1e-300)


def test_gelu_exact_on_an_input_larger_than_one_block():
    # Φ is evaluated in blocks of elements: every element must get its own value.
    x = np.random.default_rng(4).standard_normal((7, 5003)) * 3
    y = nn.GELU()(x)
    ref = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in x.ravel()]).reshape(x.shape)
    assert_close(y, ref, rtol=1e-12, atol=1e-300, name="gelu blocks")


def test_sigmoid_and_logsoftmax_do_not_overflow():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    y = nn.Sigmoid()(x)           # filterwarnings=error: an overflow warning would fail here
    assert y[0] == 0.0 and y[-1] == 1.0 and y[2] == 0.5
    ls = nn.LogSoftmax()(np.array([[1000.0, 0.0, -1000.0]]))
    assert_close(ls, [[0.0, -1000.0, -2000.0]], 1e-15, 1e-12, "logsoftmax large")
    assert_close(nn.LogSoftmax()(np.array([[1e4, 1e4]])), [[-math.log(2)] * 2], 1e-15, 0,
                 "logsoftmax ties")


@pytest.mark.parametrize("name", ["Tanh", "ReLU", "Sigmoid", "GELU", "GELU-tanh"])
def test_elementwise_activation_takes_a_scalar(name):
    layer, ref = ACTIVATIONS[name](), ACTIVATIONS[name]()
    y = layer(0.7)
    dx = layer.backward(2.0)
    assert isinstance(y, np.ndarray) and y.shape == () and dx.shape == ()
    assert float(y) == ref(np.array([0.7]))[0]
    assert float(dx) == ref.backward(np.array([2.0]))[0]


def test_softmax_needs_an_axis():
    with pytest.raises(ValueError, match="at least 1 dimension"):
        nn.LogSoftmax()(np.float64(1.0))


def test_activation_integer_input_becomes_float64():
    y = nn.ReLU()(np.array([-1, 2]))
    assert y.dtype == np.float64 and list(y) == [0.0, 2.0]


def test_activation_protocol_errors_and_modes():
    t = nn.Tanh()
    with pytest.raises(RuntimeError, match="training-mode forward"):
        t.backward(np.zeros(3))
    y = t(np.array([0.1, 0.2, 0.3]))
    assert not y.flags.writeable             # backward reads y itself
    with pytest.raises(ValueError, match=r"dy has shape \(2,\), expected \(3,\)"):
        t.backward(np.zeros(2))
    assert_close(t.backward(np.ones(3)), 1 - np.tanh([0.1, 0.2, 0.3]) ** 2, 1e-15, 0, "kept")
    with pytest.raises(RuntimeError):
        t.backward(np.ones(3))               # one backward per forward
    t.eval()
    t(np.array([1.0]))
    with pytest.raises(RuntimeError):
        t.backward(np.ones(1))               # eval keeps no cache
    with pytest.raises(TypeError, match="numeric"):
        nn.ReLU()(np.array(["a"]))
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh', got 'fast'"):
        nn.GELU("fast")
    with pytest.raises(TypeError, match="dim must be an int, got float"):
        nn.LogSoftmax(dim=1.5)
    with pytest.raises(ValueError, match=r"dim=2 is out of range for x of shape \(3, 4\)"):
        nn.LogSoftmax(dim=2)(np.zeros((3, 4)))


def test_activations_inside_sequential_backward_matches_finite_differences():
    rng = np.random.default_rng(3)
    model = nn.Sequential(nn.Linear(4, 6, dtype="float64", seed=1), nn.GELU(),
                          nn.Linear(6, 5, dtype="float64", seed=2), nn.Sigmoid(), nn.Tanh(),
                          nn.ReLU(), nn.LogSoftmax())
    x = rng.standard_normal((3, 4))
    w = rng.standard_normal((3, 5))
    model(x)
    dx = model.backward(w)
    # ReLU after Tanh∘Sigmoid (positive) is the identity here, so no kink to fear.
    assert_close(dx, _numeric_dx(model, x, w), rtol=1e-6, atol=1e-8, name="sequential dx")
    grad = model[0].weight.grad.copy()
    num = np.zeros_like(grad)
    p = model[0].weight.data
    model.eval()
    for i in np.ndindex(p.shape):
        old = p[i]
        p[i] = old + 1e-6
        up = np.sum(w * model(x))
        p[i] = old - 1e-6
        down = np.sum(w * model(x))
        p[i] = old
        num[i] = (up - down) / 2e-6
    assert_close(grad, num, rtol=1e-6, atol=1e-8, name="0.weight grad")


def test_activations_save_and_load(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4, seed=0), nn.GELU(approximate="tanh"), nn.ReLU(),
                          nn.Sigmoid(), nn.Tanh(), nn.Softmax(dim=0), nn.LogSoftmax(dim=-1))
    path = tmp_path / "m.npz"
    rnnkit.save(model, path)
    loaded = rnnkit.load(path)
    assert [type(m).__name__ for m in loaded] == [type(m).__name__ for m in model]
    assert loaded[1].approximate == "tanh" and loaded[5].dim == 0
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), model(x))


# ------------------------------------------------------------------ Module.to / double / float
def _stack(dtype, seed=0):
    return nn.Sequential(nn.Embedding(7, 3, dtype=dtype, seed=seed),
                         nn.LSTM(3, 4, num_layers=2, bidirectional=True, dtype=dtype, seed=seed),
                         nn.Last(), nn.Linear(8, 2, dtype=dtype, seed=seed), nn.Tanh())


def _train(model, tokens, lengths, target, steps=3, lr=0.1):
    opt = SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        y = model(tokens, lengths=lengths)
        model.backward(y - target)
        opt.step()
    return model(tokens, lengths=lengths)


def test_double_converts_in_place_and_trains_like_a_float64_model():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 7, (5, 3))
    lengths = np.array([5, 2, 0])
    target = rng.standard_normal((3, 2))
    model = _stack("float32")
    params = list(model.parameters())
    reference = _stack("float64")
    reference.load_state_dict(model.state_dict())      # the float32 values, as float64
    assert model.double() is model
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    for p in model.parameters():
        assert p.data.dtype == np.float64 and p.grad.dtype == np.float64
    assert model[1].dtype == np.float64 and model[3].dtype == np.float64
    assert model[1].get_config()["dtype"] == "float64"
    y = model(tokens, lengths=lengths)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, reference(tokens, lengths=lengths))
    np.testing.assert_array_equal(_train(model, tokens, lengths, target),
                                  _train(reference, tokens, lengths, target))


def test_float_converts_back_and_matches_a_float32_model():
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 7, (4, 2))
    target = rng.standard_normal((2, 2))
    model = _stack("float64", seed=3)
    reference = _stack("float32", seed=3)
    reference.load_state_dict(model.state_dict())
    assert model.float() is model
    assert all(p.dtype == np.float32 for p in model.parameters())
    np.testing.assert_array_equal(_train(model, tokens, None, target),
                                  _train(reference, tokens, None, target))
    assert model.to("float64") is model and model.to(np.float64) is model
    assert all(p.dtype == np.float64 for p in model.parameters())


def test_to_drops_caches_packed_weights_and_converts_carried_state():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 2, 3))
    lstm = nn.LSTM(3, 4, seed=0)
    lstm(x)
    lstm.double()
    with pytest.raises(RuntimeError, match="training-mode forward"):
        lstm.backward(np.zeros((1, 2, 4)))   # the float32 cache is gone
    # Eval single steps use packed weights: they must be repacked in the new dtype.
    cell = nn.GRUCell(3, 4, seed=5).eval()
    ref = nn.GRUCell(3, 4, seed=5, dtype="float64").eval()
    ref.load_state_dict(cell.state_dict())
    cell(x[0].astype(np.float32))
    cell.double()
    h = cell(x[0])
    assert h.dtype == np.float64
    np.testing.assert_array_equal(h, ref(x[0]))
    # A carried state (truncated BPTT) continues in the new dtype.
    rnn = nn.RNN(3, 4, seed=1)
    rnn.carry_state = True
    rnn(x)
    carried64 = rnn._carried[0].astype(np.float64)
    rnn.double()
    y, h_n = rnn(x)
    ref_rnn = nn.RNN(3, 4, seed=1, dtype="float64")
    ref_rnn.load_state_dict(rnn.state_dict())
    y_ref, _ = ref_rnn(x, carried64)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, y_ref)


def test_to_the_same_dtype_changes_nothing():
    lstm = nn.LSTM(3, 4, seed=0)
    arrays = [p.data for p in lstm.parameters()]
    y, _ = lstm(np.ones((2, 1, 3), np.float32))
    assert lstm.float() is lstm and lstm.to("float32") is lstm
    assert all(p.data is a for p, a in zip(lstm.parameters(), arrays))
    dx, _ = lstm.backward(np.ones_like(y))    # the training cache survived
    assert dx.shape == (2, 1, 3)


def test_to_rejects_other_dtypes():
    with pytest.raises(TypeError, match="dtype must be 'float32' or 'float64', got 'int32'"):
        nn.Linear(2, 2).to("int32")
    with pytest.raises(TypeError, match="float16"):
        nn.Linear(2, 2).to(np.float16)


# ------------------------------------------------------------------ named_modules
def test_named_modules_order_prefixes_and_duplicates():
    shared = nn.Tanh()
    inner = nn.Sequential(nn.Linear(2, 2), shared)
    model = nn.Sequential(nn.Linear(2, 2), inner, shared)
    names = [n for n, _ in model.named_modules()]
    assert names == ["", "0", "1", "1.0", "1.1"]            # shared once, first name
    mods = [m for _, m in model.named_modules()]
    assert mods[0] is model and mods[2] is inner and mods[4] is shared
    assert list(model.modules()) == mods
    all_names = [n for n, _ in model.named_modules(remove_duplicate=False)]
    assert all_names == ["", "0", "1", "1.0", "1.1", "2"]
    assert [n for n, _ in inner.named_modules(prefix="enc")] == ["enc", "enc.0", "enc.1"]


# ------------------------------------------------------------------ requires_grad
def test_parameter_requires_grad_flag():
    p = nn.Parameter(np.zeros(3))
    assert p.requires_grad is True
    p.requires_grad = False
    assert p.requires_grad is False
    assert p.requires_grad_() is p and p.requires_grad is True
    with pytest.raises(TypeError, match="requires_grad must be True or False, got 1"):
        p.requires_grad = 1
    assert nn.Parameter(np.zeros(2), requires_grad=False).requires_grad is False
    layer = nn.LSTM(2, 3)
    assert layer.requires_grad_(False) is layer
    assert not any(q.requires_grad for q in layer.parameters())
    assert len(list(layer.parameters())) == 4                # frozen ones are still listed


def _clf(seed=0):
    return nn.Sequential(nn.Embedding(9, 3, dtype="float64", seed=seed),
                         nn.LSTM(3, 5, dtype="float64", seed=seed + 1), nn.Last(),
                         nn.Linear(5, 2, dtype="float64", seed=seed + 2))


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 9, (6, 4)), np.array([6, 3, 1, 0]), rng.standard_normal((4, 2))


@pytest.mark.parametrize("frozen", ["0", "1"])
def test_frozen_layer_keeps_its_grad_and_others_match_an_unfrozen_model(frozen):
    tokens, lengths, target = _batch()
    model, reference = _clf(), _clf()
    getattr(model, frozen).requires_grad_(False)
    kept = {n: p for n, p in model.named_parameters() if n.startswith(frozen + ".")}
    before = {n: p.grad for n, p in kept.items()}
    kept[next(iter(kept))].grad = None                      # None must stay None too
    for m in (model, reference):
        m(tokens, lengths=lengths)
        m.backward(np.ones((4, 2)))
    ref = dict(reference.named_parameters())
    for n, p in model.named_parameters():
        if n in kept:
            first = n == next(iter(kept))
            assert (p.grad is None) if first else (p.grad is before[n] and not p.grad.any()), n
        else:
            np.testing.assert_array_equal(p.grad, ref[n].grad)


@pytest.mark.parametrize("frozen", ["0", "1"])
def test_training_with_a_frozen_layer_matches_training_only_the_others(frozen):
    tokens, lengths, target = _batch(1)
    model, reference = _clf(4), _clf(4)
    getattr(model, frozen).requires_grad_(False)
    start = {n: p.data.copy() for n, p in model.named_parameters()}
    # The reference freezes nothing: its optimiser is simply not given the frozen layer.
    ref_params = [p for n, p in reference.named_parameters() if not n.startswith(frozen + ".")]
    opts = [SGD(model.parameters(), lr=0.2), SGD(ref_params, lr=0.2)]
    for _ in range(4):
        for m, opt in zip((model, reference), opts):
            opt.zero_grad()
            y = m(tokens, lengths=lengths)
            m.backward(y - target)
            opt.step()
    ref = dict(reference.named_parameters())
    for n, p in model.named_parameters():
        if n.startswith(frozen + "."):
            np.testing.assert_array_equal(p.data, start[n])
        else:
            assert not np.array_equal(p.data, start[n]), n
        np.testing.assert_array_equal(p.data, ref[n].data)


def test_frozen_linear_bias_and_cell_weight():
    rng = np.random.default_rng(5)
    lin, ref = nn.Linear(3, 2, dtype="float64", seed=0), nn.Linear(3, 2, dtype="float64", seed=0)
    lin.bias.requires_grad = False
    x, dy = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    for m in (lin, ref):
        m(x)
        dx = m.backward(dy)
    np.testing.assert_array_equal(lin.weight.grad, ref.weight.grad)
    assert not lin.bias.grad.any() and ref.bias.grad.any()
    cell = nn.LSTMCell(3, 2, dtype="float64", seed=1)
    ref_cell = nn.LSTMCell(3, 2, dtype="float64", seed=1)
    cell.weight_hh.requires_grad = False
    h0 = (rng.standard_normal((4, 2)), rng.standard_normal((4, 2)))
    for c in (cell, ref_cell):
        c(x, h0)
        dx = c.backward(dy)[0]
    assert not cell.weight_hh.grad.any()
    np.testing.assert_array_equal(cell.weight_ih.grad, ref_cell.weight_ih.grad)
    assert dx.shape == x.shape


def test_save_and_load_ignore_requires_grad(tmp_path):
    model = _clf()
    model[1].requires_grad_(False)
    path = tmp_path / "frozen.npz"
    rnnkit.save(model, path)
    loaded = rnnkit.load(path)               # a fresh model: everything trainable, as torch
    assert all(p.requires_grad for p in loaded.parameters())
    for (n, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=n)
    target = _clf(7)
    target[1].requires_grad_(False)
    rnnkit.load(path, into=target)           # loading values leaves the flags alone
    assert [p.requires_grad for p in target.parameters()] == \
        [p.requires_grad for p in model.parameters()]
    assert set(model.state_dict()) == set(_clf().state_dict())


# ------------------------------------------------------------------ empty batches
@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_empty_batch_with_empty_lengths_list(cls, batch_first, bidirectional):
    layer = cls(3, 4, num_layers=2, batch_first=batch_first, bidirectional=bidirectional)
    d = 2 if bidirectional else 1
    x = np.zeros((0, 5, 3) if batch_first else (5, 0, 3), np.float32)
    for mode in ("train", "eval"):
        getattr(layer, mode)()
        for lengths in ([], (), None):
            y, state = layer(x, lengths=lengths)
            h_n = state[0] if cls is nn.LSTM else state
            assert y.shape == ((0, 5, d * 4) if batch_first else (5, 0, d * 4))
            assert h_n.shape == (2 * d, 0, 4)
        if mode == "train":
            dx, _ = layer.backward(np.zeros_like(y))
            assert dx.shape == x.shape


def test_zero_steps_in_eval_give_h0_and_empty_sequential():
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True).eval()
    h0 = np.arange(4 * 2 * 4, dtype=np.float32).reshape(4, 2, 4)
    c0 = -h0
    y, (h_n, c_n) = lstm(np.zeros((0, 2, 3), np.float32), (h0, c0), lengths=[0, 0])
    assert y.shape == (0, 2, 8)
    np.testing.assert_array_equal(h_n, h0)     # no step: the final state is the initial one
    np.testing.assert_array_equal(c_n, c0)
    model = nn.Sequential(nn.Embedding(5, 3), nn.GRU(3, 4), nn.Last(), nn.Linear(4, 2))
    out = model(np.zeros((6, 0), np.int64), lengths=[])
    assert out.shape == (0, 2)
    assert model.backward(np.zeros((0, 2))) is None
    assert nn.Last()(np.zeros((3, 0, 2)), lengths=[]).shape == (0, 2)


def test_lengths_of_the_wrong_size_still_name_the_argument():
    with pytest.raises(ValueError, match=r"lengths has shape \(0,\), expected \(2,\)"):
        nn.GRU(3, 4)(np.zeros((5, 2, 3)), lengths=[])
