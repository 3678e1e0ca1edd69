"""Small models, data and callbacks shared by tests/test_train.py and tests/test_io.py."""

import warnings

import numpy as np

from rnnkit import losses, nn, optim
from rnnkit.train import Callback, Trainer

V, E, H = 7, 5, 6          # vocabulary, embedding, hidden sizes for the token models


def params(model):
    """{name: copy of the parameter} (independent of state_dict, via named_parameters)."""
    return {name: p.data.copy() for name, p in model.named_parameters()}


def assert_params_equal(a, b, msg=""):
    assert a.keys() == b.keys(), msg
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{msg} parameter {k}")


def assert_params_differ(a, b):
    assert any(not np.array_equal(a[k], b[k]) for k in a), "parameters did not change"


def token_data(n=24, t=8, seed=0, vocab=V, ignore_frac=0.0, ignore_index=-100):
    """Next-token data: x (N, T) ints, y (N, T) = x shifted (a learnable task)."""
    rng = np.random.default_rng(seed)
    seq = rng.integers(0, vocab, size=(n, t + 1))
    x, y = seq[:, :-1].copy(), seq[:, 1:].copy()
    if ignore_frac:
        y[rng.random(y.shape) < ignore_frac] = ignore_index
    return x, y


def token_model(seed=0, dropout=0.0, num_layers=1, cell="LSTM", mid_dropout=0.0):
    layers = [nn.Embedding(V, E, seed=seed)]
    rec = getattr(nn, cell)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dropout with one layer warns
        layers.append(rec(E, H, num_layers=num_layers, batch_first=True, dropout=dropout,
                          seed=seed + 1))
    if mid_dropout:
        layers.append(nn.Dropout(mid_dropout, seed=seed + 2))
    layers.append(nn.Linear(H, V, seed=seed + 3))
    return nn.Sequential(*layers)


def reg_data(n=20, t=6, i=3, o=2, seed=0, dtype=np.float64):
    """Per-step regression: x (N, T, I), y (N, T, O)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, t, i)).astype(dtype)
    w = rng.standard_normal((i, o))
    y = np.tanh(np.cumsum(x, axis=1) @ w * 0.5).astype(dtype)
    return x, y


def reg_model(seed=0, i=3, o=2, h=5, cell="LSTM", num_layers=1, dtype="float64",
              bidirectional=False):
    rec = getattr(nn, cell)(i, h, num_layers=num_layers, batch_first=True,
                            bidirectional=bidirectional, dtype=dtype, seed=seed)
    d = 2 if bidirectional else 1
    return nn.Sequential(rec, nn.Linear(d * h, o, dtype=dtype, seed=seed + 1))


def class_data(n=30, t=5, i=3, c=3, seed=0):
    """Many-to-one classification: x (N, T, I), y (N,) = class from the sum of feature 0."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, t, i)).astype(np.float32)
    s = x[:, :, 0].sum(axis=1)
    y = np.digitize(s, np.quantile(s, np.linspace(0, 1, c + 1)[1:-1]))
    return x, y.astype(np.int64)


def class_model(seed=0, i=3, c=3, h=8):
    return nn.Sequential(nn.GRU(i, h, batch_first=True, seed=seed), nn.Last(batch_first=True),
                         nn.Linear(h, c, seed=seed + 1))


class Recorder(Callback):
    """Records every hook call, and a parameter snapshot after each batch / epoch."""

    def __init__(self):
        self.calls = []
        self.batch_params = []
        self.epoch_params = []
        self.epoch_logs = []

    def on_train_begin(self, trainer, logs):
        self.calls.append(("train_begin",))

    def on_epoch_begin(self, trainer, epoch, logs):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_end(self, trainer, batch, logs):
        self.calls.append(("batch_end", batch))
        self.batch_params.append(params(trainer.model))

    def on_epoch_end(self, trainer, epoch, logs):
        self.calls.append(("epoch_end", epoch))
        self.epoch_params.append(params(trainer.model))
        self.epoch_logs.append(dict(logs))

    def on_train_end(self, trainer, logs):
        self.calls.append(("train_end",))


class ScriptedMetric(Callback):
    """Overwrites logs[name] with scripted values (put it before the callback under test)."""

    def __init__(self, name, values):
        self.name, self.values = name, list(values)

    def on_epoch_end(self, trainer, epoch, logs):
        logs[self.name] = self.values[epoch]


def make_trainer(model, lr=0.05, opt="SGD", clip=None, seed=0, loss=None, scheduler=None):
    loss = loss if loss is not None else losses.MSELoss()
    o = getattr(optim, opt)(model.parameters(), lr=lr)
    sched = scheduler(o) if scheduler is not None else None
    return Trainer(model, loss, o, clip_grad_norm=clip, seed=seed, scheduler=sched)
