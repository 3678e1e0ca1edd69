// The LayerNorm arithmetic of the LayerNorm cells (cells/layernorm_lstm.h, layernorm_gru.h):
// the statistics of one row and the backward through them.
//
//   LN(v; γ) = γ ⊙ v̂,   v̂ = (v - mean(v)) · rstd,   rstd = 1 / sqrt(var(v) + eps)
//
// over all n values of the row (biased variance, as torch.nn.LayerNorm; the cells add their
// biases after it). Every sum runs in one fixed order that depends on n alone: 16 interleaved
// partial sums (which the compiler keeps in SIMD registers without reassociating anything),
// folded in a fixed tree. So a row's statistics have the same bits whichever thread computes
// them, and the backward's recomputation of the forward's statistics is exact.
#pragma once
#include <cmath>
#include <cstdint>

#include "runtime/buffer.h"

namespace rnnkit {

// torch.nn.LayerNorm's default epsilon.
constexpr double kLayerNormEps = 1e-5;

// Σ_{i<n} term(i), in the fixed order described above.
template <class T, class Term>
T fixed_order_sum(int64_t n, Term term) {
  constexpr int kLanes = 16;
  T acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int k = 0; k < kLanes; ++k) acc[k] += term(i + k);
  for (int k = 0; i + k < n; ++k) acc[k] += term(i + k);
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int k = 0; k < w; ++k) acc[k] += acc[k + w];
  return acc[0];
}

template <class T>
struct RowStats {
  T mean, rstd;
};

// The mean and 1/sqrt(var + eps) of v (n values), two passes (no cancellation of E[v²]-E[v]²).
template <class T>
RowStats<T> row_stats(const T* v, int64_t n) {
  const T mean = fixed_order_sum<T>(n, [&](int64_t i) { return v[i]; }) / T(n);
  const T var = fixed_order_sum<T>(n, [&](int64_t i) {
                  const T c = v[i] - mean;
                  return c * c;
                }) / T(n);
  return {mean, T(1) / std::sqrt(var + T(kLayerNormEps))};
}

// vhat = (v - mean) · rstd, n values (vhat may be v).
template <class T>
void normalize(const T* v, RowStats<T> s, int64_t n, T* vhat) {
  for (int64_t i = 0; i < n; ++i) vhat[i] = (v[i] - s.mean) * s.rstd;
}

// The gradient reaching v from dy, the gradient of γ ⊙ v̂ (n values):
//   dv = rstd · (dŷ - mean(dŷ) - v̂ ⊙ mean(dŷ ⊙ v̂)),   dŷ = dy ⊙ γ.
// dv may be dy.
template <class T>
void layer_norm_backward(const T* dy, const T* gamma, const T* vhat, T rstd, int64_t n, T* dv) {
  const T mean_d = fixed_order_sum<T>(n, [&](int64_t i) { return dy[i] * gamma[i]; }) / T(n);
  const T mean_dv = fixed_order_sum<T>(n, [&](int64_t i) {
                      return dy[i] * gamma[i] * vhat[i];
                    }) / T(n);
  for (int64_t i = 0; i < n; ++i)
    dv[i] = rstd * (dy[i] * gamma[i] - mean_d - vhat[i] * mean_dv);
}

// to[k] += sum[k], k < sum.size(), where a gradient is wanted (to is not nullptr): a call's
// parameter sums, kept apart and added once, so that accumulating into a non-zero gradient
// rounds as "zeros, then +=" does.
template <class T>
void add_parameter_sums(T* to, const Buffer<T>& sum) {
  if (!to) return;
  for (size_t k = 0; k < sum.size(); ++k) to[k] += sum.data()[k];
}

}  // namespace rnnkit
