"""Data-parallel scaling over MPI (issue 14): 2 ranks x 1 thread against 1 rank x 1 thread.

    python -m benchmarks.distributed [--configs char-LM large] [--rounds 3] [--steps 6]
        [--nodes 2 4 8 16 32 64] [--link-gbs 1.17] [--link-latency-us 30]

Weak scaling, as data-parallel training is used: every rank keeps the config's batch B, so
the 2-rank job trains a global batch of 2B in what should be the 1-rank job's step time.
The model is a language model over a vocabulary of the config's input size I:
Embedding(I, I) -> LSTM(I, H) -> Linear(H, I), cross-entropy on every step, Adam, trained
through ``Trainer.fit`` (the real path: sharding, the per-step reduction of the loss, the
gradient buckets). A step is timed from one ``on_batch_end`` to the next, warm-up excluded.

Each job runs in its own processes (1 rank: plain ``python``; 2 ranks: ``mpiexec -n 2``;
and "2 x 1 rank": two plain processes at once, which share the machine as the 2 ranks do
but never communicate), every thread knob pinned to 1; the jobs alternate over the rounds
and the report gives the median over rounds of each job's median step. Reported per config:

- efficiency = t(1 rank) / t(2 ranks) (issue 14 asks >= 90%), split into what sharing the
  machine costs, t(1 rank) / t(2 x 1 rank), and what the distribution itself costs,
  t(2 x 1 rank) / t(2 ranks);
- the allreduce share: the median time the step waited for the gradient sum (what the
  backward did not hide) over the step, and the whole sum's duration over the step;
- the gradient bytes, the time of one unhidden sum of all of them (measured after training)
  and the bandwidth it implies, and the latency of a small collective.

Then the model for a cluster of N nodes, one rank per node, calibrated on those figures:

    step(N) = compute + max(0, ring(N) - window) + ceil(log2 N) * latency
    ring(N) = 2 (N - 1) / N * bytes / bandwidth + 2 (N - 1) * buckets * latency

``compute`` is the measured 1-rank step, ``window`` the measured part of the backward that
runs after the first bucket is ready (the time the sum can hide in), the last term the
per-step reduction of the loss (recursive doubling). It is evaluated twice: with the link
measured here (shared memory between the two ranks), and with a network link given by
``--link-gbs`` / ``--link-latency-us`` (default: 10 Gb Ethernet's ~1.17 GB/s and 30 us).
The CPU model is printed with every figure.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from benchmarks.configs import SEED, Config, resolve_configs
from benchmarks.env import child_env, snapshot_source_tree

DEFAULT_NODES = (2, 4, 8, 16, 32, 64)
TEN_GBE_GBS = 1.17       # 10 Gb/s Ethernet's payload rate, GB/s
TEN_GBE_LATENCY_US = 30.0
EFFICIENCY_TARGET = 0.90
WARMUP_STEPS = 2         # steps left out of the timing: packing, first touch, bucket set-up


# ---------------------------------------------------------------- worker (one rank)
def _worker(config: str, steps: int, distributed: bool) -> dict:
    import numpy as np

    import rnnkit
    from rnnkit import distributed as dist
    from rnnkit import losses, nn, optim
    from rnnkit.train import Callback, Trainer

    cfg = resolve_configs([config])[0]
    if distributed:
        dist.init()
    rnnkit.set_num_threads(1)
    B, T, V, H = cfg.batch, cfg.steps, cfg.input_size, cfg.hidden_size
    world = dist.world_size()
    n = B * world * (steps + WARMUP_STEPS)
    rng = np.random.default_rng(SEED)
    x = rng.integers(0, V, (n, T))
    y = rng.integers(0, V, (n, T))
    model = nn.Sequential(nn.Embedding(V, V, seed=1), nn.LSTM(V, H, batch_first=True, seed=2),
                          nn.Linear(H, V, seed=3))

    class Clock(Callback):
        def __init__(self) -> None:
            self.stamps: List[float] = []
            self.wait: List[float] = []
            self.comm: List[float] = []
            self.window: List[float] = []

        def on_batch_end(self, trainer, batch, logs) -> None:
            self.stamps.append(time.perf_counter())
            buckets = trainer.distributed.buckets if trainer.distributed else None
            if buckets is not None:
                self.wait.append(buckets.last_wait_s)
                self.comm.append(buckets.last_comm_s)
                self.window.append(buckets.last_overlap_s)

    clock = Clock()
    trainer = Trainer(model, losses.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-3),
                      distributed=distributed)
    trainer.fit(x, y, epochs=1, batch_size=B, shuffle=False, callbacks=[clock], verbose=0)
    keep = slice(WARMUP_STEPS, None)
    out = {"rank": dist.rank(), "world": world, "step_s": list(np.diff(clock.stamps)[WARMUP_STEPS - 1:]),
           "wait_s": clock.wait[keep], "comm_s": clock.comm[keep], "window_s": clock.window[keep],
           "cpu_model": rnnkit.build_info().get("cpu_model", "?"),
           "simd": rnnkit.build_info().get("simd", "?")}
    if trainer.distributed is not None and world > 1:
        dp = trainer.distributed
        buckets = dp.buckets
        sync = []
        for _ in range(10):          # the whole sum, nothing to hide it behind
            dp.any(False, "lining the ranks up")
            buckets.begin()
            t0 = time.perf_counter()
            buckets.finish()
            sync.append(time.perf_counter() - t0)
        tiny = []
        for _ in range(200):         # one small collective: the per-message latency
            t0 = time.perf_counter()
            dp.any(False, "timing a small collective")
            tiny.append(time.perf_counter() - t0)
        out.update(bytes=buckets.nbytes, buckets=len(buckets.buckets),
                   sync_s=statistics.median(sync), latency_s=statistics.median(tiny))
    return out


# ---------------------------------------------------------------- parent
# The jobs: one plain process; two plain processes at once, independent (what sharing the
# machine costs without any communication); two ranks under mpiexec.
JOBS = ("1 rank", "2 x 1 rank", "2 ranks")


def _run_job(cfg: Config, job: str, steps: int, snapshot: Optional[Path]) -> dict:
    env = child_env(1, snapshot)
    me = [sys.executable, "-m", "benchmarks.distributed", "--worker", cfg.name, str(steps)]
    cmds = {"1 rank": [me + ["plain"]], "2 x 1 rank": [me + ["plain"]] * 2,
            "2 ranks": [[_mpiexec(), "-n", "2"] + me + ["mpi"]]}[job]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for c in cmds]
    results = []
    for cmd, proc in zip(cmds, procs):
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed (rc {proc.returncode}):\n{err}")
        rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        if len(rows) != 1:
            raise RuntimeError(f"{' '.join(cmd)}: expected one JSON line, got:\n{out}")
        results.append(rows[0])   # under mpiexec rank 0's (the ranks step together)
    if len(results) > 1:          # independent twins: the slower one's steps
        return max(results, key=lambda r: statistics.median(r["step_s"]))
    return results[0]


def _mpiexec() -> str:
    beside = Path(sys.executable).with_name("mpiexec")
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if not found:
        raise SystemExit("mpiexec not found: pip install 'rnnkit[mpi]' (mpi4py + mpich)")
    return found


def cluster_step(n: int, compute: float, window: float, nbytes: float, buckets: int,
                 bandwidth: float, latency: float) -> float:
    """Modelled step time (s) of one rank per node on ``n`` nodes (see the module text)."""
    ring = 2 * (n - 1) / n * nbytes / bandwidth + 2 * (n - 1) * buckets * latency
    return compute + max(0.0, ring - window) + math.ceil(math.log2(n)) * latency


def _model_lines(compute: float, window: float, two: dict, nodes: Sequence[int],
                 link_gbs: float, link_latency_us: float) -> List[str]:
    nbytes, nb, lat = float(two["bytes"]), int(two["buckets"]), float(two["latency_s"])
    # Calibration: at N = 2 the ring sends bytes once each way, plus 2 messages per bucket.
    bw = nbytes / max(two["sync_s"] - 2 * nb * lat, 1e-9)
    links = [("measured link", bw, lat),
             (f"{link_gbs:g} GB/s, {link_latency_us:g} us", link_gbs * 1e9,
              link_latency_us * 1e-6)]
    head = "  nodes " + "".join(f"| {name:>26} " for name, _, _ in links)
    lines = [f"  model: compute {compute * 1e3:.1f} ms, hiding window {window * 1e3:.1f} ms, "
             f"{nbytes / 1e6:.1f} MB in {nb} bucket(s); measured link {bw / 1e9:.2f} GB/s, "
             f"{lat * 1e6:.0f} us latency",
             head, "  " + "-" * (len(head) - 2)]
    for n in nodes:
        cells = []
        for _, b, la in links:
            t = cluster_step(n, compute, window, nbytes, nb, b, la)
            cells.append(f"| {t * 1e3:10.1f} ms {compute / t:10.0%}   ")
        lines.append(f"  {n:5d} " + "".join(cells))
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="+", default=["char-LM", "large"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per job (after warm-up)")
    ap.add_argument("--nodes", nargs="+", type=int, default=list(DEFAULT_NODES))
    ap.add_argument("--link-gbs", type=float, default=TEN_GBE_GBS,
                    help="network bandwidth (GB/s) for the second cluster model")
    ap.add_argument("--link-latency-us", type=float, default=TEN_GBE_LATENCY_US)
    ap.add_argument("--json", help="also write the raw figures to this file")
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        config, steps, mode = args.worker
        out = _worker(config, int(steps), mode == "mpi")
        if out.pop("rank") == 0:       # one line: the ranks' outputs would interleave
            print(json.dumps(out), flush=True)
        return 0
    if args.rounds < 1 or args.steps < 1:
        ap.error("--rounds and --steps must be >= 1")
    if any(n < 2 for n in args.nodes):
        ap.error("--nodes must be >= 2")
    snapshot = snapshot_source_tree()
    results: Dict[str, dict] = {}
    try:
        for cfg in resolve_configs(args.configs):
            jobs: Dict[str, List[dict]] = {job: [] for job in JOBS}
            for r in range(args.rounds):
                for job, runs in jobs.items():
                    print(f"  {cfg.name}: round {r + 1}/{args.rounds}, {job} ...",
                          file=sys.stderr, flush=True)
                    runs.append(_run_job(cfg, job, args.steps, snapshot))
            results[cfg.name] = {"config": cfg.shape_text(), "jobs": jobs}
    finally:
        if snapshot is not None:
            shutil.rmtree(snapshot, ignore_errors=True)

    first = next(iter(results.values()))["jobs"]["1 rank"][0]
    print(f"{first['cpu_model']} ({first['simd']}), {os.cpu_count()} logical CPUs; LSTM LM "
          f"train step, float32, 1 thread per rank, per-rank batch B; median over "
          f"{args.rounds} round(s) of each job's median of {args.steps} steps")
    ok = True
    for name, res in results.items():
        one = [statistics.median(j["step_s"]) for j in res["jobs"]["1 rank"]]
        twins = [statistics.median(j["step_s"]) for j in res["jobs"]["2 x 1 rank"]]
        two_jobs = res["jobs"]["2 ranks"]
        two = [statistics.median(j["step_s"]) for j in two_jobs]
        t1, t2, t_twins = statistics.median(one), statistics.median(two), statistics.median(twins)
        wait = statistics.median(statistics.median(j["wait_s"]) for j in two_jobs)
        comm = statistics.median(statistics.median(j["comm_s"]) for j in two_jobs)
        window = statistics.median(statistics.median(j["window_s"]) for j in two_jobs)
        calib = {k: statistics.median(j[k] for j in two_jobs)
                 for k in ("bytes", "buckets", "sync_s", "latency_s")}
        eff = t1 / t2
        ok &= eff >= EFFICIENCY_TARGET
        print(f"\n{name} ({res['config']})")
        print(f"  1 rank : {t1 * 1e3:9.1f} ms/step  (rounds: "
              f"{', '.join(f'{v * 1e3:.1f}' for v in one)})")
        print(f"  2 ranks: {t2 * 1e3:9.1f} ms/step  (rounds: "
              f"{', '.join(f'{v * 1e3:.1f}' for v in two)})")
        print(f"  2 x 1 rank, independent: {t_twins * 1e3:9.1f} ms/step  (rounds: "
              f"{', '.join(f'{v * 1e3:.1f}' for v in twins)})")
        print(f"  efficiency t1/t2 = {eff:.1%}  (target >= {EFFICIENCY_TARGET:.0%}: "
              f"{'met' if eff >= EFFICIENCY_TARGET else 'NOT met'}); sharing the machine "
              f"alone: t1/t(2 x 1) = {t1 / t_twins:.1%}; the distributed part: "
              f"t(2 x 1)/t2 = {t_twins / t2:.1%}")
        print(f"  allreduce: waited {wait * 1e3:.2f} ms/step = {wait / t2:.1%} of the step "
              f"(the sum took {comm * 1e3:.1f} ms = {comm / t2:.1%}, the rest hidden behind "
              f"the backward); unhidden sum of {calib['bytes'] / 1e6:.1f} MB: "
              f"{calib['sync_s'] * 1e3:.1f} ms; small collective: "
              f"{calib['latency_s'] * 1e6:.0f} us")
        for line in _model_lines(t1, window, calib, args.nodes, args.link_gbs,
                                 args.link_latency_us):
            print(line)
        res["summary"] = {"t1_s": t1, "t2_s": t2, "t_twins_s": t_twins, "efficiency": eff, "wait_s": wait,
                          "comm_s": comm, "window_s": window, **calib}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
