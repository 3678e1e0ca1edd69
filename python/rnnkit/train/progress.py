"""Progress display for long loops: a tqdm bar on a terminal, plain lines elsewhere.

tqdm is an optional extra (``rnnkit[examples]``); the core stays numpy-only. When the output
is not a terminal (CI logs, files) no bar and no escape codes are written: one line per epoch.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Dict, Optional, TextIO


def _fmt(logs: Dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4g}" for k, v in logs.items())


class Progress:
    """One epoch's progress. ``verbose``: 0 silent, 1 bar (or epoch line), 2 epoch line only."""

    def __init__(self, total: int, epoch: int, epochs: int, verbose: int,
                 unit: str = "samples", stream: Optional[TextIO] = None) -> None:
        self.total, self.epoch, self.epochs, self.verbose, self.unit = total, epoch, epochs, verbose, unit
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.start = time.perf_counter()
        self.bar: Any = None
        if verbose == 1 and getattr(self.stream, "isatty", lambda: False)():
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, desc=f"epoch {epoch + 1}/{epochs}", unit=unit,
                                file=self.stream, leave=True, dynamic_ncols=True)

    def update(self, n: int, logs: Dict[str, float]) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix_str(_fmt(logs), refresh=False)

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def close(self, logs: Dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(_fmt(logs))
            self.bar.close()
        elif self.verbose:
            elapsed = time.perf_counter() - self.start
            print(f"epoch {self.epoch + 1}/{self.epochs}  {_fmt(logs)}  "
                  f"[{elapsed:.1f} s, {self.rate():.0f} {self.unit}/s]",
                  file=self.stream, flush=True)
