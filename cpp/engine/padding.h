// Steps past a sequence's end (t >= lengths[b]) never run: their rows of the pre-activation
// gradient dG are zero. But 0 · NaN is NaN, so a non-finite value left in x's padding would
// still reach dW_ih = dGᵀ X through the one large product over all T·B rows. Padding is almost
// always finite (zeros), so the padding alone is scanned, and x is copied (padding zeroed) only
// when it holds a non-finite value: padded steps influence nothing, at the cost of one pass over
// the padding.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "engine/seq_dims.h"
#include "runtime/buffer.h"

namespace rnnkit {

// x (T, B, I), time-major contiguous. Returns x itself, or `copy` holding x with its padded rows
// zeroed.
template <class T>
const T* x_with_finite_padding(const T* x, const SeqDims& d, Buffer<T>& copy) {
  if (!d.lengths) return x;
  const int64_t B = d.B, I = d.I;
  auto padded = [&](int64_t t, int64_t b) { return t >= d.lengths[b]; };
  bool finite = true;
  for (int64_t t = 0; t < d.T && finite; ++t)
    for (int64_t b = 0; b < B && finite; ++b) {
      if (!padded(t, b)) continue;
      const T* row = x + (t * B + b) * I;
      // v·0 is 0 for finite v and NaN for inf or NaN (no -ffast-math here), so one sum
      // per row tells, without a branch per element.
      T sum = T(0);
      for (int64_t i = 0; i < I; ++i) sum += row[i] * T(0);
      finite = std::isfinite(sum);
    }
  if (finite) return x;
  copy.resize(d.T * B * I);
  std::copy(x, x + d.T * B * I, copy.data());
  for (int64_t t = 0; t < d.T; ++t)
    for (int64_t b = 0; b < B; ++b)
      if (padded(t, b)) {
        T* row = copy.data() + (t * B + b) * I;
        std::fill(row, row + I, T(0));
      }
  return copy.data();
}

}  // namespace rnnkit
