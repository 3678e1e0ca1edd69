"""rnnkit model -> rnnkit.interop.onnx_export.export -> rnnkit.interop.onnx_import.load: the
imported file computes what the model computes.

Where the file holds ONNX's LSTM / GRU / RNN ops (``recurrence="op"``, and "auto" where it
picks the op), the importer runs every recurrent node on the same kernels with the same
weights (the gate orders permuted there and back, exactly), Linear's MatMul on the same GEMM,
Embedding as the same lookup and the activations / softmaxes through the same rnnkit.nn
layers, so the outputs must be bitwise the model's: y and the final states, stacked,
bidirectional, with lengths (zero-length sequences included).

Where the exporter writes an ONNX Scan over one cell step (proj_size, zoneout, the LayerNorm
cells; "auto" with lengths, which it writes as a Scan for OpenVINO's sake), the importer
evaluates that body's elementwise ops in numpy step by step: the same math in another order
of roundings (the input and recurrent products summed separately, numpy's exp / tanh for
the kernels' own), so those are compared to float32 rounding, rtol 1e-5 / atol 1e-6 (the
measured differences are about 2e-7 on O(1) values).
"""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from helpers import assert_close  # noqa: E402

from rnnkit import nn  # noqa: E402
from rnnkit.interop.onnx_export import export  # noqa: E402
from rnnkit.interop.onnx_import import load  # noqa: E402

T, B, I, H = 6, 4, 3, 5
LENGTHS = np.array([6, 0, 3, 1])          # a full, an empty and two partial sequences
SCAN_RTOL, SCAN_ATOL = 1e-5, 1e-6


def _x(batch_first=False, seed=0):
    x = np.random.default_rng(seed).standard_normal((T, B, I)).astype(np.float32)
    return np.ascontiguousarray(x.swapaxes(0, 1)) if batch_first else x


def _outputs(model, x, lengths):
    """The model's eval outputs as the export names them: y, then h_n[, c_n] for a layer."""
    out = model(x, lengths=lengths) if lengths is not None else model(x)
    if isinstance(out, tuple):
        y, states = out
        return [y] + (list(states) if isinstance(states, tuple) else [states])
    return [out]


def _round_trip(model, x, tmp_path, lengths=None, recurrence="op"):
    """(the model's outputs, the imported file's, the file's op types)."""
    model.eval()
    path = tmp_path / "model.onnx"
    proto = export(model, path, lengths=lengths is not None, recurrence=recurrence)
    imported = load(path)
    feeds = {imported.input_names[0]: x}
    if lengths is not None:
        feeds["lengths"] = lengths
    got = imported.run(feeds)
    assert list(got) == ["y", "h_n", "c_n"][:len(got)]
    return _outputs(model, x, lengths), list(got.values()), {n.op_type for n in
                                                              proto.graph.node}


LAYERS = {
    "lstm": lambda: nn.LSTM(I, H, seed=0),
    "lstm_2layer_bidirectional": lambda: nn.LSTM(I, H, 2, bidirectional=True, seed=1),
    "lstm_batch_first_no_bias": lambda: nn.LSTM(I, H, 2, bias=False, batch_first=True,
                                                seed=2),
    "lstm_peephole": lambda: nn.LSTM(I, H, bidirectional=True, peephole=True, seed=3),
    "lstm_gate_options": lambda: nn.LSTM(I, H, activations=[("hard_sigmoid", 0.3, 0.4),
                                                            "tanh", "relu"],
                                         clip=0.8, input_forget=True, seed=4),
    "gru": lambda: nn.GRU(I, H, seed=5),
    "gru_2layer_bidirectional": lambda: nn.GRU(I, H, 2, bidirectional=True, seed=6),
    "gru_reset_before": lambda: nn.GRU(I, H, bidirectional=True, reset_after=False, seed=7),
    "gru_clip_hard_sigmoid": lambda: nn.GRU(I, H, activations=["hard_sigmoid", "tanh"],
                                            clip=1.5, seed=8),
    "rnn_tanh": lambda: nn.RNN(I, H, seed=9),
    "rnn_relu_2layer_bidirectional": lambda: nn.RNN(I, H, 2, nonlinearity="relu",
                                                    bidirectional=True, seed=10),
}


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_recurrent_layers_through_the_onnx_ops_are_bitwise(name, with_lengths, tmp_path):
    layer = LAYERS[name]()
    x = _x(layer.batch_first)
    want, got, op_types = _round_trip(layer, x, tmp_path, LENGTHS if with_lengths else None)
    assert op_types & {"LSTM", "GRU", "RNN"} and "Scan" not in op_types
    assert len(got) == len(want) == (3 if isinstance(layer, nn.LSTM) else 2)
    for n, g, w in zip(("y", "h_n", "c_n"), got, want):
        assert g.dtype == w.dtype and g.shape == w.shape, (n, g.shape, w.shape)
        assert np.array_equal(g, w), f"{name} {n}: max diff {np.abs(g - w).max()}"


def _tagger():
    return nn.Sequential(nn.Embedding(9, I, seed=0), nn.LSTM(I, H, 2, bidirectional=True,
                                                             seed=1),
                         nn.Linear(2 * H, 3, seed=2))


def _classifier():
    return nn.Sequential(nn.Embedding(9, I, seed=0), nn.GRU(I, H, seed=1), nn.Last(),
                         nn.Linear(H, 3, seed=2), nn.LogSoftmax())


def _float_head():
    return nn.Sequential(nn.GRU(I, H, batch_first=True, seed=3), nn.GELU(), nn.Dropout(0.5),
                         nn.Linear(H, 4, seed=4), nn.Tanh(), nn.Softmax(dim=-1))


@pytest.mark.parametrize("make, tokens, with_lengths",
                         [(_tagger, True, False), (_tagger, True, True),
                          (_classifier, True, True), (_classifier, True, False),
                          (_float_head, False, False)],
                         ids=["tagger", "tagger_lengths", "classifier_lengths", "classifier",
                              "gelu_softmax_head"])
def test_sequential_models_are_bitwise(make, tokens, with_lengths, tmp_path):
    model = make()
    x = np.random.default_rng(1).integers(0, 9, (T, B)) if tokens else _x(True)
    want, got, _ = _round_trip(model, x, tmp_path, LENGTHS if with_lengths else None)
    assert len(got) == 1
    assert got[0].shape == want[0].shape
    assert np.array_equal(got[0], want[0]), np.abs(got[0] - want[0]).max()


SCAN_LAYERS = {
    "lstm_proj_size": (lambda: nn.LSTM(I, H, bidirectional=True, proj_size=2, seed=11), None),
    "gru_zoneout": (lambda: nn.GRU(I, H, 2, zoneout=0.3, seed=12), None),
    "layernorm_lstm": (lambda: nn.LayerNormLSTM(I, H, bidirectional=True, seed=13), LENGTHS),
    "layernorm_gru": (lambda: nn.LayerNormGRU(I, H, seed=14), None),
    # "auto" with lengths: a Scan (for OpenVINO, which ignores sequence_lens).
    "lstm_lengths_auto": (lambda: nn.LSTM(I, H, 2, bidirectional=True, seed=15), LENGTHS),
    "gru_reset_before_lengths_auto": (lambda: nn.GRU(I, H, reset_after=False, seed=16),
                                      LENGTHS),
}


@pytest.mark.parametrize("name", sorted(SCAN_LAYERS))
def test_scan_exports_to_float32_rounding(name, tmp_path):
    make, lengths = SCAN_LAYERS[name]
    layer = make()
    want, got, op_types = _round_trip(layer, _x(), tmp_path, lengths, recurrence="auto")
    assert "Scan" in op_types
    for n, g, w in zip(("y", "h_n", "c_n"), got, want):
        assert_close(g, w, SCAN_RTOL, SCAN_ATOL, f"{name} {n}")
    if lengths is not None:     # padding stays exactly zero
        for b, L in enumerate(lengths):
            assert not got[0][L:, b].any()


SEQUENTIALS = {
    "tagger": (_tagger, True, False),
    "tagger_lengths": (_tagger, True, True),
    "batch_first_gru_stack_lengths": (
        lambda: nn.Sequential(nn.GRU(I, H, 2, batch_first=True, bidirectional=True,
                                     reset_after=False, seed=5), nn.Tanh(),
                              nn.Linear(2 * H, 3, seed=6), nn.Softmax()), False, True),
    "rnn_last": (lambda: nn.Sequential(nn.RNN(I, H, nonlinearity="relu", seed=7), nn.Last(),
                                       nn.Linear(H, 3, seed=8)), False, False),
    "lstm_gate_options": (lambda: nn.Sequential(LAYERS["lstm_gate_options"]()), False, True),
}


@pytest.mark.parametrize("name", sorted(SEQUENTIALS))
def test_to_sequential_gives_back_the_model_bitwise(name, tmp_path):
    """export -> load -> to_sequential: rnnkit layers again, computing the same bits (a
    stacked layer comes back as one layer per stack level)."""
    make, tokens, with_lengths = SEQUENTIALS[name]
    model = make()
    model.eval()
    batch_first = any(getattr(layer, "batch_first", False) for layer in model)
    x = np.random.default_rng(2).integers(0, 9, (T, B)) if tokens else _x(batch_first)
    lengths = LENGTHS if with_lengths else None
    export(model, tmp_path / "m.onnx", lengths=with_lengths, recurrence="op")
    imported = load(tmp_path / "m.onnx")
    seq = imported.to_sequential()
    assert imported.sequential_lengths_input == ("lengths" if with_lengths else None)
    want = model(x, lengths=lengths)
    got = seq(x, lengths=lengths)
    assert got.shape == want.shape and np.array_equal(got, want), np.abs(got - want).max()
