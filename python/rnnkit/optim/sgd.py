"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import _core
from .optimizer import (Optimizer, ParamGroup, Params, _kernel_view, check_bool,
                        check_number)


class SGD(Optimizer):
    r"""Stochastic gradient descent, exactly as ``torch.optim.SGD``.

    Per step, for each parameter :math:`p` with gradient :math:`g`::

        g ← -g                                  if maximize
        g ← g + weight_decay · p                if weight_decay ≠ 0
        if momentum ≠ 0:
            b ← g                               at the first step
            b ← momentum · b + (1 − dampening) · g   afterwards
            g ← g + momentum · b                if nesterov, else g ← b
        p ← p − lr · g

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate (default 1e-3, as torch 2.x).
        momentum: momentum factor (default 0).
        dampening: dampening of the momentum (default 0).
        weight_decay: L2 penalty (default 0).
        nesterov: Nesterov momentum (needs momentum > 0 and dampening = 0).
        maximize: maximise the objective instead of minimising it.

    State per parameter: ``step`` and, when momentum ≠ 0, ``momentum_buffer``. (torch's SGD
    keeps no ``step``; a torch state dict loads without it and counts from the load.)
    """

    _state_buffers = {"momentum_buffer": False}
    _required_state = ()

    def __init__(self, params: Params, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        # Validate the constructor's arguments before touching params (torch's order).
        self._check_group(dict(defaults))
        super().__init__(params, defaults)

    def _check_group(self, group: ParamGroup) -> None:
        super()._check_group(group)
        group["momentum"] = check_number("momentum", group["momentum"])
        group["dampening"] = check_number("dampening", group["dampening"], low=-float("inf"))
        group["weight_decay"] = check_number("weight_decay", group["weight_decay"])
        group["nesterov"] = check_bool("nesterov", group["nesterov"])
        group["maximize"] = check_bool("maximize", group["maximize"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("nesterov momentum requires a momentum > 0 and zero dampening")

    def _init_state(self, data: np.ndarray, group: ParamGroup) -> Dict[str, Any]:
        return {"step": 0}

    def _update(self, data: np.ndarray, grad: np.ndarray, state: Dict[str, Any],
                group: ParamGroup) -> None:
        momentum = group["momentum"]
        buf = None
        first = False
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:  # torch: the buffer starts as a copy of the first (decayed) g
                buf = state["momentum_buffer"] = np.empty_like(data)
                first = True
        _core.sgd_update(
            _kernel_view(data), _kernel_view(buf), _kernel_view(grad), lr=group["lr"],
            momentum=momentum, dampening=group["dampening"],
            weight_decay=group["weight_decay"], nesterov=group["nesterov"],
            maximize=group["maximize"], first_step=first)
        state["step"] = state.get("step", 0) + 1
