"""Training by recomputation (rnnkit.ops.checkpointed, the layers' recompute=True).

The reference is the stored version itself: a recomputing forward and backward must give
outputs, final states and every gradient bitwise equal to those of checkpoint_every=None (which
the other test files check against numpy, finite differences and torch), on every SIMD level,
for every cell that supports it, with lengths, reverse, projections and the regularisers; and it
must keep less: no step's activations, which tracemalloc sees.
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import rnnkit
from rnnkit import nn, ops
from rnnkit._cellspec import CELLS
from rnnkit.ops import checkpointed

RECOMPUTING = [name for name, spec in CELLS.items() if checkpointed.supports(spec) is None]
NOT_RECOMPUTING = [name for name in CELLS if name not in RECOMPUTING]


def _problem(name, T, B, I, H, dtype, seed, *, proj=0, h0=True, bias=True, mask=False,
             zoneout=False):
    spec = CELLS[name]
    rng = np.random.default_rng(seed)
    G, P = spec.gates, proj or H

    def u(*shape):
        return rng.uniform(-0.4, 0.4, shape).astype(dtype)

    widths = [P if k == 0 else H for k in range(len(spec.states))]
    p = dict(spec=spec, x=u(T, B, I),
             state0=tuple(u(B, w) if h0 else None for w in widths),
             w_ih=u(G * H, I), w_hh=u(G * H, P), b_ih=u(G * H) if bias else None,
             b_hh=u(G * H) if bias else None, w_hr=u(P, H) if proj else None,
             dy=u(T, B, P), dstate_n=tuple(u(B, w) for w in widths), kw={})
    if mask:
        p["kw"]["recurrent_mask"] = (rng.random((B, H)) > 0.3).astype(dtype) / dtype(0.7)
    if zoneout:
        p["kw"]["zoneout"] = (rng.random((T, B, H)) < 0.25).astype(dtype)
    return p


def _run(p, lengths, reverse, checkpoint_every):
    """Every output and gradient of one forward + backward, and the cache."""
    y, finals, cache = ops.sequence_forward(
        p["spec"], p["x"], p["state0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"],
        lengths=lengths, reverse=reverse, w_hr=p["w_hr"], checkpoint_every=checkpoint_every,
        **p["kw"])
    dx, dstate0, weights = ops.sequence_backward(cache, p["dy"], p["dstate_n"])
    arrays = [np.array(y), *finals, dx, *dstate0, *[w for w in weights if w is not None]]
    return arrays, cache


def _assert_bitwise(stored, recomputed):
    assert len(stored) == len(recomputed)
    for k, (a, b) in enumerate(zip(stored, recomputed)):
        assert a.shape == b.shape and a.dtype == b.dtype, k
        if not np.array_equal(a, b):
            raise AssertionError(f"result {k} differs: max |diff| {np.abs(a - b).max():.3g}")


def _lengths(T, B, block, rng):
    """Lengths at and around the segment edges, 0 and T, and random ones."""
    picks = [T, 0, block, block - 1, block + 1, 2 * block, T - 1]
    out = np.array([picks[b] if b < len(picks) else rng.integers(0, T + 1) for b in range(B)])
    return np.clip(out, 0, T)


@pytest.mark.parametrize("name", RECOMPUTING)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_ops_recompute_is_bitwise_the_stored_version(simd, name, reverse, with_lengths):
    B = 9
    block = rnnkit._core.grad_block_steps(B)
    T = 3 * block + 7                     # three whole segments of one block and a part
    for dtype in (np.float32, np.float64):
        p = _problem(name, T, B, 5, 11, dtype, seed=len(name) + 7 * reverse)
        lengths = _lengths(T, B, block, np.random.default_rng(1)) if with_lengths else None
        stored, cache = _run(p, lengths, reverse, None)
        assert cache.segment is None and cache.saved
        recomputed, cache = _run(p, lengths, reverse, 1)
        assert cache.segment == block and not cache.saved and len(cache.starts) == 4
        _assert_bitwise(stored, recomputed)


@pytest.mark.parametrize("case", ["projection", "regularizers", "no_bias_no_h0", "wide_batch"])
def test_ops_recompute_options(simd, case):
    name, kw, B, H = "lstm", {}, 3, 10
    if case == "projection":
        kw = dict(proj=4)
    elif case == "regularizers":
        name, kw = "gru", dict(mask=True, zoneout=True)
    elif case == "no_bias_no_h0":
        name, kw = "rnn_tanh", dict(bias=False, h0=False)
    else:   # two threads' worth of rows and units
        B, H = 40, 96
    block = rnnkit._core.grad_block_steps(B)
    T = 2 * block + 3
    for reverse in (False, True):
        p = _problem(name, T, B, 6, H, np.float32, seed=3, **kw)
        lengths = _lengths(T, B, block, np.random.default_rng(2))
        stored, _ = _run(p, lengths, reverse, None)
        recomputed, cache = _run(p, lengths, reverse, block)
        assert cache.segment == block
        _assert_bitwise(stored, recomputed)


def test_segments_are_whole_gradient_blocks():
    """A segment that is not a whole number of blocks would change the gradients' rounding:
    the rounding up is what keeps them bitwise equal."""
    assert rnnkit._core.grad_block_steps(32) * 32 >= 512
    for B in (1, 3, 32, 100, 1000):
        block = rnnkit._core.grad_block_steps(B)
        assert block >= 1 and (block - 1) * B < 512 <= block * B or block == 1
        for every in {1, max(block - 1, 1), block, block + 1, 5 * block}:
            k = checkpointed.segment_steps(every, B)
            assert k % block == 0 and k >= every and k - every < block


def test_short_sequences_are_stored():
    """A sequence that fits in one segment has nothing to recompute: it keeps the stored cache."""
    p = _problem("lstm", 20, 4, 3, 5, np.float32, 0)
    _, cache = _run(p, None, False, 1)   # one block is 128 steps at B = 4
    assert cache.segment is None and cache.saved


def test_recompute_keeps_no_activations():
    """Peak traced memory of forward + backward: the stored LSTM keeps 4H gates and c for every
    step (T*B*5H floats); recomputation keeps one segment's."""
    T, B, I, H = 1536, 4, 8, 64
    p = _problem("lstm", T, B, I, H, np.float32, 0)
    activations = T * B * 5 * H * 4

    def peak(every):
        tracemalloc.start()
        try:
            _run(p, None, False, every)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    stored, recomputed = peak(None), peak(checkpointed.auto_segment(T))
    assert stored > activations
    assert recomputed < stored - 0.8 * activations, (stored, recomputed)


# ------------------------------------------------------------------------------ layers
LAYERS = [(nn.LSTM, {}), (nn.LSTM, {"proj_size": 5}), (nn.GRU, {}),
          (nn.GRU, {"reset_after": False}), (nn.RNN, {"nonlinearity": "relu"})]


@pytest.mark.parametrize("cls,kw", LAYERS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_layers_recompute_bitwise(cls, kw):
    T, B, I, H = 150, 6, 7, 12
    rng = np.random.default_rng(4)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    lengths = np.array([150, 9, 149, 86, 0, 87])
    out = 2 * (kw.get("proj_size") or H)
    dy = rng.standard_normal((B, T, out)).astype(np.float32)
    results = []
    for recompute in (False, True):
        layer = cls(I, H, num_layers=2, bidirectional=True, batch_first=True, dropout=0.3,
                    seed=5, recompute=recompute, **kw)
        if recompute:
            layer.checkpoint_every = rnnkit._core.grad_block_steps(B)   # several segments
        y, state = layer(x, lengths=lengths)
        dx, dstate = layer.backward(dy)
        states = list(state) if isinstance(state, tuple) else [state]
        dstates = list(dstate) if isinstance(dstate, tuple) else [dstate]
        results.append([y, *states, dx, *dstates] +
                       [prm.grad.copy() for prm in layer.parameters()])
    _assert_bitwise(*results)


def test_layer_recompute_only_in_training():
    layer = nn.GRU(3, 4, recompute=True, checkpoint_every=1, seed=0)
    x = np.random.default_rng(0).standard_normal((300, 2, 3)).astype(np.float32)
    y_train, _ = layer(x)
    layer.eval()
    y_eval, _ = layer(x)
    np.testing.assert_allclose(y_eval, y_train, rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError):
        layer.backward(np.ones_like(y_eval))


def test_layer_config_round_trip(tmp_path):
    layer = nn.LSTM(3, 4, recompute=True, checkpoint_every=64, seed=0)
    assert "recompute=True, checkpoint_every=64" in repr(layer)
    path = tmp_path / "m.rnnkit"
    rnnkit.save(layer, path)
    loaded = rnnkit.load(path)
    assert loaded.recompute is True and loaded.checkpoint_every == 64
    assert "recompute" not in nn.LSTM(3, 4).get_config()   # default layers' files unchanged


@pytest.mark.parametrize("kwargs,message", [
    (dict(checkpoint_every=10), "set recompute=True"),
    (dict(recompute=True, checkpoint_every=0), "checkpoint_every must be"),
    (dict(recompute=True, checkpoint_every=2.5), "checkpoint_every must be"),
    (dict(recompute=True, checkpoint_every=True), "checkpoint_every must be"),
    (dict(recompute=1), "recompute must be True or False"),
    (dict(recompute=True, peephole=True), "peephole"),
])
def test_layer_bad_arguments(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        nn.LSTM(3, 4, **kwargs)


@pytest.mark.parametrize("name", NOT_RECOMPUTING)
def test_ops_rejects_cells_with_own_parameters(name):
    spec = CELLS[name]
    p = _problem(name, 4, 2, 3, 5, np.float32, 0)
    extra = tuple(np.ones(w * 5, np.float32) for _, w in spec.extra)
    with pytest.raises(ValueError, match="not supported"):
        ops.sequence_forward(spec, p["x"], p["state0"], p["w_ih"], p["w_hh"], p["b_ih"],
                             p["b_hh"], extra=extra, checkpoint_every=2)


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "10"])
def test_ops_rejects_bad_checkpoint_every(bad):
    p = _problem("gru", 4, 2, 3, 5, np.float32, 0)
    with pytest.raises(ValueError, match="checkpoint_every must be an integer"):
        ops.sequence_forward(p["spec"], p["x"], p["state0"], p["w_ih"], p["w_hh"], p["b_ih"],
                             p["b_hh"], checkpoint_every=bad)
