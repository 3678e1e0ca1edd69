"""Slow, obvious float64 references for the CTC loss (tests only).

Two independent ones:
- brute force: enumerate every path of T steps over C classes, collapse each (merge repeats,
  drop blanks), and add up the probabilities of the paths that give the target. Exact, and
  shares nothing with a forward-backward recursion; only for tiny T and C (C**T paths).
  The same enumeration gives the exact gradient and the distribution over label sequences
  (the decoders' ground truth).
- forward-backward: the α/β recursions over the extended label sequence, written plainly in
  numpy with np.logaddexp and loops over t and s.
"""
from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np


def collapse(path, blank=0):
    """The label sequence a path maps to: repeats merged, then blanks dropped."""
    out = []
    prev = None
    for k in path:
        if k != prev and k != blank:
            out.append(int(k))
        prev = k
    return tuple(out)


def _paths(steps, classes):
    """Every path of T steps over C classes as a (C**T, T) int array."""
    paths = list(itertools.product(range(classes), repeat=steps))  # [()] for T = 0
    return np.array(paths, dtype=np.int64).reshape(len(paths), steps)


def label_distribution(lp, blank=0):
    """{label sequence: probability} over all paths through lp (T, C), in float64."""
    lp = np.asarray(lp, np.float64)
    steps, classes = lp.shape
    paths = _paths(steps, classes)
    logp = lp[np.arange(steps), paths].sum(axis=1) if steps else np.zeros(1)
    dist = defaultdict(float)
    for path, v in zip(paths, np.exp(logp)):
        dist[collapse(path, blank)] += v
    return dict(dist)


def brute_force_loss_grad(lp, target, blank=0):
    """(-log p(target | lp), d/d lp) for one sequence lp (T, C), by enumeration. The gradient
    is exact: d(-log P)/d lp[t, k] = -(Σ of the target's paths with π_t = k) / P; nan where P
    is 0 (the loss is +inf, constant)."""
    lp = np.asarray(lp, np.float64)
    steps, classes = lp.shape
    target = tuple(int(v) for v in target)
    paths = _paths(steps, classes)
    hit = np.array([collapse(p, blank) == target for p in paths], dtype=bool)
    if steps == 0:
        return (0.0 if not target else np.inf), np.zeros((0, classes))
    probs = np.exp(lp[np.arange(steps), paths].sum(axis=1)) * hit
    total = probs.sum()
    grad = np.zeros((steps, classes))
    for t in range(steps):
        np.add.at(grad[t], paths[:, t], probs)
    if total == 0:
        return np.inf, np.full((steps, classes), np.nan)
    return -np.log(total), -grad / total


def forward_backward_loss_grad(lp, target, blank=0):
    """(loss, gradient w.r.t. lp (T, C)) by plain log-space α/β recursions."""
    lp = np.asarray(lp, np.float64)
    steps, classes = lp.shape
    ext = [blank]
    for v in target:
        ext += [int(v), blank]
    n_ext = len(ext)
    if steps == 0:
        return (0.0 if not target else np.inf), np.zeros((0, classes))
    alpha = np.full((steps, n_ext), -np.inf)
    alpha[0, 0] = lp[0, ext[0]]
    if n_ext > 1:
        alpha[0, 1] = lp[0, ext[1]]
    for t in range(1, steps):
        for s in range(n_ext):
            acc = alpha[t - 1, s]
            if s >= 1:
                acc = np.logaddexp(acc, alpha[t - 1, s - 1])
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                acc = np.logaddexp(acc, alpha[t - 1, s - 2])
            alpha[t, s] = acc + lp[t, ext[s]]
    beta = np.full((steps, n_ext), -np.inf)
    beta[-1, -1] = lp[-1, ext[-1]]
    if n_ext > 1:
        beta[-1, -2] = lp[-1, ext[-2]]
    for t in range(steps - 2, -1, -1):
        for s in range(n_ext):
            acc = beta[t + 1, s]
            if s + 1 < n_ext:
                acc = np.logaddexp(acc, beta[t + 1, s + 1])
            if s + 2 < n_ext and ext[s] != blank and ext[s] != ext[s + 2]:
                acc = np.logaddexp(acc, beta[t + 1, s + 2])
            beta[t, s] = acc + lp[t, ext[s]]
    log_p = alpha[-1, -1] if n_ext == 1 else np.logaddexp(alpha[-1, -1], alpha[-1, -2])
    if log_p == -np.inf:
        return np.inf, np.full((steps, classes), np.nan)
    # α and β both contain lp[t, ext[s]]: their product counts it twice.
    grad = np.zeros((steps, classes))
    for t in range(steps):
        for s in range(n_ext):
            if alpha[t, s] + beta[t, s] == -np.inf:  # no valid path through (t, s)
                continue
            grad[t, ext[s]] += np.exp(alpha[t, s] + beta[t, s] - lp[t, ext[s]] - log_p)
    return -log_p, -grad


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def check(ours, ref, rtol, atol, what):
    """ours against ref with inf and nan where ref has them; prints the worst difference and
    the first bad index."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs {ref.shape}"
    same_nan = np.isnan(ours) == np.isnan(ref)
    assert same_nan.all(), f"{what}: nan differs at {np.argwhere(~same_nan)[:3].tolist()}"
    inf = np.isinf(ref)
    assert (ours[inf] == ref[inf]).all(), f"{what}: inf differs at {np.argwhere(inf)[:3]}"
    ok = ~np.isnan(ref) & ~inf
    diff = np.abs(ours[ok] - ref[ok])
    bad = diff > atol + rtol * np.abs(ref[ok])
    assert not bad.any(), (f"{what}: max abs diff {diff.max():.3g} (rel "
                           f"{(diff / np.maximum(np.abs(ref[ok]), 1e-300)).max():.3g}), first "
                           f"bad at {np.argwhere(ok)[np.argmax(bad)].tolist()}")
