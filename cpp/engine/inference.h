// The input side of an inference forward: x·W_ihᵀ + bias projected inside the time loop, a chunk
// of steps at a time, by each thread for its own units only. Memory stays O(chunk) instead of
// O(T·B·G·H), the chunk is still in cache when the recurrence reads it, and steps that do not
// run (past a length) are never projected. (Training instead projects every step before the
// loop into the buffer backward keeps: PrecomputedInput in engine/recurrence.h.)
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/schedule.h"
#include "engine/unit_split.h"
#include "kernels/kernels.h"
#include "runtime/buffer.h"

namespace rnnkit {

// Rows per projected chunk: enough for an efficient GEMM, small enough that a thread's chunk
// (rows × its G·H/threads columns) stays in L2/L3.
constexpr int64_t kChunkRows = 128;

// One thread's projection for units j0..j1. Construction packs its rows of W_ih and allocates
// (it may throw); prepare() and row() do not allocate.
template <class T>
class ChunkedProjection {
 public:
  // x (T,B,I), w_ih (G*H, I), bias (G*H) or nullptr: the bias folded into the projection.
  ChunkedProjection(const PackedGemm<T>& pg, const Schedule& sch, const SeqDims& d, int G,
                    int64_t j0, int64_t j1, const T* x, const T* w_ih, const T* bias)
      : pg_(pg), sch_(sch), d_(d), x_(x), width_(G * (j1 - j0)), nj_(j1 - j0),
        chunk_steps_(std::max<int64_t>(1, kChunkRows / std::max<int64_t>(d.B, 1))),
        chunk_offset_(chunk_steps_) {
    pack_unit_rows(pg, G, d.H, d.I, j0, j1, w_ih, packed_ih_);
    unit_bias(G, d.H, j0, j1, bias, bias_);
    gxc_.resize(chunk_steps_ * d.B * width_);
    if (d.lengths || !d.x_time_major_contiguous()) xg_.resize(chunk_steps_ * d.B * d.I);
  }

  // At the first step of each chunk, projects that chunk's running rows.
  void prepare(int64_t s) {
    if (s != chunk_end_) return;
    const int64_t B = d_.B, I = d_.I;
    chunk_begin_ = s;
    chunk_end_ = std::min(sch_.steps(), s + chunk_steps_);
    const T* a;
    int64_t rows = 0;
    if (!d_.lengths && d_.x_time_major_contiguous()) {
      // every row runs and x is (T, B, I): the chunk's rows are contiguous, time ascending
      const int64_t t_first = sch_.reverse() ? d_.T - chunk_end_ : chunk_begin_;
      a = x_ + t_first * B * I;
      for (int64_t c = chunk_begin_; c < chunk_end_; ++c)
        chunk_offset_[c - chunk_begin_] =
            (sch_.reverse() ? chunk_end_ - 1 - c : c - chunk_begin_) * B;
      rows = (chunk_end_ - chunk_begin_) * B;
    } else {  // gather the rows that run, step by step
      for (int64_t c = chunk_begin_; c < chunk_end_; ++c) {
        chunk_offset_[c - chunk_begin_] = rows;
        for (int64_t r = 0; r < sch_.active(c); ++r, ++rows) {
          const T* src = x_ + d_.x_row(sch_.time_of(c, r), sch_.batch_index(r));
          std::copy(src, src + I, xg_.data() + rows * I);
        }
      }
      a = xg_.data();
    }
    for (int64_t m = 0; m < rows; ++m)
      std::copy(bias_.data(), bias_.data() + width_, gxc_.data() + m * width_);
    pg_.gemm(rows, width_, I, a, I, packed_ih_.data(), T(1), gxc_.data(), width_);
  }

  // The projected gate inputs of sorted row r at step s (gate g at row + g*stride()).
  T* row(int64_t s, int64_t r, int64_t /*t*/, int64_t /*b*/) {
    return gxc_.data() + (chunk_offset_[s - chunk_begin_] + r) * width_;
  }
  int64_t stride() const { return nj_; }

 private:
  PackedGemm<T> pg_;
  const Schedule& sch_;
  const SeqDims& d_;
  const T* x_;
  int64_t width_, nj_, chunk_steps_;
  Buffer<T> packed_ih_, bias_, xg_, gxc_;
  std::vector<int64_t> chunk_offset_;  // first chunk row of each step of the chunk
  int64_t chunk_begin_ = 0, chunk_end_ = 0;
};

}  // namespace rnnkit
