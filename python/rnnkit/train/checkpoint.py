"""The "trainer" kind of :func:`rnnkit.save` / :func:`rnnkit.load`.

A trainer file holds the model, the optimiser (with the parameter names of each group), the
loss (class and ``get_config()``) and :meth:`Trainer.state_dict` (progress, shuffling
generator, schedule). Registering it here keeps the import arrows pointing down: train knows
io, io knows no Trainer.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .. import io as _io
from .trainer import Trainer, _checked_state


def _save_trainer(trainer: Trainer, arrays: Dict[str, np.ndarray]) -> Dict[str, Any]:
    return {"model": _io.model_entry(trainer.model, arrays),
            "optimizer": _io.optimizer_entry(trainer.optimizer, arrays, trainer.model),
            "loss": _io.loss_entry(trainer.loss),
            "trainer": _io.to_json(trainer.state_dict(), arrays, "trainer")}


def _load_trainer(meta: Dict[str, Any], arrays: Any, into: Any) -> Trainer:
    # The trainer's own state is checked first, so that a file whose progress or generator
    # state is corrupted is rejected before it has changed the model or optimiser of `into`.
    state = _io.from_json(meta["trainer"], arrays)
    _checked_state(state, type((into.rng if into else np.random.default_rng()).bit_generator))
    if into is not None and isinstance(meta.get("optimizer"), dict):
        # ... and so is the optimiser's, before the model of `into` is loaded.
        try:
            into.optimizer._checked_state_dict(
                _io.from_json(meta["optimizer"].get("state"), arrays))
        except (TypeError, ValueError) as exc:
            raise _io._BadContent(f"optimiser state: {exc}") from exc
    scheduler = into.scheduler if into is not None else None
    if scheduler is not None and "scheduler" in state:
        # ... and the schedule's: loading it checks it (before changing it); it is put back as
        # it was here and loaded for good with the rest by trainer.load_state_dict below.
        before = scheduler.state_dict()
        try:
            scheduler.load_state_dict(state["scheduler"])
        except (KeyError, TypeError, ValueError) as exc:
            raise _io._BadContent(f"its schedule does not load into the trainer's "
                                  f"{type(scheduler).__name__} (another scheduler's state, or "
                                  f"a corrupted one): {exc}") from exc
        scheduler.load_state_dict(before)
    model = _io.load_model_entry(meta["model"], arrays, into.model if into else None)
    opt = _io.load_optimizer_entry(meta["optimizer"], arrays, model,
                                   into.optimizer if into else None)
    trainer = into
    if trainer is None:
        trainer = Trainer(model, _io.build_loss(meta["loss"]), opt)
    trainer.load_state_dict(state)    # clip_grad_norm too; marks the trainer as resumed
    return trainer


_io.register_kind("trainer", Trainer, _save_trainer, _load_trainer)
