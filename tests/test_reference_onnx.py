"""Validates the numpy references of the GRU (both reset variants) and the LSTM (with and
without peepholes) against ONNX's own reference evaluator, which is written independently of
rnnkit and of tests/reference.py.

Layouts differ: ONNX packs the gates as GRU z, r, h and LSTM i, o, f, c (ours and torch's are
r, z, n and i, f, g, o), stacks W / R / B / P with a leading num_directions axis, puts both
biases in one B = [Wb, Rb], and orders the peepholes P as i, o, f (ours: i, f, o).

onnx.reference ignores the sequence_lens input (its GRU and LSTM take the argument and never
read it; test_onnx_reference_ignores_sequence_lens pins that), so lengths are checked by running
ONNX on each sequence cut to its own length, which is what API.md's lengths mean."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import reference as ref
from helpers import assert_close

# float64 on both sides; the evaluator's sigmoid is 1/(1+exp(-a)), ours the tanh form, so the
# two differ by rounding only: a few ulps per step, far below 1e-10 relative after T steps.
RTOL, ATOL = 1e-10, 1e-14
OPSET = 22  # the newest GRU / LSTM schemas; pinned so the graph does not follow onnx's default

# our gate row blocks, in ONNX's order
GRU_TO_ONNX = [1, 0, 2]         # r, z, n -> z, r, h
LSTM_TO_ONNX = [0, 3, 1, 2]     # i, f, g, o -> i, o, f, c
PEEP_TO_ONNX = [0, 2, 1]        # i, f, o -> i, o, f


def reorder(a, order):
    """Row blocks of a (G*H, ...) array (or (G*H,) vector) put in `order`."""
    blocks = np.split(np.asarray(a), len(order), axis=0)
    return np.concatenate([blocks[k] for k in order], axis=0)


def random_cell(G, T, B, I, H, seed):
    """x, h0, c0, w_ih, w_hh, b_ih, b_hh, peephole, drawn so pre-activations are O(1)."""
    rng = np.random.default_rng(seed)

    def u(*shape, scale=1.0):
        return rng.uniform(-1.0, 1.0, size=shape) * scale

    k = 1.5 / np.sqrt(I + H)
    return dict(x=u(T, B, I), h0=u(B, H, scale=0.8), c0=u(B, H, scale=0.8),
                w_ih=u(G * H, I, scale=k), w_hh=u(G * H, H, scale=k),
                b_ih=u(G * H, scale=0.5), b_hh=u(G * H, scale=0.5), peephole=u(3 * H))


def run_onnx(op, inputs, n_states, **attrs):
    """One-node graph `op` over `inputs` (an ordered dict name -> float64 array or None for an
    omitted optional input); returns Y (T, 1, B, H) and the n_states final states."""
    names = list(inputs)
    while inputs[names[-1]] is None:   # trailing optional inputs are simply left off
        names.pop()
    node_inputs = [n if inputs[n] is not None else "" for n in names]
    given = {n: v for n, v in inputs.items() if v is not None}
    outputs = ["Y", "Y_h", "Y_c"][:1 + n_states]
    (T, B, _), H = inputs["X"].shape, inputs["R"].shape[-1]
    node = helper.make_node(op, node_inputs, outputs, **attrs)
    graph = helper.make_graph(
        [node], f"{op.lower()}_reference_check",
        [helper.make_tensor_value_info(n, TensorProto.INT32 if n == "sequence_lens"
                                       else TensorProto.DOUBLE, v.shape)
         for n, v in given.items()],
        [helper.make_tensor_value_info(n, TensorProto.DOUBLE, s)
         for n, s in zip(outputs, [(T, 1, B, H)] + [(1, B, H)] * n_states)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    result = ReferenceEvaluator(model).run(None, given)
    for name, r in zip(outputs, result):
        assert r.dtype == np.float64, f"ONNX {name} came back as {r.dtype}, not float64"
    return result


def onnx_gru(c, *, reverse, reset_after, bias=True, h0=True, sequence_lens=None):
    H = c["w_hh"].shape[1]
    inputs = dict(
        X=c["x"],
        W=reorder(c["w_ih"], GRU_TO_ONNX)[None],
        R=reorder(c["w_hh"], GRU_TO_ONNX)[None],
        B=np.concatenate([reorder(c["b_ih"], GRU_TO_ONNX),
                          reorder(c["b_hh"], GRU_TO_ONNX)])[None] if bias else None,
        sequence_lens=sequence_lens,
        initial_h=c["h0"][None] if h0 else None)
    y, h_n = run_onnx("GRU", inputs, 1, hidden_size=H,
                      direction="reverse" if reverse else "forward",
                      linear_before_reset=int(reset_after))
    return y[:, 0], h_n[0]


def onnx_lstm(c, *, reverse, peephole, bias=True, state0=True):
    H = c["w_hh"].shape[1]
    inputs = dict(
        X=c["x"],
        W=reorder(c["w_ih"], LSTM_TO_ONNX)[None],
        R=reorder(c["w_hh"], LSTM_TO_ONNX)[None],
        B=np.concatenate([reorder(c["b_ih"], LSTM_TO_ONNX),
                          reorder(c["b_hh"], LSTM_TO_ONNX)])[None] if bias else None,
        sequence_lens=None,
        initial_h=c["h0"][None] if state0 else None,
        initial_c=c["c0"][None] if state0 else None,
        P=reorder(c["peephole"], PEEP_TO_ONNX)[None] if peephole else None)
    y, h_n, c_n = run_onnx("LSTM", inputs, 2, hidden_size=H,
                           direction="reverse" if reverse else "forward")
    return y[:, 0], h_n[0], c_n[0]


def ref_gru(c, *, reverse, reset_after, bias=True, h0=True, lengths=None):
    y, h_n, _ = ref.gru_forward(c["x"], c["h0"] if h0 else None, c["w_ih"], c["w_hh"],
                                c["b_ih"] if bias else None, c["b_hh"] if bias else None,
                                lengths=lengths, reverse=reverse, reset_after=reset_after)
    return y, h_n


def ref_lstm(c, *, reverse, peephole, bias=True, state0=True, lengths=None):
    y, h_n, c_n, _ = ref.lstm_forward(
        c["x"], c["h0"] if state0 else None, c["c0"] if state0 else None, c["w_ih"],
        c["w_hh"], c["b_ih"] if bias else None, c["b_hh"] if bias else None,
        lengths=lengths, reverse=reverse, peephole=c["peephole"] if peephole else None)
    return y, h_n, c_n


def cut(c, b, L):
    """Sequence b of problem c alone, its first L steps."""
    return dict(c, x=c["x"][:L, b:b + 1], h0=c["h0"][b:b + 1], c0=c["c0"][b:b + 1])


# ------------------------------------------------------------------------------------ GRU


@pytest.mark.parametrize("bias, h0", [(True, True), (False, False)], ids=["bias_h0", "bare"])
@pytest.mark.parametrize("reset_after", [True, False], ids=["lbr1", "lbr0"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_gru_matches_onnx(reverse, reset_after, bias, h0):
    c = random_cell(3, T=6, B=3, I=4, H=5, seed=31)
    y_o, h_o = onnx_gru(c, reverse=reverse, reset_after=reset_after, bias=bias, h0=h0)
    y_r, h_r = ref_gru(c, reverse=reverse, reset_after=reset_after, bias=bias, h0=h0)
    assert_close(y_r, y_o, RTOL, ATOL, "y")
    assert_close(h_r, h_o, RTOL, ATOL, "h_n")


def test_onnx_gru_variants_differ():
    """linear_before_reset really changes ONNX's result here, so the matches above tell the two
    reference variants apart (a reference ignoring reset_after could not pass both)."""
    c = random_cell(3, T=6, B=3, I=4, H=5, seed=31)
    y1, _ = onnx_gru(c, reverse=False, reset_after=True)
    y0, _ = onnx_gru(c, reverse=False, reset_after=False)
    assert np.abs(y1 - y0).max() > 1e-3


@pytest.mark.parametrize("reset_after", [True, False], ids=["lbr1", "lbr0"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_gru_lengths_match_onnx_per_sequence(reverse, reset_after):
    c = random_cell(3, T=5, B=4, I=3, H=4, seed=32)
    lengths = np.array([3, 0, 5, 1])
    y_r, h_r = ref_gru(c, reverse=reverse, reset_after=reset_after, lengths=lengths)
    for b, L in enumerate(lengths):
        assert_close(y_r[L:, b], np.zeros_like(y_r[L:, b]), 0, 0, f"padding y[:, {b}]")
        if L == 0:
            assert_close(h_r[b], c["h0"][b], 0, 0, f"h_n[{b}] of an empty sequence")
            continue
        y_o, h_o = onnx_gru(cut(c, b, L), reverse=reverse, reset_after=reset_after)
        assert_close(y_r[:L, b], y_o[:, 0], RTOL, ATOL, f"y[:, {b}]")
        assert_close(h_r[b], h_o[0], RTOL, ATOL, f"h_n[{b}]")


def test_onnx_reference_ignores_sequence_lens():
    """Why the lengths tests cut sequences instead of passing sequence_lens: onnx.reference
    gives the full-length result whatever sequence_lens says. Should a later onnx honour it,
    this fails and the lengths tests can pass sequence_lens directly."""
    c = random_cell(3, T=5, B=2, I=3, H=4, seed=33)
    full = onnx_gru(c, reverse=False, reset_after=True)
    lens = onnx_gru(c, reverse=False, reset_after=True,
                    sequence_lens=np.array([2, 5], dtype=np.int32))
    assert_close(lens[0], full[0], 0, 0, "Y with sequence_lens")
    assert_close(lens[1], full[1], 0, 0, "Y_h with sequence_lens")


# ----------------------------------------------------------------------------------- LSTM


@pytest.mark.parametrize("bias, state0", [(True, True), (False, False)],
                         ids=["bias_state0", "bare"])
@pytest.mark.parametrize("peephole", [False, True], ids=["plain", "peephole"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_lstm_matches_onnx(reverse, peephole, bias, state0):
    c = random_cell(4, T=6, B=3, I=4, H=5, seed=34)
    y_o, h_o, c_o = onnx_lstm(c, reverse=reverse, peephole=peephole, bias=bias, state0=state0)
    y_r, h_r, c_r = ref_lstm(c, reverse=reverse, peephole=peephole, bias=bias, state0=state0)
    assert_close(y_r, y_o, RTOL, ATOL, "y")
    assert_close(h_r, h_o, RTOL, ATOL, "h_n")
    assert_close(c_r, c_o, RTOL, ATOL, "c_n")


def test_onnx_peephole_matters_and_order_is_checked():
    """P changes ONNX's result, and feeding it in our order (i, f, o) unconverted does too: the
    match above pins both the peephole equations and the i, o, f conversion."""
    c = random_cell(4, T=6, B=3, I=4, H=5, seed=34)
    y_plain = onnx_lstm(c, reverse=False, peephole=False)[0]
    y_peep = onnx_lstm(c, reverse=False, peephole=True)[0]
    assert np.abs(y_peep - y_plain).max() > 1e-3
    swapped = dict(c, peephole=reorder(c["peephole"], PEEP_TO_ONNX))
    y_swapped = onnx_lstm(swapped, reverse=False, peephole=True)[0]
    assert np.abs(y_swapped - y_peep).max() > 1e-3


@pytest.mark.parametrize("peephole", [False, True], ids=["plain", "peephole"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_lstm_lengths_match_onnx_per_sequence(reverse, peephole):
    c = random_cell(4, T=5, B=4, I=3, H=4, seed=35)
    lengths = np.array([3, 0, 5, 1])
    y_r, h_r, c_r = ref_lstm(c, reverse=reverse, peephole=peephole, lengths=lengths)
    for b, L in enumerate(lengths):
        assert_close(y_r[L:, b], np.zeros_like(y_r[L:, b]), 0, 0, f"padding y[:, {b}]")
        if L == 0:
            assert_close(h_r[b], c["h0"][b], 0, 0, f"h_n[{b}] of an empty sequence")
            assert_close(c_r[b], c["c0"][b], 0, 0, f"c_n[{b}] of an empty sequence")
            continue
        y_o, h_o, c_o = onnx_lstm(cut(c, b, L), reverse=reverse, peephole=peephole)
        assert_close(y_r[:L, b], y_o[:, 0], RTOL, ATOL, f"y[:, {b}]")
        assert_close(h_r[b], h_o[0], RTOL, ATOL, f"h_n[{b}]")
        assert_close(c_r[b], c_o[0], RTOL, ATOL, f"c_n[{b}]")
