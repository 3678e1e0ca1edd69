"""rnnkit benchmark suite: one command for the whole grid of issue 3.

    python -m benchmarks.run                  # full grid, 1 and 2 threads (~10-15 min, 2 cores)
    python -m benchmarks.run --quick          # tiny + medium, short budgets (< 1 min)
    python -m benchmarks.run --threads 1 --configs large --cells lstm --modes train,forward
    python -m benchmarks.run --json out.json --plot out.png

Each thread count runs in its own subprocess (benchmarks/worker.py) so that numpy's BLAS,
torch and rnnkit all start with that many threads; peak memory is measured in one subprocess
per library and problem (benchmarks/memory.py). This process only orchestrates and reports:
it never times anything itself.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

if __package__ in (None, ""):  # run as a script: python benchmarks/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import configs as C  # noqa: E402
from benchmarks import memory, report  # noqa: E402
from benchmarks.env import REPO_ROOT, child_env, snapshot_source_tree  # noqa: E402

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"

# Budgets per grid cell (all contestants of one config x cell x mode together). The full
# suite's 2 s with at least 5 samples each keeps it at ~10-15 min on 2 cores while the large
# problems (seconds per call) still get 5 samples; --quick trades precision for < 1 min.
FULL = {"budget": {"seconds": 2.0, "min_reps": 5, "max_reps": 40, "sample_target_s": 0.01},
        "sgemm_n": 2048, "sgemm_reps": 5, "sgemm_again": True}
QUICK = {"budget": {"seconds": 0.15, "min_reps": 3, "max_reps": 10, "sample_target_s": 0.002},
         "sgemm_n": 1024, "sgemm_reps": 5, "sgemm_again": False}
QUICK_CONFIGS = "tiny,medium"
QUICK_MEMORY_CONFIGS = ["medium"]


def _csv(text: str) -> List[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def parse_args(argv: List[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help=f"configs {QUICK_CONFIGS}, short budgets, memory for medium only")
    ap.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2 (default 1,2)")
    ap.add_argument("--configs", default=None,
                    help=f"subset of {','.join(C.CONFIGS)} (default: all; --quick: "
                         f"{QUICK_CONFIGS}), or DeepBench's training sizes "
                         f"{','.join(C.DEEPBENCH)} (all of them: deepbench)")
    ap.add_argument("--cells", default=",".join(C.CELLS), help=f"subset of {','.join(C.CELLS)}")
    ap.add_argument("--modes", default=",".join(C.MODES),
                    help="subset of forward,train,varlen,step")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds of timing per grid cell (default 2.0; --quick 0.15)")
    ap.add_argument("--json", default=None,
                    help="where to write the raw results (default benchmarks/results/"
                         "bench-<time>.json)")
    ap.add_argument("--plot", default=None, help="draw speed-ups to this PNG (needs matplotlib)")
    ap.add_argument("--no-torch", action="store_true", help="time rnnkit without torch")
    ap.add_argument("--no-ort", action="store_true", help="leave ONNX Runtime out")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    ap.add_argument("--keep-going", action="store_true",
                    help="on a failed correctness check, mark the row WRONG and go on "
                         "(default: stop)")
    args = ap.parse_args(argv)
    args.argv = list(argv)
    args.threads = [int(t) for t in _csv(args.threads)]
    if not args.threads or min(args.threads) < 1:
        ap.error("--threads needs positive integers")
    args.configs = [c.name for c in C.resolve_configs(
        _csv(args.configs or (QUICK_CONFIGS if args.quick else ",".join(C.CONFIGS))))]
    args.cells = _csv(args.cells)
    args.modes = _csv(args.modes)
    for value, allowed, what in ((args.cells, C.CELLS, "cell"), (args.modes, C.MODES, "mode")):
        bad = [v for v in value if v not in allowed]
        if bad:
            ap.error(f"unknown {what} {bad}; choose from {','.join(allowed)}")
    return args


def run_worker(spec: dict, threads: int, rnnkit_parent: Optional[Path]) -> dict:
    """One thread count in a subprocess; its progress goes straight to our stderr."""
    with tempfile.TemporaryDirectory(prefix="rnnkit-bench-") as tmp:
        spec_path, out_path = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
        with open(spec_path, "w") as f:
            json.dump(dict(spec, threads=threads), f)
        proc = subprocess.run([sys.executable, "-m", "benchmarks.worker", spec_path, out_path],
                              cwd=REPO_ROOT, env=child_env(threads, rnnkit_parent))
        if not os.path.exists(out_path):
            raise SystemExit(f"the {threads}-thread worker died (exit {proc.returncode}) "
                             "before writing results; see its output above")
        with open(out_path) as f:
            result = json.load(f)
        result["exit_code"] = proc.returncode
        return result


def main(argv: List[str]) -> int:
    args = parse_args(argv)
    started = time.time()
    preset = QUICK if args.quick else FULL
    spec = {"configs": args.configs, "cells": args.cells, "modes": args.modes,
            "budget": dict(preset["budget"]), "sgemm_n": preset["sgemm_n"],
            "sgemm_reps": preset["sgemm_reps"], "sgemm_again": preset["sgemm_again"],
            "use_torch": not args.no_torch, "use_ort": not args.no_ort,
            "keep_going": args.keep_going}
    if args.budget is not None:
        spec["budget"]["seconds"] = args.budget
    cores = os.cpu_count() or 1
    if max(args.threads) > cores:
        print(f"warning: {max(args.threads)} threads on {cores} cores: timings will be "
              "oversubscribed", file=sys.stderr)
    snapshot = snapshot_source_tree()
    try:
        if snapshot is not None:
            print(f"note: rnnkit is not installed; measuring a copy of the source tree's "
                  f"python/rnnkit (in {snapshot})", file=sys.stderr)
        return _run(args, spec, snapshot, started)
    finally:
        if snapshot is not None:
            shutil.rmtree(snapshot, ignore_errors=True)


def _run(args: argparse.Namespace, spec: dict, snapshot: Optional[Path],
         started: float) -> int:
    """Workers, memory probes, report; returns the exit status."""
    workers: Dict[int, dict] = {}
    failed_check = None
    for threads in args.threads:
        workers[threads] = run_worker(spec, threads, snapshot)
        if workers[threads].get("check_failed"):
            failed_check = workers[threads]["check_failed"]
            break

    mem: List[dict] = []
    want_memory = ("train" in args.modes and not args.no_memory and failed_check is None)
    if want_memory:
        impls = ["rnnkit"] + ([] if args.no_torch else ["torch"])
        mem_cfgs = [c for c in args.configs if not args.quick or c in QUICK_MEMORY_CONFIGS] \
            or args.configs[:1]
        print("peak memory of one train step (1 thread, one process each) ...",
              file=sys.stderr, flush=True)
        mem = memory.run_all(mem_cfgs, args.cells, impls, snapshot,
                             log=lambda m: print(m, file=sys.stderr, flush=True))

    # ---- report
    out = sys.stdout
    first = next((w for w in workers.values() if "build_info" in w), None)
    print("", file=out)
    if first:
        for line in report.header_lines(first):
            print(line, file=out)
    print(report.LEGEND, file=out)
    for threads, w in workers.items():
        if "cases" in w and "sgemm" in w:
            print("", file=out)
            for line in report.table_lines(w):
                print(line, file=out)
    if mem:
        print("", file=out)
        print("=== peak memory of one train step (RSS high-water mark minus baseline, 1 "
              "thread; see benchmarks/memory.py) ===", file=out)
        for row in report.memory_targets(mem):
            rk = "-" if row["rnnkit_mib"] is None else f"{row['rnnkit_mib']:8.1f}"
            th = "-" if row["torch_mib"] is None else f"{row['torch_mib']:8.1f}"
            print(f"{row['config']:8s} {row['cell']:4s} rnnkit {rk} MiB   torch {th} MiB",
                  file=out)
    complete = {t: w for t, w in workers.items() if "sgemm" in w}
    print("", file=out)
    for line in report.summary_lines(complete, mem):
        print(line, file=out)

    json_path = Path(args.json) if args.json else \
        RESULTS_DIR / time.strftime("bench-%Y%m%d-%H%M%S.json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"argv": args.argv, "quick": args.quick, "spec": spec, "started": started,
               "duration_s": time.time() - started,
               "workers": {str(t): w for t, w in workers.items()}, "memory": mem,
               "scaling": report.scaling_targets(complete),
               "memory_targets": report.memory_targets(mem)}
    with open(json_path, "w") as f:
        json.dump(payload, f, indent=1)
    print(f"\nraw results: {json_path}   ({time.time() - started:.0f} s in all)", file=out)
    if args.plot:
        print(report.plot(complete, args.plot), file=out)

    if failed_check:
        print(f"\nFAILED: {failed_check}\n(rnnkit disagrees with torch; nothing after it was "
              "timed. --keep-going marks such rows WRONG and continues.)", file=sys.stderr)
        return 3
    if any(w.get("errors") for w in workers.values()):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
