"""Adam and AdamW."""
from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

from .. import _core
from .optimizer import (Optimizer, ParamGroup, Params, _kernel_view, check_bool,
                        check_number)


def _check_betas(betas: Any) -> Tuple[float, float]:
    if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
        raise TypeError(f"betas must be a pair of floats (beta1, beta2), got {betas!r}")
    return (check_number("betas[0]", betas[0], 0.0, 1.0, high_open=True),
            check_number("betas[1]", betas[1], 0.0, 1.0, high_open=True))


class Adam(Optimizer):
    r"""Adam, exactly as ``torch.optim.Adam`` (single-tensor CPU path).

    Per step t (counted per parameter, from 1), for parameter :math:`p` with gradient :math:`g`::

        g ← -g                                    if maximize
        g ← g + weight_decay · p                  if weight_decay ≠ 0 (L2, coupled)
        m ← m + (1 − β1) · (g − m)                (torch.lerp)
        v ← β2 · v + (1 − β2) · g²
        v̂ ← max(v̂, v) if amsgrad, else v
        p ← p − lr / (1 − β1ᵗ) · m / (√v̂ / √(1 − β2ᵗ) + eps)

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate (default 1e-3).
        betas: (β1, β2), each in [0, 1) (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0).
        amsgrad: use the running maximum of v (AMSGrad).
        maximize: maximise the objective instead of minimising it.
        decoupled_weight_decay: apply weight decay as AdamW does (see :class:`AdamW`).

    State per parameter: ``step``, ``exp_avg`` (m), ``exp_avg_sq`` (v) and, with amsgrad,
    ``max_exp_avg_sq`` (v̂).
    """

    _tuple_keys = ("betas",)
    _state_buffers = {"exp_avg": False, "exp_avg_sq": True, "max_exp_avg_sq": True}
    _required_state = ("step", "exp_avg", "exp_avg_sq")

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize,
                        decoupled_weight_decay=decoupled_weight_decay)
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _check_group(self, group: ParamGroup) -> None:
        super()._check_group(group)
        group["betas"] = _check_betas(group["betas"])
        group["eps"] = check_number("eps", group["eps"])
        group["weight_decay"] = check_number("weight_decay", group["weight_decay"])
        for key in ("amsgrad", "maximize", "decoupled_weight_decay"):
            group[key] = check_bool(key, group[key])

    def _init_state(self, data: np.ndarray, group: ParamGroup) -> Dict[str, Any]:
        state: Dict[str, Any] = {"step": 0, "exp_avg": np.zeros_like(data),
                                 "exp_avg_sq": np.zeros_like(data)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = np.zeros_like(data)
        return state

    def _update(self, data: np.ndarray, grad: np.ndarray, state: Dict[str, Any],
                group: ParamGroup) -> None:
        vmax = None
        if group["amsgrad"]:
            vmax = state.get("max_exp_avg_sq")
            if vmax is None:  # amsgrad switched on later: start from zeros, as torch does
                vmax = state["max_exp_avg_sq"] = np.zeros_like(data)
        step = state["step"] + 1
        beta1, beta2 = group["betas"]
        _core.adam_update(
            _kernel_view(data), _kernel_view(state["exp_avg"]),
            _kernel_view(state["exp_avg_sq"]), _kernel_view(vmax), _kernel_view(grad), step=step,
            lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
            weight_decay=group["weight_decay"], amsgrad=group["amsgrad"],
            maximize=group["maximize"],
            decoupled_weight_decay=group["decoupled_weight_decay"])
        state["step"] = step


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay, exactly as ``torch.optim.AdamW``.

    As :class:`Adam`, except that weight decay shrinks the parameter instead of entering the
    gradient: before the moment updates, ``p ← p · (1 − lr · weight_decay)``, and ``g`` is the
    raw (possibly negated) gradient. Default ``weight_decay`` is 1e-2.
    """

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=True)

    def _check_group(self, group: ParamGroup) -> None:
        group["decoupled_weight_decay"] = True
        super()._check_group(group)
