"""rnnkit.interop.onnx_import: ONNX graphs loaded and run on rnnkit's kernels, against
independent references.

* onnx's 18 LSTM / GRU / RNN node tests (onnx.backend.test.case.node.{lstm,gru,rnn},
  re-created by running each ``export_*`` with ``expect`` swapped for a recorder): each
  node's model is loaded and run on the case's inputs and compared with the case's recorded
  outputs; and run on NEW random weights and inputs with O(1) gate pre-activations (the
  node tests' constant weights make every gate block alike, hiding a swapped gate order),
  compared with onnx.reference.ReferenceEvaluator.
* What the node tests lack (clip, activations with HardSigmoid's alpha / beta, input_forget,
  layout=1, reverse, bidirectional, per-sequence sequence_lens, initial states,
  linear_before_reset=1), on small random graphs built with onnx.helper, against
  onnxruntime (onnx.reference ignores clip, activations and sequence_lens; onnxruntime
  refuses layout=1, so a layout=1 node is checked against onnxruntime's layout-0 node on the
  transposed data).
* The ops around recurrent nodes (Gather, Gemm, Slice, Softmax, ...) against the reference
  evaluator, a tf2onnx-style graph against onnxruntime, and torch.onnx.export's models
  against torch.
* Errors: unsupported ops name the op and the node; bad files raise ValueError naming the
  path.
"""

import importlib
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from helpers import assert_close  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from rnnkit.interop import onnx_import  # noqa: E402
from rnnkit.interop.onnx_import import OnnxUnsupportedError, load  # noqa: E402

OPSET = 22                     # the newest LSTM / GRU / RNN schemas
RTOL, ATOL = 1e-5, 1e-6        # float32 against float32
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
STATES = {"LSTM": ("Y_h", "Y_c"), "GRU": ("Y_h",), "RNN": ("Y_h",)}
SLOTS = {"LSTM": ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"),
         "GRU": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
         "RNN": ("X", "W", "R", "B", "sequence_lens", "initial_h")}
EXPECTED_CASES = {
    "test_lstm_defaults", "test_lstm_with_initial_bias", "test_lstm_with_peepholes",
    "test_lstm_batchwise", "test_lstm_reverse", "test_lstm_bidirectional",
    "test_gru_defaults", "test_gru_with_initial_bias", "test_gru_seq_length",
    "test_gru_batchwise", "test_gru_reverse", "test_gru_bidirectional",
    "test_simple_rnn_defaults", "test_simple_rnn_with_initial_bias", "test_rnn_seq_length",
    "test_simple_rnn_batchwise", "test_simple_rnn_reverse", "test_simple_rnn_bidirectional"}


def _ort():
    return pytest.importorskip("onnxruntime")


# ------------------------------------------------------------------------ the node tests


def _record_node_tests():
    """(name, node, inputs, outputs) of each LSTM / GRU / RNN node test of the installed
    onnx: every ``export*`` of the three case modules run with ``expect`` recording."""
    from onnx.backend.test.case.base import Base
    cases = []

    def record(node, inputs, outputs, name, **_):
        cases.append((name, node, list(inputs), list(outputs)))

    for short in ("lstm", "gru", "rnn"):
        mod = importlib.import_module(f"onnx.backend.test.case.node.{short}")
        saved, mod.expect = mod.expect, record
        try:
            for cls in list(vars(mod).values()):
                if isinstance(cls, type) and issubclass(cls, Base) and cls is not Base \
                        and cls.__module__ == mod.__name__:
                    for attr in sorted(vars(cls)):
                        if attr.startswith("export"):
                            np.random.seed(0)
                            getattr(cls, attr)()
        finally:
            mod.expect = saved
    return cases


NODE_TESTS = _record_node_tests()


def _tensor_type(a):
    return helper.np_dtype_to_tensor_dtype(np.asarray(a).dtype)


def node_model(node, inputs, opset=OPSET):
    """A ModelProto of the single node, its present inputs as graph inputs (X's type for the
    outputs)."""
    names = [n for n in node.input if n]
    outs = [n for n in node.output if n]
    graph = helper.make_graph(
        [node], f"{node.op_type.lower()}_model",
        [helper.make_tensor_value_info(n, _tensor_type(a), np.shape(a))
         for n, a in zip(names, inputs)],
        [helper.make_tensor_value_info(n, _tensor_type(inputs[0]), [None] * rank)
         for n, rank in zip(outs, _ranks(node))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _ranks(node):
    """The ranks of a recurrent node's named outputs: Y 4, the states 3 (onnx.checker wants
    the graph outputs' shapes, if only as unknown dimensions)."""
    return [4 if k == 0 else 3 for k, n in enumerate(node.output) if n]


def all_outputs(node):
    """The node with all its outputs named (Y, Y_h[, Y_c]) and inputs named by slot."""
    op = node.op_type
    slots = SLOTS[op]
    ins = [slots[k] if n else "" for k, n in enumerate(node.input)]
    full = helper.make_node(op, ins, ["Y", *STATES[op]], name=node.name or "rec")
    full.attribute.extend(node.attribute)
    return full


def by_slot(node, inputs):
    """{slot: array} of the inputs a node test passes."""
    slots = SLOTS[node.op_type]
    it = iter(inputs)
    return {slots[k]: next(it) for k, n in enumerate(node.input) if n}


def random_inputs(node, given, seed):
    """New float32 values of the same shapes, with O(1) gate pre-activations."""
    rng = np.random.default_rng(seed)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    hidden = attrs["hidden_size"]
    k = 1.5 / np.sqrt(given["W"].shape[-1] + hidden)
    scale = {"X": 1.0, "W": k, "R": k, "B": 0.5, "initial_h": 0.8, "initial_c": 0.8, "P": 0.5}
    return {s: (np.asarray(a).copy() if s == "sequence_lens" else
                (rng.uniform(-1, 1, np.shape(a)) * scale[s]).astype(np.float32))
            for s, a in given.items()}


def test_the_node_tests_are_all_found():
    names = [c[0] for c in NODE_TESTS]
    assert len(names) == 18 and set(names) == EXPECTED_CASES, sorted(names)


@pytest.mark.parametrize("case", NODE_TESTS, ids=[c[0] for c in NODE_TESTS])
def test_node_test_recorded_outputs(case):
    """The loaded node on the case's own inputs gives the case's expected outputs (to the
    node tests' own tolerances, rtol 1e-3 / atol 1e-7)."""
    name, node, inputs, outputs = case
    model = load(node_model(node, inputs))
    feeds = dict(zip([n for n in node.input if n], inputs))
    got = model.run(feeds)
    assert list(got) == [n for n in node.output if n]
    assert len(got) == len(outputs)
    for (out, g), want in zip(got.items(), outputs):
        assert g.dtype == want.dtype and g.shape == want.shape, (name, out, g.shape)
        np.testing.assert_allclose(g, want, rtol=1e-3, atol=1e-7, err_msg=f"{name} {out}")


@pytest.mark.parametrize("case", NODE_TESTS, ids=[c[0] for c in NODE_TESTS])
def test_node_test_random_data_against_the_reference_evaluator(case):
    """The node with every output named, new random weights and inputs: the loaded model
    (weights as initializers, so converted at load) and as graph inputs (converted per
    run) against onnx.reference."""
    name, node, inputs, _ = case
    full = all_outputs(node)
    given = random_inputs(node, by_slot(node, inputs), seed=sorted(EXPECTED_CASES).index(name))
    theirs = ReferenceEvaluator(full).run(None, given)
    model = node_model(full, list(given.values()))
    ours_inputs = load(model).run(given)
    # The weights as initializers instead.
    const = {s: a for s, a in given.items() if s in ("W", "R", "B", "P")}
    model.graph.initializer.extend(numpy_helper.from_array(a, s) for s, a in const.items())
    kept = [vi for vi in model.graph.input if vi.name not in const]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    imported = load(model)
    assert imported.input_names == [s for s in given if s not in const]
    ours_init = imported.run({s: a for s, a in given.items() if s not in const})
    for out, want in zip(full.output, theirs):
        assert_close(ours_inputs[out], want, RTOL, ATOL, f"{name} {out} (weights as inputs)")
        assert_close(ours_init[out], want, RTOL, ATOL, f"{name} {out} (initializers)")
        assert ours_init[out].dtype == np.float32


# ------------------------------------------------- attributes beyond the node tests (ORT)


def recurrent_graph(op, attrs, given, outputs=None, opset=OPSET, name="rec"):
    """A single-node model: `given` ({slot: array}) as graph inputs, every output named."""
    slots = SLOTS[op]
    used = [s for s in slots if s in given]
    ins = [s if s in given else "" for s in slots[:slots.index(used[-1]) + 1]]
    outputs = outputs or ["Y", *STATES[op]]
    node = helper.make_node(op, ins, outputs, name=name, **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(s, _tensor_type(given[s]),
                                                    given[s].shape) for s in used],
        [helper.make_tensor_value_info(n, _tensor_type(given["X"]), [None] * (3 if k else 4))
         for k, n in enumerate(outputs) if n])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def draw(op, *, T=5, B=4, I=3, H=4, nd=1, layout=0, bias=True, initial=False, peephole=False,
         lengths=None, seed=0, dtype=np.float32):
    """Random inputs of a recurrent node, O(1) gate pre-activations."""
    rng = np.random.default_rng(seed)
    g = GATES[op]
    k = 1.5 / np.sqrt(I + H)

    def u(shape, s):
        return (rng.uniform(-1, 1, shape) * s).astype(dtype)

    given = {"X": u((B, T, I) if layout else (T, B, I), 1.5), "W": u((nd, g * H, I), k),
             "R": u((nd, g * H, H), k)}
    if bias:
        given["B"] = u((nd, 2 * g * H), 0.5)
    if lengths is not None:
        given["sequence_lens"] = np.asarray(lengths, np.int32)
    if initial:
        shape = (B, nd, H) if layout else (nd, B, H)
        given["initial_h"] = u(shape, 0.8)
        if op == "LSTM":
            given["initial_c"] = u(shape, 0.8)
    if peephole:
        given["P"] = u((nd, 3 * H), 0.6)
    return given


def run_ort(model, feeds):
    ort = _ort()
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


# (op, attributes, draw() options). Every one runs with random per-sequence lengths too.
ATTRIBUTE_CASES = [
    ("LSTM", {"clip": 0.6}, {}),
    ("LSTM", {"clip": 0.9, "direction": "bidirectional"}, {"nd": 2, "initial": True}),
    ("LSTM", {"activations": ["HardSigmoid", "Tanh", "Relu"], "activation_alpha": [0.3],
              "activation_beta": [0.45]}, {}),
    # alpha / beta are consumed only by the activations that take them: Sigmoid's slot
    # takes none, so 0.35 / 0.4 belong to the HardSigmoid of the g slot.
    ("LSTM", {"activations": ["Sigmoid", "HardSigmoid", "Tanh"], "activation_alpha": [0.35],
              "activation_beta": [0.4]}, {"initial": True}),
    # Each direction its own activations; the alphas run on across both lists.
    ("LSTM", {"direction": "bidirectional",
              "activations": ["HardSigmoid", "Tanh", "Tanh", "Sigmoid", "HardSigmoid", "Relu"],
              "activation_alpha": [0.3, 0.15], "activation_beta": [0.45, 0.6]},
     {"nd": 2}),
    ("LSTM", {"input_forget": 1}, {"peephole": True}),
    ("LSTM", {"input_forget": 1, "clip": 1.2, "direction": "reverse"},
     {"peephole": True, "initial": True}),
    ("LSTM", {"direction": "reverse"}, {"initial": True, "bias": False}),
    ("LSTM", {"direction": "bidirectional"}, {"nd": 2, "peephole": True, "initial": True}),
    ("GRU", {"linear_before_reset": 1}, {"initial": True}),
    ("GRU", {"linear_before_reset": 1, "direction": "bidirectional"}, {"nd": 2}),
    ("GRU", {"linear_before_reset": 0, "direction": "bidirectional"},
     {"nd": 2, "initial": True}),
    ("GRU", {"activations": ["HardSigmoid", "Relu"], "activation_alpha": [0.25],
             "activation_beta": [0.5], "clip": 1.5, "linear_before_reset": 1}, {}),
    ("GRU", {"activations": ["Sigmoid", "Tanh", "HardSigmoid", "Tanh"],
             "direction": "bidirectional", "activation_alpha": [0.3],
             "activation_beta": [0.6]}, {"nd": 2}),
    ("GRU", {"direction": "reverse", "clip": 0.8}, {"initial": True}),
    ("RNN", {"activations": ["Relu"]}, {"initial": True}),
    ("RNN", {"activations": ["Relu", "Tanh"], "direction": "bidirectional"}, {"nd": 2}),
    ("RNN", {"activations": ["Sigmoid"], "clip": 0.7}, {}),
    ("RNN", {"activations": ["HardSigmoid"], "activation_alpha": [0.4],
             "activation_beta": [0.3], "direction": "reverse"}, {"initial": True}),
    ("RNN", {"direction": "bidirectional"}, {"nd": 2, "initial": True, "bias": False}),
]


def _case_id(c):
    op, attrs, opts = c
    bits = [op] + [f"{k}={v}" for k, v in sorted(attrs.items())
                   if k not in ("activation_alpha", "activation_beta")]
    bits += [k for k, v in sorted(opts.items()) if v and k != "nd"]
    return "-".join(str(b) for b in bits).replace(" ", "")


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("case", ATTRIBUTE_CASES, ids=[_case_id(c) for c in ATTRIBUTE_CASES])
def test_attributes_against_onnxruntime(case, with_lengths):
    op, attrs, opts = case
    seed = ATTRIBUTE_CASES.index(case) + 10 * with_lengths
    T, B = 5, 4
    lengths = [3, 0, 5, 1] if with_lengths else None
    given = draw(op, T=T, B=B, lengths=lengths, seed=seed, **opts)
    model = recurrent_graph(op, dict(attrs, hidden_size=4), given)
    ours, theirs = load(model).run(given), run_ort(model, given)
    assert list(ours) == ["Y", *STATES[op]]
    for n in ours:
        assert_close(ours[n], theirs[n], RTOL, ATOL, n)
    if with_lengths:     # padding: exact zeros past each length, in both directions
        for b, L in enumerate(lengths):
            assert not ours["Y"][L:, :, b].any()


LAYOUT_CASES = [("LSTM", {"direction": "bidirectional", "clip": 1.0},
                 {"nd": 2, "initial": True, "peephole": True}),
                ("LSTM", {"direction": "reverse", "input_forget": 1}, {"initial": True}),
                ("GRU", {"direction": "bidirectional", "linear_before_reset": 1},
                 {"nd": 2, "initial": True}),
                ("GRU", {"activations": ["HardSigmoid", "Tanh"]}, {}),
                ("RNN", {"direction": "bidirectional", "activations": ["Relu", "Relu"]},
                 {"nd": 2, "initial": True})]


@pytest.mark.parametrize("case", LAYOUT_CASES, ids=[_case_id(c) for c in LAYOUT_CASES])
def test_layout_1_against_onnxruntime_on_the_transposed_data(case):
    """layout=1 (batch-major X, Y, states): onnxruntime refuses it, so the reference is its
    layout-0 node on the same data transposed; per-sequence lengths included."""
    op, attrs, opts = case
    lengths = [2, 5, 0, 4]
    given = draw(op, T=5, B=4, layout=1, lengths=lengths, seed=LAYOUT_CASES.index(case) + 50,
                 **opts)
    ours = load(recurrent_graph(op, dict(attrs, hidden_size=4, layout=1), given)).run(given)
    time_major = {s: (a.swapaxes(0, 1) if s in ("X", "initial_h", "initial_c") else a)
                  for s, a in given.items()}
    model0 = recurrent_graph(op, dict(attrs, hidden_size=4), time_major)
    theirs = run_ort(model0, {s: np.ascontiguousarray(a) for s, a in time_major.items()})
    # ONNX's layout 1: Y (B, T, D, H) against layout 0's (T, D, B, H); states (B, D, H).
    assert_close(ours["Y"], theirs["Y"].transpose(2, 0, 1, 3), RTOL, ATOL, "Y")
    for s in STATES[op]:
        assert_close(ours[s], theirs[s].swapaxes(0, 1), RTOL, ATOL, s)


def test_layout_1_against_the_reference_evaluator():
    """layout=1 without sequence_lens, where the reference evaluator computes it too."""
    given = draw("LSTM", T=4, B=3, nd=2, layout=1, initial=True, seed=7)
    model = recurrent_graph("LSTM", {"hidden_size": 4, "direction": "bidirectional",
                                     "layout": 1}, given)
    ours = load(model).run(given)
    theirs = ReferenceEvaluator(model).run(None, given)
    for n, want in zip(["Y", "Y_h", "Y_c"], theirs):
        assert_close(ours[n], want, RTOL, ATOL, n)


def test_float64_against_the_reference_evaluator():
    for op in ("LSTM", "GRU", "RNN"):
        given = draw(op, nd=2, initial=True, seed=3, dtype=np.float64)
        model = recurrent_graph(op, {"hidden_size": 4, "direction": "bidirectional"}, given)
        ours = load(model).run(given)
        theirs = ReferenceEvaluator(model).run(None, given)
        for n, want in zip(["Y", *STATES[op]], theirs):
            assert ours[n].dtype == np.float64
            assert_close(ours[n], want, 1e-12, 1e-13, f"{op} {n}")


def test_only_some_outputs_and_initial_h_without_initial_c():
    """An LSTM with only initial_h (initial_c zeros, as ONNX says) and only Y_c named."""
    given = draw("LSTM", seed=11, initial=True)
    del given["initial_c"]
    model = recurrent_graph("LSTM", {"hidden_size": 4}, given, outputs=["", "", "Y_c"])
    ours = load(model).run(given)
    assert list(ours) == ["Y_c"]
    assert_close(ours["Y_c"], run_ort(model, given)["Y_c"], RTOL, ATOL, "Y_c")


def test_hidden_size_may_be_left_out():
    """hidden_size is optional in the schema (R's shape says it); onnxruntime requires it,
    so its reference is the same node with it."""
    given = draw("GRU", seed=12)
    theirs = run_ort(recurrent_graph("GRU", {"hidden_size": 4}, given), given)
    ours = load(recurrent_graph("GRU", {}, given)).run(given)
    assert_close(ours["Y"], theirs["Y"], RTOL, ATOL, "Y")


# -------------------------------------------------------- the ops around recurrent nodes


def _graph_model(nodes, inputs, outputs, initializers=(), opset=OPSET, like=None):
    """A model of `nodes`; outputs declared like the arrays `like` ({name: array}), of
    unknown rank-2 float32 otherwise."""
    like = like or {}

    def out_info(n):
        a = like.get(n, np.zeros((0, 0), np.float32))
        return helper.make_tensor_value_info(n, _tensor_type(a), [None] * np.ndim(a))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, _tensor_type(a), np.shape(a))
                     for n, a in inputs.items()],
        [out_info(n) for n in outputs],
        initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in initializers])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _i64(*v):
    return np.asarray(v, np.int64)


_R = np.random.default_rng(5)
_X = _R.standard_normal((3, 4, 5)).astype(np.float32)
_M = _R.standard_normal((5, 2)).astype(np.float32)
_N = helper.make_node
# (id, nodes, inputs, initializers, opset): outputs are every node's first output.
OP_CASES = [
    ("gather_embedding", [_N("Gather", ["E", "idx"], ["y"])],
     {"idx": np.array([[0, 3], [2, -1]], np.int64)}, [("E", _M)], OPSET),
    ("gather_axis1", [_N("Gather", ["x", "i"], ["y"], axis=1)], {"x": _X},
     [("i", _i64(3, 0))], OPSET),
    ("gemm_transB_alpha_beta", [_N("Gemm", ["a", "b", "c"], ["y"], transB=1, alpha=0.5,
                                   beta=2.0)],
     {"a": _X[0]}, [("b", _R.standard_normal((3, 5)).astype(np.float32)),
                    ("c", _R.standard_normal(3).astype(np.float32))], OPSET),
    ("gemm_transA", [_N("Gemm", ["a", "b"], ["y"], transA=1)], {"a": _X[0].T.copy()},
     [("b", _M)], OPSET),
    ("matmul_add", [_N("MatMul", ["x", "m"], ["t"]), _N("Add", ["t", "b"], ["y"])], {"x": _X},
     [("m", _M), ("b", np.float32([0.5, -1]))], OPSET),
    ("transpose", [_N("Transpose", ["x"], ["y"], perm=[1, 2, 0])], {"x": _X}, [], OPSET),
    ("transpose_default", [_N("Transpose", ["x"], ["y"])], {"x": _X}, [], OPSET),
    ("squeeze_unsqueeze_13", [_N("Unsqueeze", ["x", "a"], ["t"]),
                              _N("Squeeze", ["t", "a"], ["y"])], {"x": _X},
     [("a", _i64(1, -1))], OPSET),
    ("squeeze_unsqueeze_11", [_N("Unsqueeze", ["x"], ["t"], axes=[0, 3]),
                              _N("Squeeze", ["t"], ["y"], axes=[0])], {"x": _X}, [], 11),
    ("squeeze_all", [_N("Squeeze", ["x"], ["y"])], {"x": _X[:1, :, None]}, [], OPSET),
    ("slice_steps", [_N("Slice", ["x", "s", "e", "a", "st"], ["y"])], {"x": _X},
     [("s", _i64(-1, 1)), ("e", _i64(-9223372036854775807, 100)), ("a", _i64(0, 2)),
      ("st", _i64(-1, 2))], OPSET),
    ("slice_last_step", [_N("Slice", ["x", "s", "e"], ["y"])], {"x": _X},
     [("s", _i64(-1)), ("e", _i64(9223372036854775807))], OPSET),
    ("slice_opset9", [_N("Slice", ["x"], ["y"], starts=[1, 0], ends=[3, -1], axes=[1, 2])],
     {"x": _X}, [], 9),
    ("concat", [_N("Concat", ["x", "x"], ["y"], axis=-1)], {"x": _X}, [], OPSET),
    ("split_13", [_N("Split", ["x", "s"], ["y", "z"], axis=2)], {"x": _X}, [("s", _i64(2, 3))],
     OPSET),
    ("split_11", [_N("Split", ["x"], ["y", "z"], axis=1, split=[1, 3])], {"x": _X}, [], 11),
    ("split_18_num_outputs", [_N("Split", ["x"], ["y", "z"], axis=2, num_outputs=2)],
     {"x": _X}, [], 18),
    ("reshape_zero_minus1", [_N("Reshape", ["x", "s"], ["y"])], {"x": _X},
     [("s", _i64(0, -1))], OPSET),
    ("flatten", [_N("Flatten", ["x"], ["y"], axis=2)], {"x": _X}, [], OPSET),
    ("softmax_13", [_N("Softmax", ["x"], ["y"], axis=1)], {"x": _X}, [], OPSET),
    ("logsoftmax", [_N("LogSoftmax", ["x"], ["y"])], {"x": _X}, [], OPSET),
    ("identity_dropout", [_N("Identity", ["x"], ["t"]), _N("Dropout", ["t"], ["y"])],
     {"x": _X}, [], OPSET),
    ("shape_chain_zeros", [  # torch's zero initial states: Shape, Gather, Concat, Expand
        _N("Shape", ["x"], ["s"]), _N("Gather", ["s", "one"], ["b"]),
        _N("Unsqueeze", ["b", "zero"], ["b1"]), _N("Concat", ["two", "b1", "four"], ["sh"],
                                                   axis=0),
        _N("ConstantOfShape", ["sh"], ["y"],
           value=numpy_helper.from_array(np.float32([0.25])))],
     {"x": _X}, [("one", np.int64(1)), ("zero", _i64(0)), ("two", _i64(2)),
                 ("four", _i64(4))], OPSET),
    ("expand_cast", [_N("Constant", [], ["c"], value=numpy_helper.from_array(
        np.float32([[1.5], [2.0], [-1.0]]))), _N("Shape", ["x"], ["s"]),
        _N("Slice", ["s", "z", "two"], ["s2"]), _N("Expand", ["c", "s2"], ["e"]),
        _N("Cast", ["e"], ["y"], to=TensorProto.INT64)],
     {"x": _X}, [("z", _i64(0)), ("two", _i64(2))], OPSET),
    ("shape_start_end", [_N("Shape", ["x"], ["y"], start=1, end=-1)], {"x": _X}, [], OPSET),
    ("arith", [_N("Sub", ["x", "c"], ["a"]), _N("Mul", ["a", "a"], ["b"]),
               _N("Div", ["b", "c"], ["d"]), _N("Sqrt", ["d"], ["e"]),
               _N("Neg", ["e"], ["y"])], {"x": _X}, [("c", np.float32(2.0))], OPSET),
    ("int_div_truncates", [_N("Div", ["a", "b"], ["y"])], {"a": _i64(7, -7, 6, -1)},
     [("b", _i64(2, 2, -4, 3))], OPSET),
    ("activations", [_N("Relu", ["x"], ["a"]), _N("Tanh", ["x"], ["b"]),
                     _N("Sigmoid", ["x"], ["c"]), _N("LeakyRelu", ["x"], ["d"], alpha=0.2),
                     _N("Sum", ["a", "b", "c", "d"], ["y"])], {"x": _X * 30}, [], OPSET),
    ("where_compare", [_N("Greater", ["x", "z"], ["g"]), _N("Where", ["g", "x", "z"], ["y"])],
     {"x": _X}, [("z", np.float32(0.1))], OPSET),
    ("range", [_N("Range", ["a", "b", "c"], ["y"])], {"a": np.int64(2)},
     [("b", np.int64(11)), ("c", np.int64(3))], OPSET),
    ("reduce_mean_18", [_N("ReduceMean", ["x", "a"], ["y"], keepdims=0)], {"x": _X},
     [("a", _i64(1))], 18),
    ("reduce_max_13", [_N("ReduceMax", ["x"], ["y"], axes=[-1])], {"x": _X}, [], 13),
    ("reduce_sum_13", [_N("ReduceSum", ["x", "a"], ["y"])], {"x": _X}, [("a", _i64(0, 2))],
     13),
    ("argmax", [_N("ArgMax", ["x"], ["y"], axis=-1, keepdims=0)], {"x": _X}, [], OPSET),
    ("tile", [_N("Tile", ["x", "r"], ["y"])], {"x": _X[0]}, [("r", _i64(2, 1))], OPSET),
    ("gather_nd_batch_dims", [_N("GatherND", ["x", "i"], ["y"], batch_dims=1)], {"x": _X},
     [("i", np.array([[2], [0], [-1]], np.int64))], OPSET),
    ("gather_nd", [_N("GatherND", ["x", "i"], ["y"])], {"x": _X},
     [("i", np.array([[0, 1], [2, 3]], np.int64))], OPSET),
    ("clip_inputs", [_N("Clip", ["x", "lo", "hi"], ["y"])], {"x": _X},
     [("lo", np.float32(-0.5)), ("hi", np.float32(0.7))], OPSET),
    ("clip_max_only", [_N("Clip", ["x", "", "hi"], ["y"])], {"x": _X},
     [("hi", np.float32(0.2))], OPSET),
    ("clip_opset6", [_N("Clip", ["x"], ["y"], min=-0.3, max=0.4)], {"x": _X}, [], 6),
    ("hard_sigmoid", [_N("HardSigmoid", ["x"], ["y"], alpha=0.3, beta=0.4)], {"x": _X * 3},
     [], OPSET),
    ("erf", [_N("Erf", ["x"], ["y"])], {"x": _X}, [], OPSET),
    ("gelu_20", [_N("Gelu", ["x"], ["y"])], {"x": _X}, [], 20),
    ("gelu_tanh_20", [_N("Gelu", ["x"], ["y"], approximate="tanh")], {"x": _X}, [], 20),
    ("layer_normalization", [_N("LayerNormalization", ["x", "g", "b"], ["y"], epsilon=1e-3)],
     {"x": _X}, [("g", _R.standard_normal(5).astype(np.float32)),
                 ("b", _R.standard_normal(5).astype(np.float32))], 17),
    ("layer_normalization_axis1", [_N("LayerNormalization", ["x", "g"], ["y"], axis=1)],
     {"x": _X}, [("g", _R.standard_normal((4, 5)).astype(np.float32))], 17),
]


@pytest.mark.parametrize("case", OP_CASES, ids=[c[0] for c in OP_CASES])
def test_ops_against_the_reference_evaluator(case):
    _, nodes, inputs, inits, opset = case
    outputs = [nodes[-1].output[0]] + ([nodes[-1].output[1]] if nodes[-1].op_type == "Split"
                                       else [])
    theirs = ReferenceEvaluator(_graph_model(nodes, inputs, outputs, inits, opset)).run(
        None, inputs)
    # The outputs declared with the types the reference computes (onnx.checker wants one).
    model = _graph_model(nodes, inputs, outputs, inits, opset,
                         dict(zip(outputs, theirs)))
    ours = load(model).run(inputs)
    for n, want in zip(outputs, theirs):
        assert ours[n].dtype == want.dtype, (n, ours[n].dtype, want.dtype)
        assert_close(ours[n], want, 1e-6, 1e-6, n)


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_axis_semantics_of_each_opset_against_onnxruntime(op, opset):
    """Before opset 13 Softmax(axis=1) normalises over all of dims 1.. (the input coerced to
    2-D); from 13 over one axis. (onnx.reference computes the opset-13 form for both.)"""
    for attrs in ({}, {"axis": 1}, {"axis": -1}):
        model = _graph_model([_N(op, ["x"], ["y"], **attrs)], {"x": _X}, ["y"], opset=opset,
                             like={"y": _X})
        assert_close(load(model).run({"x": _X})["y"], run_ort(model, {"x": _X})["y"], 1e-6,
                     1e-6, f"{op}-{opset} {attrs}")


def _scan_model(reverse_in, reverse_out, out_axis):
    """A Scan whose body reads a weight of the outer graph (an implicit input): state
    s' = tanh(s W + x_t), outputs s' and 2 x_t per step."""
    body = helper.make_graph(
        [_N("MatMul", ["s", "w_outer"], ["sw"]), _N("Add", ["sw", "x_t"], ["pre"]),
         _N("Tanh", ["pre"], ["s_next"]), _N("Identity", ["s_next"], ["y_t"]),
         _N("Add", ["x_t", "x_t"], ["x2_t"])],
        "body", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 3])
                 for n in ("s", "x_t")],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 3])
         for n in ("s_next", "y_t", "x2_t")])
    scan = _N("Scan", ["s0", "x"], ["s_n", "ys", "x2s"], name="scan", body=body,
              num_scan_inputs=1, scan_input_directions=[reverse_in],
              scan_input_axes=[1], scan_output_directions=[reverse_out, 0],
              scan_output_axes=[out_axis, 0])
    rng = np.random.default_rng(60)
    w = (rng.standard_normal((3, 3)) * 0.6).astype(np.float32)
    feeds = {"s0": rng.standard_normal((2, 3)).astype(np.float32),
             "x": rng.standard_normal((2, 5, 3)).astype(np.float32)}      # (B, T, 3)
    model = _graph_model([_N("Identity", ["w"], ["w_outer"]), scan], feeds,
                         ["s_n", "ys", "x2s"], [("w", w)], OPSET,
                         like={"s_n": feeds["s0"], "ys": feeds["x"], "x2s": feeds["x"]})
    return model, feeds


@pytest.mark.parametrize("reverse_in, reverse_out, out_axis",
                         [(0, 0, 0), (1, 0, 1), (1, 1, 0), (0, 1, 1)])
def test_scan_against_onnxruntime(reverse_in, reverse_out, out_axis):
    model, feeds = _scan_model(reverse_in, reverse_out, out_axis)
    ours, theirs = load(model).run(feeds), run_ort(model, feeds)
    for n in ("s_n", "ys", "x2s"):
        assert_close(ours[n], theirs[n], RTOL, ATOL, n)


def test_tf2onnx_style_graph_against_onnxruntime():
    """Batch-major input transposed to time-major, a bidirectional LSTM with sequence_lens,
    the direction axis folded (Transpose + Reshape), the last step Sliced and Squeezed, a
    Gemm head and a Softmax: weights as initializers."""
    T, B, I, H, C = 6, 3, 4, 5, 3
    rec = draw("LSTM", T=T, B=B, I=I, H=H, nd=2, seed=21)
    rng = np.random.default_rng(22)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    lens = np.array([6, 2, 4], np.int32)
    nodes = [_N("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
             _N("LSTM", ["xt", "W", "R", "B", "lens"], ["y", "", ""], name="lstm",
                direction="bidirectional", hidden_size=H),
             _N("Transpose", ["y"], ["yt"], perm=[0, 2, 1, 3]),
             _N("Reshape", ["yt", "shape"], ["y2"]),
             _N("Slice", ["y2", "m1", "big", "zero"], ["last"]),
             _N("Squeeze", ["last", "zero"], ["feat"]),
             _N("Gemm", ["feat", "fc_w", "fc_b"], ["logits"], transB=1),
             _N("Softmax", ["logits"], ["probs"], axis=-1)]
    inits = [("W", rec["W"]), ("R", rec["R"]), ("B", rec["B"]),
             ("shape", _i64(T, B, 2 * H)), ("m1", _i64(-1)), ("big", _i64(T)),
             ("zero", _i64(0)), ("fc_w", rng.standard_normal((C, 2 * H)).astype(np.float32)),
             ("fc_b", rng.standard_normal(C).astype(np.float32))]
    model = _graph_model(nodes, {"x": x, "lens": lens}, ["probs", "logits"], inits, 13)
    ours = load(model).run({"x": x, "lens": lens})
    theirs = run_ort(model, {"x": x, "lens": lens})
    for n in ("logits", "probs"):
        assert_close(ours[n], theirs[n], RTOL, ATOL, n)


def test_outputs_cannot_change_the_model_and_subsets_run():
    W = _M.T.copy()
    model = load(_graph_model([_N("Identity", ["E"], ["w"]), _N("Gather", ["E", "i"], ["y"])],
                              {"i": _i64(1)}, ["w", "y"], [("E", W)]))
    w = model.run({"i": _i64(1)}, output_names=["w"])
    assert list(w) == ["w"]
    w["w"][:] = 7.0                      # a copy: the model's weights are untouched
    out = model(_i64(0))
    assert_close(out[0], W, 0, 0, "w")
    assert_close(out[1], W[[0]], 0, 0, "y")


def test_call_forms_and_feed_checks():
    given = draw("GRU", seed=30)
    model = load(recurrent_graph("GRU", {"hidden_size": 4}, given))
    assert model.input_names == ["X", "W", "R", "B"]
    assert model.output_names == ["Y", "Y_h"]
    assert model.recurrent_nodes == ["rec"]
    y, y_h = model(*given.values())
    y2, _ = model(given["X"], W=given["W"], R=given["R"], B=given["B"])
    assert np.array_equal(y, y2)
    with pytest.raises(KeyError, match="missing input"):
        model.run({"X": given["X"]})
    with pytest.raises(KeyError, match="unknown input"):
        model.run(dict(given, Z=given["X"]))
    with pytest.raises(KeyError, match="unknown output"):
        model.run(given, output_names=["nope"])
    with pytest.raises(TypeError, match="'X' must be float32"):
        model.run(dict(given, X=given["X"].astype(np.int64)))
    with pytest.raises(ValueError, match="input 'X' has shape"):
        model.run(dict(given, X=given["X"][:, :, :2]))
    with pytest.raises(TypeError, match="both by position and by name"):
        model(given["X"], X=given["X"])
    assert "GRU" in repr(model)


def test_a_bad_value_at_run_time_names_the_node():
    given = draw("LSTM", seed=31, lengths=[1, 2, 3, 4])
    model = load(recurrent_graph("LSTM", {"hidden_size": 4}, given, name="enc"))
    with pytest.raises(ValueError, match="'enc' \\(LSTM\\).*lengths"):
        model.run(dict(given, sequence_lens=np.array([1, 2, 9, 4], np.int32)))


# ------------------------------------------------------------------- torch's exporter


class _TorchModels:
    """torch modules built lazily (torch is optional)."""

    @staticmethod
    def tagger(torch):
        class Tagger(torch.nn.Module):
            """Embedding + 2-layer bidirectional LSTM + Linear (per step)."""

            def __init__(self):
                super().__init__()
                self.emb = torch.nn.Embedding(30, 8)
                self.lstm = torch.nn.LSTM(8, 6, num_layers=2, bidirectional=True)
                self.fc = torch.nn.Linear(12, 5)

            def forward(self, tokens):
                y, _ = self.lstm(self.emb(tokens))
                return self.fc(y)
        return Tagger()

    @staticmethod
    def gru_classifier(torch):
        class Classifier(torch.nn.Module):
            """batch_first GRU with initial state input, last step, Linear, softmax."""

            def __init__(self):
                super().__init__()
                self.gru = torch.nn.GRU(4, 6, batch_first=True)
                self.fc = torch.nn.Linear(6, 3)

            def forward(self, x, h0):
                y, h = self.gru(x, h0)
                return torch.softmax(self.fc(y[:, -1]), dim=-1), h
        return Classifier()

    @staticmethod
    def relu_rnn(torch):
        class Elman(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = torch.nn.RNN(3, 5, num_layers=2, nonlinearity="relu",
                                        bidirectional=True)

            def forward(self, x):
                return self.rnn(x)
        return Elman()


def _torch_export(torch, module, args, path, input_names, output_names, dynamic_axes):
    with warnings.catch_warnings():
        # The TorchScript exporter warns that it is deprecated and about batch sizes.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, path, dynamo=False, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic_axes)


def test_torch_embedding_bidirectional_lstm_linear(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    m = _TorchModels.tagger(torch).eval()
    path = str(tmp_path / "tagger.onnx")
    _torch_export(torch, m, (torch.randint(0, 30, (7, 2)),), path, ["tokens"], ["logits"],
                  {"tokens": {0: "T", 1: "B"}, "logits": {0: "T", 1: "B"}})
    model = load(path)
    assert model.input_names == ["tokens"] and model.output_names == ["logits"]
    assert len(model.recurrent_nodes) == 2
    for T, B in ((7, 2), (11, 3), (1, 1)):
        tokens = torch.randint(0, 30, (T, B))
        with torch.no_grad():
            want = m(tokens).numpy()
        got = model(tokens.numpy())
        assert got.dtype == np.float32
        assert_close(got, want, 1e-5, 1e-5, f"T={T} B={B}")


def test_torch_gru_classifier_and_relu_rnn(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    m = _TorchModels.gru_classifier(torch).eval()
    path = str(tmp_path / "gru.onnx")
    x, h0 = torch.randn(2, 5, 4), torch.randn(1, 2, 6)
    _torch_export(torch, m, (x, h0), path, ["x", "h0"], ["probs", "h"],
                  {"x": {0: "B", 1: "T"}, "h0": {1: "B"}, "probs": {0: "B"}, "h": {1: "B"}})
    model = load(path)
    x, h0 = torch.randn(3, 8, 4), torch.randn(1, 3, 6)
    with torch.no_grad():
        want = [t.numpy() for t in m(x, h0)]
    got = model(x.numpy(), h0.numpy())
    for g, w, n in zip(got, want, ("probs", "h")):
        assert_close(g, w, 1e-5, 1e-5, n)

    r = _TorchModels.relu_rnn(torch).eval()
    path = str(tmp_path / "rnn.onnx")
    _torch_export(torch, r, (torch.randn(4, 2, 3),), path, ["x"], ["y", "h"],
                  {"x": {0: "T", 1: "B"}, "y": {0: "T", 1: "B"}, "h": {1: "B"}})
    x = torch.randn(6, 3, 3)
    with torch.no_grad():
        want = [t.numpy() for t in r(x)]
    for g, w, n in zip(load(path)(x.numpy()), want, ("y", "h")):
        assert_close(g, w, 1e-5, 1e-5, n)


def test_torch_tagger_as_an_rnnkit_sequential(tmp_path):
    """to_sequential: torch's Embedding + 2-layer bidirectional LSTM + Linear export as
    rnnkit layers (the zero initial states torch builds from Shape / ConstantOfShape are
    recognised), against torch."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(2)
    m = _TorchModels.tagger(torch).eval()
    path = str(tmp_path / "tagger.onnx")
    _torch_export(torch, m, (torch.randint(0, 30, (5, 2)),), path, ["tokens"], ["logits"],
                  {"tokens": {0: "T", 1: "B"}, "logits": {0: "T", 1: "B"}})
    model = load(path)
    seq = model.to_sequential()
    assert [type(layer).__name__ for layer in seq] == ["Embedding", "LSTM", "LSTM", "Linear"]
    assert seq[1].bidirectional and seq[2].input_size == 12
    assert model.sequential_lengths_input is None
    tokens = torch.randint(0, 30, (9, 3))
    with torch.no_grad():
        want = m(tokens).numpy()
    assert_close(seq(tokens.numpy()), want, 1e-5, 1e-5, "Sequential")
    # torch's weights, as rnnkit's layers name them.
    assert_close(seq[0].state_dict()["weight"], m.emb.weight.detach().numpy(), 0, 0, "emb")
    sd = seq[2].state_dict()
    for name in ("weight_ih_l0_reverse", "bias_hh_l0"):
        torch_name = name.replace("l0", "l1")
        assert_close(sd[name], getattr(m.lstm, torch_name).detach().numpy(), 0, 0, name)


def test_torch_batch_first_gru_last_step_as_an_rnnkit_sequential(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(3)

    class LastStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(4, 6, num_layers=2, batch_first=True)
            self.fc = torch.nn.Linear(6, 3)

        def forward(self, x):
            return torch.log_softmax(self.fc(self.gru(x)[0][:, -1]), dim=-1)

    m = LastStep().eval()
    path = str(tmp_path / "gru.onnx")
    _torch_export(torch, m, (torch.randn(2, 5, 4),), path, ["x"], ["y"],
                  {"x": {0: "B", 1: "T"}, "y": {0: "B"}})
    seq = load(path).to_sequential()
    assert [type(layer).__name__ for layer in seq] == ["GRU", "GRU", "Last", "Linear",
                                                        "LogSoftmax"]
    assert seq[0].batch_first and seq[2].batch_first
    x = torch.randn(3, 7, 4)
    with torch.no_grad():
        want = m(x).numpy()
    assert_close(seq(x.numpy()), want, 1e-5, 1e-5, "Sequential")


def test_to_sequential_refuses_what_layers_cannot_express():
    # The reverse direction alone.
    given = draw("LSTM", seed=70)
    weights = {s: given.pop(s) for s in ("W", "R", "B")}
    nodes = [_N("LSTM", ["X", "W", "R", "B"], ["Y"], name="rev", hidden_size=4,
                direction="reverse"), _N("Squeeze", ["Y", "one"], ["y"])]
    model = load(_graph_model(nodes, given, ["y"], list(weights.items()) +
                              [("one", _i64(1))], like={"y": given["X"]}))
    with pytest.raises(ValueError, match="'rev'.*reverse direction"):
        model.to_sequential()
    # Non-zero initial states (a constant).
    given = draw("GRU", seed=71, initial=True)
    weights = {s: given.pop(s) for s in ("W", "R", "B", "initial_h")}
    nodes = [_N("GRU", ["X", "W", "R", "B", "", "initial_h"], ["Y"], name="g",
                hidden_size=4), _N("Squeeze", ["Y", "one"], ["y"])]
    model = load(_graph_model(nodes, given, ["y"], list(weights.items()) +
                              [("one", _i64(1))], like={"y": given["X"]}))
    with pytest.raises(ValueError, match="'g'.*initial_h is not zeros"):
        model.to_sequential()
    # Two outputs; an op no layer expresses.
    with pytest.raises(ValueError, match="2 outputs"):
        load(recurrent_graph("RNN", {"hidden_size": 4}, draw("RNN", seed=72))).to_sequential()
    model = load(_graph_model([_N("Exp", ["x"], ["y"], name="e")], {"x": _X}, ["y"],
                              like={"y": _X}))
    with pytest.raises(ValueError, match="'e' \\(Exp\\) maps to no rnnkit layer"):
        model.to_sequential()


# -------------------------------------------------------------------------------- errors


def test_unsupported_op_names_the_op_and_the_node():
    model = _graph_model([_N("Conv", ["x", "w"], ["y"], name="conv1")], {"x": _X}, ["y"],
                         [("w", np.ones((2, 4, 1), np.float32))])
    with pytest.raises(OnnxUnsupportedError, match="'Conv' \\(node 'conv1'\\)"):
        load(model)
    assert issubclass(OnnxUnsupportedError, NotImplementedError)


def test_other_domains_are_refused_by_op_and_node():
    node = _N("FusedMatMul", ["x", "x"], ["y"], name="fused", domain="com.microsoft")
    model = _graph_model([node], {"x": _X[0]}, ["y"])
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with pytest.raises(OnnxUnsupportedError, match="'FusedMatMul'.*com.microsoft.*'fused'"):
        load(model)


def test_unsupported_op_inside_a_scan_body_is_refused_at_load():
    model, _ = _scan_model(0, 0, 0)
    body = model.graph.node[1].attribute[0].g
    body.node[2].op_type = "Softsign"
    body.node[2].name = "inner"
    with pytest.raises(OnnxUnsupportedError, match="'Softsign' \\(node 'inner'\\)"):
        load(model)


def test_unsupported_activation_is_refused_with_the_node():
    given = draw("LSTM", seed=40)
    model = recurrent_graph("LSTM", {"hidden_size": 4, "activations": ["Sigmoid", "Elu",
                                                                        "Tanh"]},
                            given, name="lstm0")
    with pytest.raises(OnnxUnsupportedError, match="'lstm0'.*'Elu'"):
        load(model)


def test_inconsistent_recurrent_node_is_a_value_error():
    given = draw("GRU", seed=41)
    model = recurrent_graph("GRU", {"hidden_size": 4, "direction": "sideways"}, given)
    with pytest.raises(ValueError, match="direction"):
        load(model.SerializeToString())
    given["W"] = given["W"][:, :6]       # 6 rows, not 3 gates x 4
    model = recurrent_graph("GRU", {"hidden_size": 4}, given, name="g0")
    # Weights as graph inputs: checked when they arrive, naming the node.
    with pytest.raises(ValueError, match="'g0' \\(GRU\\): W has shape"):
        load(model).run(given)
    # Weights as initializers: checked at load.
    weights = ("W", "R", "B")
    model.graph.initializer.extend(numpy_helper.from_array(given[s], s) for s in weights)
    kept = [vi for vi in model.graph.input if vi.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    with pytest.raises(ValueError, match="'g0' \\(GRU\\): W has shape"):
        load(model)


def test_bad_files_raise_value_error_naming_the_path(tmp_path):
    good = recurrent_graph("RNN", {"hidden_size": 4}, draw("RNN", seed=42)).SerializeToString()
    cases = {"garbage.onnx": b"\x08\x07not protobuf \xff\xff\xff\xff",
             "empty.onnx": b"",
             "truncated.onnx": good[:len(good) // 2]}
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(ValueError, match=name):
            load(str(p))
    with pytest.raises(ValueError, match="max_bytes"):
        p = tmp_path / "big.onnx"
        p.write_bytes(good)
        load(p, max_bytes=len(good) - 1)
    assert load(p, max_bytes=len(good)).output_names == ["Y", "Y_h"]   # a Path is fine
    with pytest.raises(ValueError, match="not a regular file"):
        load(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        load(str(tmp_path / "missing.onnx"))
    with pytest.raises(TypeError, match="path, bytes or an onnx.ModelProto"):
        load(12)


def test_invalid_graphs_raise_value_error():
    # A node reading a value nothing defines (onnx.checker refuses it).
    model = _graph_model([_N("Relu", ["nowhere"], ["y"])], {"x": _X}, ["y"])
    with pytest.raises(ValueError, match="not a valid ONNX model"):
        load(model)
    # Weights kept in an external file are refused, not followed.
    model = _graph_model([_N("Add", ["x", "w"], ["y"])], {"x": _X}, ["y"],
                         [("w", np.ones(5, np.float32))])
    t = model.graph.initializer[0]
    t.data_location = TensorProto.EXTERNAL
    t.ClearField("raw_data")
    t.external_data.add(key="location", value="../../etc/weights.bin")
    with pytest.raises(ValueError, match="external"):
        load(model)


def test_import_rnnkit_does_not_import_onnx_and_missing_onnx_says_how_to_install():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    code = ("import sys, rnnkit, rnnkit.interop.onnx_import as m\n"
            "assert 'onnx' not in sys.modules, 'onnx imported'\n"
            "sys.modules['onnx'] = None\n"
            "try:\n"
            "    m.load('x.onnx')\n"
            "except ImportError as e:\n"
            "    assert 'pip install \"rnnkit[onnx]\"' in str(e), str(e)\n"
            "else:\n"
            "    raise SystemExit('no ImportError')\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_supported_ops_are_listed():
    assert {"LSTM", "GRU", "RNN", "Gather", "Gemm", "MatMul", "Add", "Transpose", "Squeeze",
            "Unsqueeze", "Slice", "Concat", "Reshape", "Softmax", "Identity", "Shape",
            "Constant", "ConstantOfShape", "Cast", "Expand"} <= set(onnx_import.SUPPORTED_OPS)
