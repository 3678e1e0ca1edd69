"""The sequence layers' recurrent_dropout and zoneout: the masks they draw (from the layer's
seeded generator, in a documented order and scale) reach the kernels as ops.sequence_forward
takes them, eval mode uses no recurrent dropout and zoneout's expectation, and the options
the kernels do not support are refused when the layer is built. The kernels themselves are
checked against a numpy reference in test_recurrent_regularizers.py."""
import copy

import numpy as np
import pytest

from rnnkit import nn, ops
from rnnkit._cellspec import cell_for

LAYERS = [(nn.LSTM, {}), (nn.GRU, {}), (nn.RNN, {"nonlinearity": "relu"}),
          (nn.LayerNormLSTM, {}), (nn.LayerNormGRU, {})]


def _spec(layer):
    return layer._spec


def _x(T=5, B=3, I=4, seed=0):
    return np.random.default_rng(seed).standard_normal((T, B, I))


@pytest.mark.parametrize("cls, kw", LAYERS, ids=lambda v: getattr(v, "__name__", ""))
def test_training_masks_are_drawn_from_the_layer_generator(cls, kw):
    T, B, I, H, p, q = 5, 3, 4, 6, 0.3, 0.25
    layer = cls(I, H, recurrent_dropout=p, zoneout=q, seed=7, dtype="float64", **kw)
    plain = cls(I, H, seed=7, dtype="float64", **kw)  # same weights: masks draw only later
    for (n, a), (m, b) in zip(layer.named_parameters(), plain.named_parameters()):
        assert n == m
        np.testing.assert_array_equal(a.data, b.data)
    rng = copy.deepcopy(layer._rng)
    x = _x(T, B, I)
    y, _ = layer(x)
    # the documented draws: the recurrent mask (B, H), kept with 1 - p and scaled by 1/(1-p),
    # then the zoneout weights (T, B, H), 1 with probability q
    mask = (rng.random((B, H)) >= p) / (1 - p)
    z = (rng.random((T, B, H)) < q).astype(np.float64)
    w = [a.data for a in plain.parameters()]
    spec = _spec(plain)
    want, _, _ = ops.sequence_forward(spec, x, (None,) * len(spec.states), *w[:4],
                                      extra=w[4:], recurrent_mask=mask, zoneout=z,
                                      training=False)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    assert not np.allclose(y, plain(x)[0])  # the options change the result


@pytest.mark.parametrize("cls, kw", LAYERS, ids=lambda v: getattr(v, "__name__", ""))
def test_eval_uses_no_recurrent_dropout_and_the_zoneout_expectation(cls, kw):
    T, B, I, H, q = 4, 2, 3, 5, 0.4
    x = _x(T, B, I, seed=1)
    dropped = cls(I, H, recurrent_dropout=0.5, seed=3, dtype="float64", **kw).eval()
    plain = cls(I, H, seed=3, dtype="float64", **kw).eval()
    np.testing.assert_array_equal(dropped(x)[0], plain(x)[0])
    zoned = cls(I, H, zoneout=q, seed=3, dtype="float64", **kw).eval()
    # one step from h0: h' = q h0 + (1 - q) cell(x, h0), against the plain layer's step
    spec = _spec(plain)
    h0 = np.random.default_rng(2).standard_normal((1, B, H))
    hx = (h0, np.zeros_like(h0)) if len(spec.states) == 2 else h0
    step = zoned(x[:1], hx)[0]          # one step in eval: the packed single-step path
    want = q * h0 + (1 - q) * plain(x[:1], hx)[0]
    np.testing.assert_allclose(step, want, rtol=1e-12, atol=1e-12)
    # and the sequence kernel (lengths given: not the single-step path) agrees with it
    seq = zoned(x[:1], hx, lengths=np.full(B, 1))[0]
    np.testing.assert_allclose(seq, step, rtol=1e-12, atol=1e-12)


def test_backward_uses_the_forward_masks():
    # Two forwards draw different masks; each backward must use its own forward's.
    layer = nn.GRU(3, 4, recurrent_dropout=0.5, zoneout=0.3, seed=5, dtype="float64")
    x = _x(4, 2, 3, seed=4)
    rng = copy.deepcopy(layer._rng)
    y, _ = layer(x)
    dy = np.random.default_rng(9).standard_normal(y.shape)
    dx, _ = layer.backward(dy)
    mask = (rng.random((2, 4)) >= 0.5) / 0.5
    z = (rng.random((4, 2, 4)) < 0.3).astype(np.float64)
    w = [p.data for p in layer.parameters()]
    _, _, cache = ops.sequence_forward(cell_for("gru"), x, (None,), *w, recurrent_mask=mask,
                                       zoneout=z)
    want_dx, _, _ = ops.sequence_backward(cache, dy)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-12)


def test_unsupported_combinations_are_refused_when_built():
    with pytest.raises(ValueError, match="proj_size"):
        nn.LSTM(3, 8, proj_size=2, zoneout=0.1)
    with pytest.raises(ValueError, match="proj_size"):
        nn.LSTM(3, 8, proj_size=2, recurrent_dropout=0.1)
    with pytest.raises(ValueError, match="reset_after"):
        nn.GRU(3, 4, reset_after=False, recurrent_dropout=0.2)
    nn.GRU(3, 4, reset_after=False, zoneout=0.2)  # zoneout is fine there
    with pytest.raises(ValueError, match="zoneout"):
        nn.LSTM(3, 4, zoneout=1.5)
    with pytest.raises(TypeError, match="recurrent_dropout"):
        nn.LayerNormLSTM(3, 4, recurrent_dropout="0.1")


def test_defaults_are_left_out_of_the_config():
    assert "zoneout" not in nn.LSTM(3, 4).get_config()
    assert "recurrent_dropout" not in nn.LayerNormGRU(3, 4).get_config()
    assert nn.RNN(3, 4, zoneout=0.1).get_config()["zoneout"] == 0.1
