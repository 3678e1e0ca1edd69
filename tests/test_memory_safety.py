"""Memory safety of the compiled entry points: what the engine refactor (issue 9) fixed.

- Every compiled entry point checks the shapes of the arrays it touches: a Parameter whose
  ``.data`` was replaced by a wrong-shaped array raises ValueError naming the parameter
  (before, Linear, eval cells and one-step layers read past the buffers).
- The training cache keeps its own copy of ``lengths``: changing the caller's array between
  forward and backward changes nothing (before, it corrupted the heap).
- Under an address-space limit a 2-thread train step and an eval step either succeed with the
  right answer or raise MemoryError, never abort or crash (before, a bad_alloc inside an OpenMP
  region aborted the interpreter), and after a MemoryError the next call is right (before, a
  failed Buffer resize left a dangling pointer and the next eval step segfaulted).
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import rnnkit
from rnnkit import nn

LAYERS = [(nn.LSTM, {}), (nn.GRU, {}), (nn.RNN, {"nonlinearity": "relu"})]
CELLS = [(nn.LSTMCell, {}), (nn.GRUCell, {}), (nn.RNNCell, {})]


def _state(layer_or_cell, shape, dtype=np.float32):
    n = len(layer_or_cell._spec.states)
    s = tuple(np.ones(shape, dtype) for _ in range(n))
    return s if n > 1 else s[0]


@pytest.mark.parametrize("cls, kw", LAYERS, ids=lambda c: getattr(c, "__name__", ""))
@pytest.mark.parametrize("mode", ["train", "eval_sequence", "eval_one_step"])
@pytest.mark.parametrize("param", ["weight_ih_l0", "weight_hh_l1", "bias_hh_l0"])
def test_wrong_shaped_layer_parameter_is_named(cls, kw, mode, param):
    layer = cls(5, 8, num_layers=2, **kw)
    if mode != "train":
        layer.eval()
    x = np.ones((1 if mode == "eval_one_step" else 4, 3, 5), np.float32)
    layer(x)                                      # packs (eval one step) or caches
    p = getattr(layer, param)
    p.data = np.ones(p.data.shape[:-1] + (p.data.shape[-1] + 3,), np.float32)
    with pytest.raises(ValueError, match=param):
        layer(x)


@pytest.mark.parametrize("cls, kw", CELLS, ids=lambda c: getattr(c, "__name__", ""))
@pytest.mark.parametrize("train", [True, False])
def test_wrong_shaped_cell_parameter_is_named(cls, kw, train):
    cell = cls(5, 8, **kw).train(train)
    x = np.ones((3, 5), np.float32)
    cell(x)
    cell.bias_ih.data = np.ones(5, np.float32)
    with pytest.raises(ValueError, match="bias_ih"):
        cell(x)


def test_wrong_shaped_linear_parameter_is_named():
    lin = nn.Linear(6, 4)
    x = np.ones((3, 6), np.float32)
    y = lin(x)
    lin.weight.data = np.ones((4, 2), np.float32)
    with pytest.raises(ValueError, match="weight"):
        lin.backward(np.ones_like(y))
    with pytest.raises(ValueError, match="weight"):
        lin(x)
    lin.weight.data = np.ones((4, 6), np.float32)
    lin.bias.data = np.ones(40, np.float32)
    with pytest.raises(ValueError, match="bias"):
        lin(x)


def test_compiled_entry_points_check_every_array():
    """Called directly (no rnnkit.ops in front), the bindings still refuse bad shapes."""
    core = rnnkit._core
    x = np.ones((3, 2, 5), np.float32)
    w_ih, w_hh = np.ones((32, 5), np.float32), np.ones((32, 8), np.float32)
    with pytest.raises(ValueError, match=r"w_ih has shape \(32, 4\), expected \(32, 5\)"):
        core.lstm_forward(x, (None, None), w_ih[:, :4].copy(), w_hh, None, None, None, False,
                          True)
    with pytest.raises(ValueError, match=r"state0\[c\] has shape"):
        core.lstm_forward(x, (None, np.ones((2, 7), np.float32)), w_ih, w_hh, None, None, None,
                          False, True)
    with pytest.raises(ValueError, match="lengths must lie in"):
        core.lstm_forward(x, (None, None), w_ih, w_hh, None, None, np.array([1, 4]), False,
                          True)
    with pytest.raises(TypeError, match="dtype"):
        core.lstm_forward(x, (None, None), w_ih.astype(np.float64), w_hh, None, None, None,
                          False, True)
    y, finals, saved = core.lstm_forward(x, (None, None), w_ih, w_hh, None, None, None, False,
                                         True)
    dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    with pytest.raises(ValueError, match=r"saved\[cells\] has shape"):
        core.lstm_backward(y, (None, None), x, (None, None), w_ih, w_hh, y,
                           (saved[0], saved[1][:2].copy()), None, False, dw_ih, dw_hh, None,
                           None)
    with pytest.raises(ValueError, match="dw_hh"):
        core.lstm_backward(y, (None, None), x, (None, None), w_ih, w_hh, y, saved, None, False,
                           dw_ih, dw_hh[:8].copy(), None, None)
    with pytest.raises(ValueError, match=r"x has shape \(1, 4\)"):
        core.lstm_step(w_ih, w_hh, None, None).step(np.ones((1, 4), np.float32),
                                                    (np.ones((1, 8), np.float32),) * 2)
    with pytest.raises(ValueError, match=r"weight has shape \(4, 6\), expected \(4, 2\)"):
        core.linear_forward(np.ones((3, 2), np.float32), np.ones((4, 6), np.float32), None)


@pytest.mark.parametrize("cls, kw", LAYERS, ids=lambda c: getattr(c, "__name__", ""))
def test_mutating_lengths_between_forward_and_backward_changes_nothing(cls, kw):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4, 5)).astype(np.float32)
    dy = rng.standard_normal((6, 4, 16)).astype(np.float32)

    def run(mutate):
        layer = cls(5, 8, bidirectional=True, seed=1, **kw)
        lengths = np.array([6, 2, 0, 5])
        y, _ = layer(x, lengths=lengths)
        if mutate:
            lengths[:] = [10**9, -7, 10**6, 3]
        dx, _ = layer.backward(dy)
        return [y, dx] + [p.grad.copy() for p in layer.parameters()]

    for a, b in zip(run(False), run(True)):
        np.testing.assert_array_equal(a, b)


def test_mutating_lengths_after_ops_forward():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3, 4))
    w_ih, w_hh = rng.standard_normal((12, 4)), rng.standard_normal((12, 4))
    lengths = np.array([5, 1, 3])
    _, _, cache = rnnkit.ops.gru_forward(x, None, w_ih, w_hh, None, None, lengths=lengths)
    expect = rnnkit.ops.gru_backward(cache, np.ones((5, 3, 4)))
    _, _, cache = rnnkit.ops.gru_forward(x, None, w_ih, w_hh, None, None, lengths=lengths)
    lengths[:] = 10**9
    got = rnnkit.ops.gru_backward(cache, np.ones((5, 3, 4)))
    for a, b in zip(got, expect):
        if a is not None:
            np.testing.assert_array_equal(a, b)


# A child process, so that an abort or a crash fails the test instead of killing pytest. It
# computes reference results without a limit and warms the OpenMP pool (creating its threads
# needs memory too, and libgomp aborts if it cannot), then for a rising sweep of address-space
# limits above what the process uses runs a 2-thread LSTM train step and a large-batch eval
# cell step. Each must give the reference or raise MemoryError; after every failure, with the
# limit lifted, a small eval step and a train step must again give exactly the reference. The
# large eval step is never run before the sweep, so its per-thread product buffers first grow
# inside the sweep, inside the parallel region, under the limit. glibc is told to map every
# block over 64 KiB afresh, so each large allocation meets the limit (instead of reusing heap
# that an earlier call freed).
_SWEEP = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import rnnkit
    from rnnkit import nn

    rnnkit.set_num_threads(2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 32, 96)).astype(np.float32)
    dy = rng.standard_normal((12, 32, 256)).astype(np.float32)
    xs = rng.standard_normal((4096, 96)).astype(np.float32)
    hs = rng.standard_normal((4096, 256)).astype(np.float32)
    layer = nn.LSTM(96, 256, seed=1)
    cell = nn.LSTMCell(96, 256, seed=2)

    def train_step():
        for p in layer.parameters():
            p.grad[...] = 0
        y, _ = layer(x)
        dx, _ = layer.backward(dy)
        return [y, dx] + [p.grad.copy() for p in layer.parameters()]

    def eval_step(b):
        return list(cell(xs[:b], (hs[:b], hs[:b])))

    def same(a, b):
        return all(np.array_equal(u, v) for u, v in zip(a, b))

    ref_big = eval_step(4096)              # training mode: the sequence kernel, T = 1
    cell.eval()
    ref_train, ref_small = train_step(), eval_step(3)
    train_step()                           # warm the OpenMP pool
    first_big = None
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)

    def vm_bytes():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    base = vm_bytes()
    outcomes = {"ok": 0, "MemoryError": 0}
    for extra_kb in list(range(0, 48 * 1024, 1536)) + list(range(48 * 1024, 160 * 1024, 16384)):
        for what in ("eval", "train"):
            resource.setrlimit(resource.RLIMIT_AS, (base + extra_kb * 1024, hard))
            failed = False
            try:
                got = train_step() if what == "train" else eval_step(4096)
            except MemoryError:
                failed = True
            finally:
                resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
            if failed:
                outcomes["MemoryError"] += 1
                assert same(eval_step(3), ref_small), "eval step wrong after a MemoryError"
                assert same(train_step(), ref_train), "train step wrong after a MemoryError"
            elif what == "train":
                outcomes["ok"] += 1
                assert same(got, ref_train), "train step wrong"
            else:
                outcomes["ok"] += 1
                for a, b in zip(got, ref_big):
                    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
                if first_big is None:
                    first_big = got
                assert same(got, first_big), "eval step not deterministic"
    print("OUTCOMES", outcomes["ok"], outcomes["MemoryError"])
""")
_SWEEP_ENV = {"OMP_NUM_THREADS": "2", "MALLOC_MMAP_THRESHOLD_": "65536",
              "MALLOC_TRIM_THRESHOLD_": "0"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS sweep uses /proc")
@pytest.mark.skipif(bool(os.environ.get("RNNKIT_SANITIZE")),
                    reason="AddressSanitizer reserves terabytes: RLIMIT_AS cannot apply")
def test_address_space_limits_give_only_success_or_memory_error():
    env = dict(os.environ, **_SWEEP_ENV)
    r = subprocess.run([sys.executable, "-c", _SWEEP], capture_output=True, text=True,
                       timeout=600, env=env)
    assert r.returncode == 0, (f"child exited with {r.returncode} (negative: killed by signal)"
                               f"\nstdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}")
    ok, failed = map(int, r.stdout.split("OUTCOMES")[1].split())
    assert failed > 0, "no limit was tight enough to fail: the sweep tested nothing"
    assert ok > 0, "no limit was loose enough to succeed: the sweep tested nothing"
