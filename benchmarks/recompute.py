"""Long sequences: one LSTM train step with every activation stored vs recomputed.

    python -m benchmarks.recompute [--steps 10000 100000] [--batch 8] [--hidden 128]
                                   [--threads 1] [--repeats 3] [--out results/recompute.json]

Per sequence length T it runs, each in a fresh process of its own (a process's peak memory is a
high-water mark, and thread pools of two libraries distort each other):
  rnnkit            nn.LSTM, every step's activations stored (recompute=False)
  rnnkit-recompute  nn.LSTM(recompute=True): states kept every ⌈√T⌉ steps (rounded to the
                    gradient blocks), each segment recomputed in backward
  torch             torch.nn.LSTM (oneDNN), autograd storing everything
  torch-checkpoint  torch.nn.LSTM run segment by segment under torch.utils.checkpoint, the
                    same segment length as rnnkit's: torch's own way to trade time for memory
A train step is forward + backward of sum(y * dy) with a fixed random dy. Reported: the median
of --repeats steps (after one warm-up step) and the peak resident memory of one step above the
process's baseline, read as benchmarks.memory does (VmHWM after a clear_refs reset), which
includes the inputs' gradients and the outputs alive at the step's end. rnnkit's recomputed
gradients are checked bitwise against the stored ones in tests/test_recompute.py; here torch's
are checked against rnnkit's (max relative difference) so the peers are known to do the same
work.
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np

from benchmarks.env import REPO_ROOT, child_env, write_results
from benchmarks.memory import _reset_peak, _status_kb

IMPLS = ("rnnkit", "rnnkit-recompute", "torch", "torch-checkpoint")


def _inputs(T: int, B: int, I: int, H: int):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I), dtype=np.float32)
    dy = rng.standard_normal((T, B, H), dtype=np.float32)
    return x, dy


def _segment(T: int, B: int) -> int:
    from rnnkit.ops import checkpointed
    return checkpointed.segment_steps(checkpointed.auto_segment(T), B)


def _rnnkit_step(T: int, B: int, I: int, H: int, recompute: bool) -> Callable[[], Any]:
    import rnnkit
    layer = rnnkit.nn.LSTM(I, H, seed=0, recompute=recompute)
    x, dy = _inputs(T, B, I, H)

    def step():
        layer.zero_grad()
        y, _ = layer(x)
        dx, _ = layer.backward(dy)
        return dx, layer.weight_hh_l0.grad
    return step


def _torch_step(T: int, B: int, I: int, H: int, checkpoint: bool) -> Callable[[], Any]:
    import rnnkit
    import torch
    from torch.utils.checkpoint import checkpoint as torch_checkpoint
    ref = rnnkit.nn.LSTM(I, H, seed=0)
    layer = torch.nn.LSTM(I, H)
    layer.load_state_dict({k: torch.from_numpy(np.array(p.data)) for k, p in
                           ref.named_parameters()})
    x_np, dy_np = _inputs(T, B, I, H)
    x, dy = torch.from_numpy(x_np), torch.from_numpy(dy_np)
    seg = _segment(T, B)

    def run(xs, h, c):
        y, (h, c) = layer(xs, (h, c))
        return y, h, c

    def step():
        layer.zero_grad()
        xg = x.clone().requires_grad_(True)
        if checkpoint:
            h = torch.zeros(1, B, H)
            c = torch.zeros(1, B, H)
            ys = []
            for t0 in range(0, T, seg):
                y, h, c = torch_checkpoint(run, xg[t0:t0 + seg], h, c, use_reentrant=False)
                ys.append(y)
            y = torch.cat(ys)
        else:
            y, _ = layer(xg)
        y.backward(dy)
        return xg.grad.numpy(), layer.weight_hh_l0.grad.numpy()
    return step


def measure(impl: str, T: int, B: int, I: int, H: int, threads: int,
            repeats: int) -> Dict[str, Any]:
    """In the child: the median step time and the peak-RSS delta of one step."""
    if impl.startswith("torch"):
        import torch
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        make = lambda t: _torch_step(t, B, I, H, impl == "torch-checkpoint")  # noqa: E731
    else:
        import rnnkit
        rnnkit.set_num_threads(threads)
        make = lambda t: _rnnkit_step(t, B, I, H, impl == "rnnkit-recompute")  # noqa: E731
    make(2 * _segment(64, B))()            # pages in the code paths, starts thread pools
    step = make(T)
    gc.collect()
    baseline = _status_kb("VmRSS")
    if baseline is None or not _reset_peak():
        raise RuntimeError("needs Linux's /proc/self/clear_refs to measure one step's peak")
    t0 = time.perf_counter()
    dx, dw = step()
    first = time.perf_counter() - t0
    peak = _status_kb("VmHWM")
    times = [first]
    for _ in range(repeats - 1):
        t0 = time.perf_counter()
        dx, dw = step()
        times.append(time.perf_counter() - t0)
    np.save(Path(sys.argv[-1]), np.concatenate([np.asarray(dx).ravel()[:4096],
                                                np.asarray(dw).ravel()]))
    return {"impl": impl, "T": T, "B": B, "I": I, "H": H, "threads": threads,
            "segment": _segment(T, B) if "recompute" in impl or "checkpoint" in impl else None,
            "median_s": statistics.median(times), "times_s": times,
            "peak_mib": max(0, peak - baseline) / 1024}


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[10000, 100000])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--input", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    ap.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results" /
                                        "recompute.json"))
    args = ap.parse_args(argv)
    import rnnkit
    info = rnnkit.build_info()
    print(f"# {info['cpu_model']}, {info['simd']}, {args.threads} thread(s); LSTM B={args.batch} "
          f"I={args.input} H={args.hidden}", flush=True)
    results = []
    scratch = tempfile.TemporaryDirectory(prefix="rnnkit-recompute-")  # the children's grads
    tmp = Path(scratch.name)
    for T in args.steps:
        grads = {}
        for impl in args.impls:
            out = tmp / f"{impl}-{T}.npy"
            cmd = [sys.executable, "-m", "benchmarks.recompute", "--child", impl, str(T),
                   str(args.batch), str(args.input), str(args.hidden), str(args.threads),
                   str(args.repeats), str(out)]
            proc = subprocess.run(cmd, cwd=REPO_ROOT, env=child_env(args.threads),
                                  capture_output=True, text=True, timeout=3600)
            if proc.returncode != 0:
                err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                print(f"T={T:7d} {impl:17s} failed: {err}", flush=True)
                results.append({"impl": impl, "T": T, "error": err})
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            grads[impl] = np.load(out)
            ref = grads.get("rnnkit")
            if ref is not None and impl != "rnnkit":
                scale = np.abs(ref).max() or 1.0
                r["max_diff_vs_rnnkit"] = float(np.abs(grads[impl] - ref).max() / scale)
            results.append(r)
            diff = r.get("max_diff_vs_rnnkit")
            print(f"T={T:7d} {impl:17s} {r['median_s'] * 1e3:10.1f} ms  "
                  f"peak +{r['peak_mib']:8.1f} MiB"
                  + (f"  segment {r['segment']}" if r["segment"] else "")
                  + ("" if diff is None else f"  grads vs rnnkit {diff:.1e}"), flush=True)
        by = {r["impl"]: r for r in results if r.get("T") == T and "median_s" in r}
        if "rnnkit" in by and "rnnkit-recompute" in by:
            a, b = by["rnnkit"], by["rnnkit-recompute"]
            print(f"T={T:7d} recompute/stored: time {b['median_s'] / a['median_s']:.2f}x, "
                  f"memory {b['peak_mib'] / max(a['peak_mib'], 1e-9):.2f}x", flush=True)
    scratch.cleanup()
    write_results(args.out, info, results)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        a = sys.argv[2:]
        print(json.dumps(measure(a[0], *map(int, a[1:7]))))
    else:
        sys.exit(main(sys.argv[1:]))
