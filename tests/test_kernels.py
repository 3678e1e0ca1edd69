"""Each SIMD level's kernel table tested directly, beside the kernels (cpp/kernels/kernels.h),
through the testing hooks rnnkit._core._kernel_gemm / _kernel_unary (cpp/bindings/bind_kernels.cpp):

* GEMM and packed GEMM, float32 and float64, all four (transA, transB), beta 0 and 1, at the
  edge sizes of each level's blocking (XNNPACK-style: 1, 2, W-1, W, W+1, MR+-1, NR+-1, 2NR+1,
  KC+-1, ...), with leading dimensions wider than the matrices, K = 0 and empty M or N, against a
  float64 numpy product; and the determinism contract (splitting M or N is bitwise neutral).
* sigmoid and tanh, float32 and float64: max ulp error against a long double reference over a
  dense grid and the special values, saturation, NaN, odd symmetry, awkward lengths, in place.

Also the ulp harness that activations_impl.inl quotes: `python tests/test_kernels.py --ulp`
prints the max ulp error per level, function and dtype (`--full` adds the sample that comment
describes: every 13th float32 bit pattern with |x| <= 100, a 1e-5 grid over [-100, 100] and 8M
random doubles; about ten minutes on two cores).
"""

import math
import sys
import zlib
from functools import lru_cache

import numpy as np
import pytest

import rnnkit
from rnnkit import _core

LEVELS = list(rnnkit.build_info()["simd_available"])
DTYPES = (np.float32, np.float64)
TRANS = [(False, False), (False, True), (True, False), (True, True)]
LD = np.longdouble


def _dtype_id(dt):
    return np.dtype(dt).name


# ------------------------------------------------------------------------------------ GEMM

# Blocking, copied from the traits of cpp/kernels/gemm_<isa>.cpp (W = lanes per vector, MR x NR
# the register tile, KC the depth of one slab of K, MC the rows of one packed A block, NC the
# columns of one packed B block). gemm_generic.cpp has no explicit vectors: its W is what the
# baseline x86-64 build (SSE2) auto-vectorises to. Keep in step with those files.
BLOCKING = {
    ("generic", np.float32): dict(W=4, MR=4, NR=8, KC=256, MC=64, NC=1024),
    ("generic", np.float64): dict(W=2, MR=4, NR=8, KC=256, MC=64, NC=1024),
    ("avx2", np.float32): dict(W=8, MR=6, NR=16, KC=256, MC=144, NC=4096),
    ("avx2", np.float64): dict(W=4, MR=6, NR=8, KC=256, MC=72, NC=2048),
    ("avx512", np.float32): dict(W=16, MR=8, NR=32, KC=256, MC=192, NC=4096),
    ("avx512", np.float64): dict(W=8, MR=8, NR=16, KC=256, MC=96, NC=2048),
}


def _edge_sizes(b):
    """The sizes where a blocked kernel changes path: vector tails, row tiles, column slivers and
    KC slabs, one below, at and one above each boundary."""
    W, MR, NR, KC = b["W"], b["MR"], b["NR"], b["KC"]
    s = {1, 2, W - 1, W, W + 1, MR - 1, MR, MR + 1, NR - 1, NR, NR + 1, 2 * NR + 1,
         KC - 1, KC, KC + 1}
    return sorted(v for v in s if v > 0)


def _gemm_cases(level, dtype):
    """(M, N, K) triples. Every edge size appears at least once in every dimension, the other two
    drawn at random from the edge sizes (a sample, not the cartesian product: the product of 15^3
    shapes x 4 transposes x beta x packed would take minutes). Per dimension a few extra sizes:
    M = MC, MC + 1 (gemm's large-M path), K = 2 KC + 1 (three slabs), N = NC + 1 (two B blocks)."""
    b = BLOCKING[(level, dtype)]
    edges = _edge_sizes(b)
    small = [v for v in edges if v <= b["KC"] // 2]
    extra = {0: [b["MC"], b["MC"] + 1], 1: [b["NC"] + 1], 2: [2 * b["KC"] + 1]}
    rng = np.random.default_rng(zlib.crc32(f"{level} {np.dtype(dtype).name}".encode()))
    cases = []
    for d in range(3):
        for v in edges + extra[d]:
            while True:
                pool = small if v in extra[d] else edges
                mnk = [int(rng.choice(pool)) for _ in range(3)]
                mnk[d] = v
                if mnk[0] * mnk[1] * mnk[2] <= 3_000_000:  # keeps the run short on 2 cores
                    break
            cases.append(tuple(mnk))
    return cases


def _place(a, padded, fill, rng=None):
    """a (2-D) in fresh memory: a contiguous copy, or (padded) a view big[1:rows+1, :cols] into a
    buffer with a guard row above and below and extra columns, so its leading dimension exceeds
    its width. The guard cells hold `fill`. Returns (view, buffer)."""
    rows, cols = a.shape
    extra = int(rng.integers(1, 40)) if padded else 0
    big = np.full((rows + 2, cols + extra), fill, dtype=a.dtype)
    view = big[1:rows + 1, :cols]
    view[...] = a
    return view, big


def _stored(op, trans):
    """The array to pass for an operand whose op() is `op`: op itself, or its transpose laid out
    row-major (the kernel reads it with trans)."""
    return np.ascontiguousarray(op.T) if trans else op


def _assert_within(got, want, tol, what):
    """|got - want| <= tol elementwise (NaN fails), else the max abs / rel error and the first
    bad index."""
    g = got.astype(np.float64)
    err = np.abs(g - want)
    ok = err <= tol
    if ok.all():
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = err / np.abs(want)
    bad = tuple(int(i) for i in np.argwhere(~ok)[0])
    pytest.fail(f"{what}: {int((~ok).sum())}/{ok.size} bad; max abs err {np.nanmax(err):.3e}, "
                f"max rel err {np.nanmax(rel):.3e}; first bad index {bad}: got {g[bad]!r}, "
                f"want {want[bad]!r}, tol {tol[bad]:.3e}")


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint32 if a.dtype == np.float32 else np.uint64)


def _assert_bitwise(got, want, what):
    if np.array_equal(_bits(got), _bits(want)):
        return
    bad = tuple(int(i) for i in np.argwhere(_bits(got) != _bits(want))[0])
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    pytest.fail(f"{what}: not bitwise equal; {int((_bits(got) != _bits(want)).sum())} differ, "
                f"max abs diff {np.nanmax(diff):.3e}; first at {bad}: {got[bad]!r} vs "
                f"{want[bad]!r}")


# Guard value around C: finite and nonzero, so a stray store of a computed value (or of the zero
# that a padded lane computes) changes it.
GUARD = 3.0


def _run_gemm(level, transA, transB, opA, opB, C0, beta, packed, padded, rng):
    """C = beta*C0 + opA opB through the hook, operands stored for (transA, transB), padded or
    contiguous; checks that nothing around C was written and returns C."""
    A, _ = _place(_stored(opA, transA), padded, np.nan, rng)
    B, _ = _place(_stored(opB, transB), padded, np.nan, rng)
    # beta == 0: C starts as NaN, so a kernel that reads C cannot pass.
    C, bigC = _place(C0 if beta else np.full_like(C0, np.nan), padded, GUARD, rng)
    guard = np.ones(bigC.shape, bool)
    guard[1:C.shape[0] + 1, :C.shape[1]] = False
    before = bigC[guard].copy()
    _core._kernel_gemm(level, transA, transB, A, B, C, float(beta), packed=packed)
    _assert_bitwise(bigC[guard], before, "elements around C")
    return C.copy()


@pytest.mark.parametrize("transA,transB", TRANS, ids=lambda t: "T" if t else "N")
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("level", LEVELS)
def test_gemm_edge_sizes(level, dtype, transA, transB):
    """gemm (and pack_b + gemm_packed where transA is false) against a float64 product.

    Tolerance: the inputs are exact in float64, so the reference differs from the kernel only by
    rounding. A length-K sum of products with one rounding per fma (plus one for the C + acc of
    each later slab and of beta = 1) is within gamma_{K+1} sum_k |a_k||b_k| <= (K+1) u (|A||B| +
    |C0|) of the exact value (Higham, Accuracy and Stability, 3.1), u = eps/2; the float64
    reference adds at most K u64 (|A||B|) of its own. (K + 2) eps (|A||B| + |C0|) covers both
    with a factor of ~2 to spare, for float32 (~K 1.2e-7) and float64 (~K 2.2e-16, i.e. ~6e-14
    relative at K = 257, tighter than 1e-12) alike, and still catches a single dropped or
    doubled term: one product is ~1/K of the sum, orders of magnitude above the tolerance."""
    eps = np.finfo(dtype).eps
    rng = np.random.default_rng(1234 + 7 * LEVELS.index(level) + 2 * transA + transB)
    for i, (M, N, K) in enumerate(_gemm_cases(level, dtype)):
        opA = rng.standard_normal((M, K)).astype(dtype)
        opB = rng.standard_normal((K, N)).astype(dtype)
        C0 = rng.standard_normal((M, N)).astype(dtype)
        prod = opA.astype(np.float64) @ opB.astype(np.float64)
        mag = np.abs(opA.astype(np.float64)) @ np.abs(opB.astype(np.float64))
        padded = i % 2 == 1  # every other case with lda, ldb, ldc wider than the matrices
        for packed in (False, True) if not transA else (False,):
            for beta in (0, 1):
                want = prod + C0 if beta else prod
                tol = (K + 2) * eps * (mag + (np.abs(C0.astype(np.float64)) if beta else 0))
                C = _run_gemm(level, transA, transB, opA, opB, C0, beta, packed, padded, rng)
                _assert_within(C, want, tol, f"{level} {np.dtype(dtype).name} "
                               f"transA={transA} transB={transB} M,N,K={M},{N},{K} beta={beta} "
                               f"packed={packed} padded={padded}")


@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("level", LEVELS)
def test_gemm_leading_dimensions(level, dtype):
    """Row strides well past the width (numpy views big[:, :cols]), including a power of two."""
    b = BLOCKING[(level, dtype)]
    rng = np.random.default_rng(5)
    eps = np.finfo(dtype).eps
    M, N, K = b["MR"] + 1, 2 * b["NR"] + 1, b["KC"] + 1
    for transA, transB in TRANS:
        for pad in (1, b["W"], 1024 - max(M, N, K)):
            opA = rng.standard_normal((M, K)).astype(dtype)
            opB = rng.standard_normal((K, N)).astype(dtype)
            sa, sb = _stored(opA, transA), _stored(opB, transB)
            bigA = np.full((sa.shape[0], sa.shape[1] + pad), np.nan, dtype)
            bigB = np.full((sb.shape[0], sb.shape[1] + pad), np.nan, dtype)
            bigC = np.full((M, N + pad), GUARD, dtype)
            A, B, C = bigA[:, :sa.shape[1]], bigB[:, :sb.shape[1]], bigC[:, :N]
            A[...], B[...] = sa, sb
            C[...] = np.nan
            _core._kernel_gemm(level, transA, transB, A, B, C, 0.0)
            want = opA.astype(np.float64) @ opB.astype(np.float64)
            tol = (K + 2) * eps * (np.abs(opA.astype(np.float64)) @ np.abs(opB.astype(np.float64)))
            _assert_within(C, want, tol, f"{level} transA={transA} transB={transB} pad={pad}")
            assert (bigC[:, N:] == GUARD).all(), "gemm wrote past the columns of C"


@pytest.mark.parametrize("packed", [False, True], ids=["gemm", "packed"])
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("level", LEVELS)
def test_gemm_empty(level, dtype, packed):
    """K = 0: beta 0 zeroes C (even from NaN), beta 1 leaves it bitwise alone. M = 0 or N = 0:
    nothing is touched."""
    rng = np.random.default_rng(3)
    for transA, transB in TRANS if not packed else [(False, False), (False, True)]:
        M, N = 3, 5
        A = np.empty((0, M) if transA else (M, 0), dtype)
        B = np.empty((N, 0) if transB else (0, N), dtype)
        C, big = _place(np.full((M, N), np.nan, dtype), True, GUARD, rng)
        _core._kernel_gemm(level, transA, transB, A, B, C, 0.0, packed=packed)
        assert np.array_equal(C, np.zeros((M, N), dtype)), "K = 0, beta = 0: C must be zeros"
        C0 = rng.standard_normal((M, N)).astype(dtype)
        C[...] = C0
        _core._kernel_gemm(level, transA, transB, A, B, C, 1.0, packed=packed)
        _assert_bitwise(C, C0, "K = 0, beta = 1: C unchanged")
        assert (big[0] == GUARD).all() and (big[-1] == GUARD).all() and (big[:, N:] == GUARD).all()
        for M, N, K in ((0, 5, 4), (3, 0, 4), (0, 0, 4), (0, 5, 0)):
            A = rng.standard_normal((K, M) if transA else (M, K)).astype(dtype)
            B = rng.standard_normal((N, K) if transB else (K, N)).astype(dtype)
            big = np.full((M + 2, N + 2), GUARD, dtype)
            C = big[1:M + 1, :N]
            for beta in (0.0, 1.0):
                _core._kernel_gemm(level, transA, transB, A, B, C, beta, packed=packed)
            assert (big == GUARD).all(), f"M,N,K={M},{N},{K}: an empty C was written around"


def _blocks(n, sizes):
    """[0, s0, s0+s1, ..., n]: consecutive blocks of the given sizes, the rest in one block."""
    edges = [0]
    for s in sizes:
        if edges[-1] + s < n:
            edges.append(edges[-1] + s)
    return edges + [n]


@pytest.mark.parametrize("transA,transB", TRANS, ids=lambda t: "T" if t else "N")
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("level", LEVELS)
def test_gemm_split_is_bitwise_neutral(level, dtype, transA, transB):
    """kernels.h: the summation order depends only on K and the ISA, so computing row blocks or
    column blocks of C separately (as threads do) gives bitwise the whole product. The blocks
    are chosen to take different paths from the whole: M > MC (the large-M path) against blocks
    of 1 to 6 rows (the wide micro-kernels), MR +- 1; column blocks off the NR grid. Packed
    results are bitwise the unpacked ones on the SIMD levels (gemm_driver.inl says so); the
    generic level promises the contract for each path, so its packed blocks are compared with its
    whole packed product."""
    b = BLOCKING[(level, dtype)]
    MR, NR, KC, MC = b["MR"], b["NR"], b["KC"], b["MC"]
    M, N, K = MC + 2 * MR + 3, 4 * NR + 5, KC + 7
    rng = np.random.default_rng(11)
    opA = rng.standard_normal((M, K)).astype(dtype)
    opB = rng.standard_normal((K, N)).astype(dtype)
    C0 = rng.standard_normal((M, N)).astype(dtype)
    sA, sB = _stored(opA, transA), _stored(opB, transB)
    rows = _blocks(M, [1, 2, 3, 4, 5, 6, MR - 1, MR + 1, MR, 2 * MR + 3])
    cols = _blocks(N, [1, NR - 1, NR + 1, 2 * NR + 3])

    def run(r0, r1, c0, c1, beta, packed):
        A = sA[:, r0:r1] if transA else sA[r0:r1]
        B = sB[c0:c1] if transB else sB[:, c0:c1]
        C = (C0[r0:r1, c0:c1] if beta else np.full((r1 - r0, c1 - c0), np.nan, dtype)).copy()
        _core._kernel_gemm(level, transA, transB, A, B, C, float(beta), packed=packed)
        return C

    for packed in (False, True) if not transA else (False,):
        for beta in (0, 1):
            whole = run(0, M, 0, N, beta, packed)
            what = f"{level} beta={beta} packed={packed}"
            if packed and level != "generic":
                _assert_bitwise(whole, run(0, M, 0, N, beta, False), f"{what}: packed vs gemm")
            for r0, r1 in zip(rows, rows[1:]):
                _assert_bitwise(run(r0, r1, 0, N, beta, packed), whole[r0:r1],
                                f"{what}: rows {r0}:{r1}")
            for c0, c1 in zip(cols, cols[1:]):
                _assert_bitwise(run(0, M, c0, c1, beta, packed), whole[:, c0:c1],
                                f"{what}: cols {c0}:{c1}")
            _assert_bitwise(run(1, 4, NR - 1, 2 * NR + 3, beta, packed),
                            whole[1:4, NR - 1:2 * NR + 3], f"{what}: a 3-row tile")


@pytest.mark.parametrize("transA,transB", TRANS, ids=lambda t: "T" if t else "N")
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("level", LEVELS)
def test_gemm_row_is_fill_then_beta_one(level, dtype, transA, transB):
    """gemm_row (C = row + op(A) op(B), a layer's bias fused into the product) is bitwise what
    its definition in kernels.h says: every row of C filled with row, then gemm with beta = 1.
    On every edge size (the one-row-tile and wide kernels, partial tiles, the large-M path,
    several slabs, K = 0), operands padded or not, C starting as NaN (so C is never read), no
    element around C written; and within the product's bound of float64."""
    eps = np.finfo(dtype).eps
    rng = np.random.default_rng(4321 + 7 * LEVELS.index(level) + 2 * transA + transB)
    for i, (M, N, K) in enumerate(_gemm_cases(level, dtype) + [(3, 37, 0)]):
        opA = rng.standard_normal((M, K)).astype(dtype)
        opB = rng.standard_normal((K, N)).astype(dtype)
        row = rng.standard_normal((1, N)).astype(dtype)
        padded = i % 2 == 1
        A, _ = _place(_stored(opA, transA), padded, np.nan, rng)
        B, _ = _place(_stored(opB, transB), padded, np.nan, rng)
        C, bigC = _place(np.full((M, N), np.nan, dtype), padded, GUARD, rng)
        guard = np.ones(bigC.shape, bool)
        guard[1:M + 1, :N] = False
        before = bigC[guard].copy()
        _core._kernel_gemm(level, transA, transB, A, B, C, 0.0, row=row)
        _assert_bitwise(bigC[guard], before, "elements around C")
        want = np.repeat(row, M, axis=0)
        _core._kernel_gemm(level, transA, transB, A, B, want, 1.0)
        what = f"{level} transA={transA} transB={transB} M,N,K={M},{N},{K} padded={padded}"
        _assert_bitwise(C, want, what)
        exact = row.astype(np.float64) + opA.astype(np.float64) @ opB.astype(np.float64)
        mag = np.abs(opA.astype(np.float64)) @ np.abs(opB.astype(np.float64))
        _assert_within(C, exact, (K + 2) * eps * (mag + np.abs(row.astype(np.float64))), what)


@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("level", LEVELS)
def test_gemm_streamed_b_bigger_than_l2(level, dtype):
    """Operands past half of L2 (build_info's l2_cache_bytes): there the driver runs the kernels
    that prefetch the next B sliver (gemm_driver.inl, run_rows). A hint changes no arithmetic,
    so the products still match float64 and, on the SIMD levels, packed and unpacked B stay
    bitwise equal: for several row tiles of the packed B and for the large-M path's packed
    block, whose last sliver hands the hint to the next slab or to the first sliver."""
    b = BLOCKING[(level, dtype)]
    MR, NR, KC, MC = b["MR"], b["NR"], b["KC"], b["MC"]
    itemsize = np.dtype(dtype).itemsize
    half_l2 = rnnkit.build_info()["l2_cache_bytes"] // 2
    K = 2 * KC + 9                                    # three slabs, the last one short
    N = half_l2 // (itemsize * KC) + 2 * NR + 5       # one slab of B alone exceeds half of L2
    assert K * N * itemsize > half_l2 and KC * N * itemsize > half_l2
    rng = np.random.default_rng(17)
    eps = np.finfo(dtype).eps
    for M in (2 * MR + 3, MC + MR + 1):
        opA = rng.standard_normal((M, K)).astype(dtype)
        opB = rng.standard_normal((K, N)).astype(dtype)
        want = opA.astype(np.float64) @ opB.astype(np.float64)
        tol = (K + 2) * eps * (np.abs(opA.astype(np.float64)) @ np.abs(opB.astype(np.float64)))
        got = {}
        for packed in (False, True):
            C = np.full((M, N), np.nan, dtype)
            _core._kernel_gemm(level, False, False, opA, opB, C, 0.0, packed=packed)
            _assert_within(C, want, tol, f"{level} M,N,K={M},{N},{K} packed={packed}")
            got[packed] = C
        if level != "generic":
            _assert_bitwise(got[True], got[False], f"{level} M={M}: packed vs gemm")


# ----------------------------------------------------------------------------- activations

# Documented max errors (cpp/kernels/activations_impl.inl) of the SIMD levels. They are maxima
# measured over a sample, not proofs, so the assertion allows ULP_MARGIN on top: a different
# sample or CPU may find a little more (this harness has found up to 0.12 ulp more; see
# activations_impl.inl), while a broken polynomial, constant or tail is off by far
# more than that.
DOCUMENTED_ULP = {("sigmoid", np.float32): 2.41, ("tanh", np.float32): 2.04,
                  ("sigmoid", np.float64): 2.26, ("tanh", np.float64): 2.13}
ULP_MARGIN = 0.25
# The generic level is libm's exp / tanh (activations_generic.cpp): sigmoid is exp, an add and
# a divide (glibc exp <= 1 ulp, then two roundings: <= ~2.5 ulp); glibc's tanhf is documented
# at 2 ulp. Measured here: 2.47 / 2.18 (float32), 2.36 / 2.08 (float64).
GENERIC_ULP = 3.0
# Lanes per activation vector (activations_<isa>.cpp); generic is a scalar loop.
ACT_WIDTH = {"generic": {np.float32: 4, np.float64: 2}, "avx2": {np.float32: 8, np.float64: 4},
             "avx512": {np.float32: 16, np.float64: 8}}

# The long double reference needs more precision than float64 (x87 extended: 64-bit mantissa,
# 2^-11 ulp of float64). Where long double is just double, the float64 ulp checks are skipped.
LD_OK = {np.float32: np.finfo(LD).nmant >= 52, np.float64: np.finfo(LD).nmant >= 63}


def _reference(fn, x):
    xl = np.asarray(x).astype(LD)
    with np.errstate(over="ignore"):
        return LD(1) / (LD(1) + np.exp(-xl)) if fn == "sigmoid" else np.tanh(xl)


def _ulp_error(got, ref, dtype):
    """|got - ref| in units of the last place of the exact value ref in dtype: 2^(e - p) for
    |ref| in [2^(e-1), 2^e), p the precision, and the least subnormal below the normal range."""
    fi = np.finfo(dtype)
    ref = np.asarray(ref, LD)
    _, e = np.frexp(np.abs(ref))
    e = np.where(ref == 0, fi.minexp + 1, np.maximum(e, fi.minexp + 1))
    ulp = np.ldexp(LD(1), (e - (fi.nmant + 1)).astype(np.int32))
    return np.abs(got.astype(LD) - ref) / ulp


def _thresholds(dtype):
    """Inputs where the kernels switch branch or saturate, and a neighbour on each side."""
    fi = np.finfo(dtype)
    pts = [0.3,                                 # tanh: series below, exp formula above
           104.0, 745.2,                        # exp's clamp (exp_lo, float / double)
           88.72284, 87.33654,                  # float exp overflows / result goes subnormal
           709.782712893384, 708.3964185322641,  # the same for double
           9.010913, 17.32868,                  # float tanh / sigmoid round to 1
           19.06154746539849, 37.42994775023705,  # double tanh / sigmoid round to 1
           ]
    out = []
    for p in pts:
        v = dtype(p)
        out += [np.nextafter(v, dtype(0)), v, np.nextafter(v, dtype(np.inf))]
    return np.array(out + [fi.smallest_subnormal, 3 * fi.smallest_subnormal,
                           fi.smallest_normal / 2, fi.smallest_normal, fi.tiny * 7, fi.eps,
                           1e-30, 1e-10, 1.0], dtype)


@lru_cache(maxsize=None)
def _ulp_grid(dtype):
    """Finite inputs for the ulp check: a dense grid of 2^20 points over [-20, 20], 2^16 points
    log-spaced in magnitude from the least subnormal to 1024 (every binade), 2^12 points where
    sigmoid's result is subnormal, the branch points, all with both signs, and +-0."""
    fi = np.finfo(dtype)
    lo = math.log2(float(fi.smallest_subnormal))
    mags = np.exp2(np.linspace(lo, 10.0, 1 << 16)).astype(dtype)
    # where sigmoid(-x) is subnormal, up to exp's clamp: from ln(1/least normal) to exp_lo
    under = (86.0, 106.0) if dtype == np.float32 else (707.0, 746.0)
    pos = np.concatenate([mags, np.linspace(*under, 1 << 12, dtype=dtype), _thresholds(dtype),
                          np.zeros(1, dtype)])
    return np.concatenate([np.linspace(-20, 20, 1 << 20, dtype=dtype), pos, -pos])


@lru_cache(maxsize=None)
def _ulp_reference(fn, dtype):
    return _reference(fn, _ulp_grid(dtype))


def _ulp_bound(level, fn, dtype):
    return GENERIC_ULP if level == "generic" else DOCUMENTED_ULP[(fn, dtype)] + ULP_MARGIN


def _measure(level, fn, dtype, x, ref):
    """(max ulp error, where) over inputs whose result is a normal number, and the max absolute
    error over the rest (results below the normal range)."""
    y = _core._kernel_unary(level, fn, x)
    err = _ulp_error(y, ref, dtype)
    normal = np.abs(ref) >= LD(np.finfo(dtype).smallest_normal)
    i = int(np.argmax(np.where(normal, err, 0)))
    sub_abs = np.abs(y.astype(LD) - ref)[~normal]
    return float(err[i]), x[i], err, (float(sub_abs.max()) if sub_abs.size else 0.0)


@pytest.mark.parametrize("fn", ["sigmoid", "tanh"])
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("level", LEVELS)
def test_activation_max_ulp(level, fn, dtype):
    """Max ulp error over the grid within the documented bound. Results below the normal range
    (sigmoid of x < -87 in float32, < -708 in float64): the SIMD levels underflow gradually
    (activations_impl.inl) and are held to the same ulp bound in units of the least subnormal;
    the generic level lets libm's exp overflow, so 1 / (1 + inf) flushes those results to zero:
    it is only held to an absolute error below the least normal number."""
    if not LD_OK[dtype]:
        pytest.skip(f"long double ({np.finfo(LD).nmant + 1}-bit) is no reference for {dtype}")
    x, ref = _ulp_grid(dtype), _ulp_reference(fn, dtype)
    worst, at, err, sub_abs = _measure(level, fn, dtype, x, ref)
    bound = _ulp_bound(level, fn, dtype)
    print(f"{level} {fn} {np.dtype(dtype).name}: max {worst:.3f} ulp at x = {at!r} "
          f"(bound {bound:.2f}); below-normal results: max abs err {sub_abs:.3g}")
    assert worst <= bound, f"{level} {fn}: {worst:.3f} ulp at x = {at!r} > {bound}"
    if level == "generic":
        assert sub_abs <= np.finfo(dtype).smallest_normal
    else:
        i = int(np.argmax(err))
        assert err[i] <= bound, f"{level} {fn}: {float(err[i]):.3f} ulp at x = {x[i]!r}"


def test_reference_agrees_with_mpmath():
    """The long double reference itself, spot-checked against 100-digit mpmath."""
    mpmath = pytest.importorskip("mpmath")
    if not LD_OK[np.float64]:
        pytest.skip("long double is no float64 reference on this platform")
    mpmath.mp.dps = 100
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-20, 20, 200), np.exp2(rng.uniform(-30, 9, 56)) *
                        rng.choice([-1.0, 1.0], 56), [0.3, -0.3, 745.0, -745.0]])
    for fn, f in (("sigmoid", lambda t: 1 / (1 + mpmath.exp(-t))), ("tanh", mpmath.tanh)):
        exact = np.array([float(f(mpmath.mpf(float(v)))) for v in x])  # rounded once to float64
        ref = _reference(fn, x)
        # Both within half an ulp plus the reference's ~2^-11 ulp: ref rounded to float64 equals
        # the correctly rounded value except in rare near-ties, and its ulp error is tiny.
        err = _ulp_error(exact, ref, np.float64)
        assert np.max(err) <= 0.5 + 2.0**-9, f"{fn}: reference off by {np.max(err)} ulp"
        assert np.count_nonzero(ref.astype(np.float64) != exact) <= 2


def _special(dtype):
    fi = np.finfo(dtype)
    return np.array([0.0, -0.0, fi.smallest_subnormal, -fi.smallest_subnormal, 1e-30, -1e-30,
                     1e30, -1e30, fi.max, -fi.max, np.inf, -np.inf, np.nan, -np.nan, 50.0,
                     -50.0, 1000.0, -1000.0], dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("level", LEVELS)
def test_activation_saturation_and_nan(level, dtype):
    """sigmoid(-inf) = 0, sigmoid(inf) = 1, tanh(+-inf) = +-1, exactly, and the same for huge
    finite inputs; sigmoid(+-0) = 1/2, tanh keeps the sign of zero; NaN in, NaN out; no NaN and
    no value outside [0, 1] / [-1, 1] for any finite input."""
    fi = np.finfo(dtype)
    x = np.array([-np.inf, np.inf, -fi.max, fi.max, -1e30, 1e30, -1e4, 1e4], dtype)
    s = _core._kernel_unary(level, "sigmoid", x)
    t = _core._kernel_unary(level, "tanh", x)
    assert s.tolist() == [0.0, 1.0] * 4, s
    assert t.tolist() == [-1.0, 1.0] * 4, t
    z = np.array([0.0, -0.0], dtype)
    assert _core._kernel_unary(level, "sigmoid", z).tolist() == [0.5, 0.5]
    tz = _core._kernel_unary(level, "tanh", z)
    assert tz.tolist() == [0.0, 0.0] and not np.signbit(tz[0]) and np.signbit(tz[1])
    nan = np.array([np.nan, -np.nan, 1.0, np.nan], dtype)
    for fn in ("sigmoid", "tanh"):
        y = _core._kernel_unary(level, fn, nan)
        assert np.isnan(y[[0, 1, 3]]).all() and np.isfinite(y[2]), (fn, y)
        g = _ulp_grid(dtype)
        y = _core._kernel_unary(level, fn, g)
        assert not np.isnan(y).any(), f"{fn}: NaN for finite x = {g[np.isnan(y)][:5]}"
        lo = 0.0 if fn == "sigmoid" else -1.0
        assert ((y >= lo) & (y <= 1.0)).all(), f"{fn}: out of range"


@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("level", LEVELS)
def test_tanh_is_odd(level, dtype):
    """tanh(-x) is bitwise -tanh(x), zeros included."""
    x = np.abs(_ulp_grid(dtype))
    _assert_bitwise(_core._kernel_unary(level, "tanh", -x), -_core._kernel_unary(level, "tanh", x),
                    f"{level} tanh(-x) vs -tanh(x)")


@pytest.mark.parametrize("fn", ["sigmoid", "tanh"])
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("level", LEVELS)
def test_activation_lengths_and_in_place(level, fn, dtype):
    """n = 0, 1, W-1, W, W+1, 3W+5: each element equals the same input's result inside a long
    array (so tails compute like full vectors), nothing past y[n] is written, and y = x in place
    (kernels.h allows exact aliasing) gives the same bits."""
    W = ACT_WIDTH[level][dtype]
    rng = np.random.default_rng(W)
    values = np.concatenate([_special(dtype), rng.uniform(-12, 12, 64).astype(dtype)])
    long_y = _core._kernel_unary(level, fn, values)
    for n in sorted({0, 1, W - 1, W, W + 1, 3 * W + 5}):
        idx = rng.integers(0, values.size, n)
        x = values[idx]
        y = _core._kernel_unary(level, fn, x)
        assert y.shape == (n,)
        _assert_bitwise(y, long_y[idx], f"{level} {fn} n={n}")
        buf = np.full(n + 2 * W, GUARD, dtype)  # out lies inside guards on both sides
        out = buf[W:W + n]
        assert _core._kernel_unary(level, fn, x, out=out) is out
        _assert_bitwise(out, long_y[idx], f"{level} {fn} n={n} into out")
        assert (buf[:W] == GUARD).all() and (buf[W + n:] == GUARD).all(), "wrote past y"
        inplace = np.full(n + 2 * W, GUARD, dtype)
        inplace[W:W + n] = x
        view = inplace[W:W + n]
        _core._kernel_unary(level, fn, view, out=view)
        _assert_bitwise(view, long_y[idx], f"{level} {fn} n={n} in place")
        assert (inplace[:W] == GUARD).all() and (inplace[W + n:] == GUARD).all()


# ----------------------------------------------------------------------------- ulp harness

def _full_sweep_chunks(dtype, chunk=1 << 24):
    """The sample of activations_impl.inl's figures, in chunks: float32, every 13th bit pattern
    with |x| <= 100 (all binades, subnormals included); float64, a 1e-5 grid over [-100, 100]
    and 8M random doubles, half uniform on [-100, 100], half +-2^U[-40, 7]."""
    if dtype == np.float32:
        stride = 13
        for start in range(0, 1 << 32, chunk * stride):
            bits = np.arange(start, min(start + chunk * stride, 1 << 32), stride, dtype=np.uint64)
            x = bits.astype(np.uint32).view(np.float32)
            yield x[np.abs(x) <= 100]  # also drops inf and NaN
    else:
        n = 20_000_001
        for start in range(0, n, chunk):
            yield np.arange(start, min(start + chunk, n), dtype=np.float64) * 1e-5 - 100.0
        rng = np.random.default_rng(2024)
        for _ in range(4):
            half = 1 << 20
            yield np.concatenate([rng.uniform(-100, 100, half),
                                  np.exp2(rng.uniform(-40, 7, half)) * rng.choice([-1, 1], half)])


def _full_sweep(level, fn, dtype):
    worst, at = 0.0, 0.0
    for x in _full_sweep_chunks(dtype):
        if x.size:
            w, a, _, _ = _measure(level, fn, dtype, x, _reference(fn, x))
            if w > worst:
                worst, at = w, a
    return worst, at


def ulp_table(full=False):
    """Max ulp error (over results in the normal range) per level, function and dtype on the
    test grid and, with full, on the sample of _full_sweep_chunks, as printed by
    `python tests/test_kernels.py --ulp [--full]`."""
    import platform
    info = rnnkit.build_info()
    print(f"rnnkit {info['version']} ({info['compiler']}) on {info['cpu_model']} "
          f"[{platform.machine()}], long double: {np.finfo(LD).nmant + 1}-bit mantissa")
    grid_n = _ulp_grid(np.float32).size
    print(f"grid: {grid_n} float32 points (2^20 over [-20, 20], 2^16 log-spaced magnitudes to "
          "1024, 2^12 with subnormal sigmoid, branch points, both signs)")
    if full:
        print("sweep: float32 every 13th bit pattern with |x| <= 100; float64 a 1e-5 grid over "
              "[-100, 100] and 8M random doubles")
    head = f"{'level':8} {'function':8} {'dtype':8} {'max ulp':>8} {'at x':>24} {'bound':>6}"
    if full:
        head += f" {'sweep':>7} {'at x':>16}"
    print(head)
    for level in LEVELS:
        for fn in ("sigmoid", "tanh"):
            for dtype in DTYPES:
                worst, at, _, _ = _measure(level, fn, dtype, _ulp_grid(dtype),
                                           _ulp_reference(fn, dtype))
                line = (f"{level:8} {fn:8} {np.dtype(dtype).name:8} {worst:8.3f} "
                        f"{float(at):24.17g} {_ulp_bound(level, fn, dtype):6.2f}")
                if full:
                    w, a = _full_sweep(level, fn, dtype)
                    line += f" {w:7.3f} {float(a):16.9g}"
                print(line, flush=True)


if __name__ == "__main__":
    if "--ulp" in sys.argv[1:]:
        ulp_table(full="--full" in sys.argv[1:])
    else:
        sys.exit(pytest.main([__file__, "-q"] + sys.argv[1:]))


@pytest.mark.parametrize("level", LEVELS)
def test_fma_peak_probe_computes_its_recurrence(level):
    """The FMA peak probe (benchmarks/fma_peak.py) really does its multiply-adds: its result is
    the closed form of acc <- acc * a + b over 12 chains, summed in float64 here."""
    n = 3000
    flops, got = rnnkit._core._kernel_fma_loop(level, n)
    a, b = np.float64(np.float32(0.999999)), np.float64(np.float32(1e-6))
    fixed = b / (1 - a)
    start = np.float32(0.1) * np.arange(1, 13, dtype=np.float32)
    want = np.sum(a ** n * (start.astype(np.float64) - fixed) + fixed)
    assert got == pytest.approx(want, rel=1e-4)
    lanes = {"generic": 1, "avx2": 8, "avx512": 16}[level]
    assert flops == n * 12 * lanes * 2
    with pytest.raises(ValueError, match="iterations"):
        rnnkit._core._kernel_fma_loop(level, -1)
