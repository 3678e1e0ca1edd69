"""History: what `Trainer.fit` returns."""
from __future__ import annotations

from typing import Dict, List, Optional


class History:
    """Per-epoch metrics, as Keras' ``History``.

    ``history`` maps a metric name ("loss", "accuracy", "val_loss", ...) to one value per
    epoch completed by this ``fit`` call; ``epochs`` lists the trainer's indices of those
    epochs (0-based, numbered on across calls: a second ``fit(epochs=2)`` after a first one
    records epochs 2 and 3); ``stop_reason`` says why training ended early or did not start
    (None when all epochs ran).
    """

    def __init__(self) -> None:
        self.history: Dict[str, List[float]] = {}
        self.epochs: List[int] = []
        self.stop_reason: Optional[str] = None

    def record(self, epoch: int, logs: Dict[str, float]) -> None:
        self.epochs.append(epoch)
        for name, value in logs.items():
            self.history.setdefault(name, []).append(float(value))

    def __repr__(self) -> str:
        last = {k: round(v[-1], 6) for k, v in self.history.items() if v}
        return f"History(epochs={len(self.epochs)}, last={last}, stop_reason={self.stop_reason!r})"
