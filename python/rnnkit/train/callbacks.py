"""Callbacks: hooks into `Trainer.fit` (early stopping, checkpoints, your own).

A callback subclasses :class:`Callback` and overrides any of the ``on_*`` hooks; each gets the
trainer and a dict of the latest metrics (``on_after_backward`` gets the batch index only).
Setting ``trainer.stop_training = True`` ends training after the current epoch.

Order within one batch: forward, loss, backward, gradient clipping, ``on_after_backward``,
optimiser step, ``on_batch_end``. With ``tbptt`` each chunk takes an optimiser step, so
``on_after_backward`` runs once per chunk (with the same batch index).
"""
from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Dict, List, Optional

import numpy as np

from ..io import save

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

Logs = Dict[str, float]


class Callback:
    """Base class: every hook does nothing."""

    def on_train_begin(self, trainer: "Trainer", logs: Logs) -> None: ...
    def on_epoch_begin(self, trainer: "Trainer", epoch: int, logs: Logs) -> None: ...
    def on_after_backward(self, trainer: "Trainer", batch: int) -> None:
        """After the gradients of a step are complete (summed by backward, clipped to
        ``clip_grad_norm``, checked finite) and before ``optimizer.step()`` uses them: read
        or change ``p.grad`` of ``trainer.model.parameters()`` in place here (e.g. average
        them across processes). A step skipped for a non-finite loss or gradient, or one
        with no counted target, does not call it."""

    def on_batch_end(self, trainer: "Trainer", batch: int, logs: Logs) -> None: ...
    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: Logs) -> None: ...
    def on_train_end(self, trainer: "Trainer", logs: Logs) -> None: ...


def _resolve_mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


class _Monitor:
    """Tracks the best value of one metric."""

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        self.monitor = monitor
        self.mode = _resolve_mode(monitor, mode)
        self.min_delta = abs(float(min_delta))
        self.best = math.inf if self.mode == "min" else -math.inf

    def value(self, logs: Logs) -> Optional[float]:
        if self.monitor not in logs:
            available = ", ".join(sorted(logs)) or "none"
            raise KeyError(f"callback monitors {self.monitor!r}, which this run does not "
                           f"report (available: {available}); pass validation_data for val_*")
        v = float(logs[self.monitor])
        return v if math.isfinite(v) else None

    def improved(self, v: float) -> bool:
        if self.mode == "min":
            return v < self.best - self.min_delta
        return v > self.best + self.min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights`` the model's parameters are set back to the best epoch's.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False) -> None:
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        self.tracker = _Monitor(monitor, mode, min_delta)
        self.patience = int(patience)
        self.restore_best_weights = restore_best_weights
        self.wait = 0
        self.best_epoch: Optional[int] = None
        self.stopped_epoch: Optional[int] = None
        self._best_state: Optional[Dict[str, np.ndarray]] = None

    def on_train_begin(self, trainer: "Trainer", logs: Logs) -> None:
        self.wait = 0
        self.stopped_epoch = None
        self.best_epoch = None
        self._best_state = None
        self.tracker.best = math.inf if self.tracker.mode == "min" else -math.inf

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: Logs) -> None:
        v = self.tracker.value(logs)
        if v is not None and self.tracker.improved(v):
            self.tracker.best, self.best_epoch, self.wait = v, epoch, 0
            if self.restore_best_weights:
                self._best_state = trainer.model.state_dict()
            return
        self.wait += 1
        if self.wait >= max(self.patience, 1):  # as Keras: `patience` epochs without progress
            self.stopped_epoch = epoch
            trainer.stop_training = True
            trainer.stop_reason = (f"early stopping: {self.tracker.monitor} did not improve for "
                                   f"{self.wait} epoch(s); best {self.tracker.best:.6g} at epoch "
                                   f"{(self.best_epoch or 0) + 1}")

    def on_train_end(self, trainer: "Trainer", logs: Logs) -> None:
        if self.restore_best_weights and self._best_state is not None and self.stopped_epoch is not None:
            trainer.model.load_state_dict(self._best_state)


class ModelCheckpoint(Callback):
    """Save the trainer (model, optimiser, schedule, progress) with :func:`rnnkit.save`.

    ``path`` may contain ``{epoch}`` and metric names, e.g. ``"ckpt-{epoch:03d}.rnnkit"``.
    With ``save_best_only`` it saves only when ``monitor`` improves. Writes are atomic and an
    epoch whose metrics are not finite is never saved, so the last good file always stays.
    """

    def __init__(self, path: str, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto") -> None:
        self.path = os.fspath(path)
        self.save_best_only = save_best_only
        self.tracker = _Monitor(monitor, mode, 0.0)
        self.saved: List[str] = []

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: Logs) -> None:
        if not all(math.isfinite(float(v)) for v in logs.values()):
            return
        if self.save_best_only:
            v = self.tracker.value(logs)
            if v is None or not self.tracker.improved(v):
                return
            self.tracker.best = v
        if not getattr(trainer, "is_main", True):
            return   # distributed: rank 0 writes; every rank holds the same state
        path = self.path.format(epoch=epoch + 1, **logs)
        save(trainer, path)
        self.saved.append(path)
