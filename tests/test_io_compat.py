"""Files written by an earlier rnnkit (tests/data/v1_*.rnnkit, see make_io_fixtures.py) still
load, and saving what they load writes the same metadata and arrays again: FORMAT_VERSION 1
stays what it was."""

import json
import os
import zipfile

import numpy as np
import pytest

import rnnkit
from rnnkit import losses, nn, optim
from rnnkit.optim import lr_scheduler
from rnnkit.train import Trainer

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def _read(path):
    """(metadata as parsed JSON, {name: array}) straight from the archive."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("__meta__").tobytes().decode("utf-8"))
    return meta, arrays


def _assert_same_file(old_path, new_path):
    old_meta, old_arrays = _read(old_path)
    new_meta, new_arrays = _read(new_path)
    old_meta["rnnkit_version"] = new_meta["rnnkit_version"]
    # Same keys in the same order, same values: the JSON text is identical.
    assert json.dumps(new_meta) == json.dumps(old_meta)
    assert list(new_arrays) == list(old_arrays)
    for k in old_arrays:
        assert new_arrays[k].dtype == old_arrays[k].dtype, k
        np.testing.assert_array_equal(new_arrays[k], old_arrays[k], err_msg=k)


def _fixture(name):
    path = os.path.join(DATA, name)
    with zipfile.ZipFile(path) as z:  # a real archive, not a Git LFS pointer
        assert "__meta__.npy" in z.namelist()
    return path


def test_every_layer_model_loads_and_resaves_identically(tmp_path):
    path = _fixture("v1_every_layer.rnnkit")
    _, arrays = _read(path)
    model = rnnkit.load(path)
    assert [type(m).__name__ for m in model] == [
        "Embedding", "LSTM", "Dropout", "Sequential", "Last", "Linear", "LSTMCell", "GRUCell",
        "RNNCell"]
    emb, lstm, drop, inner, last, lin, lcell, gcell, rcell = model
    assert emb.padding_idx == 2 and (emb.num_embeddings, emb.embedding_dim) == (9, 4)
    assert lstm.num_layers == 2 and lstm.batch_first and lstm.dropout == 0.25
    assert drop.p == 0.3 and last.batch_first and lin.bias is None
    gru, rnn = inner
    assert gru.bias is False and gru.dtype == np.float64
    assert rnn.nonlinearity == "relu" and rnn.bidirectional
    assert rcell.nonlinearity == "relu" and gcell.dtype == np.float64 and not gcell.bias
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.data, arrays["model/" + name], err_msg=name)
    rnnkit.save(model, tmp_path / "again.rnnkit")
    _assert_same_file(path, tmp_path / "again.rnnkit")


def test_cross_entropy_trainer_loads_resumes_and_resaves_identically(tmp_path):
    path = _fixture("v1_trainer_ce.rnnkit")
    meta, _ = _read(path)
    tr = rnnkit.load(path)
    assert isinstance(tr, Trainer) and isinstance(tr.optimizer, optim.Adam)
    assert isinstance(tr.loss, losses.CrossEntropyLoss) and tr.loss.ignore_index == 3
    assert (tr.epoch, tr.clip_grad_norm) == (2, 1.0)
    assert tr.global_step == meta["trainer"]["global_step"] > 0
    # The schedule is reattached by the user; loading into it restores its state.
    tr.scheduler = lr_scheduler.StepLR(tr.optimizer, step_size=1, gamma=0.5)
    assert rnnkit.load(path, into=tr) is tr
    assert tr.scheduler.last_epoch == 2
    assert tr.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * 0.25)
    rnnkit.save(tr, tmp_path / "again.rnnkit")
    _assert_same_file(path, tmp_path / "again.rnnkit")
    rng = np.random.default_rng(0)
    seq = rng.integers(0, 7, size=(8, 7))
    history = tr.fit(seq[:, :-1], seq[:, 1:], epochs=3, batch_size=3, verbose=0)
    assert history.epochs == [2] and np.isfinite(history.history["loss"][0])


def test_bce_trainer_with_groups_loads_and_resaves_identically(tmp_path):
    path = _fixture("v1_trainer_bce.rnnkit")
    tr = rnnkit.load(path)
    assert isinstance(tr.loss, losses.BCEWithLogitsLoss)
    np.testing.assert_array_equal(tr.loss.pos_weight, [2.0, 0.5])
    assert [g["lr"] for g in tr.optimizer.param_groups] == [0.1, 0.05]
    names = {id(p): n for n, p in tr.model.named_parameters()}
    assert [names[id(p)] for p in tr.optimizer.param_groups[0]["params"]] == \
        ["1.weight", "1.bias"]
    rnnkit.save(tr, tmp_path / "again.rnnkit")
    _assert_same_file(path, tmp_path / "again.rnnkit")


def test_optimizer_file_loads_into_and_resaves_identically(tmp_path):
    path = _fixture("v1_rmsprop.rnnkit")
    model = nn.Linear(3, 2, seed=30)
    opt = optim.RMSprop(model.parameters(), lr=0.5)
    assert rnnkit.load(path, into=opt) is opt
    assert opt.param_groups[0]["lr"] == 0.01 and opt.param_groups[0]["centered"]
    rnnkit.save(opt, tmp_path / "again.rnnkit")
    _assert_same_file(path, tmp_path / "again.rnnkit")
