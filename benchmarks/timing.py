"""Timing: warm-up, calls batched into samples, alternating repeats between peers, medians.

Each contestant is a zero-argument callable doing one complete operation (a forward, a train
step, one cell step). Fast calls are repeated ``number`` times per sample so that one sample
lasts at least ``sample_target_s`` and the timer's resolution and call jitter do not dominate;
every sample is stored as seconds per call.

Contestants take turns (rnnkit, torch, ort, rnnkit, torch, ort, ...), so a slow drift of the
machine (another tenant, frequency changes) hits all of them alike instead of whoever happened
to run during the noisy minute; the round's first contestant rotates so that no one always runs
right after the same neighbour (whose spinning worker threads may still hold a core). Before
each sample the runner also sleeps briefly (not timed), so that the previous contestant's
worker threads, which spin for a while after each call (OpenMP, ONNX Runtime), have gone idle
and do not take a core from the next contestant's threads.
"""
from __future__ import annotations

import gc
import math
import statistics
import time
from dataclasses import dataclass, field

SETTLE_S = 0.005  # longer than libgomp's and ONNX Runtime's default spin-wait after a call
from typing import Callable, Dict, List, Mapping


@dataclass
class Timing:
    """Samples of one contestant, in seconds per call."""

    number: int
    samples: List[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    def quartiles(self) -> "tuple[float, float]":
        """(q1, q3); with fewer than 4 samples, (min, max)."""
        if len(self.samples) < 4:
            return min(self.samples), max(self.samples)
        q = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q[0], q[2]

    def iqr_rel(self) -> float:
        """Interquartile range relative to the median: the noise figure printed beside it."""
        q1, q3 = self.quartiles()
        return (q3 - q1) / self.median if self.median > 0 else 0.0

    def to_json(self) -> dict:
        q1, q3 = self.quartiles()
        return {"number": self.number, "samples_s": self.samples, "median_s": self.median,
                "q1_s": q1, "q3_s": q3, "min_s": self.min}


@dataclass(frozen=True)
class Budget:
    """How long to time one grid cell (all its contestants together)."""

    seconds: float          # stop starting new rounds after this, once min_reps are done
    min_reps: int           # samples per contestant, at least
    max_reps: int           # samples per contestant, at most
    sample_target_s: float  # a sample of fast calls lasts at least this long


def time_alternating(contestants: Mapping[str, Callable[[], object]],
                     first_call_s: Mapping[str, float], budget: Budget) -> Dict[str, Timing]:
    """Time every contestant in turn until the budget is spent; return their samples.

    ``first_call_s`` is each contestant's first (already made) call: it sizes ``number``.
    The first call of a kernel often pays one-time costs (page faults on fresh buffers, weight
    packing, thread-pool start), so cheap contestants get one more unrecorded sample of warm-up.
    """
    names = list(contestants)
    timings: Dict[str, Timing] = {}
    for name in names:
        per_call = max(first_call_s[name], 1e-7)
        timings[name] = Timing(number=max(1, math.ceil(budget.sample_target_s / per_call)))
    for name in names:
        if first_call_s[name] * timings[name].number < 1.0:
            _sample(contestants[name], timings[name].number)

    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside a sample would be charged to whoever triggered it
    try:
        start = time.perf_counter()
        rep = 0
        while rep < budget.max_reps and (rep < budget.min_reps
                                         or time.perf_counter() - start < budget.seconds):
            for k in range(len(names)):
                name = names[(rep + k) % len(names)]
                time.sleep(SETTLE_S)
                timings[name].samples.append(_sample(contestants[name], timings[name].number))
            rep += 1
    finally:
        if gc_was_enabled:
            gc.enable()
    return timings


def _sample(fn: Callable[[], object], number: int) -> float:
    """Seconds per call over ``number`` back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number
