"""rnnkit.interop.onnx_export.export: the written file, run by ONNX Runtime and by OpenVINO
(never by rnnkit), against rnnkit's own eval-mode forward.

Every recurrent layer kind and option is exported as a lone layer (outputs y, h_n, c_n) in
four configurations (one layer; stacked + bidirectional + lengths; stacked + batch_first +
lengths; bidirectional + batch_first), and each file is run at two (T, B) sizes, so the
dynamic axes are exercised by the same file. Lengths are random per sequence with 1 and T
among them. Weights are the layers' default init, U(-1/sqrt(H), 1/sqrt(H)), and inputs
N(0, 1.5²): gate pre-activations O(1).
"""
import os
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from rnnkit import nn  # noqa: E402
from rnnkit.interop.onnx_export import export  # noqa: E402

RTOL, ATOL = 1e-5, 3e-6          # float32 on both sides
RTOL_LAYERNORM = 1e-4
SIZES = ((6, 4), (3, 2))          # (T, B): one file, two shapes
I, H = 3, 5


def _ort_runner():
    ort = pytest.importorskip("onnxruntime")

    def run(path, feed):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
    return run


def _openvino_runner():
    ov = pytest.importorskip("openvino")
    core = ov.Core()

    def run(path, feed):
        # f32 explicitly: on CPUs with bfloat16 the plugin's default precision may be bf16.
        compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                      {"INFERENCE_PRECISION_HINT": "f32"})
        res = compiled(feed)
        # A tensor may carry several names (OpenVINO folds the final Identity nodes): each
        # output is found by the graph output's name among them.
        wanted = [v.name for v in onnx.load(str(path)).graph.output]
        return {n: np.asarray(res[o]) for o in compiled.outputs for n in wanted
                if n in o.get_names()}
    return run


RUNNERS = {"onnxruntime": _ort_runner, "openvino": _openvino_runner}


@pytest.fixture(params=sorted(RUNNERS))
def run_file(request):
    """Runs an exported file in one runtime: run(path, feed) -> {output name: array}."""
    return RUNNERS[request.param]()


@pytest.fixture
def ort_run():
    return _ort_runner()


# ------------------------------------------------------------------------------- helpers


def _lengths(rng, b, t):
    """Random per-sequence lengths in [1, t] with t and 1 among them (b >= 2)."""
    lengths = rng.integers(1, t + 1, b)
    lengths[0], lengths[-1] = t, 1
    return lengths


def _reference(model, x, lengths):
    """rnnkit's eval-mode outputs by the graph's output names."""
    model.eval()
    if isinstance(model, nn.Sequential):
        return {"y": model(x, lengths=lengths)}
    y, state = model(x, lengths=lengths)
    states = state if isinstance(state, tuple) else (state,)
    return dict(zip(("y", "h_n", "c_n"), (y,) + tuple(states)))


def _compare(got, expected, what, rtol=RTOL):
    assert sorted(got) == sorted(expected), f"{what}: outputs {sorted(got)}"
    for name, want in expected.items():
        assert got[name].shape == want.shape, f"{what} {name}: {got[name].shape} vs {want.shape}"
        np.testing.assert_allclose(got[name], want, rtol=rtol, atol=ATOL,
                                   err_msg=f"{what}: output {name}")


def _check_file(run, model, path, *, lengths, batch_first, input_size=I, ids=None,
                sizes=SIZES, seed=0, rtol=RTOL):
    """Run the file at each (T, B) of sizes and compare with the model's forward."""
    rng = np.random.default_rng(seed)
    for t, b in sizes:
        shape = (b, t) if batch_first else (t, b)
        if ids is not None:
            x = rng.integers(0, ids, shape).astype(np.int64)
            feed = {"ids": x}
        else:
            x = (1.5 * rng.standard_normal(shape + (input_size,))).astype(np.float32)
            feed = {"x": x}
        lens = _lengths(rng, b, t) if lengths else None
        if lengths:
            feed["lengths"] = lens.astype(np.int64)
        _compare(run(path, feed), _reference(model, x, lens), f"T={t} B={b}", rtol)


# ------------------------------------------------------------------ the recurrent layers

# (id, factory(num_layers, bidirectional, batch_first) -> layer)
VARIANTS = [
    ("lstm", lambda L, bi, bf: nn.LSTM(I, H, L, bidirectional=bi, batch_first=bf, seed=1)),
    ("lstm-nobias", lambda L, bi, bf: nn.LSTM(I, H, L, bias=False, bidirectional=bi,
                                              batch_first=bf, seed=2)),
    ("lstm-peephole", lambda L, bi, bf: nn.LSTM(I, H, L, bidirectional=bi, batch_first=bf,
                                                peephole=True, seed=3)),
    ("lstm-input_forget-clip", lambda L, bi, bf: nn.LSTM(
        I, H, L, bidirectional=bi, batch_first=bf, input_forget=True, clip=0.8, seed=4)),
    ("lstm-activations", lambda L, bi, bf: nn.LSTM(
        I, H, L, bidirectional=bi, batch_first=bf,
        activations=[("hard_sigmoid", 0.3, 0.45), "relu", "sigmoid"], seed=5)),
    ("lstm-sigmoid-relu-clip", lambda L, bi, bf: nn.LSTM(
        I, H, L, bidirectional=bi, batch_first=bf, activations=["sigmoid", "relu", "tanh"],
        clip=1.2, seed=6)),
    ("lstm-proj", lambda L, bi, bf: nn.LSTM(I, H, L, bidirectional=bi, batch_first=bf,
                                            proj_size=3, seed=7)),
    ("lstm-zoneout-recurrent_dropout", lambda L, bi, bf: nn.LSTM(
        I, H, L, bidirectional=bi, batch_first=bf, zoneout=0.3, recurrent_dropout=0.2,
        seed=8)),
    ("gru", lambda L, bi, bf: nn.GRU(I, H, L, bidirectional=bi, batch_first=bf, seed=9)),
    ("gru-reset_before", lambda L, bi, bf: nn.GRU(I, H, L, bidirectional=bi, batch_first=bf,
                                                  reset_after=False, seed=10)),
    ("gru-nobias-reset_before", lambda L, bi, bf: nn.GRU(
        I, H, L, bias=False, bidirectional=bi, batch_first=bf, reset_after=False, seed=11)),
    ("gru-activations-clip", lambda L, bi, bf: nn.GRU(
        I, H, L, bidirectional=bi, batch_first=bf, activations=["hard_sigmoid", "relu"],
        clip=0.9, seed=12)),
    ("gru-zoneout", lambda L, bi, bf: nn.GRU(I, H, L, bidirectional=bi, batch_first=bf,
                                             zoneout=0.25, seed=13)),
    ("rnn-tanh", lambda L, bi, bf: nn.RNN(I, H, L, bidirectional=bi, batch_first=bf, seed=14)),
    ("rnn-relu-nobias", lambda L, bi, bf: nn.RNN(I, H, L, nonlinearity="relu", bias=False,
                                                 bidirectional=bi, batch_first=bf, seed=15)),
    ("rnn-sigmoid-clip", lambda L, bi, bf: nn.RNN(I, H, L, bidirectional=bi, batch_first=bf,
                                                  activations=["sigmoid"], clip=0.7, seed=16)),
    ("rnn-hard_sigmoid", lambda L, bi, bf: nn.RNN(
        I, H, L, bidirectional=bi, batch_first=bf, activations=[("hard_sigmoid", 0.25, 0.6)],
        seed=17)),
    ("layernorm_lstm", lambda L, bi, bf: nn.LayerNormLSTM(I, H, L, bidirectional=bi,
                                                          batch_first=bf, seed=18)),
    ("layernorm_gru-nobias", lambda L, bi, bf: nn.LayerNormGRU(
        I, H, L, bias=False, bidirectional=bi, batch_first=bf, seed=19)),
]
# (num_layers, bidirectional, batch_first, lengths)
CONFIGS = [(1, False, False, False), (2, True, False, True), (2, False, True, True),
           (1, True, True, False)]
CONFIG_IDS = ["1layer", "2layers-bi-lengths", "2layers-batch_first-lengths",
              "bi-batch_first"]
# Variants ONNX's own op expresses (recurrence="op"); the rest need the Scan.
OP_VARIANTS = [v for v in VARIANTS if not v[0].startswith(("layernorm", "lstm-proj"))
               and "zoneout" not in v[0]]


def _variant_params(variants):
    return [pytest.param(f, c, id=f"{name}-{cid}") for name, f in variants
            for c, cid in zip(CONFIGS, CONFIG_IDS)]


@pytest.mark.parametrize("factory, config", _variant_params(VARIANTS))
def test_recurrent_layer_matches_in_both_runtimes(run_file, tmp_path, factory, config):
    num_layers, bi, bf, lengths = config
    layer = factory(num_layers, bi, bf)
    path = tmp_path / "layer.onnx"
    export(layer, path, lengths=lengths)
    # The LayerNorm cells divide by each row's float32 standard deviation, whose rounding
    # (summation order) differs between rnnkit and the runtimes: seen up to 4e-5 relative.
    rtol = RTOL_LAYERNORM if isinstance(layer, (nn.LayerNormLSTM, nn.LayerNormGRU)) else RTOL
    _check_file(run_file, layer, path, lengths=lengths, batch_first=bf, rtol=rtol)


@pytest.mark.parametrize("factory, config", _variant_params(OP_VARIANTS))
def test_onnx_op_path_matches_in_onnxruntime(ort_run, tmp_path, factory, config):
    """recurrence="op": ONNX's LSTM/GRU/RNN ops only (lengths as sequence_lens)."""
    num_layers, bi, bf, lengths = config
    layer = factory(num_layers, bi, bf)
    path = tmp_path / "layer.onnx"
    model = export(layer, path, lengths=lengths, recurrence="op")
    ops = [n.op_type for n in model.graph.node]
    assert ops.count({"LSTM": "LSTM", "GRU": "GRU", "RNN": "RNN"}[type(layer).__name__]) \
        == num_layers and "Scan" not in ops
    for node in model.graph.node:
        if node.op_type in ("LSTM", "GRU", "RNN"):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            assert attrs["direction"] == (b"bidirectional" if bi else b"forward")
            assert (len(node.input) > 4 and node.input[4] != "") == lengths  # sequence_lens
    _check_file(ort_run, layer, path, lengths=lengths, batch_first=bf)


@pytest.mark.parametrize("name, factory", [v for v in VARIANTS if v[0] in (
    "lstm", "gru-reset_before", "rnn-relu-nobias")], ids=lambda v: v if isinstance(v, str) else "")
def test_scan_path_matches_in_both_runtimes(run_file, tmp_path, name, factory):
    layer = factory(2, True, True)
    path = tmp_path / "layer.onnx"
    model = export(layer, path, lengths=True, recurrence="scan")
    assert [n.op_type for n in model.graph.node].count("Scan") == 4     # 2 layers x 2 dirs
    _check_file(run_file, layer, path, lengths=True, batch_first=True)


def test_auto_uses_the_onnx_op_where_both_runtimes_agree(tmp_path):
    plain = export(nn.GRU(I, H, 2, bidirectional=True, reset_after=False, seed=0),
                   tmp_path / "a.onnx")
    ops = [n.op_type for n in plain.graph.node]
    assert ops.count("GRU") == 2 and "Scan" not in ops
    gru = next(n for n in plain.graph.node if n.op_type == "GRU")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in gru.attribute}
    assert attrs["linear_before_reset"] == 0 and attrs["direction"] == b"bidirectional"
    for layer, lengths in ((nn.LSTM(I, H, peephole=True, seed=0), False),
                           (nn.LSTM(I, H, seed=0), True), (nn.LSTM(I, H, proj_size=2), False)):
        ops = [n.op_type for n in export(layer, tmp_path / "b.onnx", lengths=lengths).graph.node]
        assert "Scan" in ops and "LSTM" not in ops, (layer, lengths)


def test_zero_length_sequences(run_file, tmp_path):
    """lengths 0: outputs 0, final states 0 (the initial state), as rnnkit's."""
    layer = nn.LSTM(I, H, 2, bidirectional=True, seed=3)
    path = tmp_path / "zero.onnx"
    export(layer, path, lengths=True)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3, I)).astype(np.float32)
    lens = np.array([4, 0, 2])
    got = run_file(path, {"x": x, "lengths": lens})
    _compare(got, _reference(layer, x, lens), "lengths with a 0")
    assert not got["h_n"][:, 1].any() and not got["y"][:, 1].any()


# ------------------------------------------------------------------------- whole models


def _models():
    V, E, C = 13, 4, 3
    return [
        ("classifier-lengths", lambda: nn.Sequential(
            nn.Embedding(V, E, seed=1), nn.LSTM(E, H, 2, batch_first=True, dropout=0.3, seed=2),
            nn.Dropout(0.4), nn.Last(batch_first=True), nn.Linear(H, C, seed=3),
            nn.LogSoftmax()), True, True, V),
        ("tagger-bigru", lambda: nn.Sequential(
            nn.Embedding(V, E, padding_idx=0, seed=4), nn.GRU(E, H, bidirectional=True, seed=5),
            nn.Linear(2 * H, C, seed=6), nn.Softmax(dim=-1)), True, False, V),
        ("features-nested", lambda: nn.Sequential(
            nn.Linear(I, 4, seed=7), nn.Tanh(),
            nn.Sequential(nn.RNN(4, H, nonlinearity="relu", seed=8), nn.ReLU()),
            nn.Last(), nn.Linear(H, C, bias=False, seed=9), nn.Sigmoid()), False, False, None),
        ("gelu-peephole-last", lambda: nn.Sequential(
            nn.LSTM(I, H, bidirectional=True, peephole=True, seed=10), nn.Last(),
            nn.GELU(), nn.Linear(2 * H, C, seed=11), nn.GELU(approximate="tanh")),
            True, False, None),
    ]


@pytest.mark.parametrize("opset", [22, 19])
@pytest.mark.parametrize("name, make, lengths, batch_first, vocab", _models(),
                         ids=[m[0] for m in _models()])
def test_sequential_models_match_in_both_runtimes(run_file, tmp_path, name, make, lengths,
                                                  batch_first, vocab, opset):
    """opset 19 writes GELU with Erf / Tanh rather than ONNX's Gelu."""
    model = make()
    path = tmp_path / "model.onnx"
    proto = export(model, path, lengths=lengths, opset=opset)
    assert any(n.op_type == "Gelu" for n in proto.graph.node) == (
        opset >= 20 and name.startswith("gelu"))
    _check_file(run_file, model, path, lengths=lengths, batch_first=batch_first,
                ids=vocab, seed=opset)


def test_graph_inputs_and_outputs(tmp_path):
    def io(proto):
        def dims(v):
            return tuple(d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim)
        return ([(v.name, v.type.tensor_type.elem_type, dims(v)) for v in proto.graph.input],
                [(v.name, dims(v)) for v in proto.graph.output])

    i64, f32 = onnx.TensorProto.INT64, onnx.TensorProto.FLOAT
    lstm = export(nn.LSTM(I, H, 2, bidirectional=True, batch_first=True, proj_size=2),
                  tmp_path / "a.onnx", lengths=True)
    assert io(lstm) == ([("x", f32, ("B", "T", I)), ("lengths", i64, ("B",))],
                        [("y", ("B", "T", 4)), ("h_n", (4, "B", 2)), ("c_n", (4, "B", H))])
    gru = export(nn.GRU(I, H), tmp_path / "b.onnx")
    assert io(gru) == ([("x", f32, ("T", "B", I))], [("y", ("T", "B", H)), ("h_n", (1, "B", H))])
    seq = export(nn.Sequential(nn.Embedding(7, I), nn.GRU(I, H), nn.Last(), nn.Linear(H, 2)),
                 tmp_path / "c.onnx")
    assert io(seq) == ([("ids", i64, ("T", "B"))], [("y", ("B", 2))])
    assert seq.producer_name == "rnnkit"
    assert os.path.exists(tmp_path / "c.onnx")
    assert onnx.load(str(tmp_path / "c.onnx")) == seq


def test_export_is_the_eval_forward_whatever_the_mode(ort_run, tmp_path):
    model = nn.Sequential(nn.Linear(I, H, seed=0), nn.Dropout(0.5, seed=1), nn.Tanh())
    model.train()
    export(model, tmp_path / "m.onnx")
    assert model.training                                  # export does not change the mode
    _check_file(ort_run, model, tmp_path / "m.onnx", lengths=False, batch_first=False)


def test_the_file_is_the_model_at_export_time(ort_run, tmp_path):
    """A guard that the comparison can fail: a weight changed after export is not in the
    file, and the file then differs from the model."""
    layer = nn.GRU(I, H, seed=0)
    path = tmp_path / "g.onnx"
    export(layer, path)
    layer.weight_hh_l0.data[...] += 0.5
    x = np.random.default_rng(0).standard_normal((4, 2, I)).astype(np.float32)
    got = ort_run(path, {"x": x})
    with pytest.raises(AssertionError):
        _compare(got, _reference(layer, x, None), "changed weight")


@pytest.mark.parametrize("what", ["peephole", "lengths"])
def test_openvino_differs_on_the_onnx_op_where_auto_uses_scan(tmp_path, what):
    """Why "auto" writes a Scan for these: OpenVINO 2026.4's LSTM op ignores P and, with a
    dynamic axis, sequence_lens. If this starts failing, OpenVINO computes them now and
    "auto" could use the op for them."""
    run = _openvino_runner()
    layer = nn.LSTM(I, H, peephole=what == "peephole", seed=2)
    lengths = what == "lengths"
    path = tmp_path / "op.onnx"
    export(layer, path, lengths=lengths, recurrence="op")
    with pytest.raises(AssertionError):
        _check_file(run, layer, path, lengths=lengths, batch_first=False, sizes=((6, 4),))


def test_float64_models(ort_run, tmp_path):
    layer = nn.LSTM(I, H, dtype="float64", seed=0)
    with pytest.raises(ValueError, match="dtype='float32'"):
        export(layer, tmp_path / "a.onnx")
    export(layer, tmp_path / "a.onnx", dtype="float32")
    x = np.random.default_rng(0).standard_normal((5, 2, I))
    got = ort_run(tmp_path / "a.onnx", {"x": x.astype(np.float32)})
    want = _reference(layer, x, None)
    for name in want:
        assert got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("layer, option", [
    (lambda: nn.LSTM(I, H, proj_size=2), "proj_size=2"),
    (lambda: nn.GRU(I, H, zoneout=0.1), "zoneout=0.1"),
    (lambda: nn.LayerNormLSTM(I, H), "LayerNorm"),
    (lambda: nn.LayerNormGRU(I, H), "LayerNorm"),
])
def test_op_recurrence_refuses_what_the_op_cannot_express(tmp_path, layer, option):
    model = nn.Sequential(nn.Linear(I, I), layer())
    with pytest.raises(NotImplementedError, match=option) as e:
        export(model, tmp_path / "x.onnx", recurrence="op")
    assert "layer 1" in str(e.value) and "recurrence='auto'" in str(e.value)
    assert not os.path.exists(tmp_path / "x.onnx")


class _Custom(nn.Module):
    def forward(self, x):
        return x


@pytest.mark.parametrize("model, match", [
    (lambda: nn.Sequential(nn.Linear(I, H), _Custom()), r"layer 1 \(_Custom\)"),
    (lambda: nn.LSTMCell(I, H), r"the model \(LSTMCell\)"),
    (lambda: nn.Sequential(nn.GRU(I, H), nn.GRUCell(H, H)), r"layer 1 \(GRUCell\)"),
])
def test_unknown_layers_raise_type_error(tmp_path, model, match):
    with pytest.raises(TypeError, match=match):
        export(model(), tmp_path / "x.onnx")


@pytest.mark.parametrize("kwargs, model, error, match", [
    ({"recurrence": "loop"}, None, ValueError, "recurrence must be one of"),
    ({"opset": 13}, None, ValueError, r"opset must be an integer in \[17"),
    ({"opset": 99}, None, ValueError, "opset must be"),
    ({"opset": 22.0}, None, ValueError, "opset must be"),
    ({"dtype": "float64"}, None, ValueError, "dtype must be None or 'float32'"),
    ({"dtype": "int8"}, None, ValueError, "dtype must be"),
    ({"lengths": 1}, None, TypeError, "lengths must be True or False"),
    ({"lengths": True}, lambda: nn.Sequential(nn.Linear(I, H), nn.Tanh()), ValueError,
     "no layer of the model takes lengths"),
    ({}, lambda: nn.Sequential(), ValueError, "empty Sequential"),
    ({}, lambda: nn.Sequential(nn.Linear(I, I), nn.Embedding(4, I)), ValueError,
     "Embedding must be the first layer"),
    ({}, lambda: nn.Sequential(nn.LSTM(I, H), nn.Linear(H + 1, 2)), ValueError,
     r"in_features=6\) receives 5 features"),
    ({}, lambda: nn.Sequential(nn.Linear(I, 4), nn.GRU(I, H)), ValueError,
     r"input_size=3 but receives 4 features"),
    ({}, lambda: nn.Sequential(nn.GRU(I, H), nn.Last(), nn.Last()), ValueError,
     "Last needs a 3-D input"),
    ({}, lambda: nn.Sequential(nn.GRU(I, H), nn.Softmax(dim=3)), ValueError,
     "dim=3 is out of range"),
    ({}, lambda: np.zeros(3), TypeError, "model must be a rnnkit.nn Module"),
])
def test_bad_arguments_raise_clear_errors(tmp_path, kwargs, model, error, match):
    m = model() if model is not None else nn.LSTM(I, H)
    with pytest.raises(error, match=match):
        export(m, tmp_path / "x.onnx", **kwargs)


def test_bad_path_type():
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        export(nn.GRU(I, H), 3)


def test_missing_onnx_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)            # import onnx -> ImportError
    with pytest.raises(ImportError, match=r'pip install "rnnkit\[onnx\]"'):
        export(nn.GRU(I, H), tmp_path / "x.onnx")


def test_import_rnnkit_does_not_import_onnx():
    code = ("import sys, rnnkit, rnnkit.interop.onnx_export; "
            "assert 'onnx' not in sys.modules, 'onnx imported'")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_save_is_atomic(monkeypatch, tmp_path):
    path = tmp_path / "m.onnx"
    first = export(nn.GRU(I, H, seed=0), path)
    export(nn.GRU(I, H, seed=1), path)                         # replaced in place
    assert onnx.load(str(path)) != first

    def broken_replace(src, dst):
        raise OSError("disk full")
    before = path.read_bytes()
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        export(nn.LSTM(I, H, seed=2), path)
    assert path.read_bytes() == before                         # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]   # no temporary left
