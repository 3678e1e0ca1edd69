"""RMSprop (optionally centered, with momentum)."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import _core
from .optimizer import (Optimizer, ParamGroup, Params, _kernel_view, check_bool,
                        check_number)


class RMSprop(Optimizer):
    r"""RMSprop, exactly as ``torch.optim.RMSprop``.

    Per step, for parameter :math:`p` with gradient :math:`g`::

        g ← -g                                    if maximize
        g ← g + weight_decay · p                  if weight_decay ≠ 0
        s ← α · s + (1 − α) · g²
        if centered:  a ← a + (1 − α) · (g − a);  d ← √(s − a²) + eps
        else:         d ← √s + eps
        if momentum > 0:  b ← momentum · b + g / d;  p ← p − lr · b
        else:             p ← p − lr · g / d

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate (default 1e-2).
        alpha: smoothing constant α (default 0.99).
        eps: added to the denominator (default 1e-8).
        weight_decay: L2 penalty (default 0).
        momentum: momentum factor (default 0).
        centered: normalise by an estimate of the gradient's variance.
        maximize: maximise the objective instead of minimising it.

    State per parameter: ``step``, ``square_avg`` (s); ``momentum_buffer`` (b) when
    momentum > 0; ``grad_avg`` (a) when centered.
    """

    _state_buffers = {"square_avg": True, "momentum_buffer": False, "grad_avg": False}
    _required_state = ("step", "square_avg")

    def __init__(self, params: Params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize)
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _check_group(self, group: ParamGroup) -> None:
        super()._check_group(group)
        group["alpha"] = check_number("alpha", group["alpha"])
        group["eps"] = check_number("eps", group["eps"])
        group["weight_decay"] = check_number("weight_decay", group["weight_decay"])
        group["momentum"] = check_number("momentum", group["momentum"])
        group["centered"] = check_bool("centered", group["centered"])
        group["maximize"] = check_bool("maximize", group["maximize"])

    def _init_state(self, data: np.ndarray, group: ParamGroup) -> Dict[str, Any]:
        state: Dict[str, Any] = {"step": 0, "square_avg": np.zeros_like(data)}
        if group["momentum"] > 0:
            state["momentum_buffer"] = np.zeros_like(data)
        if group["centered"]:
            state["grad_avg"] = np.zeros_like(data)
        return state

    def _update(self, data: np.ndarray, grad: np.ndarray, state: Dict[str, Any],
                group: ParamGroup) -> None:
        buf = avg = None
        if group["momentum"] > 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.zeros_like(data)
        if group["centered"]:
            avg = state.get("grad_avg")
            if avg is None:
                avg = state["grad_avg"] = np.zeros_like(data)
        _core.rmsprop_update(
            _kernel_view(data), _kernel_view(state["square_avg"]), _kernel_view(avg),
            _kernel_view(buf), _kernel_view(grad), lr=group["lr"], alpha=group["alpha"],
            eps=group["eps"], weight_decay=group["weight_decay"], momentum=group["momentum"],
            centered=group["centered"], maximize=group["maximize"])
        state["step"] += 1
