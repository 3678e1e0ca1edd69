"""The LayerNorm LSTM and GRU beyond what the registry's generic tests check (those run every
cell through lengths, reverse, dtypes, validation and finite differences): results that do not
depend on the thread count, the layers' parameters and their initial values, rows whose
products are all equal (zero variance), and what the LayerNorm layers refuse."""
import numpy as np
import pytest

import reference
import rnnkit
from helpers import assert_close
from rnnkit import nn, ops

LN_CELLS = ("layernorm_lstm", "layernorm_gru")
FORWARD = {"layernorm_lstm": ops.layernorm_lstm_forward, "layernorm_gru": ops.layernorm_gru_forward}
BACKWARD = {"layernorm_lstm": ops.layernorm_lstm_backward,
            "layernorm_gru": ops.layernorm_gru_backward}
REFERENCE = {"layernorm_lstm": (reference.layernorm_lstm_forward,
                                reference.layernorm_lstm_backward),
             "layernorm_gru": (reference.layernorm_gru_forward, reference.layernorm_gru_backward)}


def _problem(cell, T, B, I, H, dtype, seed=0):
    rng = np.random.default_rng(seed)
    G = 4 if cell == "layernorm_lstm" else 3
    u = lambda *s: rng.uniform(-0.5, 0.5, s).astype(dtype)  # noqa: E731
    p = dict(x=u(T, B, I), w_ih=u(G * H, I), w_hh=u(G * H, H), b_ih=u(G * H), b_hh=u(G * H),
             ln_weight_ih=(1 + u(G * H)), ln_weight_hh=(1 + u(G * H)))
    states = [u(B, H)] + ([u(B, H)] if cell == "layernorm_lstm" else [])
    if cell == "layernorm_lstm":
        p.update(ln_weight_c=1 + u(H), ln_bias_c=u(H))
    return p, states


def _run(cell, p, states, dtype, **kw):
    """Outputs, final states and every gradient of one forward + backward through ops."""
    ln = {k: v for k, v in p.items() if k.startswith("ln_")}
    out = FORWARD[cell](p["x"], *states, p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], **ln, **kw)
    y, finals, cache = out[0], out[1:-1], out[-1]
    dy, dn = _upstream(y, finals, dtype)
    grads = BACKWARD[cell](cache, dy, *dn)
    return [np.array(y)] + list(finals) + [g for g in grads if g is not None]


def _upstream(y, finals, dtype):
    """The same upstream gradients for every dtype (drawn, rounded to float32, converted)."""
    rng = np.random.default_rng(99)
    draw = lambda shape: rng.standard_normal(shape).astype(np.float32).astype(dtype)  # noqa
    return draw(y.shape), [draw(f.shape) for f in finals]


@pytest.mark.parametrize("cell", LN_CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_results_are_bitwise_the_same_for_one_and_two_threads(cell, reverse):
    # Big enough that the engine uses two threads (as the golden corpus's "threads" case),
    # with units that do not split evenly and lengths that shrink the running rows.
    T, B, I, H = 4, 32, 16, 150
    p, states = _problem(cell, T, B, I, H, np.float32)
    lengths = np.random.default_rng(5).integers(0, T + 1, B)
    before = rnnkit.get_num_threads()
    try:
        results = {}
        for n in (1, 2):
            rnnkit.set_num_threads(n)
            results[n] = _run(cell, p, states, np.float32, lengths=lengths, reverse=reverse)
    finally:
        rnnkit.set_num_threads(before)
    for a, b in zip(results[1], results[2]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", LN_CELLS)
def test_float32_matches_the_float64_reference_at_a_larger_size(cell):
    T, B, I, H = 6, 5, 24, 70
    p, states = _problem(cell, T, B, I, H, np.float64, seed=3)
    lengths = np.array([6, 1, 0, 4, 6])
    want = _reference(cell, p, states, lengths)
    p32 = {k: v.astype(np.float32) for k, v in p.items()}
    got = _run(cell, p32, [s.astype(np.float32) for s in states], np.float32, lengths=lengths)
    assert len(got) == len(want)
    for k, (a, e) in enumerate(zip(got, want)):
        assert_close(a, e, rtol=2e-3, atol=2e-4 * max(1.0, float(np.abs(e).max())),
                     name=f"result {k}")


def _reference(cell, p, states, lengths):
    fwd, bwd = REFERENCE[cell]
    ln = {k: v for k, v in p.items() if k.startswith("ln_")}
    out = fwd(p["x"], *states, p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], lengths=lengths,
              **ln)
    y, finals, cache = out[0], out[1:-1], out[-1]
    dy, dn = _upstream(y, finals, np.float64)
    grads = bwd(cache, dy, *dn)
    return [y] + list(finals) + [g for g in grads if g is not None]


@pytest.mark.parametrize("cell", LN_CELLS)
def test_rows_of_equal_products_stay_finite_and_match_the_reference(cell):
    # x = 0 and h0 = 0: every product of the first step is 0, the variance 0 and the
    # LayerNorm's rstd 1/sqrt(eps): the output is the biases' alone, no NaN.
    T, B, I, H = 3, 2, 4, 5
    p, _ = _problem(cell, T, B, I, H, np.float64, seed=4)
    p["x"] = np.zeros_like(p["x"])
    states = [np.zeros((B, H))] * (2 if cell == "layernorm_lstm" else 1)
    got = _run(cell, p, states, np.float64)
    want = _reference(cell, p, states, None)
    for k, (a, e) in enumerate(zip(got, want)):
        assert np.all(np.isfinite(a)), k
        assert_close(a, e, rtol=1e-9, atol=1e-9, name=f"result {k}")


@pytest.mark.parametrize("cls, extra", [
    (nn.LayerNormLSTM, {"ln_weight_ih": 4, "ln_weight_hh": 4, "ln_weight_c": 1, "ln_bias_c": 1}),
    (nn.LayerNormGRU, {"ln_weight_ih": 3, "ln_weight_hh": 3}),
])
def test_layer_parameters_names_shapes_and_initial_values(cls, extra):
    H, I = 6, 5
    m = cls(I, H, num_layers=2, bidirectional=True, seed=1)
    names = dict(m.named_parameters())
    G = extra["ln_weight_ih"]
    for k in range(2):
        for sfx in (f"_l{k}", f"_l{k}_reverse"):
            assert names["weight_ih" + sfx].shape == (G * H, I if k == 0 else 2 * H)
            assert names["weight_hh" + sfx].shape == (G * H, H)
            for name, width in extra.items():
                p = names[name + sfx].data
                assert p.shape == (width * H,), name
                # torch.nn.LayerNorm's initial values: gains 1, bias 0
                assert np.all(p == (0.0 if name == "ln_bias_c" else 1.0)), name
            bound = 1 / np.sqrt(H)
            w = names["weight_hh" + sfx].data
            assert np.abs(w).max() <= bound and np.abs(w).max() > bound / 2
    assert len(names) == 2 * 2 * (4 + len(extra))
    assert not any(n.startswith("bias") for n, _ in cls(I, H, bias=False).named_parameters())


def test_layer_gradients_reach_every_layernorm_parameter():
    m = nn.LayerNormLSTM(3, 4, num_layers=2, seed=2, dtype="float64")
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    y, _ = m(x)
    m.backward(np.random.default_rng(1).standard_normal(y.shape))
    for name, p in m.named_parameters():
        assert p.grad is not None and np.abs(p.grad).max() > 0, name


def test_layers_refuse_what_they_do_not_have():
    with pytest.raises(TypeError):
        nn.LayerNormLSTM(3, 4, proj_size=2)
    with pytest.raises(TypeError):
        nn.LayerNormGRU(3, 4, activations=["relu", "tanh"])
    with pytest.raises(TypeError):
        nn.LayerNormLSTMCell(3, 4, peephole=True)
    p, states = _problem("layernorm_lstm", 2, 1, 3, 4, np.float64)
    with pytest.raises(TypeError, match="ln_weight_c"):
        ops.layernorm_lstm_forward(p["x"], *states, p["w_ih"], p["w_hh"], None, None,
                                   ln_weight_ih=p["ln_weight_ih"],
                                   ln_weight_hh=p["ln_weight_hh"], ln_bias_c=p["ln_bias_c"])
    with pytest.raises(ValueError, match="ln_weight_hh"):
        ops.layernorm_lstm_forward(p["x"], *states, p["w_ih"], p["w_hh"], None, None,
                                   ln_weight_ih=p["ln_weight_ih"],
                                   ln_weight_hh=p["ln_weight_hh"][:-1],
                                   ln_weight_c=p["ln_weight_c"], ln_bias_c=p["ln_bias_c"])


@pytest.mark.parametrize("cls", [nn.LayerNormLSTM, nn.LayerNormGRU])
def test_layer_save_load_round_trip(tmp_path, cls):
    m = cls(3, 4, num_layers=2, bidirectional=True, seed=3)
    for p in m.parameters():  # the gains off their initial ones, so the file must carry them
        p.data[...] += np.random.default_rng(0).uniform(-0.1, 0.1, p.data.shape)
    rnnkit.save(m, tmp_path / "m.rnnkit")
    loaded = rnnkit.load(tmp_path / "m.rnnkit")
    assert type(loaded) is cls and repr(loaded) == repr(m)
    x = np.random.default_rng(1).standard_normal((4, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x)[0], m(x)[0])
