"""What each cell variant costs against its family's default cell (issue 10: at most 1.15x);
the LayerNorm LSTM and GRU against the plain LSTM and GRU.

    python -m benchmarks.variants [--configs medium char-LM] [--threads 1 2] [--seconds 4]

For every non-default cell of the registry (GRU reset_after=False, the peephole LSTM, ...) and
its family's default cell, on the same weights and inputs: the training step (forward with
the cache, then BPTT of a fixed dy) and the inference forward, through rnnkit.ops, float32.
The two contestants alternate in one process per thread count (they are the same library, with
one thread pool); each thread count runs in its own process. Prints medians and the ratio
variant / default, with the CPU model.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Dict, List

import numpy as np

from benchmarks.configs import CONFIGS, resolve_configs
from benchmarks.timing import Budget, time_alternating


# The cell a family's default is measured against, where it is not the family's own default.
_BASE_FAMILY = {"layernorm_lstm": "lstm", "layernorm_gru": "gru"}


def _problem(spec, cfg, rng):
    """Inputs and weights of `spec` at `cfg`, the extra parameters drawn after the rest so
    that every cell of a family sees the same x, weights and dy."""
    B, T, I, H = cfg.batch, cfg.steps, cfg.input_size, cfg.hidden_size
    G = spec.gates
    k = 1.0 / np.sqrt(H)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    w = [rng.uniform(-k, k, s).astype(np.float32) for s in ((G * H, I), (G * H, H), (G * H,),
                                                           (G * H,))]
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    # (a LayerNorm's gains near 1, as trained ones are; the peephole like the weights)
    extra = [(1 + rng.uniform(-k, k, width * H) if name.startswith("ln_weight") else
              rng.uniform(-k, k, width * H)).astype(np.float32) for name, width in spec.extra]
    return x, w, dy, extra


def _calls(spec, cfg):
    from rnnkit import ops
    x, w, dy, extra = _problem(spec, cfg, np.random.default_rng(1234))
    state0 = (None,) * len(spec.states)

    def train():
        _, _, cache = ops.sequence_forward(spec, x, state0, *w, extra=extra)
        ops.sequence_backward(cache, dy)

    def forward():
        ops.sequence_forward(spec, x, state0, *w, extra=extra, training=False)
    return {"train": train, "forward": forward}


def _worker(configs: List[str], threads: int, seconds: float) -> List[Dict]:
    import time

    import rnnkit
    from rnnkit._cellspec import CELLS, default_cell
    rnnkit.set_num_threads(threads)
    rows = []
    for cfg in resolve_configs(configs):
        for name, spec in CELLS.items():
            # a LayerNorm cell against the plain cell of its kind, the others against their
            # family's default
            base = default_cell(_BASE_FAMILY.get(spec.family, spec.family))
            # the variants of issue 10; the RNN's activations are two cells, not a variant
            if base.name == name or spec.nonlinearity != base.nonlinearity:
                continue
            calls = {"base": _calls(base, cfg), "variant": _calls(spec, cfg)}
            for mode in ("train", "forward"):
                contestants = {k: v[mode] for k, v in calls.items()}
                first = {}
                for k, fn in contestants.items():
                    t0 = time.perf_counter()
                    fn()
                    first[k] = time.perf_counter() - t0
                t = time_alternating(contestants, first, Budget(seconds, 5, 200, 0.05))
                rows.append({"config": cfg.name, "threads": threads, "mode": mode,
                             "cell": name, "base": base.name,
                             "base_ms": t["base"].median * 1e3,
                             "variant_ms": t["variant"].median * 1e3,
                             "ratio": t["variant"].median / t["base"].median})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="+", default=["medium", "char-LM"],
                    help=f"of {', '.join(CONFIGS)}")
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--seconds", type=float, default=4.0, help="per contestant pair and mode")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        print(json.dumps(_worker(args.configs, args.worker, args.seconds)))
        return 0
    import rnnkit  # the parent process only for the CPU model; timing runs in the workers
    info = rnnkit.build_info()
    print(f"{info['cpu_model']} ({info['simd']}); float32; medians; ratio = variant / default")
    print(f"{'config':9} {'thr':>3} {'mode':8} {'variant':18} {'default ms':>10} "
          f"{'variant ms':>10} {'ratio':>6}")
    for threads in args.threads:
        out = subprocess.run([sys.executable, "-m", "benchmarks.variants", "--worker",
                              str(threads), "--seconds", str(args.seconds), "--configs",
                              *args.configs], capture_output=True, text=True, check=True)
        for r in json.loads(out.stdout.strip().splitlines()[-1]):
            print(f"{r['config']:9} {r['threads']:>3} {r['mode']:8} {r['cell']:18} "
                  f"{r['base_ms']:>10.2f} {r['variant_ms']:>10.2f} {r['ratio']:>6.3f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
