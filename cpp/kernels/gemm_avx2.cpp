// AVX2+FMA GEMM (float and double): Goto/BLIS-style packing and register-blocked micro-kernels.
// The ISA-independent driver (packing, blocking loops, micro-kernels, pre-packed B) and its
// determinism argument are in gemm_driver.inl, compiled here with this file's flags; this file
// supplies the vector traits, the blocking, and the scalar tails AVX2 needs where AVX-512 uses
// masks: packing contiguous lanes and storing partial tiles.
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
namespace avx2_isa {
namespace {

// Blocking for AMD Zen and Intel Haswell-class parts (16 ymm registers):
//   MR x NR = 6 x 16 floats: 12 ymm accumulators + 2 B vectors + 1 broadcast = 15 registers;
//     12 independent FMA chains cover the 4-cycle latency of two FMA pipes.
//   KC = 256: one B sliver (256 x 16 x 4 B = 16 KiB) stays in L1 next to an A micro-panel.
//   MC = 144: the packed A block (144 x 256 x 4 B = 144 KiB) stays in L2.
//   NC = 4096: the packed B block (256 x 4096 x 4 B = 4 MiB) sits in L3.
// Double keeps the same number of vectors, so NR halves (8) and the byte sizes match.
struct F32 {
  using T = float;
  using V = __m256;
  static constexpr int64_t W = 8, MR = 6, NR = 16, KC = 256, MC = 144, NC = 4096;
  static constexpr int64_t WIDE_ROWS = 3;  // see slivers_per_group
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, V v) { _mm256_storeu_ps(p, v); }
  static V bcast(const T* p) { return _mm256_broadcast_ss(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
};

struct F64 {
  using T = double;
  using V = __m256d;
  static constexpr int64_t W = 4, MR = 6, NR = 8, KC = 256, MC = 72, NC = 2048;
  static constexpr int64_t WIDE_ROWS = 3;
  static V zero() { return _mm256_setzero_pd(); }
  static V load(const T* p) { return _mm256_loadu_pd(p); }
  static void store(T* p, V v) { _mm256_storeu_pd(p, v); }
  static V bcast(const T* p) { return _mm256_broadcast_sd(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
};

// dst[k*P + i] = src[k*ld + i]   (B without trans, A with trans: lanes contiguous in memory)
template <class X>
void pack_copy(const typename X::T* src, int64_t ld, int64_t lanes, int64_t kc, int64_t P,
               typename X::T* dst) {
  using T = typename X::T;
  const int64_t full = lanes / X::W * X::W;
  for (int64_t k = 0; k < kc; ++k) {
    int64_t i = 0;
    for (; i < full; i += X::W) X::store(dst + i, X::load(src + i));
    for (; i < lanes; ++i) dst[i] = src[i];
    for (; i < P; ++i) dst[i] = T(0);
    src += ld;
    dst += P;
  }
}

// Partial tile: spill and finish in scalar. c + acc in scalar rounds exactly like the vector
// add, so edge columns match the same columns computed inside a full tile.
template <class X, int R, int NV>
inline void store_edge(const typename X::V (&c)[R][NV], typename X::T* __restrict C,
                       int64_t ldc, int64_t cols, bool accumulate, const typename X::T* row) {
  alignas(32) typename X::T tile[R][X::NR];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) X::store(&tile[r][v * X::W], c[r][v]);
  for (int r = 0; r < R; ++r) {
    typename X::T* p = C + r * ldc;
    if (accumulate)
      for (int64_t j = 0; j < cols; ++j) p[j] = p[j] + tile[r][j];
    else if (row)
      for (int64_t j = 0; j < cols; ++j) p[j] = row[j] + tile[r][j];
    else
      for (int64_t j = 0; j < cols; ++j) p[j] = tile[r][j];
  }
}

#define RNNKIT_GEMM_DRIVER_INSIDE_ISA_FILE
#include "kernels/gemm_driver.inl"
#undef RNNKIT_GEMM_DRIVER_INSIDE_ISA_FILE

}  // namespace
}  // namespace avx2_isa

void register_avx2_activations(KernelTable& table);  // activations_avx2.cpp
void register_avx2_pointwise(KernelTable& table);    // pointwise_avx2.cpp
void register_avx2_fma_peak(KernelTable& table);     // fma_peak_avx2.cpp

void register_avx2(KernelTable& table) {
  table.isa = "avx2";
  avx2_isa::fill_gemm_table<avx2_isa::F32, avx2_isa::F64>(table);
  register_avx2_activations(table);
  register_avx2_pointwise(table);
  register_avx2_fma_peak(table);
}

}  // namespace rnnkit
