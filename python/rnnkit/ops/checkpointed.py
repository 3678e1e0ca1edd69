"""Training by recomputation: a sequence's activations kept at checkpoints only.

A training forward keeps every step's activations for its backward (the LSTM's gates and c:
5·H numbers per row and step besides y), so memory grows with T. With ``checkpoint_every=k``
(:func:`rnnkit.ops.sequence_forward`; the layers' ``recompute=True``) the forward runs in
segments of k steps and keeps only the states entering each segment. The backward then visits
the segments in the order backpropagation reaches them (the last first; in reverse the first
first), runs each segment's forward again from its checkpoint, and backpropagates through it,
passing the state gradients on to the next segment. Activation memory: T/k states plus one
segment's activations, O(√T) with k ≈ √T (:func:`auto_segment`); time: one more forward.

Gradients are bitwise equal to those of the stored version: segments start at multiples of
``_core.grad_block_steps(B)``, the blocks in which the engine sums weight gradients in the
backward's order (cpp/engine/grad_blocks.h), so both add the same products in the same order,
and a recomputed step is the same arithmetic as the stored one.

Variable lengths: segment [t0, t1) runs each sequence's steps inside it (local lengths
clip(lengths - t0, 0, t1 - t0)); a sequence with none passes its state through unchanged, so
the reverse direction, which starts at each sequence's own last step, needs nothing more.
"""
from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from .. import _core
from .._cellspec import CellSpec

States = Tuple[Optional[np.ndarray], ...]


def auto_segment(steps: int) -> int:
    """The default segment length: ⌈√T⌉ steps (before rounding to the gradient blocks)."""
    return max(1, math.isqrt(max(steps - 1, 0)) + 1)


def segment_steps(checkpoint_every: int, batch: int) -> int:
    """``checkpoint_every`` rounded up to a whole number of gradient blocks (see above)."""
    block = _core.grad_block_steps(batch)
    return -(-checkpoint_every // block) * block


def supports(spec: CellSpec) -> Optional[str]:
    """None if ``spec``'s cell can recompute, else why not."""
    if spec.extra:
        return (f"the {spec.name} cell sums its own parameters' gradients ("
                f"{', '.join(spec.extra_names)}) step by step, not in the blocks that keep "
                "recomputed gradients bitwise equal")
    return None


def _bounds(steps: int, segment: int) -> List[Tuple[int, int]]:
    return [(t0, min(steps, t0 + segment)) for t0 in range(0, steps, segment)]


def _local_lengths(lengths: Optional[np.ndarray], t0: int, t1: int) -> Optional[np.ndarray]:
    return None if lengths is None else np.clip(lengths - t0, 0, t1 - t0)


def _slice(zoneout: Any, t0: int, t1: int) -> Any:
    """A (T, B, H) zoneout array's steps t0..t1 (a probability stays as it is)."""
    return zoneout[t0:t1] if isinstance(zoneout, np.ndarray) else zoneout


def _processing_order(count: int, reverse: bool) -> Sequence[int]:
    """Segment indices in the order the forward runs them."""
    return range(count - 1, -1, -1) if reverse else range(count)


class SegmentCall:
    """The arguments every segment's forward and backward share, checked by the caller."""

    def __init__(self, spec: CellSpec, w_ih: np.ndarray, w_hh: np.ndarray,
                 b_ih: Optional[np.ndarray], b_hh: Optional[np.ndarray],
                 lengths: Optional[np.ndarray], reverse: bool, extra: Tuple[np.ndarray, ...],
                 w_hr: Optional[np.ndarray], options: Any,
                 recurrent_mask: Optional[np.ndarray], zoneout: Any) -> None:
        self.spec, self.w_ih, self.w_hh, self.b_ih, self.b_hh = spec, w_ih, w_hh, b_ih, b_hh
        self.lengths, self.reverse, self.extra, self.w_hr = lengths, reverse, extra, w_hr
        self.options, self.recurrent_mask, self.zoneout = options, recurrent_mask, zoneout

    def forward(self, x: np.ndarray, state0: States, t0: int, t1: int
                ) -> Tuple[np.ndarray, States, Tuple[np.ndarray, ...]]:
        """Steps t0..t1 from state0 in training mode: y, the final states, the activations."""
        return self.spec.forward(x[t0:t1], state0, self.w_ih, self.w_hh, self.b_ih, self.b_hh,
                                 _local_lengths(self.lengths, t0, t1), self.reverse, True,
                                 None, self.extra, self.w_hr, self.options,
                                 self.recurrent_mask, _slice(self.zoneout, t0, t1))


class Checkpoints:
    """What a recomputing forward keeps for its backward: the call's arguments, the segment
    length and each segment's entering states (time order)."""

    def __init__(self, call: SegmentCall, segment: int, starts: List[States]) -> None:
        self.call, self.segment, self.starts = call, segment, starts


def forward(call: SegmentCall, x: np.ndarray, state0: States, segment: int
            ) -> Tuple[np.ndarray, States, Checkpoints]:
    """y (T, B, width), the final states and the checkpoints."""
    bounds = _bounds(x.shape[0], segment)
    starts: List[States] = [()] * len(bounds)
    y: Optional[np.ndarray] = None
    state = tuple(state0)
    for k in _processing_order(len(bounds), call.reverse):
        t0, t1 = bounds[k]
        starts[k] = state
        # The training kernel, although its activations are dropped here: the backward
        # recomputes with it, and only the same kernel gives the same bits at the segment
        # edges (the inference kernel projects its input differently).
        y_k, state, _ = call.forward(x, state, t0, t1)
        if y is None:
            y = np.empty((x.shape[0],) + y_k.shape[1:], x.dtype)
        y[t0:t1] = y_k
    assert y is not None  # callers checkpoint only sequences longer than one segment
    return y, tuple(state), Checkpoints(call, segment, starts)


def backward(ckpt: Checkpoints, x: np.ndarray, dy: np.ndarray, dstate_n: States,
             dw_ih: np.ndarray, dw_hh: np.ndarray, db_ih: Optional[np.ndarray],
             db_hh: Optional[np.ndarray], dextra: Tuple[np.ndarray, ...],
             dw_hr: Optional[np.ndarray]) -> Tuple[np.ndarray, Tuple[np.ndarray, ...]]:
    """dx and the initial states' gradients; weight gradients ADDED to dw_ih ... dw_hr."""
    call, starts = ckpt.call, ckpt.starts
    bounds = _bounds(x.shape[0], ckpt.segment)
    dx = np.empty_like(x)
    carry: Any = tuple(dstate_n)
    for k in reversed(_processing_order(len(bounds), call.reverse)):
        t0, t1 = bounds[k]
        y_k, _, saved = call.forward(x, starts[k], t0, t1)
        dx_k, carry = call.spec.backward(
            dy[t0:t1], carry, x[t0:t1], starts[k], call.w_ih, call.w_hh, y_k, saved,
            _local_lengths(call.lengths, t0, t1), call.reverse, dw_ih, dw_hh, db_ih, db_hh,
            call.extra, dextra, call.w_hr, dw_hr, call.options, call.b_ih, call.b_hh,
            call.recurrent_mask, _slice(call.zoneout, t0, t1))
        dx[t0:t1] = dx_k
    return dx, tuple(carry)
