"""A bitwise corpus of kernel results, recorded before the engine refactor (issue 9).

``compute()`` runs a fixed set of problems through the public API (``rnnkit.ops`` sequence
kernels, layers, cells, Linear) on every SIMD level this machine has and returns a SHA-256
digest of every output and gradient, bit for bit. ``tests/golden_digests.json`` holds the
digests the code gave *before* the refactor; ``test_golden_corpus.py`` checks that today's code
gives the same bits. A refactor that "moves code without rewriting the algorithms" must keep
every digest.

Re-record (only for a deliberate numerical change, saying so in the commit):
    python tests/golden_corpus.py --record
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import zlib
from typing import Callable, Dict, Iterator, Tuple

import numpy as np

import rnnkit
import rnnkit.ops as ops
from rnnkit._cellspec import CELLS as SPECS
from rnnkit.nn.cells import make_cell
from rnnkit.nn.recurrent import make_layer

DIGESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden_digests.json")

# name -> (T, B, I, H, lengths or None, reverse, bias, h0)
OPS_CASES = {
    "plain": (5, 3, 7, 19, None, False, True, True),
    "lengths": (5, 3, 7, 19, [5, 0, 3], False, True, True),
    "lengths_rev": (5, 4, 7, 19, [2, 5, 0, 5], True, True, True),
    "rev_nobias_noh0": (4, 3, 6, 17, None, True, False, False),
    "wide": (4, 9, 33, 70, [4, 4, 1, 3, 0, 2, 4, 1, 3], False, True, True),
    "threads": (3, 32, 16, 160, None, False, True, True),  # big enough for 2 threads
}
# Every registered cell; a cell added later produces new results that no digest checks yet
# (the test checks that every *recorded* result is still produced, with the same bits).
CELLS = tuple(SPECS)


def digest(a: np.ndarray) -> str:
    a = np.asarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:20]


def _ops_case(cell: str, dtype: np.dtype, case: str) -> Iterator[Tuple[str, np.ndarray]]:
    T, B, I, H, lengths, reverse, bias, with_h0 = OPS_CASES[case]
    spec = SPECS[cell]
    G = spec.gates
    n = max(2, len(spec.states))   # arrays drawn per state kind (h and c were always drawn)
    rng = np.random.default_rng(zlib.crc32(f"{cell}/{case}".encode()))
    def r(*shape, s=1.0):
        return (rng.standard_normal(shape) * s).astype(dtype)
    x = r(T, B, I)
    w_ih, w_hh = r(G * H, I, s=0.4), r(G * H, H, s=0.3)
    b_ih = r(G * H, s=0.2) if bias else None
    b_hh = r(G * H, s=0.2) if bias else None
    s0 = [r(B, H) if with_h0 else None for _ in range(n)]
    dy = r(T, B, H)
    ds_n = [r(B, H) for _ in range(n)]
    # The options that select the cell (nonlinearity, reset_after) and its extra parameters
    # (peephole), these drawn last so that the other cells' cases are what they were.
    extra = {**spec.ops_kwargs, **{n: r(w * H, s=0.3) for n, w in spec.extra}}
    lens = None if lengths is None else np.array(lengths, np.int64)
    if lens is not None:
        dy = dy * (np.arange(T)[:, None] < lens[None, :])[:, :, None].astype(dtype)
    for training in (True, False):
        tag = "train" if training else "eval"
        *res, cache = getattr(ops, spec.family + "_forward")(
            x, *s0[:len(spec.states)], w_ih, w_hh, b_ih, b_hh, lengths=lens, reverse=reverse,
            training=training, **extra)
        outs = dict(zip(("y",) + spec.state_n_names, res))
        for k, v in outs.items():
            yield f"{tag}/{k}", v
        if not training:
            continue
        g = getattr(ops, spec.family + "_backward")(cache, dy, *ds_n[:len(spec.states)])
        for k, v in g._asdict().items():
            if v is not None:
                yield f"grad/{k}", v


def _layer_case(kind: str, dtype: np.dtype) -> Iterator[Tuple[str, np.ndarray]]:
    """2-layer bidirectional batch_first layer with lengths and dropout, forward/backward,
    then eval over the sequence and eval single steps (the packed path)."""
    spec = SPECS[kind]
    m = make_layer(spec, 6, 13, num_layers=2, batch_first=True, bidirectional=True,
                   dropout=0.25, dtype=dtype, seed=5)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 5, 6)).astype(dtype)
    lengths = np.array([5, 2, 0, 4])
    y, state = m(x, lengths=lengths)
    dy = rng.standard_normal(y.shape).astype(dtype)
    states = state if isinstance(state, tuple) else (state,)
    dstates = tuple(rng.standard_normal(s.shape).astype(dtype) for s in states)
    dx, dst = m.backward(dy, dstates if len(dstates) > 1 else dstates[0])
    yield "train/y", y
    for i, s in enumerate(states):
        yield f"train/state{i}", s
    yield "grad/dx", dx
    for i, s in enumerate(dst if isinstance(dst, tuple) else (dst,)):
        yield f"grad/dstate{i}", s
    for name, p in m.named_parameters():
        yield f"grad/{name}", p.grad
    m.eval()
    y, state = m(x, lengths=lengths)
    yield "eval/y", y
    # Unidirectional eval single steps: the packed-weights path.
    u = make_layer(spec, 6, 13, num_layers=2, dtype=dtype, seed=6).eval()
    xs = rng.standard_normal((1, 3, 6)).astype(dtype)
    hx = None
    for t in range(3):
        y, hx = u(xs, hx)
        yield f"step{t}/y", y


def _cell_case(kind: str, dtype: np.dtype) -> Iterator[Tuple[str, np.ndarray]]:
    c = make_cell(SPECS[kind], 7, 21, dtype=dtype, seed=8)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, 7)).astype(dtype)
    hx = None
    outs = []
    for _ in range(2):  # training steps, then backward through both
        hx = c(x, hx)
        outs.append(hx)
    last = hx if isinstance(hx, tuple) else (hx,)
    g = [np.ones_like(a) for a in last]
    dx1, d = c.backward(*g)
    dx0, d = c.backward(*(d if isinstance(d, tuple) else (d,)))
    yield "train/out", np.concatenate([np.ravel(a) for o in outs
                                       for a in (o if isinstance(o, tuple) else (o,))])
    yield "grad/dx", np.concatenate([dx0.ravel(), dx1.ravel()])
    for name, p in c.named_parameters():
        yield f"grad/{name}", p.grad
    c.eval()
    hx = None
    for t in range(3):
        hx = c(x, hx)
        for i, a in enumerate(hx if isinstance(hx, tuple) else (hx,)):
            yield f"eval{t}/s{i}", a


def _linear_case(dtype: np.dtype) -> Iterator[Tuple[str, np.ndarray]]:
    lin = rnnkit.nn.Linear(37, 19, dtype=dtype, seed=3)
    x = np.random.default_rng(4).standard_normal((5, 7, 37)).astype(dtype)
    y = lin(x)
    dx = lin.backward(np.ones_like(y) * 0.5 + y)
    yield "y", y
    yield "dx", dx
    yield "dw", lin.weight.grad
    yield "db", lin.bias.grad


def _problems() -> Iterator[Tuple[str, Callable[[], Iterator[Tuple[str, np.ndarray]]]]]:
    for dt in (np.float32, np.float64):
        dn = np.dtype(dt).name
        for cell in CELLS:
            for case in OPS_CASES:
                # "threads" was recorded for float32 and the multi-gate cells only
                if case == "threads" and (dt is np.float64 or SPECS[cell].gates == 1):
                    continue
                yield f"ops/{cell}/{dn}/{case}", (lambda c=cell, d=dt, k=case:
                                                  _ops_case(c, np.dtype(d), k))
            yield f"layer/{cell}/{dn}", lambda c=cell, d=dt: _layer_case(c, np.dtype(d))
            yield f"cell/{cell}/{dn}", lambda c=cell, d=dt: _cell_case(c, np.dtype(d))
        yield f"linear/{dn}", lambda d=dt: _linear_case(np.dtype(d))


def compute(levels=None) -> Dict[str, str]:
    """Digest of every result, keyed ``<simd level>/<problem>/<result>``."""
    levels = levels or rnnkit.build_info()["simd_available"]
    before = rnnkit.build_info()["simd"]
    out: Dict[str, str] = {}
    try:
        for level in levels:
            rnnkit._core.force_simd(level)
            for name, run in _problems():
                for key, arr in run():
                    out[f"{level}/{name}/{key}"] = digest(arr)
    finally:
        rnnkit._core.force_simd(before)
    return out


if __name__ == "__main__":
    if "--record" not in sys.argv:
        sys.exit("usage: python tests/golden_corpus.py --record   (see the module docstring)")
    d = compute()
    with open(DIGESTS, "w") as f:
        json.dump({"cpu_model": rnnkit.build_info()["cpu_model"], "digests": d}, f, indent=0,
                  sort_keys=True)
    print(f"recorded {len(d)} digests to {DIGESTS}")
