"""The optimiser base class: parameter groups, per-parameter state, state_dict.

Parameters are duck-typed: any object with ``.data`` (a C-contiguous, writable float32 or
float64 ``numpy.ndarray``, updated in place) and ``.grad`` (``None`` or an array of the same
shape and dtype) will do, e.g. ``rnnkit.nn.Parameter``. Any shape is accepted, 0-d (a
learned scalar such as a temperature) included. A parameter with ``requires_grad`` False
(frozen) is skipped by ``step`` as one whose ``grad`` is None: no update, no state.

A subclass declares its ``defaults``, validates a group's hyperparameters in
``_check_group``, creates a parameter's state in ``_init_state`` and applies one fused C++
update per parameter in ``_update``; the base class does the bookkeeping. As in torch.optim,
state is created lazily at a parameter's first step (Adagrad creates it eagerly).
"""
from __future__ import annotations

import numbers
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np


_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

ParamGroup = Dict[str, Any]
StateDict = Dict[str, Any]

# Group keys that torch.optim saves but that mean nothing here (devices, autograd, kernel
# choice): a torch state dict loads with them dropped. Each must be None or a bool, as torch
# writes them; "param_names" is torch's optional list of names, one per parameter.
_TORCH_ONLY_GROUP_KEYS = ("foreach", "capturable", "differentiable", "fused")

# Group keys that learning-rate schedulers add (torch's names): kept and saved with the group.
_SCHEDULER_GROUP_KEYS = ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum")


def _kernel_view(a: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """`a` as the kernels take it: a 0-d array becomes a (1,) view of the same memory (the
    bindings want at least one dimension); other arrays and None pass unchanged."""
    if a is not None and a.ndim == 0:
        return a.reshape(1)
    return a


def _is_frozen(p: Any) -> bool:
    """True for a parameter marked ``requires_grad = False`` (torch's freezing flag); duck-typed
    parameters without the attribute are trainable."""
    return not getattr(p, "requires_grad", True)


def _from_torch(value: Any) -> Any:
    """`value` with every torch tensor in it (nested in dicts, lists, tuples) as a numpy array.

    torch is never imported here: a tensor can only exist once the caller has imported it, so
    looking it up in ``sys.modules`` finds it whenever it is needed."""
    torch = sys.modules.get("torch")
    if torch is None:
        return value

    def convert(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v.detach().cpu().numpy()
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return type(v)(convert(x) for x in v)
        return v

    return convert(value)


def _plain_scalar(value: Any) -> Any:
    """A 0-d numeric numpy array (a converted torch scalar tensor) as a Python number; lists
    and tuples elementwise; anything else unchanged (the group checks judge it)."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "biuf":
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain_scalar(v) for v in value)
    return value


def _check_step(value: Any, where: str) -> int:
    """A state's ``step`` count as an int >= 0. torch saves it as a float32 scalar tensor, so
    an integral float (or a 0-d array of one) is accepted."""
    v = value
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{where} must be an integer step count, got "
                        f"{type(value).__name__} {value!r}")
    f = float(v)
    if not (f == f and abs(f) != float("inf")) or f != int(f):
        raise ValueError(f"{where} must be a whole number of steps, got {value!r}")
    if f < 0:
        raise ValueError(f"{where} must be >= 0, got {value!r}")
    return int(f)


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

    # What a parameter's state may hold, checked by load_state_dict: buffer name -> whether
    # its values must be >= 0 (squared averages, sums of squares), and the keys every saved
    # entry must have ("step" is optional only for SGD, whose torch state has none).
    _state_buffers: Dict[str, bool] = {}
    _required_state: Tuple[str, ...] = ()

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
        """One update of every parameter whose ``.grad`` is not None and that is not frozen
        (``requires_grad`` False): the others are neither updated nor given state.

        ``closure``, when given, is called first (to recompute the loss); its value is returned.
        """
        loss = closure() if closure is not None else None
        for gi, group in enumerate(self.param_groups):
            for i, p in enumerate(group["params"]):
                if p.grad is None or _is_frozen(p):
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

        The optimiser must have the same number of groups with the same number of parameters,
        and every buffer must have its parameter's shape and dtype. Afterwards, stepping
        continues bitwise as the saved optimiser would.

        A ``torch.optim`` state dict of the same optimiser loads too: its tensors are converted
        with ``.numpy()`` (integer state keys, a float ``step`` and torch's device/kernel
        flags such as ``foreach`` and ``fused`` are understood; the flags are dropped).

        Everything is checked before anything changes: on any error (``TypeError`` for a wrong
        type, ``ValueError`` for a wrong structure, count, shape, dtype or value, each naming
        the entry) the optimiser is left exactly as it was.
        """
        groups, state = self._checked_state_dict(state_dict)
        self.param_groups[:] = groups
        self.state = state

    def _checked_state_dict(self, state_dict: Any
                            ) -> Tuple[List[ParamGroup], Dict[int, Dict[str, Any]]]:
        """The groups and state `state_dict` describes, validated; nothing of self changes."""
        if not isinstance(state_dict, dict):
            raise TypeError("state_dict must be a dict with 'state' and 'param_groups', got "
                            f"{type(state_dict).__name__}")
        missing = [k for k in ("state", "param_groups") if k not in state_dict]
        extra = sorted(str(k) for k in state_dict if k not in ("state", "param_groups"))
        if missing or extra:
            raise ValueError("state_dict must have exactly the keys 'state' and 'param_groups'"
                             + (f"; missing {missing}" if missing else "")
                             + (f"; unknown {extra}" if extra else ""))
        state_dict = _from_torch(state_dict)
        saved_groups = state_dict["param_groups"]
        saved_state = state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)):
            raise TypeError("state_dict['param_groups'] must be a list of dicts, got "
                            f"{type(saved_groups).__name__}")
        if not isinstance(saved_state, dict):
            raise TypeError("state_dict['state'] must be a dict (parameter index -> state), "
                            f"got {type(saved_state).__name__}")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, "
                             f"the optimizer has {len(self.param_groups)}")

        # Parameter indices first: which saved index stands for which parameter.
        index_to_param: Dict[int, Tuple[Any, ParamGroup, int]] = {}
        for gi, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            where = f"state_dict['param_groups'][{gi}]"
            if not isinstance(saved, dict):
                raise TypeError(f"{where} must be a dict, got {type(saved).__name__}")
            if "params" not in saved:
                raise ValueError(f"{where} has no 'params' entry")
            indices = saved["params"]
            if not isinstance(indices, (list, tuple)):
                raise TypeError(f"{where}['params'] must be a list of parameter indices, got "
                                f"{type(indices).__name__}")
            if len(indices) != len(group["params"]):
                raise ValueError(f"param_groups[{gi}] has {len(group['params'])} parameters, "
                                 f"the loaded state dict {len(indices)}")
            for index, p in zip(indices, group["params"]):
                if isinstance(index, (bool, np.bool_)) or not isinstance(index, numbers.Integral):
                    raise TypeError(f"{where}['params'] must hold integer indices, got "
                                    f"{type(index).__name__} {index!r}")
                if int(index) in index_to_param:
                    raise ValueError(f"{where}['params']: parameter index {index} appears "
                                     "more than once in the state dict")
                index_to_param[int(index)] = (p, group, gi)

        new_groups: List[ParamGroup] = []
        for gi, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            new_groups.append(self._checked_group(saved, group, gi))

        new_state: Dict[int, Dict[str, Any]] = {}
        for key, entry in saved_state.items():
            index = _state_index(key)
            if index is None or index not in index_to_param:
                raise ValueError(f"state_dict['state'] has an entry for parameter {key!r}, "
                                 f"which no parameter group lists (indices "
                                 f"{sorted(index_to_param)})")
            p, _, gi = index_to_param[index]
            if id(p) in new_state:
                raise ValueError(f"state_dict['state'] has two entries for parameter {index}")
            new_state[id(p)] = self._checked_state_entry(
                entry, p, f"state_dict['state'][{key!r}]")
        return new_groups, new_state

    def _checked_group(self, saved: Dict[str, Any], group: ParamGroup, gi: int) -> ParamGroup:
        """A new group over `group`'s parameters with `saved`'s hyperparameters, checked."""
        where = f"state_dict['param_groups'][{gi}]"
        new_group: ParamGroup = {"params": group["params"]}
        for key, value in saved.items():
            if key == "params":
                continue
            if key in _TORCH_ONLY_GROUP_KEYS:
                if value is not None and not isinstance(value, (bool, np.bool_)):
                    raise TypeError(f"{where}[{key!r}] must be None or a bool, got "
                                    f"{type(value).__name__}")
                continue
            if key == "param_names":
                if not isinstance(value, (list, tuple)) or \
                        not all(isinstance(n, str) for n in value):
                    raise TypeError(f"{where}['param_names'] must be a list of strings")
                continue
            value = _plain_scalar(value)
            if key in _SCHEDULER_GROUP_KEYS:
                new_group[key] = check_number(f"{where}[{key!r}]", value)
            elif key in self.defaults:
                if key in self._tuple_keys and isinstance(value, list):
                    value = tuple(value)
                new_group[key] = value
            else:
                raise ValueError(f"{where} has an unknown hyperparameter {key!r} for "
                                 f"{type(self).__name__} (known: "
                                 f"{', '.join(sorted(self.defaults))})")
        for key, default in self.defaults.items():
            new_group.setdefault(key, default)
        try:
            self._check_group(new_group)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{where}: {exc}") from None
        return new_group

    def _checked_state_entry(self, entry: Any, p: Any, where: str) -> Dict[str, Any]:
        """A parameter's saved state, checked against the parameter and copied."""
        if not isinstance(entry, dict):
            raise TypeError(f"{where} must be a dict of state, got {type(entry).__name__}")
        missing = [k for k in self._required_state if entry.get(k) is None]
        if missing:
            raise ValueError(f"{where} lacks {', '.join(map(repr, missing))} "
                             f"({type(self).__name__} state holds "
                             f"{', '.join(map(repr, ('step',) + tuple(self._state_buffers)))})")
        data = p.data
        out: Dict[str, Any] = {}
        for key, value in entry.items():
            if key == "step":
                out["step"] = _check_step(value, f"{where}['step']")
                continue
            if key not in self._state_buffers:
                raise ValueError(f"{where} has an unknown entry {key!r} for "
                                 f"{type(self).__name__} (known: 'step', "
                                 f"{', '.join(map(repr, self._state_buffers))})")
            if value is None:  # an optional buffer not created yet (torch writes None)
                continue
            if not isinstance(value, np.ndarray):
                raise TypeError(f"{where}[{key!r}] must be a numpy array of shape "
                                f"{data.shape} and dtype {data.dtype}, got "
                                f"{type(value).__name__}")
            if value.dtype != data.dtype:
                raise TypeError(f"{where}[{key!r}] has dtype {value.dtype}, expected "
                                f"{data.dtype} (the parameter's)")
            if value.shape != data.shape:
                raise ValueError(f"{where}[{key!r}] has shape {value.shape}, expected "
                                 f"{data.shape} (the parameter's)")
            # A NaN or inf moment would spread to the parameter at the next step; a negative
            # square or sum of squares cannot come out of the update rule at all.
            if not np.isfinite(value).all():
                raise ValueError(f"{where}[{key!r}] contains NaN or inf")
            if self._state_buffers[key] and (value < 0).any():
                raise ValueError(f"{where}[{key!r}] has negative values, but it is an "
                                 "average or sum of squares (>= 0)")
            out[key] = np.array(value, dtype=data.dtype, order="C", copy=True)
        return out


def _state_index(key: Any) -> Optional[int]:
    """A state key as a parameter index: torch's int keys, rnnkit's (JSON) string keys."""
    if isinstance(key, (bool, np.bool_)):
        return None
    if isinstance(key, numbers.Integral):
        return int(key)
    if isinstance(key, str) and key.isdigit():
        return int(key)
    return None


Params = Union[Iterable[Any], Iterable[Dict[str, Any]]]
