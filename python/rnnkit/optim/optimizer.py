"""The optimiser base class: parameter groups, per-parameter state, state_dict.

Parameters are duck-typed: any object with ``.data`` (a C-contiguous, writable float32 or
float64 ``numpy.ndarray``, updated in place) and ``.grad`` (``None`` or an array of the same
shape and dtype) will do, e.g. ``rnnkit.nn.Parameter``.

A subclass declares its ``defaults``, validates a group's hyperparameters in
``_check_group``, creates a parameter's state in ``_init_state`` and applies one fused C++
update per parameter in ``_update``; the base class does the bookkeeping. As in torch.optim,
state is created lazily at a parameter's first step (Adagrad creates it eagerly).
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np


_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

ParamGroup = Dict[str, Any]
StateDict = Dict[str, Any]


def check_number(name: str, value: Any, low: float = 0.0, high: Optional[float] = None,
                 high_open: bool = False) -> float:
    """`value` as a float in [low, high] (or [low, high) when `high_open`), naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if v != v:
        raise ValueError(f"{name} must not be NaN")
    if v < low:
        raise ValueError(f"Invalid {name}: {v} (must be >= {low})")
    if high is not None and (v > high or (high_open and v == high)):
        bound = f"< {high}" if high_open else f"<= {high}"
        raise ValueError(f"Invalid {name}: {v} (must be >= {low} and {bound})")
    return v


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def _check_param(p: Any, where: str) -> None:
    if not (hasattr(p, "data") and hasattr(p, "grad")):
        raise TypeError(f"{where}: expected a parameter with .data and .grad, got "
                        f"{type(p).__name__}")
    data = p.data
    if not isinstance(data, np.ndarray):
        raise TypeError(f"{where}.data must be a numpy.ndarray, got {type(data).__name__}")
    if data.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{where}.data must have dtype float32 or float64, got {data.dtype}")
    if not data.flags.c_contiguous:
        raise ValueError(f"{where}.data must be C-contiguous (it is updated in place)")
    if not data.flags.writeable:
        raise ValueError(f"{where}.data is read-only (it is updated in place); an eval-mode "
                         "cell that packed it for fast inference locks it: call .train() on "
                         "the model before stepping the optimiser")


class Optimizer:
    """Base class of rnnkit optimisers (torch.optim.Optimizer's interface).

    Args:
        params: an iterable of parameters, or of dicts (parameter groups) each with a
            ``"params"`` entry and optional per-group hyperparameters overriding ``defaults``.
        defaults: hyperparameters for groups that do not set them.

    Attributes:
        param_groups: list of dicts, one per group: ``"params"`` (list of parameters) and the
            hyperparameters. Schedulers change ``group["lr"]`` here.
        state: per-parameter state, keyed by ``id(param)``: ``"step"`` (int) and numpy buffers
            owned by the optimiser and updated in place by the kernels.
    """

    # Hyperparameters whose value is a tuple (kept as tuples; lists in state_dict for JSON).
    _tuple_keys: Tuple[str, ...] = ()

    def __init__(self, params: Iterable[Any], defaults: Dict[str, Any]) -> None:
        self.defaults: Dict[str, Any] = dict(defaults)
        self.param_groups: List[ParamGroup] = []
        self.state: Dict[int, Dict[str, Any]] = {}
        if isinstance(params, np.ndarray) or hasattr(params, "data") or isinstance(params, dict):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"parameters or dicts, but got {type(params).__name__}")
        try:
            groups = list(params)
        except TypeError:
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"parameters or dicts, but got {type(params).__name__}") from None
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)

    # ------------------------------------------------------------------ groups

    def add_param_group(self, param_group: ParamGroup) -> None:
        """Add a group of parameters (a dict with ``"params"`` and optional hyperparameters)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("param_group must have a 'params' entry")
        params = param_group["params"]
        if isinstance(params, np.ndarray) or hasattr(params, "data"):
            params = [params]
        else:
            params = list(params)
        gi = len(self.param_groups)
        for i, p in enumerate(params):
            _check_param(p, f"param_groups[{gi}]['params'][{i}]")
        ids = {id(p) for p in params}
        if len(ids) != len(params):
            raise ValueError("a parameter group contains the same parameter more than once")
        for other in self.param_groups:
            if ids & {id(p) for p in other["params"]}:
                raise ValueError("some parameters appear in more than one parameter group")
        unknown = set(param_group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) for {type(self).__name__}: "
                             f"{', '.join(sorted(unknown))}")
        group: ParamGroup = {"params": params}
        for key, default in self.defaults.items():
            group[key] = param_group.get(key, default)
        if "initial_lr" in param_group:
            group["initial_lr"] = param_group["initial_lr"]
        self._check_group(group)
        self.param_groups.append(group)
        for p in params:
            self._on_add(p, group)

    def _check_group(self, group: ParamGroup) -> None:
        """Validate (and normalise in place) a group's hyperparameters."""
        group["lr"] = check_number("lr", group["lr"])

    def _on_add(self, p: Any, group: ParamGroup) -> None:
        """Hook for optimisers that create state eagerly (Adagrad)."""

    # ------------------------------------------------------------------ stepping

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Set every gradient to zero in place (or to None with ``set_to_none=True``).

        Unlike torch (whose default is ``set_to_none=True``), the default keeps the arrays, so
        layers that accumulate into ``.grad`` keep writing into the same memory.
        """
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad[...] = 0

    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """One update of every parameter whose ``.grad`` is not None.

        ``closure``, when given, is called first (to recompute the loss); its value is returned.
        """
        loss = closure() if closure is not None else None
        for gi, group in enumerate(self.param_groups):
            for i, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                data, grad = self._checked_arrays(p, f"param_groups[{gi}]['params'][{i}]")
                state = self.state.get(id(p))
                if state is None:
                    state = self._init_state(data, group)
                    self.state[id(p)] = state
                self._update(data, grad, state, group)
                mark_changed = getattr(p, "mark_changed", None)
                if mark_changed is not None:  # layers that cache packed weights look at it
                    mark_changed()
        return loss

    @staticmethod
    def _checked_arrays(p: Any, where: str) -> Tuple[np.ndarray, np.ndarray]:
        data, grad = p.data, p.grad
        if not isinstance(data, np.ndarray) or data.dtype not in _FLOAT_DTYPES:
            _check_param(p, where)
        if not (data.flags.c_contiguous and data.flags.writeable):
            _check_param(p, where)
        if not isinstance(grad, np.ndarray):
            raise TypeError(f"{where}.grad must be a numpy.ndarray or None, got "
                            f"{type(grad).__name__}")
        if grad.dtype != data.dtype:
            raise TypeError(f"{where}.grad has dtype {grad.dtype}, expected {data.dtype} "
                            "(the dtype of .data)")
        if grad.shape != data.shape:
            raise ValueError(f"{where}.grad has shape {grad.shape}, expected {data.shape} "
                             "(the shape of .data)")
        if np.may_share_memory(grad, data):
            raise ValueError(f"{where}.grad shares memory with .data")
        return data, np.ascontiguousarray(grad)

    def _init_state(self, data: np.ndarray, group: ParamGroup) -> Dict[str, Any]:
        raise NotImplementedError

    def _update(self, data: np.ndarray, grad: np.ndarray, state: Dict[str, Any],
                group: ParamGroup) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ state_dict

    def state_dict(self) -> StateDict:
        """The optimiser's state as plain data: numbers, strings, lists and numpy arrays.

        ``{"state": {"<index>": {"step": int, "<buffer>": ndarray, ...}, ...},
        "param_groups": [{<hyperparameters>, "params": [<index>, ...]}, ...]}``, where a
        parameter's index counts over all groups in order (torch's layout, with string keys so
        that everything but the arrays serialises to JSON). Arrays are copies.
        """
        groups: List[Dict[str, Any]] = []
        state: Dict[str, Dict[str, Any]] = {}
        index = 0
        for group in self.param_groups:
            saved: Dict[str, Any] = {}
            for key, value in group.items():
                if key == "params":
                    continue
                saved[key] = list(value) if isinstance(value, tuple) else value
            indices = []
            for p in group["params"]:
                st = self.state.get(id(p))
                if st is not None:
                    state[str(index)] = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                         for k, v in st.items()}
                indices.append(index)
                index += 1
            saved["params"] = indices
            groups.append(saved)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: StateDict) -> None:
        """Restore hyperparameters and state saved by :meth:`state_dict` (arrays are copied).

        The optimiser must have the same number of groups with the same number of parameters
        of the same shapes. Afterwards, stepping continues bitwise as the saved optimiser would.
        """
        if not isinstance(state_dict, dict) or "param_groups" not in state_dict \
                or "state" not in state_dict:
            raise ValueError("state_dict must be a dict with 'state' and 'param_groups'")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, "
                             f"the optimizer has {len(self.param_groups)}")
        for gi, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"param_groups[{gi}] has {len(group['params'])} parameters, "
                                 f"the loaded state dict {len(saved['params'])}")
        saved_state = {str(k): v for k, v in state_dict["state"].items()}
        new_groups: List[ParamGroup] = []
        new_state: Dict[int, Dict[str, Any]] = {}
        for gi, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            new_group: ParamGroup = {"params": group["params"]}
            for key, value in saved.items():
                if key == "params":
                    continue
                new_group[key] = tuple(value) if key in self._tuple_keys else value
            for key, default in self.defaults.items():
                new_group.setdefault(key, default)
            self._check_group(new_group)
            new_groups.append(new_group)
            for index, p in zip(saved["params"], group["params"]):
                st = saved_state.get(str(index))
                if st is None:
                    continue
                entry: Dict[str, Any] = {}
                for key, value in st.items():
                    if isinstance(value, np.ndarray):
                        if value.shape != p.data.shape:
                            raise ValueError(f"state '{key}' of parameter {index} has shape "
                                             f"{value.shape}, the parameter {p.data.shape}")
                        entry[key] = np.array(value, dtype=p.data.dtype, order="C", copy=True)
                    elif key == "step":
                        entry[key] = int(value)
                    else:
                        entry[key] = value
                new_state[id(p)] = entry
        self.param_groups[:] = new_groups
        self.state = new_state


Params = Union[Iterable[Any], Iterable[Dict[str, Any]]]
