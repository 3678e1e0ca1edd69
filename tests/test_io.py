"""rnnkit.save / rnnkit.load: models of every layer type, optimisers, trainers, atomic writes
(a save killed midway keeps the previous file), and safe, clear failures on bad files."""

import gc
import glob
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
import zipfile

import numpy as np
import pytest

import rnnkit
from rnnkit import losses, nn, optim
from rnnkit.nn.cells import make_cell
from rnnkit.nn.recurrent import make_layer
from rnnkit.train import Trainer

from _train_helpers import (assert_params_equal, make_trainer, params, reg_data, reg_model,
                            token_data, token_model)
from helpers import CELLS as CELL_NAMES
from helpers import SPECS, pack_state, unpack_state

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(rnnkit.__file__)))


# ============================================================================ models


def _rec(cls, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(*a, **kw)


def _seq_x(b=3, t=5, i=4, batch_first=False, dtype=np.float32):
    rng = np.random.default_rng(1)
    shape = (b, t, i) if batch_first else (t, b, i)
    return rng.standard_normal(shape).astype(dtype)


# (name, model factory, input factory, attributes that must survive)
MODELS = [
    ("lstm", lambda: nn.LSTM(4, 6, seed=1), lambda: _seq_x(), ()),
    ("lstm2_bi_bf_f64", lambda: _rec(nn.LSTM, 4, 5, num_layers=2, bidirectional=True,
                                     batch_first=True, dropout=0.2, dtype="float64", seed=2),
     lambda: _seq_x(batch_first=True, dtype=np.float64),
     ("num_layers", "bidirectional", "batch_first", "dropout", "dtype")),
    ("gru_nobias", lambda: nn.GRU(4, 3, bias=False, seed=3), lambda: _seq_x(), ("bias",)),
    ("rnn_relu", lambda: nn.RNN(4, 3, num_layers=2, nonlinearity="relu", seed=4),
     lambda: _seq_x(), ("nonlinearity", "num_layers")),
    ("linear_nobias", lambda: nn.Linear(4, 3, bias=False, seed=5), lambda: _seq_x(), ()),
    ("embedding_pad", lambda: nn.Embedding(9, 4, padding_idx=2, seed=6),
     lambda: np.array([[1, 2, 8], [0, 2, 3]]), ("padding_idx",)),
    ("dropout", lambda: nn.Dropout(0.4, seed=7), lambda: _seq_x(), ("p",)),
    ("last", lambda: nn.Last(batch_first=True), lambda: _seq_x(batch_first=True),
     ("batch_first",)),
    ("nested_sequential", lambda: nn.Sequential(
        nn.Embedding(9, 4, seed=8), nn.GRU(4, 5, batch_first=True, seed=9),
        nn.Sequential(nn.Dropout(0.3, seed=10), nn.Linear(5, 9, seed=11))),
     lambda: np.array([[1, 2, 8, 0], [0, 2, 3, 4]]), ()),
] + [  # and every registered cell's layer with its defaults
    (f"{cell}_registry", lambda c=cell: make_layer(SPECS[c], 4, 3, seed=20), lambda: _seq_x(), ())
    for cell in CELL_NAMES
]
# (test id, registry cell, cell factory)
CELLS = [
    ("lstmcell", "lstm", lambda: nn.LSTMCell(4, 3, seed=12)),
    ("grucell", "gru", lambda: nn.GRUCell(4, 3, bias=False, seed=13)),
    ("rnncell_relu", "rnn_relu", lambda: nn.RNNCell(4, 3, nonlinearity="relu", seed=14)),
] + [(f"{cell}cell_registry", cell, lambda c=cell: make_cell(SPECS[c], 4, 3, seed=21))
     for cell in CELL_NAMES]


def _out(y):
    return y[0] if isinstance(y, tuple) else y


@pytest.mark.parametrize("name, make, make_x, attrs", MODELS, ids=[m[0] for m in MODELS])
def test_model_round_trip_every_layer(tmp_path, name, make, make_x, attrs):
    model, x = make(), make_x()
    path = tmp_path / f"{name}.rnnkit"
    rnnkit.save(model, path)
    loaded = rnnkit.load(path)
    assert type(loaded) is type(model)
    assert repr(loaded) == repr(model)
    for a in attrs:
        assert getattr(loaded, a) == getattr(model, a), a
    assert_params_equal(params(loaded), params(model))
    # train mode (dropout masks from the restored generators) and eval mode
    np.testing.assert_array_equal(_out(loaded(x)), _out(model(x)))
    np.testing.assert_array_equal(_out(loaded(x)), _out(model(x)))
    model.eval(), loaded.eval()
    np.testing.assert_array_equal(_out(loaded(x)), _out(model(x)))


@pytest.mark.parametrize("name, kind, make", CELLS, ids=[c[0] for c in CELLS])
def test_cell_round_trip(tmp_path, name, kind, make):
    cell = make()
    rnnkit.save(cell, tmp_path / "c.rnnkit")
    loaded = rnnkit.load(tmp_path / "c.rnnkit")
    assert type(loaded) is type(cell) and repr(loaded) == repr(cell)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    h = np.full((2, 3), 0.1, np.float32)
    hx = pack_state(kind, [h] * len(SPECS[kind].states))
    a, b = unpack_state(kind, cell(x, hx)), unpack_state(kind, loaded(x, hx))
    assert len(a) == len(b) == len(SPECS[kind].states)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def test_model_load_into_existing(tmp_path):
    a, b = token_model(seed=0), token_model(seed=50)
    rnnkit.save(a, tmp_path / "m.rnnkit")
    out = rnnkit.load(tmp_path / "m.rnnkit", into=b)
    assert out is b
    assert_params_equal(params(b), params(a))


def test_model_load_into_wrong_architecture_fails_and_leaves_it_unchanged(tmp_path):
    rnnkit.save(token_model(), tmp_path / "m.rnnkit")
    other = nn.Sequential(nn.Embedding(7, 5, seed=0), nn.GRU(5, 6, batch_first=True, seed=1),
                          nn.Linear(6, 3, seed=2))
    before = params(other)
    with pytest.raises((KeyError, ValueError)):
        rnnkit.load(tmp_path / "m.rnnkit", into=other)
    assert_params_equal(params(other), before)


def test_save_rejects_unknown_objects(tmp_path):
    with pytest.raises(TypeError, match="dict"):
        rnnkit.save({"a": np.zeros(3)}, tmp_path / "x.rnnkit")

    class Unjsonable(nn.Module):
        def get_config(self):
            return {"table": np.zeros(2)}

    with pytest.raises(TypeError, match="ndarray"):
        rnnkit.save(Unjsonable(), tmp_path / "x.rnnkit")
    assert os.listdir(tmp_path) == [], "a failed save leaves nothing behind"


# ============================================================================ optimisers


def _stepped_adam(model, steps=3, seed=0):
    opt = optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.95), weight_decay=0.01)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        for p in model.parameters():
            p.grad = rng.standard_normal(p.data.shape).astype(p.data.dtype)
        opt.step()
    return opt


@pytest.mark.parametrize("opt_name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_optimizer_round_trip_into(tmp_path, opt_name):
    kwargs = {"SGD": dict(lr=0.1, momentum=0.9, nesterov=True),
              "Adam": dict(lr=0.01, betas=(0.8, 0.95), amsgrad=False),
              "AdamW": dict(lr=0.01, weight_decay=0.1),
              "RMSprop": dict(lr=0.01, momentum=0.5, centered=True),
              "Adagrad": dict(lr=0.05)}[opt_name]
    a = reg_model()
    opt_a = getattr(optim, opt_name)(a.parameters(), **kwargs)
    rng = np.random.default_rng(0)
    grads = [[rng.standard_normal(p.data.shape) for p in a.parameters()] for _ in range(5)]

    def step(model, opt, g):
        for p, gp in zip(model.parameters(), g):
            p.grad = gp.copy()
        opt.step()

    for g in grads[:2]:
        step(a, opt_a, g)
    rnnkit.save(opt_a, tmp_path / "o.rnnkit")
    b = reg_model(seed=9)
    b.load_state_dict(a.state_dict())
    opt_b = getattr(optim, opt_name)(b.parameters(), lr=0.5)   # other hyperparameters
    assert rnnkit.load(tmp_path / "o.rnnkit", into=opt_b) is opt_b
    for g in grads[2:]:
        step(a, opt_a, g)
        step(b, opt_b, g)
    assert_params_equal(params(b), params(a))


def test_optimizer_load_without_into_says_so(tmp_path):
    opt = _stepped_adam(reg_model())
    rnnkit.save(opt, tmp_path / "o.rnnkit")
    with pytest.raises(ValueError, match="into"):
        rnnkit.load(tmp_path / "o.rnnkit")


def test_trainer_with_param_groups_in_another_order(tmp_path):
    # The optimiser's groups need not follow model.parameters() order (e.g. the head with its
    # own lr first). A trainer loaded from the file must step the same parameters with the
    # same hyperparameters and state.
    x, y = reg_data(n=8)
    model = reg_model()
    head, rec = list(model[1].parameters()), list(model[0].parameters())
    opt = optim.Adam([{"params": head, "lr": 0.05}, {"params": rec, "lr": 0.001}])
    tr = Trainer(model, losses.MSELoss(), opt)
    tr.fit(x, y, epochs=1, batch_size=4, verbose=0)
    rnnkit.save(tr, tmp_path / "t.rnnkit")
    t2 = rnnkit.load(tmp_path / "t.rnnkit")
    names = {id(p): n for n, p in t2.model.named_parameters()}
    assert [names[id(p)] for p in t2.optimizer.param_groups[0]["params"]] == \
        ["1.weight", "1.bias"]
    assert t2.optimizer.param_groups[0]["lr"] == 0.05
    # The first fit after a load counts epochs as the run's total (resuming the interrupted
    # call): 3 for the loaded trainer is 2 more, as for the one that kept running.
    tr.fit(x, y, epochs=2, batch_size=4, verbose=0)
    t2.fit(x, y, epochs=3, batch_size=4, verbose=0)
    assert_params_equal(params(t2.model), params(model))


# ============================================================================ trainers


def test_trainer_file_is_a_snapshot(tmp_path):
    # load(p) twice gives equal, independent trainers
    x, y = token_data(n=8, t=4)
    model = token_model(mid_dropout=0.3)
    tr = Trainer(model, losses.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.01))
    tr.fit(x, y, epochs=1, batch_size=4, verbose=0)
    rnnkit.save(tr, tmp_path / "t.rnnkit")
    a, b = rnnkit.load(tmp_path / "t.rnnkit"), rnnkit.load(tmp_path / "t.rnnkit")
    assert a.model is not b.model
    a.fit(x, y, epochs=3, batch_size=4, verbose=0)    # up to epoch 3: a resumed run's total
    b.fit(x, y, epochs=3, batch_size=4, verbose=0)
    tr.fit(x, y, epochs=2, batch_size=4, verbose=0)   # 2 more epochs: also to epoch 3
    assert_params_equal(params(a.model), params(tr.model))
    assert_params_equal(params(b.model), params(tr.model))


def test_trainer_file_into_wrong_type(tmp_path):
    tr = make_trainer(reg_model())
    rnnkit.save(tr, tmp_path / "t.rnnkit")
    with pytest.raises(TypeError, match="Trainer"):
        rnnkit.load(tmp_path / "t.rnnkit", into=reg_model())


# ============================================================================ atomic writes


def test_save_overwrites_and_leaves_no_temporary_file(tmp_path):
    a, b = reg_model(seed=0), reg_model(seed=1)
    p = tmp_path / "m.rnnkit"
    rnnkit.save(a, p)
    rnnkit.save(b, p)
    assert os.listdir(tmp_path) == ["m.rnnkit"]
    assert_params_equal(params(rnnkit.load(p)), params(b))


def test_saved_file_has_normal_permissions(tmp_path):
    # Like any file the user creates (open(..., "w")): 0o666 minus the umask, not the 0o600
    # of a mkstemp temporary file.
    umask = os.umask(0o022)
    try:
        rnnkit.save(reg_model(), tmp_path / "m.rnnkit")
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(umask)
    mode = os.stat(tmp_path / "m.rnnkit").st_mode & 0o777
    assert mode == os.stat(tmp_path / "plain").st_mode & 0o777 == 0o644, oct(mode)


_SAVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {python_dir!r})
    import numpy as np
    import rnnkit
    from rnnkit import nn
    model = nn.Linear(1500, 1500, dtype="float64", seed=0)   # 18 MB per file
    i = 0
    while True:
        for p in model.parameters():
            p.data[...] = i
        rnnkit.save(model, {path!r})
        i += 1
        print(i, flush=True)
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_save_killed_midway_keeps_previous_file(tmp_path):
    path = str(tmp_path / "model.rnnkit")
    proc = subprocess.Popen([sys.executable, "-c",
                             _SAVER.format(python_dir=PYTHON_DIR, path=path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed_mid_write = False
    try:
        # wait for the first complete file
        assert proc.stdout.readline().strip() == "1", proc.stderr.read()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            tmps = [f for f in os.listdir(tmp_path) if f != "model.rnnkit"]
            try:
                size = os.path.getsize(tmp_path / tmps[0]) if tmps else 0
            except FileNotFoundError:       # renamed into place meanwhile
                size = 0
            if size > 1_000_000:
                proc.send_signal(signal.SIGKILL)
                killed_mid_write = True
                break
            time.sleep(0.001)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert killed_mid_write, "never caught the saver in the middle of a write"
    model = rnnkit.load(path)
    w = model.weight.data
    assert w.shape == (1500, 1500)
    assert np.all(w == w.flat[0]) and np.all(model.bias.data == w.flat[0]), \
        "the file at the target path is one complete save"
    # temporary files may stay behind, but nothing partial at the target path
    for f in os.listdir(tmp_path):
        if f != "model.rnnkit":
            assert not f.startswith("model.rnnkit")


# ============================================================================ bad files


def _write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _meta(obj):
    return np.frombuffer(json.dumps(obj).encode(), np.uint8)


def test_non_rnnkit_npz_is_a_clear_value_error(tmp_path):
    p = tmp_path / "other.npz"
    _write_npz(p, w=np.zeros(3))
    with pytest.raises(ValueError, match="rnnkit"):
        rnnkit.load(p)


def test_other_format_or_future_version(tmp_path):
    p = tmp_path / "f.rnnkit"
    _write_npz(p, __meta__=_meta({"format": "keras", "format_version": 1}))
    with pytest.raises(ValueError, match="format"):
        rnnkit.load(p)
    _write_npz(p, __meta__=_meta({"format": "rnnkit", "format_version": 99, "kind": "model"}))
    with pytest.raises(ValueError, match="version"):
        rnnkit.load(p)


@pytest.mark.parametrize("meta", [
    b"{not json",                                   # corrupted JSON
    b"\xff\xfe\x00garbage",                         # not even UTF-8
    b'"a string"',                                  # JSON, but not an object
    b"[1, 2, 3]",
    json.dumps({"format": "rnnkit", "format_version": 1, "kind": "model"}).encode(),
    json.dumps({"format": "rnnkit", "format_version": 1, "kind": "model",
                "model": {"architecture": {"class": "Linear", "config": {"bogus": 1}}}}
               ).encode(),
    json.dumps({"format": "rnnkit", "format_version": 1, "kind": "model",
                "model": {"architecture": {"class": "os.system", "config": {}}}}).encode(),
], ids=["bad-json", "bad-utf8", "json-string", "json-list", "no-model", "bad-config",
        "unknown-class"])
def test_corrupted_metadata_is_a_clear_value_error(tmp_path, meta):
    p = tmp_path / "corrupt.rnnkit"
    _write_npz(p, __meta__=np.frombuffer(meta, np.uint8))
    with pytest.raises(ValueError) as info:
        rnnkit.load(p)
    assert "corrupt.rnnkit" in str(info.value) or "unknown layer" in str(info.value), \
        f"the message should name the file: {info.value}"


def test_truncated_file_is_a_clear_value_error(tmp_path):
    p = tmp_path / "m.rnnkit"
    rnnkit.save(reg_model(), p)
    data = p.read_bytes()
    p.write_bytes(data[:len(data) // 2])
    try:
        rnnkit.load(p)
        err = None
    except Exception as e:  # noqa: BLE001 - checked below, after the traceback is dropped
        err = (type(e), str(e))
    # np.load(path) leaks its file handle when the archive is broken; rnnkit.load must not
    # (a ResourceWarning, an error under this project's pytest settings, shows up here).
    gc.collect()
    assert err is not None and issubclass(err[0], ValueError), err
    assert "m.rnnkit" in err[1], err


def test_not_a_file_of_arrays(tmp_path):
    p = tmp_path / "text.rnnkit"
    p.write_text("hello, this is not an archive\n")
    with pytest.raises(ValueError):
        rnnkit.load(p)


class _Evil:
    marker = None

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("where", ["__meta__", "model/weight"])
def test_loading_never_unpickles(tmp_path, where):
    marker = tmp_path / "pwned"
    _Evil.marker = str(marker)
    evil = np.empty(1, dtype=object)
    evil[0] = _Evil()
    p = tmp_path / "evil.rnnkit"
    model = nn.Linear(2, 2, seed=0)
    arrays = {"model/weight": model.weight.data, "model/bias": model.bias.data,
              "__meta__": _meta({"format": "rnnkit", "format_version": 1, "kind": "model",
                                 "model": {"architecture": {"class": "Linear", "config": {
                                     "in_features": 2, "out_features": 2, "bias": True,
                                     "dtype": "float32"}}, "rng": {}}})}
    arrays[where] = evil
    with open(p, "wb") as f:
        np.savez(f, **arrays)                       # (numpy pickles the object array)
    with zipfile.ZipFile(p) as z:
        assert any(n.startswith(where) for n in z.namelist())
    with pytest.raises(ValueError):
        rnnkit.load(p)
    assert not marker.exists(), "loading ran code from the file"
    assert not glob.glob(str(tmp_path / "pwned*"))


# ============================================================================ metadata


def test_metadata_round_trips_and_load_still_returns_the_model(tmp_path):
    model = reg_model()
    meta = {"vocab": ["a", "b", "é"], "epochs": 3, "lr": 0.5, "nested": {"ok": [True, None]},
            "count": np.int64(7)}
    rnnkit.save(model, tmp_path / "m.rnnkit", metadata=meta)
    assert rnnkit.load_metadata(tmp_path / "m.rnnkit") == dict(meta, count=7)
    assert_params_equal(params(rnnkit.load(tmp_path / "m.rnnkit")), params(model))
    rnnkit.save(model, tmp_path / "plain.rnnkit")
    assert rnnkit.load_metadata(tmp_path / "plain.rnnkit") == {}


@pytest.mark.parametrize("bad, match", [
    ({"x": float("nan")}, "finite"),
    ({"x": [1.0, float("inf")]}, r"metadata\['x'\]\[1\]"),
    ({"x": np.zeros(2)}, "ndarray"),
    ({1: "a"}, "key"),
    ({"x": object()}, "object"),
    ({"x": 10 ** 80}, "digits"),
    ([1, 2], "dict"),
])
def test_metadata_is_checked_at_save_time(tmp_path, bad, match):
    rnnkit.save(reg_model(), tmp_path / "m.rnnkit")
    before = (tmp_path / "m.rnnkit").read_bytes()
    with pytest.raises((TypeError, ValueError), match=match):
        rnnkit.save(reg_model(seed=3), tmp_path / "m.rnnkit", metadata=bad)
    assert (tmp_path / "m.rnnkit").read_bytes() == before, "a refused save writes nothing"


def test_load_metadata_of_a_bad_file_is_a_value_error_naming_it(tmp_path):
    p = tmp_path / "junk.rnnkit"
    p.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ValueError, match="junk.rnnkit"):
        rnnkit.load_metadata(p)
    with pytest.raises(FileNotFoundError):
        rnnkit.load_metadata(tmp_path / "missing.rnnkit")


# ============================================================================ save targets


def test_save_through_a_symlink_updates_its_target_and_keeps_the_link(tmp_path):
    real = tmp_path / "store" / "model.rnnkit"
    real.parent.mkdir()
    rnnkit.save(reg_model(seed=0), real)
    link = tmp_path / "latest.rnnkit"
    link.symlink_to(real)
    b = reg_model(seed=1)
    rnnkit.save(b, link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert_params_equal(params(rnnkit.load(real)), params(b))
    assert sorted(os.listdir(tmp_path)) == ["latest.rnnkit", "store"]
    assert os.listdir(real.parent) == ["model.rnnkit"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_save_refuses_a_fifo_and_a_directory_and_leaves_them(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="FIFO"):
        rnnkit.save(reg_model(), fifo)
    assert stat_is(fifo, "S_ISFIFO")
    link = tmp_path / "to_pipe"
    link.symlink_to(fifo)
    with pytest.raises(ValueError, match="FIFO"):
        rnnkit.save(reg_model(), link)
    d = tmp_path / "adir"
    d.mkdir()
    with pytest.raises(ValueError, match="directory"):
        rnnkit.save(reg_model(), d)
    assert d.is_dir() and os.listdir(d) == []
    assert sorted(os.listdir(tmp_path)) == ["adir", "pipe", "to_pipe"]


def stat_is(path, test):
    import stat as _stat
    return getattr(_stat, test)(os.lstat(path).st_mode)


def test_save_refuses_a_device(tmp_path, monkeypatch):
    # A character device cannot be made without root; os.stat is made to report one for
    # this path (writing over a real /dev node in a test would be a disaster if it failed).
    import stat as _stat
    target = tmp_path / "dev"
    real_stat = os.stat

    def fake_stat(p, *a, **kw):
        st = real_stat(tmp_path, *a, **kw)
        if os.fspath(p) == str(target):
            return os.stat_result((_stat.S_IFCHR | 0o666,) + tuple(st)[1:])
        return real_stat(p, *a, **kw)

    monkeypatch.setattr(os, "stat", fake_stat)
    with pytest.raises(ValueError, match="character device"):
        rnnkit.save(reg_model(), target)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_save_keeps_the_mode_of_an_existing_file(tmp_path):
    p = tmp_path / "m.rnnkit"
    rnnkit.save(reg_model(), p)
    os.chmod(p, 0o640)
    rnnkit.save(reg_model(seed=2), p)
    assert os.stat(p).st_mode & 0o777 == 0o640


def _age(path, seconds):
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_next_save_removes_stale_temporaries_of_its_target_only(tmp_path):
    p = tmp_path / "m.rnnkit"
    stale = tmp_path / ".m.rnnkit.rnnkit-dead1234.tmp"      # a killed save's, long ago
    fresh = tmp_path / ".m.rnnkit.rnnkit-new45678.tmp"      # just created: maybe starting
    other = tmp_path / ".other.rnnkit.rnnkit-dead9999.tmp"  # another target's
    for f in (stale, fresh, other):
        f.write_bytes(b"x" * 1000)
    _age(stale, 3600)
    _age(other, 3600)
    rnnkit.save(reg_model(), p)
    assert sorted(os.listdir(tmp_path)) == sorted([p.name, fresh.name, other.name])


def test_stale_cleanup_takes_only_names_a_save_makes(tmp_path):
    """A user's file that merely starts like a temporary, and the temporaries of a target
    whose name extends this one's, are not this target's temporaries."""
    p = tmp_path / "a"
    keep = [tmp_path / ".a.rnnkit-keep.tmp",                     # not 8 random characters
            tmp_path / ".a.rnnkit-foo.rnnkit-abcd1234.tmp",      # target "a.rnnkit-foo"'s
            tmp_path / ".a.rnnkit-ABCDEFGH.tmp"]                 # mkstemp writes lowercase
    for f in keep:
        f.write_bytes(b"x")
        _age(f, 3600)
    rnnkit.save(reg_model(), p)
    assert sorted(os.listdir(tmp_path)) == sorted([p.name] + [f.name for f in keep])


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_temporary_held_by_a_live_save_is_not_removed(tmp_path):
    import fcntl
    tmp = tmp_path / ".m.rnnkit.rnnkit-live1234.tmp"
    tmp.write_bytes(b"x")
    _age(tmp, 3600)                  # a slow save that has not written for an hour
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import fcntl, sys, time
            f = open({str(tmp)!r}, "rb")
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            print("locked", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        rnnkit.save(reg_model(), tmp_path / "m.rnnkit")
        assert tmp.exists(), "the temporary of a live save was deleted"
    finally:
        holder.stdin.close()
        holder.wait()
        holder.stdout.close()
    assert fcntl is not None
    rnnkit.save(reg_model(), tmp_path / "m.rnnkit")     # released now: it goes
    assert os.listdir(tmp_path) == ["m.rnnkit"]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_nine_temporaries_do_not_pile_up(tmp_path):
    # Each killed save leaves one temporary named after the target; the next save removes
    # those that are stale (aged here instead of waiting STALE_TEMPORARY_SECONDS).
    path = str(tmp_path / "model.rnnkit")
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c",
                                 _SAVER.format(python_dir=PYTHON_DIR, path=path)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            proc.stdout.readline()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(
                    f.endswith(".tmp") for f in os.listdir(tmp_path)):
                time.sleep(0.001)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait()
            proc.stdout.close()
    leftovers = [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    assert all(f.startswith(".model.rnnkit.rnnkit-") for f in leftovers), leftovers
    for f in leftovers:
        _age(tmp_path / f, 3600)
    rnnkit.save(reg_model(), path)
    assert os.listdir(tmp_path) == ["model.rnnkit"]


# ============================================================================ strict, not stricter


def test_a_plateau_schedule_with_an_infinite_best_round_trips(tmp_path):
    # json.dumps writes ReduceLROnPlateau's initial best as Infinity: the strict metadata
    # reader refuses NaN but must accept that.
    from rnnkit.optim import lr_scheduler
    tr = make_trainer(reg_model())
    tr.scheduler = lr_scheduler.ReduceLROnPlateau(tr.optimizer)
    assert tr.scheduler.best == float("inf")
    rnnkit.save(tr, tmp_path / "t.rnnkit")
    back = make_trainer(reg_model(seed=5))
    back.scheduler = lr_scheduler.ReduceLROnPlateau(back.optimizer, patience=99)
    rnnkit.load(tmp_path / "t.rnnkit", into=back)
    assert back.scheduler.best == float("inf") and back.scheduler.patience == 10


def test_fortran_ordered_arrays_of_a_registered_kind_round_trip(tmp_path):
    class Table:
        def __init__(self, a=None):
            self.a = a

    io_mod = rnnkit.io
    io_mod.register_kind(
        "table", Table, lambda obj, arrays: {"t": io_mod.to_json(obj.a, arrays, "t")},
        lambda meta, arrays, into: Table(io_mod.from_json(meta["t"], arrays)))
    try:
        a = np.asfortranarray(np.arange(12.0).reshape(3, 4))
        rnnkit.save(Table(a), tmp_path / "f.rnnkit")
        back = rnnkit.load(tmp_path / "f.rnnkit").a
        np.testing.assert_array_equal(back, a)
    finally:
        del io_mod._KINDS["table"]
