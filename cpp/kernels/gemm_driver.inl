// Shared GEMM driver for the per-ISA files gemm_avx2.cpp and gemm_avx512.cpp.
// NOT a standalone header: never compile it on its own and never include it anywhere else. Each
// gemm_<isa>.cpp includes it inside its own namespace rnnkit::<isa>_isa::{anonymous}, after
// <immintrin.h>, <algorithm>, <array>, <cstdlib>, <utility>, kernels.h and runtime/cpu_features.h,
// so every ISA compiles a private copy with its own flags and only register_<isa> is visible to
// the linker.
//
// The including file defines, before the #include:
//   traits types X (one per element type) with
//     T (float/double), V (the vector), W (lanes per V),
//     MR, NR, KC, MC, NC (blocking; NR a multiple of W), WIDE_ROWS (3 or 6: slivers_per_group),
//     zero(), load(p), store(p, v), bcast(p) (broadcast *p), fma(a, b, c) = a*b + c, add(a, b);
//   pack_copy<X>(src, ld, lanes, kc, P, dst): dst[k*P + i] = src[k*ld + i] for i < lanes, zero
//     for lanes <= i < P;
//   store_edge<X>(c, C, ldc, cols, accumulate, row): stores the first cols < NR columns of an
//     R x NR register tile c[R][NR/W] into C (C = c; C = C + c with accumulate; else, with a
//     row, C = row + c in every row), rounding exactly like the full-tile store, and touching no
//     column past cols (of C or of row).
//
// Layout of the work (row-major C, vectors run along N):
//   for each KC-deep slab of K, op(A) is packed into MR-row panels ([kc][MR], zero-padded) and
//   op(B) into NR-column slivers ([kc][NR], zero-padded); the micro-kernel keeps an R x NR tile
//   of C in registers (R <= MR rows; NR = 2 vectors in both ISA files), broadcasting one A value
//   per row and loading the NR/W B vectors per k.
//
// Determinism: every C element is computed as
//     acc = 0; for k in the KC slab, ascending: acc = fma(a, b, acc);  C = (first slab && beta == 0)
//     ? acc : C + acc
// slab by slab in ascending order. KC is a constant of each ISA's traits, edge tiles use the same
// chain (zero padding and row-count specialised kernels only drop or add lanes, never reorder a
// lane's sum), and nothing depends on alignment, so splitting M or N among threads gives bitwise
// identical results. Results are not promised to match between ISAs or the generic file.
#ifndef RNNKIT_GEMM_DRIVER_INSIDE_ISA_FILE
#error "gemm_driver.inl is included only by gemm_<isa>.cpp, inside its ISA namespace"
#endif

// Scratch that only grows, 64-byte aligned so packed rows never straddle cache lines. A failed
// allocation throws std::bad_alloc and keeps the old block, so the thread's scratch stays valid.
// (Deliberately not runtime/buffer.h: every inline function compiled here carries this ISA's
// flags, and a shared inline template could be merged by the linker into baseline code.)
template <class T>
struct Scratch {
  T* p = nullptr;
  size_t n = 0;
  ~Scratch() { std::free(p); }
  T* get(size_t need) {
    if (need > n) {
      if (need > (SIZE_MAX - 63) / sizeof(T)) throw std::bad_alloc();
      const size_t bytes = (need * sizeof(T) + 63) / 64 * 64;
      T* fresh = static_cast<T*>(std::aligned_alloc(64, bytes));
      if (!fresh) throw std::bad_alloc();
      std::free(p);
      p = fresh;
      n = bytes / sizeof(T);
    }
    return p;
  }
};

// ---- packing ---------------------------------------------------------------------------------
// Two source shapes cover all four (operand, trans) cases; "lane" i is a row of an A panel or a
// column of a B sliver, P the panel width (MR or NR). Lanes past `lanes` are zero so the
// micro-kernel can run full width: the zero products land only in lanes that are never stored.
// The contiguous shape, pack_copy<X>, is the including file's (it needs ISA-specific tails).

// 8x8 float / 4x4 double in-register transposes for the strided shape below (256-bit AVX, which
// every including ISA has).
inline void transpose_block(const float* s, int64_t ld, float* d, int64_t dld) {
  __m256 r0 = _mm256_loadu_ps(s + 0 * ld), r1 = _mm256_loadu_ps(s + 1 * ld);
  __m256 r2 = _mm256_loadu_ps(s + 2 * ld), r3 = _mm256_loadu_ps(s + 3 * ld);
  __m256 r4 = _mm256_loadu_ps(s + 4 * ld), r5 = _mm256_loadu_ps(s + 5 * ld);
  __m256 r6 = _mm256_loadu_ps(s + 6 * ld), r7 = _mm256_loadu_ps(s + 7 * ld);
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(d + 0 * dld, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(d + 1 * dld, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(d + 2 * dld, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(d + 3 * dld, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(d + 4 * dld, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(d + 5 * dld, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(d + 6 * dld, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(d + 7 * dld, _mm256_permute2f128_ps(u3, u7, 0x31));
}
inline void transpose_block(const double* s, int64_t ld, double* d, int64_t dld) {
  __m256d r0 = _mm256_loadu_pd(s + 0 * ld), r1 = _mm256_loadu_pd(s + 1 * ld);
  __m256d r2 = _mm256_loadu_pd(s + 2 * ld), r3 = _mm256_loadu_pd(s + 3 * ld);
  __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
  __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
  _mm256_storeu_pd(d + 0 * dld, _mm256_permute2f128_pd(t0, t2, 0x20));
  _mm256_storeu_pd(d + 1 * dld, _mm256_permute2f128_pd(t1, t3, 0x20));
  _mm256_storeu_pd(d + 2 * dld, _mm256_permute2f128_pd(t0, t2, 0x31));
  _mm256_storeu_pd(d + 3 * dld, _mm256_permute2f128_pd(t1, t3, 0x31));
}

// dst[k*P + i] = src[i*ld + k]   (B with trans, A without: each lane is a contiguous row)
template <class X>
void pack_transpose(const typename X::T* src, int64_t ld, int64_t lanes, int64_t kc, int64_t P,
                    typename X::T* dst) {
  using T = typename X::T;
  constexpr int64_t TB = 32 / sizeof(T);  // transpose block edge: one ymm of T
  int64_t i = 0;
  for (; i + TB <= lanes; i += TB) {
    int64_t k = 0;
    for (; k + TB <= kc; k += TB) transpose_block(src + i * ld + k, ld, dst + k * P + i, P);
    for (; k < kc; ++k)
      for (int64_t ii = i; ii < i + TB; ++ii) dst[k * P + ii] = src[ii * ld + k];
  }
  for (int64_t k = 0; k < kc; ++k) {
    for (int64_t ii = i; ii < lanes; ++ii) dst[k * P + ii] = src[ii * ld + k];
    for (int64_t ii = lanes; ii < P; ++ii) dst[k * P + ii] = T(0);
  }
}

// Lanes [i0, i0+lanes) of op(X) over k in [k0, k0+kc), as a [kc][P] panel. `lanes_contiguous`
// says whether consecutive lanes are adjacent in memory (B without trans, A with trans).
template <class X>
void pack_panel(bool lanes_contiguous, const typename X::T* src, int64_t ld, int64_t i0,
                int64_t lanes, int64_t k0, int64_t kc, int64_t P, typename X::T* dst) {
  if (lanes_contiguous)
    pack_copy<X>(src + k0 * ld + i0, ld, lanes, kc, P, dst);
  else
    pack_transpose<X>(src + i0 * ld + k0, ld, lanes, kc, P, dst);
}

// Elements of T in one 64-byte cache line.
template <class X>
constexpr int64_t kLineElems = int64_t(64 / sizeof(typename X::T));

// ---- micro-kernel ----------------------------------------------------------------------------
// C[R x cols] = (accumulate ? C : row ? row : 0) + sum_k Ap[k][0..R) (x) Bp[k][0..NR), where
// row (cols values, the same for every row of the tile) is the first slab's start for
// gemm_row: row + acc rounds as C + acc does once C holds row.
// Ap has row stride MR (packed panel), Bp has k stride bks (NR when packed, ldb when B is read in
// place). R is a template argument so row tails get a kernel of exactly their height (no wasted
// FMAs for M = 1..7) with the same per-element chain as the full tile. Partial tiles
// (cols < NR) are stored by the including file's store_edge<X>.
// AS is the distance between consecutive k of A: MR for a packed panel, or 1 when a single row
// of A is read where it lies (M = 1 needs no packing).
// PF: also pull kc cache lines starting at `pf` toward L2, one per k (see run_rows). The hint
// changes no arithmetic.
template <class X, int R, int64_t AS = X::MR, bool PF = false>
void micro_kernel(int64_t kc, const typename X::T* __restrict Ap,
                  const typename X::T* __restrict Bp, int64_t bks, typename X::T* __restrict C,
                  int64_t ldc, int64_t cols, bool accumulate,
                  const typename X::T* row = nullptr, const typename X::T* pf = nullptr) {
  using V = typename X::V;
  constexpr int NV = int(X::NR / X::W);
  V c[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) c[r][v] = X::zero();

  // C is stored (or read and stored) only after the k loop: ask for its lines now, so that the
  // misses of a C bigger than the caches overlap this tile's FMAs instead of stalling its
  // stores (a language model's (B*T) x V logits; 700 x 10000 x 200 with transB measured 124 ->
  // 156 GF/s on a 2 MiB-L2 Xeon). Only the columns the tile stores are touched.
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      if (v * X::W < cols) __builtin_prefetch(C + r * ldc + v * X::W, 1, 3);

  for (int64_t k = 0; k < kc; ++k) {
    if constexpr (PF) __builtin_prefetch(pf + k * kLineElems<X>, 0, 2);
    V b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = X::load(Bp + v * X::W);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const V a = X::bcast(Ap + r);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) c[r][v] = X::fma(a, b[v], c[r][v]);
    }
    Ap += AS;
    Bp += bks;
  }

  if (cols == X::NR) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        typename X::T* p = C + r * ldc + v * X::W;
        X::store(p, accumulate ? X::add(X::load(p), c[r][v])
                    : row      ? X::add(X::load(row + v * X::W), c[r][v])
                               : c[r][v]);
      }
  } else {
    store_edge<X>(c, C, ldc, cols, accumulate, row);
  }
}

// The kernel above for a few rows has only 2R accumulators: too few independent FMA chains to
// cover FMA latency, so a lone row (M = 1: matrix-vector) runs at a fraction of peak, and one
// weight stream at a time. This variant walks NS adjacent full slivers at once (R x NS x 2
// accumulators). Each C element still
// gets the same chain, so it is interchangeable with NS calls of the kernel above.
template <class X, int R, int NS, int64_t AS = X::MR>
void micro_kernel_wide(int64_t kc, const typename X::T* __restrict Ap,
                       const typename X::T* __restrict Bp, int64_t sstride, int64_t bks,
                       typename X::T* __restrict C, int64_t ldc, bool accumulate,
                       const typename X::T* row = nullptr) {
  using V = typename X::V;
  constexpr int NV = int(X::NR / X::W);
  V c[R][NS][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int s = 0; s < NS; ++s)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) c[r][s][v] = X::zero();
  for (int64_t k = 0; k < kc; ++k) {
    V b[NS][NV];
#pragma GCC unroll 8
    for (int s = 0; s < NS; ++s)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) b[s][v] = X::load(Bp + s * sstride + v * X::W);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const V a = X::bcast(Ap + r);
#pragma GCC unroll 8
      for (int s = 0; s < NS; ++s)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) c[r][s][v] = X::fma(a, b[s][v], c[r][s][v]);
    }
    Ap += AS;
    Bp += bks;
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int s = 0; s < NS; ++s)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        typename X::T* p = C + r * ldc + s * X::NR + v * X::W;
        X::store(p, accumulate ? X::add(X::load(p), c[r][s][v])
                    : row      ? X::add(X::load(row + s * X::NR + v * X::W), c[r][s][v])
                               : c[r][s][v]);
      }
}

// Slivers walked together by micro_kernel_wide when the whole of M is one short row tile.
// Two slivers while their accumulators (M x 2 x NR/W) fit the ISA's registers: X::WIDE_ROWS
// rows (3 for AVX2's 16 registers, 6 for AVX-512's 32). Walking two weight streams instead of
// one also lets a weights-bound product (serving at batch 4) pull them at the bandwidth a lone
// row gets: 4 x 4096 x 1024 packed measured 35 -> 55 GF/s on a Xeon (weights from L3).
template <class X>
inline int64_t slivers_per_group(int64_t M) {
  return M == 1 ? 4 : M <= X::WIDE_ROWS ? 2 : 1;
}

// micro_kernel_wide for the whole of a short M (M <= X::WIDE_ROWS, G = slivers_per_group(M)
// full slivers). AS1: the distance between k of A when M == 1 (1: the row read in place).
template <class X, int64_t AS1>
inline void run_wide(int64_t M, int64_t kc, const typename X::T* Ap, const typename X::T* Bp,
                     int64_t sstride, int64_t bks, typename X::T* C, int64_t ldc,
                     bool accumulate, const typename X::T* row) {
  switch (M) {
    case 1: return micro_kernel_wide<X, 1, 4, AS1>(kc, Ap, Bp, sstride, bks, C, ldc, accumulate,
                                                   row);
    case 2: return micro_kernel_wide<X, 2, 2>(kc, Ap, Bp, sstride, bks, C, ldc, accumulate, row);
    case 3: return micro_kernel_wide<X, 3, 2>(kc, Ap, Bp, sstride, bks, C, ldc, accumulate, row);
    default: break;
  }
  if constexpr (X::WIDE_ROWS >= 6) {
    switch (M) {
      case 4: return micro_kernel_wide<X, 4, 2>(kc, Ap, Bp, sstride, bks, C, ldc, accumulate,
                                                row);
      case 5: return micro_kernel_wide<X, 5, 2>(kc, Ap, Bp, sstride, bks, C, ldc, accumulate,
                                                row);
      case 6: return micro_kernel_wide<X, 6, 2>(kc, Ap, Bp, sstride, bks, C, ldc, accumulate,
                                                row);
      default: break;
    }
  }
  std::abort();  // unreachable: callers pass M <= X::WIDE_ROWS
}

template <class X>
using KernelFn = void (*)(int64_t, const typename X::T*, const typename X::T*, int64_t,
                          typename X::T*, int64_t, int64_t, bool, const typename X::T*,
                          const typename X::T*);

template <class X, bool PF, size_t... I>
constexpr std::array<KernelFn<X>, sizeof...(I)> make_kernels(std::index_sequence<I...>) {
  return {&micro_kernel<X, int(I) + 1, X::MR, PF>...};
}

// Whether slivers streamed from a B of `bytes` should be prefetched (run_rows' `next`): when B
// cannot stay in L2 beside A and C. For a B that does, the hint only takes load slots (3% of a
// 32 x 1024 x 256 product measured on a Xeon with 2 MiB L2).
inline bool stream_hint(int64_t bytes) { return bytes > l2_cache_bytes() / 2; }

// One packed A block (rows [0, mc)) against one B sliver, all row tiles.
// `next` is the [kc][NR] sliver the caller runs after this one (or null). The first row tile of
// a sliver reads it from wherever B lives; from L3 that is slower than the kernel's two lines
// per k on some CPUs (a 2-core Xeon VM: the recurrent product's 4 MB packed W_hh ran at 66% of
// the FMA peak, 81% with this hint). So the first tiles here prefetch `next` into L2, one line
// per k each: a sliver is kc*NR*sizeof(T) bytes, kc lines per 64 bytes of a sliver row (two
// tiles for AVX-512's 128-byte rows, one for AVX2's 64). Later tiles repeat the hint on lines
// now cached, which costs a load slot and nothing else.
template <class X>
inline void run_rows(int64_t mc, int64_t kc, const typename X::T* Ap, const typename X::T* Bp,
                     int64_t bks, typename X::T* C, int64_t ldc, int64_t cols, bool accumulate,
                     const typename X::T* row, const typename X::T* next) {
  static constexpr auto plain = make_kernels<X, false>(std::make_index_sequence<X::MR>());
  static constexpr auto hinted = make_kernels<X, true>(std::make_index_sequence<X::MR>());
  constexpr int64_t lines_per_k = int64_t(X::NR * sizeof(typename X::T) / 64);
  static_assert(lines_per_k >= 1 && X::NR % kLineElems<X> == 0, "sliver rows are whole lines");
  const int64_t share = kc * kLineElems<X>;  // one tile's part of `next`
  for (int64_t ir = 0, t = 0; ir < mc; ir += X::MR, ++t) {
    const int64_t rows = std::min(X::MR, mc - ir);
    const auto& kernels = next ? hinted : plain;
    kernels[rows - 1](kc, Ap + ir * kc, Bp, bks, C + ir * ldc, ldc, cols, accumulate, row,
                      next ? next + (t % lines_per_k) * share : nullptr);
  }
}

// ---- driver ----------------------------------------------------------------------------------
// C = beta*C + op(A) op(B) (GemmFn), or, with a row, C = row + op(A) op(B) (GemmRowFn; beta is
// then 0): row enters at the first slab's store, where beta = 1 would read C.
template <class X>
void gemm_core(bool transA, bool transB, int64_t M, int64_t N, int64_t K,
               const typename X::T* A, int64_t lda, const typename X::T* B, int64_t ldb,
               typename X::T beta, const typename X::T* row, typename X::T* C, int64_t ldc) {
  using T = typename X::T;
  constexpr int64_t MR = X::MR, NR = X::NR, KC = X::KC, MC = X::MC, NC = X::NC;
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (row)
      for (int64_t m = 0; m < M; ++m) std::copy(row, row + N, C + m * ldc);
    else if (beta == T(0))
      for (int64_t m = 0; m < M; ++m) std::fill(C + m * ldc, C + m * ldc + N, T(0));
    return;
  }
  thread_local Scratch<T> a_buf, b_buf;
  T* Ap = a_buf.get(size_t((std::min(M, MC) + MR - 1) / MR * MR * KC));

  if (M <= MC) {
    // One A block covers all rows, so each B sliver is used by this block only: pack it just
    // before use into an L1-sized buffer instead of packing the whole of B up front (which would
    // round-trip B through L2/L3). When B needs no transpose and there is a single row tile, B is
    // read in place: packing would cost more than the one pass the kernel makes over it.
    // Reading in place is limited to one row tile because repeated strided passes over a sliver
    // suffer L1 set conflicts when ldb is a power of two. Known cost: with transB and small M
    // every call still transposes all of B (N*K loads and stores for 2*M*N*K flops), which caps
    // M = 1 well below a GEMV; callers that reuse B across calls use gemm_packed below.
    const int64_t G = slivers_per_group<X>(M);
    T* Bs = b_buf.get(size_t(G * KC * NR));
    const bool direct_b = !transB && M <= MR;
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      const bool accumulate = pc > 0 || beta != T(0);
      const T* r0 = pc == 0 ? row : nullptr;  // row + column, for the tiles' first slab
      for (int64_t ir = 0; ir < M; ir += MR)
        pack_panel<X>(transA, A, lda, ir, std::min(MR, M - ir), pc, kc, MR, Ap + ir * kc);
      for (int64_t jg = 0; jg < N; jg += G * NR) {
        const int64_t gcols = std::min(G * NR, N - jg);
        const T* bp;
        int64_t sstride, bks;
        if (direct_b && gcols % NR == 0) {
          bp = B + pc * ldb + jg;
          sstride = NR;
          bks = ldb;
        } else {
          for (int64_t s = 0; s * NR < gcols; ++s)
            pack_panel<X>(!transB, B, ldb, jg + s * NR, std::min(NR, gcols - s * NR), pc, kc, NR,
                          Bs + s * kc * NR);
          bp = Bs;
          sstride = kc * NR;
          bks = NR;
        }
        const T* rg = r0 ? r0 + jg : nullptr;
        if (G > 1 && gcols == G * NR) {
          run_wide<X, X::MR>(M, kc, Ap, bp, sstride, bks, C + jg, ldc, accumulate, rg);
        } else {
          for (int64_t s = 0; s * NR < gcols; ++s)
            run_rows<X>(M, kc, Ap, bp + s * sstride, bks, C + jg + s * NR, ldc,
                        std::min(NR, gcols - s * NR), accumulate, rg ? rg + s * NR : nullptr,
                        nullptr);
        }
      }
    }
    return;
  }

  T* Bp = b_buf.get(size_t((std::min(N, NC) + NR - 1) / NR * NR * KC));
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      const bool hint = stream_hint(int64_t(sizeof(T)) * kc * nc);
      const bool accumulate = pc > 0 || beta != T(0);
      const T* r0 = pc == 0 && row ? row + jc : nullptr;
      for (int64_t jr = 0; jr < nc; jr += NR)
        pack_panel<X>(!transB, B, ldb, jc + jr, std::min(NR, nc - jr), pc, kc, NR, Bp + jr * kc);
      for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = std::min(MC, M - ic);
        for (int64_t ir = 0; ir < mc; ir += MR)
          pack_panel<X>(transA, A, lda, ic + ir, std::min(MR, mc - ir), pc, kc, MR,
                        Ap + ir * kc);
        for (int64_t jr = 0; jr < nc; jr += NR)
          run_rows<X>(mc, kc, Ap, Bp + jr * kc, NR, C + ic * ldc + jc + jr, ldc,
                      std::min(NR, nc - jr), accumulate, r0 ? r0 + jr : nullptr,
                      !hint ? nullptr : jr + NR < nc ? Bp + (jr + NR) * kc : Bp);
      }
    }
  }
}

template <class X>
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const typename X::T* A,
          int64_t lda, const typename X::T* B, int64_t ldb, typename X::T beta,
          typename X::T* C, int64_t ldc) {
  gemm_core<X>(transA, transB, M, N, K, A, lda, B, ldb, beta, nullptr, C, ldc);
}

template <class X>
void gemm_row(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const typename X::T* A,
              int64_t lda, const typename X::T* B, int64_t ldb, const typename X::T* row,
              typename X::T* C, int64_t ldc) {
  gemm_core<X>(transA, transB, M, N, K, A, lda, B, ldb, typename X::T(0), row, C, ldc);
}

// ---- pre-packed B ------------------------------------------------------------------------------
// Layout: panel-major [ceil(N/NR)][K][NR], columns past N zero. A panel holds every k for its NR
// columns, so the KC slab pc of panel p starts at packed + p*K*NR + pc*NR and is the same
// [kc][NR] sliver the driver above packs, and a whole panel is one sequential stream.
// gemm_packed walks the same KC slabs with the same micro-kernels, so each C element gets the
// chain of gemm above: results are bitwise equal to gemm on the unpacked B.
template <class X>
int64_t packed_b_size(int64_t K, int64_t N) {
  return std::max<int64_t>(K, 0) * ((std::max<int64_t>(N, 0) + X::NR - 1) / X::NR) * X::NR;
}

template <class X>
void pack_b(bool transB, int64_t K, int64_t N, const typename X::T* B, int64_t ldb,
            typename X::T* packed) {
  if (K <= 0 || N <= 0) return;
  for (int64_t jr = 0; jr < N; jr += X::NR)
    pack_panel<X>(!transB, B, ldb, jr, std::min(X::NR, N - jr), 0, K, X::NR, packed + jr * K);
}

template <class X>
void gemm_packed(int64_t M, int64_t N, int64_t K, const typename X::T* A, int64_t lda,
                 const typename X::T* packed, typename X::T beta, typename X::T* C,
                 int64_t ldc) {
  using T = typename X::T;
  constexpr int64_t MR = X::MR, NR = X::NR, KC = X::KC, MC = X::MC;
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (beta == T(0))
      for (int64_t m = 0; m < M; ++m) std::fill(C + m * ldc, C + m * ldc + N, T(0));
    return;
  }
  thread_local Scratch<T> a_buf;
  const int64_t pstride = K * NR;  // distance between panels

  if (M <= MR) {
    // One row tile (the recurrent step for small batches, M = 1 a matrix-vector product, bound
    // by the bandwidth B streams in at). A is packed once for all of K ([K][MR]: the slab at pc
    // starts at Ap + pc*MR), then each group of G panels is streamed front to back through all
    // slabs: G sequential read streams, B read exactly once.
    // M = 1: the row of A is read where it lies (stride 1), no packing. Otherwise A is packed
    // once for all of K ([K][MR]: the slab at pc starts at Ap + pc*MR).
    const T* Ap = A;
    if (M > 1) {
      T* buf = a_buf.get(size_t(K * MR));
      pack_panel<X>(false, A, lda, 0, M, 0, K, MR, buf);
      Ap = buf;
    }
    const int64_t astep = M == 1 ? 1 : MR;  // distance between k in Ap
    static constexpr auto kernels = make_kernels<X, false>(std::make_index_sequence<X::MR>());
    const auto kernel = kernels[M - 1];
    const int64_t G = slivers_per_group<X>(M);
    for (int64_t jg = 0; jg < N; jg += G * NR) {
      const int64_t gcols = std::min(G * NR, N - jg);
      const T* bp = packed + jg * K;
      for (int64_t pc = 0; pc < K; pc += KC) {
        const int64_t kc = std::min(KC, K - pc);
        const bool accumulate = pc > 0 || beta != T(0);
        const T* a = Ap + pc * astep;
        if (G > 1 && gcols == G * NR) {
          run_wide<X, 1>(M, kc, a, bp + pc * NR, pstride, NR, C + jg, ldc, accumulate, nullptr);
        } else {
          int64_t s = 0;
          if (M == 1)  // pairs of full panels still get twice the independent FMA chains
            for (; (s + 2) * NR <= gcols; s += 2)
              micro_kernel_wide<X, 1, 2, 1>(kc, a, bp + s * pstride + pc * NR, pstride, NR,
                                            C + jg + s * NR, ldc, accumulate);
          for (; s * NR < gcols; ++s) {
            const T* b = bp + s * pstride + pc * NR;
            const int64_t cols = std::min(NR, gcols - s * NR);
            if (M == 1)
              micro_kernel<X, 1, 1>(kc, a, b, NR, C + jg + s * NR, ldc, cols, accumulate);
            else
              kernel(kc, a, b, NR, C + jg + s * NR, ldc, cols, accumulate, nullptr, nullptr);
          }
        }
      }
    }
    return;
  }

  // Several row tiles: per slab, an MC-row block of A is packed (L2) and every [kc][NR] sliver of
  // the slab (L1) is used by all its row tiles, as in gemm's large-M path.
  T* Ap = a_buf.get(size_t((std::min(M, MC) + MR - 1) / MR * MR * KC));
  const bool hint = stream_hint(int64_t(sizeof(T)) * packed_b_size<X>(K, N));
  for (int64_t pc = 0; pc < K; pc += KC) {
    const int64_t kc = std::min(KC, K - pc);
    const bool accumulate = pc > 0 || beta != T(0);
    for (int64_t ic = 0; ic < M; ic += MC) {
      const int64_t mc = std::min(MC, M - ic);
      for (int64_t ir = 0; ir < mc; ir += MR)
        pack_panel<X>(false, A, lda, ic + ir, std::min(MR, mc - ir), pc, kc, MR, Ap + ir * kc);
      for (int64_t jr = 0; jr < N; jr += NR) {
        // The next sliver: the next panel's slab, or the first panel's next slab.
        const T* next = !hint        ? nullptr
                        : jr + NR < N ? packed + (jr + NR) * K + pc * NR
                                      : packed + std::min(pc + kc, K - kc) * NR;
        run_rows<X>(mc, kc, Ap, packed + jr * K + pc * NR, NR, C + ic * ldc + jr, ldc,
                    std::min(NR, N - jr), accumulate, nullptr, next);
      }
    }
  }
}

// ---- registration --------------------------------------------------------------------------
// The packed layout is private to one ISA: the three packed entries are registered together.
template <class F32, class F64>
void fill_gemm_table(KernelTable& table) {
  table.gemm_f32 = gemm<F32>;
  table.gemm_f64 = gemm<F64>;
  table.gemm_row_f32 = gemm_row<F32>;
  table.gemm_row_f64 = gemm_row<F64>;
  table.packed_b_size_f32 = packed_b_size<F32>;
  table.pack_b_f32 = pack_b<F32>;
  table.gemm_packed_f32 = gemm_packed<F32>;
  table.packed_b_size_f64 = packed_b_size<F64>;
  table.pack_b_f64 = pack_b<F64>;
  table.gemm_packed_f64 = gemm_packed<F64>;
}
