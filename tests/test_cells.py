"""rnnkit.ops kernels (lstm, gru, rnn tanh/relu; forward and backward) against the float64
numpy reference in tests/reference.py, on every SIMD level this CPU has, at awkward sizes, with
lengths / reverse / optional arguments; finite differences of the kernels themselves; and
determinism across runs and thread counts."""

import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import reference as ref
import rnnkit
import rnnkit.ops as ops
from helpers import CELLS, GRAD_OF, as_float64, assert_close, backward, forward, grad_fields, \
    make_problem, numeric_grad, output_names, scaled
from helpers import SPECS

SIMD_LEVELS = list(rnnkit.build_info()["simd_available"])

# float64: the kernels and the reference differ only by summation order.
# float32: inputs are rounded to float32 first and the reference runs in float64 on exactly
# those values, so the difference is the kernel's own float32 rounding (a few ulp per op, sums
# of T*B terms for weight gradients); atol is scaled by the size of what is compared.
TOL = {np.float32: (1e-5, 1e-5), np.float64: (1e-10, 1e-12)}


@pytest.fixture(params=SIMD_LEVELS)
def simd(request):
    """Runs the test with the kernels of one SIMD level, then restores the level in use."""
    before = rnnkit.build_info()["simd"]
    used = rnnkit._core.force_simd(request.param)
    assert used == request.param, f"force_simd({request.param!r}) returned {used!r}"
    assert rnnkit.build_info()["simd"] == request.param
    try:
        yield request.param
    finally:
        rnnkit._core.force_simd(before)
    assert rnnkit.build_info()["simd"] == before


def _arrays(p):
    return {k: v.copy() for k, v in p.items() if isinstance(v, np.ndarray)}


def check_against_reference(p, reverse, tol=None):
    """Forward + backward of rnnkit vs the reference on problem p; also checks dtypes and that
    the inputs were not modified."""
    cell = p["cell"]
    dtype = p["x"].dtype
    rtol, atol = tol or TOL[dtype.type]
    before = _arrays(p)

    outs, cache = forward(ops, p, reverse=reverse)
    g = backward(ops, p, cache)
    ref_outs, ref_cache = forward(ref, as_float64(p), reverse=reverse)
    rg = backward(ref, as_float64(p), ref_cache)

    for name, got, want in zip(output_names(cell), outs, ref_outs):
        assert isinstance(got, np.ndarray) and got.dtype == dtype, (
            f"{name}: dtype {getattr(got, 'dtype', type(got))}, expected {dtype}")
        assert_close(got, want, rtol, scaled(atol, want), f"{cell} {name}")
    assert len(g) == len(grad_fields(cell))
    for f in grad_fields(cell):
        got, want = getattr(g, f), getattr(rg, f)
        if want is None:
            assert got is None, f"{f}: expected None (no biases), got {type(got).__name__}"
            continue
        assert isinstance(got, np.ndarray) and got.dtype == dtype, (
            f"{f}: dtype {getattr(got, 'dtype', type(got))}, expected {dtype}")
        assert_close(got, want, rtol, scaled(atol, want), f"{cell} {f}")

    for k, v in before.items():
        assert np.array_equal(p[k], v), f"input {k} was modified"


# ------------------------------------------------------------------- main comparisons


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("lengths", [None, "mixed"], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
def test_matches_reference(simd, cell, dtype, lengths, reverse):
    p = make_problem(cell, T=7, B=6, I=5, H=17, dtype=dtype, seed=1, lengths=lengths)
    if lengths is not None:
        assert 0 in p["lengths"] and 7 in p["lengths"]
    check_against_reference(p, reverse)


SIZES = [
    # T, B, I, H
    (1, 1, 1, 1),
    (1, 3, 5, 3),
    (3, 1, 19, 17),
    (2, 2, 1, 33),
    (5, 3, 5, 1),
    (4, 5, 19, 33),
    (3, 9, 8, 16),
    (2, 4, 3, 67),
    (2, 3, 4, 8),
    (2, 2, 7, 15),
    (2, 5, 9, 31),
    (2, 3, 2, 32),
    (2, 2, 64, 65),
    (3, 13, 300, 130),  # I and G*H past typical GEMM cache blocks
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "T{}B{}I{}H{}".format(*s))
@pytest.mark.parametrize("cell", CELLS)
def test_awkward_sizes(simd, cell, size, dtype):
    T, B, I, H = size
    seed = zlib.crc32(repr((cell, size)).encode())
    p = make_problem(cell, T, B, I, H, dtype=dtype, seed=seed, lengths="mixed")
    check_against_reference(p, reverse=False)
    check_against_reference(dict(p, lengths=None), reverse=True)


@pytest.mark.parametrize("dh_n", [True, False], ids=["dh_n", "no_dh_n"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("h0", [True, False], ids=["h0", "no_h0"])
@pytest.mark.parametrize("cell", CELLS)
def test_optional_arguments(simd, cell, h0, bias, dh_n):
    for dtype in (np.float64, np.float32):
        p = make_problem(cell, 4, 5, 3, 9, dtype=dtype, seed=3, lengths="mixed", h0=h0,
                         c0=h0, bias=bias, dh_n=dh_n, dc_n=dh_n)
        check_against_reference(p, reverse=True)


@pytest.mark.parametrize("which", ["h0_only", "c0_only", "dh_n_only", "dc_n_only"])
def test_lstm_state_given_separately(simd, which):
    p = make_problem("lstm", 4, 3, 3, 5, seed=4, lengths="mixed",
                     h0=which != "c0_only", c0=which != "h0_only",
                     dh_n=which != "dc_n_only", dc_n=which != "dh_n_only")
    check_against_reference(p, reverse=False)


@pytest.mark.parametrize("cell", CELLS)
def test_all_lengths_zero(cell):
    p = make_problem(cell, 3, 4, 2, 5, seed=5, lengths=np.zeros(4, dtype=np.int64))
    check_against_reference(p, reverse=False)
    (y, h_n, *c_n), cache = forward(ops, p)
    assert np.all(y == 0)
    assert np.array_equal(h_n, p["h0"])
    g = backward(ops, p, cache)
    assert np.all(g.dx == 0)
    assert np.array_equal(g.dh0, p["dh_n"])
    assert np.all(g.dw_ih == 0) and np.all(g.dw_hh == 0)


@pytest.mark.parametrize("cell", CELLS)
def test_lengths_as_int32(cell):
    p = make_problem(cell, 5, 4, 3, 6, seed=6, lengths="mixed")
    check_against_reference(dict(p, lengths=p["lengths"].astype(np.int32)), reverse=True)


@pytest.mark.parametrize("cell", CELLS)
def test_saturating_inputs(simd, cell):
    """Huge pre-activations: sigmoid/tanh must saturate (no NaN/inf from exp overflow)."""
    for dtype in (np.float32, np.float64):
        p = make_problem(cell, 4, 3, 4, 19, dtype=dtype, seed=7)
        p["x"] = (p["x"] * 200).astype(dtype)
        if SPECS[cell].nonlinearity == "relu":  # unbounded: keep it from overflowing
            p["w_hh"] = (p["w_hh"] * 0.1).astype(dtype)
        check_against_reference(p, reverse=False)


@pytest.mark.parametrize("cell", CELLS)
def test_relu_and_tanh_at_exactly_zero(simd, cell):
    """Zero input, state and weights: every pre-activation is exactly 0.  relu'(0) is 0, as in
    torch (and the reference)."""
    p = make_problem(cell, 3, 4, 5, 6, seed=14, lengths="mixed")
    for k in ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"):
        if p[k] is not None:
            p[k] = np.zeros_like(p[k])
    check_against_reference(p, reverse=False)


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("cell", CELLS)
def test_big_problem_matches_reference(simd, cell, reverse, restore_threads):
    """Big enough for the threaded paths (2 threads), float32 and float64. B=32, H=256 keeps
    even the RNN's per-step work (2*B*H*H = 4.2 MFLOP) above the kernels' per-thread minimum
    (2 MFLOP, cpp/runtime/threads.cpp), so the recurrence really runs on 2 threads."""
    rnnkit.set_num_threads(2)
    for dtype in (np.float32, np.float64):
        p = make_problem(cell, T=12, B=32, I=64, H=256, dtype=dtype, seed=15, lengths="mixed")
        check_against_reference(p, reverse=reverse)


def test_concurrent_calls_match_serial(restore_threads):
    """Kernels release the GIL and may run concurrently (the two directions of a layer): no
    shared scratch space between calls, so results equal those of serial calls."""
    rnnkit.set_num_threads(2)
    problems = [make_problem(cell, T=10, B=8, I=32, H=96, dtype=dt, seed=16 + k,
                             lengths="mixed")
                for k, (cell, dt) in enumerate([(c, d) for c in CELLS
                                                for d in (np.float32, np.float64)])]
    serial = [_run_all(p, k % 3 == 0) for k, p in enumerate(problems)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            futures = [pool.submit(_run_all, p, k % 3 == 0) for k, p in enumerate(problems)]
            for k, f in enumerate(futures):
                _assert_bitwise(serial[k], f.result(), f"concurrent call #{k}")


# ----------------------------------------------------------------------- inference mode


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell", CELLS)
def test_training_false_keeps_no_cache_and_same_outputs(simd, cell, dtype, reverse):
    p = make_problem(cell, 6, 5, 7, 19, dtype=dtype, seed=8, lengths="mixed")
    outs_t, cache_t = forward(ops, p, reverse=reverse, training=True)
    outs_i, cache_i = forward(ops, p, reverse=reverse, training=False)
    assert cache_t is not None
    assert cache_i is None
    for name, a, b in zip(output_names(cell), outs_t, outs_i):
        assert b.dtype == dtype
        assert np.array_equal(a, b), (
            f"{name}: training=False differs from training=True, max abs diff "
            f"{np.abs(a.astype(np.float64) - b).max():.3e}")


# ----------------------------------------------------- finite differences of the kernels


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("cell", CELLS)
def test_kernel_backward_matches_finite_differences(cell, reverse):
    p = make_problem(cell, T=3, B=3, I=2, H=3, seed=9, lengths=np.array([2, 0, 3]))
    _, cache = forward(ops, p, reverse=reverse)
    g = backward(ops, p, cache)
    for f in grad_fields(cell):
        name = GRAD_OF[f]
        want = numeric_grad(ops, p, name, reverse=reverse, training=False)
        assert_close(getattr(g, f), want, 1e-6, 1e-8, f"{cell} {f} vs finite differences")


@pytest.mark.parametrize("cell", CELLS)
def test_kernel_fd_without_state_and_bias(cell):
    p = make_problem(cell, T=3, B=2, I=3, H=4, seed=10, h0=False, c0=False, bias=False)
    _, cache = forward(ops, p)
    g = backward(ops, p, cache)
    assert g.db_ih is None and g.db_hh is None
    for f in grad_fields(cell):
        name = GRAD_OF[f]
        if name in ("b_ih", "b_hh"):
            continue
        want = numeric_grad(ops, p, name, training=False)
        assert_close(getattr(g, f), want, 1e-6, 1e-8, f"{cell} {f} vs finite differences")


# --------------------------------------------------------------------------- determinism


def _run_all(p, reverse):
    outs, cache = forward(ops, p, reverse=reverse)
    g = backward(ops, p, cache)
    return list(outs) + [v for v in g]


def _assert_bitwise(a_list, b_list, what):
    for i, (a, b) in enumerate(zip(a_list, b_list)):
        if a is None:
            assert b is None
            continue
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b), (
            f"{what}: result #{i} differs, max abs diff "
            f"{np.abs(a.astype(np.float64) - b).max():.3e}")


@pytest.fixture
def restore_threads():
    n = rnnkit.get_num_threads()
    yield
    rnnkit.set_num_threads(n)
    assert rnnkit.get_num_threads() == n


@pytest.mark.parametrize("cell", CELLS)
def test_bitwise_deterministic_across_runs_and_threads(cell, restore_threads):
    reverse = CELLS.index(cell) % 2 == 1    # alternate directions over the cells
    # B=32: above the per-thread work minimum for every cell (see test_big_problem...).
    p = make_problem(cell, T=20, B=32, I=64, H=256, dtype=np.float32, seed=11,
                     lengths="mixed")
    rnnkit.set_num_threads(2)
    assert rnnkit.get_num_threads() == 2
    first = _run_all(p, reverse)
    second = _run_all(p, reverse)
    _assert_bitwise(first, second, "two runs with 2 threads")
    rnnkit.set_num_threads(1)
    assert rnnkit.get_num_threads() == 1
    single = _run_all(p, reverse)
    _assert_bitwise(first, single, "1 thread vs 2 threads")
    # the big problem is also right, not just reproducible (float32 vs float64 reference)
    p64 = as_float64(p)
    ref_outs, ref_cache = forward(ref, p64, reverse=reverse)
    assert_close(first[0], ref_outs[0], 1e-5, scaled(1e-5, ref_outs[0]), f"{cell} y (big)")


@pytest.mark.parametrize("cell", CELLS)
def test_bitwise_deterministic_float64_full_length(cell, restore_threads):
    p = make_problem(cell, T=20, B=32, I=64, H=256, dtype=np.float64, seed=12)
    rnnkit.set_num_threads(2)
    two = _run_all(p, False)
    rnnkit.set_num_threads(1)
    one = _run_all(p, False)
    _assert_bitwise(two, one, "1 thread vs 2 threads (float64)")
