"""Serving beside other busy threads (runtime/thread_chooser.h): the packed-step path times its
calls on all threads and on one, and picks; whatever it picks, and whatever else runs in the
process, every call returns the same bits. No timing is asserted (benchmarks measure speed)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import rnnkit
from rnnkit import nn


@pytest.fixture
def busy_pool():
    """Two Python threads multiplying matrices (numpy releases the GIL; its BLAS pool spins)
    for as long as the test runs."""
    stop = threading.Event()
    a = np.random.default_rng(0).standard_normal((192, 192))

    def spin():
        while not stop.is_set():
            a @ a

    threads = [threading.Thread(target=spin, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    yield
    stop.set()
    for t in threads:
        t.join()


@pytest.mark.parametrize("quantized", [None, "int8"])
def test_sequences_and_steps_are_exact_beside_a_busy_pool(busy_pool, quantized):
    before = rnnkit.get_num_threads()
    rnnkit.set_num_threads(2)
    try:
        layer = nn.LSTM(64, 160, seed=0).eval()   # 160 units: two slices, so a real choice
        cell = nn.GRUCell(64, 160, seed=1).eval()
        if quantized:
            layer, cell = rnnkit.quantize(layer, quantized), rnnkit.quantize(cell, quantized)
        rng = np.random.default_rng(1)
        x = rng.standard_normal((12, 1, 64)).astype(np.float32)
        xs = rng.standard_normal((1, 64)).astype(np.float32)
        rnnkit.set_num_threads(1)
        want_y, (want_h, want_c) = layer(x)
        want_step = cell(xs)
        rnnkit.set_num_threads(2)
        # More calls than two cycles of the chooser: its probes run both ways.
        for _ in range(150):
            y, (h, c) = layer(x)
            assert np.array_equal(y, want_y) and np.array_equal(h, want_h) and \
                np.array_equal(c, want_c)
            assert np.array_equal(cell(xs), want_step)
    finally:
        rnnkit.set_num_threads(before)
