"""PackedSteps: compiled single-step objects holding a layer's weights packed, for inference.

Cells and one-step calls of recurrent layers in eval mode use them. Packing costs as much as a
step, so the packed copy is kept until a parameter changes (``Parameter.version``, bumped by
optimisers, load_state_dict and mark_changed, or a new ``data`` array). While it exists the
parameters are read-only, so an in-place edit raises instead of being silently ignored;
``drop()`` (called on train()/eval()) unlocks them.
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence

import numpy as np

from .. import _core
from .parameter import Parameter

_KINDS = {"lstm": "LSTMStep", "gru": "GRUStep", "rnn": "RNNStep"}


class PackedSteps:
    """One compiled step object per weight set (cell: one; layer: one per stacked layer).

    ``weight_sets()`` returns, for each step object, its [w_ih, w_hh, b_ih, b_hh] Parameters
    (biases may be None).
    """

    def __init__(self, mode: str, dtype: np.dtype, nonlinearity: str,
                 params: Callable[[], Sequence[Parameter]],
                 weight_sets: Callable[[], List[List[Optional[Parameter]]]]) -> None:
        self._cls = getattr(_core, _KINDS[mode] + ("_f32" if dtype == np.float32 else "_f64"))
        self._extra = (nonlinearity,) if mode == "rnn" else ()
        self._params, self._weight_sets = params, weight_sets
        self._steps: Optional[List[Any]] = None
        self._key: Any = None

    def get(self) -> List[Any]:
        """The step objects, (re)packed if any parameter changed since the last call."""
        params = self._params()
        key = tuple((id(p.data), p.version) for p in params)
        if self._steps is None or key != self._key:
            self.drop()
            self._steps = [self._cls(*[None if p is None else np.ascontiguousarray(p.data)
                                       for p in ws], *self._extra)
                           for ws in self._weight_sets()]
            self._key = key
            for p in params:
                p._lock()
        return self._steps

    def step(self, index: int, *arrays: np.ndarray) -> Any:
        """``get()[index].step(*arrays)``; repacks once if the SIMD level changed since packing
        (packing is ISA-specific; the level only changes through a testing hook)."""
        try:
            return self.get()[index].step(*arrays)
        except RuntimeError:
            self.drop()
            return self.get()[index].step(*arrays)

    def drop(self) -> None:
        """Forget the packed copy and unlock the parameters."""
        if self._steps is not None:
            for p in self._params():
                p._unlock()
        self._steps = None
