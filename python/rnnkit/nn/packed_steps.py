"""PackedSteps: compiled single-step objects holding a layer's weights packed, for inference.

Cells, one-step calls of recurrent layers and their small-batch sequences in eval mode use
them. Packing costs as much as a
step, so the packed copy is kept until a parameter changes: a new ``data`` array, or a bumped
``Parameter.version`` (optimisers, ``load_state_dict`` and ``mark_changed()`` bump it). The
parameters' arrays are never locked or otherwise touched: if you edit ``data`` in place
yourself, call ``mark_changed()`` so the next step repacks. A packed object keeps the kernel
table it was packed for, so changing the SIMD level (a testing hook) never invalidates it.
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

from .._cellspec import CellSpec
from .parameter import Parameter, values_key


class PackedSteps:
    """One compiled step object per weight set (cell: one; layer: one per stacked layer).

    ``weight_sets()`` returns, for each step object, its [w_ih, w_hh, b_ih, b_hh] arrays
    (biases may be None), already checked against the layer's shapes. Not locked itself: the
    owning layer calls it under its own lock (nn/_calls.py).
    """

    def __init__(self, spec: CellSpec, params: Callable[[], Sequence[Parameter]],
                 weight_sets: Callable[[], List[List[Optional[np.ndarray]]]],
                 options: Optional[tuple] = None) -> None:
        self._spec, self._options = spec, options  # options: GateOptions.core(), or None
        self._params, self._weight_sets = params, weight_sets
        self._steps: Optional[List[Any]] = None
        self._key: Any = None
        self.quantized = ""  # pack the weight matrices as "int8" or "bfloat16" (rnnkit.quantize)

    def get(self) -> List[Any]:
        """The step objects, (re)packed if any parameter changed since the last call."""
        key = (self.quantized,) + values_key(self._params())
        if self._steps is None or key != self._key:
            self._steps = []
            for ws in self._weight_sets():  # w_ih, w_hh, b_ih, b_hh, the extra parameters,
                arrays = [None if a is None else np.ascontiguousarray(a) for a in ws]
                n = 4 + len(self._spec.extra)   # then a projected LSTM's w_hr
                w_hr = arrays[n] if len(arrays) > n else None
                self._steps.append(self._spec.step(*arrays[:4], tuple(arrays[4:n]), w_hr,
                                                   self._options,
                                                   quantized=self.quantized))
            self._key = key
        return self._steps

    def step(self, index: int, x: np.ndarray, states: Sequence[np.ndarray]) -> Tuple[Any, ...]:
        """The new states (a tuple, one per cell state) after one step of weight set `index`."""
        return self.get()[index].step(x, tuple(states))

    def sequence(self, index: int, x: np.ndarray, states: Sequence[np.ndarray], *,
                 reverse: bool = False, lengths: Optional[np.ndarray] = None
                 ) -> Tuple[np.ndarray, Tuple[Any, ...]]:
        """(y (T, B, P), final states) of an inference forward of weight set `index` over x
        (T, B, I). With lengths (B,) int64, row b runs its steps t < lengths[b] only (its
        states kept and y zero elsewhere; every row is still computed at every step)."""
        return self.get()[index].sequence(x, tuple(states), reverse, lengths)

    def drop(self) -> None:
        """Forget the packed copy (it is rebuilt on the next step)."""
        self._steps = None
