"""One benchmark problem (inputs, weights, lengths) and rnnkit's callables for it.

Every peer gets exactly these arrays: torch copies them into its modules, ONNX Runtime gets
them through the exported torch layer, numpy's mat-vec uses the same step weights.
Each callable returns a dict of named numpy arrays, so the correctness check and the timed
call are the same code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional

import numpy as np

import rnnkit
from benchmarks.configs import GATES, SEED, Config, varlen_lengths

Arrays = Dict[str, np.ndarray]


@dataclass
class Problem:
    """A sequence problem: time-major x (T, B, I) and torch-layout weights of one cell."""

    cfg: Config
    cell: str
    x: np.ndarray
    w_ih: np.ndarray
    w_hh: np.ndarray
    b_ih: np.ndarray
    b_hh: np.ndarray
    lengths: Optional[np.ndarray]  # (B,) int64 for the variable-length mode, else None
    dy: np.ndarray                 # d(y.sum())/dy: ones, allocated once outside the timing


def make_problem(cfg: Config, cell: str, varlen: bool = False) -> Problem:
    """Draw the problem from the fixed seed; weights as torch initialises them."""
    g, t, b, i, h = GATES[cell], cfg.steps, cfg.batch, cfg.input_size, cfg.hidden_size
    rng = np.random.default_rng([SEED, t, b, i, h, g])
    bound = 1.0 / np.sqrt(h)

    def uniform(*shape: int) -> np.ndarray:
        return rng.uniform(-bound, bound, shape).astype(np.float32)

    x = rng.standard_normal((t, b, i), dtype=np.float32)
    lengths = np.asarray(varlen_lengths(cfg), dtype=np.int64) if varlen else None
    return Problem(cfg, cell, x, uniform(g * h, i), uniform(g * h, h), uniform(g * h),
                   uniform(g * h), lengths, np.ones((t, b, h), dtype=np.float32))


def rnnkit_forward(p: Problem) -> Callable[[], Arrays]:
    """Inference forward over the whole sequence (training=False keeps no activations)."""
    ops = rnnkit.ops
    if p.cell == "lstm":
        def run() -> Arrays:
            y, h_n, c_n, _ = ops.lstm_forward(p.x, None, None, p.w_ih, p.w_hh, p.b_ih, p.b_hh,
                                              lengths=p.lengths, training=False)
            return {"y": y, "h_n": h_n, "c_n": c_n}
    else:
        fwd = getattr(ops, p.cell + "_forward")

        def run() -> Arrays:
            y, h_n, _ = fwd(p.x, None, p.w_ih, p.w_hh, p.b_ih, p.b_hh, lengths=p.lengths,
                            training=False)
            return {"y": y, "h_n": h_n}
    return run


def rnnkit_train(p: Problem) -> Callable[[], Arrays]:
    """One train step: forward in training mode, then backward of y.sum() (dy = ones).

    With ``p.lengths`` set, dy is still all ones: y past a sequence's end is the constant 0,
    so a correct backward ignores those entries, as torch's packed path does.
    """
    ops = rnnkit.ops
    if p.cell == "lstm":
        def run() -> Arrays:
            y, _, _, cache = ops.lstm_forward(p.x, None, None, p.w_ih, p.w_hh, p.b_ih, p.b_hh,
                                              lengths=p.lengths, training=True)
            g = ops.lstm_backward(cache, p.dy)
            return {"y": y, "dx": g.dx, "dw_ih": g.dw_ih, "dw_hh": g.dw_hh, "db_ih": g.db_ih,
                    "db_hh": g.db_hh}
    else:
        fwd = getattr(ops, p.cell + "_forward")
        bwd = getattr(ops, p.cell + "_backward")

        def run() -> Arrays:
            y, _, cache = fwd(p.x, None, p.w_ih, p.w_hh, p.b_ih, p.b_hh, lengths=p.lengths,
                              training=True)
            g = bwd(cache, p.dy)
            return {"y": y, "dx": g.dx, "dw_ih": g.dw_ih, "dw_hh": g.dw_hh, "db_ih": g.db_ih,
                    "db_hh": g.db_hh}
    return run


# ---------------------------------------------------------------- single step
@dataclass
class StepProblem:
    """One cell step for B=1: x (1, I), state h (1, H) [and c (1, H) for LSTM]."""

    cell: str
    x: np.ndarray
    h: np.ndarray
    c: Optional[np.ndarray]
    w_ih: np.ndarray
    w_hh: np.ndarray
    b_ih: np.ndarray
    b_hh: np.ndarray


def make_step_problem(cfg: Config, cell: str) -> StepProblem:
    """A mid-sequence state (not zeros), so that the check exercises the recurrent weights."""
    p = make_problem(cfg, cell)
    rng = np.random.default_rng([SEED, 17, GATES[cell]])
    h = rng.uniform(-0.5, 0.5, (1, cfg.hidden_size)).astype(np.float32)
    c = rng.uniform(-0.5, 0.5, (1, cfg.hidden_size)).astype(np.float32) if cell == "lstm" \
        else None
    return StepProblem(cell, np.ascontiguousarray(p.x[0]), h, c, p.w_ih, p.w_hh, p.b_ih, p.b_hh)


def rnnkit_step(p: StepProblem) -> Callable[[], Arrays]:
    """One cell step from Python through the sequence kernel with T=1, training=False
    (which packs the weights on every call: shown for comparison with the cell layer)."""
    ops = rnnkit.ops
    x3 = p.x[None]  # (T=1, B=1, I): a view, no copy per call
    if p.cell == "lstm":
        def run() -> Arrays:
            _, h, c, _ = ops.lstm_forward(x3, p.h, p.c, p.w_ih, p.w_hh, p.b_ih, p.b_hh,
                                          training=False)
            return {"h": h, "c": c}
    else:
        fwd = getattr(ops, p.cell + "_forward")

        def run() -> Arrays:
            _, h, _ = fwd(x3, p.h, p.w_ih, p.w_hh, p.b_ih, p.b_hh, training=False)
            return {"h": h}
    return run


def rnnkit_nn_cell(p: StepProblem) -> Callable[[], Arrays]:
    """One step through the public layer ``rnnkit.nn.LSTMCell`` (GRUCell, RNNCell) in eval
    mode, called as torch's cells are: the compiled step with weights packed once."""
    import rnnkit.nn as rnn_nn
    cls = getattr(rnn_nn, p.cell.upper() + "Cell")
    kwargs = {"nonlinearity": "tanh"} if p.cell == "rnn" else {}
    layer = cls(p.x.shape[1], p.h.shape[1], **kwargs)
    layer.load_state_dict({"weight_ih": p.w_ih, "weight_hh": p.w_hh, "bias_ih": p.b_ih,
                           "bias_hh": p.b_hh})
    layer.eval()
    if p.cell == "lstm":
        def run() -> Arrays:
            h, c = layer(p.x, (p.h, p.c))
            return {"h": h, "c": c}
    else:
        def run() -> Arrays:
            return {"h": layer(p.x, p.h)}
    return run


def max_errors(got: Arrays, ref: Arrays) -> Dict[str, Dict[str, float]]:
    """Per tensor: max |got - ref| and that divided by max |ref| (scale-relative error).

    Relative to the tensor's largest entry rather than elementwise, because weight gradients
    are sums over B·T terms whose small entries come from cancellation, where an elementwise
    ratio measures the cancellation, not the kernel.
    """
    out = {}
    for name, r in ref.items():
        if r is None or got.get(name) is None:
            continue
        g = np.asarray(got[name], dtype=np.float64)
        r = np.asarray(r, dtype=np.float64)
        if g.shape != r.shape:
            raise AssertionError(f"{name}: rnnkit shape {g.shape} != peer shape {r.shape}")
        diff = float(np.max(np.abs(g - r))) if r.size else 0.0
        scale = float(np.max(np.abs(r))) if r.size else 0.0
        out[name] = {"abs": diff, "rel": diff / max(scale, 1e-30)}
    return out
