// The forward time loop of row-wise cells (cells/cell.h, "Row-wise cells"): cells whose
// pointwise needs all units of a row at once, because statistics over the row (a LayerNorm's
// mean and variance over every gate's product) enter every unit.
//
// Per step, two phases between barriers:
//   1. the whole recurrent product gh (B, G*H) = h·W_hhᵀ, threads splitting its columns (each
//      packs its rows of W_hh once, so they stay in its core's cache, as in recurrence.h);
//   2. the pointwise, threads splitting the rows: one thread computes a row's statistics and
//      every unit of it, so nothing is summed across threads and the bits do not depend on
//      the thread count.
// The backward loop is run_backward (recurrence.h) with kRowWise: its pointwise phase splits
// rows instead of units, and each step ends with the cell's reduce_step.
#pragma once
#include <algorithm>
#include <cstdint>

#include "engine/products.h"
#include "engine/regularizers.h"
#include "engine/schedule.h"
#include "engine/sequence_edges.h"
#include "engine/unit_split.h"
#include "kernels/kernels.h"
#include "runtime/buffer.h"
#include "runtime/parallel.h"
#include "runtime/threads.h"

namespace rnnkit {

// gx (T*B, GH) = x · w_ihᵀ, raw (no bias), for x in any row layout of d (inference takes
// batch-first views): one large GEMM when x is time-major contiguous, else one per step.
template <class T>
void raw_input_products(T* gx, const T* x, const T* w_ih, int64_t GH, const SeqDims& d,
                        const KernelTable& k) {
  if (d.x_time_major_contiguous()) {
    parallel_gemm(false, true, d.T * d.B, GH, d.I, x, d.I, w_ih, d.I, T(0), gx, GH, k);
    return;
  }
  for (int64_t t = 0; t < d.T; ++t)
    parallel_gemm(false, true, d.B, GH, d.I, x + t * d.x_t, d.x_b, w_ih, d.I, T(0),
                  gx + t * d.B * GH, GH, k);
}

// Forward over the sequence for a row-wise cell. gx (T, B, G*H): the raw input products of
// every step (raw_input_products); the other arguments as run_forward's.
template <int G, class T, class Fwd>
void run_forward_row_wise(Fwd& cell, T* y, T* h_n, T* gx, const T* h0, const T* w_hh,
                          const Regularizers<T>& reg, const SeqDims& d, const KernelTable& k) {
  const int64_t B = d.B, H = d.H, GH = G * H;
  const Schedule sch(d);
  zero_padded_rows(y, d, H);
  RecurrentState<T> state(h0, sch, B, H, reg);  // as run_forward's
  Buffer<T> gh(B * GH);  // the step's recurrent product, sorted rows; the cells' scratch after
  cell.begin(sch);

  const PackedGemm<T> pg = packed_gemm_fns<T>(k);
  const int64_t step = sch.reverse() ? -1 : 1;
  Lockstep lockstep;
  run_parallel(recurrence_threads(B, H, G), [&](int part, int parts) {
    Lockstep::Thread sync(lockstep);
    int64_t c0, c1;  // this thread's columns of gh (rows of W_hh), whole SIMD spans
    split_range(GH, parts, part, kUnitAlign, &c0, &c1);
    Buffer<T> packed;
    sync.run([&] {
      if (c1 > c0) pack_unit_rows(pg, 1, GH, H, c0, c1, w_hh, packed);
    });
    if (!sync.sync()) return;
    for (int64_t s = 0; s < sch.steps(); ++s) {
      const int64_t n = sch.active(s);
      const T* hp = state.prev(s);
      T* hn = state.next(s);
      const T* operand = state.operand(s);
      sync.run([&] {
        if (c1 > c0)
          pg.gemm(n, c1 - c0, H, operand, H, packed.data(), T(0), gh.data() + c0, GH);
      });
      if (!sync.sync()) return;  // gh complete before any row's statistics
      sync.run([&] {
        int64_t r0, r1;
        split_range(n, parts, part, 1, &r0, &r1);
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t t = sch.time_of(s, r), b = sch.batch_index(r);
          const RowRef row{r, t, b, s == 0, t - step};
          cell.forward(row, 0, H, gx + (t * B + b) * GH, H, gh.data() + r * GH, hp + r * H,
                       hn + r * H);
          state.finish(s, r, t, b, 0, H);
          std::copy(hn + r * H, hn + (r + 1) * H, y + d.y_row(t, b));
        }
      });
      if (!sync.sync()) return;  // h_t complete before the next product reads it
    }
  });
  lockstep.rethrow();
  write_final_h(h_n, y, h0, sch, d, H);
  cell.end(sch);
}

}  // namespace rnnkit
