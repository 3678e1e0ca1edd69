"""The benchmark grid, FLOP counts and the targets of issue 3.

Shapes are (B, T, I, H): batch, steps, input size, hidden size. All cells are single-layer,
unidirectional, with biases, float32; RNN means the tanh Elman cell.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from rnnkit._cellspec import CellSpec


@dataclass(frozen=True)
class Config:
    """One problem shape of the grid."""

    name: str
    batch: int
    steps: int
    input_size: int
    hidden_size: int

    def shape_text(self) -> str:
        return (f"B={self.batch} T={self.steps} I={self.input_size} H={self.hidden_size}")


CONFIGS: Dict[str, Config] = {c.name: c for c in (
    Config("tiny", 1, 100, 32, 64),
    Config("medium", 32, 100, 128, 256),
    Config("char-LM", 32, 64, 64, 512),
    Config("large", 64, 50, 512, 1024),
)}

# DeepBench's recurrent training sizes (I = H), run only when asked for (``--configs deepbench``
# or by name): at 2 threads the largest takes minutes per cell. DeepBench lists them per cell;
# the grid runs each config for the cells asked (``--cells``).
DEEPBENCH: Dict[str, Config] = {c.name: c for c in (
    Config("db-512", 16, 25, 512, 512),
    Config("db-1024", 32, 25, 1024, 1024),
    Config("db-2048", 64, 25, 2048, 2048),
    Config("db-gru1500", 32, 1500, 1024, 1024),
)}

# The single-step (streaming) problem: one cell call with B=1, from Python.
STEP_CONFIG = Config("step", 1, 1, 64, 256)

# The benchmarked cells, by family (rnnkit._cellspec); what each one is (gates, states) comes
# from rnnkit's cell registry through cell_spec().
CELLS: Tuple[str, ...] = ("lstm", "gru", "rnn")
MODES: Tuple[str, ...] = ("forward", "train", "varlen", "step")

# The seed of every input, weight and length draw: each thread count and each peer sees the
# same numbers, and reruns see the same problem.
SEED = 1234


@lru_cache(maxsize=None)
def cell_spec(cell: str) -> "CellSpec":
    """rnnkit's spec of benchmark cell ``cell``, a family: the family's default cell (the
    RNN's tanh cell, torch's GRU formula).

    rnnkit is imported here, on first use, not with this module: the parent process (run.py,
    report.py) reads the grid without importing rnnkit, which only the workers may be able to
    import (from the snapshot on their PYTHONPATH, see env.py).
    """
    from rnnkit._cellspec import default_cell
    return default_cell(cell)


def resolve_configs(names: Sequence[str]) -> List[Config]:
    """Map user spellings (case-insensitive; "charlm", "char_lm" for "char-LM") to configs;
    "deepbench" stands for every DeepBench training size."""
    known = {**CONFIGS, **DEEPBENCH}
    canon = {k.lower().replace("-", "").replace("_", ""): v for k, v in known.items()}
    out = []
    for name in names:
        key = name.strip().lower().replace("-", "").replace("_", "")
        if key == "deepbench":
            out.extend(DEEPBENCH.values())
            continue
        if key not in canon:
            raise ValueError(f"unknown config {name!r}; choose from {', '.join(known)} or "
                             "deepbench")
        out.append(canon[key])
    return out


def varlen_lengths(cfg: Config) -> "list[int]":
    """Sequence lengths for the variable-length mode: uniform in [T/4, T], fixed seed.

    Drawn with Python's own generator (not numpy) so the parent process can compute the
    same lengths without importing numpy.
    """
    import random
    rng = random.Random(SEED + cfg.batch * 7919 + cfg.steps)
    lo = max(1, cfg.steps // 4)
    return [rng.randint(lo, cfg.steps) for _ in range(cfg.batch)]


def flops(cfg: Config, cell: str, mode: str, lengths: Optional[Sequence[int]] = None) -> float:
    """Floating-point operations of one call, as issue 3 counts them.

    Forward: 2·B·T·G·H·(I+H) (the two matrix products; gate math is ignored). A train step
    (forward + backward) counts as 3x the forward. The variable-length mode counts only the
    valid steps, sum(lengths) instead of B·T, so its GFLOP/s is useful work only.
    """
    g, h, i = cell_spec(cell).gates, cfg.hidden_size, cfg.input_size
    per_row_step = 2.0 * g * h * (i + h)
    if mode == "varlen":
        assert lengths is not None
        return 3.0 * per_row_step * float(sum(lengths))
    rows = cfg.batch * cfg.steps
    return per_row_step * rows * (3.0 if mode == "train" else 1.0)


# ---------------------------------------------------------------- targets (issue 3)
# Speed-up = peer time / rnnkit time, same run, same thread count.
TRAIN_TARGETS: Dict[str, Dict[str, float]] = {
    "tiny": {"lstm": 4.0, "gru": 20.0, "rnn": 10.0},
    "medium": {"lstm": 1.25, "gru": 1.5, "rnn": 1.5},
    "char-LM": {"lstm": 1.2, "gru": 1.5, "rnn": 1.5},
    "large": {"lstm": 1.1, "gru": 1.3, "rnn": 1.3},
}
# Inference forward, against the faster of torch and ONNX Runtime.
FORWARD_TARGETS: Dict[str, float] = {"tiny": 1.5, "medium": 1.0, "char-LM": 1.0, "large": 1.0}
# The large train step must also reach this fraction of the measured SGEMM rate.
LARGE_TRAIN_SGEMM_FRACTION = 0.80
# Variable lengths: medium LSTM train step against torch's packed path.
VARLEN_TARGET = ("medium", "lstm", 3.0)
# Single LSTM step: at most 1.1x numpy's mat-vec time, at least 4x faster than LSTMCell.
STEP_TARGET_CELLS: Tuple[str, ...] = ("lstm",)
STEP_MATVEC_MAX_RATIO = 1.1
STEP_TORCH_TARGET = 4.0
# 2 threads against 1 on the large train step.
THREAD_SCALING_TARGET = 1.8
