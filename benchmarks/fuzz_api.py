"""A long run of the API fuzz (tests/fuzz_api.py): random valid and invalid calls of rnnkit.ops
and the recurrent layers, checked against the numpy reference and the error contract.

    python -m benchmarks.fuzz_api --cases 100000 --seed 0 [--chunk 5000]

Each chunk runs in a subprocess, so a crash (a segfault would end the process) is counted and
reported with the chunk's seed instead of ending the campaign. Prints one line per chunk and a
total; exits 1 if anything was found.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_CHUNK = """
import json, resource, sys
sys.path.insert(0, {tests!r})
import fuzz_api
f = fuzz_api.run({cases}, {seed})
print(json.dumps(dict(cases=f.cases, valid=f.valid, rejected=f.rejected,
                      problems=f.problems[:20], found=len(f.problems),
                      max_seconds=f.max_seconds,
                      max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=5000)
    args = ap.parse_args()
    totals = dict(cases=0, valid=0, rejected=0, found=0, crashes=0, max_seconds=0.0,
                  max_rss_mb=0.0)
    start = time.perf_counter()
    for i, first in enumerate(range(0, args.cases, args.chunk)):
        seed = args.seed * 1_000_003 + i
        code = _CHUNK.format(tests=str(ROOT / "tests"), cases=min(args.chunk, args.cases - first),
                             seed=seed)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if proc.returncode != 0:
            totals["crashes"] += 1
            print(f"chunk seed {seed}: process ended with {proc.returncode}\n{proc.stderr[-2000:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        for k in ("cases", "valid", "rejected", "found"):
            totals[k] += r[k]
        totals["max_seconds"] = max(totals["max_seconds"], r["max_seconds"])
        totals["max_rss_mb"] = max(totals["max_rss_mb"], r["max_rss_mb"])
        print(f"chunk seed {seed}: {r['cases']} cases, {r['found']} findings, slowest "
              f"{r['max_seconds'] * 1e3:.1f} ms, peak RSS {r['max_rss_mb']:.0f} MB", flush=True)
        for p in r["problems"]:
            print("   ", p)
    print(f"total: {totals['cases']} cases ({totals['valid']} valid, {totals['rejected']} "
          f"rejected), {totals['found']} findings, {totals['crashes']} crashed chunks, slowest "
          f"case {totals['max_seconds'] * 1e3:.1f} ms, peak RSS {totals['max_rss_mb']:.0f} MB, "
          f"{time.perf_counter() - start:.0f} s")
    return 1 if totals["found"] or totals["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
