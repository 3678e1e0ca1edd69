"""ONNX's LSTM, GRU and RNN attributes (activations, clip, input_forget, linear_before_reset,
peepholes) as ONNX Runtime computes them, against rnnkit.ops with GateOptions.

onnx.reference ignores clip and the activations (tests/test_onnx_node_models.py), so ONNX
Runtime is the reference here: single-node models, random float32 weights, outputs to 1e-5.
"""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

from rnnkit import ops  # noqa: E402
from rnnkit.ops.gates import GateOptions  # noqa: E402

FROM_ONNX = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2], "RNN": [0]}  # ONNX gate order -> torch's
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
T, B, I, H = 6, 3, 4, 5


def _torch_order(a, op):
    return np.concatenate([a[k * H:(k + 1) * H] for k in FROM_ONNX[op]], 0)


def _run_both(op, attrs, seed, peephole=False):
    rng = np.random.default_rng(seed)
    g = GATES[op]
    given = {"X": rng.standard_normal((T, B, I)).astype(np.float32) * 2,
             "W": rng.uniform(-0.9, 0.9, (1, g * H, I)).astype(np.float32),
             "R": rng.uniform(-0.9, 0.9, (1, g * H, H)).astype(np.float32),
             "B": rng.uniform(-0.6, 0.6, (1, 2 * g * H)).astype(np.float32)}
    inputs = ["X", "W", "R", "B"]
    if peephole:
        given["P"] = rng.uniform(-0.8, 0.8, (1, 3 * H)).astype(np.float32)  # ONNX: i, o, f
        inputs += ["", "", "", "P"]
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    node = helper.make_node(op, inputs, outs, hidden_size=H, **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, a.shape)
                      for n, a in given.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    theirs = sess.run(None, given)
    w_ih, w_hh = _torch_order(given["W"][0], op), _torch_order(given["R"][0], op)
    b_ih, b_hh = _torch_order(given["B"][0, :g * H], op), _torch_order(given["B"][0, g * H:], op)
    options = GateOptions.from_onnx(attrs.get("activations", ()),
                                    attrs.get("activation_alpha", ()),
                                    attrs.get("activation_beta", ()), attrs.get("clip"),
                                    bool(attrs.get("input_forget", 0)))
    x = given["X"]
    if op == "LSTM":
        p = None
        if peephole:
            p_onnx = given["P"][0]
            p = np.concatenate([p_onnx[0:H], p_onnx[2 * H:3 * H], p_onnx[H:2 * H]])
        y, h, c, _ = ops.lstm_forward(x, None, None, w_ih, w_hh, b_ih, b_hh, options=options,
                                      peephole=p)
        ours = (y, h, c)
    elif op == "GRU":
        y, h, _ = ops.gru_forward(x, None, w_ih, w_hh, b_ih, b_hh, options=options,
                                  reset_after=bool(attrs.get("linear_before_reset", 0)))
        ours = (y, h)
    else:
        y, h, _ = ops.rnn_forward(x, None, w_ih, w_hh, b_ih, b_hh, options=options)
        ours = (y, h)
    return ours, (theirs[0][:, 0],) + tuple(a[0] for a in theirs[1:])


CASES = [
    ("LSTM", {"clip": 0.5}, False),
    ("LSTM", {"input_forget": 1}, False),
    ("LSTM", {"input_forget": 1, "clip": 1.5}, True),
    ("LSTM", {"activations": ["HardSigmoid", "Relu", "Sigmoid"], "activation_alpha": [0.3],
              "activation_beta": [0.4]}, False),
    ("LSTM", {"activations": ["Tanh", "HardSigmoid", "Relu"], "clip": 0.7}, True),
    ("GRU", {"activations": ["HardSigmoid", "Relu"], "linear_before_reset": 0}, False),
    ("GRU", {"activations": ["HardSigmoid", "Relu"], "linear_before_reset": 1}, False),
    ("GRU", {"clip": 0.3, "linear_before_reset": 0}, False),
    ("GRU", {"clip": 0.3, "activations": ["Sigmoid", "HardSigmoid"],
             "linear_before_reset": 1}, False),
    ("RNN", {"activations": ["Relu"]}, False),
    ("RNN", {"activations": ["Sigmoid"], "clip": 0.6}, False),
    ("RNN", {"activations": ["HardSigmoid"], "activation_alpha": [0.25],
             "activation_beta": [0.6], "clip": 0.4}, False),
]


@pytest.mark.parametrize("op, attrs, peephole", CASES,
                         ids=[f"{c[0]}-{'-'.join(sorted(c[1]))}-{k}" for k, c in enumerate(CASES)])
def test_rnnkit_matches_onnx_runtime(op, attrs, peephole):
    for seed in range(3):
        ours, theirs = _run_both(op, attrs, seed, peephole)
        for name, a, b in zip(("Y", "Y_h", "Y_c"), ours, theirs):
            np.testing.assert_allclose(a, b.reshape(a.shape), rtol=1e-5, atol=2e-6,
                                       err_msg=f"{op} {attrs} {name} seed {seed}")


def test_the_options_change_the_result():
    """A guard: rnnkit without the options differs from ONNX Runtime with them."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I)).astype(np.float32) * 2
    w_ih = rng.uniform(-0.9, 0.9, (4 * H, I)).astype(np.float32)
    w_hh = rng.uniform(-0.9, 0.9, (4 * H, H)).astype(np.float32)
    plain = ops.lstm_forward(x, None, None, w_ih, w_hh, None, None)[0]
    for options in (GateOptions(clip=0.5), GateOptions(input_forget=True),
                    GateOptions(("hard_sigmoid", "tanh", "tanh"))):
        assert not np.allclose(ops.lstm_forward(x, None, None, w_ih, w_hh, None, None,
                                                options=options)[0], plain, atol=1e-4)
