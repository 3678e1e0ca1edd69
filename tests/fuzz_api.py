"""A property-based fuzz of rnnkit.ops, the recurrent layers, Linear, Embedding and Last, shared by
tests/test_fuzz_api.py (a bounded run) and benchmarks/fuzz_api.py (a long campaign).

Each case draws a random cell, sizes (zeros included), dtype, lengths, direction and strides,
then either calls the kernels as they are meant to be called, or applies one mutation that
makes the call invalid (a wrong shape, rank, dtype, length, type ...). The properties:
  - a valid call on finite data matches the float64 numpy reference (tests/reference.py),
    forward and backward;
  - a valid call on non-finite data returns without raising;
  - an invalid call raises ValueError or TypeError whose message names the argument;
  - nothing else: any other exception type, a mismatch, or a silently accepted invalid call is
    a finding. (A crash kills the process: run the long campaign in a subprocess.)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

import reference
from helpers import SPECS, backward, forward, make_problem

import rnnkit.ops as ops
from rnnkit import nn
from rnnkit.nn.recurrent import make_layer

CELL_NAMES = tuple(SPECS)


@dataclass
class Findings:
    cases: int = 0
    valid: int = 0
    rejected: int = 0
    problems: List[str] = field(default_factory=list)
    max_seconds: float = 0.0

    def summary(self) -> str:
        return (f"{self.cases} cases ({self.valid} valid, {self.rejected} rejected as they "
                f"should be), {len(self.problems)} findings, slowest case "
                f"{self.max_seconds * 1e3:.1f} ms")


# --------------------------------------------------------------------------- mutations
# Each takes the problem dict and the rng and returns (argument name it breaks, new problem).
def _wrong_dim(arg: str, axis: int) -> Callable:
    def apply(p, rng):
        a = p.get(arg)  # (the peephole only exists for its cell)
        if a is None or a.ndim <= axis:
            return None
        if arg == "x" and axis == 1 and p["h0"] is None and p["lengths"] is None:
            return None  # x alone defines B: another B is still a valid call
        shape = list(a.shape)
        shape[axis] += int(rng.choice([-1, 1, 2])) if shape[axis] > 0 else 1
        return arg, dict(p, **{arg: np.zeros(shape, a.dtype)})
    return apply


def _wrong_rank(arg: str) -> Callable:
    def apply(p, rng):
        a = p.get(arg)  # (the peephole only exists for its cell)
        if a is None:
            return None
        lower = a.reshape(-1) if a.ndim > 1 else a.reshape(1, -1)  # 1-D: one more axis
        return arg, dict(p, **{arg: a[..., None] if rng.random() < 0.5 else lower})
    return apply


def _wrong_dtype(arg: str) -> Callable:
    def apply(p, rng):
        a = p.get(arg)  # (the peephole only exists for its cell)
        if a is None:
            return None
        other = {np.float32: np.float64, np.float64: np.float32}[a.dtype.type]
        choice = rng.choice(["other_float", "int", "half", "complex", "bool"])
        dtype = {"other_float": other, "int": np.int64, "half": np.float16,
                 "complex": np.complex64, "bool": np.bool_}[choice]
        return arg, dict(p, **{arg: a.astype(dtype)})
    return apply


def _bad_lengths(p, rng):
    T, B = p["x"].shape[:2]
    kind = rng.choice(["long", "negative", "count", "float", "2d"])
    if kind == "long":
        lengths = np.full(B, T + 1 + int(rng.integers(0, 3)), np.int64)
    elif kind == "negative":
        lengths = np.full(B, -1, np.int64)
    elif kind == "count":
        lengths = np.zeros(B + 1, np.int64)
    elif kind == "float":
        lengths = np.full(B, T, np.float64) + 0.5
    else:
        lengths = np.zeros((B, 1), np.int64)
    if B == 0 and kind in ("long", "negative", "float"):
        return None  # an empty batch has no length to get wrong
    return "lengths", dict(p, lengths=lengths)


def _not_an_array(arg: str) -> Callable:
    def apply(p, rng):
        return arg, dict(p, **{arg: rng.choice(["weights", 3, {"a": 1}])})
    return apply


MUTATIONS: List[Tuple[str, Callable]] = (
    [(f"dim:{a}:{ax}", _wrong_dim(a, ax)) for a, axes in
     {"x": (1, 2), "h0": (0, 1), "c0": (0, 1), "w_ih": (0, 1), "w_hh": (0, 1), "b_ih": (0,),
      "b_hh": (0,), "peephole": (0,)}.items() for ax in axes]
    + [(f"rank:{a}", _wrong_rank(a)) for a in ("x", "h0", "w_ih", "w_hh", "b_ih")]
    + [(f"dtype:{a}", _wrong_dtype(a)) for a in ("x", "h0", "w_ih", "w_hh", "b_hh", "peephole")]
    + [("lengths", _bad_lengths)]
    + [(f"type:{a}", _not_an_array(a)) for a in ("x", "w_hh")]
)
# Backward-only mutations of the upstream gradients.
BACKWARD_MUTATIONS = [(f"dim:{a}:{ax}", _wrong_dim(a, ax))
                      for a, axes in {"dy": (0, 1, 2), "dh_n": (0, 1), "dc_n": (0, 1)}.items()
                      for ax in axes] + [("dtype:dy", _wrong_dtype("dy"))]


# ------------------------------------------------------------------------------ a case
def _draw_problem(rng: np.random.Generator) -> Dict[str, Any]:
    cell = CELL_NAMES[int(rng.integers(len(CELL_NAMES)))]
    T, B = int(rng.integers(0, 6)), int(rng.integers(0, 5))
    I, H = int(rng.integers(1, 8)), int(rng.integers(1, 9))
    dtype = np.float32 if rng.random() < 0.5 else np.float64
    lengths = None
    if rng.random() < 0.5 and B > 0:
        lengths = rng.integers(0, T + 1, B)
    p = make_problem(cell, T, B, I, H, dtype=dtype, seed=int(rng.integers(1 << 30)),
                     lengths=lengths, h0=rng.random() < 0.7, c0=rng.random() < 0.7,
                     bias=rng.random() < 0.8, dh_n=rng.random() < 0.7, dc_n=rng.random() < 0.7)
    if rng.random() < 0.25 and T > 0 and B > 0:  # a strided view of the same values
        wide = np.zeros((T, B, 2 * I), dtype)
        wide[:, :, ::2] = p["x"]
        p["x"] = wide[:, :, ::2]
    return p


def _tolerance(dtype) -> Tuple[float, float]:
    return (1e-10, 1e-11) if dtype == np.float64 else (2e-4, 2e-5)


def _compare(name: str, got, want, dtype, findings: Findings, where: str) -> None:
    if want is None or got is None:
        if (want is None) != (got is None):
            findings.problems.append(f"{where}: {name} is {got!r} where the reference has "
                                     f"{'None' if want is None else 'an array'}")
        return
    rtol, atol = _tolerance(dtype)
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    scale = max(1.0, float(np.abs(want).max()) if want.size else 1.0)
    if got.shape != want.shape or not np.allclose(got, want, rtol=rtol, atol=atol * scale):
        findings.problems.append(f"{where}: {name} differs from the reference")


def _expect_rejection(call: Callable, arg: str, findings: Findings, where: str) -> None:
    try:
        call()
    except (ValueError, TypeError) as exc:
        findings.rejected += 1
        # The message must say which argument is wrong (dims and ranks name it; a type or
        # dtype error of a non-array may name only the type).
        if arg.split(":")[-1] not in str(exc) and arg.startswith(("dim", "rank", "lengths")):
            findings.problems.append(f"{where}: rejected without naming {arg!r}: {exc}")
    except Exception as exc:  # noqa: BLE001 - reporting any other type is the point
        findings.problems.append(f"{where}: {type(exc).__name__} instead of ValueError/"
                                 f"TypeError: {exc}")
    else:
        findings.problems.append(f"{where}: invalid call accepted")


def run_ops_case(rng: np.random.Generator, findings: Findings) -> None:
    p = _draw_problem(rng)
    reverse = bool(rng.random() < 0.3)
    dtype = p["x"].dtype
    where = (f"ops {p['cell']} x{p['x'].shape} {dtype} lengths={p['lengths']} "
             f"reverse={reverse}")
    r = rng.random()
    if r < 0.45:  # forward mutation
        name, mutate = MUTATIONS[int(rng.integers(len(MUTATIONS)))]
        mutated = mutate(p, rng)
        if mutated is None:
            return
        arg, q = mutated
        where += f" mutation {name}"
        if arg not in ("c0",) or "c0" in SPECS[q["cell"]].state0_names:
            _expect_rejection(lambda: forward(ops, q, reverse=reverse), arg, findings, where)
        return
    if r < 0.55 and p["x"].size:  # non-finite values in a valid call
        q = dict(p, x=p["x"].copy())
        q["x"].flat[int(rng.integers(q["x"].size))] = rng.choice([np.nan, np.inf, -np.inf])
        outs, cache = forward(ops, q, reverse=reverse)
        backward(ops, q, cache)
        findings.valid += 1
        return
    outs, cache = forward(ops, p, reverse=reverse)
    if r < 0.65:  # backward mutation
        name, mutate = BACKWARD_MUTATIONS[int(rng.integers(len(BACKWARD_MUTATIONS)))]
        mutated = mutate(p, rng)
        if mutated is None:
            return
        arg, q = mutated
        if arg == "dc_n" and "c_n" not in SPECS[q["cell"]].state_n_names:
            return
        _expect_rejection(lambda: backward(ops, q, cache), arg, findings,
                          where + f" backward mutation {name}")
        return
    findings.valid += 1
    want, ref_cache = forward(reference, p, reverse=reverse)
    for n, g, w in zip(("y", "h_n", "c_n"), outs, want):
        _compare(n, g, w, dtype, findings, where)
    grads = backward(ops, p, cache)
    ref = backward(reference, p, ref_cache)
    for n in grads._fields:
        _compare(n, getattr(grads, n), ref[n] if isinstance(ref, dict) else getattr(ref, n),
                 dtype, findings, where)


def run_layer_case(rng: np.random.Generator, findings: Findings) -> None:
    """A layer built with random options, called with a random (possibly wrong) input."""
    cell = CELL_NAMES[int(rng.integers(len(CELL_NAMES)))]
    I, H = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    kw = dict(num_layers=int(rng.integers(1, 3)), bidirectional=bool(rng.random() < 0.4),
              batch_first=bool(rng.random() < 0.5), bias=bool(rng.random() < 0.8))
    if SPECS[cell].projectable and H > 1 and rng.random() < 0.4:
        kw["proj_size"] = int(rng.integers(1, H))  # torch's projected LSTM
    layer = make_layer(SPECS[cell], I, H, seed=int(rng.integers(1 << 30)), **kw)
    T, B = int(rng.integers(0, 5)), int(rng.integers(0, 4))
    shape = [B, T, I] if kw["batch_first"] else [T, B, I]
    bad = rng.random() < 0.4
    if bad:
        axis = int(rng.integers(3))
        shape[axis] += 1 if axis == 2 else 0
        if axis != 2:  # wrong rank (2-D input is torch's unbatched (T, I): valid)
            shape = shape + [1] if axis == 0 else shape[:1]
    x = rng.standard_normal(shape).astype(np.float32)
    lengths = None
    if rng.random() < 0.4 and not bad and B > 0:
        lengths = rng.integers(0, T + 1, B)
    where = f"layer {cell} {kw} x{tuple(shape)} lengths={lengths}"
    if bad:
        _expect_rejection(lambda: layer(x, lengths=lengths), "x", findings, where)
        return
    y, _ = layer(x, lengths=lengths)
    dx, _ = layer.backward(np.ones_like(y))
    findings.valid += 1
    if dx.shape != x.shape or not np.isfinite(dx).all():
        findings.problems.append(f"{where}: dx of shape {dx.shape}, finite={np.isfinite(dx).all()}")


def run_module_case(rng: np.random.Generator, findings: Findings) -> None:
    """Linear, Embedding and Last against numpy, forward and backward, or a wrong input."""
    dtype = np.float32 if rng.random() < 0.5 else np.float64
    lead = tuple(int(v) for v in rng.integers(0, 4, int(rng.integers(1, 4))))
    kind = ["linear", "embedding", "last"][int(rng.integers(3))]
    bad = rng.random() < 0.4
    where = f"module {kind} {dtype.__name__} lead={lead} bad={bad}"
    if kind == "linear":
        fin, fout = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        layer = nn.Linear(fin, fout, bias=bool(rng.random() < 0.7), dtype=dtype,
                          seed=int(rng.integers(1 << 30)))
        x = rng.standard_normal(lead + (fin + (1 if bad else 0),)).astype(dtype)
        if bad:
            _expect_rejection(lambda: layer(x), "x", findings, where)
            return
        w = layer.weight.data.astype(np.float64)
        want = x @ w.T + (layer.bias.data if layer.bias is not None else 0)
        dy = rng.standard_normal(want.shape).astype(dtype)
        got = layer(x)
        dx = layer.backward(dy)
        _compare("y", got, want, dtype, findings, where)
        _compare("dx", dx, dy.astype(np.float64) @ w, dtype, findings, where)
        _compare("dw", layer.weight.grad, dy.reshape(-1, fout).T.astype(np.float64)
                 @ x.reshape(-1, fin), dtype, findings, where)
    elif kind == "embedding":
        V, E = int(rng.integers(1, 7)), int(rng.integers(1, 5))
        layer = nn.Embedding(V, E, dtype=dtype, seed=int(rng.integers(1 << 30)))
        idx = rng.integers(0, V, lead)
        if bad:
            mutation = rng.choice(["range", "negative", "float"])
            if not idx.size and mutation != "float":
                return
            if mutation == "range":
                idx.flat[0] = V
            elif mutation == "negative":
                idx.flat[0] = -1
            else:
                idx = idx.astype(np.float64)
            _expect_rejection(lambda: layer(idx), "idx", findings, where + f" {mutation}")
            return
        got = layer(idx)
        dy = rng.standard_normal(got.shape).astype(dtype)
        layer.backward(dy)
        want_grad = np.zeros((V, E))
        np.add.at(want_grad, idx.reshape(-1), dy.reshape(-1, E).astype(np.float64))
        _compare("y", got, layer.weight.data[idx], dtype, findings, where)
        _compare("dw", layer.weight.grad, want_grad, dtype, findings, where)
    else:
        T, B, F = int(rng.integers(1, 5)), int(rng.integers(0, 4)), int(rng.integers(1, 4))
        layer = nn.Last(batch_first=False)
        x = rng.standard_normal((T, B, F)).astype(dtype)
        lengths = rng.integers(1, T + 1, B)
        if bad:
            lengths = np.full(B + 1, T + 1)
            _expect_rejection(lambda: layer(x, lengths=lengths), "lengths", findings, where)
            return
        got = layer(x, lengths=lengths)
        _compare("y", got, x[lengths - 1, np.arange(B)], dtype, findings, where)
        dx = layer.backward(np.ones_like(got))
        want = np.zeros_like(x)
        want[lengths - 1, np.arange(B)] = 1
        _compare("dx", dx, want, dtype, findings, where)
    findings.valid += 1


def run(cases: int, seed: int, time_limit: Optional[float] = None) -> Findings:
    """Run `cases` cases (or until `time_limit` seconds) from `seed`."""
    rng = np.random.default_rng(seed)
    findings = Findings()
    start = time.perf_counter()
    with np.errstate(all="ignore"):  # the non-finite cases overflow on purpose
        for _ in range(cases):
            t0 = time.perf_counter()
            u = rng.random()
            case = run_ops_case if u < 0.7 else run_layer_case if u < 0.85 else run_module_case
            try:
                case(rng, findings)
            except Exception as exc:  # noqa: BLE001 - a valid call that raised is a finding
                findings.problems.append(f"{case.__name__}: valid call raised "
                                         f"{type(exc).__name__}: {exc}")
            findings.cases += 1
            findings.max_seconds = max(findings.max_seconds, time.perf_counter() - t0)
            if time_limit is not None and time.perf_counter() - start > time_limit:
                break
    return findings
