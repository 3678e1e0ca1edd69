"""Recurrent layers in eval mode at small batches: whole sequences on weights packed once.

Up to nn.recurrent.PACKED_MAX_BATCH rows, an eval forward without lengths runs step by step on
the compiled steps' packed weights (PackedSteps.sequence) instead of packing them on every
call. Checked against the training-mode path (the sequence kernels, themselves checked against
the numpy reference) for every cell, both directions, stacking, batch-first, projections and
every SIMD level, and for staleness after weight changes.
"""
import numpy as np
import pytest

import rnnkit
from helpers import CELLS, SPECS, pack_state, unpack_state
from rnnkit import nn
from rnnkit.nn.recurrent import PACKED_MAX_BATCH, make_layer
from rnnkit.optim import SGD

TOL = {"float32": 3e-6, "float64": 1e-12}


def both_modes(layer, x, hx):
    """(training-mode result, eval-mode result) of one forward, each as (y, [states])."""
    layer.train()
    y_train, s_train = layer(x, hx)
    layer.eval()
    y_eval, s_eval = layer(x, hx)
    return (y_train, s_train), (y_eval, s_eval)


def assert_same(mode, got, want, tol):
    np.testing.assert_allclose(got[0], want[0], rtol=tol, atol=tol)
    g, w = unpack_state(mode, got[1]), unpack_state(mode, want[1])
    assert len(g) == len(w) == len(SPECS[mode].states)
    for a, b in zip(g, w):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_eval_sequence_matches_training_path(mode, bidirectional, batch_first, dtype):
    rng = np.random.default_rng(1)
    spec = SPECS[mode]
    layer = make_layer(spec, 6, 21, num_layers=2, bidirectional=bidirectional,
                       batch_first=batch_first, dtype=dtype, seed=2)
    d = 2 if bidirectional else 1
    for b in (1, 3, PACKED_MAX_BATCH + 1):      # the last one takes the sequence kernels
        shape = (b, 9, 6) if batch_first else (9, b, 6)
        x = rng.standard_normal(shape).astype(dtype)
        hx = pack_state(mode, [rng.standard_normal((2 * d, b, 21)).astype(dtype)
                               for _ in spec.states])
        layer._packed.drop()
        train, evaluated = both_modes(layer, x, hx)
        # the packed path ran (and packed) exactly where the batch is small
        assert (layer._packed._steps is not None) == (b <= PACKED_MAX_BATCH)
        assert evaluated[0].shape == (b if batch_first else 9, 9 if batch_first else b, d * 21)
        assert_same(mode, evaluated, train, TOL[dtype])
        no_hx = both_modes(layer, x, None)          # states default to zeros
        assert_same(mode, no_hx[1], no_hx[0], TOL[dtype])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_projected_lstm(bidirectional):
    rng = np.random.default_rng(3)
    layer = nn.LSTM(5, 16, num_layers=2, proj_size=6, bidirectional=bidirectional,
                    dtype="float64", seed=4)
    d = 2 if bidirectional else 1
    x = rng.standard_normal((7, 2, 5))
    hx = (rng.standard_normal((2 * d, 2, 6)), rng.standard_normal((2 * d, 2, 16)))
    train, evaluated = both_modes(layer, x, hx)
    assert evaluated[0].shape == (7, 2, 6 * d)
    assert_same("lstm", evaluated, train, 1e-12)


def test_unbatched_and_one_step_sequences():
    rng = np.random.default_rng(4)
    layer = nn.GRU(4, 10, bidirectional=True, dtype="float64", seed=5)
    for x in (rng.standard_normal((6, 4)), rng.standard_normal((1, 3, 4))):
        train, evaluated = both_modes(layer, x, None)
        assert_same("gru", evaluated, train, 1e-12)


@pytest.mark.parametrize("mode", CELLS)
def test_every_simd_level(mode):
    rng = np.random.default_rng(5)
    layer = make_layer(SPECS[mode], 5, 33, bidirectional=True, dtype="float64", seed=6)
    x = rng.standard_normal((8, 2, 5))
    expect = layer(x)[0]                             # training mode
    previous = rnnkit.build_info()["simd"]
    try:
        for level in rnnkit.build_info()["simd_available"]:
            rnnkit._core.force_simd(level)
            layer.eval()      # packs afresh for this level
            np.testing.assert_allclose(layer(x)[0], expect, rtol=1e-12, atol=1e-12,
                                       err_msg=level)
            layer.train()
    finally:
        rnnkit._core.force_simd(previous)


@pytest.mark.parametrize("mode", CELLS)
def test_weight_changes_reach_the_packed_copy(mode):
    rng = np.random.default_rng(6)
    spec = SPECS[mode]
    layer = make_layer(spec, 5, 12, num_layers=2, dtype="float64", seed=7)
    other = make_layer(spec, 5, 12, num_layers=2, dtype="float64", seed=8)
    x = rng.standard_normal((6, 2, 5))
    layer.eval()
    before = layer(x)[0]
    layer.load_state_dict(other.state_dict())
    np.testing.assert_allclose(layer(x)[0], other.eval()(x)[0], rtol=1e-12, atol=1e-12)
    assert not np.allclose(layer(x)[0], before)
    layer.weight_hh_l1.data[:] *= 2                  # in place: seen through mark_changed
    layer.weight_hh_l1.mark_changed()
    edited = layer(x)[0]
    layer.weight_ih_l0.data = layer.weight_ih_l0.data * 3    # a new array is seen too
    replaced = layer(x)[0]
    for p in layer.parameters():                     # an optimiser step bumps the versions
        p.grad[...] = 0.1
    SGD(layer.parameters(), lr=1.0).step()
    stepped = layer(x)[0]
    layer.train()
    np.testing.assert_allclose(stepped, layer(x)[0], rtol=1e-12, atol=1e-12)
    for a, b in ((edited, before), (replaced, edited), (stepped, replaced)):
        assert not np.allclose(a, b)


def test_thread_count_does_not_change_results():
    rng = np.random.default_rng(7)
    layer = nn.LSTM(64, 256, bidirectional=True, seed=8).eval()
    x = rng.standard_normal((12, 2, 64)).astype(np.float32)
    previous = rnnkit.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            rnnkit.set_num_threads(threads)
            layer.train().eval()                      # repack under this thread count
            results.append(layer(x)[0])
    finally:
        rnnkit.set_num_threads(previous)
    np.testing.assert_array_equal(results[0], results[1])
