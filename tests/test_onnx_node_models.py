"""rnnkit against every LSTM / GRU / RNN node test of the installed onnx package.

onnx ships, in ``onnx.backend.test.case.node.{lstm,gru,rnn}``, the node tests that ONNX
backends are certified with: one node per case, with its attributes (hidden_size, direction,
layout, linear_before_reset, ...) and the optional inputs it uses (B, sequence_lens, initial_h,
initial_c, P). Each case is re-created here by running its ``export_*`` function with ``expect``
swapped for a recorder, so this test depends neither on the order nor on the global state of
``collect_testcases`` (which runs the exports once per process, at import, filtered by the
op type of its first caller).

For every case the node is run, through ``onnx.reference.ReferenceEvaluator``, on

* the case's own data (its recorded outputs are checked first, to the node tests' own
  tolerance, so the evaluator is known to agree with ONNX's expectations), and
* NEW random float32 weights and inputs of the same shapes (seeded per case), drawn so that the
  gate pre-activations are O(1): the node tests' constant weights (0.1 * ones) make every gate
  unit and every gate block alike, which would hide a swapped gate order or a transposed W;

and the same computation is run through rnnkit in torch's layout (the weights converted from
ONNX's gate orders): the layers (``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` with ``batch_first`` for
layout=1, ``bidirectional`` for direction="bidirectional", ``peephole`` for the P input,
``reset_after`` for linear_before_reset, ``bias=False`` where B is absent, ``lengths`` for
sequence_lens), and the ops functions with ``reverse=True`` for direction="reverse", which no
layer expresses. Every output is compared (Y, Y_h and, for the LSTM, Y_c): the node is run with
all its outputs named, even where the case leaves Y out.

sequence_lens: onnx.reference ignores it (tests/test_reference_onnx.py pins that). The only
node test that passes it (test_lstm_with_peepholes) gives every sequence the full length, so
there the full-length comparison is exact and honest. The "seq_length" GRU / RNN cases do not
pass sequence_lens at all (their node is X, W, R, B; only their name says seq_length). For the
cases that pass sequence_lens or are named seq_length, lengths are additionally checked with
random per-sequence lengths (0 and T included): rnnkit runs the whole batch with ``lengths=``
and ONNX runs each sequence alone, cut to its length, which is what sequence_lens means.

Attributes rnnkit cannot express (clip, activations other than the defaults or the RNN's Relu,
activation_alpha / activation_beta, input_forget=1) are not skipped silently: such a case is
listed in UNSUPPORTED with its reason, and that list must equal KNOWN_UNSUPPORTED.
"""

import importlib
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from helpers import assert_close
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator
from rnnkit import nn, ops

RTOL, ATOL = 1e-5, 1e-6      # float32 on both sides, as the node tests
OPSET = 22                   # the newest LSTM / GRU / RNN schemas (as test_reference_onnx.py)

# The node tests of the installed onnx (1.23): 6 per op. Listed so that a silently empty or
# partial enumeration fails, and so that a new onnx with new cases is noticed.
EXPECTED_CASES = (
    "test_lstm_defaults", "test_lstm_with_initial_bias", "test_lstm_with_peepholes",
    "test_lstm_batchwise", "test_lstm_reverse", "test_lstm_bidirectional",
    "test_gru_defaults", "test_gru_with_initial_bias", "test_gru_seq_length",
    "test_gru_batchwise", "test_gru_reverse", "test_gru_bidirectional",
    "test_simple_rnn_defaults", "test_simple_rnn_with_initial_bias", "test_rnn_seq_length",
    "test_simple_rnn_batchwise", "test_simple_rnn_reverse", "test_simple_rnn_bidirectional",
)
# name -> reason, for node tests using an attribute rnnkit cannot express. None in onnx 1.23.
KNOWN_UNSUPPORTED = {}

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
STATES = {"LSTM": ("Y_h", "Y_c"), "GRU": ("Y_h",), "RNN": ("Y_h",)}
# The node's input slots, in the schema's order.
INPUTS = {"LSTM": ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"),
          "GRU": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
          "RNN": ("X", "W", "R", "B", "sequence_lens", "initial_h")}
DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"],
                       "RNN": ["Tanh"]}
# ONNX's gate row blocks, in ours (torch's): GRU z, r, h -> r, z, n; LSTM i, o, f, c ->
# i, f, g, o; peephole P i, o, f -> ours i, f, o.
FROM_ONNX = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2], "RNN": [0]}
PEEP_FROM_ONNX = [0, 2, 1]


# ------------------------------------------------------------------------- the node tests


def _record_cases():
    """(name, node, inputs, outputs) of every LSTM / GRU / RNN node test, by re-running each
    ``export_*`` of onnx's lstm, gru and rnn case modules with ``expect`` recording."""
    from onnx.backend.test.case.base import Base

    cases = []

    def record(node, inputs, outputs, name, **_):
        cases.append((name, node, list(inputs), list(outputs)))

    for short in ("lstm", "gru", "rnn"):
        mod = importlib.import_module(f"onnx.backend.test.case.node.{short}")
        saved = mod.expect
        mod.expect = record
        try:
            for cls in vars(mod).values():
                if not (isinstance(cls, type) and issubclass(cls, Base) and cls is not Base
                        and cls.__module__ == mod.__name__):
                    continue
                for attr in sorted(vars(cls)):
                    if attr.startswith("export"):
                        np.random.seed(0)        # as onnx's own exporter does
                        getattr(cls, attr)()
        finally:
            mod.expect = saved
    return cases


CASES = _record_cases()
CASE_NAMES = [c[0] for c in CASES]


def attrs_of(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def direction_of(node):
    d = attrs_of(node).get("direction", b"forward")
    return d.decode() if isinstance(d, bytes) else d


def unsupported_reason(node):
    """Why rnnkit cannot run this node, or None."""
    op, a = node.op_type, attrs_of(node)
    nd = 2 if direction_of(node) == "bidirectional" else 1
    reasons = []
    if "clip" in a:
        reasons.append(f"clip={a['clip']}")
    if "activation_alpha" in a or "activation_beta" in a:
        reasons.append("activation_alpha / activation_beta")
    if "activations" in a:
        acts = [s.decode() if isinstance(s, bytes) else s for s in a["activations"]]
        ok = [DEFAULT_ACTIVATIONS[op] * nd]
        if op == "RNN":
            ok.append(["Relu"] * nd)
        if acts not in ok:
            reasons.append(f"activations={acts}")
    if a.get("input_forget", 0):
        reasons.append(f"input_forget={a['input_forget']}")
    if a.get("linear_before_reset", 0) not in (0, 1):
        reasons.append(f"linear_before_reset={a['linear_before_reset']}")
    if a.get("layout", 0) not in (0, 1):
        reasons.append(f"layout={a['layout']}")
    return "; ".join(reasons) or None


UNSUPPORTED = {c[0]: unsupported_reason(c[1]) for c in CASES if unsupported_reason(c[1])}
SUPPORTED = [c for c in CASES if c[0] not in UNSUPPORTED]


def test_enumeration_finds_every_node_test():
    assert len(CASE_NAMES) == len(set(CASE_NAMES)), CASE_NAMES
    assert sorted(CASE_NAMES) == sorted(EXPECTED_CASES), (
        f"onnx {onnx.__version__} has node tests {sorted(CASE_NAMES)}")
    assert len(CASES) == 18
    assert {c[1].op_type for c in CASES} == {"LSTM", "GRU", "RNN"}


def test_unsupported_cases_are_the_known_ones():
    assert UNSUPPORTED == KNOWN_UNSUPPORTED
    assert len(SUPPORTED) == len(EXPECTED_CASES) - len(KNOWN_UNSUPPORTED)


def test_onnx_collect_testcases_agrees():
    """onnx's own enumeration (when this process has not run it filtered) lists the same."""
    from onnx.backend.test.case import node as node_cases
    with warnings.catch_warnings():     # other ops' exports overflow casts on purpose
        warnings.simplefilter("ignore")
        found = {t.name for t in node_cases.collect_testcases()
                 if t.model.graph.node and t.model.graph.node[0].op_type in GATES}
    if not found:
        pytest.skip("collect_testcases ran filtered to another op type earlier in this process")
    assert found == set(EXPECTED_CASES)


# ---------------------------------------------------------------------------- ONNX side


def inputs_by_slot(node, values):
    """{slot name: array} of the inputs the node uses (its empty "" slots left out)."""
    slots = INPUTS[node.op_type]
    names = list(node.input)
    it = iter(values)
    return {slots[k]: next(it) for k, n in enumerate(names) if n != ""}


def output_shapes(node, given):
    """ONNX's shapes of Y, Y_h[, Y_c]: layout 0 (T, D, B, H), (D, B, H); layout 1
    (B, T, D, H), (B, D, H)."""
    a = attrs_of(node)
    H, layout = a["hidden_size"], a.get("layout", 0)
    nd = 2 if direction_of(node) == "bidirectional" else 1
    x = given["X"].shape
    if layout:
        B, T = x[0], x[1]
        return [(B, T, nd, H)] + [(B, nd, H)] * len(STATES[node.op_type])
    T, B = x[0], x[1]
    return [(T, nd, B, H)] + [(nd, B, H)] * len(STATES[node.op_type])


def run_onnx(node, given):
    """The node with every output named, over `given` ({slot: array}); returns {output: array}.
    The node's attributes are kept as they are."""
    op = node.op_type
    outputs = ["Y", *STATES[op]]
    slots = INPUTS[op]
    used = [s for s in slots if s in given]
    node_inputs = [s if s in given else "" for s in slots[:slots.index(used[-1]) + 1]]
    full = helper.make_node(op, node_inputs, outputs)
    full.attribute.extend(node.attribute)
    graph = helper.make_graph(
        [full], f"{op.lower()}_node_check",
        [helper.make_tensor_value_info(
            s, TensorProto.INT32 if s == "sequence_lens" else TensorProto.FLOAT,
            given[s].shape) for s in used],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
         for n, s in zip(outputs, output_shapes(full, given))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    result = ReferenceEvaluator(model).run(None, dict(given))
    for n, r in zip(outputs, result):
        assert r.dtype == np.float32, f"ONNX {n} came back as {r.dtype}"
    return dict(zip(outputs, result))


def random_like(node, given, seed):
    """New float32 values for every input the node uses, of the same shapes. sequence_lens
    is kept (full lengths in the node tests; see the module docstring)."""
    rng = np.random.default_rng(seed)
    H = attrs_of(node)["hidden_size"]
    I = given["W"].shape[-1]
    k = 1.5 / np.sqrt(I + H)
    scale = {"X": 1.0, "W": k, "R": k, "B": 0.5, "initial_h": 0.8, "initial_c": 0.8, "P": 0.5}
    out = {}
    for s, v in given.items():
        if s == "sequence_lens":
            out[s] = np.asarray(v).copy()
        else:
            out[s] = (rng.uniform(-1.0, 1.0, size=np.shape(v)) * scale[s]).astype(np.float32)
    return out


# -------------------------------------------------------------------------- rnnkit side


def reorder(a, order):
    blocks = np.split(np.asarray(a), len(order), axis=0)
    return np.ascontiguousarray(np.concatenate([blocks[k] for k in order], axis=0))


def torch_weights(op, given, d):
    """w_ih, w_hh, b_ih, b_hh (None without B), peephole (None without P) of direction d, in
    rnnkit's (torch's) layout."""
    order = FROM_ONNX[op]
    w_ih = reorder(given["W"][d], order)
    w_hh = reorder(given["R"][d], order)
    b_ih = b_hh = peep = None
    if "B" in given:
        wb, rb = np.split(given["B"][d], 2)
        b_ih, b_hh = reorder(wb, order), reorder(rb, order)
    if "P" in given:
        peep = reorder(given["P"][d], PEEP_FROM_ONNX)
    return w_ih, w_hh, b_ih, b_hh, peep


def cell_options(node, given):
    op, a = node.op_type, attrs_of(node)
    if op == "LSTM":
        return {"peephole": "P" in given}
    if op == "GRU":
        return {"reset_after": bool(a.get("linear_before_reset", 0))}
    acts = [s.decode() if isinstance(s, bytes) else s for s in a.get("activations", ["Tanh"])]
    return {"nonlinearity": acts[0].lower()}


def run_rnnkit(node, given, lengths=None):
    """The node computed by rnnkit: {"Y", "Y_h"[, "Y_c"]} in ONNX's shapes and layout."""
    op, a = node.op_type, attrs_of(node)
    direction, layout = direction_of(node), a.get("layout", 0)
    H = a["hidden_size"]
    x = given["X"]
    T, B = (x.shape[1], x.shape[0]) if layout else (x.shape[0], x.shape[1])
    I = x.shape[-1]
    nd = 2 if direction == "bidirectional" else 1
    opts = cell_options(node, given)
    n_states = len(STATES[op])

    def state0(slot):
        """(D, B, H) or None."""
        if slot not in given:
            return None
        s = given[slot]
        return np.ascontiguousarray(s.swapaxes(0, 1) if layout else s)

    s0 = [state0("initial_h"), state0("initial_c")][:n_states]
    if any(s is not None for s in s0):      # one given, the other zeros (what ONNX does)
        s0 = [np.zeros((nd, B, H), np.float32) if s is None else s for s in s0]
    else:
        s0 = None

    if direction == "reverse":
        # No layer runs the reverse direction alone: the ops function with reverse=True.
        xt = np.ascontiguousarray(x.swapaxes(0, 1) if layout else x)
        w_ih, w_hh, b_ih, b_hh, peep = torch_weights(op, given, 0)
        st = [None] * n_states if s0 is None else [s[0] for s in s0]
        kw = {"lengths": lengths, "reverse": True, "training": False}
        if op == "LSTM":
            y, h_n, c_n, _ = ops.lstm_forward(xt, st[0], st[1], w_ih, w_hh, b_ih, b_hh,
                                              peephole=peep, **kw)
            finals = [h_n[None], c_n[None]]
        elif op == "GRU":
            y, h_n, _ = ops.gru_forward(xt, st[0], w_ih, w_hh, b_ih, b_hh,
                                        reset_after=opts["reset_after"], **kw)
            finals = [h_n[None]]
        else:
            y, h_n, _ = ops.rnn_forward(xt, st[0], w_ih, w_hh, b_ih, b_hh,
                                        nonlinearity=opts["nonlinearity"], **kw)
            finals = [h_n[None]]
        y = y[:, :, None, :]                 # (T, B, 1, H) -> (B, T, 1, H) or (T, 1, B, H)
        y = np.ascontiguousarray(y.transpose(1, 0, 2, 3) if layout else y.transpose(0, 2, 1, 3))
    else:
        layer_cls = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}[op]
        layer = layer_cls(I, H, bias="B" in given, batch_first=bool(layout),
                          bidirectional=nd == 2, dtype="float32", seed=0, **opts)
        layer.eval()
        state = {}
        for d in range(nd):
            sfx = "_l0" + ("_reverse" if d else "")
            w_ih, w_hh, b_ih, b_hh, peep = torch_weights(op, given, d)
            state["weight_ih" + sfx], state["weight_hh" + sfx] = w_ih, w_hh
            if b_ih is not None:
                state["bias_ih" + sfx], state["bias_hh" + sfx] = b_ih, b_hh
            if peep is not None:
                state["peephole" + sfx] = peep
        layer.load_state_dict(state)           # strict: names and shapes must all match
        hx = None if s0 is None else (tuple(s0) if op == "LSTM" else s0[0])
        y, fin = layer(x, hx, lengths=lengths)
        finals = list(fin) if op == "LSTM" else [fin]
        y = np.asarray(y)
        if layout:                              # (B, T, D*H) -> (B, T, D, H)
            y = y.reshape(B, T, nd, H)
        else:                                   # (T, B, D*H) -> (T, D, B, H)
            y = y.reshape(T, B, nd, H).transpose(0, 2, 1, 3)
    out = {"Y": y}
    for name, f in zip(STATES[op], finals):
        f = np.asarray(f)
        assert f.shape == (nd, B, H), (name, f.shape)
        out[name] = f.swapaxes(0, 1) if layout else f
    for n, v in out.items():
        assert np.asarray(v).dtype == np.float32, f"rnnkit {n} is {np.asarray(v).dtype}"
    return out


def compare(ours, theirs, what):
    assert set(ours) == set(theirs), (sorted(ours), sorted(theirs))
    for n in theirs:
        assert_close(ours[n], theirs[n], RTOL, ATOL, f"{what}: {n}")


# -------------------------------------------------------------------------------- tests

SUPPORTED_IDS = [c[0] for c in SUPPORTED]


@pytest.mark.parametrize("case", SUPPORTED, ids=SUPPORTED_IDS)
def test_evaluator_reproduces_the_recorded_outputs(case):
    """The evaluator gives the node test's own expected outputs (to the node tests' rtol 1e-3,
    atol 1e-7), so the comparisons below are against what ONNX means."""
    name, node, inputs, outputs = case
    result = ReferenceEvaluator(node).run(None, {n: v for n, v in zip(
        [n for n in node.input if n != ""], inputs)})
    produced = [r for n, r in zip(node.output, result) if n != ""]
    assert len(produced) == len(outputs)
    for k, (got, want) in enumerate(zip(produced, outputs)):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-7, err_msg=f"{name} out {k}")


@pytest.mark.parametrize("case", SUPPORTED, ids=SUPPORTED_IDS)
def test_rnnkit_matches_the_node_on_its_own_data(case):
    name, node, inputs, _ = case
    given = inputs_by_slot(node, inputs)
    lengths = given.get("sequence_lens")
    if lengths is not None:    # onnx.reference ignores it: only full lengths are honest here
        T = given["X"].shape[1 if attrs_of(node).get("layout", 0) else 0]
        assert np.all(lengths == T), f"{name}: sequence_lens {lengths} not all T={T}"
    compare(run_rnnkit(node, given, lengths), run_onnx(node, given), f"{name} (own data)")


@pytest.mark.parametrize("case", SUPPORTED, ids=SUPPORTED_IDS)
def test_rnnkit_matches_the_node_on_random_data(case):
    name, node, inputs, _ = case
    given = random_like(node, inputs_by_slot(node, inputs), seed=CASE_NAMES.index(name) + 101)
    compare(run_rnnkit(node, given, given.get("sequence_lens")), run_onnx(node, given),
            f"{name} (random data)")


# The GRU node tests all use ONNX's default linear_before_reset=0 (rnnkit's reset_after=False);
# the same nodes with linear_before_reset=1 (reset_after=True, torch's GRU) are run too. These
# are variants, not node tests of onnx.
GRU_CASES = [c for c in SUPPORTED if c[1].op_type == "GRU"]


def test_gru_node_tests_all_use_linear_before_reset_0():
    assert len(GRU_CASES) == 6
    assert all(attrs_of(c[1]).get("linear_before_reset", 0) == 0 for c in GRU_CASES)


@pytest.mark.parametrize("case", GRU_CASES, ids=[c[0] + "_lbr1" for c in GRU_CASES])
def test_rnnkit_matches_gru_nodes_with_linear_before_reset_1(case):
    name, node, inputs, _ = case
    lbr1 = onnx.NodeProto()
    lbr1.CopyFrom(node)
    kept = [a for a in lbr1.attribute if a.name != "linear_before_reset"]
    del lbr1.attribute[:]
    lbr1.attribute.extend(kept + [helper.make_attribute("linear_before_reset", 1)])
    given = random_like(lbr1, inputs_by_slot(lbr1, inputs), seed=CASE_NAMES.index(name) + 201)
    ours, theirs = run_rnnkit(lbr1, given), run_onnx(lbr1, given)
    compare(ours, theirs, f"{name} with linear_before_reset=1")
    # The flag matters on this data, so the lbr0 and lbr1 matches are not the same check:
    # except where h is 0 at every step (one step, no initial_h) and there is no bias b_hn,
    # which is where the two formulas coincide.
    lbr0 = run_onnx(node, given)
    T = given["X"].shape[1 if attrs_of(node).get("layout", 0) else 0]
    diff = np.abs(lbr0["Y_h"] - theirs["Y_h"]).max()
    if T > 1 or "B" in given or "initial_h" in given:
        assert diff > 1e-4, diff
    else:
        assert diff == 0, diff


# Lengths: the cases that pass sequence_lens or are named seq_length, with random lengths.
LENGTH_CASES = [c for c in SUPPORTED
                if "seq_length" in c[0] or "sequence_lens" in list(c[1].input)]


def test_length_cases_are_the_expected_ones():
    assert sorted(c[0] for c in LENGTH_CASES) == [
        "test_gru_seq_length", "test_lstm_with_peepholes", "test_rnn_seq_length"]


@pytest.mark.parametrize("case", LENGTH_CASES, ids=[c[0] for c in LENGTH_CASES])
def test_rnnkit_lengths_match_the_node_per_sequence(case):
    """rnnkit with lengths= over the batch against ONNX on each sequence alone, cut to its
    length (onnx.reference ignores sequence_lens, so it cannot be given the batch)."""
    name, node, inputs, _ = case
    op, layout = node.op_type, attrs_of(node).get("layout", 0)
    assert layout == 0
    given = random_like(node, inputs_by_slot(node, inputs), seed=CASE_NAMES.index(name) + 301)
    given.pop("sequence_lens", None)
    T, B = given["X"].shape[:2]
    rng = np.random.default_rng(CASE_NAMES.index(name) + 401)
    lengths = rng.permutation(np.resize(np.arange(T + 1), B)).astype(np.int64)
    assert 0 in lengths and T in lengths        # B > T in these cases: both extremes drawn
    ours = run_rnnkit(node, given, lengths)
    nd = ours["Y"].shape[1]
    for b, L in enumerate(lengths):
        assert_close(ours["Y"][L:, :, b], np.zeros_like(ours["Y"][L:, :, b]), 0, 0,
                     f"{name}: padding Y[:, :, {b}]")
        if L == 0:
            for s, slot in zip(STATES[op], ("initial_h", "initial_c")):
                start = given[slot][:, b] if slot in given else np.zeros((nd, ours[s].shape[-1]))
                assert_close(ours[s][:, b], start, 0, 0, f"{name}: {s}[:, {b}] of empty seq")
            continue
        one = {k: (v[:L, b:b + 1] if k == "X" else v[:, b:b + 1] if k.startswith("initial")
                   else v) for k, v in given.items()}
        theirs = run_onnx(node, one)
        assert_close(ours["Y"][:L, :, b:b + 1], theirs["Y"], RTOL, ATOL, f"{name}: Y[:, :, {b}]")
        for s in STATES[op]:
            assert_close(ours[s][:, b:b + 1], theirs[s], RTOL, ATOL, f"{name}: {s}[:, {b}]")
