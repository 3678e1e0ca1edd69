"""Writes the io compatibility fixtures in this folder (tests/test_io_compat.py loads them).

The committed files were written by rnnkit at commit 2d37063, before io.py became a kind
registry, so they pin FORMAT_VERSION 1 as it was. Rerunning this script with a later rnnkit
writes what that version saves, which is no longer a test of old files: do so only when the
format version changes, and keep the old files beside the new ones.

    PYTHONPATH=python python tests/data/make_io_fixtures.py
"""
import os
import sys
import warnings

import numpy as np

import rnnkit
from rnnkit import losses, nn, optim
from rnnkit.optim import lr_scheduler
from rnnkit.train import Trainer

HERE = os.path.dirname(os.path.abspath(__file__))


def every_layer_model():
    """One nested Sequential holding every layer class with non-default arguments."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nn.Sequential(
            nn.Embedding(9, 4, padding_idx=2, seed=1),
            nn.LSTM(4, 3, num_layers=2, batch_first=True, dropout=0.25, seed=2),
            nn.Dropout(0.3, seed=3),
            nn.Sequential(nn.GRU(3, 2, bias=False, dtype="float64", seed=4),
                          nn.RNN(2, 3, nonlinearity="relu", bidirectional=True, seed=5)),
            nn.Last(batch_first=True),
            nn.Linear(6, 5, bias=False, seed=6),
            nn.LSTMCell(2, 2, seed=7), nn.GRUCell(2, 3, bias=False, dtype="float64", seed=8),
            nn.RNNCell(3, 2, nonlinearity="relu", seed=9))


def token_trainer():
    rng = np.random.default_rng(0)
    seq = rng.integers(0, 7, size=(8, 7))
    x, y = seq[:, :-1], seq[:, 1:].copy()
    y[0, :2] = 3                         # some ignored targets
    model = nn.Sequential(nn.Embedding(7, 4, seed=10), nn.GRU(4, 5, batch_first=True, seed=11),
                          nn.Dropout(0.2, seed=12), nn.Linear(5, 7, seed=13))
    opt = optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.95), weight_decay=0.01)
    tr = Trainer(model, losses.CrossEntropyLoss(ignore_index=3), opt, clip_grad_norm=1.0,
                 scheduler=lr_scheduler.StepLR(opt, step_size=1, gamma=0.5), seed=4)
    tr.fit(x, y, epochs=2, batch_size=3, verbose=0)
    return tr


def bce_trainer():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 4, 3))
    y = (rng.random((6, 4, 2)) < 0.5).astype(np.float64)
    model = nn.Sequential(nn.LSTM(3, 4, batch_first=True, dtype="float64", seed=20),
                          nn.Linear(4, 2, dtype="float64", seed=21))
    head, rec = list(model[1].parameters()), list(model[0].parameters())
    opt = optim.SGD([{"params": head, "lr": 0.1}, {"params": rec}], lr=0.05, momentum=0.9)
    tr = Trainer(model, losses.BCEWithLogitsLoss(pos_weight=[2.0, 0.5]), opt, seed=5)
    tr.fit(x, y, epochs=1, batch_size=4, verbose=0, tbptt=2)
    return tr


def rmsprop():
    model = nn.Linear(3, 2, seed=30)
    opt = optim.RMSprop(model.parameters(), lr=0.01, momentum=0.5, centered=True)
    rng = np.random.default_rng(2)
    for _ in range(2):
        for p in model.parameters():
            p.grad = rng.standard_normal(p.data.shape).astype(p.data.dtype)
        opt.step()
    return opt


if __name__ == "__main__":
    rnnkit.save(every_layer_model(), os.path.join(HERE, "v1_every_layer.rnnkit"))
    rnnkit.save(token_trainer(), os.path.join(HERE, "v1_trainer_ce.rnnkit"))
    rnnkit.save(bce_trainer(), os.path.join(HERE, "v1_trainer_bce.rnnkit"))
    rnnkit.save(rmsprop(), os.path.join(HERE, "v1_rmsprop.rnnkit"))
    print("wrote fixtures with rnnkit", rnnkit.__version__, file=sys.stderr)
