"""`python -m rnnkit selfcheck`: every kernel against a small, obvious numpy computation.

The forward pass is compared with a float64 numpy loop over time; the backward pass with a
central finite difference of the forward along random directions (so it needs no second
hand-written backward). Runs in well under a second.
"""
from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from . import ops
from ._runtime import build_info

_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def _numpy_forward(cell: str, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths) -> np.ndarray:
    """Outputs y (T, B, H) by a plain loop over time (lengths respected, forward direction)."""
    t_steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    y = np.zeros((t_steps, batch, hidden))
    h, c = h0.copy(), c0.copy()
    for t in range(t_steps):
        gx = x[t] @ w_ih.T + b_ih
        gh = h @ w_hh.T + b_hh
        if cell == "lstm":
            i, f, g, o = np.split(gx + gh, 4, axis=1)
            c_new = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h_new = _sigmoid(o) * np.tanh(c_new)
        elif cell == "gru":
            xr, xz, xn = np.split(gx, 3, axis=1)
            hr, hz, hn = np.split(gh, 3, axis=1)
            r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
            n = np.tanh(xn + r * hn)
            h_new, c_new = (1 - z) * n + z * h, c
        else:
            a = gx + gh
            h_new, c_new = (np.tanh(a) if cell == "rnn_tanh" else np.maximum(a, 0)), c
        running = (t < lengths)[:, None]
        h = np.where(running, h_new, h)
        c = np.where(running, c_new, c)
        y[t] = np.where(running, h_new, 0.0)
    return y


def _run(cell: str, args: Dict[str, np.ndarray], lengths: np.ndarray, training: bool):
    if cell == "lstm":
        y, _, _, cache = ops.lstm_forward(args["x"], args["h0"], args["c0"], args["w_ih"],
                                          args["w_hh"], args["b_ih"], args["b_hh"],
                                          lengths=lengths, training=training)
        return y, cache
    if cell == "gru":
        y, _, cache = ops.gru_forward(args["x"], args["h0"], args["w_ih"], args["w_hh"],
                                      args["b_ih"], args["b_hh"], lengths=lengths,
                                      training=training)
        return y, cache
    y, _, cache = ops.rnn_forward(args["x"], args["h0"], args["w_ih"], args["w_hh"],
                                  args["b_ih"], args["b_hh"], nonlinearity=cell[4:],
                                  lengths=lengths, training=training)
    return y, cache


def _grads(cell: str, cache, dy: np.ndarray) -> Dict[str, np.ndarray]:
    if cell == "lstm":
        g = ops.lstm_backward(cache, dy)
        return {"x": g.dx, "h0": g.dh0, "c0": g.dc0, "w_ih": g.dw_ih, "w_hh": g.dw_hh,
                "b_ih": g.db_ih, "b_hh": g.db_hh}
    g = ops.gru_backward(cache, dy) if cell == "gru" else ops.rnn_backward(cache, dy)
    return {"x": g.dx, "h0": g.dh0, "w_ih": g.dw_ih, "w_hh": g.dw_hh, "b_ih": g.db_ih,
            "b_hh": g.db_hh}


def check_cell(cell: str, dtype: type, rng: np.random.Generator) -> Tuple[float, float]:
    """(max relative forward error vs numpy, max relative gradient error vs finite differences)."""
    t_steps, batch, inputs, hidden = 7, 3, 5, 6
    gates = _GATES[cell]
    args = {
        "x": rng.standard_normal((t_steps, batch, inputs)),
        "h0": rng.standard_normal((batch, hidden)) * 0.5,
        "c0": rng.standard_normal((batch, hidden)) * 0.5,
        "w_ih": rng.standard_normal((gates * hidden, inputs)) * 0.4,
        "w_hh": rng.standard_normal((gates * hidden, hidden)) * 0.4,
        "b_ih": rng.standard_normal(gates * hidden) * 0.1,
        "b_hh": rng.standard_normal(gates * hidden) * 0.1,
    }
    lengths = np.array([t_steps, 0, 4])
    typed = {k: a.astype(dtype) for k, a in args.items()}
    y, cache = _run(cell, typed, lengths, training=True)
    expect = _numpy_forward(cell, *(typed[k].astype(np.float64) for k in
                                    ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh")), lengths)
    fwd_err = float(np.max(np.abs(y - expect)) / max(1e-30, np.max(np.abs(expect))))

    # Backward: <grad, v> against (L(p + εv) - L(p - εv)) / 2ε, L = <dy, y>, in float64.
    dy = rng.standard_normal(y.shape)
    _, cache64 = _run(cell, args, lengths, training=True)
    grads = _grads(cell, cache64, dy)
    worst = 0.0
    for name, grad in grads.items():
        direction = rng.standard_normal(args[name].shape)
        eps = 1e-6
        plus = dict(args, **{name: args[name] + eps * direction})
        minus = dict(args, **{name: args[name] - eps * direction})
        fd = (np.sum(dy * _run(cell, plus, lengths, False)[0])
              - np.sum(dy * _run(cell, minus, lengths, False)[0])) / (2 * eps)
        analytic = float(np.sum(grad * direction))
        worst = max(worst, abs(analytic - fd) / max(1e-8, abs(fd)))
    return fwd_err, worst


def main(argv: Optional[List[str]] = None) -> int:
    info = build_info()
    print("rnnkit", info["version"], "|", info["cpu_model"], "| SIMD in use:", info["simd"],
          f"(cpu {info['simd_cpu']}, compiled {info['simd_compiled']})",
          "| OpenMP:", info["openmp"], "| threads:", info["num_threads"],
          "| compiler:", info["compiler"])
    rng = np.random.default_rng(0)
    limits = {np.float32: 2e-5, np.float64: 1e-12}
    ok = True
    for cell in _GATES:
        for dtype in (np.float32, np.float64):
            fwd, bwd = check_cell(cell, dtype, rng)
            good = fwd <= limits[dtype] and bwd <= 1e-5
            ok &= good
            print(f"  {cell:9s} {np.dtype(dtype).name:8s} forward rel err {fwd:.1e}   "
                  f"backward vs finite differences {bwd:.1e}   {'ok' if good else 'FAIL'}")
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
