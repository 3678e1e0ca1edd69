// Softmax cross-entropy (losses/cross_entropy.h): one row at a time, the exponentials written
// straight into the gradient row (kernels' exp_sum), then scaled and corrected in place while the
// row is still in cache, so the logits are read once and the gradient written once.
#include "losses/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/kernels.h"
#include "runtime/parallel.h"
#include "runtime/threads.h"

namespace rnnkit {

template <class T>
void cross_entropy_forward(const T* z, int64_t N, int64_t C, const int64_t* target,
                           const T* weight, T smoothing, T scale, T* loss, T* grad) {
  const ExpSumFn<T> exp_sum = exp_sum_fn<T>();
  const RowMaxFn<T> row_max = row_max_fn<T>();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const T eps = smoothing, keep = T(1) - smoothing, share = smoothing / T(C);
  T wsum = T(C);
  if (weight) {
    wsum = T(0);
    for (int64_t c = 0; c < C; ++c) wsum += weight[c];
  }
  auto row = [&](int64_t i) {
    const T* zi = z + i * C;
    T* gi = grad + i * C;
    const int64_t t = target[i];
    if (t < 0) {  // not counted: exactly zero, whatever its logits are
      loss[i] = T(0);
      std::fill(gi, gi + C, T(0));
      return;
    }
    const T m = row_max(zi, C);
    if (!std::isfinite(m)) {
      loss[i] = nan;
      std::fill(gi, gi + C, nan);
      return;
    }
    const T sum = exp_sum(gi, zi, C, m);  // gi = exp(z - m), NaN where z is NaN
    const T lse = m + std::log(sum);
    const T wt = weight ? weight[t] : T(1);
    T l = keep * wt * (lse - zi[t]);
    if (eps != T(0)) {
      T dot = T(0);  // Σ_c w_c z_c
      if (weight)
        for (int64_t c = 0; c < C; ++c) dot += weight[c] * zi[c];
      else
        for (int64_t c = 0; c < C; ++c) dot += zi[c];
      l += share * (wsum * lse - dot);
    }
    loss[i] = l;
    // grad = scale (p s - a), p = exp(z - m) / sum.
    const T s = keep * wt + share * wsum;
    const T f = scale * s / sum;
    for (int64_t c = 0; c < C; ++c) gi[c] *= f;
    if (eps != T(0)) {
      const T ws = scale * share;
      if (weight)
        for (int64_t c = 0; c < C; ++c) gi[c] -= ws * weight[c];
      else
        for (int64_t c = 0; c < C; ++c) gi[c] -= ws;
    }
    gi[t] -= scale * keep * wt;
  };
  // About 20 operations per logit (exp, max, scaling); rows split into contiguous ranges.
  const int nt = threads_for(20.0 * double(N) * double(C), N);
  run_parallel(nt, [&](int part, int parts) {
    int64_t lo, hi;
    split_range(N, parts, part, 1, &lo, &hi);
    for (int64_t i = lo; i < hi; ++i) row(i);
  });
}

template void cross_entropy_forward<float>(const float*, int64_t, int64_t, const int64_t*,
                                           const float*, float, float, float*, float*);
template void cross_entropy_forward<double>(const double*, int64_t, int64_t, const int64_t*,
                                            const double*, double, double, double*, double*);

}  // namespace rnnkit
