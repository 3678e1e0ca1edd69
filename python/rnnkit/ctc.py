"""Connectionist temporal classification: the CTC loss and its decoders.

CTC (Graves et al., 2006) trains a network that emits, at every step t, log-probabilities
``y_t(k)`` over C classes, one of them the *blank*, against a target label sequence shorter
than the input, without an alignment: a path (one class per step) maps to a label sequence by
collapsing repeated classes and then dropping blanks (``a a - a b b -`` -> ``a a b``), and

    loss = -log p(target | y) = -log Σ_{paths π collapsing to target} Π_t exp(y_t(π_t))

:class:`CTCLoss` computes it with torch.nn.CTCLoss's arguments and semantics, forward and
backward in C++ (cpp/losses/ctc.h: α/β recursions in log space, samples in parallel, results
independent of the thread count). The decoders turn the same log-probabilities into label
sequences: :func:`greedy_decode` (the best path, collapsed) and :func:`prefix_beam_search`
(the most probable label sequence, summing over its paths). :func:`edit_distance` and
:func:`character_error_rate` score the results.

Shapes (time-major, as torch): log_probs (T, N, C), or (T, C) for one unbatched sequence;
targets (N, S) padded or (sum(target_lengths),) concatenated; input_lengths and
target_lengths (N,).

``CTCLoss`` is also ``rnnkit.losses.CTCLoss``. It is not a subclass of ``losses._Loss``:
losses re-exports it, so this module cannot import losses (a cycle); it follows the same
conventions (Python float result, one ``backward()`` per call, RuntimeError without a forward,
``get_config``).
"""
from __future__ import annotations

import numbers
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from .ops._validate import FLOAT_DTYPES, _shape_str

__all__ = ["CTCLoss", "greedy_decode", "prefix_beam_search", "edit_distance",
           "character_error_rate"]

LossValue = Union[float, np.ndarray]
Hypothesis = Tuple[List[int], float]

_REDUCTIONS = ("mean", "sum", "none")


# ----------------------------------------------------------------------------- argument checks
def _int_arg(name: str, value: Any, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _log_probs(log_probs: Any) -> Tuple[np.ndarray, bool]:
    """(log_probs as a C-contiguous (T, N, C) float32/float64 array, whether it was unbatched
    (T, C)). No dtype conversion: the loss and its gradient keep the input's dtype."""
    arr = log_probs if isinstance(log_probs, np.ndarray) else np.asarray(log_probs)
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(f"log_probs must have dtype float32 or float64, got {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise ValueError(f"log_probs must be (T, N, C) or unbatched (T, C), got shape "
                         f"{_shape_str(arr.shape)}")
    if arr.shape[-1] == 0:
        raise ValueError(f"log_probs has shape {_shape_str(arr.shape)}, expected C >= 1 "
                         "classes on its last axis (the blank is one)")
    unbatched = arr.ndim == 2
    if unbatched:
        arr = arr[:, None, :]
    return np.ascontiguousarray(arr), unbatched


def _check_blank(blank: int, shape: Tuple[int, ...]) -> None:
    if blank >= shape[-1]:
        raise ValueError(f"blank={blank} is not a class of log_probs of shape "
                         f"{_shape_str(shape)}: expected blank in [0, C={shape[-1]})")


def _lengths(name: str, value: Any, batch: int, unbatched: bool) -> np.ndarray:
    """Per-sample lengths as a fresh int64 (N,) array (fresh: a caller who changes theirs
    between forward and backward changes nothing). Unbatched input takes a scalar or (1,)."""
    arr = np.asarray(value)
    if arr.size == 0 and not isinstance(value, np.ndarray):
        arr = arr.astype(np.int64)  # [] for a batch of none: numpy makes it float64
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be integers, got dtype {arr.dtype}")
    if unbatched and arr.shape in ((), (1,)):
        arr = arr.reshape(1)
    if arr.shape != (batch,):
        expected = "() or (1,) for unbatched log_probs (T, C)" if unbatched else (
            f"({batch},), one length per sequence (N={batch})")
        raise ValueError(f"{name} has shape {_shape_str(arr.shape)}, expected {expected}")
    return np.array(arr, dtype=np.int64, copy=True)


def _input_lengths(value: Any, shape: Tuple[int, ...], unbatched: bool) -> np.ndarray:
    steps, batch = shape[0], shape[1]
    if value is None:
        return np.full(batch, steps, np.int64)
    il = _lengths("input_lengths", value, batch, unbatched)
    bad = (il < 0) | (il > steps)
    if bad.any():
        n = int(np.argmax(bad))
        raise ValueError(f"input_lengths[{n}] = {il[n]}, expected a value in [0, T={steps}] "
                         f"(log_probs has shape {_shape_str(shape)})")
    return il


def _targets(targets: Any, tl: np.ndarray, c: int, blank: int, unbatched: bool) -> np.ndarray:
    """targets checked against target_lengths (N,) and converted to int64: padded (N, S) with
    S >= every length, or concatenated (sum(target_lengths),); unbatched (S,) is one padded
    row. Every label within a target's length must be a class other than blank (entries past
    it are padding, never read)."""
    arr = targets if isinstance(targets, np.ndarray) else np.asarray(targets)
    if arr.size == 0 and not isinstance(targets, np.ndarray):
        arr = arr.astype(np.int64).reshape(arr.shape)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"targets must be an integer array of labels, got dtype {arr.dtype}")
    batch = tl.shape[0]
    if unbatched and arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim == 2:
        if arr.shape[0] != batch:
            raise ValueError(f"targets has shape {_shape_str(arr.shape)}, expected ({batch}, S) "
                             f"padded, one row per sequence (N={batch})")
        long = tl > arr.shape[1]
        if long.any():
            n = int(np.argmax(long))
            raise ValueError(f"target_lengths[{n}] = {tl[n]} exceeds the width S="
                             f"{arr.shape[1]} of the padded targets {_shape_str(arr.shape)}")
        used = arr[np.arange(arr.shape[1]) < tl[:, None]]
    elif arr.ndim == 1:
        total = int(tl.sum())
        if arr.shape[0] != total:
            raise ValueError(f"targets has shape {_shape_str(arr.shape)}, expected ({total},) = "
                             "(sum(target_lengths),) for concatenated targets")
        used = arr
    else:
        raise ValueError(f"targets must be (N, S) padded or (sum(target_lengths),) "
                         f"concatenated, got shape {_shape_str(arr.shape)}")
    bad = (used < 0) | (used >= c) | (used == blank)
    if bad.any():
        raise ValueError(f"targets hold label {used[bad][0]}, expected labels in [0, C={c}) "
                         f"other than blank={blank}")
    return np.ascontiguousarray(arr, dtype=np.int64)


# ----------------------------------------------------------------------------------- the loss
class CTCLoss:
    """The CTC loss, as ``torch.nn.CTCLoss``: ``loss = fn(log_probs, targets, input_lengths,
    target_lengths)``, then ``fn.backward()`` -> d(loss)/d(log_probs).

    For sample n with ``T_n = input_lengths[n]`` steps and target ``l`` of
    ``S_n = target_lengths[n]`` labels::

        loss_n = -log Σ_{π : B(π) = l} Π_{t < T_n} exp(log_probs[t, n, π_t])

    where B collapses repeats and then drops blanks. "mean" is
    ``mean_n(loss_n / max(S_n, 1))`` (torch's rule; nan for an empty batch), "sum" is
    ``Σ_n loss_n``, "none" the (N,) array (a 0-d array for unbatched input).

    Args:
        blank: the blank's class index (default 0).
        reduction: "mean" (default), "sum" or "none".
        zero_infinity: losses that are +inf (no alignment exists: a target longer than the
            input allows, counting a blank between equal neighbours) and their gradients
            become 0. Without it such a loss is inf and its gradient nan, as torch's.

    Shapes: log_probs (T, N, C) float32 or float64 (log-probabilities, e.g. a
    ``log_softmax``; they are not checked to be normalised), or (T, C); targets (N, S) padded
    or concatenated (sum(target_lengths),), integer labels in [0, C) other than blank
    (padding past a target's length is ignored); input_lengths (N,) in [0, T]; target_lengths
    (N,) >= 0 (lists or tuples are fine).

    Gradient: the true derivative w.r.t. log_probs, 0 at steps t >= T_n. torch's native kernel
    returns ``exp(log_probs)`` plus this (its gradient after a log_softmax); the two agree
    once chained through a log_softmax, whose backward removes that term.
    """

    _config_args: Tuple[str, ...] = ("blank", "reduction", "zero_infinity")

    def __init__(self, blank: int = 0, reduction: str = "mean",
                 zero_infinity: bool = False) -> None:
        self.blank = _int_arg("blank", blank, 0)
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction
        if not isinstance(zero_infinity, (bool, np.bool_)):
            raise TypeError(f"zero_infinity must be a bool, got {zero_infinity!r}")
        self.zero_infinity = bool(zero_infinity)
        self._cache: Optional[tuple] = None

    def get_config(self) -> Dict[str, Any]:
        """The constructor arguments that rebuild this loss: ``CTCLoss(**get_config())``."""
        return {name: getattr(self, name) for name in self._config_args}

    def __call__(self, log_probs: Any, targets: Any, input_lengths: Any,
                 target_lengths: Any) -> LossValue:
        return self.forward(log_probs, targets, input_lengths, target_lengths)

    def forward(self, log_probs: Any, targets: Any, input_lengths: Any,
                target_lengths: Any) -> LossValue:
        """The loss (a Python float, or an array for reduction="none"); keeps what
        :meth:`backward` needs."""
        lp, unbatched = _log_probs(log_probs)
        shape = np.shape(log_probs)
        _check_blank(self.blank, shape)
        il = _input_lengths(input_lengths, lp.shape, unbatched)
        tl = _lengths("target_lengths", target_lengths, lp.shape[1], unbatched)
        if (tl < 0).any():
            n = int(np.argmax(tl < 0))
            raise ValueError(f"target_lengths[{n}] = {tl[n]}, expected a value >= 0")
        tg = _targets(targets, tl, lp.shape[2], self.blank, unbatched)
        nll, log_alpha = _core.ctc_loss_forward(lp, tg, il, tl, self.blank)
        # zero_infinity is applied here, not in the kernel: backward needs the true nll.
        per = np.where(nll == np.inf, 0, nll).astype(lp.dtype) if self.zero_infinity \
            else nll.copy()
        self._cache = (lp, tg, il, tl, nll, log_alpha, unbatched)
        if self.reduction == "none":
            return per.reshape(()) if unbatched else per
        with np.errstate(invalid="ignore"):  # inf/nan losses give inf/nan, as torch's
            if self.reduction == "sum":
                return float(per.sum(dtype=np.float64))
            if per.size == 0:  # torch's mean over nothing is nan (0/0)
                return float("nan")
            return float((per.astype(np.float64) / np.maximum(tl, 1)).mean())

    def backward(self, dloss: Any = None) -> np.ndarray:
        """d(loss)/d(log_probs), of log_probs' shape and dtype. ``dloss`` scales it: a number
        for "mean"/"sum", an array of the loss's shape ((N,), or () unbatched) for "none"
        (default ones)."""
        if self._cache is None:
            raise RuntimeError("CTCLoss.backward called before the loss was computed: call "
                               "loss(log_probs, targets, input_lengths, target_lengths) first "
                               "(each call's gradient is returned by one backward)")
        lp, tg, il, tl, nll, log_alpha, unbatched = self._cache
        batch = lp.shape[1]
        if self.reduction == "none":
            shape = () if unbatched else (batch,)
            up = np.ones(batch) if dloss is None else np.asarray(dloss)
            if dloss is not None and up.shape != shape:
                raise ValueError(f"dloss has shape {_shape_str(up.shape)}, expected "
                                 f"{_shape_str(shape)} (the loss shape)")
            up = up.reshape(batch).astype(np.float64)
        else:
            up = np.full(batch, 1.0 if dloss is None else float(dloss))
        if self.reduction == "mean" and batch:
            up = up / np.maximum(tl, 1) / batch
        self._cache = None
        grad = _core.ctc_loss_backward(up.astype(lp.dtype), lp, tg, il, tl, nll, log_alpha,
                                       self.blank, self.zero_infinity)
        return grad[:, 0, :] if unbatched else grad


# ------------------------------------------------------------------------------- the decoders
def _decoder_input(log_probs: Any, input_lengths: Any, blank: int
                   ) -> Tuple[np.ndarray, np.ndarray]:
    lp, unbatched = _log_probs(log_probs)
    _check_blank(_int_arg("blank", blank, 0), np.shape(log_probs))
    return lp, _input_lengths(input_lengths, lp.shape, unbatched)


def greedy_decode(log_probs: Any, input_lengths: Any = None, blank: int = 0) -> List[List[int]]:
    """Best-path decoding: the most probable class at every step, repeats collapsed, blanks
    dropped (``a a - a b b -`` -> ``[a, a, b]``).

    The best path is not always the most probable label sequence (many paths map to one);
    :func:`prefix_beam_search` searches for that. Scores may be log-probabilities, logits or
    probabilities alike (only the argmax matters).

    Args:
        log_probs: (T, N, C), or (T, C) for one sequence (a batch of one then).
        input_lengths: (N,) valid steps per sequence (default: all T).
        blank: the blank's class index.
    Returns: one label list per sequence.
    """
    lp, il = _decoder_input(log_probs, input_lengths, blank)
    steps = lp.shape[0]
    best = lp.argmax(axis=2)  # (T, N)
    keep = best != blank
    keep[1:] &= best[1:] != best[:-1]  # a repeat is one label unless a blank separates them
    keep &= np.arange(steps)[:, None] < il[None, :]
    return [best[keep[:, n], n].tolist() for n in range(lp.shape[1])]


def _beam_search_one(lp: np.ndarray, beam_width: int, blank: int) -> List[Hypothesis]:
    """Prefix beam search over one sequence's (T_n, C) float64 log-probabilities: the beam's
    label prefixes with their log-probabilities, best first.

    Each prefix keeps two log-probabilities: of the paths (so far) that collapse to it and end
    in a blank (pb), or in its last label (pnb). One step extends every path by one class:
    a blank keeps the prefix (pb); its last label again keeps it too (pnb, collapsed); another
    label c grows it to prefix + c, and so does c == last after a blank (from pb only). Without
    pruning the numbers are exact prefix probabilities; the beam keeps the best beam_width.
    Decoding is sequential in t, so this is a Python loop over time (vectorised over the beam
    and the classes within a step).
    """
    c = lp.shape[1]
    classes = np.arange(c)
    prefixes: List[Tuple[int, ...]] = [()]
    pb, pnb, last = np.array([0.0]), np.array([-np.inf]), np.array([-1])
    for y in lp:
        total = np.logaddexp(pb, pnb)
        stay_b = total + y[blank]
        stay_nb = np.where(last >= 0, pnb + y[np.maximum(last, 0)], -np.inf)
        grow = np.where(classes[None, :] == last[:, None], pb[:, None], total[:, None])
        grow = grow + y[None, :]
        grow[:, blank] = -np.inf
        # A grown prefix already in the beam is that entry: its paths join the ones staying.
        index = {p: i for i, p in enumerate(prefixes)}
        for i, p in enumerate(prefixes):
            parent = index.get(p[:-1]) if p else None
            if parent is not None:
                stay_nb[i] = np.logaddexp(stay_nb[i], grow[parent, p[-1]])
                grow[parent, p[-1]] = -np.inf
        k = len(prefixes)
        scores = np.concatenate([np.logaddexp(stay_b, stay_nb), grow.ravel()])
        # Stable, so ties break alike on every run; -inf growths are not prefixes at all (and
        # the merged ones would duplicate an entry), while every staying prefix may be kept.
        order = np.argsort(-scores, kind="stable")
        order = order[(order < k) | (scores[order] > -np.inf)][:beam_width]
        stayed, grown = order[order < k], order[order >= k] - k
        src, cls = np.divmod(grown, c)
        prefixes = [prefixes[i] for i in stayed] + [prefixes[s] + (int(j),)
                                                    for s, j in zip(src, cls)]
        pb = np.concatenate([stay_b[stayed], np.full(len(grown), -np.inf)])
        pnb = np.concatenate([stay_nb[stayed], grow[src, cls]])
        last = np.concatenate([last[stayed], cls])
    total = np.logaddexp(pb, pnb)
    order = np.argsort(-total, kind="stable")
    return [(list(prefixes[i]), float(total[i])) for i in order]


def prefix_beam_search(log_probs: Any, input_lengths: Any = None, beam_width: int = 16,
                       blank: int = 0, *, top_k: Optional[int] = None
                       ) -> Union[List[List[int]], List[List[Hypothesis]]]:
    """CTC prefix beam search: the most probable label sequence per sequence, summing the
    probabilities of all paths that collapse to it (in log space), keeping the
    ``beam_width`` most probable prefixes at every step.

    With a beam as wide as the number of label sequences the input can yield, the result is
    exactly the most probable label sequence; narrower beams approximate it.

    Args:
        log_probs: (T, N, C) log-probabilities (e.g. a log_softmax), or (T, C) (a batch of
            one then); computed in float64.
        input_lengths: (N,) valid steps per sequence (default: all T).
        beam_width: prefixes kept per step (>= 1).
        blank: the blank's class index.
        top_k: if given, return for each sequence up to ``min(top_k, beam_width)``
            ``(labels, log_probability)`` pairs, best first, instead of the best labels.
    Returns: one label list per sequence, or with ``top_k`` one list of pairs per sequence.
    """
    lp, il = _decoder_input(log_probs, input_lengths, blank)
    width = _int_arg("beam_width", beam_width, 1)
    k = None if top_k is None else _int_arg("top_k", top_k, 1)
    out: list = []
    for n in range(lp.shape[1]):
        hyps = _beam_search_one(lp[:il[n], n, :].astype(np.float64), width, int(blank))
        out.append(hyps[0][0] if k is None else hyps[:k])
    return out


# -------------------------------------------------------------------------------- the metrics
def _tokens(seq: Any) -> np.ndarray:
    return seq if isinstance(seq, np.ndarray) and seq.ndim == 1 else np.asarray(list(seq))


def edit_distance(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions that turn
    sequence ``a`` into ``b`` (strings, lists of labels, 1-D arrays; elements compared with
    ==). ``edit_distance("kitten", "sitting") == 3``."""
    x, y = _tokens(a), _tokens(b)
    if len(x) == 0 or len(y) == 0:
        return int(len(x) + len(y))
    if x.dtype.kind != y.dtype.kind or x.dtype.kind not in "iuU":
        x, y = x.astype(object), y.astype(object)
    # Row i holds the distances of a[:i] to every b[:j]. Substitutions and deletions come
    # from the previous row (vectorised); an insertion chain along the row,
    # row[j] = min(cand[j], row[j-1] + 1), is min over k <= j of cand[k] + (j - k): a cumulative
    # minimum of cand - j, so each row is a few numpy calls.
    j = np.arange(len(y) + 1)
    row = j.copy()
    for i, tok in enumerate(x, start=1):
        cand = np.empty_like(row)
        cand[0] = i
        cand[1:] = np.minimum(row[1:] + 1, row[:-1] + (y != tok))
        row = np.minimum.accumulate(cand - j) + j
    return int(row[-1])


def character_error_rate(hyps: Sequence[Sequence[Any]], refs: Sequence[Sequence[Any]]) -> float:
    """Corpus error rate: ``Σ edit_distance(hyp, ref) / Σ len(ref)`` over the pairs (so long
    references weigh more, as in speech recognition's CER/WER; for label lists it is the label
    error rate). 0.0 when every reference is empty and so is every hypothesis, inf when the
    references are empty but some hypothesis is not."""
    hyps, refs = list(hyps), list(refs)
    if len(hyps) != len(refs):
        raise ValueError(f"hyps and refs must pair up, got {len(hyps)} hypotheses and "
                         f"{len(refs)} references")
    errors = sum(edit_distance(h, r) for h, r in zip(hyps, refs))
    chars = sum(len(r) for r in refs)
    if chars == 0:
        return 0.0 if errors == 0 else float("inf")
    return errors / chars
