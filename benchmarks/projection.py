"""The projected LSTM (proj_size) train step, rnnkit against torch (issue 10: >= 1.5x).

    python -m benchmarks.projection [--configs medium char-LM] [--threads 1 2] [--rounds 3]

Train step = forward + backward of y.sum() through one nn.LSTM(I, H, proj_size=H // 4)
layer, float32, time-major, on the grid's (B, T, I, H). Each peer times itself in its own
process (their thread pools must not spin against each other); the processes alternate over
the rounds, and the report gives the median of the per-round medians and torch / rnnkit.
torch runs its projected LSTM outside oneDNN (oneDNN's LSTM primitive has no projection there).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

from benchmarks.configs import CONFIGS, resolve_configs


def _time(fn, seconds: float = 2.0, min_reps: int = 5) -> float:
    fn()  # warm-up: packing, first-touch of buffers, thread pool start
    samples, start = [], time.perf_counter()
    while len(samples) < min_reps or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def _worker(peer: str, config: str, threads: int) -> float:
    cfg = CONFIGS[config]
    B, T, I, H = cfg.batch, cfg.steps, cfg.input_size, cfg.hidden_size
    P = H // 4
    x = np.random.default_rng(1234).standard_normal((T, B, I)).astype(np.float32)
    if peer == "torch":
        import torch
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        m = torch.nn.LSTM(I, H, proj_size=P)
        xt = torch.from_numpy(x)

        def step():
            m.zero_grad()
            y, _ = m(xt)
            y.sum().backward()
    else:
        import rnnkit
        rnnkit.set_num_threads(threads)
        m = rnnkit.nn.LSTM(I, H, proj_size=P, seed=0)
        ones = np.ones((T, B, P), np.float32)

        def step():
            m.zero_grad()
            m(x)
            m.backward(ones)
    return _time(step)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="+", default=["medium", "char-LM"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        peer, config, threads = args.worker
        print(json.dumps(_worker(peer, config, int(threads))))
        return 0
    import rnnkit
    info = rnnkit.build_info()
    print(f"{info['cpu_model']} ({info['simd']}); float32; train step, proj_size = H/4; "
          "median of per-round medians")
    for cfg in resolve_configs(args.configs):
        for threads in args.threads:
            times = {"rnnkit": [], "torch": []}
            for _ in range(args.rounds):
                for peer in times:
                    out = subprocess.run([sys.executable, "-m", "benchmarks.projection",
                                          "--worker", peer, cfg.name, str(threads)],
                                         capture_output=True, text=True, check=True)
                    times[peer].append(json.loads(out.stdout.strip().splitlines()[-1]))
            r, t = (statistics.median(times[p]) * 1e3 for p in ("rnnkit", "torch"))
            print(f"{cfg.name:8} {cfg.shape_text()} P={cfg.hidden_size // 4} {threads} thr: "
                  f"rnnkit {r:8.2f} ms  torch {t:8.2f} ms  torch/rnnkit {t / r:5.2f}x",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
