"""ONNX's activations, clip and input_forget (rnnkit.ops.gates), without ONNX Runtime.

Every gradient against central finite differences of the forward (float64), for each cell
family and variant, with lengths and reverse; the options that spell a cell's own math are
that math, bitwise; thread counts bitwise; the layers' files and their errors.
tests/test_gate_options_ort.py compares the forward with ONNX Runtime's LSTM, GRU and RNN.
"""
import numpy as np
import pytest

import rnnkit
from helpers import central_differences
from rnnkit import nn, ops
from rnnkit.ops.gates import GateOptions

T, B, I, H = 4, 3, 3, 5
CASES = {
    "lstm": ("lstm", {}, GateOptions(("hard_sigmoid", "relu", ("hard_sigmoid", 0.3, 0.45)),
                                     clip=0.9, input_forget=True)),
    "lstm-tanh-clip": ("lstm", {}, GateOptions(("tanh", "sigmoid", "tanh"), clip=0.6)),
    "lstm-peephole": ("lstm", {"peephole": True},
                      GateOptions(("sigmoid", "hard_sigmoid", "relu"), input_forget=True)),
    "gru": ("gru", {}, GateOptions(("hard_sigmoid", "relu"), clip=0.7)),
    "gru-reset-before": ("gru", {"reset_after": False},
                         GateOptions(("sigmoid", "hard_sigmoid"), clip=0.5)),
    "rnn": ("rnn", {}, GateOptions(("sigmoid",), clip=0.8)),
}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def _problem(family, kw, seed):
    rng = np.random.default_rng(seed)
    g = GATES[family]
    p = {"x": rng.standard_normal((T, B, I)) * 1.5, "h0": rng.standard_normal((B, H)) * 0.5,
         "w_ih": rng.uniform(-0.6, 0.6, (g * H, I)), "w_hh": rng.uniform(-0.6, 0.6, (g * H, H)),
         "b_ih": rng.uniform(-0.4, 0.4, g * H), "b_hh": rng.uniform(-0.4, 0.4, g * H)}
    if family == "lstm":
        p["c0"] = rng.standard_normal((B, H)) * 0.5
    if kw.get("peephole"):
        p["peephole"] = rng.uniform(-0.5, 0.5, 3 * H)
    return p


def _forward(family, kw, p, options, lengths, reverse, training=True):
    common = dict(lengths=lengths, reverse=reverse, training=training, options=options)
    if family == "lstm":
        y, h, c, cache = ops.lstm_forward(p["x"], p["h0"], p["c0"], p["w_ih"], p["w_hh"],
                                          p["b_ih"], p["b_hh"], peephole=p.get("peephole"),
                                          **common)
        return (y, h, c), cache
    fn = ops.gru_forward if family == "gru" else ops.rnn_forward
    extra = {"reset_after": kw.get("reset_after", True)} if family == "gru" else {}
    y, h, cache = fn(p["x"], p["h0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], **extra,
                     **common)
    return (y, h), cache


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("lengths", [None, np.array([4, 0, 2])], ids=["full", "mixed"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_backward_matches_finite_differences(case, lengths, reverse):
    family, kw, options = CASES[case]
    p = _problem(family, kw, 1)
    outs, cache = _forward(family, kw, p, options, lengths, reverse)
    rng = np.random.default_rng(2)
    ups = [rng.standard_normal(o.shape) for o in outs]
    if lengths is not None:
        ups[0] *= (np.arange(T)[:, None] < lengths[None, :])[..., None]
    backward = getattr(ops, family + "_backward")
    g = backward(cache, *ups)
    names = dict(dx="x", dh0="h0", dc0="c0", dw_ih="w_ih", dw_hh="w_hh", db_ih="b_ih",
                 db_hh="b_hh", dpeephole="peephole")

    def loss(q):
        o, _ = _forward(family, kw, q, options, lengths, reverse, training=False)
        return float(sum((a * u).sum() for a, u in zip(o, ups)))
    for field in g._fields:
        name = names[field]
        num = central_differences(loss, p, name)
        # Clips and hard_sigmoid/relu have kinks: a central difference that straddles one is
        # off, so compare where the function is smooth over the step (almost everywhere).
        np.testing.assert_allclose(getattr(g, field), num, rtol=1e-5, atol=1e-6,
                                   err_msg=f"{case} {field}")


@pytest.mark.parametrize("family, options", [
    ("lstm", GateOptions(("sigmoid", "tanh", "tanh"))),
    ("gru", GateOptions(("Sigmoid", "Tanh"))),
    ("rnn", GateOptions(("tanh",)))])
def test_options_that_spell_the_default_are_the_default_bitwise(family, options):
    p = _problem(family, {}, 3)
    base, _ = _forward(family, {}, p, None, None, False)
    same, _ = _forward(family, {}, p, options, None, False)
    assert options.is_default_for(family)
    for a, b in zip(base, same):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", ["lstm", "gru-reset-before"])
def test_bitwise_identical_for_any_thread_count(case):
    family, kw, options = CASES[case]
    rng = np.random.default_rng(4)
    g, hid, b = GATES[family], 256, 16
    p = {"x": rng.standard_normal((5, b, 32)).astype(np.float32),
         "h0": rng.standard_normal((b, hid)).astype(np.float32) * 0.5,
         "c0": rng.standard_normal((b, hid)).astype(np.float32) * 0.5,
         "w_ih": rng.uniform(-0.1, 0.1, (g * hid, 32)).astype(np.float32),
         "w_hh": rng.uniform(-0.1, 0.1, (g * hid, hid)).astype(np.float32),
         "b_ih": rng.uniform(-0.3, 0.3, g * hid).astype(np.float32),
         "b_hh": rng.uniform(-0.3, 0.3, g * hid).astype(np.float32)}
    lengths = rng.integers(0, 6, b)
    before = rnnkit.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            rnnkit.set_num_threads(threads)
            outs, cache = _forward(family, kw, p, options, lengths, False)
            grads = getattr(ops, family + "_backward")(cache, np.ones_like(outs[0]))
            results.append(list(outs) + [a for a in grads if a is not None])
    finally:
        rnnkit.set_num_threads(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_layers_and_cells_take_the_options_and_save_them(tmp_path):
    m = nn.LSTM(I, H, num_layers=2, bidirectional=True, dtype="float64", seed=0,
                activations=["HardSigmoid", "relu", ("hard_sigmoid", 0.3, 0.4)], clip=0.8,
                input_forget=True)
    x = np.random.default_rng(5).standard_normal((T, B, I))
    y, _ = m(x)
    rnnkit.save(m, tmp_path / "m.rnnkit")
    m2 = rnnkit.load(tmp_path / "m.rnnkit")
    assert "clip=0.8" in repr(m2) and m2.input_forget
    np.testing.assert_array_equal(m2(x)[0], y)
    # Streaming steps (packed weights) carry the options too: one step per call (eval,
    # unidirectional) gives the sequence's bits.
    uni = nn.LSTM(I, H, dtype="float64", seed=2, activations=["relu", "tanh", "hard_sigmoid"],
                  clip=0.9).eval()
    ys, _ = uni(x)
    hx, steps = None, []
    for t in range(T):
        yt, hx = uni(x[t:t + 1], hx)
        steps.append(yt[0])
    np.testing.assert_array_equal(np.array(steps), ys)
    cell = nn.GRUCell(I, H, activations=["relu", "hard_sigmoid"], clip=0.5, dtype="float64",
                      seed=1)
    layer = nn.GRU(I, H, activations=["relu", "hard_sigmoid"], clip=0.5, dtype="float64",
                   seed=1)
    layer.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    cell.eval()
    h = None
    for t in range(T):
        h = cell(x[t], h)
    np.testing.assert_allclose(h, layer(x)[1][0], rtol=1e-13, atol=1e-14)
    assert "activations" not in nn.LSTM(I, H).get_config()  # default files unchanged


def test_options_round_trip_through_their_own_fields():
    o = GateOptions(("relu", "tanh", ("hard_sigmoid", 0.3, 0.4)), clip=1.0)
    assert GateOptions(o.activations, o.clip) == o
    assert GateOptions(input_forget=np.bool_(True)).input_forget is True


@pytest.mark.parametrize("make, error, match", [
    (lambda: GateOptions("relu"), TypeError, "the string 'relu'"),
    (lambda: GateOptions([None]), TypeError, r"activations\[0\] must be a name"),
    (lambda: nn.LSTM(3, 4, activations=["sigmoid", "tanh"]), ValueError, "3 slot"),
    (lambda: nn.GRU(3, 4, activations=["softplus", "tanh"]), ValueError, "one of sigmoid"),
    (lambda: nn.RNN(3, 4, clip=-1.0), ValueError, "clip must be a finite number > 0"),
    (lambda: nn.LSTM(3, 4, input_forget=1), TypeError, "input_forget must be True or False"),
    (lambda: nn.GRU(3, 4, activations=[("relu", 0.1), "tanh"]), ValueError, "no alpha"),
])
def test_bad_options_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()
