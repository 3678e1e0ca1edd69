// The order in which the weight gradients of a sequence are summed.
//
// A weight gradient is a sum over every (step, row) of a sequence (dW_hh = Σ dG_tᵀ h_{t-1}, ...).
// It is summed in blocks of whole steps, one product (or column sum) per block, aligned at
// t = 0 and visited in the order the backward reaches them: the last block first for a forward
// sequence, the first block first in reverse. So a sequence cut into pieces at block boundaries
// and backpropagated piece after piece (the recomputing layers of rnnkit.ops.checkpointed, which
// keep only the states at those boundaries) adds exactly the same products in exactly the same
// order as one backward over the whole sequence: its gradients are bitwise equal.
//
// A block spans at least kGradBlockRows rows (two of the GEMMs' 256-deep slabs), so the
// products stay as efficient as one product over all T·B rows: the GEMM reads and writes C once
// per slab either way.
#pragma once
#include <algorithm>
#include <cstdint>

#include "engine/seq_dims.h"

namespace rnnkit {

constexpr int64_t kGradBlockRows = 512;

// Steps per block for a batch of B rows.
inline int64_t grad_block_steps(int64_t B) {
  const int64_t rows = std::max<int64_t>(B, 1);
  return std::max<int64_t>(1, (kGradBlockRows + rows - 1) / rows);
}

// fn(t0, t1) for each block of steps [t0, t1) of 0..T, in the backward's order (see above).
template <class Fn>
void for_grad_blocks(int64_t T, int64_t B, bool reverse, Fn fn) {
  const int64_t R = grad_block_steps(B), n = (T + R - 1) / R;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = reverse ? i : n - 1 - i;
    fn(k * R, std::min(T, (k + 1) * R));
  }
}

// out ((t1-t0)*B, width): the state that row (t, b) of steps t0..t1 multiplied in the
// recurrent product: its neighbour in hs (T, B, width) in the direction of travel, h0 (B,
// width; nullptr: zeros) at the sequence's first step, zeros past its end (where dG is zero);
// times the recurrent-dropout mask m (B, width) when given (nullptr: none).
template <class T>
void previous_states(const SeqDims& d, int64_t t0, int64_t t1, const T* hs, const T* h0,
                     const T* m, int64_t width, T* out) {
  const int64_t B = d.B;
  for (int64_t t = t0; t < t1; ++t)
    for (int64_t b = 0; b < B; ++b) {
      T* row = out + ((t - t0) * B + b) * width;
      const int64_t len = d.lengths ? d.lengths[b] : d.T;
      const bool first = d.reverse ? t == len - 1 : t == 0;
      const T* src = nullptr;
      if (t < len) src = first ? h0 : hs + ((d.reverse ? t + 1 : t - 1) * B) * width;
      if (!src) {
        std::fill(row, row + width, T(0));
        continue;
      }
      src += b * width;
      if (m) {
        const T* mb = m + b * width;
        for (int64_t j = 0; j < width; ++j) row[j] = src[j] * mb[j];
      } else {
        std::copy(src, src + width, row);
      }
    }
}

}  // namespace rnnkit
