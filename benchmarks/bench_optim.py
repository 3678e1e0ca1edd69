"""Optimiser step time: rnnkit.optim.Adam vs torch.optim.Adam on the same 10M-parameter model
(10 float32 tensors of 1M elements by default), in the same run, threads pinned.

    PYTHONPATH=python python3 benchmarks/bench_optim.py [--tensors 10] [--size 1000000]
        [--threads 1,2] [--repeats 20]

Before timing, both take three steps on the same gradients and must agree (rtol 1e-5).
Prints the CPU model, SIMD level, thread count and the median (and min) step time of ``repeats``
steps for each implementation, and the effective memory traffic of rnnkit's step (Adam reads
p, g, m, v and writes p, m, v: 28 bytes per float32 parameter).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import rnnkit
from rnnkit import optim


class Param:
    def __init__(self, data: np.ndarray, grad: np.ndarray) -> None:
        self.data = data
        self.grad = grad


def median_time(step, repeats: int, warmup: int = 3):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tensors", type=int, default=10)
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()

    import torch

    info = rnnkit.build_info()
    n_params = args.tensors * args.size
    print(f"CPU: {info['cpu_model']}  |  rnnkit SIMD: {info['simd']}  |  torch {torch.__version__}")
    print(f"Adam step, {args.tensors} float32 tensors x {args.size:,} = {n_params / 1e6:.1f}M "
          f"parameters, median (min) of {args.repeats} steps")

    rng = np.random.default_rng(0)
    init = [rng.standard_normal(args.size).astype(np.float32) for _ in range(args.tensors)]
    grads = [rng.standard_normal(args.size).astype(np.float32) for _ in range(args.tensors)]

    def rnnkit_setup():
        ps = [Param(x.copy(), g) for x, g in zip(init, grads)]
        return ps, optim.Adam(ps, lr=1e-3)

    def torch_setup(**kw):
        ps = [torch.nn.Parameter(torch.from_numpy(x.copy())) for x in init]
        for p, g in zip(ps, grads):
            p.grad = torch.from_numpy(g)
        return ps, torch.optim.Adam(ps, lr=1e-3, **kw)

    variants = {
        "torch (default: for-loop)": dict(foreach=False),
        "torch foreach=True": dict(foreach=True),
        "torch fused=True": dict(fused=True),
    }

    # Check first: three steps each on the same gradients must give the same parameters.
    ps, opt = rnnkit_setup()
    for _ in range(3):
        opt.step()
    for name, kw in variants.items():
        tps, topt = torch_setup(**kw)
        for _ in range(3):
            topt.step()
        for p, tp in zip(ps, tps):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-5, atol=1e-7,
                                       err_msg=name)
    del ps, opt, tps, topt

    bytes_per_step = 28.0 * n_params
    for threads in [int(t) for t in args.threads.split(",")]:
        rnnkit.set_num_threads(threads)
        torch.set_num_threads(threads)
        rows = []
        ps, opt = rnnkit_setup()
        med, best = median_time(opt.step, args.repeats)
        rows.append(("rnnkit.optim.Adam", med, best))
        del ps, opt
        for name, kw in variants.items():
            tps, topt = torch_setup(**kw)
            with torch.no_grad():
                med_t, best_t = median_time(topt.step, args.repeats)
            rows.append((name, med_t, best_t))
            del tps, topt
        base = rows[0][1]
        print(f"\nthreads = {threads} (rnnkit.set_num_threads, torch.set_num_threads)")
        print(f"  {'implementation':<28} {'median ms':>10} {'min ms':>8} {'vs rnnkit':>10}")
        for name, med, best in rows:
            print(f"  {name:<28} {med * 1e3:10.2f} {best * 1e3:8.2f} {med / base:9.2f}x")
        print(f"  rnnkit effective bandwidth: {bytes_per_step / base / 1e9:.1f} GB/s")


if __name__ == "__main__":
    main()
