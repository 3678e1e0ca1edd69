// AVX-512 GEMM (float and double): Goto/BLIS-style packing and register-blocked micro-kernels.
// The ISA-independent driver (packing, blocking loops, micro-kernels, pre-packed B) and its
// determinism argument are in gemm_driver.inl, compiled here with this file's flags; this file
// supplies the vector traits, the blocking, and the two places AVX-512 masks do the work:
// packing contiguous lanes and storing partial tiles.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>

#include "kernels/kernels.h"
#include "runtime/cpu_features.h"

namespace rnnkit {
namespace avx512_isa {
namespace {

// Blocking for AMD Zen 4/5 (48 KiB L1d, 1 MiB L2 per core, 32 MiB L3) and Intel SKX-class parts:
//   MR x NR = 8 x 32 floats: 16 zmm accumulators, enough independent FMA chains to cover the
//     4-cycle latency of two FMA pipes, while MR = 8 keeps small-batch tiles (B = 1..64) dense.
//   KC = 256: one B sliver (KC x NR x 4 B = 32 KiB) stays in L1 next to an A micro-panel (8 KiB).
//   MC = 192: the packed A block (192 x 256 x 4 B = 192 KiB) stays in L2.
//   NC = 4096: the packed B block (256 x 4096 x 4 B = 4 MiB) sits in L3.
// Double keeps the same number of vectors, so NR halves (16) and the byte sizes match.
struct F32 {
  using T = float;
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int64_t W = 16, MR = 8, NR = 32, KC = 256, MC = 192, NC = 4096;
  static constexpr int64_t WIDE_ROWS = 6;  // see slivers_per_group
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const T* p) { return _mm512_loadu_ps(p); }
  static V loadz(Mask m, const T* p) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(T* p, V v) { _mm512_storeu_ps(p, v); }
  static void store(T* p, Mask m, V v) { _mm512_mask_storeu_ps(p, m, v); }
  static V bcast(const T* p) { return _mm512_set1_ps(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static Mask mask(int64_t n) {
    return n >= W ? Mask(0xFFFF) : n <= 0 ? Mask(0) : Mask((1u << n) - 1u);
  }
};

struct F64 {
  using T = double;
  using V = __m512d;
  using Mask = __mmask8;
  static constexpr int64_t W = 8, MR = 8, NR = 16, KC = 256, MC = 96, NC = 2048;
  static constexpr int64_t WIDE_ROWS = 6;
  static V zero() { return _mm512_setzero_pd(); }
  static V load(const T* p) { return _mm512_loadu_pd(p); }
  static V loadz(Mask m, const T* p) { return _mm512_maskz_loadu_pd(m, p); }
  static void store(T* p, V v) { _mm512_storeu_pd(p, v); }
  static void store(T* p, Mask m, V v) { _mm512_mask_storeu_pd(p, m, v); }
  static V bcast(const T* p) { return _mm512_set1_pd(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static Mask mask(int64_t n) {
    return n >= W ? Mask(0xFF) : n <= 0 ? Mask(0) : Mask((1u << n) - 1u);
  }
};

// dst[k*P + i] = src[k*ld + i]   (B without trans, A with trans: lanes contiguous in memory).
// Masked loads zero the lanes past `lanes` without reading past the source row.
template <class X>
void pack_copy(const typename X::T* src, int64_t ld, int64_t lanes, int64_t kc, int64_t P,
               typename X::T* dst) {
  for (int64_t k = 0; k < kc; ++k) {
    for (int64_t i = 0; i < P; i += X::W) {
      const int64_t width = std::min(X::W, P - i);
      const auto v = X::loadz(X::mask(std::min(width, lanes - i)), src + i);
      X::store(dst + i, X::mask(width), v);
    }
    src += ld;
    dst += P;
  }
}

// Partial tile: masked loads and stores, so columns past `cols` are neither read nor written.
template <class X, int R, int NV>
inline void store_edge(const typename X::V (&c)[R][NV], typename X::T* __restrict C,
                       int64_t ldc, int64_t cols, bool accumulate, const typename X::T* row) {
  typename X::Mask m[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) m[v] = X::mask(cols - v * X::W);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      typename X::T* p = C + r * ldc + v * X::W;
      X::store(p, m[v], accumulate ? X::add(X::loadz(m[v], p), c[r][v])
                        : row      ? X::add(X::loadz(m[v], row + v * X::W), c[r][v])
                                   : c[r][v]);
    }
}

#define RNNKIT_GEMM_DRIVER_INSIDE_ISA_FILE
#include "kernels/gemm_driver.inl"
#undef RNNKIT_GEMM_DRIVER_INSIDE_ISA_FILE

}  // namespace
}  // namespace avx512_isa

void register_avx512_activations(KernelTable& table);  // activations_avx512.cpp
void register_avx512_pointwise(KernelTable& table);    // pointwise_avx512.cpp
void register_avx512_fma_peak(KernelTable& table);     // fma_peak_avx512.cpp

void register_avx512(KernelTable& table) {
  table.isa = "avx512";
  avx512_isa::fill_gemm_table<avx512_isa::F32, avx512_isa::F64>(table);
  register_avx512_activations(table);
  register_avx512_pointwise(table);
  register_avx512_fma_peak(table);
}

}  // namespace rnnkit
