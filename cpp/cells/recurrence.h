// The time loop shared by every cell, forward and backward (BPTT).
//
// A cell supplies only its pointwise math (a "Pointwise" type, see lstm.cpp/gru.cpp/rnn.cpp);
// this driver owns everything around it: the length-sorted schedule, the recurrent product per
// step, threads, the state buffers, and the large weight-gradient products after the loop.
//
// Threads: one OpenMP parallel region spans the whole time loop. Thread k owns hidden units
// [j0, j1) — all G gates of those units — for every running row, so the recurrent product for
// its slice and the fused gate update that consumes it need no synchronisation; threads meet at
// one barrier per forward step (two per backward step: dG must be complete before dG·W_hh).
// Every output element is computed by one thread in a fixed order: results are bitwise identical
// for any thread count.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cells/big_products.h"
#include "cells/schedule.h"
#include "kernels/kernels.h"
#include "runtime/buffer.h"
#include "runtime/parallel.h"
#include "runtime/threads.h"

namespace rnnkit {

// Which row a pointwise call works on: sorted row r = batch index b at time index t.
// `first` is true on the first step of the sequence (the one that reads h0/c0); otherwise the
// previous step ran at time index t_prev (t - 1, or t + 1 in reverse).
struct RowRef {
  int64_t r, t, b;
  bool first;
  int64_t t_prev;
};

// Hidden units are split among threads in multiples of this, so SIMD spans stay whole.
constexpr int64_t kUnitAlign = 16;

inline int recurrence_threads(const SeqDims& d, int G) {
  const double flops_per_step = 2.0 * d.B * G * d.H * d.H;
  return threads_for(flops_per_step, (d.H + kUnitAlign - 1) / kUnitAlign);
}

// The input side of a forward, in one of two forms.
//   Training: gx (T, B, G*H) holds x·W_ihᵀ + folded biases for every step, computed by
//     input_side() before the loop; the cell rewrites each row with what it keeps for
//     backward (post-activation gates), so this buffer is the cache.
//   Inference (gx == nullptr): x (T, B, I), w_ih (G*H, I) and bias (G*H, or nullptr) are
//     projected inside the loop, a chunk of steps at a time, by each thread for its own units
//     only: memory stays O(chunk) instead of O(T·B·G·H), the chunk is still in cache when the
//     recurrence reads it, and steps that do not run (past a length) are never projected.
template <class T>
struct ForwardInput {
  T* gx = nullptr;
  const T* x = nullptr;
  const T* w_ih = nullptr;
  const T* bias = nullptr;
};

// Rows per projected chunk in inference: enough for an efficient GEMM, small enough that a
// thread's chunk (rows × its G·H/threads columns) stays in L2/L3.
constexpr int64_t kChunkRows = 128;

// Copies the rows of W (G*H, K) that belong to units j0..j1, gate by gate, into `rows`
// ((G*nj) x K) and packs them as op(B) = rowsᵀ; when the slice is every unit, packs W directly.
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

// Forward over the sequence.
//   y    (T, B, H)  out: h_t; zero where t >= lengths[b]
//   h_n  (B, H)     out: state after each sequence's last step (h0, or 0, if its length is 0)
//   in   the input side (see ForwardInput)
//   h0   (B, H) or nullptr (zeros);  w_hh (G*H, H)
// The cell's forward gets, for units j0..j1 of one row: gx (gate g at gx + g*gx_stride) and gh,
// the recurrent product (gate g at gh + g*(j1-j0)).
template <class T, class Pointwise>
void run_forward(Pointwise& cell, T* y, T* h_n, const ForwardInput<T>& in, const T* h0,
                 const T* w_hh, const SeqDims& d) {
  constexpr int G = Pointwise::G;
  const int64_t B = d.B, H = d.H, I = d.I, GH = G * H;
  const Schedule sch(d);
  if (d.lengths) {
    for (int64_t t = 0; t < d.T; ++t)
      for (int64_t b = 0; b < B; ++b)
        if (t >= d.lengths[b]) std::fill(y + (t * B + b) * H, y + (t * B + b + 1) * H, T(0));
  }
  // Ping-pong hidden state in sorted row order: step s reads one buffer and writes the other.
  std::vector<T> h_state(2 * B * H, T(0));
  for (int64_t r = 0; r < B; ++r)
    if (h0) std::copy(h0 + sch.batch_index(r) * H, h0 + (sch.batch_index(r) + 1) * H,
                      h_state.begin() + r * H);
  cell.begin_forward(sch);

  const PackedGemm<T> pg = packed_gemm_fns<T>();
  const bool chunked = in.gx == nullptr;
  const int64_t chunk_steps = std::max<int64_t>(1, kChunkRows / std::max<int64_t>(B, 1));
  const int64_t step = sch.reverse() ? -1 : 1;  // time offset from one step to the next
  run_parallel(recurrence_threads(d, G), [&](int part, int parts) {
    int64_t j0, j1;
    split_range(H, parts, part, kUnitAlign, &j0, &j1);
    const int64_t nj = j1 - j0, width = G * nj;
    if (nj <= 0) {  // no units for this thread: it only keeps the barrier count
      for (int64_t s = 0; s < sch.steps(); ++s) barrier();
      return;
    }
    // This thread's rows of W_hh (all G gates of units j0..j1), packed once for all steps so
    // they stay in this core's cache. Product column g*nj + (j - j0) is gate g of unit j.
    Buffer<T> packed_hh, packed_ih, gh(B * width), bias, xg, gxc;
    std::vector<int64_t> chunk_offset(chunk_steps);  // first chunk row of each step
    pack_unit_rows(pg, G, H, H, j0, j1, w_hh, packed_hh);
    if (chunked) {
      pack_unit_rows(pg, G, H, I, j0, j1, in.w_ih, packed_ih);
      bias.resize(width);
      for (int g = 0; g < G; ++g)
        for (int64_t j = 0; j < nj; ++j) bias.data()[g * nj + j] = in.bias ? in.bias[g * H + j0 + j] : T(0);
      gxc.resize(chunk_steps * B * width);
      if (d.lengths) xg.resize(chunk_steps * B * I);
    }
    int64_t chunk_begin = 0, chunk_end = 0;
    for (int64_t s = 0; s < sch.steps(); ++s) {
      const int64_t n = sch.active(s);
      if (chunked && s == chunk_end) {  // project the next chunk of steps for these units
        chunk_begin = s;
        chunk_end = std::min(sch.steps(), s + chunk_steps);
        const T* a;
        int64_t rows = 0;
        if (!d.lengths) {  // every row runs: the chunk's x rows are contiguous, time ascending
          const int64_t t_first = sch.reverse() ? d.T - chunk_end : chunk_begin;
          a = in.x + t_first * B * I;
          for (int64_t c = chunk_begin; c < chunk_end; ++c)
            chunk_offset[c - chunk_begin] =
                (sch.reverse() ? chunk_end - 1 - c : c - chunk_begin) * B;
          rows = (chunk_end - chunk_begin) * B;
        } else {  // gather the rows that run, step by step
          for (int64_t c = chunk_begin; c < chunk_end; ++c) {
            chunk_offset[c - chunk_begin] = rows;
            for (int64_t r = 0; r < sch.active(c); ++r, ++rows) {
              const T* src = in.x + (sch.time_of(c, r) * B + sch.batch_index(r)) * I;
              std::copy(src, src + I, xg.data() + rows * I);
            }
          }
          a = xg.data();
        }
        for (int64_t m = 0; m < rows; ++m)
          std::copy(bias.data(), bias.data() + width, gxc.data() + m * width);
        pg.gemm(rows, width, I, a, I, packed_ih.data(), T(1), gxc.data(), width);
      }
      const T* hp = h_state.data() + (s & 1) * B * H;
      T* hn = h_state.data() + ((s + 1) & 1) * B * H;
      pg.gemm(n, width, H, hp, H, packed_hh.data(), T(0), gh.data(), width);
      for (int64_t r = 0; r < n; ++r) {
        const int64_t b = sch.batch_index(r), t = sch.time_of(s, r);
        const RowRef row{r, t, b, s == 0, t - step};
        T* gx_row = chunked ? gxc.data() + (chunk_offset[s - chunk_begin] + r) * width
                            : in.gx + (t * B + b) * GH + j0;
        cell.forward(row, j0, j1, gx_row, chunked ? nj : H, gh.data() + r * width, hp + r * H,
                     hn + r * H);
        std::copy(hn + r * H + j0, hn + r * H + j1, y + (t * B + b) * H + j0);
      }
      barrier();
    }
  });

  for (int64_t r = 0; r < B; ++r) {
    const int64_t b = sch.batch_index(r), len = sch.length(r);
    T* out = h_n + b * H;
    if (len > 0) {
      const T* last = y + (sch.time_of(len - 1, r) * B + b) * H;
      std::copy(last, last + H, out);
    } else if (h0) {
      std::copy(h0 + b * H, h0 + (b + 1) * H, out);
    } else {
      std::fill(out, out + H, T(0));
    }
  }
  cell.end_forward(sch);
}

// Backward through time. Gradients of weights and biases are ADDED to (callers zero them);
// dx and dh0 are overwritten.
//   dx (T, B, I)  dh0 (B, H)  dw_ih (G*H, I)  dw_hh (G*H, H)  db_ih, db_hh (G*H) or nullptr
//   dg (T, B, G*H) workspace: the pre-activation gradient, filled by the loop
//   dy (T, B, H); dh_n (B, H) or nullptr; hs (T, B, H) the forward's y; x (T, B, I);
//   h0 (B, H) or nullptr.
// The loop leaves the input-side gradient in dg (what multiplies W_ih); the cell's
// to_hidden_side(dg) then turns it into the hidden-side one (what multiplies W_hh), in place:
// the two differ only for GRU's n gate, whose hidden part is scaled by r.
template <class T, class Pointwise>
void run_backward(Pointwise& cell, T* dx, T* dh0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh, T* dg,
                  const T* dy, const T* dh_n, const T* hs, const T* x, const T* h0,
                  const T* w_ih, const T* w_hh, const SeqDims& d) {
  constexpr int G = Pointwise::G;
  const int64_t B = d.B, H = d.H, I = d.I, GH = G * H, TB = d.T * d.B;
  const Schedule sch(d);
  if (d.lengths) std::fill(dg, dg + TB * GH, T(0));  // steps that never run have zero gradient
  std::vector<T> dh(B * H, T(0)), dg_step(B * GH), zeros(H, T(0));
  for (int64_t r = 0; r < B; ++r)
    if (dh_n) std::copy(dh_n + sch.batch_index(r) * H, dh_n + (sch.batch_index(r) + 1) * H,
                        dh.begin() + r * H);
  cell.begin_backward(sch);

  const PackedGemm<T> pg = packed_gemm_fns<T>();
  const int64_t back = sch.reverse() ? 1 : -1;  // time offset of the previous step
  run_parallel(recurrence_threads(d, G), [&](int part, int parts) {
    int64_t j0, j1;
    split_range(H, parts, part, kUnitAlign, &j0, &j1);
    const int64_t nj = j1 - j0;
    // Columns j0..j1 of W_hh (G*H x nj), packed once: dh[:, j0:j1] = dG_step · W_hh[:, j0:j1].
    Buffer<T> packed(nj > 0 ? pg.size(GH, nj) : 0);
    if (nj > 0) pg.pack(false, GH, nj, w_hh + j0, H, packed.data());
    for (int64_t s = sch.steps() - 1; s >= 0; --s) {
      const int64_t n = sch.active(s);
      for (int64_t r = 0; r < n && nj > 0; ++r) {
        const int64_t b = sch.batch_index(r), t = sch.time_of(s, r);
        const RowRef row{r, t, b, s == 0, t + back};
        const T* h_prev = s > 0 ? hs + ((t + back) * B + b) * H : (h0 ? h0 + b * H : zeros.data());
        cell.backward(row, j0, j1, h_prev, dy + (t * B + b) * H, dh.data() + r * H,
                      dg_step.data() + r * GH, dg + (t * B + b) * GH);
      }
      barrier();  // dG_step must be complete (all units) before any thread multiplies it
      // dh_{t-1} (+)= dG_t · W_hh for this thread's units; GRU keeps a direct term (beta 1).
      if (nj > 0)
        pg.gemm(n, nj, GH, dg_step.data(), GH, packed.data(),
                Pointwise::kDirectHiddenGrad ? T(1) : T(0), dh.data() + j0, H);
      barrier();  // dh complete before the next step reads it
    }
  });
  for (int64_t r = 0; r < B; ++r)
    std::copy(dh.begin() + r * H, dh.begin() + (r + 1) * H, dh0 + sch.batch_index(r) * H);

  // Input side: dW_ih += dGxᵀ X, db_ih += Σ dGx, dX = dGx · W_ih.
  parallel_gemm(true, false, GH, I, TB, dg, GH, x, I, T(1), dw_ih, I);
  if (db_ih) add_column_sums(db_ih, dg, TB, GH, GH);
  parallel_gemm(false, false, TB, I, GH, dg, GH, w_ih, I, T(0), dx, I);

  cell.to_hidden_side(dg);
  // dW_hh += Σ_t dG_tᵀ h_{t-1}. Inside a sequence h_{t-1} is hs at the neighbouring time index;
  // pairs that reach past a sequence's end multiply zeros (hs and dg are zero there).
  if (d.T > 1) {
    const int64_t K = (d.T - 1) * B;
    if (!sch.reverse())
      parallel_gemm(true, false, GH, H, K, dg + B * GH, GH, hs, H, T(1), dw_hh, H);
    else
      parallel_gemm(true, false, GH, H, K, dg, GH, hs + B * H, H, T(1), dw_hh, H);
  }
  // ... and the first step of every sequence pairs with h0.
  if (h0 && B > 0) {
    const T* first = dg;  // forward direction: every sequence starts at t = 0
    std::vector<T> gathered;
    if (sch.reverse()) {
      gathered.assign(B * GH, T(0));
      for (int64_t r = 0; r < B; ++r)
        if (sch.length(r) > 0) {
          const int64_t b = sch.batch_index(r), t = sch.time_of(0, r);
          std::copy(dg + (t * B + b) * GH, dg + (t * B + b + 1) * GH, gathered.begin() + b * GH);
        }
      first = gathered.data();
    }
    if (d.T > 0) parallel_gemm(true, false, GH, H, B, first, GH, h0, H, T(1), dw_hh, H);
  }
  if (db_hh) add_column_sums(db_hh, dg, TB, GH, GH);
  cell.end_backward(sch);
}

// The input side for run_forward. Training (gates != nullptr): gates (T*B, G*H) =
// x (T*B, I) · w_ihᵀ + bias for all steps at once, one large GEMM. Inference: projected inside
// the loop. `bias` (G*H, or nullptr) must outlive the run_forward call.
template <class T>
ForwardInput<T> input_side(T* gates, const T* x, const T* w_ih, const T* bias, int G,
                           const SeqDims& d) {
  ForwardInput<T> in;
  if (!gates) {
    in.x = x;
    in.w_ih = w_ih;
    in.bias = bias;
    return in;
  }
  const int64_t TB = d.T * d.B, GH = G * d.H;
  if (bias)
    for (int64_t m = 0; m < TB; ++m) std::copy(bias, bias + GH, gates + m * GH);
  parallel_gemm(false, true, TB, GH, d.I, x, d.I, w_ih, d.I, bias ? T(1) : T(0), gates, GH);
  in.gx = gates;
  return in;
}

}  // namespace rnnkit
