"""Learning-rate schedules, as torch.optim.lr_scheduler (torch 2.13) defines them.

Each scheduler writes ``group["lr"]`` of its optimiser's parameter groups. Call
``scheduler.step()`` once per epoch (or per batch), after ``optimizer.step()``. The chainable
schedules (StepLR, MultiStepLR, ExponentialLR, LinearLR, CosineAnnealingLR) update the current
lr from its previous value exactly as torch does (so the same floating-point sequence), and
remember each group's starting lr as ``group["initial_lr"]``. LambdaLR, OneCycleLR and
CosineAnnealingWarmRestarts compute it from the base lr; SequentialLR hands the epochs to one
schedule after another. ``state_dict()`` is plain data (numbers, strings, lists, dicts with
string keys), so that a trainer checkpoint stores it as JSON.
"""
from __future__ import annotations

import copy
import math
import numbers
import types
from bisect import bisect_right
from collections import Counter
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

from .optimizer import Optimizer, check_bool, check_number

__all__ = ["LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "LinearLR", "LambdaLR",
           "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "OneCycleLR", "SequentialLR",
           "ReduceLROnPlateau"]


def _check_optimizer(optimizer: Any) -> Optimizer:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{type(optimizer).__name__} is not an rnnkit.optim.Optimizer")
    return optimizer


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _check_last_epoch(last_epoch: Any) -> int:
    if isinstance(last_epoch, bool) or not isinstance(last_epoch, numbers.Integral) \
            or last_epoch < -1:
        raise ValueError(f"last_epoch must be an integer >= -1, got {last_epoch!r}")
    return int(last_epoch)


def _per_group(name: str, value: Any, optimizer: Optimizer, **bounds: Any) -> List[float]:
    """One checked number per parameter group: `value` itself if it is a list/tuple of that
    length, else `value` repeated (torch's _format_param)."""
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name} must have one value per parameter group: the optimizer "
                             f"has {n} groups, got {len(value)} values")
        return [check_number(f"{name}[{i}]", v, **bounds) for i, v in enumerate(value)]
    return [check_number(name, value, **bounds)] * n


# --- Checks of a loaded state_dict ------------------------------------------------------------
# Each takes the entry's key as `name` (so that the message names it) and raises TypeError for
# a wrong type, ValueError for a wrong value; _StateChecks adds the scheduler's class.

def _check_finite(name: str, value: Any, low: float = 0.0) -> float:
    v = check_number(name, value, low)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def _check_real(name: str, value: Any) -> float:
    """Any real number but NaN (a metric's best, ±inf before the first one)."""
    return check_number(name, value, low=-math.inf)


def _check_list(name: str, value: Any, length: Optional[int] = None) -> list:
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must have one entry per parameter group ({length}), got "
                         f"{len(value)}")
    return list(value)


def _check_lr_list(name: str, value: Any, n_groups: int) -> List[float]:
    """One finite lr >= 0 per parameter group."""
    return [_check_finite(f"{name}[{i}]", v)
            for i, v in enumerate(_check_list(name, value, n_groups))]


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be {' or '.join(map(repr, choices))}, got {value!r}")
    return value


def _check_false(name: str, value: Any) -> bool:
    """`_is_initial`: True only within the constructor's step, so False in any saved state."""
    if check_bool(name, value):
        raise ValueError(f"{name} must be False in a saved state")
    return False


def _check_milestone_list(name: str, value: Any, length: Optional[int] = None) -> List[int]:
    """Epoch indices (integers >= 0), `length` of them if given."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list of integers, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must hold {length} milestones, got {len(value)}")
    return [_check_int(f"{name}[{i}]", m, 0) for i, m in enumerate(value)]


def _check_factor(name: str, value: Any) -> float:
    """ReduceLROnPlateau's factor: a number in [0, 1)."""
    factor = check_number(name, value)
    if factor >= 1.0:
        raise ValueError(f"{name} should be < 1.0, got {factor}")
    return factor


def _check_start_factor(name: str, value: Any) -> float:
    """LinearLR's start_factor: in (0, 1]."""
    v = check_number(name, value, 0.0, 1.0)
    if v == 0:
        raise ValueError(f"Invalid {name}: 0.0 (must be > 0 and <= 1: the lr is scaled "
                         "relative to it)")
    return v


def _int(low: int) -> Callable[[str, Any], int]:
    return lambda name, value: _check_int(name, value, low)


def _number(low: float = 0.0, high: Optional[float] = None) -> Callable[[str, Any], float]:
    return lambda name, value: check_number(name, value, low, high)


def _lrs(n_groups: int) -> Callable[[str, Any], List[float]]:
    return lambda name, value: _check_lr_list(name, value, n_groups)


class _StateChecks:
    """``load_state_dict`` for the schedulers: every entry is checked before any is loaded.

    A subclass lists its entries in :meth:`_entry_checks` (key -> check(key, value)), checks
    what relates entries to one another in :meth:`_check_relations`, and may override
    :meth:`_apply_state` (which writes an already checked state)."""

    optimizer: Optimizer

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` of the same kind of scheduler.

        Raises ``TypeError`` for a non-dict or an entry of the wrong type, and ``ValueError``
        for missing entries, entries this scheduler does not have (e.g. the state of another
        kind of scheduler) or an entry out of range, before changing anything."""
        self._check_state(state_dict)
        self._apply_state(state_dict)

    def _apply_state(self, state: Dict[str, Any]) -> None:
        self.__dict__.update({k: copy.deepcopy(v) for k, v in state.items()})

    def _entry_checks(self) -> Dict[str, Callable[[str, Any], Any]]:
        raise NotImplementedError

    def _check_relations(self, state: Dict[str, Any]) -> None:
        """Checks between entries, each already of the right type."""

    def _check_state(self, state_dict: Any) -> None:
        cls = type(self).__name__
        if not isinstance(state_dict, dict):
            raise TypeError(f"{cls}.load_state_dict expects a dict, got "
                            f"{type(state_dict).__name__}")
        own = {key for key in self.__dict__ if key != "optimizer"}
        unknown = sorted(str(k) for k in state_dict if k not in own)
        if unknown:
            raise ValueError(f"{cls} state has no entries {unknown}: is it the state of "
                             "another kind of scheduler?")
        missing = sorted(own - set(state_dict))
        if missing:
            raise ValueError(f"{cls} state lacks the entries {missing}")
        try:
            for key, check in self._entry_checks().items():
                check(key, state_dict[key])
            self._check_relations(state_dict)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{cls} state: {exc}") from None


class LRScheduler(_StateChecks):
    """Base class of the epoch-driven schedules (torch.optim.lr_scheduler.LRScheduler).

    Args:
        optimizer: the optimiser whose groups' ``lr`` this schedule sets.
        last_epoch: index of the last epoch; -1 (default) starts a new schedule. A value >= 0
            resumes one and needs ``initial_lr`` in every group.

    Attributes:
        base_lrs: each group's ``initial_lr``.
        last_epoch: number of ``step()`` calls so far (0 right after construction).
    """

    # The protocol rnnkit.train.Trainer reads: False means ``step()`` once per epoch, True
    # ``step(metric)`` with the epoch's monitored loss (ReduceLROnPlateau).
    _steps_on_metric = False
    _is_initial = False

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        self.optimizer = _check_optimizer(optimizer)
        last_epoch = _check_last_epoch(last_epoch)
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] "
                                   "when resuming a scheduler with last_epoch >= 0")
        self.base_lrs: List[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        """The step the constructor takes (and SequentialLR replays): epoch 0's lr."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> List[float]:
        """The lr of each group for epoch ``last_epoch`` (already incremented)."""
        raise NotImplementedError

    def get_last_lr(self) -> List[float]:
        """The lr of each group as last set by this scheduler."""
        return list(self._last_lr)

    def step(self) -> None:
        """Advance one epoch and set each group's lr."""
        self._step_count += 1
        self._update_lr()

    def _update_lr(self, epoch: Optional[int] = None) -> None:
        """Set the groups' lr for the next epoch, or (torch's deprecated ``step(epoch)``, used
        by SequentialLR at a milestone with ``epoch=0``) for ``epoch`` from the closed form
        where the schedule has one."""
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed_form = getattr(self, "_get_closed_form_lr", None)
            values = closed_form() if closed_form is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = self._current_lrs()

    def _current_lrs(self) -> List[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> Dict[str, Any]:
        """Everything but the optimiser, as plain data (copies)."""
        return {key: copy.deepcopy(value) for key, value in self.__dict__.items()
                if key != "optimizer"}

    def _entry_checks(self) -> Dict[str, Callable[[str, Any], Any]]:
        n = len(self.optimizer.param_groups)
        return {"last_epoch": _int(-1), "base_lrs": _lrs(n), "_last_lr": _lrs(n),
                "_step_count": _int(1), "_is_initial": _check_false}


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs.

    Closed form: ``lr_t = base_lr · gamma^(t // step_size)``; the update is chainable (the
    current lr is multiplied by gamma when ``t`` is a non-zero multiple of ``step_size``).

    Args:
        optimizer: the optimiser.
        step_size: period of the decay, in epochs (>= 1).
        gamma: multiplicative factor (default 0.1).
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.step_size = _check_int("step_size", step_size, 1)
        self.gamma = check_number("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]

    def _get_closed_form_lr(self) -> List[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size)
                for base in self.base_lrs]

    def _entry_checks(self) -> Dict[str, Callable[[str, Any], Any]]:
        return {**super()._entry_checks(), "step_size": _int(1), "gamma": _number()}


class ExponentialLR(LRScheduler):
    """Multiply the lr by ``gamma`` every epoch: ``lr_t = base_lr · gamma^t`` (chainable).

    Args:
        optimizer: the optimiser.
        gamma: multiplicative factor.
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = check_number("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        if self._is_initial:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]

    def _get_closed_form_lr(self) -> List[float]:
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]

    def _entry_checks(self) -> Dict[str, Callable[[str, Any], Any]]:
        return {**super()._entry_checks(), "gamma": _number()}


class CosineAnnealingLR(LRScheduler):
    r"""Cosine annealing from the base lr to ``eta_min`` over ``T_max`` epochs (no restarts).

    Closed form: :math:`\eta_t = \eta_{min} + (\eta_{base} - \eta_{min})
    (1 + \cos(\pi t / T_{max})) / 2`. As torch, the lr is updated recursively,
    :math:`\eta_{t} = \eta_{min} + (\eta_{t-1} - \eta_{min})
    \frac{1 + \cos(\pi t / T_{max})}{1 + \cos(\pi (t-1) / T_{max})}`,
    which follows the closed form to rounding; past ``T_max`` it continues along the cosine
    (rising again), as torch's does.

    Args:
        optimizer: the optimiser.
        T_max: half-period, in epochs (>= 1).
        eta_min: minimum lr (default 0).
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        self.T_max = _check_int("T_max", T_max, 1)
        self.eta_min = check_number("eta_min", eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        t, T = self.last_epoch, self.T_max
        if self._is_initial:
            return self._current_lrs()
        if self._step_count == 1 and t > 0:
            return [self.eta_min + (base - self.eta_min) * (1 + math.cos(t * math.pi / T)) / 2
                    for base in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:
            return [lr + (base - self.eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for base, lr in zip(self.base_lrs, self._current_lrs())]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (lr - self.eta_min) + self.eta_min for lr in self._current_lrs()]

    def _get_closed_form_lr(self) -> List[float]:
        return [self.eta_min + (base - self.eta_min)
                * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base in self.base_lrs]

    def _entry_checks(self) -> Dict[str, Callable[[str, Any], Any]]:
        return {**super()._entry_checks(), "T_max": _int(1), "eta_min": _number()}


class MultiStepLR(LRScheduler):
    """Multiply the lr by ``gamma`` at each milestone epoch.

    Closed form: ``lr_t = base_lr · gamma^(number of milestones <= t)``; chainable (the current
    lr is multiplied by ``gamma^k`` at an epoch that appears k times among the milestones).

    Args:
        optimizer: the optimiser.
        milestones: epoch indices (integers >= 0; repeats count, order does not matter).
        gamma: multiplicative factor (default 0.1).
        last_epoch: see :class:`LRScheduler`.

    ``state_dict()`` holds the milestones as a sorted list (JSON has no Counter).
    """

    def __init__(self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
            raise TypeError(f"milestones must be a list of integers, got "
                            f"{type(milestones).__name__}")
        self.milestones = Counter(_check_int(f"milestones[{i}]", m, 0)
                                  for i, m in enumerate(milestones))
        self.gamma = check_number("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        if self.last_epoch not in self.milestones:
            return self._current_lrs()
        return [lr * self.gamma ** self.milestones[self.last_epoch]
                for lr in self._current_lrs()]

    def _get_closed_form_lr(self) -> List[float]:
        milestones = sorted(self.milestones.elements())
        return [base * self.gamma ** bisect_right(milestones, self.last_epoch)
                for base in self.base_lrs]

    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        state["milestones"] = sorted(self.milestones.elements())
        return state

    def _entry_checks(self) -> Dict[str, Callable[[str, Any], Any]]:
        return {**super()._entry_checks(), "milestones": _check_multistep_milestones,
                "gamma": _number()}

    def _apply_state(self, state: Dict[str, Any]) -> None:
        super()._apply_state({**state,
                              "milestones": _check_multistep_milestones("milestones",
                                                                        state["milestones"])})


def _check_multistep_milestones(name: str, value: Any) -> Counter:
    """MultiStepLR's milestones: a list of epochs (its state_dict), or torch's Counter layout
    {epoch: count} (epochs as ints or, from JSON, digit strings; counts >= 1)."""
    if not isinstance(value, dict):
        return Counter(_check_milestone_list(name, value))
    epochs = []
    for key, count in value.items():
        epoch = int(key) if isinstance(key, str) and key.isascii() and key.isdigit() else key
        epoch = _check_int(f"{name} key {key!r}", epoch, 0)
        epochs += [epoch] * _check_int(f"{name}[{key!r}]", count, 1)
    return Counter(epochs)


class LinearLR(LRScheduler):
    """Scale the lr by a factor that moves linearly from ``start_factor`` to ``end_factor``
    over ``total_iters`` epochs, then stays at ``end_factor`` (a warm-up when start < end).

    Closed form: ``lr_t = base_lr · (start + (end − start) · min(t, total_iters) /
    total_iters)``; chainable (torch's recursive update, the same floats).

    Args:
        optimizer: the optimiser.
        start_factor: factor at epoch 0, in (0, 1] (default 1/3).
        end_factor: factor from epoch ``total_iters`` on, in [0, 1] (default 1).
        total_iters: epochs of the linear change (>= 1, default 5).
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3,
                 end_factor: float = 1.0, total_iters: int = 5, last_epoch: int = -1) -> None:
        self.start_factor = _check_start_factor("start_factor", start_factor)
        self.end_factor = check_number("end_factor", end_factor, 0.0, 1.0)
        self.total_iters = _check_int("total_iters", total_iters, 1)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        if self.last_epoch == 0:
            return [lr * self.start_factor for lr in self._current_lrs()]
        if self._is_initial or self.last_epoch > self.total_iters:
            return self._current_lrs()
        ds = self.end_factor - self.start_factor
        return [lr * (1.0 + ds / (self.total_iters * self.start_factor
                                  + (self.last_epoch - 1) * ds))
                for lr in self._current_lrs()]

    def _get_closed_form_lr(self) -> List[float]:
        return [base * (self.start_factor + (self.end_factor - self.start_factor)
                        * min(self.total_iters, self.last_epoch) / self.total_iters)
                for base in self.base_lrs]

    def _entry_checks(self) -> Dict[str, Callable[[str, Any], Any]]:
        return {**super()._entry_checks(), "start_factor": _check_start_factor,
                "end_factor": _number(0.0, 1.0), "total_iters": _int(1)}


class LambdaLR(LRScheduler):
    """``lr_t = base_lr · lr_lambda(t)``, one function for all groups or one per group.

    Args:
        optimizer: the optimiser.
        lr_lambda: a function of the epoch index returning a factor (a finite number >= 0),
            or a list of such functions, one per parameter group.
        last_epoch: see :class:`LRScheduler`.

    As in torch, ``state_dict()`` does not save the functions: an entry of ``lr_lambdas`` is
    None for a plain function or lambda, and a copy of ``__dict__`` for a callable object
    (restored into the same object on load). Rebuild the LambdaLR with the same functions
    before loading its state.
    """

    def __init__(self, optimizer: Optimizer,
                 lr_lambda: Union[Callable[[int], float], Sequence[Callable[[int], float]]],
                 last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        n = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n:
                raise ValueError(f"expected {n} lr_lambdas (one per parameter group), got "
                                 f"{len(lr_lambda)}")
            lambdas = list(lr_lambda)
        else:
            lambdas = [lr_lambda] * n
        for i, fn in enumerate(lambdas):
            if not callable(fn):
                raise TypeError(f"lr_lambda[{i}] must be callable (epoch -> factor), got "
                                f"{type(fn).__name__}")
        self.lr_lambdas: List[Callable[[int], float]] = lambdas
        super().__init__(optimizer, last_epoch)

    def _factor(self, i: int, fn: Callable[[int], float]) -> float:
        factor = fn(self.last_epoch)
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real):
            raise TypeError(f"lr_lambda[{i}]({self.last_epoch}) returned "
                            f"{type(factor).__name__}, expected a number")
        if not (0 <= factor < math.inf):
            raise ValueError(f"lr_lambda[{i}]({self.last_epoch}) returned {factor!r}: the "
                             "factor must be finite and >= 0")
        return factor

    def get_lr(self) -> List[float]:
        return [base * self._factor(i, fn)
                for i, (fn, base) in enumerate(zip(self.lr_lambdas, self.base_lrs))]

    def state_dict(self) -> Dict[str, Any]:
        state = {key: copy.deepcopy(value) for key, value in self.__dict__.items()
                 if key not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [None if isinstance(fn, types.FunctionType)
                               else copy.deepcopy(fn.__dict__) for fn in self.lr_lambdas]
        return state

    def _entry_checks(self) -> Dict[str, Callable[[str, Any], Any]]:
        n = len(self.lr_lambdas)
        return {**super()._entry_checks(),
                "lr_lambdas": lambda name, value: [
                    _check_lambda_state(f"{name}[{i}]", v)
                    for i, v in enumerate(_check_list(name, value, n))]}

    def _apply_state(self, state: Dict[str, Any]) -> None:
        state = dict(state)
        saved = state.pop("lr_lambdas")
        super()._apply_state(state)
        for fn, attrs in zip(self.lr_lambdas, saved):
            if attrs is not None:
                fn.__dict__.update(copy.deepcopy(attrs))


def _check_lambda_state(name: str, value: Any) -> Optional[dict]:
    """An entry of LambdaLR's lr_lambdas state: None (a plain function) or the attributes of a
    callable object."""
    if value is not None and not (isinstance(value, dict)
                                  and all(isinstance(k, str) for k in value)):
        raise TypeError(f"{name} must be None or a dict of attributes (str keys), got "
                        f"{type(value).__name__}")
    return value


class CosineAnnealingWarmRestarts(LRScheduler):
    r"""Cosine annealing with warm restarts (SGDR), as torch's CosineAnnealingWarmRestarts.

    :math:`\eta_t = \eta_{min} + (\eta_{base} - \eta_{min})(1 + \cos(\pi T_{cur}/T_i))/2`,
    where :math:`T_{cur}` counts the epochs since the last restart and :math:`T_i` is the
    length of the current cycle: ``T_0`` at first, multiplied by ``T_mult`` at each restart.
    At a restart the lr jumps back to the base lr.

    ``step()`` advances one epoch (or one batch, if called per batch). ``step(epoch)`` jumps
    to ``epoch``, which may be fractional (``epoch + i / iters_per_epoch``), as in torch.

    Args:
        optimizer: the optimiser.
        T_0: length of the first cycle, in epochs (>= 1).
        T_mult: growth factor of the cycle length (integer >= 1, default 1).
        eta_min: minimum lr (default 0).
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(self, optimizer: Optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        self.T_0 = _check_int("T_0", T_0, 1)
        self.T_i: float = self.T_0
        self.T_mult = _check_int("T_mult", T_mult, 1)
        self.eta_min = check_number("eta_min", eta_min)
        self.T_cur: float = _check_last_epoch(last_epoch)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        return [self.eta_min + (base - self.eta_min)
                * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
                for base in self.base_lrs]

    def step(self, epoch: Optional[float] = None) -> None:  # type: ignore[override]
        """Advance one epoch, or go to ``epoch`` (a number >= 0, possibly fractional)."""
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if isinstance(epoch, bool) or not isinstance(epoch, numbers.Real) \
                    or not math.isfinite(epoch):
                raise TypeError(f"epoch must be a finite number, got {epoch!r}")
            if epoch < 0:
                raise ValueError(f"Expected non-negative epoch, but got {epoch}")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    # The cycle `epoch` falls in: cycle n ends at T_0·(T_mult^n − 1)/(T_mult − 1).
                    n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult ** n
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self._step_count += 1
        self.last_epoch = math.floor(epoch)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = self._current_lrs()

    def _entry_checks(self) -> Dict[str, Callable[[str, Any], Any]]:
        return {**super()._entry_checks(), "T_0": _int(1), "T_mult": _int(1),
                "eta_min": _number(), "T_i": _check_finite, "T_cur": _check_finite}

    def _check_relations(self, state: Dict[str, Any]) -> None:
        # T_i is T_0 · T_mult^k; T_cur counts the epochs into the cycle (T_cur == T_i only by
        # rounding, after step(epoch)).
        if state["T_i"] < state["T_0"]:
            raise ValueError(f"T_i must be >= T_0 ({state['T_0']}), got {state['T_i']}")
        if state["T_cur"] > state["T_i"]:
            raise ValueError(f"T_cur must be <= T_i ({state['T_i']}), got {state['T_cur']}")


class OneCycleLR(LRScheduler):
    """The 1cycle policy (torch's OneCycleLR): the lr rises from ``max_lr / div_factor`` to
    ``max_lr`` over the first ``pct_start`` of the steps, then falls to
    ``initial_lr / final_div_factor``; step once per batch, ``total_steps`` times at most.

    Phases (``anneal_strategy`` 'cos' or 'linear' within each), with N = total_steps and
    p = pct_start::

        two phases (default):  initial_lr → max_lr over steps [0, p·N − 1],
                               max_lr → min_lr up to step N − 1
        three_phase=True:      initial_lr → max_lr up to p·N − 1, max_lr → initial_lr up to
                               2·p·N − 2, initial_lr → min_lr up to N − 1

    With ``cycle_momentum`` (default True) the momentum moves the other way, between
    ``max_momentum`` (at the lr's low ends) and ``base_momentum`` (at max_lr): SGD's and
    RMSprop's ``momentum`` or Adam's/AdamW's beta1. Note that this sets a momentum in SGD
    even if it was built without one (as torch does); an optimiser without momentum
    (Adagrad) needs ``cycle_momentum=False``.

    The constructor writes ``initial_lr``, ``max_lr``, ``min_lr`` (and ``max_momentum``,
    ``base_momentum``) into each parameter group, as torch does; the optimiser's state_dict
    keeps them, so resuming with ``last_epoch`` finds them.

    Args:
        optimizer: the optimiser.
        max_lr: peak lr, one for all groups or a list with one per group.
        total_steps: number of steps of the cycle; or give ``epochs`` and
            ``steps_per_epoch`` (total_steps = their product).
        epochs: see ``total_steps``.
        steps_per_epoch: see ``total_steps``.
        pct_start: fraction of the cycle spent raising the lr, in [0, 1] (default 0.3).
        anneal_strategy: ``'cos'`` (default) or ``'linear'``.
        cycle_momentum: cycle the momentum inversely to the lr (default True).
        base_momentum: momentum at max_lr (default 0.85), one or one per group.
        max_momentum: momentum at the lr's low ends (default 0.95), one or one per group.
        div_factor: initial_lr = max_lr / div_factor (default 25).
        final_div_factor: min_lr = initial_lr / final_div_factor (default 1e4).
        three_phase: use the three phases above (default False).
        last_epoch: index of the last batch (-1 starts the cycle).
    """

    def __init__(self, optimizer: Optimizer, max_lr: Union[float, Sequence[float]],
                 total_steps: Optional[int] = None, epochs: Optional[int] = None,
                 steps_per_epoch: Optional[int] = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: Union[float, Sequence[float]] = 0.85,
                 max_momentum: Union[float, Sequence[float]] = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4,
                 three_phase: bool = False, last_epoch: int = -1) -> None:
        self.optimizer = _check_optimizer(optimizer)
        last_epoch = _check_last_epoch(last_epoch)
        if total_steps is not None:
            self.total_steps = _check_int("total_steps", total_steps, 1)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = (_check_int("epochs", epochs, 1)
                                * _check_int("steps_per_epoch", steps_per_epoch, 1))
        else:
            raise ValueError("You must define either total_steps OR (epochs AND "
                             "steps_per_epoch)")
        pct_start = check_number("pct_start", pct_start, 0.0, 1.0)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', got "
                             f"{anneal_strategy!r}")
        if not isinstance(three_phase, bool):
            raise TypeError(f"three_phase must be a bool, got {type(three_phase).__name__}")
        if not isinstance(cycle_momentum, bool):
            raise TypeError(f"cycle_momentum must be a bool, got "
                            f"{type(cycle_momentum).__name__}")
        div_factor = check_number("div_factor", div_factor)
        final_div_factor = check_number("final_div_factor", final_div_factor)
        for name, v in (("div_factor", div_factor), ("final_div_factor", final_div_factor)):
            if v == 0:
                raise ValueError(f"Invalid {name}: 0.0 (must be > 0: the lr is divided by it)")
        self._anneal_func_type = anneal_strategy
        n = self.total_steps
        if three_phase:
            ends = [float(pct_start * n) - 1, float(2 * pct_start * n) - 2, n - 1]
        else:
            ends = [float(pct_start * n) - 1, n - 1]
        self._schedule_phases = _one_cycle_phases(ends)

        groups = optimizer.param_groups
        max_lrs = _per_group("max_lr", max_lr, optimizer)
        if last_epoch == -1:
            for group, peak in zip(groups, max_lrs):
                group["initial_lr"] = peak / div_factor
                group["max_lr"] = peak
                group["min_lr"] = group["initial_lr"] / final_div_factor

        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            defaults = optimizer.defaults
            if "momentum" not in defaults and "betas" not in defaults:
                raise ValueError(f"{type(optimizer).__name__} has no momentum or beta1 to "
                                 "cycle: pass cycle_momentum=False")
            self.use_beta1 = "betas" in defaults
            # beta1 = 1 would zero Adam's bias correction; SGD's momentum has no upper bound.
            bounds: Dict[str, Any] = dict(high=1.0, high_open=True) if self.use_beta1 else {}
            max_ms = _per_group("max_momentum", max_momentum, optimizer, **bounds)
            base_ms = _per_group("base_momentum", base_momentum, optimizer, **bounds)
            if last_epoch == -1:
                for group, m_max, m_base in zip(groups, max_ms, base_ms):
                    if self.use_beta1:
                        group["betas"] = (m_max, *group["betas"][1:])
                    else:
                        group["momentum"] = m_max
                    group["max_momentum"] = m_max
                    group["base_momentum"] = m_base
        if last_epoch != -1:
            needed = ["initial_lr", "max_lr", "min_lr"]
            if cycle_momentum:
                needed += ["max_momentum", "base_momentum"]
            for i, group in enumerate(groups):
                missing = [k for k in needed if k not in group]
                if missing:
                    raise KeyError(f"param_groups[{i}] lacks {missing}, which OneCycleLR "
                                   "wrote there when it started: resume with last_epoch >= 0 "
                                   "only after loading the optimiser's state_dict")
        super().__init__(optimizer, last_epoch)

    def _entry_checks(self) -> Dict[str, Callable[[str, Any], Any]]:
        checks = {**super()._entry_checks(), "total_steps": _int(1),
                  "_anneal_func_type": lambda name, v: _check_choice(name, v, ("cos", "linear")),
                  "_schedule_phases": _check_one_cycle_phases, "cycle_momentum": check_bool}
        if "use_beta1" in self.__dict__:
            checks["use_beta1"] = check_bool
        return checks

    def _check_relations(self, state: Dict[str, Any]) -> None:
        n = state["total_steps"]
        if state["last_epoch"] > n:
            raise ValueError(f"last_epoch must be <= total_steps ({n}), got "
                             f"{state['last_epoch']}")
        ends = [phase["end_step"] for phase in state["_schedule_phases"]]
        if ends[-1] != n - 1 or not -1 <= ends[0] <= n - 1 \
                or (len(ends) == 3 and not math.isclose(ends[1], 2 * ends[0], abs_tol=1e-9)):
            raise ValueError(f"_schedule_phases' end steps {ends} are not those of a cycle of "
                             f"total_steps={n} (pct_start·N − 1, [2·pct_start·N − 2,] N − 1)")
        if state["cycle_momentum"] != ("use_beta1" in state):
            raise ValueError("use_beta1 must be present exactly when cycle_momentum is True")
        if "use_beta1" in state and state["use_beta1"] != ("betas" in self.optimizer.defaults):
            raise ValueError(f"use_beta1={state['use_beta1']} does not fit "
                             f"{type(self.optimizer).__name__} (it cycles "
                             f"{'beta1' if 'betas' in self.optimizer.defaults else 'momentum'})")

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> List[float]:
        step_num = self.last_epoch
        if step_num > self.total_steps:
            raise ValueError(f"Tried to step {step_num} times. The specified number of total "
                             f"steps is {self.total_steps}")
        lrs = []
        last = len(self._schedule_phases) - 1
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end_step = phase["end_step"]
                if step_num <= end_step or i == last:
                    if end_step == start_step:
                        raise ValueError(
                            f"OneCycleLR phase {i} is empty (it starts and ends at step "
                            f"{end_step}) with total_steps={self.total_steps}: choose "
                            "pct_start so that every phase spans at least one step")
                    pct = (step_num - start_step) / (end_step - start_step)
                    lr = self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct)
                    if self.cycle_momentum:
                        momentum = self._anneal(group[phase["start_momentum"]],
                                                group[phase["end_momentum"]], pct)
                    break
                start_step = phase["end_step"]
            lrs.append(lr)
            if self.cycle_momentum:
                if self.use_beta1:
                    group["betas"] = (momentum, *group["betas"][1:])
                else:
                    group["momentum"] = momentum
        return lrs


# OneCycleLR's phases: the group keys (start_lr, end_lr, start_momentum, end_momentum) each
# phase anneals between, for two phases and for three.
_PHASE_KEYS = ("start_lr", "end_lr", "start_momentum", "end_momentum")
_PHASE_NAMES = {
    2: (("initial_lr", "max_lr", "max_momentum", "base_momentum"),
        ("max_lr", "min_lr", "base_momentum", "max_momentum")),
    3: (("initial_lr", "max_lr", "max_momentum", "base_momentum"),
        ("max_lr", "initial_lr", "base_momentum", "max_momentum"),
        ("initial_lr", "min_lr", "max_momentum", "max_momentum")),
}


def _one_cycle_phases(end_steps: Sequence[Any]) -> List[Dict[str, Any]]:
    return [{"end_step": end, **dict(zip(_PHASE_KEYS, names))}
            for end, names in zip(end_steps, _PHASE_NAMES[len(end_steps)])]


def _check_one_cycle_phases(name: str, value: Any) -> List[Dict[str, Any]]:
    """OneCycleLR's _schedule_phases: 2 or 3 phases as the constructor lays them out, each
    ending at a finite step."""
    phases = _check_list(name, value)
    if len(phases) not in _PHASE_NAMES:
        raise ValueError(f"{name} must hold 2 or 3 phases, got {len(phases)}")
    for i, phase in enumerate(phases):
        if not isinstance(phase, dict):
            raise TypeError(f"{name}[{i}] must be a dict, got {type(phase).__name__}")
    expected = _one_cycle_phases([phase.get("end_step") for phase in phases])
    for i, (phase, want) in enumerate(zip(phases, expected)):
        if phase != want:
            raise ValueError(f"{name}[{i}] must be {want}, got {phase}")
        _check_finite(f"{name}[{i}]['end_step']", phase["end_step"], low=-math.inf)
    return phases


def _check_sequential_milestones(name: str, value: Any, n_schedulers: int) -> List[int]:
    """SequentialLR's milestones: n_schedulers − 1 non-decreasing epochs."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list of integers, got {type(value).__name__}")
    if len(value) != n_schedulers - 1:
        raise ValueError(f"SequentialLR expects one milestone fewer than schedulers, but got "
                         f"{n_schedulers} schedulers and {len(value)} {name}")
    ms = _check_milestone_list(name, value)
    if ms != sorted(ms):
        raise ValueError(f"{name} must be non-decreasing, got {ms}")
    return ms


class SequentialLR(LRScheduler):
    """Run schedules one after another: ``schedulers[i]`` drives the epochs from
    ``milestones[i-1]`` (0 for the first) up to ``milestones[i]``, torch's SequentialLR.

    At a milestone the next schedule starts from its own epoch 0 (its closed form where it has
    one, i.e. from its base lr), e.g. a LinearLR warm-up followed by a CosineAnnealingLR::

        warmup = LinearLR(opt, start_factor=0.1, total_iters=5)
        decay = CosineAnnealingLR(opt, T_max=95)
        sched = SequentialLR(opt, [warmup, decay], milestones=[5])

    Args:
        optimizer: the optimiser, the same one every schedule was built on.
        schedulers: the schedules (at least one; ReduceLROnPlateau cannot take part, its
            step needs a metric).
        milestones: ``len(schedulers) - 1`` non-decreasing epoch indices (integers >= 0).
        last_epoch: see :class:`LRScheduler`.

    ``state_dict()`` holds each schedule's state under ``"_schedulers"``.
    """

    def __init__(self, optimizer: Optimizer, schedulers: Sequence[LRScheduler],
                 milestones: Sequence[int], last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        last_epoch = _check_last_epoch(last_epoch)
        if isinstance(schedulers, (str, bytes)) or not isinstance(schedulers, (list, tuple)):
            raise TypeError(f"schedulers must be a list of schedulers, got "
                            f"{type(schedulers).__name__}")
        if len(schedulers) < 1:
            raise ValueError("SequentialLR expects at least one scheduler, but got none")
        for i, s in enumerate(schedulers):
            if isinstance(s, ReduceLROnPlateau):
                raise ValueError(f"SequentialLR does not support ReduceLROnPlateau (schedulers"
                                 f"[{i}]): its step needs a metric")
            if not isinstance(s, LRScheduler):
                raise TypeError(f"schedulers[{i}] must be an rnnkit lr_scheduler, got "
                                f"{type(s).__name__}")
            if s.optimizer is not optimizer:
                raise ValueError(f"SequentialLR expects all schedulers to belong to the same "
                                 f"optimizer, but schedulers[{i}] ({type(s).__name__}) was "
                                 "built on another one")
        self._milestones = _check_sequential_milestones("milestones", milestones,
                                                        len(schedulers))
        self._schedulers = list(schedulers)
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer

        # Each schedule's constructor already took its initial step: reset the lr and undo
        # those steps, then take the first schedule's initial step alone (torch's order).
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self._recursive_undo()
        idx = bisect_right(self._milestones, 0)
        self._schedulers[idx]._initial_step()
        self._last_lr = self._schedulers[idx].get_last_lr()

    def _recursive_undo(self, sched: Any = None) -> None:
        target = self if sched is None else sched
        if hasattr(target, "_schedulers"):
            for s in target._schedulers:
                self._recursive_undo(s)
        elif hasattr(target, "last_epoch"):
            target.last_epoch -= 1

    def step(self) -> None:
        """Advance one epoch, in the schedule the epoch belongs to."""
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self) -> Dict[str, Any]:
        state = {key: copy.deepcopy(value) for key, value in self.__dict__.items()
                 if key not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def _entry_checks(self) -> Dict[str, Callable[[str, Any], Any]]:
        n, k = len(self.optimizer.param_groups), len(self._schedulers)
        return {"last_epoch": _int(-1), "_last_lr": _lrs(n),
                "_milestones": lambda name, v: _check_sequential_milestones(name, v, k),
                "_schedulers": self._check_sub_states}

    def _check_sub_states(self, name: str, value: Any) -> None:
        k = len(self._schedulers)
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{name} must be a list with the states of {k} schedulers, got "
                            f"{type(value).__name__}")
        if len(value) != k:
            raise ValueError(f"{name} must hold the states of {k} schedulers, got {len(value)}")
        for i, (s, sub) in enumerate(zip(self._schedulers, value)):
            try:
                s._check_state(sub)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{name}[{i}]: {exc}") from None

    def _apply_state(self, state: Dict[str, Any]) -> None:
        state = dict(state)
        subs = state.pop("_schedulers")
        super()._apply_state(state)
        for s, sub in zip(self._schedulers, subs):
            s._apply_state(sub)


class ReduceLROnPlateau(_StateChecks):
    """Reduce the lr when a metric has stopped improving (torch's ReduceLROnPlateau).

    ``step(metric)`` once per epoch. The metric improves when it beats the best so far by the
    threshold: ``mode='min'``: ``m < best·(1 − threshold)`` (``threshold_mode='rel'``) or
    ``m < best − threshold`` (``'abs'``); ``mode='max'``: ``m > best·(1 + threshold)`` or
    ``m > best + threshold``. After more than ``patience`` epochs without improvement, each
    group's lr becomes ``max(lr · factor, min_lr)`` (unchanged if that moves it by no more than
    ``eps``), then ``cooldown`` epochs pass in which bad epochs are not counted.

    Args:
        optimizer: the optimiser.
        mode: ``'min'`` or ``'max'``.
        factor: multiplicative factor of the reduction, < 1 (default 0.1).
        patience: bad epochs tolerated before reducing (default 10).
        threshold: improvement threshold (default 1e-4).
        threshold_mode: ``'rel'`` or ``'abs'``.
        cooldown: epochs to wait after a reduction (default 0).
        min_lr: lower bound on the lr, one for all groups or one per group (default 0).
        eps: smallest change of lr that is applied (default 1e-8).
    """

    _steps_on_metric = True   # Trainer calls step(val_loss, else loss) once per epoch

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr: Union[float, Sequence[float]] = 0.0,
                 eps: float = 1e-8) -> None:
        self.factor = _check_factor("factor", factor)
        self.optimizer = _check_optimizer(optimizer)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(optimizer.param_groups):
                raise ValueError(f"expected {len(optimizer.param_groups)} min_lrs, "
                                 f"got {len(min_lr)}")
            self.default_min_lr: Optional[float] = None
            self.min_lrs = [check_number("min_lr", v) for v in min_lr]
        else:
            self.default_min_lr = check_number("min_lr", min_lr)
            self.min_lrs = [self.default_min_lr] * len(optimizer.param_groups)
        self.patience = _check_int("patience", patience, 0)
        self.cooldown = _check_int("cooldown", cooldown, 0)
        self.eps = check_number("eps", eps)
        self.last_epoch = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]
        self._init_is_better(mode, threshold, threshold_mode)
        self._reset()

    def _reset(self) -> None:
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def _init_is_better(self, mode: str, threshold: float, threshold_mode: str) -> None:
        self.mode = _check_choice("mode", mode, ("min", "max"))
        self.threshold_mode = _check_choice("threshold_mode", threshold_mode, ("rel", "abs"))
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.threshold = check_number("threshold", threshold)

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def step(self, metrics: float) -> None:
        """Record this epoch's metric and reduce the lr if it has plateaued."""
        current = float(metrics)
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _reduce_lr(self) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(f"the optimizer has {len(groups)} param groups but "
                                   f"ReduceLROnPlateau was given {len(self.min_lrs)} min_lrs")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for i, group in enumerate(groups):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, self.min_lrs[i])
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr

    def get_last_lr(self) -> List[float]:
        return list(self._last_lr)

    def state_dict(self) -> Dict[str, Any]:
        """Everything but the optimiser, as plain data (``best`` may be ±inf)."""
        return {key: (list(value) if isinstance(value, list) else value)
                for key, value in self.__dict__.items() if key != "optimizer"}

    def _entry_checks(self) -> Dict[str, Callable[[str, Any], Any]]:
        n = len(self.optimizer.param_groups)
        return {
            "factor": _check_factor, "patience": _int(0), "cooldown": _int(0),
            "eps": _number(), "threshold": _number(), "last_epoch": _int(0),
            "mode": lambda name, v: _check_choice(name, v, ("min", "max")),
            "threshold_mode": lambda name, v: _check_choice(name, v, ("rel", "abs")),
            "default_min_lr": lambda name, v: None if v is None else check_number(name, v),
            "min_lrs": lambda name, v: [check_number(f"{name}[{i}]", x)
                                        for i, x in enumerate(_check_list(name, v, n))],
            "_last_lr": _lrs(n), "mode_worse": _check_real, "best": _check_real,
            "num_bad_epochs": _int(0), "cooldown_counter": _int(0)}

    def _check_relations(self, state: Dict[str, Any]) -> None:
        worse = math.inf if state["mode"] == "min" else -math.inf
        if state["mode_worse"] != worse:
            raise ValueError(f"mode_worse must be {worse} for mode={state['mode']!r}, got "
                             f"{state['mode_worse']}")
        # step() resets the bad epochs once they pass patience, and counts the cooldown down.
        for key, bound in (("num_bad_epochs", "patience"), ("cooldown_counter", "cooldown")):
            if state[key] > state[bound]:
                raise ValueError(f"{key} must be <= {bound} ({state[bound]}), got "
                                 f"{state[key]}")
