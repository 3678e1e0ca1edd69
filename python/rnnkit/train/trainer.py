"""Trainer: the training loop (batches, validation, metrics, callbacks, truncated BPTT).

Data are numpy arrays with the batch on axis 0: ``x`` (N, ...), ``y`` (N, ...), ``lengths``
(N,). Sequence models should therefore use ``batch_first=True`` layers, e.g.::

    model = nn.Sequential(nn.Embedding(V, 64), nn.LSTM(64, 256, batch_first=True),
                          nn.Linear(256, V))
    trainer = Trainer(model, losses.CrossEntropyLoss(), optim.Adam(model.parameters(), 2e-3),
                      clip_grad_norm=1.0)
    history = trainer.fit(x, y, epochs=10, batch_size=32, validation_data=(xv, yv))

Seams: ``Callback.on_after_backward`` sees (and may change) each step's finished gradients
before the optimiser uses them; the epoch metrics come from the loss (its ``count`` and
``metrics``: accuracy for CrossEntropyLoss); truncated BPTT lives in :mod:`.tbptt`; a schedule
whose class sets ``_steps_on_metric`` (ReduceLROnPlateau) is stepped on the monitored loss.

Guard rails: gradients are clipped when ``clip_grad_norm`` is set; a non-finite loss or
gradient stops training *before* the optimiser step, so the parameters stay the last good
ones (and ModelCheckpoint never saves a non-finite epoch); Ctrl-C stops cleanly after the
current batch. ``fit(..., epochs=E)`` runs from the epochs already completed up to E, so a
trainer restored from a checkpoint continues where it stopped, bitwise as if uninterrupted.
"""
from __future__ import annotations

import math
import signal
import threading
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..ops import _validate
from ..optim import clip_grad_norm_
from . import tbptt as _tbptt
from .callbacks import Callback
from .history import History
from .progress import Progress


def _batch_len(name: str, a: Any) -> int:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.ndim == 0:
        raise ValueError(f"{name} must have a batch axis (axis 0), got a 0-d array")
    return a.shape[0]


def _check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    return int(batch_size)


class _Totals:
    """Sums behind the epoch metrics: the loss summed over counted targets (a mean-reduced
    loss times its count, see the losses' ``count``), and each of the loss's ``metrics`` as
    (sum, count), so that the result does not depend on how the data were batched (ignored
    targets count nowhere)."""

    def __init__(self) -> None:
        self.loss = 0.0
        self.count = 0
        self.metrics: Dict[str, List[float]] = {}

    def add(self, other: "_Totals") -> None:
        self.loss += other.loss
        self.count += other.count
        for name, (total, n) in other.metrics.items():
            mine = self.metrics.setdefault(name, [0, 0])
            mine[0] += total
            mine[1] += n

    def logs(self) -> Dict[str, float]:
        out = {"loss": self.loss / self.count if self.count else 0.0}
        for name, (total, n) in self.metrics.items():
            if n:
                out[name] = total / n
        return out


def _loss_count(loss: Any, pred: np.ndarray, target: np.ndarray) -> int:
    """The loss's ``count`` (rnnkit.losses); for a loss without one, the prediction's size
    for a mean reduction, else 1."""
    count = getattr(loss, "count", None)
    if count is not None:
        return int(count(pred, target))
    return int(np.asarray(pred).size) if getattr(loss, "reduction", "mean") == "mean" else 1


def _check_data(x: Any, y: Any, lengths: Any) -> Tuple[np.ndarray, Optional[np.ndarray],
                                                       Optional[np.ndarray]]:
    n = _batch_len("x", x)
    if y is not None and _batch_len("y", y) != n:
        raise ValueError(f"x and y must have the same number of samples on axis 0, got "
                         f"x {x.shape} and y {y.shape}")
    if lengths is not None:
        if x.ndim < 2:
            raise ValueError(f"lengths needs sequences, x (N, T, ...), got x {x.shape}")
        lengths = _validate.lengths_array(lengths, n, x.shape[1])  # time is axis 1
    return x, y, lengths


class Trainer:
    """Trains ``model`` (a Module mapping x -> prediction, with ``backward``) on ``loss``.

    Args:
        model: e.g. an ``nn.Sequential``; called as ``model(x)`` or ``model(x, lengths=...)``.
        loss: a loss from :mod:`rnnkit.losses` (``loss(pred, y)`` then ``loss.backward()``).
        optimizer: an optimiser from :mod:`rnnkit.optim` over the model's parameters.
        clip_grad_norm: clip the global L2 norm of the gradients to this value (None: off).
        scheduler: optional learning-rate schedule, stepped once per epoch. A schedule whose
            class sets ``_steps_on_metric = True`` (ReduceLROnPlateau) is stepped with
            ``val_loss`` when there is validation data, else ``loss``; others with ``step()``.
        seed: seeds the shuffling generator (its state is part of checkpoints).
    """

    def __init__(self, model: Any, loss: Any, optimizer: Any,
                 clip_grad_norm: Optional[float] = None, *, scheduler: Any = None,
                 seed: Optional[int] = 0) -> None:
        if clip_grad_norm is not None and not clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be > 0 or None, got {clip_grad_norm}")
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.clip_grad_norm = clip_grad_norm
        self.scheduler = scheduler
        self.rng = np.random.default_rng(seed)
        self.epoch = 0          # epochs completed
        self.global_step = 0    # optimiser steps taken
        self.stop_training = False
        self.stop_reason: Optional[str] = None
        self._interrupted = False

    # ------------------------------------------------------------------ fit
    def fit(self, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int,
            lengths: Optional[np.ndarray] = None,
            validation_data: Optional[Sequence[np.ndarray]] = None, shuffle: bool = True,
            callbacks: Iterable[Callback] = (), tbptt: Optional[int] = None,
            verbose: int = 1) -> History:
        """Train until ``epochs`` epochs are complete; returns the :class:`History`.

        ``validation_data`` is ``(x_val, y_val)`` or ``(x_val, y_val, lengths_val)``.
        ``tbptt=k`` splits each batch's sequences (axis 1) into chunks of k steps, carries
        the recurrent state from chunk to chunk and cuts the gradient between them (targets
        must then be per step: y (N, T, ...)). With k >= T it equals full BPTT.
        """
        x, y, lengths = _check_data(x, y, lengths)
        batch_size = _check_batch_size(batch_size)
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be (x_val, y_val) or "
                                 "(x_val, y_val, lengths_val)")
            try:
                _check_data(*validation_data[:2], validation_data[2]
                            if len(validation_data) > 2 else None)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"validation_data: {exc}") from exc
        if tbptt is not None:
            tbptt = _tbptt.check(self.model, tbptt, x, y)
        callbacks = list(callbacks)
        history = History()
        self.stop_training, self.stop_reason = False, None
        for cb in callbacks:
            cb.on_train_begin(self, {})
        with self._sigint_guard():
            while self.epoch < epochs and not self.stop_training:
                done = self._train_epoch(x, y, lengths, batch_size, shuffle, tbptt, epochs,
                                         verbose, callbacks)
                if done is None:  # stopped inside the epoch (non-finite value or Ctrl-C)
                    break
                logs, progress = done
                if validation_data is not None:
                    val = self.evaluate(*validation_data[:2], batch_size=batch_size,
                                        lengths=validation_data[2] if len(validation_data) > 2
                                        else None)
                    logs.update({"val_" + k: v for k, v in val.items()})
                progress.close(logs)
                self._step_scheduler(logs)
                self.epoch += 1
                history.record(self.epoch - 1, logs)
                for cb in callbacks:
                    cb.on_epoch_end(self, self.epoch - 1, logs)
                if self._interrupted and not self.stop_training:  # Ctrl-C between batches
                    self.stop_training = True
                    self.stop_reason = (f"interrupted (Ctrl-C) after epoch {self.epoch}; the "
                                        "model holds the parameters of that epoch's end")
        for cb in callbacks:
            cb.on_train_end(self, history.history)
        history.stop_reason = self.stop_reason
        if self.stop_reason and verbose:
            print(f"training stopped: {self.stop_reason}", flush=True)
        return history

    def _train_epoch(self, x, y, lengths, batch_size, shuffle, tbptt, epochs, verbose,
                     callbacks) -> Optional[Tuple[Dict[str, float], Progress]]:
        n = x.shape[0]
        order = self.rng.permutation(n) if shuffle else np.arange(n)
        self.model.train()
        for cb in callbacks:
            cb.on_epoch_begin(self, self.epoch, {})
        progress = Progress(n, self.epoch, epochs, verbose)
        totals = _Totals()
        for b, start in enumerate(range(0, n, batch_size)):
            idx = order[start:start + batch_size]
            xb, yb = x[idx], y[idx]
            lb = None if lengths is None else lengths[idx]
            batch = self._train_batch(xb, yb, lb, tbptt, b, callbacks)
            if batch is None:
                progress.close({})
                return None
            totals.add(batch)
            logs = totals.logs()
            progress.update(len(idx), logs)
            for cb in callbacks:
                cb.on_batch_end(self, b, batch.logs())
            if self._interrupted:
                self.stop_reason = (f"interrupted (Ctrl-C) after batch {b + 1} of epoch "
                                    f"{self.epoch + 1}; the model holds the parameters after "
                                    "that batch")
                self.stop_training = True
                progress.close(logs)
                return None
        return totals.logs(), progress

    def _train_batch(self, xb, yb, lb, tbptt, batch, callbacks) -> Optional[_Totals]:
        """One optimiser step per chunk (one chunk without tbptt); None if training must stop."""
        totals = _Totals()
        if tbptt is None:
            part = self._step(xb, yb, lb, batch, callbacks)
            if part is None:
                return None
            totals.add(part)
            return totals
        with _tbptt.CarriedState(_tbptt.state_carriers(self.model)):
            for xc, yc, lc in _tbptt.chunks(xb, yb, lb, tbptt):
                part = self._step(xc, yc, lc, batch, callbacks)
                if part is None:
                    return None
                totals.add(part)
        return totals

    def _step(self, xb, yb, lb, batch, callbacks) -> Optional[_Totals]:
        pred = self._forward(xb, lb)
        loss = float(self.loss(pred, yb))
        if not math.isfinite(loss):
            self._stop_nonfinite(f"the loss became {loss}")
            return None
        stats = self._totals(loss, pred, yb)
        if stats.count == 0:  # nothing counted (all targets ignored): no step on a zero loss
            return stats
        self.optimizer.zero_grad()
        self.model.backward(self.loss.backward())
        params = list(self.model.parameters())
        # With clipping off the norm is still taken (max_norm=inf scales by exactly 1), so a
        # non-finite gradient never reaches the optimiser.
        max_norm = self.clip_grad_norm if self.clip_grad_norm is not None else math.inf
        norm = float(clip_grad_norm_(params, max_norm))
        if not math.isfinite(norm):
            self._stop_nonfinite(f"the gradient norm became {norm}")
            return None
        for cb in callbacks:
            cb.on_after_backward(self, batch)
        self.optimizer.step()
        self.global_step += 1
        return stats

    def _stop_nonfinite(self, what: str) -> None:
        self.stop_training = True
        self.stop_reason = (f"{what} at step {self.global_step + 1} (epoch {self.epoch + 1}); "
                            "the optimiser step was skipped, so the parameters are the last "
                            "finite ones. Lower the learning rate or set clip_grad_norm.")

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, x: np.ndarray, y: np.ndarray, *, batch_size: int = 256,
                 lengths: Optional[np.ndarray] = None) -> Dict[str, float]:
        """Mean loss (and accuracy for classification) over ``x, y`` in eval mode."""
        x, y, lengths = _check_data(x, y, lengths)
        batch_size = _check_batch_size(batch_size)
        was_training = getattr(self.model, "training", True)
        self.model.eval()
        try:
            totals = _Totals()
            for start in range(0, x.shape[0], batch_size):
                sl = slice(start, start + batch_size)
                pred = self._forward(x[sl], None if lengths is None else lengths[sl])
                totals.add(self._totals(float(self.loss(pred, y[sl])), pred, y[sl]))
            return totals.logs()
        finally:
            self.model.train(was_training)

    def predict(self, x: np.ndarray, *, batch_size: int = 256,
                lengths: Optional[np.ndarray] = None) -> np.ndarray:
        """Model outputs for ``x`` in eval mode, batched, concatenated on axis 0."""
        x, _, lengths = _check_data(x, None, lengths)
        batch_size = _check_batch_size(batch_size)
        was_training = getattr(self.model, "training", True)
        self.model.eval()
        try:
            outs = [self._forward(x[s:s + batch_size],
                                  None if lengths is None else lengths[s:s + batch_size])
                    for s in range(0, x.shape[0], batch_size)]
            return np.concatenate(outs, axis=0)
        finally:
            self.model.train(was_training)

    # ------------------------------------------------------------------ helpers
    def _forward(self, xb, lb):
        return self.model(xb) if lb is None else self.model(xb, lengths=lb)

    def _totals(self, mean_loss: float, pred: np.ndarray, target: np.ndarray) -> _Totals:
        """A batch's contribution to the epoch metrics (see _Totals)."""
        t = _Totals()
        target = np.asarray(target)
        t.count = _loss_count(self.loss, pred, target)
        metrics = getattr(self.loss, "metrics", None)
        if metrics is not None:
            t.metrics = {name: [total, n] for name, (total, n) in metrics(pred, target).items()}
        t.loss = mean_loss * t.count
        return t

    def _step_scheduler(self, logs: Dict[str, float]) -> None:
        if self.scheduler is None:
            return
        if getattr(self.scheduler, "_steps_on_metric", False):
            self.scheduler.step(logs.get("val_loss", logs.get("loss")))
        else:
            self.scheduler.step()

    class _SigintGuard:
        def __init__(self, trainer: "Trainer") -> None:
            self.trainer, self.previous = trainer, None

        def __enter__(self) -> None:
            self.trainer._interrupted = False
            if threading.current_thread() is threading.main_thread():
                def handler(signum, frame):  # noqa: ANN001 - signal handler signature
                    self.trainer._interrupted = True
                self.previous = signal.signal(signal.SIGINT, handler)
                # None: the old handler was not installed from Python; restore Python's own.
                if self.previous is None:
                    self.previous = signal.default_int_handler
                self.installed = True

        def __exit__(self, *exc: Any) -> None:
            if getattr(self, "installed", False):
                signal.signal(signal.SIGINT, self.previous)

    def _sigint_guard(self) -> "_SigintGuard":
        """Ctrl-C sets a flag that the loop checks after each batch (main thread only)."""
        return Trainer._SigintGuard(self)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> Dict[str, Any]:
        """Progress and generator state (the model and optimiser are saved beside it)."""
        state: Dict[str, Any] = {"epoch": self.epoch, "global_step": self.global_step,
                                 "rng": self.rng.bit_generator.state,
                                 "clip_grad_norm": self.clip_grad_norm}
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.rng.bit_generator.state = state["rng"]
        if self.scheduler is not None and "scheduler" in state:
            self.scheduler.load_state_dict(state["scheduler"])
