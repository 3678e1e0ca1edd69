"""numpy's float32 matmul rate (the machine's practical GEMM ceiling) and the mat-vec baseline.

numpy's BLAS thread count is fixed when numpy loads, from OMP_NUM_THREADS /
OPENBLAS_NUM_THREADS / MKL_NUM_THREADS, which the worker's parent sets (see env.py);
threadpoolctl, when installed, confirms it.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, Optional

import numpy as np

from benchmarks.problems import Arrays, StepProblem


def blas_info() -> Optional[list]:
    """threadpoolctl's view of the loaded BLAS/OpenMP pools, or None if it is not installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [{k: d.get(k) for k in ("internal_api", "num_threads", "version", "filepath")}
            for d in threadpool_info()]


def matmul_rate(n: int, reps: int, seed: int = 0) -> Dict[str, float]:
    """GFLOP/s of an n x n x n float32 product (2·n³ FLOPs), median and best of ``reps``.

    The output is preallocated so the rate is the product's, not the allocator's; one
    untimed product first lets the BLAS start its threads and fault in the buffers.
    """
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=c)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - t0)
    work = 2.0 * n ** 3 / 1e9
    return {"n": n, "reps": reps, "times_s": times,
            "gflops_median": work / statistics.median(times), "gflops_best": work / min(times)}


def matvec(p: StepProblem) -> Callable[[], Arrays]:
    """The bare arithmetic of one cell step: (G·H, I+H) weights times the (I+H,) vector [x, h].

    Gate math and biases are left out: this is the floor a cell step cannot beat, one pass
    over the weights.
    """
    w = np.ascontiguousarray(np.concatenate([p.w_ih, p.w_hh], axis=1))
    v = np.ascontiguousarray(np.concatenate([p.x[0], p.h[0]]))

    def run() -> Arrays:
        return {"gates": w @ v}
    return run
