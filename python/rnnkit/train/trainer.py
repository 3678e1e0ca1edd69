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
gradient stops training *before* the optimiser step, and a step that overflows the parameters
(or the optimiser's state) although the gradients were finite is undone, so the parameters stay
the last finite ones (and ModelCheckpoint never saves a non-finite epoch); Ctrl-C stops cleanly
after the current batch.

Epochs: ``fit(..., epochs=E)`` trains E more epochs, continuing the epoch numbering, the
shuffling generator and the learning-rate schedule, as Keras' ``fit`` does. The exception is
resuming: the first ``fit`` after :meth:`Trainer.load_state_dict` (which ``rnnkit.load`` calls)
treats E as the run's total, like Keras' ``fit(epochs=E, initial_epoch=restored_epoch)``, so
repeating the call that the checkpoint interrupted finishes that run bitwise as if it had never
stopped.
"""
from __future__ import annotations

import math
import signal
import threading
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..distributed import DataParallel
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


def _check_epochs(epochs: Any) -> int:
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs must be an integer >= 0, got {epochs!r}")
    return int(epochs)


def _all_finite(a: np.ndarray) -> bool:
    """Whether every element of a float array is finite, usually in one reduction: a sum is
    finite only if every term is (a NaN or an inf term makes it NaN or inf), and only when a
    sum of finite terms overflows does the exact element check run. (The sum's own overflow,
    or inf + -inf, is expected here: no warning.)"""
    with np.errstate(over="ignore", invalid="ignore"):
        total = a.sum()
    return bool(np.isfinite(total)) or bool(np.isfinite(a).all())


class _StepGuard:
    """Undoes an optimiser step that leaves a parameter, or its optimiser state, non-finite.

    A finite but huge gradient times a large learning rate can overflow inside the step, after
    the trainer's finiteness checks of the loss and the gradient norm. So before each step the
    parameters the step updates and their optimiser state (``optimizer.state``: step counts and
    the moment buffers, keyed by ``id(param)``) are copied into buffers kept from step to step:
    after the first step this allocates nothing and costs one copy of the parameters and state
    plus one reduction per array, small next to a forward and backward. ``restore`` copies them
    back in place (the optimiser's kernels own those arrays) and drops state that the undone
    step created.
    """

    def __init__(self) -> None:
        self._buffers: Dict[Any, np.ndarray] = {}
        self._saved: List[Tuple[Any, np.ndarray, Optional[Dict[str, Any]]]] = []
        self._state: Optional[Dict[int, Dict[str, Any]]] = None

    def _copy(self, key: Any, a: np.ndarray) -> np.ndarray:
        buf = self._buffers.get(key)
        if buf is None or buf.shape != a.shape or buf.dtype != a.dtype:
            buf = self._buffers[key] = np.empty_like(a)
        np.copyto(buf, a)
        return buf

    def snapshot(self, optimizer: Any) -> None:
        state = getattr(optimizer, "state", None)
        self._state = state if isinstance(state, dict) else None
        self._saved = []
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:       # step() leaves these alone
                    continue
                st = None if self._state is None else self._state.get(id(p))
                saved = None if st is None else {
                    k: self._copy((id(p), k), v) if isinstance(v, np.ndarray) else v
                    for k, v in st.items()}
                self._saved.append((p, self._copy(id(p), p.data), saved))
        if len(self._buffers) > sum(1 + len(s or ()) for _, _, s in self._saved):
            # Parameters left the optimiser (or state keys went): free their copies.
            used = {id(p) for p, _, _ in self._saved}
            self._buffers = {k: v for k, v in self._buffers.items()
                             if (k if isinstance(k, int) else k[0]) in used}

    def first_non_finite(self) -> Optional[Tuple[Any, str]]:
        """(parameter, what) for the first parameter whose value or optimiser state the step
        made non-finite, else None."""
        for p, _, _ in self._saved:
            if not _all_finite(p.data):
                return p, "value"
            st = None if self._state is None else self._state.get(id(p))
            for k, v in (st or {}).items():
                if isinstance(v, np.ndarray) and v.dtype.kind == "f" and not _all_finite(v):
                    return p, f"optimiser state {k!r}"
        return None

    def restore(self) -> None:
        for p, data, saved in self._saved:
            np.copyto(p.data, data)
            mark_changed = getattr(p, "mark_changed", None)
            if mark_changed is not None:   # layers that cache packed weights look at it
                mark_changed()
            if self._state is None:
                continue
            if saved is None:
                self._state.pop(id(p), None)   # created by the undone step (lazy init)
                continue
            st = self._state.setdefault(id(p), {})
            for k in [k for k in st if k not in saved]:
                del st[k]
            for k, v in saved.items():
                if isinstance(v, np.ndarray):
                    cur = st.get(k)
                    if isinstance(cur, np.ndarray) and cur.shape == v.shape and \
                            cur.dtype == v.dtype and cur.flags.writeable:
                        np.copyto(cur, v)
                    else:
                        st[k] = v.copy()
                else:
                    st[k] = v


def _named_modules(model: Any, prefix: str = "") -> Iterator[Tuple[str, Any]]:
    yield prefix, model
    children = getattr(model, "named_children", None)
    if children is None:
        return
    for name, child in children():
        yield from _named_modules(child, f"{prefix}.{name}" if prefix else name)


def _layout_hint(model: Any) -> Optional[str]:
    """A hint naming the model's time-major layers (``batch_first=False``), or None.

    Trainer data have the batch on axis 0, so such a layer reads the batch as time and the
    time as batch; the first visible symptom is usually a batch-size mismatch further on."""
    layers = [f"{name!r} ({type(m).__name__})" if name else f"the model ({type(m).__name__})"
              for name, m in _named_modules(model) if getattr(m, "batch_first", None) is False]
    if not layers:
        return None
    which = f"layer {layers[0]} is" if len(layers) == 1 else f"layers {', '.join(layers)} are"
    return (f"hint: {which} time-major "
            "(batch_first=False) and read axis 0 as time, but the Trainer passes data with the "
            "batch on axis 0, (N, T, ...); construct recurrent layers and Last with "
            "batch_first=True")


class _Totals:
    """Sums behind the epoch metrics: the loss summed over counted targets (a mean-reduced
    loss times its count, see the losses' ``count``), and each of the loss's ``metrics`` as
    (sum, count), so that the result does not depend on how the data were batched (ignored
    targets count nowhere)."""

    def __init__(self) -> None:
        self.loss = 0.0
        self.count = 0.0  # targets counted, or their summed class weights
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


def _loss_count(loss: Any, pred: np.ndarray, target: np.ndarray) -> float:
    """The loss's ``count`` (rnnkit.losses), the denominator of its mean: a number of targets,
    or a sum of class weights (a float); for a loss without one, the prediction's size for a
    mean reduction, else 1."""
    count = getattr(loss, "count", None)
    if count is not None:
        return float(count(pred, target))
    return float(np.asarray(pred).size) if getattr(loss, "reduction", "mean") == "mean" else 1.0


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
        distributed: train data-parallel over MPI (``rnnkit.distributed``; launch the script
            with ``mpiexec -n N``): ``True``, or a :class:`rnnkit.distributed.DataParallel`
            for its options. Each rank then takes its share of every global batch of
            ``N * batch_size`` samples, and training equals one process's with that batch:
            gradients and metrics are summed over the ranks, every rank holds the same
            parameters, and only rank 0 prints and writes checkpoints. ``fit`` and
            ``evaluate`` become collective: call them on every rank with the same data.
    """

    def __init__(self, model: Any, loss: Any, optimizer: Any,
                 clip_grad_norm: Optional[float] = None, *, scheduler: Any = None,
                 seed: Optional[int] = 0, distributed: Any = False) -> None:
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
        # Set by load_state_dict: the next fit counts `epochs` from the run's start (resume).
        self._resumed = False
        self._guard = _StepGuard()
        if isinstance(distributed, DataParallel):
            self._dist: Optional[DataParallel] = distributed
        elif distributed is True:
            self._dist = DataParallel(model)
        elif distributed is False or distributed is None:
            self._dist = None
        else:
            raise TypeError(f"distributed must be True, False or a DataParallel, got "
                            f"{distributed!r}")
        # Distributed: whether any rank had Ctrl-C at the last step's reduction. Every rank
        # stops on this agreed value, never on its own flag (signals reach ranks at
        # different moments).
        self._agreed_interrupt = False

    @property
    def is_main(self) -> bool:
        """Whether this process prints and saves: rank 0 when distributed, else True."""
        return self._dist is None or self._dist.is_main

    @property
    def distributed(self) -> Optional[DataParallel]:
        """The DataParallel half of a distributed Trainer (None when training alone)."""
        return self._dist

    def _interrupt_seen(self) -> bool:
        return self._interrupted if self._dist is None else self._agreed_interrupt

    # ------------------------------------------------------------------ fit
    def fit(self, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int,
            lengths: Optional[np.ndarray] = None,
            validation_data: Optional[Sequence[np.ndarray]] = None, shuffle: bool = True,
            callbacks: Iterable[Callback] = (), tbptt: Optional[int] = None,
            verbose: int = 1) -> History:
        """Train ``epochs`` more epochs; returns the :class:`History` of this call.

        Each call continues where the last one stopped: epoch numbers (``History.epochs``,
        ``trainer.epoch``), the shuffling generator and the learning-rate schedule go on, as
        with Keras' ``fit``. Resuming is the exception: the first call after
        :meth:`load_state_dict` (``rnnkit.load``) takes ``epochs`` as the run's total, i.e.
        trains from the restored epoch up to ``epochs`` (Keras' ``initial_epoch``), so that
        repeating the interrupted call finishes the run bitwise as if uninterrupted; when the
        restored trainer has already completed ``epochs`` epochs nothing is trained and
        ``History.stop_reason`` says so.

        ``validation_data`` is ``(x_val, y_val)`` or ``(x_val, y_val, lengths_val)``.
        ``tbptt=k`` splits each batch's sequences (axis 1) into chunks of k steps, carries
        the recurrent state from chunk to chunk and cuts the gradient between them (targets
        must then be per step: y (N, T, ...)). With k >= T it equals full BPTT.
        """
        epochs = _check_epochs(epochs)
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
        # The arguments are valid: only now is a pending resume used up (a call rejected
        # above can be corrected and repeated).
        end = epochs if self._resumed else self.epoch + epochs
        if self._resumed and end <= self.epoch:
            self.stop_reason = (f"nothing to train: this trainer was restored after epoch "
                                f"{self.epoch}, and the first fit after a restore trains up to "
                                f"epochs={epochs} in total; pass epochs={self.epoch + 1} or more "
                                f"(later fit calls count epochs per call)")
        self._resumed = False
        if self._dist is not None:
            self._dist.begin_fit(self, (x.shape, batch_size, end, shuffle, tbptt))
            verbose = verbose if self._dist.is_main else 0
            self._agreed_interrupt = False
        for cb in callbacks:
            cb.on_train_begin(self, {})
        with self._sigint_guard():
            while self.epoch < end and not self.stop_training:
                done = self._train_epoch(x, y, lengths, batch_size, shuffle, tbptt, end,
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
                if self._dist is not None:
                    self._agree_on_stop()
                if self._interrupt_seen() and not self.stop_training:  # Ctrl-C between batches
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
        # Distributed: every rank draws the same order and steps through the same global
        # batches, keeping its own share of each.
        step = batch_size if self._dist is None else self._dist.global_batch(batch_size)
        self.model.train()
        for cb in callbacks:
            cb.on_epoch_begin(self, self.epoch, {})
        progress = Progress(n, self.epoch, epochs, verbose)
        totals = _Totals()
        for b, start in enumerate(range(0, n, step)):
            batch_idx = order[start:start + step]
            idx = batch_idx if self._dist is None else self._dist.shard(batch_idx)
            xb, yb = x[idx], y[idx]
            lb = None if lengths is None else lengths[idx]
            batch = self._train_batch(xb, yb, lb, tbptt, b, callbacks)
            if batch is None:
                progress.close({})
                return None
            totals.add(batch)
            logs = totals.logs()
            progress.update(len(batch_idx), logs)
            for cb in callbacks:
                cb.on_batch_end(self, b, batch.logs())
            if self._interrupt_seen():
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
        dist = self._dist
        # Distributed, a rank may have no sample of a short last batch: its forward of zero
        # rows still runs, so that it reports the same metrics (with count 0) as the others.
        pred, loss = self._forward_loss(xb, yb, lb)
        stats = self._totals(loss, pred, yb)
        local_count = stats.count
        if dist is not None:
            stats = self._reduce_totals(stats, self._interrupted, "the step's loss")
            loss = stats.loss / stats.count if stats.count else math.nan
        if stats.count == 0:  # nothing counted (all targets ignored): the mean is NaN, as in
            return stats      # torch, and there is nothing to learn from: no step
        if not math.isfinite(loss):
            self._stop_nonfinite(f"the loss became {loss}")
            return None
        self.optimizer.zero_grad()
        if dist is None:
            self.model.backward(self.loss.backward())
        else:
            dist.backward(None if local_count == 0 else
                          lambda: self.model.backward(self._share_of_gradient(
                              self.loss.backward(), local_count / stats.count)))
        # Frozen parameters (requires_grad False) take no step, and a gradient they kept from
        # earlier must not scale the others' clipping.
        params = [p for p in self.model.parameters() if getattr(p, "requires_grad", True)]
        # With clipping off the norm is still taken (max_norm=inf scales by exactly 1), so a
        # non-finite gradient never reaches the optimiser.
        max_norm = self.clip_grad_norm if self.clip_grad_norm is not None else math.inf
        norm = float(clip_grad_norm_(params, max_norm))
        if not math.isfinite(norm):
            self._stop_nonfinite(f"the gradient norm became {norm}")
            return None
        for cb in callbacks:
            cb.on_after_backward(self, batch)
        self._guard.snapshot(self.optimizer)
        self.optimizer.step()
        bad = self._guard.first_non_finite()
        if bad is not None:
            self._guard.restore()
            self._stop_overflow(bad, norm)
            return None
        self.global_step += 1
        return stats

    def _share_of_gradient(self, dy: Any, share: float) -> Any:
        """This rank's loss gradient weighted for the sum over ranks: a mean loss is the
        global batch's mean only when each rank's mean is weighted by its share of the counted
        targets; a summed loss adds up as it is."""
        if getattr(self.loss, "reduction", "mean") != "mean" or share == 1.0:
            return dy
        return dy * np.asarray(share, dtype=dy.dtype)

    def _reduce_totals(self, t: _Totals, flag: bool, what: str) -> _Totals:
        """``t`` summed over the ranks (distributed only); records the agreed Ctrl-C flag."""
        out = _Totals()
        out.loss, out.count, out.metrics, agreed = self._dist.reduce_totals(
            t.loss, t.count, t.metrics, flag, what)
        self._agreed_interrupt = self._agreed_interrupt or agreed
        if getattr(self.loss, "reduction", "mean") != "mean" and out.count:
            # A summed loss counts 1 per batch (its value is the total already): the ranks'
            # parts add up to the global batch's total, which counts 1 as in one process.
            out.count = 1.0
        return out

    def _agree_on_stop(self) -> None:
        """After an epoch: stop everywhere when a callback stopped any rank, and check that
        every rank still holds the same parameters."""
        stop = self._dist.any(self.stop_training, "agreeing on stopping")
        if stop and not self.stop_training:
            self.stop_training = True
            self.stop_reason = "a callback on another rank stopped training"
        self._dist.check_in_sync(self.epoch - 1)

    def _stop_nonfinite(self, what: str) -> None:
        self.stop_training = True
        self.stop_reason = (f"{what} at step {self.global_step + 1} (epoch {self.epoch + 1}); "
                            "the optimiser step was skipped, so the parameters are the last "
                            "finite ones. Lower the learning rate or set clip_grad_norm.")

    def _stop_overflow(self, bad: Tuple[Any, str], norm: float) -> None:
        param, what = bad
        name = next((n for n, p in self.model.named_parameters() if p is param), None) \
            if hasattr(self.model, "named_parameters") else None
        where = f"the {what} of parameter {name!r}" if name else f"a parameter's {what}"
        self.stop_training = True
        self.stop_reason = (f"the optimiser step {self.global_step + 1} (epoch {self.epoch + 1}) "
                            f"made {where} non-finite although the loss and the gradient norm "
                            f"({norm:.4g}) were finite; the step was undone, so the "
                            "parameters and the optimiser's state are those before it. Lower "
                            "the learning rate or set clip_grad_norm.")

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, x: np.ndarray, y: np.ndarray, *, batch_size: int = 256,
                 lengths: Optional[np.ndarray] = None) -> Dict[str, float]:
        """Mean loss (and accuracy for classification) over ``x, y`` in eval mode.

        Distributed, it is collective: every rank must call it with the same data; each
        evaluates its share and all get the totals over the whole of ``x``."""
        x, y, lengths = _check_data(x, y, lengths)
        batch_size = _check_batch_size(batch_size)
        was_training = getattr(self.model, "training", True)
        self.model.eval()
        # Distributed: each rank evaluates its contiguous share and the sums are reduced.
        first, stop = (0, x.shape[0]) if self._dist is None else \
            self._dist.shard_range(x.shape[0])
        try:
            totals = _Totals()
            starts = range(first, stop, batch_size)
            if self._dist is not None and not starts:
                starts = range(first, first + 1)   # an empty share: report zero counts
            for start in starts:
                sl = slice(start, min(start + batch_size, stop))
                pred, loss = self._forward_loss(x[sl], y[sl],
                                                None if lengths is None else lengths[sl])
                totals.add(self._totals(loss, pred, y[sl]))
            if self._dist is not None:
                totals = self._reduce_totals(totals, False, "the evaluation's sums")
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
        try:
            return self.model(xb) if lb is None else self.model(xb, lengths=lb)
        except (TypeError, ValueError) as exc:
            hinted = self._with_layout_hint(exc)
            if hinted is exc:
                raise
            raise hinted from exc

    def _forward_loss(self, xb, yb, lb) -> Tuple[Any, float]:
        pred = self._forward(xb, lb)
        try:
            return pred, float(self.loss(pred, yb))
        except (TypeError, ValueError) as exc:
            hinted = self._with_layout_hint(exc)
            if hinted is exc:
                raise
            raise hinted from exc

    def _with_layout_hint(self, exc: Exception) -> Exception:
        """``exc`` with a hint appended when the model has time-major layers, whose reading
        of the Trainer's batch-first data is the likely cause of a shape error; else ``exc``."""
        hint = _layout_hint(self.model)
        if hint is None or hint in str(exc):
            return exc
        try:
            return type(exc)(f"{exc} ({hint})")
        except Exception:  # noqa: BLE001 - an exception class with another signature
            return exc

    def _totals(self, mean_loss: float, pred: np.ndarray, target: np.ndarray) -> _Totals:
        """A batch's contribution to the epoch metrics (see _Totals)."""
        t = _Totals()
        target = np.asarray(target)
        t.count = _loss_count(self.loss, pred, target)
        metrics = getattr(self.loss, "metrics", None)
        if metrics is not None:
            t.metrics = {name: [total, n] for name, (total, n) in metrics(pred, target).items()}
        t.loss = mean_loss * t.count if t.count else 0.0  # (a mean over nothing is NaN)
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

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s progress, generator, clipping and schedule.

        Everything is checked before anything changes: a state that is not a mapping, has
        unknown or missing keys, a negative or non-integer ``epoch``/``global_step``, a
        ``rng`` that is not an exact state of this trainer's bit generator, or a bad
        ``clip_grad_norm`` raises ``TypeError``/``ValueError`` naming the key and leaves the
        trainer as it was. The schedule's own state is checked by its ``load_state_dict``
        (and ignored when this trainer has no scheduler).

        Afterwards the trainer counts as resumed: its next :meth:`fit` takes ``epochs`` as the
        run's total, so repeating the interrupted call finishes the run.
        """
        checked = _checked_state(state, type(self.rng.bit_generator))
        if self.scheduler is not None and "scheduler" in checked:
            try:
                self.scheduler.load_state_dict(checked["scheduler"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"trainer state 'scheduler' does not load into "
                                 f"{type(self.scheduler).__name__}: {exc}") from exc
        self.epoch = checked["epoch"]
        self.global_step = checked["global_step"]
        self.rng.bit_generator.state = checked["rng"]
        if "clip_grad_norm" in checked:
            self.clip_grad_norm = checked["clip_grad_norm"]
        self._resumed = True


_STATE_KEYS = ("epoch", "global_step", "rng", "clip_grad_norm", "scheduler")


def _state_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        got = (f"an array of shape {value.shape}" if isinstance(value, np.ndarray)
               else type(value).__name__)
        raise TypeError(f"trainer state {name!r} must be an integer >= 0, got {got}")
    if value < 0:
        raise ValueError(f"trainer state {name!r} must be an integer >= 0, got {value}")
    return int(value)


def _same_rng_state(a: Any, b: Any) -> bool:
    """Exact equality of two bit-generator states: same structure, same types of leaves
    (so a float or a bool where the generator keeps an int does not pass as that int)."""
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and \
            all(_same_rng_state(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and \
            a.dtype.kind in "iu" and a.shape == b.shape and bool(np.array_equal(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
        return int(a) == int(b)
    return type(a) is type(b) and a == b


def _checked_state(state: Any, bit_generator: type) -> Dict[str, Any]:
    """The values of a :meth:`Trainer.state_dict`, checked; TypeError/ValueError naming the
    key otherwise. ``bit_generator`` is the class of the trainer's shuffling generator."""
    if not isinstance(state, Mapping):
        raise TypeError(f"trainer state must be a mapping (a Trainer.state_dict()), got "
                        f"{type(state).__name__}")
    unknown = sorted(str(k) for k in state if k not in _STATE_KEYS)
    if unknown:
        raise ValueError(f"trainer state has unknown key(s) {', '.join(map(repr, unknown))}; "
                         f"expected {', '.join(map(repr, _STATE_KEYS))}")
    for key in ("epoch", "global_step", "rng"):
        if key not in state:
            raise ValueError(f"trainer state is missing {key!r}")
    out: Dict[str, Any] = {"epoch": _state_count("epoch", state["epoch"]),
                           "global_step": _state_count("global_step", state["global_step"])}
    rng = state["rng"]
    if not isinstance(rng, Mapping):
        raise TypeError(f"trainer state 'rng' must be a bit-generator state (a dict), got "
                        f"{type(rng).__name__}")
    # Set on a scratch generator: numpy checks the name and the ranges, and reading the state
    # back shows whether it was taken exactly (numpy silently truncates a float, for one).
    scratch = bit_generator()
    try:
        scratch.state = dict(rng)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"trainer state 'rng' is not a valid {bit_generator.__name__} state "
                         f"({type(exc).__name__}: {exc})") from exc
    if not _same_rng_state(dict(rng), scratch.state):
        raise ValueError(f"trainer state 'rng' is not an exact {bit_generator.__name__} state "
                         f"(a value of the wrong type or out of range): got {dict(rng)!r}")
    out["rng"] = scratch.state
    if "clip_grad_norm" in state:
        clip = state["clip_grad_norm"]
        if clip is not None:
            if isinstance(clip, bool) or not isinstance(clip, (int, float, np.integer,
                                                               np.floating)):
                raise TypeError(f"trainer state 'clip_grad_norm' must be a number > 0 or "
                                f"None, got {type(clip).__name__}")
            if not clip > 0:
                raise ValueError(f"trainer state 'clip_grad_norm' must be > 0 or None, got "
                                 f"{clip}")
            clip = float(clip)
        out["clip_grad_norm"] = clip
    if "scheduler" in state:
        if not isinstance(state["scheduler"], Mapping):
            raise TypeError(f"trainer state 'scheduler' must be a scheduler state_dict (a "
                            f"dict), got {type(state['scheduler']).__name__}")
        out["scheduler"] = state["scheduler"]
    return out
