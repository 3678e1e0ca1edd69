"""The whole training step of a language model, rnnkit vs torch: embedding, LSTM, Linear decoder,
cross-entropy and Adam, each library in a fresh process of its own per thread count.

    python -m benchmarks.lm_step [--models word char] [--threads 1 2] [--steps 10]

Models (batch B, BPTT length T):
  word  PyTorch's examples/word_language_model at its defaults, without dropout: vocabulary
        V = 10000 (Penn Treebank's size), Embedding(V, 200) -> LSTM(200, 200, 2 layers) ->
        Linear(200, V), B = 20, T = 35. Most of its work is the decoder and the softmax.
  char  a character model: V = 65 (Shakespeare's), Embedding(V, 64) -> LSTM(64, 512) ->
        Linear(512, V), B = 32, T = 64. Most of its work is the LSTM.
A step: zero the gradients, forward, mean cross-entropy over all B*T targets, backward, one Adam
update (lr 1e-3). Random token ids (the speed does not depend on the text). Reported: the median
over --steps steps after 2 warm-up steps, torch/rnnkit, and for rnnkit the share of each phase.
Both start from the same weights (rnnkit's, loaded into torch) and their first losses are
compared, so the two are known to compute the same model.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List

import numpy as np

from benchmarks.env import REPO_ROOT, child_env, write_results

MODELS = {  # name: (V, E, H, layers, B, T)
    "word": (10000, 200, 200, 2, 20, 35),
    "char": (65, 64, 512, 1, 32, 64),
}


def _tokens(V: int, B: int, T: int):
    tok = np.random.default_rng(0).integers(0, V, (T + 1, B))
    return tok[:-1], tok[1:]


def _rnnkit_model(V, E, H, L):
    from rnnkit import nn
    return nn.Embedding(V, E, seed=0), nn.LSTM(E, H, L, seed=1), nn.Linear(H, V, seed=2)


def _run_rnnkit(model: str, steps: int) -> Dict[str, Any]:
    from rnnkit import losses, optim
    V, E, H, L, B, T = MODELS[model]
    emb, lstm, dec = _rnnkit_model(V, E, H, L)
    params = list(emb.parameters()) + list(lstm.parameters()) + list(dec.parameters())
    opt, ce = optim.Adam(params, lr=1e-3), losses.CrossEntropyLoss()
    x, tgt = _tokens(V, B, T)
    phases: Dict[str, float] = {}

    def tick(name: str, t0: float) -> float:
        t1 = time.perf_counter()
        phases[name] = phases.get(name, 0.0) + t1 - t0
        return t1

    def step() -> float:
        t = time.perf_counter()
        opt.zero_grad()
        t = tick("zero_grad", t)
        e = emb(x)
        t = tick("embedding", t)
        y, _ = lstm(e)
        t = tick("lstm", t)
        z = dec(y)
        t = tick("linear", t)
        loss = ce(z.reshape(-1, V), tgt.reshape(-1))
        dz = ce.backward().reshape(z.shape)
        t = tick("cross-entropy", t)
        dy = dec.backward(dz)
        t = tick("linear", t)
        de, _ = lstm.backward(dy)
        t = tick("lstm", t)
        emb.backward(de)
        t = tick("embedding", t)
        opt.step()
        tick("adam", t)
        return float(loss)
    return _timed(step, steps, phases)


def _run_torch(model: str, steps: int) -> Dict[str, Any]:
    import torch
    V, E, H, L, B, T = MODELS[model]
    ref = _rnnkit_model(V, E, H, L)
    mods = (torch.nn.Embedding(V, E), torch.nn.LSTM(E, H, L), torch.nn.Linear(H, V))
    for r, m in zip(ref, mods):
        m.load_state_dict({k: torch.from_numpy(np.array(p.data)) for k, p in
                           r.named_parameters()})
    emb, lstm, dec = mods
    params = [p for m in mods for p in m.parameters()]
    opt, ce = torch.optim.Adam(params, lr=1e-3), torch.nn.CrossEntropyLoss()
    x, tgt = (torch.from_numpy(a) for a in _tokens(V, B, T))

    def step() -> float:
        opt.zero_grad()
        y, _ = lstm(emb(x))
        loss = ce(dec(y).reshape(-1, V), tgt.reshape(-1))
        loss.backward()
        opt.step()
        return float(loss.detach())
    return _timed(step, steps, None)


def _timed(step, steps: int, phases) -> Dict[str, Any]:
    first = step()
    step()
    if phases is not None:
        phases.clear()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    out: Dict[str, Any] = {"first_loss": first, "median_s": statistics.median(times),
                           "times_s": times}
    if phases:
        total = sum(phases.values())
        out["phases"] = {k: v / total for k, v in phases.items()}
    return out


def child(impl: str, model: str, threads: int, steps: int) -> Dict[str, Any]:
    if impl == "torch":
        import torch
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        return _run_torch(model, steps)
    import rnnkit
    rnnkit.set_num_threads(threads)
    return _run_rnnkit(model, steps)


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results" / "lm_step.json"))
    args = ap.parse_args(argv)
    import rnnkit
    info = rnnkit.build_info()
    print(f"# {info['cpu_model']}, {info['simd']}", flush=True)
    results = []
    for model in args.models:
        for threads in args.threads:
            got = {}
            for impl in ("torch", "rnnkit"):
                proc = subprocess.run([sys.executable, "-m", "benchmarks.lm_step", "--child",
                                       impl, model, str(threads), str(args.steps)],
                                      cwd=REPO_ROOT, env=child_env(threads),
                                      capture_output=True, text=True, timeout=1800)
                if proc.returncode != 0:
                    err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                    print(f"{model} {threads} thread(s) {impl}: failed: {err}", flush=True)
                    continue
                got[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
            if len(got) < 2:
                continue
            t, r = got["torch"], got["rnnkit"]
            row = {"model": model, "threads": threads, "torch_ms": t["median_s"] * 1e3,
                   "rnnkit_ms": r["median_s"] * 1e3, "speedup": t["median_s"] / r["median_s"],
                   "first_loss": {"torch": t["first_loss"], "rnnkit": r["first_loss"]},
                   "rnnkit_phases": r.get("phases", {})}
            results.append(row)
            shares = ", ".join(f"{k} {v:.0%}" for k, v in row["rnnkit_phases"].items())
            print(f"{model:4s} {threads} thread(s): torch {row['torch_ms']:7.1f} ms, rnnkit "
                  f"{row['rnnkit_ms']:7.1f} ms, {row['speedup']:.2f}x  (first loss "
                  f"{t['first_loss']:.5f} / {r['first_loss']:.5f}; rnnkit: {shares})",
                  flush=True)
    write_results(args.out, info, results)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        impl, model, threads, steps = sys.argv[2:6]
        print(json.dumps(child(impl, model, int(threads), int(steps))))
    else:
        sys.exit(main(sys.argv[1:]))
