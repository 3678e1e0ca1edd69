"""A/B timing of two builds of rnnkit on the benchmark grid, through the public API only.

    python -m benchmarks.ab --a /path/to/old --b python            # dirs holding rnnkit/
    python -m benchmarks.ab --a OLD --b NEW --configs tiny,medium --threads 1 --rounds 3

For a refactor that must not slow anything down: each (config, cell, mode, threads) runs in a
fresh process per build, A and B alternating for ``--rounds`` rounds (so drift on a shared
machine hits both alike), each process reporting the median of its repetitions; the table gives
the median over rounds per build and the ratio B/A (below 1: B is faster). Results of the two
builds are checked to agree before anything is timed. Modes: ``forward`` (eval-mode layer
forward), ``train`` (training-mode forward + backward into the parameters' gradients),
``varlen`` (train with lengths), ``step`` (an LSTMCell/GRUCell/RNNCell eval step, B = 1).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Dict, List

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import configs as C  # noqa: E402
from benchmarks.env import THREAD_VARIABLES  # noqa: E402

_CHILD = r"""
import json, sys, time
import numpy as np
import rnnkit
from rnnkit import nn
cfg, cell, mode, threads, target_s = json.loads(sys.argv[1])
rnnkit.set_num_threads(threads)
B, T, I, H = cfg
rng = np.random.default_rng(1234)
layers = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
cells = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn": nn.RNNCell}
if mode == "step":
    c = cells[cell](64, 256, seed=1).eval()
    x = rng.standard_normal((1, 64)).astype(np.float32)
    hx = None
    def run():
        global hx
        for _ in range(100):
            hx = c(x, hx)
        return hx if isinstance(hx, tuple) else (hx,)
else:
    layer = layers[cell](I, H, seed=1)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    lengths = rng.integers(T // 4, T + 1, B) if mode == "varlen" else None
    if mode == "forward":
        layer.eval()
    def run():
        if mode == "forward":
            return (layer(x, lengths=lengths)[0],)
        layer.zero_grad()
        y, _ = layer(x, lengths=lengths)
        dx, _ = layer.backward(dy)
        return (y, dx) + tuple(p.grad for p in layer.parameters())
out = run()
checksum = [float(np.asarray(a, np.float64).sum()) for a in out]
times = []
start = time.perf_counter()
while len(times) < 5 or (time.perf_counter() - start < target_s and len(times) < 200):
    t0 = time.perf_counter()
    run()
    times.append(time.perf_counter() - t0)
print(json.dumps({"median": sorted(times)[len(times) // 2], "reps": len(times),
                  "checksum": checksum}))
"""


def _run_child(path: str, case: list, threads: int) -> dict:
    env = dict(os.environ)
    for var in THREAD_VARIABLES:
        env[var] = str(threads)
    env["PYTHONPATH"] = os.path.abspath(path)
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(case)], env=env,
                         capture_output=True, text=True, check=True, timeout=600).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="directory holding build A's rnnkit package")
    ap.add_argument("--b", required=True, help="directory holding build B's rnnkit package")
    ap.add_argument("--configs", default=",".join(C.CONFIGS))
    ap.add_argument("--cells", default=",".join(C.CELLS))
    ap.add_argument("--modes", default="forward,train,varlen,step")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.5, help="timing budget per process")
    ap.add_argument("--json", default=None, help="write the rows here")
    args = ap.parse_args(argv)
    rows: List[Dict[str, object]] = []
    cfgs = C.resolve_configs(args.configs.split(","))
    modes = args.modes.split(",")
    print(f"A = {args.a}\nB = {args.b}\n{'case':42s} {'A ms':>9s} {'B ms':>9s} {'B/A':>6s}")
    for threads in (int(t) for t in args.threads.split(",")):
        for mode in modes:
            for cfg in ([C.STEP_CONFIG] if mode == "step" else cfgs):
                for cell in args.cells.split(","):
                    case = [[cfg.batch, cfg.steps, cfg.input_size, cfg.hidden_size], cell,
                            mode, threads, args.seconds]
                    got: Dict[str, List[float]] = {"a": [], "b": []}
                    sums = {}
                    for _ in range(args.rounds):
                        for key in ("a", "b"):
                            r = _run_child(getattr(args, key), case, threads)
                            got[key].append(r["median"])
                            sums[key] = r["checksum"]
                    for u, v in zip(sums["a"], sums["b"]):
                        if abs(u - v) > 1e-3 * max(1.0, abs(u)):
                            raise SystemExit(f"builds disagree on {case}: {sums}")
                    a, b = statistics.median(got["a"]), statistics.median(got["b"])
                    name = f"{cell} {mode} {cfg.name} {threads}thr"
                    print(f"{name:42s} {a * 1e3:9.3f} {b * 1e3:9.3f} {b / a:6.3f}", flush=True)
                    rows.append({"cell": cell, "mode": mode, "config": cfg.name,
                                 "threads": threads, "a_ms": a * 1e3, "b_ms": b * 1e3,
                                 "ratio": b / a})
    ratios = [r["ratio"] for r in rows]
    print(f"median B/A {statistics.median(ratios):.3f}, max {max(ratios):.3f} over {len(rows)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
