"""rnnkit.quantize: int8 and bfloat16 weights for inference (cpp/kernels/int8_driver.inl,
bf16_driver.inl).

The int8 product is checked against plain numpy integer arithmetic written from the stated
scheme (per-output-channel weights, per-row activations, both symmetric), bitwise equal across
SIMD levels (the portable loop against AVX-512 VNNI) and thread counts; quantized layers against
their float32 originals (relative error of y <= 2e-2 on random weights), through save/load, and
every refusal (training, float64, zoneout) is a clear error; lengths run on the packed path. bfloat16: the product
against float64 sums of the rounded operands, the rounding itself against hand-worked values,
layers within 1e-2 of float32.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import rnnkit
from rnnkit import nn
from rnnkit.ops.linear import quantized_linear
from rnnkit.quantize import bfloat16_round_trip, int8_round_trip

SIMD_LEVELS = list(rnnkit.build_info()["simd_available"])


@pytest.fixture
def level():
    before = rnnkit.build_info()["simd"]
    yield lambda name: rnnkit._core.force_simd(name)
    rnnkit._core.force_simd(before)


def _quantized_ints(a):
    """Per row: (q in [-127, 127] as int64, scale) with q = round(a * 127 / max|a|)."""
    a = np.asarray(a, np.float32)
    amax = np.abs(a).max(axis=1, keepdims=True)
    safe = np.where(amax > 0, amax, np.float32(1))
    q = np.clip(np.rint(a * (np.float32(127) / safe)), -127, 127).astype(np.int64)
    return q * (amax > 0), (amax / np.float32(127)).astype(np.float32)


def reference_int8_linear(x, w, b):
    qx, sx = _quantized_ints(x)
    qw, sw = _quantized_ints(w)
    acc = qx @ qw.T                     # exact integers
    y = sx * sw.T * acc.astype(np.float32)
    return y if b is None else y + b


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 3, 15), (4, 4, 16), (5, 5, 17), (70, 63, 100),
                                   (2, 300, 64), (1, 257, 33)])
@pytest.mark.parametrize("bias", [False, True])
def test_int8_product_matches_integer_reference(level, m, k, n, bias):
    rng = np.random.default_rng(m * 1000 + k + n)
    x = rng.standard_normal((m, k)).astype(np.float32)
    x[0, :] = 0.0 if m > 2 else x[0, :]          # a zero row quantizes to zeros
    w = rng.uniform(-0.5, 0.5, (n, k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32) if bias else None
    want = reference_int8_linear(x, w, b)
    got = []
    for name in SIMD_LEVELS:
        level(name)
        got.append(quantized_linear(w, b, "int8").forward(x))
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)
    for g in got[1:]:
        assert np.array_equal(g, got[0])          # integer sums: the same bits on every level


def _amx_in_use(info):
    return ("amx_int8" in info["cpu_features"] and info["amx_permitted"]
            and os.environ.get("RNNKIT_AMX") != "0")


@pytest.mark.parametrize("kind,feature", [("int8", "avx512_vnni"), ("bf16", "avx512_bf16")])
def test_kernels_are_named(kind, feature):
    info = rnnkit.build_info()
    expect = feature if (feature in info["cpu_features"] and info["simd"] == "avx512") \
        else "portable"
    if kind == "int8" and info["simd"] == "avx512" and _amx_in_use(info):
        expect = "amx_int8"
    assert info[f"{kind}_kernel"] == expect


_AMX_PROBE = """
import numpy as np, rnnkit
from rnnkit.ops.linear import quantized_linear
rng = np.random.default_rng(7)
out = []
for m, k, n in [(1, 1, 1), (4, 64, 64), (5, 63, 17), (16, 130, 80), (37, 1030, 200)]:
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.uniform(-0.5, 0.5, (n, k)).astype(np.float32)
    out.append(quantized_linear(w, None, "int8").forward(x))
np.savez(__import__("sys").argv[1], *out)
print(rnnkit.build_info()["int8_kernel"])
"""


@pytest.mark.skipif(not _amx_in_use(rnnkit.build_info()) or
                    "avx512_vnni" not in rnnkit.build_info()["cpu_features"],
                    reason="needs a CPU with both AMX int8 (usable here) and AVX-512 VNNI")
def test_amx_and_vnni_kernels_give_the_same_bits(tmp_path):
    """The AMX tiles and the VNNI kernel sum the same integers (rows around the 16-row tile,
    K off the 64-byte tile width, panels off the 4-panel block), so their outputs are bitwise
    equal; RNNKIT_AMX=0 selects VNNI (in a fresh process: the choice is made once)."""
    import subprocess
    import sys
    got = {}
    for amx in ("1", "0"):
        env = dict(os.environ, RNNKIT_AMX=amx)
        path = tmp_path / f"amx{amx}.npz"
        run = subprocess.run([sys.executable, "-c", _AMX_PROBE, str(path)], env=env,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        got[amx] = (run.stdout.split()[-1], np.load(path))
    assert got["1"][0] == "amx_int8" and got["0"][0] == "avx512_vnni"
    for name in got["1"][1].files:
        assert np.array_equal(got["1"][1][name], got["0"][1][name]), name


def test_bfloat16_rounding():
    one = 1.0
    values = np.array([one, one + 2**-8, one + 3 * 2**-8, -2.5, 0.0, 3e38, 1e-30],
                      np.float32)
    want = np.array([one, one, one + 2**-6, -2.5, 0.0, 3.0e38, 1e-30], np.float32)
    got = bfloat16_round_trip(values)
    assert got[:5].tolist() == want[:5].tolist()
    for g, v in zip(got[5:], values[5:]):    # 8 mantissa bits kept: within 2^-9 relative
        assert abs(g - v) <= abs(v) * 2**-8
    assert (got.view(np.uint32) & 0xFFFF).max() == 0


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 3, 15), (5, 17, 17), (70, 63, 100),
                                   (2, 301, 64)])
def test_bf16_product_matches_rounded_reference(level, m, k, n):
    rng = np.random.default_rng(m + k + n)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.uniform(-0.5, 0.5, (n, k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    xr = bfloat16_round_trip(x).astype(np.float64)
    wr = bfloat16_round_trip(w).astype(np.float64)
    want = xr @ wr.T + b
    scale = np.abs(xr) @ np.abs(wr).T + np.abs(b)    # float32 sum rounding bound
    for name in SIMD_LEVELS:
        level(name)
        got = quantized_linear(w, b, "bfloat16").forward(x)
        assert np.all(np.abs(got - want) <= (k + 2) * 2**-24 * scale + 1e-30), name


def test_int8_non_finite_values_give_nan(level):
    """A NaN or inf in an activation row makes that row's outputs NaN, one in a weight row
    that output's column, as float arithmetic would; nothing else changes."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 20)).astype(np.float32)
    w = rng.uniform(-0.5, 0.5, (6, 20)).astype(np.float32)
    clean = quantized_linear(w, None, "int8").forward(x)
    x[1, 3], x[2, 7] = np.nan, np.inf
    w[4, 0] = np.nan
    for name in SIMD_LEVELS:
        level(name)
        y = quantized_linear(w, None, "int8").forward(x)
        assert np.isnan(y[[1, 2]]).all() and np.isnan(y[:, 4]).all()
        keep = np.ix_([0, 3], [0, 1, 2, 3, 5])
        assert np.array_equal(y[keep], clean[keep])


def test_round_trip_is_what_the_kernel_uses():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((7, 9)).astype(np.float32)
    w[3] = 0.0
    q, s = _quantized_ints(w)
    np.testing.assert_array_equal(int8_round_trip(w), (q * s).astype(np.float32))
    x = rng.standard_normal((5, 9)).astype(np.float32)   # re-quantizing changes nothing
    np.testing.assert_allclose(quantized_linear(int8_round_trip(w), None, "int8").forward(x),
                               quantized_linear(w, None, "int8").forward(x), rtol=1e-6, atol=1e-7)


LAYERS = [
    ("lstm", lambda: nn.LSTM(24, 96, num_layers=2, bidirectional=True, batch_first=True,
                             seed=0)),
    ("lstm_proj", lambda: nn.LSTM(24, 96, proj_size=40, seed=1)),
    ("lstm_peephole", lambda: nn.LSTM(24, 96, peephole=True, seed=2)),
    ("gru", lambda: nn.GRU(24, 96, num_layers=2, seed=3)),
    ("gru_reset_before", lambda: nn.GRU(24, 96, reset_after=False, bidirectional=True, seed=4)),
    ("rnn", lambda: nn.RNN(24, 96, nonlinearity="relu", seed=5)),
]


def _relative_error(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("name,make", LAYERS, ids=[n for n, _ in LAYERS])
@pytest.mark.parametrize("batch", [1, 4, 40])
@pytest.mark.parametrize("kind,bound", [("int8", 2e-2), ("bfloat16", 1e-2)])
def test_quantized_layers_stay_close_to_float(name, make, batch, kind, bound):
    layer = make().eval()
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((batch, 30, 24) if layer.batch_first else (30, batch, 24))
    x = x.astype(np.float32)
    y, state = layer(x)
    q = rnnkit.quantize(layer, kind)
    yq, state_q = q(x)
    assert q.quantized == kind and layer.quantized is None   # the original is untouched
    assert _relative_error(yq, y) <= bound
    for a, b in zip(state_q if isinstance(state_q, tuple) else (state_q,),
                    state if isinstance(state, tuple) else (state,)):
        assert _relative_error(a, b) <= bound
    # Not a float model in disguise: the error is that of the format (far above float32's).
    assert _relative_error(yq, y) > 1e-4


def test_quantized_model_threads_and_levels_bitwise(level):
    model = nn.Sequential(nn.LSTM(32, 160, batch_first=True, seed=0), nn.Linear(160, 50, seed=1))
    q = rnnkit.quantize(model)
    x = np.random.default_rng(0).standard_normal((3, 20, 32)).astype(np.float32)
    before = rnnkit.get_num_threads()
    try:
        outs = []
        for n in (1, 2):
            rnnkit.set_num_threads(n)
            q[0]._packed.drop()
            outs.append(q(x))
    finally:
        rnnkit.set_num_threads(before)
    assert np.array_equal(outs[0], outs[1])


@pytest.mark.parametrize("kind", ["int8", "bfloat16"])
def test_save_load_and_steps(tmp_path, kind):
    model = nn.Sequential(nn.Embedding(30, 16, seed=0), nn.GRU(16, 64, batch_first=True, seed=1),
                          nn.Linear(64, 30, seed=2))
    q = rnnkit.quantize(model, kind)
    x = np.random.default_rng(1).integers(0, 30, (2, 12))
    path = os.fspath(tmp_path / "q.rnnkit")
    rnnkit.save(q, path)
    loaded = rnnkit.load(path)
    assert [m.quantized for m in loaded.modules()] == [None, None, kind, kind]
    assert not loaded.training
    np.testing.assert_array_equal(loaded(x), q(x))
    # Generation runs the one-step path on the int8 weights too.
    tokens = rnnkit.sample(loaded, [1, 2, 3], 10, temperature=0.8, seed=0)
    assert len(tokens) == 10
    cell = rnnkit.quantize(nn.LSTMCell(8, 32, seed=0), kind)
    xs = np.random.default_rng(2).standard_normal((3, 8)).astype(np.float32)
    h, c = cell(xs)
    hf, cf = nn.LSTMCell(8, 32, seed=0).eval()(xs)
    assert _relative_error(h, hf) <= 2e-2 and cell(xs[0])[0].shape == (32,)


@pytest.mark.parametrize("cell", ["lstm", "gru", "gru_reset_before", "rnn_tanh"])
@pytest.mark.parametrize("reverse", [False, True])
def test_packed_sequences_take_lengths(cell, reverse):
    """The packed-step sequence path (what quantized layers run) with lengths, in float32,
    against the sequence kernel: finished rows keep their state, their y rows are zero."""
    from rnnkit import ops
    from rnnkit._cellspec import CELLS
    spec = CELLS[cell]
    rng = np.random.default_rng(3)
    T, B, I, H, G = 9, 6, 5, 12, spec.gates
    u = lambda *s: rng.uniform(-0.5, 0.5, s).astype(np.float32)  # noqa: E731
    w = [u(G * H, I), u(G * H, H), u(G * H), u(G * H)]
    x = u(T, B, I)
    states = [u(B, H) for _ in spec.states]
    lengths = np.array([9, 0, 1, 5, 8, 9], np.int64)
    want_y, want_states, _ = ops.sequence_forward(spec, x, states, *w, lengths=lengths,
                                                  reverse=reverse, training=False)
    step = spec.step(*w, (), None, None)
    y, finals = step.sequence(x, tuple(states), reverse, lengths)
    np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-6)
    assert not y[lengths[1]:, 1].any() and not y[5:, 3].any()
    for a, b in zip(finals, want_states):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="lengths"):
        step.sequence(x, tuple(states), reverse, np.array([10, 0, 0, 0, 0, 0]))


def test_quantized_layers_take_lengths():
    layer = nn.LSTM(6, 40, bidirectional=True, batch_first=True, seed=0).eval()
    x = np.random.default_rng(0).standard_normal((4, 11, 6)).astype(np.float32)
    lengths = np.array([11, 3, 0, 7])
    y, (h, c) = layer(x, lengths=lengths)
    yq, (hq, cq) = rnnkit.quantize(layer)(x, lengths=lengths)
    assert _relative_error(yq, y) <= 2e-2 and _relative_error(hq, h) <= 2e-2
    assert not yq[1, 3:].any() and not yq[2].any()


def test_refusals():
    q = rnnkit.quantize(nn.GRU(4, 8, seed=0))
    x = np.zeros((5, 2, 4), np.float32)
    q.train()
    with pytest.raises(RuntimeError, match="inference only"):
        q(x)
    with pytest.raises(TypeError, match="float32"):
        rnnkit.quantize(nn.LSTM(4, 8, dtype="float64"))
    with pytest.raises(ValueError, match="zoneout"):
        rnnkit.quantize(nn.LSTM(4, 8, zoneout=0.1))
    with pytest.raises(ValueError, match="int8"):
        rnnkit.quantize(nn.LSTM(4, 8), dtype="float16")
    with pytest.raises(ValueError, match="no layer"):
        rnnkit.quantize(nn.Sequential(nn.Embedding(4, 3)))
    with pytest.raises(ValueError, match="no layer"):   # LayerNorm amplifies the int8 error
        rnnkit.quantize(nn.LayerNormLSTM(4, 8))
    with pytest.raises(TypeError, match="rnnkit Module"):
        rnnkit.quantize(object())
    lin = nn.Linear(3, 2)
    assert rnnkit.quantize(lin, inplace=True) is lin and lin.quantized == "int8"
