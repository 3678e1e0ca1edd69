"""Losses with their gradients: ``loss = fn(prediction, target)``, ``fn.backward()``.

Each loss returns a Python float (an array for ``reduction="none"``) and remembers what its
``backward()`` needs; ``backward()`` returns d(loss)/d(prediction) in the prediction's dtype
(float64 for integer predictions).

Precision: element-wise work runs in the prediction's own float dtype (float16 is widened to
float32), so a float32 batch makes no float64 copies of (N, C) arrays; the reduction to one
number always accumulates in float64. Softmax and log-softmax subtract the row maximum
(log-sum-exp), so large logits neither overflow nor lose the small terms.

Classes are on the LAST axis (as a ``Linear`` head emits them): prediction (..., C) with
integer target (...), e.g. (N, C) with (N,) or (B, T, C) with (B, T). This differs from
``torch.nn.CrossEntropyLoss`` / ``NLLLoss``, which want classes on axis 1.

Empty means follow torch: a ``"mean"`` over nothing (an empty batch, or every target ignored)
is ``nan``, while ``"sum"`` is 0; :meth:`count` is then 0, which is how a training loop knows
to skip such a batch. No warning is raised for it.
"""
from __future__ import annotations

import numbers
from typing import Any, ClassVar, Dict, Optional, Tuple, Union

import numpy as np

from . import _core
from .ctc import CTCLoss  # (T, N, C) sequence loss with its own module: rnnkit.ctc

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "BCEWithLogitsLoss", "CTCLoss"]

_REDUCTIONS = ("mean", "sum", "none")
LossValue = Union[float, np.ndarray]


def _reduction(reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def _prediction(pred: Any, name: str = "prediction") -> np.ndarray:
    arr = pred if isinstance(pred, np.ndarray) else np.asarray(pred)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    return arr


def _class_scores(pred: Any, name: str = "prediction") -> np.ndarray:
    arr = _prediction(pred, name)
    if arr.ndim < 1:
        raise ValueError(f"{name} must be (..., C) with classes on the last axis, got shape "
                         f"{arr.shape}")
    return arr


def _out_dtype(pred: np.ndarray) -> np.dtype:
    """The dtype of the gradient (and of a "none" loss): the prediction's own float dtype."""
    return pred.dtype if pred.dtype.kind == "f" else np.dtype(np.float64)


def _work_dtype(pred: np.ndarray) -> np.dtype:
    """The dtype element-wise work runs in: the prediction's float dtype, float16 widened to
    float32 (its 11-bit mantissa would make exp/log sums visibly wrong), float64 for ints."""
    if pred.dtype.kind != "f":
        return np.dtype(np.float64)
    return np.result_type(pred.dtype, np.float32)


def _ignore_index(value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        hint = (" (weight is keyword-only: pass weight=...)"
                if isinstance(value, (np.ndarray, list, tuple)) else "")
        raise TypeError(f"ignore_index must be an integer, got {value!r}{hint}")
    return int(value)


def _class_weight(weight: Any) -> Optional[np.ndarray]:
    """``weight`` checked: None, or a 1-D array (C,) of finite, non-negative numbers (float64:
    it is small and exact; each call casts it to the prediction's dtype)."""
    if weight is None:
        return None
    try:
        w = np.array(weight, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"weight must be an array of per-class weights (C,), got "
                        f"{weight!r}") from exc
    if w.ndim != 1:
        raise ValueError(f"weight must have shape (C,), one weight per class, got shape "
                         f"{w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"weight must be finite and non-negative, got {w.tolist()}")
    w.setflags(write=False)
    return w


def _label_smoothing(value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"label_smoothing must be a real number in [0, 1], got {value!r}")
    v = float(value)
    if not 0.0 <= v <= 1.0:  # also rejects nan
        raise ValueError(f"label_smoothing must be in [0, 1], got {value!r}")
    return v


def _same(value: Any, default: Any) -> bool:
    """Whether a config value is its (None or scalar) default; arrays never are."""
    if default is None or value is None:
        return value is default
    return not isinstance(value, np.ndarray) and value == default


def _log_softmax(z: np.ndarray, dtype: np.dtype) -> Tuple[np.ndarray, np.ndarray]:
    """(log_softmax(z), softmax(z)) over the last axis in ``dtype``, both fresh arrays.

    A row holding +inf, or only -inf, gives nan (inf - inf), as torch does; callers run this
    under ``np.errstate(invalid="ignore")`` and mask the rows that are not counted."""
    logp = z.astype(dtype)  # a copy: worked on in place below
    if logp.shape[-1] == 0:
        return logp, logp.copy()
    logp -= logp.max(axis=-1, keepdims=True)
    probs = np.exp(logp)
    sumexp = probs.sum(axis=-1, keepdims=True)  # >= 1: the maximum contributes exp(0)
    logp -= np.log(sumexp)
    probs /= sumexp
    return logp, probs


class _Loss:
    """Base of the losses: reduction, the cached backward, and what a training loop needs to
    combine batches into epoch metrics (:meth:`count`, :meth:`metrics`)."""

    # Constructor arguments that rebuild this loss, read back from attributes of the same
    # name by get_config() (rnnkit.save stores them with a trainer).
    _config_args: Tuple[str, ...] = ("reduction",)
    # Arguments added after FORMAT_VERSION 1 files were first written, with their defaults:
    # get_config() leaves them out at the default, so resaving an old file is byte-identical
    # and a loss that does not use them still loads in an older rnnkit.
    _config_later: ClassVar[Dict[str, Any]] = {}

    def __init__(self, reduction: str) -> None:
        self.reduction = _reduction(reduction)
        self._cache: Optional[tuple] = None

    def get_config(self) -> Dict[str, Any]:
        """The constructor arguments that rebuild this loss: ``type(self)(**get_config())``.
        Plain JSON-able values (arrays as lists)."""
        config: Dict[str, Any] = {}
        for name in self._config_args:
            v = getattr(self, name)
            if name in self._config_later and _same(v, self._config_later[name]):
                continue
            config[name] = v.tolist() if isinstance(v, np.ndarray) else v
        return config

    def count(self, prediction: Any, target: Any) -> Union[int, float]:
        """What a ``"mean"`` loss of this batch divides its sum by (1 for ``"sum"``/``"none"``,
        whose value is already a total): the batch's weight in an epoch mean, so that the
        epoch loss does not depend on how the data were batched. 0 means the batch counts
        nothing (its mean is nan)."""
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

    def _reduce(self, per: np.ndarray, out_dtype: np.dtype,
                count: Optional[float] = None) -> LossValue:
        """``per`` reduced; ``count`` is the "mean" denominator (default: ``per.size``)."""
        if self.reduction == "none":
            return per.astype(out_dtype, copy=False)
        total = float(per.sum(dtype=np.float64))
        if self.reduction == "sum":
            return total
        n = per.size if count is None else count
        # torch's mean over nothing is nan (0/0); computed here without numpy's warning.
        return total / n if n else float("nan")

    def _mean_factor(self, count: float) -> float:
        """What the gradient of one term is multiplied by: 1/count for "mean" (nan for an
        empty mean, as torch: only counted terms get it, so nothing else turns nan)."""
        if self.reduction != "mean":
            return 1.0
        return 1.0 / count if count else float("nan")

    def _upstream(self, dloss: Any, shape: tuple, dtype: np.dtype) -> Union[float, np.ndarray]:
        """The gradient reaching the loss: a Python float for a reduced loss (so it does not
        widen a float32 gradient), an array (shape) in ``dtype`` for "none"."""
        if self.reduction != "none":
            return 1.0 if dloss is None else float(dloss)
        if dloss is None:
            return np.ones(shape, dtype)
        arr = np.asarray(dloss)
        if arr.shape != shape:
            raise ValueError(f"dloss has shape {arr.shape}, expected {shape} (the loss shape)")
        return arr.astype(dtype, copy=False)

    def _take_cache(self) -> tuple:
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before the loss was "
                               "computed: call loss(prediction, target) first (each call's "
                               "gradient is returned by one backward)")
        c, self._cache = self._cache, None
        return c


class _ClassLoss(_Loss):
    """What CrossEntropyLoss and NLLLoss share: integer class targets on the last axis,
    ``ignore_index``, per-class ``weight``, and the count and accuracy over counted targets."""

    _config_args: Tuple[str, ...] = ("ignore_index", "reduction", "weight")
    _config_later: ClassVar[Dict[str, Any]] = {"weight": None}
    _takes_probabilities = False  # whether a float target of the prediction's shape is valid

    def __init__(self, ignore_index: int, reduction: str, weight: Any) -> None:
        super().__init__(reduction)
        self.ignore_index = _ignore_index(ignore_index)
        self.weight = _class_weight(weight)

    def _soft(self, scores: np.ndarray, target: np.ndarray) -> bool:
        """Whether ``target`` holds class probabilities (float, the prediction's shape)."""
        return (self._takes_probabilities and target.dtype.kind == "f"
                and target.shape == scores.shape)

    def _class_targets(self, scores: np.ndarray, target: Any) -> Tuple[np.ndarray, np.ndarray]:
        """(target, valid): the checked integer targets and where they are not ignored."""
        t = np.asarray(target)
        if t.dtype == np.bool_ or not np.issubdtype(t.dtype, np.integer):
            soft = (" or class probabilities of the prediction's shape "
                    f"{scores.shape}" if self._takes_probabilities else "")
            raise TypeError(f"target must be an integer array of class indices{soft}, got "
                            f"dtype {t.dtype} and shape {t.shape}")
        if t.shape != scores.shape[:-1]:
            raise ValueError(f"target has shape {t.shape}, expected {scores.shape[:-1]} "
                             f"(prediction {scores.shape} without its last, class axis)")
        c = scores.shape[-1]
        valid = t != self.ignore_index
        if c == 0 and valid.any():
            raise ValueError(f"prediction has no classes (shape {scores.shape}), so every "
                             f"target must be ignore_index={self.ignore_index}; got target "
                             f"value {int(t[valid].flat[0])}")
        bad = valid & ((t < 0) | (t >= c))
        if bad.any():
            raise ValueError(f"target value {int(t[bad].flat[0])} is out of range [0, {c}) "
                             f"and is not ignore_index={self.ignore_index}")
        return t, valid

    def _weights(self, c: int, dtype: np.dtype) -> Optional[np.ndarray]:
        if self.weight is None:
            return None
        if self.weight.shape[0] != c:
            raise ValueError(f"weight has {self.weight.shape[0]} entries, but the prediction "
                             f"has {c} classes on its last axis")
        return self.weight.astype(dtype)

    def _denominator(self, t: np.ndarray, valid: np.ndarray) -> Union[int, float]:
        """torch's mean denominator: the number of counted targets, or with ``weight`` the
        sum of their weights (float64)."""
        if self.weight is None:
            return int(valid.sum())
        return float(self.weight[t[valid]].sum())

    def count(self, prediction: Any, target: Any) -> Union[int, float]:
        """For ``"mean"``, what the mean divides by: the number of non-ignored targets, the
        sum of their weights with ``weight`` (a float), or the number of rows for class
        probabilities; else 1. Ignored targets count nowhere."""
        if self.reduction != "mean":
            return 1
        scores = _class_scores(prediction)
        t = np.asarray(target)
        if self._soft(scores, t):
            return int(np.prod(scores.shape[:-1])) if scores.shape[-1] else 0
        t, valid = self._class_targets(scores, t)
        self._weights(scores.shape[-1], np.dtype(np.float64))  # the length check
        return self._denominator(t, valid)

    def metrics(self, prediction: Any, target: Any) -> Dict[str, Tuple[float, int]]:
        """``{"accuracy": (correct, counted)}``: argmax over the last axis equal to the
        target, over the non-ignored targets (unweighted); for class-probability targets,
        equal to the target's argmax, over all rows."""
        scores = _class_scores(prediction)
        t = np.asarray(target)
        soft = self._soft(scores, t)
        if scores.shape[-1] == 0:  # argmax of nothing is undefined; nothing can be right
            rows = int(np.prod(scores.shape[:-1])) if soft else 0
            return {"accuracy": (0, rows)}
        guess = scores.argmax(axis=-1)
        if soft:
            return {"accuracy": (int((guess == t.argmax(axis=-1)).sum()), int(guess.size))}
        keep = t != self.ignore_index
        return {"accuracy": (int(((guess == t) & keep).sum()), int(keep.sum()))}


class CrossEntropyLoss(_ClassLoss):
    """Softmax cross-entropy over the last axis, as ``torch.nn.CrossEntropyLoss``.

    With log-probabilities ``l = log_softmax(z)``, weight ``w`` (1 if None), smoothing ε and
    C classes, target index t gives::

        loss_i = (1 - ε) w[t_i] (-l_i[t_i]) + (ε / C) Σ_c w[c] (-l_i[c])

    and "mean" divides the sum over non-ignored targets by ``Σ_i w[t_i]`` over them (their
    number without weight), exactly as torch. A target of class probabilities q (the
    prediction's shape, float) gives ``loss_i = -Σ_c w[c] q'_i[c] l_i[c]`` with
    ``q' = (1 - ε) q + ε / C``; its "mean" divides by the number of rows (torch's rule;
    ``ignore_index`` does not apply, and q is not checked to sum to 1, as in torch).

    Args:
        ignore_index: targets equal to it contribute nothing, not even to the mean's
            denominator, and get an exactly zero gradient whatever their logits (default
            -100, as torch).
        reduction: "mean" (nan when nothing is counted, as torch), "sum", or "none"
            (per-target losses of the target's shape, 0 where ignored).
        weight: optional per-class weights (C,), finite and non-negative (keyword-only).
        label_smoothing: ε in [0, 1]: the target mixes with the uniform distribution
            (keyword-only, default 0).

    Shapes: prediction z (..., C) of logits; target (...) of ints in [0, C), or (..., C) of
    probabilities. Gradient: ``(softmax(z_i) Σ_c a_i[c] - a_i) · scale_i`` with ``a_i`` the
    coefficients of ``-l_i`` above and ``scale_i`` = 1/denominator for "mean".
    """

    _config_args = ("ignore_index", "reduction", "weight", "label_smoothing")
    _config_later = {"weight": None, "label_smoothing": 0.0}
    _takes_probabilities = True

    def __init__(self, ignore_index: int = -100, reduction: str = "mean", *,
                 weight: Any = None, label_smoothing: float = 0.0) -> None:
        super().__init__(ignore_index, reduction, weight)
        self.label_smoothing = _label_smoothing(label_smoothing)

    def forward(self, prediction: Any, target: Any) -> LossValue:
        z = _class_scores(prediction)
        t = np.asarray(target)
        c = z.shape[-1]
        dtype, out = _work_dtype(z), _out_dtype(z)
        soft = self._soft(z, t)
        if not soft:
            t, valid = self._class_targets(z, t)
        w = self._weights(c, dtype)
        eps = self.label_smoothing
        if not soft and c and z.dtype == dtype and z.size:
            return self._forward_fused(z, t, valid, w, eps, out)
        # Non-finite logits give non-finite losses, as in torch, without numpy's warnings
        # (a training loop checks the value); ignored rows are masked out afterwards.
        with np.errstate(invalid="ignore", over="ignore"):
            logp, probs = _log_softmax(z, dtype)
            if soft:
                return self._forward_soft(logp, probs, t, w, eps, out)
            safe_t = np.where(valid, t, 0)
            if c == 0:  # every target is ignored (checked): nothing to pick
                per = np.zeros(t.shape, dtype)
                wt = None
            else:
                per = -np.take_along_axis(logp, safe_t[..., None], axis=-1)[..., 0]
                wt = None if w is None else w[safe_t]
                if wt is not None:
                    per *= wt
                if eps:
                    smooth = -(logp @ w) if w is not None else -logp.sum(axis=-1)
                    per *= 1.0 - eps
                    per += (eps / c) * smooth
                per[~valid] = 0.0  # whatever an ignored row's logits were
            denom = self._denominator(safe_t, valid)
        self._cache = ("index", probs, safe_t, valid, wt, w, eps, denom, out)
        return self._reduce(per, out, denom)

    def _forward_fused(self, z: np.ndarray, t: np.ndarray, valid: np.ndarray,
                       w: Optional[np.ndarray], eps: float, out: np.dtype) -> LossValue:
        """Class targets on float32/float64 logits: loss and gradient in one compiled pass over
        the logits (cpp/losses/cross_entropy.h), the gradient already scaled for the mean."""
        c = z.shape[-1]
        denom = self._denominator(np.where(valid, t, 0), valid)
        target = np.where(valid, t, -1).astype(np.int64, copy=False).reshape(-1)
        per, grad = _core.cross_entropy_forward(np.ascontiguousarray(z).reshape(-1, c), target,
                                                w, eps, self._mean_factor(denom))
        self._cache = ("fused", grad.reshape(z.shape), valid, out)
        return self._reduce(per.reshape(t.shape), out, denom)

    def _forward_soft(self, logp: np.ndarray, probs: np.ndarray, target: np.ndarray,
                      w: Optional[np.ndarray], eps: float, out: np.dtype) -> LossValue:
        c = logp.shape[-1]
        q = target.astype(logp.dtype)
        if eps and c:
            q *= 1.0 - eps
            q += eps / c
        if w is not None:
            q *= w
        per = -(q * logp).sum(axis=-1)
        # torch divides by numel / C, which is 0/0 = nan without classes.
        rows = per.size if c else 0
        self._cache = ("soft", probs, q, rows, out)
        return self._reduce(per, out, rows)

    def backward(self, dloss: Any = None) -> np.ndarray:
        """d(loss)/d(prediction); ``dloss`` scales it (needed shape for reduction="none").
        Exactly 0 at ignored targets, even where their logits are not finite."""
        cache = self._take_cache()
        if cache[0] == "fused":
            _, grad, valid, out = cache
            up = self._upstream(dloss, valid.shape, grad.dtype)
            if isinstance(up, np.ndarray) or up != 1.0:
                with np.errstate(invalid="ignore", over="ignore"):
                    grad *= np.asarray(up, grad.dtype)[..., None] if isinstance(
                        up, np.ndarray) else grad.dtype.type(up)
                grad[~valid] = 0.0   # an ignored row stays 0 whatever arrives from above
            return grad.astype(out, copy=False)
        if cache[0] == "soft":
            _, probs, q, rows, out = cache
            scale = self._upstream(dloss, probs.shape[:-1], probs.dtype)
            scale = scale * self._mean_factor(rows)
            with np.errstate(invalid="ignore", over="ignore"):
                grad = probs
                grad *= q.sum(axis=-1, keepdims=True)
                grad -= q
                grad *= np.asarray(scale, grad.dtype)[..., None]
            return grad.astype(out, copy=False)
        _, probs, safe_t, valid, wt, w, eps, denom, out = cache
        grad = probs
        if grad.shape[-1] == 0:
            return grad.astype(out, copy=False)
        c = grad.shape[-1]
        up = self._upstream(dloss, valid.shape, grad.dtype)
        scale = np.where(valid, up * self._mean_factor(denom), 0.0).astype(grad.dtype)
        # a_i = (1 - ε) w[t_i] onehot(t_i) + (ε / C) w, whose sum s_i is below.
        picked = scale if wt is None else wt * scale
        with np.errstate(invalid="ignore", over="ignore"):
            if eps:
                wsum = float(c) if w is None else float(w.sum())
                grad *= ((1.0 - eps) * picked + (eps / c) * wsum * scale)[..., None]
                grad -= (eps / c) * (scale[..., None] if w is None else scale[..., None] * w)
            else:
                grad *= picked[..., None]
            at_t = np.take_along_axis(grad, safe_t[..., None], axis=-1)
            at_t -= (1.0 - eps) * picked[..., None]
            np.put_along_axis(grad, safe_t[..., None], at_t, axis=-1)
        grad[~valid] = 0.0  # softmax of non-finite logits is nan there: 0 · nan is not 0
        return grad.astype(out, copy=False)


class NLLLoss(_ClassLoss):
    """Negative log-likelihood of log-probabilities, as ``torch.nn.NLLLoss``::

        loss_i = -w[t_i] x_i[t_i]

    for input x (..., C) of log-probabilities (e.g. from ``nn.LogSoftmax``) over the last
    axis. "mean" divides the sum over non-ignored targets by ``Σ_i w[t_i]`` over them (their
    number without weight), as torch; CrossEntropyLoss is LogSoftmax followed by NLLLoss.

    Args:
        ignore_index: targets equal to it contribute nothing and get a zero gradient
            (default -100).
        reduction: "mean" (nan when nothing is counted, as torch), "sum" or "none".
        weight: optional per-class weights (C,), finite and non-negative (keyword-only).

    Shapes: input (..., C), target (...) of ints in [0, C).
    Gradient: ``-w[t_i] · scale_i`` at the target class, 0 elsewhere; ``scale_i`` is
    1/denominator for "mean".
    """

    def __init__(self, ignore_index: int = -100, reduction: str = "mean", *,
                 weight: Any = None) -> None:
        super().__init__(ignore_index, reduction, weight)

    def forward(self, prediction: Any, target: Any) -> LossValue:
        x = _class_scores(prediction, "input")
        t, valid = self._class_targets(x, target)
        dtype, out = _work_dtype(x), _out_dtype(x)
        w = self._weights(x.shape[-1], dtype)
        safe_t = np.where(valid, t, 0)
        wt = None
        if x.shape[-1] == 0:
            per = np.zeros(t.shape, dtype)
        else:
            per = np.take_along_axis(x, safe_t[..., None], axis=-1)[..., 0].astype(dtype)
            np.negative(per, out=per)
            with np.errstate(invalid="ignore"):  # -inf log-probability with weight 0
                if w is not None:
                    wt = w[safe_t]
                    per *= wt
            per[~valid] = 0.0
        denom = self._denominator(safe_t, valid)
        self._cache = (x.shape, dtype, safe_t, valid, wt, denom, out)
        return self._reduce(per, out, denom)

    def backward(self, dloss: Any = None) -> np.ndarray:
        """d(loss)/d(input); ``dloss`` scales it (needed shape for reduction="none")."""
        shape, dtype, safe_t, valid, wt, denom, out = self._take_cache()
        grad = np.zeros(shape, dtype)
        if shape[-1] == 0:
            return grad.astype(out, copy=False)
        up = self._upstream(dloss, valid.shape, dtype)
        with np.errstate(invalid="ignore", over="ignore"):
            val = -np.where(valid, up * self._mean_factor(denom), 0.0).astype(dtype)
            if wt is not None:
                val *= wt
        np.put_along_axis(grad, safe_t[..., None], val[..., None], axis=-1)
        grad[~valid] = 0.0  # also clears the -0.0 put at class 0 of ignored rows
        return grad.astype(out, copy=False)


class MSELoss(_Loss):
    """Mean squared error ``mean((p - y)²)``, as ``torch.nn.MSELoss``.

    Args: reduction "mean" (default; nan for an empty batch, as torch), "sum" or "none".
    Shapes: prediction and target alike. Gradient: ``2 (p - y) / n`` for "mean".
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__(reduction)

    def forward(self, prediction: Any, target: Any) -> LossValue:
        p = _prediction(prediction)
        y = _prediction(target, "target")
        if y.shape != p.shape:
            raise ValueError(f"target has shape {y.shape}, expected {p.shape} (the shape of "
                             "prediction)")
        dtype, out = _work_dtype(p), _out_dtype(p)
        with np.errstate(invalid="ignore", over="ignore"):  # inf inputs: inf/nan, as torch
            diff = np.subtract(p, y, dtype=dtype)
            self._cache = (diff, out)
            return self._reduce(diff * diff, out)

    def backward(self, dloss: Any = None) -> np.ndarray:
        """d(loss)/d(prediction); ``dloss`` scales it (needed shape for reduction="none")."""
        diff, out = self._take_cache()
        up = self._upstream(dloss, diff.shape, diff.dtype)
        factor = 2.0 * self._mean_factor(diff.size) if diff.size else 2.0
        with np.errstate(invalid="ignore", over="ignore"):
            grad = diff * up
            grad *= factor
        return grad.astype(out, copy=False)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits, as ``torch.nn.BCEWithLogitsLoss``::

        loss = (1 - y) x + w softplus(-x),   softplus(u) = log(1 + e^u)

    with ``w = 1 + (pos_weight - 1) y`` (1 if pos_weight is None), computed without overflow or
    cancellation (see forward).

    Args: reduction "mean" (default; nan for an empty batch, as torch), "sum" or "none";
    pos_weight: optional weight of the positive term, broadcast against the last axis (as
    torch).
    Shapes: logits x and targets y in [0, 1] alike.
    Gradient: ``(1 - y) - w σ(-x)`` (= σ(x) - y without pos_weight), / n for "mean".
    """

    _config_args = ("reduction", "pos_weight")

    def __init__(self, reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__(reduction)
        self.pos_weight = None if pos_weight is None else np.asarray(pos_weight, np.float64)

    def forward(self, prediction: Any, target: Any) -> LossValue:
        x = _prediction(prediction)
        y = _prediction(target, "target")
        if y.shape != x.shape:
            raise ValueError(f"target has shape {y.shape}, expected {x.shape} (the shape of "
                             "prediction)")
        dtype, out = _work_dtype(x), _out_dtype(x)
        if self.pos_weight is None:
            pw: Union[float, np.ndarray] = 1.0
        else:
            try:
                np.broadcast_shapes(self.pos_weight.shape, x.shape)
            except ValueError:
                raise ValueError(f"pos_weight of shape {self.pos_weight.shape} does not "
                                 f"broadcast against the prediction's shape {x.shape} (one "
                                 "weight per entry of the last axis, or one)") from None
            pw = self.pos_weight.astype(dtype)
        xw, yw = x.astype(dtype, copy=False), y.astype(dtype, copy=False)
        with np.errstate(invalid="ignore", over="ignore"):  # inf/nan inputs, as torch
            weight = 1.0 + (pw - 1.0) * yw
            # With e = exp(-|x|): softplus(-|x|) = log1p(e) and σ(-|x|) = e / (1 + e). Using
            # softplus(-x) = softplus(x) - x, each sign of x gets the form that adds two
            # non-negative terms (no cancellation, exact down to tiny losses):
            #   x >= 0: loss = (1 - y) x + w softplus(-x),  grad = (1 - y) - w σ(-x)
            #   x <  0: loss = w softplus(x) - pw y x,      grad = w σ(x) - pw y
            e = np.exp(-np.abs(xw))
            sp_small = np.log1p(e)
            s_small = e / (1.0 + e)
            pos = xw >= 0
            per = np.where(pos, (1.0 - yw) * xw + weight * sp_small,
                           weight * sp_small - pw * yw * xw)
            local = np.where(pos, (1.0 - yw) - weight * s_small, weight * s_small - pw * yw)
        self._cache = (local, out)
        return self._reduce(per, out)

    def backward(self, dloss: Any = None) -> np.ndarray:
        """d(loss)/d(prediction); ``dloss`` scales it (needed shape for reduction="none")."""
        local, out = self._take_cache()
        up = self._upstream(dloss, local.shape, local.dtype)
        factor = self._mean_factor(local.size) if local.size else 1.0
        with np.errstate(invalid="ignore", over="ignore"):
            grad = local * up
            grad *= factor
        return grad.astype(out, copy=False)
