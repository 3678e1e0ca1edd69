"""One benchmark problem (inputs, weights, lengths) and rnnkit's callables for it.

Every peer gets exactly these arrays: torch copies them into its modules, ONNX Runtime gets
them through the exported torch layer, numpy's mat-vec uses the same step weights.
Each callable returns a dict of named numpy arrays, so the correctness check and the timed
call are the same code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

import rnnkit
from benchmarks.configs import SEED, Config, cell_spec, varlen_lengths

Arrays = Dict[str, np.ndarray]


def pack_states(cell: str, states: Sequence[Any]) -> Any:
    """States in the form layers, cells and torch take: a tuple for two or more ((h, c) of
    the LSTM), the array itself for one."""
    return tuple(states) if len(cell_spec(cell).states) > 1 else states[0]


def unpack_states(cell: str, state: Any) -> Tuple[Any, ...]:
    """The inverse of pack_states."""
    return tuple(state) if len(cell_spec(cell).states) > 1 else (state,)


def _ops_calls(cell: str) -> Tuple[Callable[..., Any], Callable[..., Any], Dict[str, str]]:
    """rnnkit.ops' forward and backward of ``cell`` and the keyword arguments they need (the
    RNN's nonlinearity, the GRU's formula)."""
    spec = cell_spec(cell)
    return (getattr(rnnkit.ops, spec.family + "_forward"),
            getattr(rnnkit.ops, spec.family + "_backward"), spec.ops_kwargs)


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
    g, t, b, i, h = cell_spec(cell).gates, cfg.steps, cfg.batch, cfg.input_size, cfg.hidden_size
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
    fwd, _, extra = _ops_calls(p.cell)
    spec = cell_spec(p.cell)
    no_states = (None,) * len(spec.states)     # zeros, as for every peer
    names = ("y",) + spec.state_n_names

    def run() -> Arrays:
        *outs, _ = fwd(p.x, *no_states, p.w_ih, p.w_hh, p.b_ih, p.b_hh, lengths=p.lengths,
                       training=False, **extra)
        return dict(zip(names, outs))
    return run


def rnnkit_train(p: Problem) -> Callable[[], Arrays]:
    """One train step: forward in training mode, then backward of y.sum() (dy = ones).

    With ``p.lengths`` set, dy is still all ones: y past a sequence's end is the constant 0,
    so a correct backward ignores those entries, as torch's packed path does.
    """
    fwd, bwd, extra = _ops_calls(p.cell)
    no_states = (None,) * len(cell_spec(p.cell).states)

    def run() -> Arrays:
        y, *_, cache = fwd(p.x, *no_states, p.w_ih, p.w_hh, p.b_ih, p.b_hh, lengths=p.lengths,
                           training=True, **extra)
        g = bwd(cache, p.dy)
        return {"y": y, "dx": g.dx, "dw_ih": g.dw_ih, "dw_hh": g.dw_hh, "db_ih": g.db_ih,
                "db_hh": g.db_hh}
    return run


# ---------------------------------------------------------------- single step
@dataclass
class StepProblem:
    """One cell step for B=1: x (1, I) and the cell's states (1, H) each, in the order of
    its spec (h, then c for the LSTM)."""

    cell: str
    x: np.ndarray
    states: Tuple[np.ndarray, ...]
    w_ih: np.ndarray
    w_hh: np.ndarray
    b_ih: np.ndarray
    b_hh: np.ndarray

    @property
    def h(self) -> np.ndarray:
        """The hidden state (always the first)."""
        return self.states[0]


def make_step_problem(cfg: Config, cell: str) -> StepProblem:
    """A mid-sequence state (not zeros), so that the check exercises the recurrent weights."""
    p = make_problem(cfg, cell)
    spec = cell_spec(cell)
    rng = np.random.default_rng([SEED, 17, spec.gates])
    states = tuple(rng.uniform(-0.5, 0.5, (1, cfg.hidden_size)).astype(np.float32)
                   for _ in spec.states)
    return StepProblem(cell, np.ascontiguousarray(p.x[0]), states, p.w_ih, p.w_hh, p.b_ih,
                       p.b_hh)


def rnnkit_step(p: StepProblem) -> Callable[[], Arrays]:
    """One cell step from Python through the sequence kernel with T=1, training=False
    (which packs the weights on every call: shown for comparison with the cell layer)."""
    fwd, _, extra = _ops_calls(p.cell)
    names = cell_spec(p.cell).states
    x3 = p.x[None]  # (T=1, B=1, I): a view, no copy per call

    def run() -> Arrays:
        _, *outs, _ = fwd(x3, *p.states, p.w_ih, p.w_hh, p.b_ih, p.b_hh, training=False,
                          **extra)
        return dict(zip(names, outs))
    return run


def rnnkit_nn_cell(p: StepProblem) -> Callable[[], Arrays]:
    """One step through the public layer ``rnnkit.nn.LSTMCell`` (GRUCell, RNNCell) in eval
    mode, called as torch's cells are: the compiled step with weights packed once."""
    from rnnkit.nn.cells import make_cell
    spec = cell_spec(p.cell)
    layer = make_cell(spec, p.x.shape[1], p.h.shape[1])
    layer.load_state_dict({"weight_ih": p.w_ih, "weight_hh": p.w_hh, "bias_ih": p.b_ih,
                           "bias_hh": p.b_hh})
    layer.eval()
    names, hx = spec.states, pack_states(p.cell, p.states)
    if len(names) > 1:
        def run() -> Arrays:
            return dict(zip(names, layer(p.x, hx)))
    else:
        def run() -> Arrays:
            return {names[0]: layer(p.x, hx)}
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
