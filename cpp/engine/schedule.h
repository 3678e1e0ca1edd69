// The order in which a batch of variable-length sequences is stepped.
//
// Rows are visited sorted by length, longest first (a permutation of batch indices, the user's
// data is never copied). At processing step s only the leading active[s] sorted rows still run,
// so a finished sequence costs nothing and the rows that run are always a contiguous block of the
// state matrices, which keeps the per-step product one dense GEMM.
#pragma once
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "engine/seq_dims.h"

namespace rnnkit {

class Schedule {
 public:
  explicit Schedule(const SeqDims& d) : reverse_(d.reverse) {
    order_.resize(d.B);
    std::iota(order_.begin(), order_.end(), int64_t{0});
    len_.assign(d.B, d.T);
    if (d.lengths) {
      // Stable, so equal lengths keep batch order and the schedule is fully deterministic.
      std::stable_sort(order_.begin(), order_.end(),
                       [&](int64_t a, int64_t b) { return d.lengths[a] > d.lengths[b]; });
      for (int64_t r = 0; r < d.B; ++r) len_[r] = d.lengths[order_[r]];
    }
    steps_ = d.B > 0 ? len_[0] : 0;
    active_.assign(steps_, 0);
    for (int64_t r = 0; r < d.B; ++r)
      for (int64_t s = 0; s < len_[r]; ++s) active_[s] = r + 1;
  }

  int64_t steps() const { return steps_; }                 // longest length
  int64_t active(int64_t s) const { return active_[s]; }  // rows running at step s
  int64_t batch_index(int64_t r) const { return order_[r]; }
  int64_t length(int64_t r) const { return len_[r]; }
  // Time index that sorted row r processes at step s (s < length(r)).
  int64_t time_of(int64_t s, int64_t r) const { return reverse_ ? len_[r] - 1 - s : s; }
  bool reverse() const { return reverse_; }

  // Per-row arrays (B, width) between batch order (the caller's) and sorted-row order (the
  // loops'): to_sorted(src, dst) reads src's row batch_index(r) into dst's row r (src nullptr:
  // dst unchanged); from_sorted is the inverse.
  template <class T>
  void to_sorted(const T* src, T* dst, int64_t width) const {
    if (!src) return;
    for (size_t r = 0; r < order_.size(); ++r)
      std::copy(src + order_[r] * width, src + (order_[r] + 1) * width, dst + r * width);
  }
  template <class T>
  void from_sorted(const T* src, T* dst, int64_t width) const {
    for (size_t r = 0; r < order_.size(); ++r)
      std::copy(src + r * width, src + (r + 1) * width, dst + order_[r] * width);
  }

 private:
  bool reverse_;
  std::vector<int64_t> order_, len_, active_;
  int64_t steps_ = 0;
};

}  // namespace rnnkit
