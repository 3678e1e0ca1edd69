// How the engine splits a layer's hidden units among threads, and packs each thread's share of
// a weight matrix.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/kernels.h"
#include "runtime/buffer.h"
#include "runtime/threads.h"

namespace rnnkit {

// Hidden units are split among threads in multiples of this, so SIMD spans stay whole.
constexpr int64_t kUnitAlign = 16;

// Threads for a recurrence that does `G` gate products of B x H x H per step.
inline int recurrence_threads(int64_t B, int64_t H, int G) {
  const double flops_per_step = 2.0 * B * G * H * H;
  return threads_for(flops_per_step, (H + kUnitAlign - 1) / kUnitAlign);
}

// Copies the rows of W (G*H, K) that belong to units j0..j1, gate by gate, into a scratch
// ((G*nj) x K) and packs them as op(B) = rowsᵀ; when the slice is every unit, packs W directly.
// Product column g*nj + (j - j0) is then gate g of unit j.
template <class T>
void pack_unit_rows(const PackedGemm<T>& pg, int G, int64_t H, int64_t K, int64_t j0,
                    int64_t j1, const T* W, Buffer<T>& packed) {
  const int64_t nj = j1 - j0, width = G * nj;
  packed.resize(pg.size(K, width));
  if (nj == H) {
    pg.pack(true, K, width, W, K, packed.data());
    return;
  }
  Buffer<T> rows(width * K);
  for (int g = 0; g < G; ++g)
    std::copy(W + (g * H + j0) * K, W + (g * H + j1) * K, rows.data() + g * nj * K);
  pg.pack(true, K, width, rows.data(), K, packed.data());
}

// This thread's bias slice in the product layout (gate g at g*nj), zeros without a bias.
template <class T>
void unit_bias(int G, int64_t H, int64_t j0, int64_t j1, const T* bias, Buffer<T>& out) {
  const int64_t nj = j1 - j0;
  out.resize(G * nj);
  for (int g = 0; g < G; ++g)
    for (int64_t j = 0; j < nj; ++j) out.data()[g * nj + j] = bias ? bias[g * H + j0 + j] : T(0);
}

}  // namespace rnnkit
