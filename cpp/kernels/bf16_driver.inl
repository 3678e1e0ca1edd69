// bfloat16 weights for the packed products (KernelTable::gemm_bf16): the layout, the packing and
// the driver around each ISA's dot kernel. Included by bf16_generic.cpp and by the AVX-512 BF16
// kernel's file, so every level packs alike.
//
// Weights op(B) (K x N) are rounded to bfloat16 (round to nearest even) once, at packing;
// activations A (M x K) at each call, the same way; products of two bfloat16 are exact in
// float32 and are summed in float32:  C[m, n] = beta C[m, n] + Σ_k bf16(A[m, k]) bf16(B[k, n]).
// No scales: bfloat16 keeps float32's exponent range. The levels sum in different orders (the
// AVX-512 BF16 instruction adds pairs of products per lane), so they agree to float32 rounding,
// not bit for bit.
// Packed buffer (float units, 64-byte parts): Np = N rounded up to 16, Kp = ceil(K / 2);
//   Np / 16 panels of Kp pairs of 64 bytes: pair kp of panel p holds, for its 16 columns c, the
//   2 weights B[2 kp + i, 16 p + c] (i = 0, 1; zero past K): one 512-bit vector of 16 lanes of
//   two bfloat16, as vdpbf16ps reads it.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/kernels.h"
#include "runtime/buffer.h"

namespace rnnkit {
namespace bf16 {

constexpr int64_t kPanel = 16;     // columns per panel
constexpr int64_t kRowBlock = 64;  // rows of A converted and summed at a time

inline int64_t panels_cols(int64_t N) { return (N + kPanel - 1) / kPanel * kPanel; }
inline int64_t pairs(int64_t K) { return (K + 1) / 2; }
inline int64_t packed_size(int64_t K, int64_t N) { return panels_cols(N) * pairs(K); }

// float32 -> bfloat16, round to nearest even; NaN stays NaN (quiet).
inline uint16_t to_bf16(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
inline float from_bf16(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float v;
  std::memcpy(&v, &u, 4);
  return v;
}

inline void pack(bool transB, int64_t K, int64_t N, const float* B, int64_t ldb, float* packed) {
  const int64_t Kp = pairs(K);
  uint16_t* out = reinterpret_cast<uint16_t*>(packed);
  std::memset(packed, 0, sizeof(float) * packed_size(K, N));
  for (int64_t n = 0; n < N; ++n) {
    uint16_t* panel = out + (n / kPanel) * Kp * 32 + (n % kPanel) * 2;
    for (int64_t k = 0; k < K; ++k)
      panel[(k / 2) * 32 + k % 2] = to_bf16(transB ? B[n * ldb + k] : B[k * ldb + n]);
  }
}

// acc (M x Np) = Σ_k a[m, k] b[k, n] over Kp pairs; a (M x Kp*2) bfloat16 row-major.
using DotFn = void (*)(int64_t M, int64_t Np, int64_t Kp, const uint16_t* a,
                       const uint16_t* panels, float* acc);

template <DotFn Dot>
void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* packed,
          float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  const int64_t Np = panels_cols(N), Kp = pairs(K);
  const uint16_t* panels = reinterpret_cast<const uint16_t*>(packed);
  const int64_t rows = std::min(M, kRowBlock);
  thread_local Buffer<uint16_t> a;
  thread_local Buffer<float> acc;
  a.resize(rows * Kp * 2);
  acc.resize(rows * Np);
  for (int64_t m0 = 0; m0 < M; m0 += rows) {
    const int64_t mb = std::min(rows, M - m0);
    for (int64_t r = 0; r < mb; ++r) {
      uint16_t* ar = a.data() + r * Kp * 2;
      for (int64_t k = 0; k < K; ++k) ar[k] = to_bf16(A[(m0 + r) * lda + k]);
      if (K % 2) ar[K] = 0;
    }
    Dot(mb, Np, Kp, a.data(), panels, acc.data());
    for (int64_t r = 0; r < mb; ++r) {
      float* c = C + (m0 + r) * ldc;
      const float* s = acc.data() + r * Np;
      for (int64_t n = 0; n < N; ++n) c[n] = beta == 0.0f ? s[n] : beta * c[n] + s[n];
    }
  }
}

}  // namespace bf16
}  // namespace rnnkit
