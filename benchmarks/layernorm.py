"""The LayerNorm LSTM and GRU train step, rnnkit against a per-step torch module (issue 10: >= 5x).

    python -m benchmarks.layernorm [--configs medium char-LM fastrnns] [--cells lstm gru]
        [--threads 1 2] [--rounds 3] [--seconds 0.3] [--jit] [--check]

Train step = zero_grad, forward, backward of y.sum() through one LayerNorm LSTM (or GRU)
layer, float32, time-major x (T, B, I), with biases. rnnkit runs rnnkit.nn.LayerNormLSTM /
LayerNormGRU; torch has no LayerNorm LSTM, so its peer is the per-step module written below in
the style of torch's benchmarks/fastrnns/custom_lstms.py: parameters as nn.Parameter, a Python
loop over the steps, F.layer_norm inside it, autograd for the backward. The same module
compiled with torch.jit.script (fastrnns scripts its cells and layers) is a third peer with
--jit, where scripting works; the ratio is then reported against the faster torch variant too.
It is off by default only for time: the default run's workers add up to about 4.5 minutes on
an idle 2-core machine (other load on the cores stretches that, 2-thread runs most), and the
scripted peer (one more process per round, one more profiling call) adds about 60% to it.

Before anything is timed, the torch module (and its scripted form) is checked in float64 at a
small size against rnnkit with rnnkit's parameters copied in: y, dx and every parameter's
gradient must agree to 1e-9, so the two peers run the same model.

Each peer times itself in its own process per (config, threads): their thread pools must not
spin against each other. The processes alternate over the rounds; the report gives the median
of the per-round medians, torch / rnnkit, and rnnkit's GFLOP/s counted as configs.flops does
(2·T·B·G·H·(I+H) forward, 3x that for a train step). No benchmarks module exposes a measured
FMA peak (sgemm.matmul_rate is numpy's GEMM rate, not the peak), so no % of peak is printed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import warnings
from collections.abc import Sequence

import numpy as np

from benchmarks.configs import SEED, Config, flops, resolve_configs
from benchmarks.projection import _time

# fastrnns' default shape (benchmarks/fastrnns/bench.py: seqLength 100, miniBatch 64,
# inputSize 512, hiddenSize 512): the shape the module this file imitates is usually timed at.
FASTRNNS = Config("fastrnns", 64, 100, 512, 512)

CELLS: tuple[str, ...] = ("lstm", "gru")
# rnnkit's cell family per benchmark cell (configs.flops reads the gate count from it).
FAMILY: dict[str, str] = {"lstm": "layernorm_lstm", "gru": "layernorm_gru"}
# rnnkit parameter name -> attribute of the torch modules below.
TORCH_NAMES: dict[str, str] = {
    "weight_ih_l0": "weight_ih", "weight_hh_l0": "weight_hh",
    "bias_ih_l0": "bias_ih", "bias_hh_l0": "bias_hh",
    "ln_weight_ih_l0": "ln_ih", "ln_weight_hh_l0": "ln_hh",
    "ln_weight_c_l0": "ln_c_weight", "ln_bias_c_l0": "ln_c_bias",
}
PEERS: tuple[str, ...] = ("rnnkit", "torch", "torch-jit")
EPS = 1e-5          # LayerNorm's eps, rnnkit's and torch.nn.LayerNorm's default
CHECK_TOL = 1e-9    # float64 on both sides: only rounding-order differences remain


def _resolve(names: Sequence[str]) -> list[Config]:
    """The grid's configs by name, plus this file's "fastrnns" shape."""
    out = []
    for name in names:
        if name.strip().lower() == FASTRNNS.name:
            out.append(FASTRNNS)
        else:
            out.extend(resolve_configs([name]))
    return out


def _torch_modules():
    """The two torch peers' classes, defined on first use so the parent and the rnnkit worker
    never import torch."""
    import torch
    import torch.nn.functional as F
    from torch import Tensor, nn

    def _uniform(shape: tuple[int, ...], k: float, dtype: torch.dtype) -> nn.Parameter:
        return nn.Parameter(torch.empty(shape, dtype=dtype).uniform_(-k, k))

    class TorchLayerNormLSTM(nn.Module):
        """fastrnns-style LayerNorm LSTM: one Python (or TorchScript) iteration per step.

        a = LN(x_t W_ih^T; ln_ih) + b_ih + LN(h W_hh^T; ln_hh) + b_hh, gates i, f, g, o;
        c' = f*c + i*g; h' = o * tanh(LN(c'; ln_c_weight, ln_c_bias)). x (T, B, I) -> y
        (T, B, H). Weights and biases are drawn as torch.nn.LSTM's, gains start at 1.
        """

        def __init__(self, input_size: int, hidden_size: int,
                     dtype: torch.dtype = torch.float32) -> None:
            super().__init__()
            H, k = hidden_size, 1.0 / math.sqrt(hidden_size)
            self.hidden_size = H
            self.eps = EPS      # an attribute: TorchScript cannot read a module global
            self.weight_ih = _uniform((4 * H, input_size), k, dtype)
            self.weight_hh = _uniform((4 * H, H), k, dtype)
            self.bias_ih = _uniform((4 * H,), k, dtype)
            self.bias_hh = _uniform((4 * H,), k, dtype)
            self.ln_ih = nn.Parameter(torch.ones(4 * H, dtype=dtype))
            self.ln_hh = nn.Parameter(torch.ones(4 * H, dtype=dtype))
            self.ln_c_weight = nn.Parameter(torch.ones(H, dtype=dtype))
            self.ln_c_bias = nn.Parameter(torch.zeros(H, dtype=dtype))

        def forward(self, x: Tensor, h0: Tensor | None = None,
                    c0: Tensor | None = None) -> Tensor:
            H, eps = self.hidden_size, self.eps
            zeros = x.new_zeros((x.size(1), H))
            h = zeros if h0 is None else h0
            c = zeros if c0 is None else c0
            outputs: list[Tensor] = []
            for x_t in x.unbind(0):
                a = (F.layer_norm(x_t @ self.weight_ih.t(), [4 * H], self.ln_ih, None, eps)
                     + self.bias_ih
                     + F.layer_norm(h @ self.weight_hh.t(), [4 * H], self.ln_hh, None, eps)
                     + self.bias_hh)
                i, f, g, o = a.chunk(4, 1)
                i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
                c = f * c + i * g
                h = o * torch.tanh(F.layer_norm(c, [H], self.ln_c_weight, self.ln_c_bias, eps))
                outputs.append(h)
            return torch.stack(outputs)

    class TorchLayerNormGRU(nn.Module):
        """fastrnns-style LayerNorm GRU (torch's GRU formula, reset after the product).

        ax = LN(x_t W_ih^T; ln_ih) + b_ih; ah = LN(h W_hh^T; ln_hh) + b_hh, gates r, z, n;
        n = tanh(ax_n + r*ah_n); h' = (1 - z)*n + z*h. x (T, B, I) -> y (T, B, H).
        """

        def __init__(self, input_size: int, hidden_size: int,
                     dtype: torch.dtype = torch.float32) -> None:
            super().__init__()
            H, k = hidden_size, 1.0 / math.sqrt(hidden_size)
            self.hidden_size = H
            self.eps = EPS      # an attribute: TorchScript cannot read a module global
            self.weight_ih = _uniform((3 * H, input_size), k, dtype)
            self.weight_hh = _uniform((3 * H, H), k, dtype)
            self.bias_ih = _uniform((3 * H,), k, dtype)
            self.bias_hh = _uniform((3 * H,), k, dtype)
            self.ln_ih = nn.Parameter(torch.ones(3 * H, dtype=dtype))
            self.ln_hh = nn.Parameter(torch.ones(3 * H, dtype=dtype))

        def forward(self, x: Tensor, h0: Tensor | None = None) -> Tensor:
            H, eps = self.hidden_size, self.eps
            h = x.new_zeros((x.size(1), H)) if h0 is None else h0
            outputs: list[Tensor] = []
            for x_t in x.unbind(0):
                ax = (F.layer_norm(x_t @ self.weight_ih.t(), [3 * H], self.ln_ih, None, eps)
                      + self.bias_ih)
                ah = (F.layer_norm(h @ self.weight_hh.t(), [3 * H], self.ln_hh, None, eps)
                      + self.bias_hh)
                rz = torch.sigmoid(ax[:, :2 * H] + ah[:, :2 * H])
                r, z = rz.chunk(2, 1)
                n = torch.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
                h = (1 - z) * n + z * h
                outputs.append(h)
            return torch.stack(outputs)

    return {"lstm": TorchLayerNormLSTM, "gru": TorchLayerNormGRU}


def _script(module):
    """torch.jit.script(module), or None with the reason where scripting fails."""
    import torch
    try:
        with warnings.catch_warnings():
            # torch 2.x deprecates TorchScript in favour of torch.compile; it still works,
            # and fastrnns' scripted cells are the baseline the issue names.
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.script(module), ""
    # Any scripting failure (TorchScript raises RuntimeError, OSError, its own FrontendError)
    # only drops the optional peer, with the reason printed.
    except Exception as exc:  # noqa: BLE001
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), "")
        return None, f"{type(exc).__name__}: {first}"


def check(cells: Sequence[str] = CELLS, jit: bool = True) -> bool:
    """Compare the torch peers with rnnkit once, float64, at a small awkward size.

    The gains and the cell LayerNorm's bias are randomised first (they start at 1 and 0, which
    would hide a gain applied in the wrong place), and the state starts random so step 0's
    recurrent LayerNorm sees a non-zero product. Asserts y, dx and all parameter gradients
    agree within CHECK_TOL. With ``jit`` the scripted module is checked too; returns whether
    it could be scripted (False without ``jit``).
    """
    import rnnkit
    import torch
    T, B, I, H = 5, 3, 7, 6
    rng = np.random.default_rng(SEED)
    jit_ok = jit
    for cell in cells:
        layer = {"lstm": rnnkit.nn.LayerNormLSTM, "gru": rnnkit.nn.LayerNormGRU}[cell]
        m = layer(I, H, dtype="float64", seed=0)
        for name, p in m.named_parameters():
            if name.startswith("ln_"):
                p.data[...] = rng.uniform(0.5, 1.5, p.data.shape)
                p.mark_changed()
        x = rng.standard_normal((T, B, I))
        states = [rng.standard_normal((1, B, H)) for _ in range(2 if cell == "lstm" else 1)]
        y, _ = m(x, tuple(states) if cell == "lstm" else states[0])
        m.zero_grad()
        dx, _ = m.backward(np.ones_like(y))
        want = {"y": y, "dx": dx}
        want.update({f"d{n}": p.grad for n, p in m.named_parameters()})

        tm = _torch_modules()[cell](I, H, dtype=torch.float64)
        with torch.no_grad():
            for name, p in m.named_parameters():
                getattr(tm, TORCH_NAMES[name]).copy_(torch.from_numpy(p.data))
        scripted, why = _script(tm) if jit_ok else (None, "")
        variants = [("torch", tm)] + ([("torch-jit", scripted)] if scripted is not None else [])
        if jit_ok and scripted is None:
            jit_ok = False
            print(f"note: torch.jit.script failed ({why}); the scripted peer is skipped")
        for label, mod in variants:
            # Three calls: TorchScript's profiling executor optimises the graph after its
            # first runs, so the comparison also covers the optimised graph that is timed.
            for _ in range(3):
                mod.zero_grad()
                xt = torch.from_numpy(x).requires_grad_(True)
                yt = mod(xt, *(torch.from_numpy(s[0]) for s in states))
                yt.sum().backward()
            got = {"y": yt.detach().numpy(), "dx": xt.grad.numpy()}
            got.update({f"d{n}": getattr(mod, TORCH_NAMES[n]).grad.numpy()
                        for n, _ in m.named_parameters()})
            diffs = {k: float(np.max(np.abs(got[k] - want[k]))) for k in want}
            worst = max(diffs, key=diffs.get)
            print(f"check {cell} {label:9} float64 T={T} B={B} I={I} H={H}: max |diff| "
                  f"{diffs[worst]:.1e} ({worst}; y {diffs['y']:.1e})")
            assert diffs[worst] < CHECK_TOL, \
                f"{label} {cell} differs from rnnkit: {worst} max abs diff {diffs[worst]:.3e}"
    return jit_ok


def _worker(peer: str, config: str, threads: int, cells: Sequence[str],
            seconds: float) -> dict[str, float]:
    """Seconds per train step (median over the timing window) of each cell, in this process."""
    cfg = _resolve([config])[0]
    B, T, I, H = cfg.batch, cfg.steps, cfg.input_size, cfg.hidden_size
    x = np.random.default_rng(SEED).standard_normal((T, B, I)).astype(np.float32)
    out = {}
    if peer == "rnnkit":
        import rnnkit
        rnnkit.set_num_threads(threads)
        for cell in cells:
            layer = {"lstm": rnnkit.nn.LayerNormLSTM, "gru": rnnkit.nn.LayerNormGRU}[cell]
            m = layer(I, H, seed=0)
            ones = np.ones((T, B, H), np.float32)

            def step(m=m, ones=ones):
                m.zero_grad()
                m(x)
                m.backward(ones)
            out[cell] = _time(step, seconds, min_reps=3)
        return out
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    xt = torch.from_numpy(x)
    for cell in cells:
        mod = _torch_modules()[cell](I, H)
        if peer == "torch-jit":
            mod, why = _script(mod)
            if mod is None:
                raise RuntimeError(f"torch.jit.script failed: {why}")

        def step(mod=mod):
            mod.zero_grad()
            y = mod(xt)
            y.sum().backward()
        if peer == "torch-jit":
            step()  # the profiling run; _time's warm-up is then the first optimised one
        out[cell] = _time(step, seconds, min_reps=3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="+", default=["medium", "char-LM", FASTRNNS.name])
    ap.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.3,
                    help="timing window per cell and process (at least 3 reps either way)")
    ap.add_argument("--jit", action="store_true",
                    help="also time the torch module compiled with torch.jit.script")
    ap.add_argument("--check", action="store_true", help="only run the float64 check")
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        peer, config, threads = args.worker
        print(json.dumps(_worker(peer, config, int(threads), args.cells, args.seconds)))
        return 0
    configs = _resolve(args.configs)   # fail on a bad name before the check and the timing
    jit_ok = check(args.cells, args.jit)
    if args.check:
        return 0
    peers = [p for p in PEERS if p != "torch-jit" or jit_ok]
    import rnnkit
    info = rnnkit.build_info()
    print(f"{info['cpu_model']} ({info['simd']}); float32, time-major, one layer; train step "
          f"(zero_grad, forward, backward of y.sum()); median of {args.rounds} per-round medians")
    print(f"peers {', '.join(peers)}; issue 10 target: torch/rnnkit >= 5x for the LSTM")
    for cfg in configs:
        for threads in args.threads:
            # OMP_NUM_THREADS too: numpy's BLAS and torch's OpenMP size their pools from it
            # when they load, before set_num_threads can pin them.
            env = dict(os.environ, OMP_NUM_THREADS=str(threads))
            times: dict[str, list[dict[str, float]]] = {p: [] for p in peers}
            for _ in range(args.rounds):
                for peer in peers:
                    cmd = [sys.executable, "-m", "benchmarks.layernorm", "--worker", peer,
                           cfg.name, str(threads), "--seconds", str(args.seconds),
                           "--cells", *args.cells]
                    res = subprocess.run(cmd, capture_output=True, text=True, env=env,
                                         check=False)
                    if res.returncode != 0:
                        sys.stderr.write(res.stderr)
                        raise RuntimeError(f"worker {peer} {cfg.name} {threads} failed")
                    times[peer].append(json.loads(res.stdout.strip().splitlines()[-1]))
            for cell in args.cells:
                ms = {p: statistics.median(r[cell] for r in times[p]) * 1e3 for p in peers}
                r, t = ms["rnnkit"], ms["torch"]
                gflops = flops(cfg, FAMILY[cell], "train") / (r * 1e-3) / 1e9
                line = (f"{cfg.name:8} {cell:4} {cfg.shape_text():25} {threads} thr: "
                        f"rnnkit {r:8.2f} ms  torch {t:8.2f} ms")
                if "torch-jit" in ms:
                    line += f"  jit {ms['torch-jit']:8.2f} ms"
                line += f"  torch/rnnkit {t / r:6.2f}x"
                if "torch-jit" in ms:
                    best = min(t, ms["torch-jit"])
                    line += f"  best-torch/rnnkit {best / r:6.2f}x"
                # The spread (max - min over median of the per-round medians, worst peer) is
                # printed because other work on a small machine can inflate single rounds.
                spread = max((max(v) - min(v)) / statistics.median(v) for v in
                             ([rd[cell] for rd in times[p]] for p in peers))
                print(line + f"  rnnkit {gflops:6.1f} GFLOP/s  spread {spread:4.0%}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
