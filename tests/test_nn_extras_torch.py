"""The activation layers, named_modules, Module.double and freezing against torch (skipped
where torch is not installed): same inputs and weights, same outputs and gradients."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import rnnkit.nn as nn  # noqa: E402
from helpers import assert_close  # noqa: E402

TDT = {"float32": torch.float32, "float64": torch.float64}
# float32: torch and numpy round elementwise functions differently by an ulp or so.
TOL = {"float32": (2e-6, 2e-6), "float64": (1e-13, 1e-14)}

PAIRS = {
    "Tanh": (lambda: nn.Tanh(), lambda: torch.nn.Tanh()),
    "ReLU": (lambda: nn.ReLU(), lambda: torch.nn.ReLU()),
    "Sigmoid": (lambda: nn.Sigmoid(), lambda: torch.nn.Sigmoid()),
    "GELU": (lambda: nn.GELU(), lambda: torch.nn.GELU()),
    "GELU-tanh": (lambda: nn.GELU("tanh"), lambda: torch.nn.GELU(approximate="tanh")),
    "LogSoftmax": (lambda: nn.LogSoftmax(), lambda: torch.nn.LogSoftmax(dim=-1)),
    "LogSoftmax-dim1": (lambda: nn.LogSoftmax(1), lambda: torch.nn.LogSoftmax(dim=1)),
    "Softmax-dim0": (lambda: nn.Softmax(0), lambda: torch.nn.Softmax(dim=0)),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_activation_matches_torch(name, dtype):
    rng = np.random.default_rng(0)
    # Wide inputs: tails of GELU/sigmoid, large logits for the softmaxes.
    x = (rng.standard_normal((4, 5, 7)) * 6).astype(dtype)
    dy = rng.standard_normal((4, 5, 7)).astype(dtype)
    ours, theirs = PAIRS[name][0](), PAIRS[name][1]()
    y = ours(x)
    dx = ours.backward(dy)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.tensor(dy))
    rtol, atol = TOL[dtype]
    assert y.dtype == np.dtype(dtype) and dx.dtype == np.dtype(dtype)
    assert_close(y, yt.detach().numpy(), rtol, atol, f"{name} y")
    assert_close(dx, xt.grad.numpy(), rtol, atol, f"{name} dx")


@pytest.mark.parametrize("cls", ["LogSoftmax", "Softmax"])
def test_softmaxes_with_masked_and_infinite_logits_match_torch(cls):
    # -inf masks (attention, constrained decoding), a fully masked row and a +inf logit.
    x = np.array([[0.5, -np.inf, 2.0, -np.inf], [-np.inf] * 4, [1.0, np.inf, 0.0, -1.0],
                  [3.0, -2.0, 0.0, 1e30]])
    dy = np.arange(16, dtype=np.float64).reshape(4, 4) / 7
    ours = getattr(nn, cls)()
    y = ours(x)
    xt = torch.tensor(x, requires_grad=True)
    yt = getattr(torch.nn, cls)(dim=-1)(xt)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-14, atol=1e-300)
    ok = np.isfinite(yt.detach().numpy()).all(axis=1)     # rows torch gives finite values for
    dx = ours.backward(dy)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(dx[ok], xt.grad.numpy()[ok], rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_at_huge_inputs_matches_torch(approximate):
    x = np.array([-1e200, -1e10, -40.0, 40.0, 1e10, 1e200])
    ours = nn.GELU(approximate)
    y = ours(x)
    dx = ours.backward(np.ones_like(x))
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.GELU(approximate=approximate)(xt).sum().backward()
    theirs = torch.nn.GELU(approximate=approximate)(torch.tensor(x)).numpy()
    np.testing.assert_allclose(y, theirs, rtol=1e-15, atol=1e-300)
    torch_dx = xt.grad.numpy()
    finite = np.isfinite(torch_dx)        # torch's tanh form gives NaN where x² overflows
    np.testing.assert_allclose(dx[finite], torch_dx[finite], rtol=1e-15, atol=1e-300)
    np.testing.assert_array_equal(dx, [0, 0, 0, 1, 1, 1])


def test_sequential_with_activations_matches_torch():
    rng = np.random.default_rng(1)
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.GELU(), torch.nn.Linear(6, 3),
                             torch.nn.LogSoftmax(dim=-1)).double()
    rm = nn.Sequential(nn.Linear(4, 6, dtype="float64"), nn.GELU(),
                       nn.Linear(6, 3, dtype="float64"), nn.LogSoftmax())
    rm.load_state_dict(tm.state_dict())
    x = rng.standard_normal((5, 4))
    target = rng.integers(0, 3, 5)
    yt = tm(torch.tensor(x))
    torch.nn.functional.nll_loss(yt, torch.tensor(target), reduction="sum").backward()
    y = rm(x)
    dy = np.zeros_like(y)
    dy[np.arange(5), target] = -1.0              # d(sum of NLL)/d(log-probabilities)
    rm.backward(dy)
    assert_close(y, yt.detach().numpy(), 1e-13, 1e-14, "y")
    theirs = dict(tm.named_parameters())
    for n, p in rm.named_parameters():
        assert_close(p.grad, theirs[n].grad.numpy(), 1e-12, 1e-13, n)


def test_named_modules_match_torch():
    shared_r, shared_t = nn.ReLU(), torch.nn.ReLU()
    rm = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Tanh(), shared_r), shared_r)
    tm = torch.nn.Sequential(torch.nn.Linear(2, 2),
                             torch.nn.Sequential(torch.nn.Tanh(), shared_t), shared_t)
    for kw in ({}, {"remove_duplicate": False}, {"prefix": "m"}):
        ours = [(n, type(m).__name__) for n, m in rm.named_modules(**kw)]
        theirs = [(n, type(m).__name__) for n, m in tm.named_modules(**kw)]
        assert ours == theirs, kw
    assert [type(m).__name__ for m in rm.modules()] == [type(m).__name__ for m in tm.modules()]


def test_double_matches_torch_double():
    torch.manual_seed(2)
    tm = torch.nn.LSTM(3, 4, num_layers=2)
    rm = nn.LSTM(3, 4, num_layers=2)
    rm.load_state_dict(tm.state_dict())
    tm.double()
    rm.double()
    x = np.random.default_rng(2).standard_normal((6, 2, 3))
    y, _ = rm(x)
    yt, _ = tm(torch.tensor(x))
    assert y.dtype == np.float64
    assert_close(y, yt.detach().numpy(), 1e-13, 1e-14, "y")


def test_frozen_layer_matches_torch_freezing():
    torch.manual_seed(3)
    temb, tlstm, tlin = torch.nn.Embedding(6, 3), torch.nn.LSTM(3, 4), torch.nn.Linear(4, 2)
    for m in (temb, tlstm, tlin):
        m.double()
    rm = nn.Sequential(nn.Embedding(6, 3, dtype="float64"), nn.LSTM(3, 4, dtype="float64"),
                       nn.Last(), nn.Linear(4, 2, dtype="float64"))
    rm[0].load_state_dict(temb.state_dict())
    rm[1].load_state_dict(tlstm.state_dict())
    rm[3].load_state_dict(tlin.state_dict())
    tlstm.requires_grad_(False)
    rm[1].requires_grad_(False)
    tokens = np.random.default_rng(3).integers(0, 6, (5, 2))
    out_t, _ = tlstm(temb(torch.tensor(tokens)))
    tlin(out_t[-1]).sum().backward()
    rm(tokens)
    rm.backward(np.ones((2, 2)))
    assert all(p.grad is None for p in tlstm.parameters())
    assert all(not p.grad.any() for p in rm[1].parameters())
    assert_close(rm[0].weight.grad, temb.weight.grad.numpy(), 1e-12, 1e-13, "embedding grad")
    assert_close(rm[3].weight.grad, tlin.weight.grad.numpy(), 1e-12, 1e-13, "linear grad")
