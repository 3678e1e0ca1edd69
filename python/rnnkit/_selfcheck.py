"""`python -m rnnkit selfcheck`: every compiled cell checked on this machine, in a second.

For every cell of the registry (rnnkit._cellspec) and both dtypes:
- forward: the SIMD kernels in use against the portable float64 kernels (plain C++, the
  reference the SIMD files are tested against), on a padded batch with an empty sequence;
- backward: float64 gradients against central finite differences of the float64 forward along
  random directions (so it needs no second hand-written backward);
- single steps: the eval-mode packed-weights path against the sequence kernel.
Then one timed LSTM training step. Cell math itself is tested against an independent numpy
implementation in the test suite (tests/reference.py).
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional, Tuple

import numpy as np

from . import _core, ops
from ._cellspec import CELLS, CellSpec
from ._runtime import build_info

_WEIGHTS = ("w_ih", "w_hh", "b_ih", "b_hh")


def _problem(spec: CellSpec, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    t_steps, batch, inputs, hidden = 7, 3, 5, 6
    g = spec.gates
    args = {"x": rng.standard_normal((t_steps, batch, inputs)),
            "w_ih": rng.standard_normal((g * hidden, inputs)) * 0.4,
            "w_hh": rng.standard_normal((g * hidden, hidden)) * 0.4,
            "b_ih": rng.standard_normal(g * hidden) * 0.1,
            "b_hh": rng.standard_normal(g * hidden) * 0.1}
    for name in spec.state0_names:
        args[name] = rng.standard_normal((batch, hidden)) * 0.5
    for name, width in spec.extra:  # the cell's own parameters (the peephole)
        args[name] = rng.standard_normal(width * hidden) * 0.4
    return args


def _weights(spec: CellSpec) -> Tuple[str, ...]:
    """The names of the weights in the order sequence_backward returns their gradients."""
    return _WEIGHTS + spec.extra_names


def _forward(spec: CellSpec, args: Dict[str, np.ndarray], dtype: type, lengths, training: bool):
    a = {k: v.astype(dtype) for k, v in args.items()}
    y, _, cache = ops.sequence_forward(spec, a["x"], [a[n] for n in spec.state0_names],
                                       *(a[k] for k in _WEIGHTS), lengths=lengths,
                                       training=training, extra=[a[n] for n in spec.extra_names])
    return y, cache


def check_cell(spec: CellSpec, dtype: type, rng: np.random.Generator
               ) -> Tuple[float, float, float]:
    """Relative errors: (forward vs portable float64, gradients vs finite differences,
    single step vs sequence)."""
    args = _problem(spec, rng)
    lengths = np.array([args["x"].shape[0], 0, 4])
    in_use = build_info()["simd"]
    y, _ = _forward(spec, args, dtype, lengths, True)
    try:
        _core.force_simd("generic")
        expect, _ = _forward(spec, args, np.float64, lengths, False)
    finally:
        _core.force_simd(in_use)
    fwd_err = float(np.max(np.abs(y - expect)) / max(1e-30, np.max(np.abs(expect))))

    # Backward: <grad, v> against (L(p + εv) - L(p - εv)) / 2ε, L = <dy, y>, in float64.
    dy = rng.standard_normal(y.shape)
    _, cache = _forward(spec, args, np.float64, lengths, True)
    dx, dstate0, dweights = ops.sequence_backward(cache, dy)
    grads = dict(zip(("x",) + spec.state0_names + _weights(spec), (dx,) + dstate0 + dweights))
    worst = 0.0
    for name, grad in grads.items():
        direction = rng.standard_normal(args[name].shape)
        eps = 1e-6
        plus = dict(args, **{name: args[name] + eps * direction})
        minus = dict(args, **{name: args[name] - eps * direction})
        fd = (np.sum(dy * _forward(spec, plus, np.float64, lengths, False)[0])
              - np.sum(dy * _forward(spec, minus, np.float64, lengths, False)[0])) / (2 * eps)
        analytic = float(np.sum(grad * direction))
        worst = max(worst, abs(analytic - fd) / max(1e-8, abs(fd)))

    # Single step with packed weights vs the first step of the sequence kernel.
    a = {k: v.astype(dtype) for k, v in args.items()}
    states = [a[n] for n in spec.state0_names]
    extra = [a[n] for n in spec.extra_names]
    stepped = spec.step(*(a[k] for k in _WEIGHTS), tuple(extra)).step(a["x"][0], tuple(states))
    _, finals, _ = ops.sequence_forward(spec, a["x"][:1], states, *(a[k] for k in _WEIGHTS),
                                        training=False, extra=extra)
    step_err = max(float(np.max(np.abs(s - f)) / max(1e-30, np.max(np.abs(f))))
                   for s, f in zip(stepped, finals))
    return fwd_err, worst, step_err


def main(argv: Optional[List[str]] = None) -> int:
    info = build_info()
    print("rnnkit", info["version"], "|", info["cpu_model"], "| SIMD in use:", info["simd"],
          f"(cpu {info['simd_cpu']}, compiled {info['simd_compiled']})",
          "| OpenMP:", info["openmp"], "| threads:", info["num_threads"],
          "| compiler:", info["compiler"])
    print("  CPU features:", " ".join(info["cpu_features"]) or "(none detected)")
    rng = np.random.default_rng(0)
    limits = {np.float32: 2e-5, np.float64: 1e-12}
    ok = True
    for spec in CELLS.values():
        for dtype in (np.float32, np.float64):
            fwd, bwd, step = check_cell(spec, dtype, rng)
            good = fwd <= limits[dtype] and bwd <= 1e-5 and step <= limits[dtype]
            ok &= good
            print(f"  {spec.name:16s} {np.dtype(dtype).name:8s} forward vs portable float64 "
                  f"{fwd:.1e}   backward vs finite differences {bwd:.1e}   single step "
                  f"{step:.1e}   {'ok' if good else 'FAIL'}")
    # One-line timing: an LSTM training step at a moderate size.
    t_steps, batch, inputs, hidden = 50, 32, 128, 256
    x = rng.standard_normal((t_steps, batch, inputs)).astype(np.float32)
    w_ih = (rng.standard_normal((4 * hidden, inputs)) * 0.05).astype(np.float32)
    w_hh = (rng.standard_normal((4 * hidden, hidden)) * 0.05).astype(np.float32)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        y, _, _, cache = ops.lstm_forward(x, None, None, w_ih, w_hh, None, None)
        ops.lstm_backward(cache, np.ones_like(y))
        times.append(time.perf_counter() - start)
    flops = 3 * 2 * batch * t_steps * 4 * hidden * (inputs + hidden)
    best = float(np.median(times))
    print(f"  timing: LSTM train step (T={t_steps}, B={batch}, I={inputs}, H={hidden}, float32) "
          f"{best * 1e3:.1f} ms median, {flops / best / 1e9:.1f} GFLOP/s")
    print("self-check", "passed" if ok else "FAILED")
    return 0 if ok else 1
