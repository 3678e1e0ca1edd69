"""The measured fp32 FMA peak of one core: the ceiling the benchmarks report % of.

    python -m benchmarks.fma_peak [--seconds 0.2] [--rounds 5]

rnnkit's probe (``_core._kernel_fma_loop``, cpp/kernels/fma_peak_*.cpp) runs independent
multiply-adds on registers only, with no loads or stores, at the vector width of each SIMD
level this CPU and build can run. It runs on the calling thread, with the GIL released, so it
measures one core. The figure is the median over rounds of flops / seconds. On a shared machine
that figure is a lower bound: a neighbour's load only lowers it. numpy's SGEMM rate is not the
peak (on AMD, OpenBLAS uses AVX2 even where AVX-512 exists): see benchmarks/sgemm.py.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

if __package__ in (None, ""):  # run as a script: python benchmarks/fma_peak.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rnnkit  # noqa: E402
from rnnkit import _core  # noqa: E402


def fma_peak_gflops(level: Optional[str] = None, seconds: float = 0.2,
                    rounds: int = 5) -> float:
    """One core's fp32 FMA rate in GFLOP/s at ``level`` (default: the level rnnkit uses)."""
    level = level or rnnkit.build_info()["simd"]
    _core._kernel_fma_loop(level, 100_000)               # warm up: clocks, page-in
    iterations = 1_000_000
    while True:                                           # size one round to ~seconds
        t = time.perf_counter()
        _core._kernel_fma_loop(level, iterations)
        if time.perf_counter() - t >= seconds / 4:
            break
        iterations *= 4
    rates = []
    for _ in range(rounds):
        t = time.perf_counter()
        flops, _sink = _core._kernel_fma_loop(level, iterations)
        rates.append(flops / (time.perf_counter() - t) / 1e9)
    return statistics.median(rates)


def peaks(seconds: float = 0.2, rounds: int = 5) -> Dict[str, float]:
    """{SIMD level: GFLOP/s} for every level this CPU and build can run."""
    return {level: fma_peak_gflops(level, seconds, rounds)
            for level in rnnkit.build_info()["simd_available"]}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.2, help="length of one round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    info = rnnkit.build_info()
    print(f"{info['cpu_model']}, rnnkit uses {info['simd']}; one core, fp32 FMA, median of "
          f"{args.rounds} rounds:")
    for level, rate in peaks(args.seconds, args.rounds).items():
        print(f"  {level:8} {rate:7.1f} GFLOP/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
