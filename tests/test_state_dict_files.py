"""rnnkit.load_state_dict_file / save_state_dict_file: safetensors and npz state dicts, read
without torch and never unpickled. The format reference is the safetensors spec (an 8-byte
little-endian header length, a JSON header of dtype / shape / data_offsets, then the raw
little-endian bytes), written out here by hand; torch is the reference for its own files."""

import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import rnnkit
from rnnkit import nn

safetensors = pytest.importorskip("safetensors")

_SPEC_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "F16": np.float16}


def _write_by_spec(path, arrays, metadata=None):
    header, offset, blobs = {}, 0, []
    for name, a in arrays.items():
        code = next(k for k, t in _SPEC_DTYPES.items() if np.dtype(t) == a.dtype)
        raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def _read_by_spec(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", None)
    body = data[8 + n:]
    out = {}
    for name, h in header.items():
        lo, hi = h["data_offsets"]
        out[name] = np.frombuffer(body[lo:hi], dtype=np.dtype(_SPEC_DTYPES[h["dtype"]])
                                  .newbyteorder("<")).reshape(h["shape"])
    return out, meta


def test_reads_a_file_written_by_the_spec(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"w": rng.standard_normal((3, 5)).astype(np.float32),
              "d": rng.standard_normal(4), "n": np.arange(6, dtype=np.int64).reshape(2, 3),
              "h": rng.standard_normal(2).astype(np.float16)}
    _write_by_spec(tmp_path / "m.safetensors", arrays, {"who": "spec"})
    got = rnnkit.load_state_dict_file(tmp_path / "m.safetensors")
    assert got.keys() == arrays.keys()
    for k, a in arrays.items():
        assert got[k].dtype == a.dtype and np.array_equal(got[k], a), k
        got[k][...] = 0      # owned and writable


def test_writes_a_file_the_spec_reads_and_a_layer_loads_back(tmp_path):
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True, seed=1)
    rnnkit.save_state_dict_file(lstm, tmp_path / "l.safetensors", metadata={"from": "rnnkit"})
    arrays, meta = _read_by_spec(tmp_path / "l.safetensors")
    expected = lstm.state_dict()
    assert arrays.keys() == expected.keys() and meta == {"from": "rnnkit"}
    for k in expected:
        assert np.array_equal(arrays[k], expected[k]), k
    other = nn.LSTM(3, 4, num_layers=2, bidirectional=True, seed=2)
    other.load_state_dict(rnnkit.load_state_dict_file(tmp_path / "l.safetensors"))
    x = np.random.default_rng(3).standard_normal((5, 2, 3)).astype(np.float32)
    assert np.array_equal(other(x)[0], lstm(x)[0])


def test_npz_of_plain_arrays_loads_and_object_arrays_are_refused(tmp_path):
    np.savez(tmp_path / "ok.npz", a=np.ones((2, 2), np.float32), b=np.arange(3))
    got = rnnkit.load_state_dict_file(tmp_path / "ok.npz")
    assert np.array_equal(got["a"], np.ones((2, 2))) and np.array_equal(got["b"], np.arange(3))
    np.savez(tmp_path / "obj.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="obj.npz"):
        rnnkit.load_state_dict_file(tmp_path / "obj.npz")


class _Trap:
    """Unpickling this creates the file named by ``marker``: proof that a pickle was run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickles_are_refused_unread(tmp_path):
    marker = str(tmp_path / "pwned")
    (tmp_path / "legacy.pt").write_bytes(pickle.dumps(_Trap(marker), protocol=2))
    with pytest.raises(ValueError, match="never unpickles"):
        rnnkit.load_state_dict_file(tmp_path / "legacy.pt")
    # torch.save's zip layout: a data.pkl inside a zip.
    with zipfile.ZipFile(tmp_path / "zip.pt", "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(_Trap(marker), protocol=2))
        z.writestr("archive/version", "3\n")
    with pytest.raises(ValueError, match="torch checkpoint"):
        rnnkit.load_state_dict_file(tmp_path / "zip.pt")
    assert not os.path.exists(marker)


def test_broken_files_raise_value_errors_naming_the_path(tmp_path):
    _write_by_spec(tmp_path / "full.safetensors", {"w": np.ones((64, 64), np.float32)})
    data = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:len(data) // 2])
    (tmp_path / "noise.bin").write_bytes(bytes(range(256)))
    (tmp_path / "empty").write_bytes(b"")
    for name in ("cut.safetensors", "noise.bin", "empty"):
        with pytest.raises(ValueError, match=name):
            rnnkit.load_state_dict_file(tmp_path / name)
    with pytest.raises(ValueError, match="directory"):
        rnnkit.load_state_dict_file(tmp_path)
    if hasattr(os, "mkfifo"):      # refused at once, never read (a plain open would block)
        os.mkfifo(tmp_path / "pipe")
        with pytest.raises(ValueError, match="FIFO"):
            rnnkit.load_state_dict_file(tmp_path / "pipe")


def test_save_rejects_what_is_not_a_numeric_state_dict(tmp_path):
    with pytest.raises(TypeError, match="numeric"):
        rnnkit.save_state_dict_file({"a": np.array(["x"])}, tmp_path / "s.safetensors")
    with pytest.raises(TypeError, match="mapping"):
        rnnkit.save_state_dict_file([1, 2], tmp_path / "s.safetensors")
    with pytest.raises(TypeError, match="metadata"):
        rnnkit.save_state_dict_file({"a": np.ones(2)}, tmp_path / "s.safetensors",
                                    metadata={"n": 1})
    assert not (tmp_path / "s.safetensors").exists()


# A process in which `import torch` fails: what a torch-less deployment sees.
_NO_TORCH = r"""
import sys
sys.modules["torch"] = None          # `import torch` now raises ImportError
import numpy as np, rnnkit
from rnnkit import nn
try:
    import torch
    raise SystemExit("torch imported")
except ImportError:
    pass
ref = np.load(sys.argv[2])
lstm = nn.LSTM(5, 7, num_layers=2, bidirectional=True)
lstm.load_state_dict(rnnkit.load_state_dict_file(sys.argv[1]))
y, (h, c) = lstm(ref["x"])
for name, got in (("y", y), ("h", h), ("c", c)):
    np.testing.assert_allclose(got, ref[name], rtol=1e-5, atol=1e-6, err_msg=name)
assert "torch" not in [m.split(".")[0] for m in sys.modules if sys.modules[m] is not None]
print("matched torch")
"""


def test_a_torch_safetensors_file_loads_where_torch_cannot_be_imported(tmp_path):
    torch = pytest.importorskip("torch")
    import safetensors.torch as st_torch
    torch.manual_seed(0)
    ref = torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True)
    st_torch.save_file(ref.state_dict(), str(tmp_path / "lstm.safetensors"))
    x = torch.randn(6, 3, 5)
    with torch.no_grad():
        y, (h, c) = ref(x)
    np.savez(tmp_path / "ref.npz", x=x.numpy(), y=y.numpy(), h=h.numpy(), c=c.numpy())
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH, str(tmp_path / "lstm.safetensors"),
                           str(tmp_path / "ref.npz")], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                              p for p in sys.path if p)))
    assert proc.returncode == 0 and "matched torch" in proc.stdout, proc.stderr[-3000:]


def test_torch_bfloat16_tensors_come_back_as_exact_float32(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("ml_dtypes")
    import safetensors.torch as st_torch
    torch.manual_seed(1)
    sd = {k: v.to(torch.bfloat16) for k, v in torch.nn.GRU(3, 4).state_dict().items()}
    st_torch.save_file(sd, str(tmp_path / "bf16.safetensors"))
    got = rnnkit.load_state_dict_file(tmp_path / "bf16.safetensors")
    for k, v in sd.items():
        assert got[k].dtype == np.float32
        assert np.array_equal(got[k], v.float().numpy()), k
