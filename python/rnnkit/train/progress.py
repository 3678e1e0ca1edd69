"""Progress display for long loops: a tqdm bar on a terminal, plain lines elsewhere.

tqdm is an optional extra (``rnnkit[examples]``); the core stays numpy-only. When the output
is not a terminal (CI logs, files) no bar and no escape codes are written: one line per epoch.

On a terminal the metrics come first and the bar takes what width is left, so a narrow
terminal loses the bar, never the numbers (tqdm trims a line from its end). When an epoch
ends its bar is replaced by a summary line with every metric, validation included, wrapped
between metrics to the terminal width, so that nothing is cut off at 80 columns.
"""
from __future__ import annotations

import io
import os
import shutil
import sys
import time
from typing import Any, Dict, List, Optional, TextIO


def _fmt_items(logs: Dict[str, float]) -> List[str]:
    # 4 significant digits: short enough that four metrics fit in 80 columns.
    return [f"{k} {v:.4g}" for k, v in logs.items()]


def _fmt(logs: Dict[str, float]) -> str:
    return "  ".join(_fmt_items(logs))


def _columns(stream: Any) -> int:
    """The width to lay out for: ``COLUMNS`` when set (as ``shutil.get_terminal_size`` does,
    so a user or a test can force it), else the width of the terminal ``stream`` writes to
    (it may be stderr while stdout is redirected), else 80."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        cols = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        cols = 0
    return cols if cols > 0 else shutil.get_terminal_size((80, 24)).columns


def _wrap(items: List[str], width: int, sep: str = "  ", indent: str = "  ") -> List[str]:
    """``items`` joined by ``sep`` into lines of at most ``width`` characters, breaking only
    between items (one longer than the width gets a line of its own); continuation lines are
    indented."""
    lines: List[str] = []
    line = ""
    for item in items:
        if not line:
            line = item if not lines else indent + item
        elif len(line) + len(sep) + len(item) <= width:
            line += sep + item
        else:
            lines.append(line)
            line = indent + item
    if line:
        lines.append(line)
    return lines


class Progress:
    """One epoch's progress. ``verbose``: 0 silent, 1 bar (or epoch line), 2 epoch line only.

    The epoch line reads ``epoch e/E  loss ...  val_loss ...  [t s, r samples/s]``; on a
    terminal it is wrapped to the terminal's width (see :func:`_columns`), elsewhere it is
    one line.
    """

    # The live line: metrics (in the description) before the bar, so trimming takes the bar.
    _BAR_FORMAT = "{desc} |{bar}| {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}]"

    def __init__(self, total: int, epoch: int, epochs: int, verbose: int,
                 unit: str = "samples", stream: Optional[TextIO] = None) -> None:
        self.total, self.epoch, self.epochs, self.verbose, self.unit = total, epoch, epochs, verbose, unit
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.start = time.perf_counter()
        self.bar: Any = None
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.title = f"epoch {epoch + 1}/{epochs}"
        if verbose == 1 and self.tty:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                # Our own width, not tqdm's dynamic_ncols, so that the live line and the
                # summary line agree (tqdm would ignore COLUMNS on a real terminal).
                self.bar = tqdm(total=total, desc=self.title, unit=unit, file=self.stream,
                                leave=False, ncols=_columns(self.stream),
                                bar_format=self._BAR_FORMAT)

    def update(self, n: int, logs: Dict[str, float]) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.ncols = _columns(self.stream)    # follows a resized terminal
            self.bar.set_description_str(f"{self.title}  {_fmt(logs)}" if logs else self.title,
                                         refresh=False)
            self.bar.update(n)

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def close(self, logs: Dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.close()          # leave=False: the bar's line is cleared for the summary
        if not self.verbose:
            return
        elapsed = time.perf_counter() - self.start
        items = [self.title] + _fmt_items(logs) + \
            [f"[{elapsed:.1f} s, {self.rate():.0f} {self.unit}/s]"]
        lines = _wrap(items, _columns(self.stream)) if self.tty else ["  ".join(items)]
        print("\n".join(lines), file=self.stream, flush=True)
