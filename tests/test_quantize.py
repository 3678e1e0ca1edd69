"""rnnkit.quantize: int8 weights for inference (cpp/kernels/int8_driver.inl).

The int8 product is checked against plain numpy integer arithmetic written from the stated
scheme (per-output-channel weights, per-row activations, both symmetric), bitwise equal across
SIMD levels (the portable loop against AVX-512 VNNI) and thread counts; quantized layers against
their float32 originals (relative error of y <= 2e-2 on random weights), through save/load, and
every refusal (training, lengths, float64, zoneout) is a clear error.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import rnnkit
from rnnkit import nn
from rnnkit.ops.linear import int8_linear
from rnnkit.quantize import int8_round_trip

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
        got.append(int8_linear(w, b).forward(x))
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)
    for g in got[1:]:
        assert np.array_equal(g, got[0])          # integer sums: the same bits on every level


def test_int8_kernel_is_named():
    kernel = rnnkit.build_info()["int8_kernel"]
    expect = "avx512_vnni" if ("avx512_vnni" in rnnkit.build_info()["cpu_features"]
                               and rnnkit.build_info()["simd"] == "avx512") else "portable"
    assert kernel == expect


def test_round_trip_is_what_the_kernel_uses():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((7, 9)).astype(np.float32)
    w[3] = 0.0
    q, s = _quantized_ints(w)
    np.testing.assert_array_equal(int8_round_trip(w), (q * s).astype(np.float32))
    x = rng.standard_normal((5, 9)).astype(np.float32)   # re-quantizing changes nothing
    np.testing.assert_allclose(int8_linear(int8_round_trip(w), None).forward(x),
                               int8_linear(w, None).forward(x), rtol=1e-6, atol=1e-7)


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
def test_quantized_layers_stay_close_to_float(name, make, batch):
    layer = make().eval()
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((batch, 30, 24) if layer.batch_first else (30, batch, 24))
    x = x.astype(np.float32)
    y, state = layer(x)
    q = rnnkit.quantize(layer)
    yq, state_q = q(x)
    assert q.quantized == "int8" and layer.quantized is None   # the original is untouched
    assert _relative_error(yq, y) <= 2e-2
    for a, b in zip(state_q if isinstance(state_q, tuple) else (state_q,),
                    state if isinstance(state, tuple) else (state,)):
        assert _relative_error(a, b) <= 2e-2
    # Not a float model in disguise: the error is that of int8 (far above float rounding).
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


def test_save_load_and_steps(tmp_path):
    model = nn.Sequential(nn.Embedding(30, 16, seed=0), nn.GRU(16, 64, batch_first=True, seed=1),
                          nn.Linear(64, 30, seed=2))
    q = rnnkit.quantize(model)
    x = np.random.default_rng(1).integers(0, 30, (2, 12))
    path = os.fspath(tmp_path / "q.rnnkit")
    rnnkit.save(q, path)
    loaded = rnnkit.load(path)
    assert [m.quantized for m in loaded.modules()] == [None, None, "int8", "int8"]
    assert not loaded.training
    np.testing.assert_array_equal(loaded(x), q(x))
    # Generation runs the one-step path on the int8 weights too.
    tokens = rnnkit.sample(loaded, [1, 2, 3], 10, temperature=0.8, seed=0)
    assert len(tokens) == 10
    cell = rnnkit.quantize(nn.LSTMCell(8, 32, seed=0))
    xs = np.random.default_rng(2).standard_normal((3, 8)).astype(np.float32)
    h, c = cell(xs)
    hf, cf = nn.LSTMCell(8, 32, seed=0).eval()(xs)
    assert _relative_error(h, hf) <= 2e-2 and cell(xs[0])[0].shape == (32,)


def test_refusals():
    q = rnnkit.quantize(nn.GRU(4, 8, seed=0))
    x = np.zeros((5, 2, 4), np.float32)
    with pytest.raises(ValueError, match="lengths"):
        q(x, lengths=[5, 3])
    q.train()
    with pytest.raises(RuntimeError, match="inference only"):
        q(x)
    with pytest.raises(TypeError, match="float32"):
        rnnkit.quantize(nn.LSTM(4, 8, dtype="float64"))
    with pytest.raises(ValueError, match="zoneout"):
        rnnkit.quantize(nn.LSTM(4, 8, zoneout=0.1))
    with pytest.raises(ValueError, match="int8"):
        rnnkit.quantize(nn.LSTM(4, 8), dtype="bfloat16")
    with pytest.raises(ValueError, match="no layer"):
        rnnkit.quantize(nn.Sequential(nn.Embedding(4, 3)))
    with pytest.raises(ValueError, match="no layer"):   # LayerNorm amplifies the int8 error
        rnnkit.quantize(nn.LayerNormLSTM(4, 8))
    with pytest.raises(TypeError, match="rnnkit Module"):
        rnnkit.quantize(object())
    lin = nn.Linear(3, 2)
    assert rnnkit.quantize(lin, inplace=True) is lin and lin.quantized == "int8"
