"""rnnkit.distributed: data-parallel training over MPI.

The reference for every multi-rank run is a plain single process (no MPI at all) training the
same model with the N-times batch: the contract of ``Trainer(distributed=True)``. The runs
happen in ``mpi_worker.py`` under ``mpiexec`` (tests marked ``needs_mpi``; CI installs the
mpi extra). The rest runs in this process without MPI.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from _run_helpers import ROOT, child_env
from conftest import mpiexec
from rnnkit import distributed, nn
from rnnkit.distributed.buckets import GradientBuckets
from rnnkit.distributed.data_parallel import DataParallel

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpi_worker.py")


def _env():
    env = child_env()
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", RNNKIT_NUM_THREADS="1")
    return env


def _launch(ranks, scenario, out, opts, timeout=120):
    """Run the worker: under ``mpiexec -n ranks``, or as one plain process for ranks=0."""
    cmd = [sys.executable, WORKER, scenario, str(out), json.dumps(opts)]
    if ranks:
        cmd = [mpiexec(), "-n", str(ranks)] + cmd
    else:
        cmd[-1] = json.dumps(dict(opts, distributed=False))
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())
    return proc, time.monotonic() - start


def _results(out, ranks):
    return [dict(np.load(os.path.join(out, f"rank{r}.npz"))) for r in range(max(ranks, 1))]


def _train(tmp_path, name, ranks, opts):
    out = tmp_path / name
    out.mkdir()
    proc, _ = _launch(ranks, "train", out, opts)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return _results(out, ranks)


def _params(result):
    return {k: v for k, v in result.items()
            if not k.startswith("history_") and k != "bucket_timings" and v.dtype.kind == "f"}


def _rel_err(a, b):
    """||a - b|| / ||b|| over all parameters together. (Per tensor, float32 rounding that
    Adam's normalised steps amplify reaches about 1.5e-6 in the input weights after 8 steps,
    with every other tensor near 1e-7: the order of the batch sum differs, nothing else; in
    float64 the same comparison gives about 1e-15.)"""
    assert a.keys() == b.keys()
    diff = np.concatenate([(a[k] - b[k]).ravel() for k in b])
    ref = np.concatenate([b[k].ravel() for k in b])
    return float(np.linalg.norm(diff) / np.linalg.norm(ref))


# ---------------------------------------------------------------------- without MPI
def test_import_and_single_process_need_no_mpi4py(tmp_path):
    # A process where mpi4py cannot be imported: rnnkit and Trainer work, and asking for
    # MPI says what to install.
    code = textwrap.dedent("""
        import sys
        sys.modules["mpi4py"] = None          # import mpi4py now raises ImportError
        import numpy as np, rnnkit
        from rnnkit import distributed, nn, losses, optim
        from rnnkit.train import Trainer
        assert distributed.rank() == 0 and distributed.world_size() == 1
        assert distributed.is_main() and not distributed.is_initialized()
        m = nn.Sequential(nn.Linear(3, 2))
        t = Trainer(m, losses.MSELoss(), optim.SGD(m.parameters(), 0.1))
        t.fit(np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32), epochs=1,
              batch_size=2, verbose=0)
        for attempt in (distributed.init, lambda: Trainer(m, losses.MSELoss(),
                        optim.SGD(m.parameters(), 0.1), distributed=True)):
            try:
                attempt()
            except ImportError as e:
                assert "rnnkit[mpi]" in str(e) and "mpiexec" in str(e), e
            else:
                raise AssertionError("no ImportError")
        print("ok")
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


def test_trainer_rejects_a_bad_distributed_argument():
    from rnnkit import losses, optim
    from rnnkit.train import Trainer
    m = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(TypeError, match="distributed must be"):
        Trainer(m, losses.MSELoss(), optim.SGD(m.parameters(), 0.1), distributed="yes")


@pytest.mark.parametrize("world", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("n", [0, 1, 2, 5, 24, 25, 31])
def test_shards_partition_each_global_batch(world, n):
    idx = np.arange(100, 100 + n)
    parts = []
    for r in range(world):
        dp = DataParallel.__new__(DataParallel)    # the split alone: no communicator
        dp.rank, dp.world = r, world
        part = dp.shard(idx)
        start, stop = dp.shard_range(n)
        assert np.array_equal(part, idx[start:stop])
        parts.append(part)
    assert np.array_equal(np.concatenate(parts), idx)        # in order, each once
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_sequential_layer_backward_hooks_run_in_backward_order():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(3, 4, seed=0), nn.Linear(4, 5, seed=1),
                          nn.Linear(5, 2, seed=2))
    seen = []
    handle = model.register_layer_backward_hook(
        lambda i, layer: seen.append((i, layer is model[i],
                                      float(np.abs(layer.weight.grad).sum()) > 0)))
    model(rng.standard_normal((6, 3)).astype(np.float32))
    model.backward(np.ones((6, 2), np.float32))
    # Each hook runs once its layer's gradient is complete, last layer first.
    assert seen == [(2, True, True), (1, True, True), (0, True, True)]
    handle.remove()
    model(rng.standard_normal((6, 3)).astype(np.float32))
    model.backward(np.ones((6, 2), np.float32))
    assert len(seen) == 3
    with pytest.raises(TypeError, match="callable"):
        model.register_layer_backward_hook(3)


def test_gradient_buckets_lay_out_the_gradients_as_views():
    shared = nn.Linear(4, 4, seed=0)
    frozen = nn.Linear(4, 4, seed=1)
    frozen.weight.requires_grad = False
    model = nn.Sequential(nn.Embedding(9, 4, seed=2), shared, frozen, shared,
                          nn.Linear(4, 3, seed=3, dtype="float64"))
    buckets = GradientBuckets(model, bucket_bytes=1)   # one bucket per layer at least
    try:
        covered = [id(p) for b in buckets.buckets for p in b.params]
        trainable = [p for p in model.parameters() if p.requires_grad]
        # Every trainable parameter exactly once; the frozen weight nowhere.
        assert sorted(covered) == sorted(id(p) for p in trainable)
        assert id(frozen.weight) not in covered
        # Backward order: the last layer's bucket comes first; the shared layer (used twice)
        # waits for the end of the backward.
        first = buckets.buckets[0]
        assert [id(p) for p in first.params] == [id(p) for p in model[4].parameters()]
        late = [b for b in buckets.buckets if -1 in b.layers]
        assert {id(p) for b in late for p in b.params} == {id(p) for p in shared.parameters()}
        for b in buckets.buckets:
            assert len({p.data.dtype for p in b.params}) == 1
            assert b.buffer.dtype == b.params[0].data.dtype
        # grad is a view into the bucket's buffer, and a replaced grad is put back into it.
        buckets.begin()
        for b in buckets.buckets:
            for p, view in zip(b.params, b.views):
                assert p.grad is view and np.shares_memory(view, b.buffer)
        p = model[4].weight
        p.grad = np.full_like(p.data, 2.0)
        buckets.begin()
        assert np.shares_memory(p.grad, buckets.buckets[0].buffer) and np.all(p.grad == 2.0)
    finally:
        buckets.close()


def test_backward_accumulates_straight_into_the_bucket_buffers():
    model = nn.Sequential(nn.Embedding(9, 4, seed=2), nn.LSTM(4, 5, seed=0),
                          nn.Linear(5, 3, seed=3))
    buckets = GradientBuckets(model)
    try:
        buckets.begin()
        x = np.random.default_rng(0).integers(0, 9, (6, 2))
        y = model(x)
        model.backward(np.ones_like(y))
        buckets.finish()
        for b in buckets.buckets:
            for p, view in zip(b.params, b.views):
                assert p.grad is view
        total = sum(float(np.abs(b.buffer).sum()) for b in buckets.buckets)
        assert total == pytest.approx(sum(float(np.abs(p.grad).sum())
                                          for p in model.parameters())) and total > 0
    finally:
        buckets.close()


# ---------------------------------------------------------------------- under mpiexec
CASES = {
    # name: (ranks, options, relative tolerance against the single process)
    "lstm-f32-adam-lengths-ignored": (2, {"cell": "lstm", "lengths": 1, "ignore": 1}, 1e-6),
    "gru-f64-sgd": (2, {"cell": "gru", "dtype": "float64", "optimizer": "sgd"}, 1e-12),
    "rnn-f32-tbptt": (2, {"cell": "rnn", "tbptt": 5, "optimizer": "sgd"}, 1e-6),
    # 3 ranks: padded buckets, and a last global batch of one sample (two ranks get none).
    "lstm-f32-3-ranks-short-last-batch": (3, {"n": 49, "lengths": 1}, 1e-6),
    # Different initial parameters on each rank: rank 0's are broadcast.
    "gru-f32-rank-dependent-init": (2, {"cell": "gru", "rank_seed": 1}, 1e-6),
    # A summed loss: no per-rank weighting, and the reported loss is the global batch's sum.
    "gru-f32-sum-loss-short-last-batch": (3, {"cell": "gru", "reduction": "sum", "n": 49,
                                              "ignore": 1}, 1e-6),
    # A bucket per layer, reached at random moments on each rank: the ranks issue one
    # bucket's allgather and the next one's reduce-scatter in different orders (a shared
    # communicator would pair their messages wrongly).
    "lstm-f32-bucket-per-layer-jitter": (2, {"bucket_bytes": 1, "jitter": 1, "epochs": 3},
                                         1e-6),
    "gru-f64-3-ranks-bucket-per-layer-jitter": (
        3, {"cell": "gru", "dtype": "float64", "bucket_bytes": 1, "jitter": 1}, 1e-12),
}


@pytest.mark.needs_mpi
@pytest.mark.parametrize("case", list(CASES))
def test_ranks_train_as_one_process_with_the_n_times_batch(tmp_path, case):
    ranks, opts, tol = CASES[case]
    opts = dict(opts, batch=8)
    ranked = _train(tmp_path, "mpi", ranks, opts)
    single = _train(tmp_path, "single", 0, dict(opts, batch=8 * ranks))[0]
    # Every rank holds bitwise the same parameters and History.
    for other in ranked[1:]:
        assert other.keys() == ranked[0].keys()
        for k in ranked[0].keys() - {"bucket_timings"}:   # timings differ, all else not
            assert np.array_equal(other[k], ranked[0][k]), k
    got = ranked[0]
    # The last step's gradient sum was timed: it took some time, and finish() waited for
    # at most all of it, plus the time the main thread takes to wake once the progress
    # thread says it is done (a scheduler slice or two when 3 ranks share 2 cores).
    wait, comm, overlap = (float(v) for v in got["bucket_timings"])
    assert comm > 0 and 0 <= wait <= comm + 0.02 and overlap >= 0
    assert int(got["global_step"]) == int(single["global_step"]) > 0
    assert _rel_err(_params(got), _params(single)) <= tol
    for k in (k for k in single if k.startswith("history_")):
        np.testing.assert_allclose(got[k], single[k], rtol=max(tol, 1e-9) * 10)
    # And training moved the parameters (the comparison is not of two untouched inits).
    init = _train(tmp_path, "init", 0, dict(opts, epochs=0))[0]
    assert _rel_err(_params(single), _params(init)) > 1e-3


@pytest.mark.needs_mpi
def test_the_same_run_repeats_bitwise(tmp_path):
    opts = {"cell": "lstm", "lengths": 1, "ignore": 1}
    a = _train(tmp_path, "a", 2, opts)[0]
    b = _train(tmp_path, "b", 2, opts)[0]
    for k in a.keys() - {"bucket_timings"}:
        assert np.array_equal(a[k], b[k]), k


@pytest.mark.needs_mpi
def test_resume_a_two_rank_checkpoint_in_one_process(tmp_path):
    ckpt = str(tmp_path / "ckpt.rnnkit")
    first = _train(tmp_path, "first", 2, {"epochs": 1, "checkpoint": ckpt})
    assert [int(r["checkpoints_written"]) for r in first] == [1, 0]   # rank 0 only
    resumed = _train(tmp_path, "resumed", 0, {"epochs": 2, "batch": 16, "resume": ckpt})[0]
    straight = _train(tmp_path, "straight", 0, {"epochs": 2, "batch": 16})[0]
    assert int(resumed["global_step"]) == int(straight["global_step"])
    assert _rel_err(_params(resumed), _params(straight)) <= 1e-6


@pytest.mark.needs_mpi
def test_a_stop_on_one_rank_stops_all(tmp_path):
    ranked = _train(tmp_path, "stop", 2, {"epochs": 4, "stop_rank": 1, "stop_epoch": 1})
    assert [len(r["history_loss"]) for r in ranked] == [2, 2]
    assert str(ranked[0]["stop_reason"]) == "a callback on another rank stopped training"
    assert str(ranked[1]["stop_reason"]) == "stopped by rank 1"


@pytest.mark.needs_mpi
@pytest.mark.parametrize("scenario, message", [
    ("kill", "signal 9"),
    ("raise", "rank 1 fails on purpose"),
    ("stall", "did not complete within 5 s"),
])
def test_a_failing_rank_ends_the_job_in_bounded_time(tmp_path, scenario, message):
    proc, seconds = _launch(2, scenario, tmp_path, {"timeout": 5}, timeout=90)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert seconds < 60
    assert not list(tmp_path.glob("rank*.npz"))   # nobody finished


@pytest.mark.needs_mpi
def test_ctrl_c_on_the_launcher_stops_every_rank_at_the_same_step(tmp_path):
    proc = subprocess.Popen([mpiexec(), "-n", "2", sys.executable, WORKER, "interrupt",
                             str(tmp_path), "{}"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=_env())
    try:
        assert "training" in proc.stdout.readline()
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    ranked = _results(tmp_path, 2)
    assert all("interrupted (Ctrl-C)" in str(r["stop_reason"]) for r in ranked)
    assert int(ranked[0]["global_step"]) == int(ranked[1]["global_step"]) > 0
    for k in _params(ranked[0]):
        assert np.array_equal(ranked[0][k], ranked[1][k])


@pytest.mark.needs_mpi
@pytest.mark.needs_data("shakespeare")
def test_char_lm_example_trains_over_two_ranks(tmp_path):
    proc = subprocess.run([mpiexec(), "-n", "2", sys.executable,
                           str(ROOT / "examples" / "char_lm.py"), "--quick", "--distributed",
                           "--threads", "1", "--out", str(tmp_path / "m.npz")],
                          capture_output=True, text=True, timeout=300, env=_env(),
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = [json.loads(line[len("RESULT "):]) for line in proc.stdout.splitlines()
               if line.startswith("RESULT ")]
    assert len(results) == 1                 # rank 0 alone reports, samples and saves
    assert results[0]["value"] < results[0]["baseline"] - 1.0, results
    assert (tmp_path / "m.npz").exists()


def test_public_names():
    assert set(distributed.__all__) >= {"init", "rank", "world_size", "is_main",
                                        "DistributedError"}
