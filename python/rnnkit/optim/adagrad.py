"""Adagrad."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import _core
from .optimizer import (Optimizer, ParamGroup, Params, _is_frozen, _kernel_view, check_bool,
                        check_number)


class Adagrad(Optimizer):
    r"""Adagrad, exactly as ``torch.optim.Adagrad``.

    Per step t (counted per parameter, from 1), for parameter :math:`p` with gradient :math:`g`::

        g ← -g                                    if maximize
        g ← g + weight_decay · p                  if weight_decay ≠ 0
        clr ← lr / (1 + (t − 1) · lr_decay)
        S ← S + g²
        p ← p − clr · g / (√S + eps)

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate (default 1e-2).
        lr_decay: learning-rate decay (default 0).
        weight_decay: L2 penalty (default 0).
        initial_accumulator_value: starting value of S (default 0).
        eps: added to the denominator (default 1e-10).
        maximize: maximise the objective instead of minimising it.

    State per parameter (created with the optimiser, as torch does): ``step``, ``sum`` (S).
    A frozen parameter (``requires_grad`` False) gets its state at its first step instead.
    """

    _state_buffers = {"sum": True}
    _required_state = ("step", "sum")

    def __init__(self, params: Params, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps,
                        maximize=maximize)
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _check_group(self, group: ParamGroup) -> None:
        super()._check_group(group)
        group["lr_decay"] = check_number("lr_decay", group["lr_decay"])
        group["weight_decay"] = check_number("weight_decay", group["weight_decay"])
        group["initial_accumulator_value"] = check_number(
            "initial_accumulator_value", group["initial_accumulator_value"])
        group["eps"] = check_number("eps", group["eps"])
        group["maximize"] = check_bool("maximize", group["maximize"])

    def _on_add(self, p: Any, group: ParamGroup) -> None:
        if not _is_frozen(p):  # frozen parameters are given no state (see Optimizer.step)
            self.state[id(p)] = self._init_state(p.data, group)

    def _init_state(self, data: np.ndarray, group: ParamGroup) -> Dict[str, Any]:
        return {"step": 0,
                "sum": np.full_like(data, group["initial_accumulator_value"])}

    def _update(self, data: np.ndarray, grad: np.ndarray, state: Dict[str, Any],
                group: ParamGroup) -> None:
        step = state["step"] + 1
        _core.adagrad_update(
            _kernel_view(data), _kernel_view(state["sum"]), _kernel_view(grad), step=step,
            lr=group["lr"], lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"])
        state["step"] = step
