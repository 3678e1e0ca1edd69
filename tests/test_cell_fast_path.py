"""The cells' eval-mode fast path: compiled steps with weights packed once per change.

Checked against the training-mode path (the sequence kernels with T = 1, themselves checked
against the numpy reference) and, for staleness, against weight changes. The packed copy never
locks the parameters: a change is seen through Parameter.version (optimisers, load_state_dict,
mark_changed) or a new .data array.
"""
import numpy as np
import pytest

import rnnkit
from helpers import CELLS, SPECS, TORCH_CELLS, pack_state, unpack_state
from rnnkit.nn.cells import make_cell
from rnnkit.nn.recurrent import make_layer
from rnnkit.optim import SGD


def make(mode, dtype="float32", seed=0, I=7, H=19):
    return make_cell(SPECS[mode], I, H, dtype=dtype, seed=seed)


def run(cell, x, state):
    out = cell(x, state)
    return list(out) if isinstance(out, tuple) else [out]


def state_for(mode, rng, B, H, dtype):
    return pack_state(mode, [rng.standard_normal((B, H)).astype(dtype)
                             for _ in SPECS[mode].states])


@pytest.mark.parametrize("mode", CELLS)
@pytest.mark.parametrize("dtype, tol", [("float32", 2e-6), ("float64", 1e-13)])
@pytest.mark.parametrize("B", [1, 3, 64])
def test_eval_step_matches_training_step(mode, dtype, tol, B):
    rng = np.random.default_rng(1)
    cell = make(mode, dtype)
    x = rng.standard_normal((B, 7)).astype(dtype)
    state = state_for(mode, rng, B, 19, dtype)
    slow = run(cell, x, state)          # training mode: sequence kernel, T = 1
    cell.eval()
    fast = run(cell, x, state)
    for a, b in zip(fast, slow):
        assert a.dtype == np.dtype(dtype) and a.shape == (B, 19)
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", CELLS)
def test_eval_step_every_simd_level(mode):
    rng = np.random.default_rng(2)
    cell = make(mode, "float64", H=33)
    x = rng.standard_normal((2, 7))
    state = state_for(mode, rng, 2, 33, np.float64)
    expect = run(cell, x, state)
    cell.eval()
    previous = rnnkit.build_info()["simd"]
    try:
        for level in rnnkit.build_info()["simd_available"]:
            rnnkit._core.force_simd(level)
            cell.eval()   # drops the packed copy: the next step packs for the new level
            for a, b in zip(run(cell, x, state), expect):
                np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    finally:
        rnnkit._core.force_simd(previous)


@pytest.mark.parametrize("mode", CELLS)
def test_no_state_means_zeros(mode):
    rng = np.random.default_rng(3)
    cell = make(mode).eval()
    x = rng.standard_normal((4, 7)).astype(np.float32)
    zero = np.zeros((4, 19), np.float32)
    with_zero = run(cell, x, pack_state(mode, [zero] * len(SPECS[mode].states)))
    for a, b in zip(run(cell, x, None), with_zero):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode", CELLS)
def test_in_place_edit_with_mark_changed_repacks_and_nothing_is_locked(mode):
    cell = make(mode).eval()
    x = np.ones((1, 7), np.float32)
    state = state_for(mode, np.random.default_rng(9), 1, 19, np.float32)
    before = run(cell, x, state)
    assert cell.weight_hh.data.flags.writeable     # the packed copy locks nothing
    cell.weight_hh.data[0, 0] = 5.0
    cell.weight_hh.data[:] *= 2
    cell.weight_hh.mark_changed()
    after = run(cell, x, state)
    cell.train()                                   # reference: the training path, same weights
    expect = run(cell, x, state)
    for a, b, old in zip(after, expect, before):
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-6)
        assert not np.allclose(a, old)


@pytest.mark.parametrize("mode", CELLS)
def test_a_new_data_array_repacks(mode):
    cell = make(mode).eval()
    x = np.ones((2, 7), np.float32)
    run(cell, x, None)
    cell.weight_ih.data = cell.weight_ih.data * 3      # a new array: no mark_changed needed
    fast = run(cell, x, None)
    cell.train()
    for a, b in zip(fast, run(cell, x, None)):
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("mode", CELLS)
def test_load_state_dict_and_optimiser_step_invalidate_the_packed_copy(mode):
    rng = np.random.default_rng(4)
    cell, other = make(mode, seed=1), make(mode, seed=2)
    opt = SGD(cell.parameters(), lr=0.5)
    x = rng.standard_normal((2, 7)).astype(np.float32)
    cell.eval()
    before = run(cell, x, None)
    cell.load_state_dict(other.state_dict())      # allowed while packed; repacks
    np.testing.assert_allclose(run(cell, x, None), run(other.eval(), x, None), rtol=1e-6,
                               atol=1e-6)
    assert not np.allclose(run(cell, x, None), before)
    # An optimiser step in eval mode works (nothing is locked) and the next step repacks.
    for p in cell.parameters():
        p.grad[...] = 1.0
    opt.step()
    fast = run(cell, x, None)
    cell.train()
    expect = run(cell, x, None)                   # training path, fresh weights
    np.testing.assert_allclose(fast, expect, rtol=2e-6, atol=2e-6)


def test_wrong_shaped_parameter_data_is_named():
    for mode in CELLS:
        cell = make_cell(SPECS[mode], 7, 19).eval()
        x = np.ones((2, 7), np.float32)
        cell(x)
        cell.weight_hh.data = np.zeros((3, 3), np.float32)
        with pytest.raises(ValueError, match=r"weight_hh has shape \(3, 3\)"):
            cell(x)
        cell.train()
        with pytest.raises(ValueError, match=r"weight_hh has shape \(3, 3\)"):
            cell(x)


def test_fast_path_bad_shapes_raise_clear_errors():
    cell = make("lstm").eval()
    with pytest.raises(ValueError, match=r"x has shape \(2, 6\)"):
        cell(np.zeros((2, 6), np.float32))
    with pytest.raises(ValueError, match=r"h has shape \(3, 19\)"):
        cell(np.zeros((2, 7), np.float32), (np.zeros((3, 19), np.float32),
                                            np.zeros((2, 19), np.float32)))


@pytest.mark.parametrize("mode", TORCH_CELLS)
def test_fast_path_matches_torch(mode):
    torch = pytest.importorskip("torch")
    from torch_peers import torch_cell
    rng = np.random.default_rng(5)
    cell = make(mode, "float64", I=64, H=256).eval()
    ref = torch_cell(mode, 64, 256).double()
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in cell.state_dict().items()})
    x = rng.standard_normal((1, 64))
    state = state_for(mode, rng, 1, 256, np.float64)
    with torch.no_grad():
        tstate = pack_state(mode, [torch.from_numpy(s) for s in unpack_state(mode, state)])
        expect = [e.numpy() for e in unpack_state(mode, ref(torch.from_numpy(x), tstate))]
    got = run(cell, x, state)
    assert len(got) == len(expect) == len(SPECS[mode].states)
    for a, b in zip(got, expect):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("mode", CELLS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_layer_single_step_in_eval_mode_matches_the_sequence_kernel(mode, batch_first):
    """A unidirectional layer called on one step in eval mode uses packed single steps; it
    must give what the sequence kernels give (checked against training mode, same weights)."""
    rng = np.random.default_rng(6)
    spec = SPECS[mode]
    layer = make_layer(spec, 5, 24, num_layers=2, batch_first=batch_first, dtype="float64",
                       seed=3)
    x = rng.standard_normal((3, 1, 5) if batch_first else (1, 3, 5))
    hx = pack_state(mode, [rng.standard_normal((2, 3, 24)) for _ in spec.states])
    y_train, s_train = layer(x, hx)                   # sequence kernels, T = 1
    layer.eval()
    y_eval, s_eval = layer(x, hx)                     # packed steps
    np.testing.assert_allclose(y_eval, y_train, rtol=1e-13, atol=1e-13)
    s_eval, s_train = unpack_state(mode, s_eval), unpack_state(mode, s_train)
    assert len(s_eval) == len(s_train) == len(spec.states)
    for a, b in zip(s_eval, s_train):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    # a weight change through load_state_dict reaches the packed copy
    other = make_layer(spec, 5, 24, num_layers=2, batch_first=batch_first, dtype="float64",
                       seed=9)
    layer.load_state_dict(other.state_dict())
    np.testing.assert_allclose(layer(x, hx)[0], other.eval()(x, hx)[0], rtol=1e-13, atol=1e-13)
    layer.weight_hh_l0.data[0, 0] = 1.0               # nothing is locked ...
    layer.weight_hh_l0.mark_changed()                 # ... and a marked change repacks
    y_eval = layer(x, hx)[0]
    layer.train()
    np.testing.assert_allclose(y_eval, layer(x, hx)[0], rtol=1e-13, atol=1e-13)
