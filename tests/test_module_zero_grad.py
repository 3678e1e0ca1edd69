"""Module.zero_grad after optimizer.zero_grad(set_to_none=True), and its own set_to_none."""

import numpy as np

from rnnkit import nn, optim


def _model():
    return nn.Sequential(nn.LSTM(3, 4, batch_first=True, seed=0), nn.Linear(4, 2, seed=1))


def _backward(model, x):
    y = model(x)
    model.backward(np.ones_like(y))


def test_zero_grad_after_optimizer_set_to_none():
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    _backward(model, x)
    opt.zero_grad(set_to_none=True)
    model.zero_grad()                               # raised TypeError on None grads
    assert all(p.grad is None for p in model.parameters())
    _backward(model, x)                             # starts again from zeros
    fresh = _model()
    _backward(fresh, x)
    for (name, p), q in zip(model.named_parameters(), fresh.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=name)


def test_zero_grad_keeps_the_arrays_or_sets_none():
    x = np.random.default_rng(1).standard_normal((2, 5, 3)).astype(np.float32)
    model = _model()
    _backward(model, x)
    held = [p.grad for p in model.parameters()]
    assert any(g.any() for g in held)
    model.zero_grad()
    for p, g in zip(model.parameters(), held):
        assert p.grad is g and not g.any()          # zeroed in place
    some = next(iter(model.parameters()))
    some.grad = None                                 # a mix of None and arrays
    model.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in model.parameters())
