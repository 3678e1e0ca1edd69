"""A torch training step with nn.GRU / nn.LSTM against the same step with rnnkit's torch
modules swapped in (rnnkit.interop.torch_modules, issue 13: >= 2x for the GRU at medium).

    python -m benchmarks.torch_swap [--configs medium swap] [--cells gru lstm]
        [--threads 1 2] [--rounds 3] [--seconds 1.0] [--check]

Train step = optimizer.zero_grad(), forward of one recurrent layer (float32, time-major
x (T, B, I), biases) and a Linear(H, 1) head, MSE loss against a fixed target, backward,
Adam step. Both peers run this same torch code; the only difference is the recurrent module's
class (torch.nn.GRU, or rnnkit's GRU with the torch module's state dict loaded), which is
what a torch user swapping the layer gets. Configs: the grid's (benchmarks/configs.py;
"medium" is B=32 T=100 I=128 H=256) plus "swap" (B=64 T=100 I=256 H=512), the medium shape
named in issue 13.

Before timing, the two peers are checked in float64 at a small size: after one step of the
same training loop their losses, input gradients and updated parameters must agree to 1e-9.

Each peer times itself in its own process per (config, threads), with that many threads for
torch (set_num_threads, one inter-op thread) and rnnkit (set_num_threads) and the thread
variables of benchmarks/env.py; the processes alternate over the rounds, each taking the
median of its samples (benchmarks/timing.py). The report prints the median of the per-round
medians, torch / rnnkit, and the spread (max - min of the per-round medians over their median,
for the worse peer): on a shared machine a busy neighbour inflates single rounds.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

if __package__ in (None, ""):  # run as a script: python benchmarks/torch_swap.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks.configs import SEED, Config, resolve_configs  # noqa: E402
from benchmarks.env import REPO_ROOT, child_env, snapshot_source_tree  # noqa: E402
from benchmarks.fma_peak import fma_peak_gflops  # noqa: E402
from benchmarks.timing import Budget, time_alternating  # noqa: E402

# Issue 13's medium shape (batch 64, 100 steps, input 256, hidden 512).
SWAP = Config("swap", 64, 100, 256, 512)
CELLS = ("gru", "lstm")
PEERS = ("torch", "rnnkit")
TARGET = ("medium", "gru", 2.0)       # (config, cell, torch / rnnkit) of issue 13
CHECK_TOL = 1e-9


GATES = {"gru": 3, "lstm": 4}


def step_gemm_flops(cell: str, cfg: Config) -> float:
    """The recurrent layer's GEMM FLOPs in one train step: the forward's input and recurrent
    products, 2 T B (I + H) G H, and the backward's two products per weight (the gradients of
    the inputs and of the weights), twice that. The pointwise gate math, the head and Adam are
    left out: at these sizes they are a few percent."""
    g = GATES[cell]
    fwd = 2.0 * cfg.steps * cfg.batch * (cfg.input_size + cfg.hidden_size) * g * cfg.hidden_size
    return 3.0 * fwd


def _resolve(names: Sequence[str]) -> List[Config]:
    out = []
    for name in names:
        out.extend([SWAP] if name.strip().lower() == SWAP.name else resolve_configs([name]))
    return out


def _train_step(peer: str, cell: str, cfg: Config, dtype: str = "float32"):
    """(step function, state) for one peer: the same torch loop around either module."""
    import torch
    from rnnkit.interop import torch_modules as rk
    tdt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    B, T, I, H = cfg.batch, cfg.steps, cfg.input_size, cfg.hidden_size
    torch.manual_seed(SEED)
    ref = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell](I, H, dtype=tdt)
    head = torch.nn.Linear(H, 1, dtype=tdt)
    if peer == "rnnkit":
        rnn = {"gru": rk.GRU, "lstm": rk.LSTM}[cell](I, H, dtype=tdt)
        rnn.load_state_dict(ref.state_dict())
    else:
        rnn = ref
    rng = np.random.default_rng(SEED)
    x = torch.from_numpy(rng.standard_normal((T, B, I)).astype(dtype))
    target = torch.from_numpy(rng.standard_normal((T, B, 1)).astype(dtype))
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    state: Dict[str, object] = {"x": x, "params": params}

    def step() -> float:
        opt.zero_grad()
        xs = state["x"]
        y, _ = rnn(xs)
        loss = torch.nn.functional.mse_loss(head(y), target)
        loss.backward()
        opt.step()
        return loss.item()
    return step, state


def check(cells: Sequence[str] = CELLS) -> None:
    """Both peers' first training step in float64 at a small size: same loss, dx, weights."""
    import torch
    small = Config("check", 3, 5, 4, 6)
    for cell in cells:
        got = {}
        for peer in PEERS:
            step, state = _train_step(peer, cell, small, "float64")
            x = state["x"].clone().requires_grad_(True)
            state["x"] = x
            loss = step()
            got[peer] = [torch.tensor(loss), x.grad] + [p.detach() for p in state["params"]]
        diff = max(float((a - b).abs().max()) for a, b in zip(got["torch"], got["rnnkit"]))
        print(f"check {cell} float64 B=3 T=5 I=4 H=6, one Adam step: max |diff| {diff:.1e}")
        if diff > CHECK_TOL:
            raise AssertionError(f"{cell}: rnnkit's module differs from torch's by {diff:.3e}")


def _worker(peer: str, config: str, threads: int, cells: Sequence[str],
            budget: Budget) -> Dict[str, float]:
    """Median seconds per train step of each cell, timed in this process."""
    import time

    import torch

    import rnnkit
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:      # may be set once per process, before parallel work only
        pass
    rnnkit.set_num_threads(threads)
    cfg = _resolve([config])[0]
    out = {}
    for cell in cells:
        step, _ = _train_step(peer, cell, cfg)
        t0 = time.perf_counter()
        step()                 # the first call: buffers, thread pools, weight packing
        first = time.perf_counter() - t0
        timing = time_alternating({peer: step}, {peer: first}, budget)[peer]
        out[cell] = timing.median
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="+", default=["medium", SWAP.name])
    ap.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.0,
                    help="timing window per cell and process (at least 3 samples)")
    ap.add_argument("--check", action="store_true", help="only run the float64 check")
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    budget = Budget(seconds=args.seconds, min_reps=3, max_reps=50, sample_target_s=0.0)
    if args.worker:
        peer, config, threads = args.worker
        print(json.dumps(_worker(peer, config, int(threads), args.cells, budget)))
        return 0
    configs = _resolve(args.configs)   # a bad name fails before the check and the timing
    check(args.cells)
    if args.check:
        return 0
    import torch

    import rnnkit
    info = rnnkit.build_info()
    print(f"{info['cpu_model']} ({info['simd']}), torch {torch.__version__}, rnnkit "
          f"{info['version']}; float32 train step (zero_grad, forward, MSE of a Linear head, "
          f"backward, Adam); median of {args.rounds} per-round medians")
    print(f"issue 13 target: torch/rnnkit >= {TARGET[2]:g}x for the {TARGET[1].upper()} at "
          f"{TARGET[0]}")
    peak = fma_peak_gflops()   # one core, measured before the workers start
    print(f"measured fp32 FMA peak: {peak:.1f} GFLOP/s per core ({info['simd']}; "
          "benchmarks/fma_peak.py); % of peak = the layer's GEMM FLOPs per step / time / "
          "(threads x peak)")
    snapshot = snapshot_source_tree()
    try:
        for cfg in configs:
            for threads in args.threads:
                env = child_env(threads, snapshot)
                times: Dict[str, List[Dict[str, float]]] = {p: [] for p in PEERS}
                for r in range(args.rounds):
                    # Alternate which peer starts a round: neither always follows the other.
                    for peer in PEERS[r % 2:] + PEERS[:r % 2]:
                        cmd = [sys.executable, "-m", "benchmarks.torch_swap", "--worker", peer,
                               cfg.name, str(threads), "--seconds", str(args.seconds),
                               "--cells", *args.cells]
                        res = subprocess.run(cmd, capture_output=True, text=True, env=env,
                                             cwd=REPO_ROOT, check=False)
                        if res.returncode != 0:
                            sys.stderr.write(res.stderr)
                            raise RuntimeError(f"worker {peer} {cfg.name} {threads} failed")
                        times[peer].append(json.loads(res.stdout.strip().splitlines()[-1]))
                for cell in args.cells:
                    per_round = {p: [rd[cell] * 1e3 for rd in times[p]] for p in PEERS}
                    ms = {p: statistics.median(v) for p, v in per_round.items()}
                    spread = {p: (max(v) - min(v)) / statistics.median(v)
                              for p, v in per_round.items()}
                    ratio = ms["torch"] / ms["rnnkit"]
                    gflop = step_gemm_flops(cell, cfg) / 1e9
                    pct = {p: gflop / (ms[p] / 1e3) / (threads * peak) for p in PEERS}
                    verdict = ""
                    if (cfg.name, cell) == TARGET[:2]:
                        verdict = "  target " + ("met" if ratio >= TARGET[2] else "MISSED")
                        verdict += (f" (it needs rnnkit at {TARGET[2] * pct['torch']:.0%} of "
                                    "peak)")
                    print(f"{cfg.name:7} {cell:4} {cfg.shape_text():25} {threads} thr: "
                          f"torch {ms['torch']:8.2f} ms  rnnkit {ms['rnnkit']:8.2f} ms  "
                          f"torch/rnnkit {ratio:5.2f}x  peak torch {pct['torch']:4.0%} rnnkit "
                          f"{pct['rnnkit']:4.0%}  spread torch {spread['torch']:4.0%} "
                          f"rnnkit {spread['rnnkit']:4.0%}{verdict}", flush=True)
    finally:
        if snapshot is not None:
            shutil.rmtree(snapshot, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
