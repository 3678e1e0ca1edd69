"""from_torch / to_torch (rnnkit.interop.torch_convert): torch.nn models to rnnkit.nn models
and back, weights copied bitwise, outputs (and gradients) equal to torch's own modules."""
import io
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import rnnkit  # noqa: E402
from rnnkit.interop import torch_convert as tc  # noqa: E402
from rnnkit.interop import torch_modules as rk  # noqa: E402

T, B, I, H = 5, 3, 4, 6
TOL = {"float32": dict(rtol=1e-5, atol=1e-5), "float64": dict(rtol=1e-10, atol=1e-10)}
TORCH_DTYPE = {"float32": torch.float32, "float64": torch.float64}
RECURRENT = {
    "lstm": (torch.nn.LSTM, {}),
    "lstm_proj": (torch.nn.LSTM, {"proj_size": 2}),
    "gru": (torch.nn.GRU, {}),
    "rnn_tanh": (torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (torch.nn.RNN, {"nonlinearity": "relu"}),
}
ONEDNN_PROJ = "ignore:LSTM with projections is not supported with oneDNN:UserWarning"


def _np(t):
    return t.detach().numpy()


def _assert_same_state(rnnkit_model, torch_model):
    """Same names in the same order, bitwise the same values and dtype."""
    a, b = rnnkit_model.state_dict(), torch_model.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == _np(b[k]).dtype and np.array_equal(a[k], _np(b[k])), k


@pytest.mark.filterwarnings(ONEDNN_PROJ)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", list(RECURRENT))
def test_from_torch_recurrent_layer_gives_torchs_outputs(cell, dtype):
    cls, kw = RECURRENT[cell]
    ref = cls(I, H, num_layers=2, bidirectional=True, batch_first=True,
              dtype=TORCH_DTYPE[dtype], **kw)
    layer = tc.from_torch(ref)
    assert type(layer).__name__ == cls.__name__ and layer.dtype == np.dtype(dtype)
    assert layer.batch_first and layer.bidirectional and layer.num_layers == 2
    _assert_same_state(layer, ref)
    x = torch.randn(B, T, I, dtype=TORCH_DTYPE[dtype])
    y_ref, state_ref = ref(x)
    y, state = layer(x.numpy())
    np.testing.assert_allclose(y, _np(y_ref), **TOL[dtype])
    states = state if isinstance(state, tuple) else (state,)
    states_ref = state_ref if isinstance(state_ref, tuple) else (state_ref,)
    for s, s_ref in zip(states, states_ref, strict=True):
        np.testing.assert_allclose(s, _np(s_ref), **TOL[dtype])


@pytest.mark.filterwarnings(ONEDNN_PROJ)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", list(RECURRENT))
def test_to_torch_recurrent_layer_gives_rnnkits_outputs_and_round_trips(cell, dtype):
    cls, kw = RECURRENT[cell]
    layer = {"LSTM": rnnkit.nn.LSTM, "GRU": rnnkit.nn.GRU, "RNN": rnnkit.nn.RNN}[
        cls.__name__](I, H, num_layers=2, bidirectional=True, dtype=dtype, seed=3, **kw)
    out = tc.to_torch(layer)
    assert type(out) is cls and out.weight_ih_l0.dtype == TORCH_DTYPE[dtype]
    _assert_same_state(layer, out)
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(dtype)
    y, _ = layer(x)
    np.testing.assert_allclose(_np(out(torch.from_numpy(x))[0]), y, **TOL[dtype])
    # ... and back: the same arrays again, bitwise.
    _assert_same_state(tc.from_torch(out), out)
    # The torch copy owns its memory: changing it leaves the rnnkit layer alone.
    with torch.no_grad():
        out.weight_hh_l0.add_(1.0)
    assert not np.array_equal(layer.state_dict()["weight_hh_l0"], _np(out.weight_hh_l0))


def _rnnkit_classifier(dtype="float64", batch_first=False):
    return rnnkit.nn.Sequential(
        rnnkit.nn.Embedding(11, I, padding_idx=0, dtype=dtype, seed=1),
        rnnkit.nn.GRU(I, H, num_layers=2, bidirectional=True, batch_first=batch_first,
                      dtype=dtype, seed=2),
        rnnkit.nn.Last(batch_first=batch_first), rnnkit.nn.Dropout(0.0),
        rnnkit.nn.Linear(2 * H, H, dtype=dtype, seed=3), rnnkit.nn.Tanh(),
        rnnkit.nn.Linear(H, 3, dtype=dtype, seed=4), rnnkit.nn.LogSoftmax(dim=-1))


@pytest.mark.parametrize("batch_first", [False, True])
def test_sequential_to_torch_gives_the_same_outputs_and_gradients(batch_first):
    model = _rnnkit_classifier(batch_first=batch_first)
    out = tc.to_torch(model)
    assert isinstance(out, torch.nn.Sequential)
    assert type(out[1]) is tc.GRUOutput and isinstance(out[1], torch.nn.GRU)
    assert type(out[2]) is tc.LastStep and out[2].batch_first == batch_first
    _assert_same_state(model, out)      # "1.weight_ih_l0": torch's names, as rnnkit's
    tokens = np.random.default_rng(5).integers(0, 11, (B, T) if batch_first else (T, B))
    y = model(tokens)
    dy = np.random.default_rng(6).standard_normal(y.shape)
    model.zero_grad()
    model.backward(dy)
    y_t = out(torch.from_numpy(tokens))
    (y_t * torch.from_numpy(dy)).sum().backward()
    np.testing.assert_allclose(_np(y_t), y, **TOL["float64"])
    for name, p in model.named_parameters():
        np.testing.assert_allclose(_np(out.get_parameter(name).grad), p.grad,
                                   **TOL["float64"], err_msg=name)
    # And back to rnnkit, with the same weights.
    back = tc.from_torch(out)
    _assert_same_state(back, out)
    assert [type(m).__name__ for m in back] == [type(m).__name__ for m in model]
    np.testing.assert_allclose(back(tokens), y, **TOL["float64"])


def test_from_torch_sequential_with_plain_recurrent_layers_and_rnnkit_kernels():
    """An nn.Sequential may hold a plain nn.LSTM (its output goes on, as in rnnkit's
    Sequential) or rnnkit's torch modules; nested Sequentials stay nested."""
    torch.manual_seed(0)
    seq = torch.nn.Sequential(torch.nn.Linear(I, I), torch.nn.LSTM(I, H),
                              torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Dropout(0.2)),
                              rk.GRU(H, H, num_layers=2), torch.nn.GELU(approximate="tanh"),
                              torch.nn.Linear(H, 2), torch.nn.Softmax(dim=-1)).eval()
    model = tc.from_torch(seq)
    assert [type(m).__name__ for m in model] == ["Linear", "LSTM", "Sequential", "GRU", "GELU",
                                                 "Linear", "Softmax"]
    assert not model.training and model[4].approximate == "tanh"
    _assert_same_state(model, seq)
    x = torch.randn(T, B, I)
    with torch.no_grad():
        h = seq[0](x)
        h = seq[1](h)[0]
        h = seq[3](seq[2](h))[0]
        want = seq[6](seq[5](seq[4](h)))
    np.testing.assert_allclose(model(x.numpy()), _np(want), **TOL["float32"])


def test_to_torch_modules_pickle_and_keep_the_mode():
    model = _rnnkit_classifier("float32").eval()
    out = tc.to_torch(model)
    assert not out.training and not out[1].training
    buf = io.BytesIO()
    torch.save(out, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert type(loaded[1]) is tc.GRUOutput
    tokens = torch.randint(0, 11, (T, B))
    torch.testing.assert_close(loaded(tokens), out(tokens))


def test_from_torch_dtype_option():
    ref = torch.nn.GRU(I, H).half()
    with pytest.raises(TypeError, match="float16 parameters.*dtype='float32'"):
        tc.from_torch(ref)
    layer = tc.from_torch(ref, dtype="float32")
    assert layer.dtype == np.float32
    np.testing.assert_array_equal(layer.state_dict()["weight_ih_l0"],
                                  ref.weight_ih_l0.float().detach().numpy())
    with pytest.raises(TypeError, match="dtype must be 'float32' or 'float64'"):
        tc.from_torch(torch.nn.GRU(I, H), dtype="int8")


def test_conversion_errors_name_the_layer_and_the_option():
    with pytest.raises(TypeError, match=r"model\[1\]: from_torch cannot convert .*Conv1d"):
        tc.from_torch(torch.nn.Sequential(torch.nn.Linear(I, I), torch.nn.Conv1d(1, 1, 1)))
    with pytest.raises(ValueError, match="max_norm"):
        tc.from_torch(torch.nn.Embedding(5, 3, max_norm=1.0))
    with pytest.raises(ValueError, match="explicit dim"):
        tc.from_torch(torch.nn.Softmax())
    with pytest.raises(TypeError, match="needs a torch.nn.Module"):
        tc.from_torch(rnnkit.nn.GRU(I, H))
    with pytest.raises(ValueError, match="no equivalent of reset_after=False"):
        tc.to_torch(rnnkit.nn.GRU(I, H, reset_after=False))
    with pytest.raises(ValueError, match=r"model\[0\]: torch.nn.LSTM has no equivalent of "
                                         "peephole=True"):
        tc.to_torch(rnnkit.nn.Sequential(rnnkit.nn.LSTM(I, H, peephole=True)))
    with pytest.raises(ValueError, match="zoneout"):
        tc.to_torch(rnnkit.nn.GRU(I, H, zoneout=0.1))
    with pytest.raises(ValueError, match="torch has no LayerNormLSTM"):
        tc.to_torch(rnnkit.nn.LayerNormLSTM(I, H))
    with pytest.raises(TypeError, match="needs an rnnkit.nn Module"):
        tc.to_torch(torch.nn.GRU(I, H))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        tc.Nope  # noqa: B018


def test_importing_rnnkit_and_the_converter_does_not_import_torch():
    code = ("import sys, rnnkit, rnnkit.interop.torch_convert as tc; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'rnnkit.interop.torch_modules' not in sys.modules")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0, res.stderr


def test_to_torch_then_use_rnnkit_kernels_runs_the_rnnkit_model_in_torch():
    model = _rnnkit_classifier()
    out = rk.use_rnnkit_kernels(tc.to_torch(model))
    assert type(out[1]) is rk.GRUOutput and isinstance(out[1], rk.GRU)
    _assert_same_state(model, out)
    tokens = np.random.default_rng(8).integers(0, 11, (T, B))
    y = model(tokens)
    dy = np.random.default_rng(9).standard_normal(y.shape)
    model.zero_grad()
    model.backward(dy)
    y_t = out(torch.from_numpy(tokens))
    (y_t * torch.from_numpy(dy)).sum().backward()
    np.testing.assert_allclose(_np(y_t), y, **TOL["float64"])
    for name, p in model.named_parameters():
        np.testing.assert_allclose(_np(out.get_parameter(name).grad), p.grad,
                                   **TOL["float64"], err_msg=name)
    # from_torch reads the rnnkit-kernel classes back too.
    _assert_same_state(tc.from_torch(out), out)
