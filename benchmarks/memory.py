"""Peak memory of one train step, rnnkit vs torch, each in a fresh process of its own.

Method (why these choices):
- A fresh process per (library, config, cell), because a process's peak is a high-water mark
  that earlier work (imports, another library's buffers, a larger problem) would hide.
- Memory is resident memory (RSS) read from /proc, not tracemalloc: torch allocates outside
  Python's allocator hooks, so only RSS sees both libraries alike.
- Before measuring, one train step of the same cell on a 2-step, batch-1 problem pages in the
  code paths and starts thread pools, so neither library is charged for loading its code.
  Then the real inputs and weights are allocated (they exist before any training step; dy,
  the gradient arriving from above, counts as an input), the baseline RSS is read, and the
  kernel's peak is reset by writing "5" to /proc/self/clear_refs (Linux >= 4.0), so VmHWM
  afterwards is the peak of this one step. Reported: peak - baseline, which includes the
  gradients and outputs the step returns, as they are alive at the end of a step.
- Where clear_refs cannot be written, ru_maxrss (the process's lifetime peak) is used; the
  delta is then a lower bound when an earlier phase had a higher peak, and is marked so.
"""
from __future__ import annotations

import gc
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from benchmarks.env import REPO_ROOT, child_env


def _status_kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure(impl: str, config: str, cell: str) -> Dict[str, object]:
    """Run in the child: the peak-RSS delta of one train step of ``impl`` ('rnnkit'|'torch')."""
    from benchmarks import configs as C
    from benchmarks import problems as P
    cfg = C.resolve_configs([config])[0]
    warm = C.Config("warm", 1, 2, cfg.input_size, cfg.hidden_size)
    if impl == "torch":
        from benchmarks import peers_torch
        peers_torch.set_threads(1)
        make = peers_torch.train
    else:
        import rnnkit
        rnnkit.set_num_threads(1)
        make = P.rnnkit_train
    make(P.make_problem(warm, cell))()
    step = make(P.make_problem(cfg, cell))
    gc.collect()
    baseline = _status_kb("VmRSS")
    if baseline is not None and _reset_peak():
        method = "VmHWM after clear_refs reset"
        out = step()
        peak = _status_kb("VmHWM")
    else:
        method = "ru_maxrss (lower bound)"
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = step()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del out
    return {"impl": impl, "config": cfg.name, "cell": cell, "baseline_kb": baseline,
            "peak_kb": peak, "delta_kb": max(0, peak - baseline), "method": method}


def run_all(configs: Sequence[str], cells: Sequence[str], impls: Sequence[str],
            rnnkit_parent: Optional[Path] = None,
            log: Callable[[str], None] = print) -> List[Dict[str, object]]:
    """In the parent: one subprocess per measurement, 1 thread each (memory, not speed)."""
    results = []
    for config in configs:
        for cell in cells:
            for impl in impls:
                proc = subprocess.run([sys.executable, "-m", "benchmarks.memory", impl, config,
                                       cell], cwd=REPO_ROOT, env=child_env(1, rnnkit_parent),
                                      capture_output=True, text=True, timeout=600)
                if proc.returncode != 0:
                    err = proc.stderr.strip().splitlines()[-1:] or ["no output"]
                    results.append({"impl": impl, "config": config, "cell": cell,
                                    "error": err[0]})
                    log(f"memory {impl} {config} {cell}: failed: {err[0]}")
                    continue
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                results.append(r)
                log(f"memory {impl:6s} {r['config']:8s} {cell:4s}: "
                    f"+{r['delta_kb'] / 1024:.1f} MiB peak ({r['method']})")
    return results


if __name__ == "__main__":
    print(json.dumps(measure(*sys.argv[1:4])))
