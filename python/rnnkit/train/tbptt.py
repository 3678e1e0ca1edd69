"""Truncated backpropagation through time: chunks of k steps, state carried, gradient cut.

``Trainer.fit(..., tbptt=k)`` splits each batch's sequences (axis 1) into chunks of k steps
and takes one optimiser step per chunk. Between chunks the recurrent layers carry their final
state into the next chunk's forward as values only, so no gradient flows back across a chunk
boundary; every batch starts again from zeros.

A layer takes part when it is a :class:`StateCarrier`: it has a boolean ``carry_state``
attribute (while True, a forward without ``hx`` starts from the previous forward's final
state) and ``reset_state()`` (forget it). rnnkit's RNN, LSTM and GRU are.
"""
from __future__ import annotations

from typing import Any, Iterator, List, Optional, Protocol, Tuple, runtime_checkable

import numpy as np


@runtime_checkable
class StateCarrier(Protocol):
    """A layer that can carry its final state into its next forward (see the module)."""

    carry_state: bool

    def reset_state(self) -> None: ...


def state_carriers(model: Any) -> List[Any]:
    """The model's layers that carry state; ValueError when there are none."""
    layers = [m for m in model.modules() if isinstance(m, StateCarrier)]
    if not layers:
        raise ValueError("tbptt needs a model with recurrent layers (RNN, LSTM, GRU)")
    return layers


def check(model: Any, tbptt: Any, x: np.ndarray, y: np.ndarray) -> int:
    """Validate ``fit``'s tbptt arguments before training starts; returns k."""
    if isinstance(tbptt, bool) or not isinstance(tbptt, (int, np.integer)) or tbptt < 1:
        raise ValueError(f"tbptt must be a positive number of steps, got {tbptt!r}")
    if x.ndim < 2 or y.ndim < 2 or y.shape[1] != x.shape[1]:
        raise ValueError(f"tbptt needs per-step targets: x (N, T, ...) and y (N, T, ...) "
                         f"with the same T, got x {x.shape} and y {y.shape}")
    for m in state_carriers(model):
        if getattr(m, "bidirectional", False):
            raise ValueError("tbptt needs unidirectional recurrent layers: the reverse "
                             "direction of a bidirectional layer cannot carry its state "
                             "from one chunk to the next")
    return int(tbptt)


def chunks(xb: np.ndarray, yb: np.ndarray, lb: Optional[np.ndarray],
           k: int) -> Iterator[Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]]:
    """(x, y, lengths) of each chunk of k steps; a chunk's lengths are the steps of each
    sequence that fall inside it (0 once a sequence has ended)."""
    for c0 in range(0, xb.shape[1], k):
        lc = None if lb is None else np.clip(lb - c0, 0, k)
        yield xb[:, c0:c0 + k], yb[:, c0:c0 + k], lc


class CarriedState:
    """``with CarriedState(layers):`` the layers carry state from forward to forward, starting
    from zeros; on leaving, they stop carrying and forget it (also on errors)."""

    def __init__(self, layers: List[Any]) -> None:
        self.layers = layers

    def __enter__(self) -> "CarriedState":
        for m in self.layers:
            m.carry_state = True
            m.reset_state()
        return self

    def __exit__(self, *exc: Any) -> None:
        for m in self.layers:
            m.carry_state = False
            m.reset_state()
