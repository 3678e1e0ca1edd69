"""The two directions of a bidirectional layer run concurrently (rnnkit.nn._directions): each on
its share of the threads, with results bitwise those of running them one after the other."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import rnnkit
from rnnkit import nn
from rnnkit.nn._directions import run_directions


@pytest.fixture
def threads():
    before = rnnkit.get_num_threads()
    yield rnnkit.set_num_threads
    rnnkit.set_num_threads(before)


def _probe():
    time.sleep(0.05)   # long enough that a sequential run could not overlap the other probe
    return threading.current_thread().name, rnnkit.get_num_threads(), time.perf_counter()


def test_two_tasks_run_at_once_each_on_its_share(threads):
    threads(2)
    t0 = time.perf_counter()
    (name0, n0, end0), (name1, n1, end1) = run_directions([_probe, _probe])
    assert name0 == threading.current_thread().name and name1.startswith("rnnkit-direction")
    assert (n0, n1) == (1, 1)
    assert max(end0, end1) - t0 < 0.095           # overlapped: not 2 x 50 ms
    assert rnnkit.get_num_threads() == 2          # the caller's cap is lifted afterwards
    threads(5)
    assert [n for _, n, _ in run_directions([_probe, _probe])] == [2, 3]


def test_one_thread_runs_in_order(threads):
    threads(1)
    names = [r[0] for r in run_directions([_probe, _probe])]
    assert names == [threading.current_thread().name] * 2


@pytest.mark.parametrize("failing", [0, 1])
def test_errors_reach_the_caller(threads, failing):
    threads(2)
    done = []

    def boom():
        raise ValueError("direction failed")

    def slow():
        time.sleep(0.02)
        done.append(True)
        return 1

    tasks = [boom, slow] if failing == 0 else [slow, boom]
    with pytest.raises(ValueError, match="direction failed"):
        run_directions(tasks)
    assert done == [True]    # the other direction finished before the error was raised


@pytest.mark.parametrize("cls,kw", [(nn.LSTM, {}), (nn.LSTM, {"proj_size": 7}), (nn.GRU, {}),
                                    (nn.RNN, {"nonlinearity": "relu"})],
                         ids=["lstm", "lstm_proj", "gru", "rnn"])
def test_bidirectional_layers_bitwise_across_thread_counts(threads, cls, kw):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 30, 16)).astype(np.float32)
    lengths = rng.integers(0, 31, 9)
    results = []
    for n in (1, 2):
        threads(n)
        layer = cls(16, 96, num_layers=2, bidirectional=True, batch_first=True, seed=1, **kw)
        y, state = layer(x, lengths=lengths)
        dx, dstate = layer.backward(np.cos(y))
        layer.eval()
        y_eval, _ = layer(x)
        flat = [y, dx, y_eval] + [a for s in (state, dstate) for a in
                                  (s if isinstance(s, tuple) else (s,))]
        results.append(flat + [p.grad.copy() for p in layer.parameters()])
    for a, b in zip(*results):
        assert np.array_equal(a, b)
