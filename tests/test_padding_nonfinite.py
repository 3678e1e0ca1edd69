"""Padded steps (t >= lengths[b]) influence nothing, even when they hold NaN or inf.

Before the fix, dW_ih = dGᵀ X summed 0 · NaN over the padded rows, so a Trainer on such data
could not take one step. The reference is the same computation with the padding zeroed: every
output and gradient must be bitwise identical to it.
"""
import numpy as np
import pytest

from rnnkit import losses, nn, optim
from rnnkit.train import Trainer

LAYERS = {"lstm": lambda **kw: nn.LSTM(**kw), "gru": lambda **kw: nn.GRU(**kw),
          "rnn_tanh": lambda **kw: nn.RNN(nonlinearity="tanh", **kw),
          "rnn_relu": lambda **kw: nn.RNN(nonlinearity="relu", **kw)}
LENGTHS = [5, 2, 0, 4]


def _padded_input(dtype, poison, lengths=LENGTHS):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 5, 3)).astype(dtype)  # batch-first (B, T, I)
    for b, n in enumerate(lengths):
        x[b, n:] = 0 if poison is None else poison
    if poison is not None:
        x[1, 3, 1] = -np.inf  # several kinds in one batch
    return x


def _run(cell, dtype, poison, **kw):
    layer = LAYERS[cell](input_size=3, hidden_size=6, batch_first=True, dtype=dtype, **kw)
    rng = np.random.default_rng(7)
    for p in layer.parameters():  # the same weights for the poisoned and the clean run
        p.data[...] = rng.uniform(-0.4, 0.4, p.shape)
    y, _ = layer(_padded_input(dtype, poison), lengths=LENGTHS)
    dy = np.random.default_rng(11).standard_normal(y.shape).astype(dtype)
    dx, _ = layer.backward(dy)
    return y, dx, {n: p.grad.copy() for n, p in layer.named_parameters()}


@pytest.mark.parametrize("cell", list(LAYERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [{}, {"bidirectional": True, "num_layers": 2}],
                         ids=["plain", "bidirectional-2-layers"])
@pytest.mark.parametrize("poison", [np.nan, np.inf], ids=["nan", "inf"])
def test_nonfinite_padding_changes_nothing(cell, dtype, kw, poison):
    y0, dx0, g0 = _run(cell, dtype, None, **kw)
    y1, dx1, g1 = _run(cell, dtype, poison, **kw)
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(dx1, dx0)  # zero (and finite) on the padded steps
    for name in g0:
        assert np.isfinite(g1[name]).all(), f"{name} is not finite"
        np.testing.assert_array_equal(g1[name], g0[name], err_msg=name)


def test_trainer_steps_on_nonfinite_padding():
    def train(poison):
        model = nn.Sequential(nn.GRU(3, 8, batch_first=True), nn.Last(batch_first=True),
                              nn.Linear(8, 2))
        rng = np.random.default_rng(5)
        for p in model.parameters():
            p.data[...] = rng.uniform(-0.3, 0.3, p.shape)
        lengths = [5, 2, 1, 4]
        x = _padded_input(np.float32, poison, lengths)
        y = np.array([0, 1, 1, 0])
        trainer = Trainer(model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5))
        history = trainer.fit(x, y, lengths=np.array(lengths), epochs=1, batch_size=4,
                              shuffle=False, verbose=0)
        return [p.data.copy() for p in model.parameters()], history

    clean, _ = train(None)
    params, history = train(np.nan)
    assert history.stop_reason is None and np.isfinite(history.history["loss"]).all()
    for p, q in zip(params, clean):
        np.testing.assert_array_equal(p, q)


def test_ops_take_an_empty_lengths_list_for_an_empty_batch():
    """lengths=[] with B = 0 (numpy reads [] as float64) is an empty batch, not a TypeError."""
    from rnnkit import ops
    x = np.zeros((3, 0, 2), np.float32)
    w_ih, w_hh = np.zeros((4 * 5, 2), np.float32), np.zeros((4 * 5, 5), np.float32)
    y, h_n, c_n, cache = ops.lstm_forward(x, None, None, w_ih, w_hh, None, None, lengths=[])
    assert y.shape == (3, 0, 5) and h_n.shape == (0, 5)
    g = ops.lstm_backward(cache, np.zeros_like(y))
    assert g.dx.shape == x.shape and not g.dw_ih.any()
    with pytest.raises(TypeError, match="lengths must be an integer array"):
        ops.lstm_forward(x, None, None, w_ih, w_hh, None, None, lengths=np.array([], float))


@pytest.mark.parametrize("shape", [(3, 0, 2), (0, 4, 2), (0, 0, 2)])
def test_inference_takes_empty_inputs(shape):
    """An empty x in inference (training=False), where numpy's strides of empty arrays are
    arbitrary, is an empty result, not 'must be contiguous along its last axis'."""
    from rnnkit import ops
    x = np.zeros(shape, np.float32).transpose(1, 0, 2).copy().transpose(1, 0, 2)
    w_ih, w_hh = np.zeros((3 * 5, 2), np.float32), np.zeros((3 * 5, 5), np.float32)
    y, h_n, cache = ops.gru_forward(x, None, w_ih, w_hh, None, None, training=False)
    assert y.shape == shape[:2] + (5,) and h_n.shape == (shape[1], 5) and cache is None
    assert not h_n.any()
