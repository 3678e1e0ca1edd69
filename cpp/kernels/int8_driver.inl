// int8 weights for the packed products (KernelTable::gemm_q8): the layout, the packing and the
// driver around each ISA's integer dot kernel. Included by int8_generic.cpp and by the VNNI
// kernel's file, so every level packs alike and differs only in how it sums integers (exactly:
// every level gives bitwise the same results).
//
// Weights op(B) (K x N; column n is output channel n, a row of the caller's W) are quantized per
// channel, symmetrically: scale_n = max_k |B[k, n]| / 127, q = round(B / scale_n) in [-127, 127].
// Activations A (M x K) are quantized per row at each call the same way, then shifted to
// unsigned bytes u = q_a + 128 (what u8 x s8 dot instructions take); the shift comes back out
// exactly through the weights' column sums:
//   C[m, n] = beta C[m, n] + scale_a[m] scale_n (Σ_k u[m, k] q[k, n] - 128 Σ_k q[k, n]).
// Packed buffer (float units, every part a multiple of 64 bytes): Np = N rounded up to 16,
// Kq = ceil(K / 4) rounded up to 16 (so a panel is whole AMX tiles of 16 quads; the quads past K
// hold zero weights and meet activations of 128, i.e. q_a = 0, so they add nothing);
//   [0, Np)            scale_n (float; 0 for padding columns)
//   [Np, 2 Np)         128 Σ_k q[k, n] (int32)
//   [2 Np, ...)        Np / 16 panels of Kq quads of 64 bytes: quad kq of panel p holds, for
//                      its 16 columns c, the 4 weights q[4 kq + i, 16 p + c] (i = 0..3; zero
//                      past K): one 512-bit vector of 16 int32 lanes, as vpdpbusd reads it.
// Integer sums stay exact for K < 65536 (|Σ| < 2^31).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "kernels/kernels.h"
#include "runtime/buffer.h"

namespace rnnkit {
namespace q8 {

constexpr int64_t kPanel = 16;      // columns per panel
constexpr int64_t kQuad = 4;        // k per int32 lane
constexpr int64_t kQuadBlock = 16;  // Kq is a multiple of this: one AMX tile's 16 rows
constexpr int64_t kRowBlock = 64;   // rows of A quantized and summed at a time
constexpr int64_t kMaxK = 65535;

inline int64_t panels_cols(int64_t N) { return (N + kPanel - 1) / kPanel * kPanel; }
inline int64_t quads(int64_t K) {
  const int64_t q = (K + kQuad - 1) / kQuad;
  return (q + kQuadBlock - 1) / kQuadBlock * kQuadBlock;
}

inline int64_t packed_size(int64_t K, int64_t N) {
  const int64_t Np = panels_cols(N);
  return 2 * Np + Np * quads(K);
}

// Quantizes K values (stride ld) of a weight column or an activation row: q[k] = offset +
// round(v[k] * 127 / max|v|), in [offset - 127, offset + 127]. Returns the scale max|v| / 127;
// 0 for all zeros, NaN if any value is not finite (an inf or NaN anywhere makes every result
// of the product NaN, as float arithmetic would); q is then offset everywhere.
// Both loops are written to vectorise (they run on every activation row of every step): the
// largest |v| as the largest of the values' bit patterns without the sign (for non-negative
// floats the integer order is the float order, and inf and NaN lie above every finite value),
// and the rounding as nearbyint in the current mode (to nearest even, as lrint) in float.
template <class Q>
inline float quantize(const float* v, int64_t ld, int64_t K, Q* q, int offset) {
  constexpr uint32_t kInfBits = 0x7f800000u;
  uint32_t amax_bits = 0;
  for (int64_t k = 0; k < K; ++k) {
    uint32_t b;
    std::memcpy(&b, v + k * ld, sizeof b);
    b &= 0x7fffffffu;
    amax_bits = b > amax_bits ? b : amax_bits;
  }
  const bool finite = amax_bits < kInfBits;
  if (!finite || amax_bits == 0) {
    std::fill(q, q + K, static_cast<Q>(offset));
    return finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
  }
  float amax;
  std::memcpy(&amax, &amax_bits, sizeof amax);
  const float inv = 127.0f / amax;
  const float off = static_cast<float>(offset);
  for (int64_t k = 0; k < K; ++k) {
    const float r = std::nearbyint(v[k * ld] * inv);
    q[k] = static_cast<Q>(static_cast<int>(std::min(127.0f, std::max(-127.0f, r)) + off));
  }
  return amax / 127.0f;
}

// op(B) (K x N): transB means B is (N x K) with row n = column n of op(B), the engine's case.
inline void pack(bool transB, int64_t K, int64_t N, const float* B, int64_t ldb, float* packed) {
  if (K > kMaxK) throw std::invalid_argument("int8 products need K < 65536");
  const int64_t Np = panels_cols(N), Kq = quads(K);
  float* scale = packed;
  int32_t* corr = reinterpret_cast<int32_t*>(packed + Np);
  int8_t* panels = reinterpret_cast<int8_t*>(packed + 2 * Np);
  std::memset(packed, 0, sizeof(float) * packed_size(K, N));
  Buffer<int8_t> q(K > 0 ? K : 1);
  for (int64_t n = 0; n < N; ++n) {
    scale[n] = transB ? quantize(B + n * ldb, 1, K, q.data(), 0)
                      : quantize(B + n, ldb, K, q.data(), 0);
    int32_t sum = 0;
    int8_t* panel = panels + (n / kPanel) * Kq * 64 + (n % kPanel) * kQuad;
    for (int64_t k = 0; k < K; ++k) {
      sum += q.data()[k];
      panel[(k / kQuad) * 64 + k % kQuad] = q.data()[k];
    }
    corr[n] = 128 * sum;
  }
}

// acc (M x Np) = Σ_k u[m, k] q[k, n] over Kq quads; u (M x Kq*4) row-major.
using DotFn = void (*)(int64_t M, int64_t Np, int64_t Kq, const uint8_t* u, const int8_t* panels,
                       int32_t* acc);

template <DotFn Dot>
void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* packed,
          float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  const int64_t Np = panels_cols(N), Kq = quads(K), Kp = Kq * kQuad;
  const float* scale = packed;
  const int32_t* corr = reinterpret_cast<const int32_t*>(packed + Np);
  const int8_t* panels = reinterpret_cast<const int8_t*>(packed + 2 * Np);
  const int64_t rows = std::min(M, kRowBlock);
  thread_local Buffer<uint8_t> u;
  thread_local Buffer<int32_t> acc;
  thread_local Buffer<float> row_scale;
  u.resize(rows * Kp);
  acc.resize(rows * Np);
  row_scale.resize(rows);
  for (int64_t m0 = 0; m0 < M; m0 += rows) {
    const int64_t mb = std::min(rows, M - m0);
    for (int64_t r = 0; r < mb; ++r) {  // row m0 + r, shifted to unsigned bytes
      uint8_t* ur = u.data() + r * Kp;
      row_scale.data()[r] = quantize(A + (m0 + r) * lda, 1, K, ur, 128);
      std::fill(ur + K, ur + Kp, uint8_t(128));
    }
    Dot(mb, Np, Kq, u.data(), panels, acc.data());
    for (int64_t r = 0; r < mb; ++r) {
      float* c = C + (m0 + r) * ldc;
      const int32_t* ar = acc.data() + r * Np;
      const float sa = row_scale.data()[r];
      for (int64_t n = 0; n < N; ++n) {
        const float v = sa * scale[n] * static_cast<float>(ar[n] - corr[n]);
        c[n] = beta == 0.0f ? v : beta * c[n] + v;
      }
    }
  }
}

}  // namespace q8
}  // namespace rnnkit
