"""Losses with their gradients: ``loss = fn(prediction, target)``, ``fn.backward()``.

Each loss returns a Python float (an array for ``reduction="none"``) and remembers what its
``backward()`` needs; ``backward()`` returns d(loss)/d(prediction) in the prediction's dtype
(float64 for non-float predictions). Sums are computed in float64 for accuracy.

Classes are on the LAST axis (as a ``Linear`` head emits them): prediction (..., C) with
integer target (...), e.g. (N, C) with (N,) or (B, T, C) with (B, T). This differs from
``torch.nn.CrossEntropyLoss``, which wants classes on axis 1.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

__all__ = ["CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss"]

_REDUCTIONS = ("mean", "sum", "none")
LossValue = Union[float, np.ndarray]


def _reduction(reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def _prediction(pred: Any) -> np.ndarray:
    arr = pred if isinstance(pred, np.ndarray) else np.asarray(pred)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"prediction must be a numeric array, got dtype {arr.dtype}")
    return arr


def _out_dtype(pred: np.ndarray) -> np.dtype:
    return pred.dtype if pred.dtype.kind == "f" else np.dtype(np.float64)


class _Loss:
    """Base of the losses: reduction, the cached backward, and what a training loop needs to
    combine batches into epoch metrics (:meth:`count`, :meth:`metrics`)."""

    # Constructor arguments that rebuild this loss, read back from attributes of the same
    # name by get_config() (rnnkit.save stores them with a trainer).
    _config_args: Tuple[str, ...] = ("reduction",)

    def __init__(self, reduction: str) -> None:
        self.reduction = _reduction(reduction)
        self._cache: Optional[tuple] = None

    def get_config(self) -> Dict[str, Any]:
        """The constructor arguments that rebuild this loss: ``type(self)(**get_config())``.
        Plain JSON-able values (arrays as lists)."""
        config: Dict[str, Any] = {}
        for name in self._config_args:
            v = getattr(self, name)
            config[name] = v.tolist() if isinstance(v, np.ndarray) else v
        return config

    def count(self, prediction: Any, target: Any) -> int:
        """How many terms a ``"mean"`` loss of this batch averages (1 for ``"sum"``/``"none"``,
        whose value is already a total): the batch's weight in an epoch mean, so that the
        epoch loss does not depend on how the data were batched."""
        if self.reduction != "mean":
            return 1
        return int(np.asarray(prediction).size)

    def metrics(self, prediction: Any, target: Any) -> Dict[str, Tuple[float, int]]:
        """Further metrics of this batch as ``{name: (sum, count)}``, summed over batches and
        divided at the end (a metric with count 0 is not reported). None by default."""
        return {}

    def __call__(self, prediction: Any, target: Any) -> LossValue:
        return self.forward(prediction, target)

    def forward(self, prediction: Any, target: Any) -> LossValue:
        raise NotImplementedError

    def _reduce(self, per: np.ndarray, count: Optional[float] = None) -> LossValue:
        if self.reduction == "none":
            return per
        total = float(per.sum())
        if self.reduction == "sum":
            return total
        n = per.size if count is None else count
        return total / n if n else 0.0

    def _upstream(self, dloss: Any, shape: tuple) -> np.ndarray:
        """The gradient reaching the loss: 1 for a reduced loss, (shape) for "none"."""
        if self.reduction != "none":
            return np.float64(1.0) if dloss is None else np.float64(dloss)
        if dloss is None:
            return np.ones(shape)
        arr = np.asarray(dloss, np.float64)
        if arr.shape != shape:
            raise ValueError(f"dloss has shape {arr.shape}, expected {shape} (the loss shape)")
        return arr

    def _take_cache(self) -> tuple:
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before the loss was "
                               "computed: call loss(prediction, target) first (each call's "
                               "gradient is returned by one backward)")
        c, self._cache = self._cache, None
        return c


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy over the last axis: ``loss_i = logsumexp(z_i) - z_i[t_i]``.

    Args:
        ignore_index: targets equal to it contribute nothing (default -100, as torch).
        reduction: "mean" (over non-ignored targets; 0.0 when all are ignored, where torch
            gives nan), "sum", or "none" (per-target losses of the target's shape, 0 where
            ignored).

    Shapes: prediction z (..., C) of logits, target t (...) of ints in [0, C).
    Gradient: ``(softmax(z_i) - onehot(t_i)) / n`` with n the number of non-ignored targets
    for "mean". Stable: logsumexp subtracts the row maximum.
    """

    _config_args = ("ignore_index", "reduction")

    def __init__(self, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.ignore_index = int(ignore_index)

    def count(self, prediction: Any, target: Any) -> int:
        """The non-ignored targets for ``"mean"`` (ignored ones count nowhere), else 1."""
        if self.reduction != "mean":
            return 1
        return int((np.asarray(target) != self.ignore_index).sum())

    def metrics(self, prediction: Any, target: Any) -> Dict[str, Tuple[float, int]]:
        """``{"accuracy": (correct, counted)}``: argmax over the last axis equal to the
        target, over the non-ignored targets."""
        target = np.asarray(target)
        keep = target != self.ignore_index
        correct = int(((np.asarray(prediction).argmax(axis=-1) == target) & keep).sum())
        return {"accuracy": (correct, int(keep.sum()))}

    def forward(self, prediction: Any, target: Any) -> LossValue:
        z = _prediction(prediction)
        if z.ndim < 1:
            raise ValueError(f"prediction must be (..., C) with classes on the last axis, got "
                             f"shape {z.shape}")
        t = np.asarray(target)
        if t.dtype == np.bool_ or not np.issubdtype(t.dtype, np.integer):
            raise TypeError(f"target must be an integer array of class indices, got dtype "
                            f"{t.dtype}")
        if t.shape != z.shape[:-1]:
            raise ValueError(f"target has shape {t.shape}, expected {z.shape[:-1]} (prediction "
                             f"{z.shape} without its last, class axis)")
        c = z.shape[-1]
        valid = t != self.ignore_index
        bad = valid & ((t < 0) | (t >= c))
        if bad.any():
            raise ValueError(f"target value {int(t[bad].flat[0])} is out of range [0, {c}) "
                             f"and is not ignore_index={self.ignore_index}")
        z64 = z.astype(np.float64)
        zmax = z64.max(axis=-1, keepdims=True) if c else np.zeros(z.shape[:-1] + (1,))
        shifted = z64 - zmax
        expz = np.exp(shifted)
        sumexp = expz.sum(axis=-1, keepdims=True)
        safe_t = np.where(valid, t, 0)
        picked = np.take_along_axis(shifted, safe_t[..., None], axis=-1)[..., 0]
        per = np.where(valid, np.log(sumexp[..., 0]) - picked, 0.0)
        count = float(valid.sum())
        self._cache = (expz / sumexp, safe_t, valid, count, _out_dtype(z))
        return self._reduce(per, count)

    def backward(self, dloss: Any = None) -> np.ndarray:
        """d(loss)/d(prediction); ``dloss`` scales it (needed shape for reduction="none")."""
        probs, safe_t, valid, count, dtype = self._take_cache()
        up = self._upstream(dloss, valid.shape)
        grad = probs
        np.put_along_axis(grad, safe_t[..., None],
                          np.take_along_axis(grad, safe_t[..., None], axis=-1) - 1.0, axis=-1)
        scale = np.where(valid, up, 0.0)
        if self.reduction == "mean":
            scale = scale / count if count else scale * 0.0
        return (grad * scale[..., None]).astype(dtype)


class MSELoss(_Loss):
    """Mean squared error ``mean((p - y)²)``, as ``torch.nn.MSELoss``.

    Args: reduction "mean" (default), "sum" or "none". Shapes: prediction and target alike.
    Gradient: ``2 (p - y) / n`` for "mean".
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__(reduction)

    def forward(self, prediction: Any, target: Any) -> LossValue:
        p = _prediction(prediction)
        y = _prediction(target)
        if y.shape != p.shape:
            raise ValueError(f"target has shape {y.shape}, expected {p.shape} (the shape of "
                             "prediction)")
        diff = p.astype(np.float64) - y.astype(np.float64)
        self._cache = (diff, _out_dtype(p))
        return self._reduce(diff * diff)

    def backward(self, dloss: Any = None) -> np.ndarray:
        """d(loss)/d(prediction); ``dloss`` scales it (needed shape for reduction="none")."""
        diff, dtype = self._take_cache()
        grad = 2.0 * diff * self._upstream(dloss, diff.shape)
        if self.reduction == "mean" and diff.size:
            grad = grad / diff.size
        return grad.astype(dtype)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits, as ``torch.nn.BCEWithLogitsLoss``::

        loss = (1 - y) x + w softplus(-x),   softplus(u) = log(1 + e^u)

    with ``w = 1 + (pos_weight - 1) y`` (1 if pos_weight is None), computed without overflow or
    cancellation (see forward).

    Args: reduction "mean" (default), "sum" or "none"; pos_weight: optional weight of the
    positive term, broadcast against the last axis (as torch).
    Shapes: logits x and targets y in [0, 1] alike.
    Gradient: ``(1 - y) - w σ(-x)`` (= σ(x) - y without pos_weight), / n for "mean".
    """

    _config_args = ("reduction", "pos_weight")

    def __init__(self, reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__(reduction)
        self.pos_weight = None if pos_weight is None else np.asarray(pos_weight, np.float64)

    def forward(self, prediction: Any, target: Any) -> LossValue:
        x = _prediction(prediction)
        y = _prediction(target)
        if y.shape != x.shape:
            raise ValueError(f"target has shape {y.shape}, expected {x.shape} (the shape of "
                             "prediction)")
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        pw = 1.0 if self.pos_weight is None else self.pos_weight
        weight = 1.0 + (pw - 1.0) * y64
        # With e = exp(-|x|): softplus(-|x|) = log1p(e) and σ(-|x|) = e / (1 + e). Using
        # softplus(-x) = softplus(x) - x, each sign of x gets the form that adds two
        # non-negative terms (no cancellation, exact down to tiny losses):
        #   x >= 0: loss = (1 - y) x + w softplus(-x),  grad = (1 - y) - w σ(-x)
        #   x <  0: loss = w softplus(x) - pw y x,      grad = w σ(x) - pw y
        e = np.exp(-np.abs(x64))
        sp_small = np.log1p(e)
        s_small = e / (1.0 + e)
        pos = x64 >= 0
        per = np.where(pos, (1.0 - y64) * x64 + weight * sp_small,
                       weight * sp_small - pw * y64 * x64)
        local = np.where(pos, (1.0 - y64) - weight * s_small, weight * s_small - pw * y64)
        self._cache = (local, _out_dtype(x))
        return self._reduce(per)

    def backward(self, dloss: Any = None) -> np.ndarray:
        """d(loss)/d(prediction); ``dloss`` scales it (needed shape for reduction="none")."""
        local, dtype = self._take_cache()
        grad = local * self._upstream(dloss, local.shape)
        if self.reduction == "mean" and local.size:
            grad = grad / local.size
        return grad.astype(dtype)
