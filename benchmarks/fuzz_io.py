"""A randomised campaign against rnnkit.load: many mutated files, counted by outcome.

    PYTHONPATH=python python benchmarks/fuzz_io.py [CASES] [SEED] [--batch N] [--keep DIR]
        [--fixed]

Each case is one random mutation (tests/hostile_files.py ``mutate``: bit flips, truncation,
random bytes, JSON values replaced by hostile ones, members dropped, copied or renamed, .npy
headers that lie, members deflated with lying sizes) of a valid model, linear or trainer
file. Cases are loaded in subprocesses, a batch at a time (a batch whose process dies is
rerun one case per process to find the culprit), each process with its address space
limited to its size + 1 GiB. ``--fixed`` adds the fixed set of tests/test_io_hostile.py.

Prints: cases run; crashes (the process died: segfault, abort, timeout); unclear exception
types (anything but ValueError, with counts per type and an example each); ValueErrors that
do not name the path; files that loaded (a mutation can be harmless: a flipped timestamp
bit); the slowest case and the largest peak-RSS growth. Exit status 1 if there was any
crash, unclear type or unnamed path, or a case took over 3 s or grew RSS by over 300 MB.
``--keep DIR`` copies the offending files there to reproduce them.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
sys.path.insert(0, TESTS)

import numpy as np  # noqa: E402

import hostile_files  # noqa: E402

MAX_SECONDS = 3.0
MAX_GROWTH = 300 << 20


def _run_batch(cases: List[Dict[str, str]], workdir: str, env: Dict[str, str],
               timeout: float, peaks: List[int]) -> List[Dict[str, Any]]:
    """Results of one subprocess over ``cases``; a dead process gives "crash" results,
    found case by case. Appends the process's peak-RSS growth to ``peaks``."""
    listing = os.path.join(workdir, "batch.json")
    out = os.path.join(workdir, "batch_results.json")
    with open(listing, "w") as f:
        json.dump(cases, f)
    if os.path.exists(out):
        os.unlink(out)
    try:
        proc = subprocess.run([sys.executable, hostile_files.__file__, listing, out], env=env,
                              capture_output=True, text=True, timeout=timeout)
        died = proc.returncode != 0
        why = f"exit status {proc.returncode}: {proc.stderr[-500:]}"
    except subprocess.TimeoutExpired:
        died, why = True, f"no answer in {timeout:.0f} s"
    if not died:
        with open(out) as f:
            answer = json.load(f)
        peaks.append(answer["peak_growth"])
        return answer["results"]
    if len(cases) == 1:
        return [dict(cases[0], outcome="crash", message=why, seconds=float("nan"),
                     peak_growth=0)]
    results = []
    for case in cases:          # find which case killed it
        results += _run_batch([case], workdir, env, min(timeout, 60), peaks)
    return results


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="?", type=int, default=2000)
    parser.add_argument("seed", nargs="?", type=int, default=0)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--keep", default=None, help="copy offending files here")
    parser.add_argument("--fixed", action="store_true", help="add the fixed hostile set")
    args = parser.parse_args(argv)

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.join(ROOT, "python"), TESTS, os.environ.get("PYTHONPATH", "")]))
    rng = np.random.default_rng(args.seed)
    counts: collections.Counter = collections.Counter()
    examples: Dict[str, Dict[str, Any]] = {}
    offenders: List[Dict[str, Any]] = []
    slowest: Dict[str, Any] = {"seconds": 0.0}
    heaviest: Dict[str, Any] = {"peak_growth": 0}
    peaks: List[int] = []      # per process: peak RSS over its size after importing rnnkit
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rnnkit-fuzz-") as work:
        base_dir = os.path.join(work, "bases")
        os.mkdir(base_dir)
        bases = []
        for path in hostile_files.base_files(base_dir).values():
            meta, members = hostile_files.read_file(path)
            with open(path, "rb") as f:
                bases.append((meta, members, f.read()))
        pending: List[Dict[str, str]] = []
        if args.fixed:
            fixed_dir = os.path.join(work, "fixed")
            os.mkdir(fixed_dir)
            pending += [{"name": n, "path": p}
                        for n, p in hostile_files.fixed_cases(fixed_dir)]
        done = 0
        case_dir = os.path.join(work, "cases")
        while done < args.cases or pending:
            os.makedirs(case_dir, exist_ok=True)
            while done < args.cases and len(pending) < args.batch:
                meta, members, raw = bases[int(rng.integers(len(bases)))]
                p = os.path.join(case_dir, f"case{done:07d}.rnnkit")
                with open(p, "wb") as f:
                    f.write(hostile_files.mutate(rng, meta, members, raw))
                pending.append({"name": f"seed{args.seed}-case{done}", "path": p})
                done += 1
            for r in _run_batch(pending, work, env, 60 + 5 * len(pending), peaks):
                outcome = r["outcome"]
                if outcome == "ValueError" and r["path"] not in r["message"]:
                    outcome = "ValueError without the path"
                counts[outcome] += 1
                examples.setdefault(outcome, r)
                if r["seconds"] == r["seconds"] and r["seconds"] > slowest["seconds"]:
                    slowest = r
                if r["peak_growth"] > heaviest["peak_growth"]:
                    heaviest = r
                if outcome not in ("ValueError", "loaded") or r["seconds"] > MAX_SECONDS \
                        or r["peak_growth"] > MAX_GROWTH:
                    offenders.append(r)
                    if args.keep and os.path.isfile(r["path"]):
                        os.makedirs(args.keep, exist_ok=True)
                        shutil.copy(r["path"], os.path.join(args.keep,
                                                            os.path.basename(r["path"])))
            pending = []
            shutil.rmtree(case_dir)
            print(f"  {done}/{args.cases} cases, {time.monotonic() - t0:.0f} s", flush=True,
                  file=sys.stderr)

    total = sum(counts.values())
    unclear = {k: v for k, v in counts.items() if k not in ("ValueError", "loaded", "crash")}
    print(f"rnnkit.load fuzz: {total} cases, seed {args.seed}, "
          f"{time.monotonic() - t0:.0f} s")
    print(f"  ValueError naming the path: {counts['ValueError']}")
    print(f"  loaded (harmless mutation):  {counts['loaded']}")
    print(f"  crashes:                     {counts['crash']}")
    print(f"  unclear exception types:     {sum(unclear.values())}"
          + "".join(f"\n    {k}: {v}, e.g. {examples[k]['name']}: "
                    f"{examples[k]['message'][:200]}" for k, v in sorted(unclear.items())))
    print(f"  max time:   {slowest['seconds']:.3f} s ({slowest.get('name', '-')})")
    print(f"  max memory: +{max(peaks, default=0) / 2**20:.1f} MB peak RSS over a process's "
          f"size after import (largest single rise: {heaviest.get('name', '-')})")
    if offenders:
        print(f"  {len(offenders)} offending case(s)"
              + (f", copied to {args.keep}" if args.keep else ""))
    return 1 if offenders or max(peaks, default=0) > MAX_GROWTH else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
