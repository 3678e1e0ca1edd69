"""Gradients set to None (``zero_grad(set_to_none=True)``, torch's default) restart from zeros."""
import numpy as np

from rnnkit import losses, nn, optim


def test_backward_after_set_to_none_equals_backward_after_zeroing():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 7, (4, 9))
    y = rng.integers(0, 7, (4, 9))

    def model():
        return nn.Sequential(nn.Embedding(7, 5, seed=1), nn.GRU(5, 6, batch_first=True, seed=2),
                             nn.LSTM(6, 6, batch_first=True, seed=3), nn.Linear(6, 7, seed=4))

    grads = []
    for set_to_none in (False, True):
        m = model()
        opt = optim.SGD(m.parameters(), lr=0.1)
        for _ in range(2):  # the second pass starts from whatever zero_grad left
            opt.zero_grad(set_to_none=set_to_none)
            loss = losses.CrossEntropyLoss()
            loss(m(x), y)
            m.backward(loss.backward())
        grads.append([p.grad.copy() for p in m.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


def test_linear_gradients_match_numpy():
    rng = np.random.default_rng(1)
    layer = nn.Linear(5, 3, dtype="float64", seed=0)
    x = rng.standard_normal((2, 4, 5))
    dy = rng.standard_normal((2, 4, 3))
    y = layer(x)
    np.testing.assert_allclose(y, x @ layer.weight.data.T + layer.bias.data, rtol=1e-13)
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, dy @ layer.weight.data, rtol=1e-13)
    np.testing.assert_allclose(layer.weight.grad,
                               dy.reshape(-1, 3).T @ x.reshape(-1, 5), rtol=1e-13)
    np.testing.assert_allclose(layer.bias.grad, dy.reshape(-1, 3).sum(0), rtol=1e-13)
