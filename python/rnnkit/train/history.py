"""History: what `Trainer.fit` returns."""
from __future__ import annotations

from typing import Dict, List, Optional


class History:
    """Per-epoch metrics, as Keras' ``History``.

    ``history`` maps a metric name ("loss", "accuracy", "val_loss", ...) to one value per
    completed epoch; ``epochs`` lists the epoch indices they belong to; ``stop_reason`` says
    why training ended early (None when all epochs ran).
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
