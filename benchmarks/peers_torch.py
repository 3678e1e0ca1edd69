"""PyTorch peers: ``torch.nn.LSTM/GRU/RNN`` (padded and packed) and ``torch.nn.*Cell``.

The modules get rnnkit's weights (same layout and gate order), so outputs and gradients are
comparable element by element. Import this module only when torch is installed.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from benchmarks.configs import cell_spec
from benchmarks.problems import Arrays, Problem, StepProblem, pack_states, unpack_states

# torch's peer of each rnnkit cell family (a table of peers: the cell itself, its gates and
# states, come from rnnkit's registry through cell_spec).
_LAYERS = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
_CELLS = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn": torch.nn.RNNCell}


# The cell options torch's constructors take; the others (GRU's reset_after, LSTM's peephole)
# are at the values torch has built in for the benchmarked default cells.
_TORCH_OPTIONS = ("nonlinearity",)


def _peer(table: dict, cell: str, *args: int) -> torch.nn.Module:
    spec = cell_spec(cell)
    kwargs = {k: v for k, v in spec.kwargs.items() if k in _TORCH_OPTIONS}
    return table[spec.family](*args, **kwargs)


def version() -> str:
    return torch.__version__


def set_threads(n: int) -> None:
    """Intra-op threads = n; one inter-op thread (no concurrent ops in these graphs).

    set_num_interop_threads may be called once per process, before any parallel work.
    """
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass


def _load(module: torch.nn.Module, p: "Problem | StepProblem", suffix: str) -> None:
    state = {f"weight_ih{suffix}": p.w_ih, f"weight_hh{suffix}": p.w_hh,
             f"bias_ih{suffix}": p.b_ih, f"bias_hh{suffix}": p.b_hh}
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})


def make_layer(p: Problem) -> torch.nn.Module:
    """The torch layer of ``p`` with rnnkit's weights (time-major, one layer)."""
    layer = _peer(_LAYERS, p.cell, p.cfg.input_size, p.cfg.hidden_size)
    _load(layer, p, "_l0")
    return layer


def _grads(layer: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Arrays:
    return {"y": y.detach().numpy(), "dx": x.grad.numpy(),
            "dw_ih": layer.weight_ih_l0.grad.numpy(), "dw_hh": layer.weight_hh_l0.grad.numpy(),
            "db_ih": layer.bias_ih_l0.grad.numpy(), "db_hh": layer.bias_hh_l0.grad.numpy()}


def forward(p: Problem) -> Callable[[], Arrays]:
    """Inference forward under ``torch.no_grad()``, padded (lengths ignored)."""
    layer = make_layer(p).eval()
    x = torch.from_numpy(p.x)
    names = cell_spec(p.cell).state_n_names

    def run() -> Arrays:
        with torch.no_grad():
            y, state = layer(x)
        out = {"y": y.numpy()}
        for name, s in zip(names, unpack_states(p.cell, state)):
            out[name] = s[0].numpy()
        return out
    return run


def train(p: Problem) -> Callable[[], Arrays]:
    """Train step on the padded batch: zero grads (set to None), forward, y.sum().backward().

    Lengths are ignored: this is what a user who does not pack pays for the whole batch.
    """
    layer = make_layer(p).train()
    x = torch.from_numpy(p.x.copy()).requires_grad_(True)
    params = list(layer.parameters())

    def run() -> Arrays:
        for w in params:
            w.grad = None
        x.grad = None
        y, _ = layer(x)
        y.sum().backward()
        return _grads(layer, x, y)
    return run


def train_packed(p: Problem) -> Callable[[], Arrays]:
    """Train step through pack_padded_sequence(enforce_sorted=False) and pad_packed_sequence.

    Packing and unpacking are inside the timed call: a user of variable lengths pays them
    every step.
    """
    assert p.lengths is not None
    layer = make_layer(p).train()
    x = torch.from_numpy(p.x.copy()).requires_grad_(True)
    lengths = torch.from_numpy(p.lengths)  # must stay on the CPU, int64
    steps = p.cfg.steps
    params = list(layer.parameters())

    def run() -> Arrays:
        for w in params:
            w.grad = None
        x.grad = None
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, _ = layer(packed)
        y, _ = pad_packed_sequence(out, total_length=steps)
        y.sum().backward()
        return _grads(layer, x, y)
    return run


def step(p: StepProblem) -> Callable[[], Arrays]:
    """One ``torch.nn.LSTMCell`` (GRUCell, RNNCell) call under ``torch.no_grad()``."""
    cell = _peer(_CELLS, p.cell, p.x.shape[1], p.h.shape[1]).eval()
    _load(cell, p, "")
    names = cell_spec(p.cell).states
    x, hx = torch.from_numpy(p.x), pack_states(p.cell, [torch.from_numpy(s) for s in p.states])
    if len(names) > 1:
        def run() -> Arrays:
            with torch.no_grad():
                out = cell(x, hx)
            return {n: s.numpy() for n, s in zip(names, out)}
    else:
        def run() -> Arrays:
            with torch.no_grad():
                h1 = cell(x, hx)
            return {names[0]: h1.numpy()}
    return run

