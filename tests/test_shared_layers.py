"""A layer used from several Python threads at once gives each call its own right answer.

Each thread's forward keeps its training cache under that thread and the matching backward
takes it back; a per-layer lock serialises the calls (the kernels inside still use their own
threads). Before, the cache was one per layer, and a backward could consume another thread's
forward: 12 of 160 shared calls returned a silently wrong dx.
"""
import sys
import threading

import numpy as np
import pytest

from helpers import CELLS, SPECS
from rnnkit import nn
from rnnkit.nn.recurrent import make_layer

N_THREADS, CALLS = 4, 25


def _inputs(shape, count, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]


def _hammer(work, count):
    """Runs work(i) for i < count spread over N_THREADS threads released together."""
    results, errors = {}, []
    barrier = threading.Barrier(N_THREADS)

    def worker(k):
        try:
            barrier.wait()
            for i in range(k, count, N_THREADS):
                results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(N_THREADS)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)     # switch threads as often as possible: interleave the calls
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors
    return results


# Three configurations, and every registered cell's layer with the defaults.
@pytest.mark.parametrize("make", [lambda: nn.LSTM(6, 40, num_layers=2, bidirectional=True,
                                                   seed=0),
                                  lambda: nn.GRU(6, 40, batch_first=True, seed=1),
                                  lambda: nn.RNN(6, 40, seed=2)] +
                         [lambda c=c: make_layer(SPECS[c], 6, 40, seed=3) for c in CELLS],
                         ids=["lstm", "gru", "rnn"] + [c + "_registry" for c in CELLS])
def test_shared_recurrent_layer(make):
    count = N_THREADS * CALLS
    xs = _inputs((7, 5, 6), count, 3)
    layer = make()
    d = layer.num_directions * layer.hidden_size
    dys = _inputs((7, 5, d), count, 4)

    def call(i):
        y, _ = layer(xs[i])
        dx, _ = layer.backward(dys[i])
        return y, dx

    expect = {i: call(i) for i in range(count)}          # one thread, one call at a time
    serial_grads = [p.grad.copy() for p in layer.parameters()]
    layer.zero_grad()
    got = _hammer(call, count)
    for i in range(count):
        for a, b in zip(got[i], expect[i]):
            np.testing.assert_array_equal(a, b)
    # every backward added its gradient exactly once (order differs: not bitwise; float32
    # rounding of a reordered sum scales with its largest terms, large for the LayerNorm
    # cells' input weights)
    for p, g in zip(layer.parameters(), serial_grads):
        np.testing.assert_allclose(p.grad, g, rtol=1e-4,
                                   atol=1e-5 * max(1.0, float(np.abs(g).max())))


def test_shared_cell_and_linear():
    count = N_THREADS * CALLS
    xs = _inputs((3, 6), count, 5)
    cell, lin = nn.GRUCell(6, 16, seed=0), nn.Linear(16, 4, seed=1)

    def call(i):
        h = cell(xs[i])
        y = lin(h)
        dh = lin.backward(np.ones_like(y))
        dx, _ = cell.backward(dh)
        return y, dx

    expect = {i: call(i) for i in range(count)}
    got = _hammer(call, count)
    for i in range(count):
        for a, b in zip(got[i], expect[i]):
            np.testing.assert_array_equal(a, b)


def test_shared_eval_steps():
    count = N_THREADS * CALLS
    xs = _inputs((2, 6), count, 6)
    layer = nn.LSTM(6, 24, num_layers=2, seed=2).eval()

    def call(i):
        return layer(xs[i][None])[0]

    expect = {i: call(i) for i in range(count)}
    got = _hammer(call, count)
    for i in range(count):
        np.testing.assert_array_equal(got[i], expect[i])


def test_shared_sequential_model():
    """Embedding, Dropout, LSTM, Last and Linear in one model, shared by the threads."""
    count = N_THREADS * CALLS
    rng = np.random.default_rng(7)
    tokens = [rng.integers(0, 30, (6, 4)) for _ in range(count)]
    lengths = [rng.integers(0, 7, 4) for _ in range(count)]
    model = nn.Sequential(nn.Embedding(30, 8, seed=0), nn.Dropout(0.0),
                          nn.LSTM(8, 16, seed=1), nn.Last(), nn.Linear(16, 3, seed=2))

    def call(i):
        y = model(tokens[i], lengths=lengths[i])
        model.backward(np.ones_like(y))
        return y

    expect = {i: call(i) for i in range(count)}
    serial = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    got = _hammer(call, count)
    for i in range(count):
        np.testing.assert_array_equal(got[i], expect[i])
    for p, g in zip(model.parameters(), serial):
        np.testing.assert_allclose(p.grad, g, rtol=1e-4, atol=1e-5)
