// The time loops shared by every cell, forward and backward (BPTT).
//
// A cell supplies only its pointwise math (cells/cell.h); these loops own everything around it:
// the length-sorted schedule, the recurrent product per step, threads, the state buffers, and
// the large weight-gradient products after the backward loop.
//
// Threads: one OpenMP parallel region spans the whole time loop. Thread k owns hidden units
// [j0, j1) — all G gates of those units — for every running row, so the recurrent product for
// its slice and the fused gate update that consumes it need no synchronisation; threads meet at
// one barrier per forward step (two per backward step: dG must be complete before dG·W_hh).
// Every output element is computed by one thread in a fixed order: results are bitwise identical
// for any thread count. Work between barriers runs through a Lockstep (runtime/parallel.h), so an
// allocation failure in one thread ends the loop on every thread and reaches the caller as
// std::bad_alloc instead of terminating the process.
#pragma once
#include <algorithm>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <vector>

#include "engine/padding.h"
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

// The input side of a training forward: gx (T, B, G*H) holds x·W_ihᵀ + folded biases for every
// step, computed before the loop (input_projection below). The cell rewrites each row with what
// it keeps for backward (post-activation gates), so this buffer is the cache.
template <class T>
struct PrecomputedInput {
  T* gx;
  int64_t B, GH, H, j0;
  void prepare(int64_t /*s*/) {}
  T* row(int64_t /*s*/, int64_t /*r*/, int64_t t, int64_t b) { return gx + (t * B + b) * GH + j0; }
  int64_t stride() const { return H; }
};

// gx (T*B, G*H) = x (T*B, I) · w_ihᵀ + bias, one large GEMM. bias (G*H) or nullptr.
template <class T>
void input_projection(T* gx, const T* x, const T* w_ih, const T* bias, int G, const SeqDims& d,
                      const KernelTable& k) {
  const int64_t TB = d.T * d.B, GH = G * d.H;
  if (bias)
    for (int64_t m = 0; m < TB; ++m) std::copy(bias, bias + GH, gx + m * GH);
  parallel_gemm(false, true, TB, GH, d.I, x, d.I, w_ih, d.I, bias ? T(1) : T(0), gx, GH, k);
}

// Forward over the sequence.
//   y    (T, B, H)  out: h_t; zero where t >= lengths[b]; rows where d.y_row says
//   h_n  (B, H)     out: state after each sequence's last step (h0, or 0, if its length is 0)
//   h0   (B, H) or nullptr (zeros);  w_hh (G*H, H)
//   make_input(schedule, j0, j1): this thread's input side for units j0..j1, an object with
//     prepare(s), row(s, r, t, b) and stride() (PrecomputedInput, or ChunkedProjection in
//     engine/inference.h); it may allocate.
// HG < G: a two-phase cell (cells/cell.h): gates < HG first, then the others' rows of W_hh
// multiply the operand u the first phase wrote, after a second barrier.
// reg: recurrent dropout and zoneout (engine/regularizers.h; no recurrent mask for two phases).
template <int G, int HG, class T, class Fwd, class MakeInput>
void run_forward(Fwd& cell, T* y, T* h_n, MakeInput make_input, const T* h0, const T* w_hh,
                 const Regularizers<T>& reg, const SeqDims& d, const KernelTable& k) {
  static_assert(0 < HG && HG <= G, "kHGates must be in [1, G]");
  constexpr bool kTwoPhase = HG < G;
  const int64_t B = d.B, H = d.H;
  const Schedule sch(d);
  if (kTwoPhase && reg.recurrent_mask)
    throw std::invalid_argument("recurrent dropout is not supported by two-phase cells");
  zero_padded_rows(y, d, H);
  RecurrentState<T> state(h0, sch, B, H, reg);  // h by sorted row, ping-pong (regularizers.h)
  Buffer<T> u;  // two phases: the first phase's operand for the other gates, sorted rows
  if (kTwoPhase) u.assign(B * H, T(0));
  cell.begin(sch);

  const PackedGemm<T> pg = packed_gemm_fns<T>(k);
  const int64_t step = sch.reverse() ? -1 : 1;  // time offset from one step to the next
  using Input = decltype(make_input(sch, int64_t(0), int64_t(0)));
  Lockstep lockstep;
  run_parallel(recurrence_threads(B, H, G), [&](int part, int parts) {
    Lockstep::Thread sync(lockstep);
    int64_t j0, j1;
    split_range(H, parts, part, kUnitAlign, &j0, &j1);
    // nj <= 0: this thread only keeps the barriers. Widths of the products of h (gates < HG)
    // and, for two phases, of u (the other gates).
    const int64_t nj = j1 - j0, width_h = HG * nj, width_u = (G - HG) * nj;
    // This thread's rows of W_hh (every gate of units j0..j1), packed once for all steps so
    // they stay in this core's cache. Product column g*nj + (j - j0) is gate g of unit j (of
    // gate g - HG in the product of u).
    Buffer<T> packed_hh, packed_uh, gh;
    std::optional<Input> in;
    sync.run([&] {
      if (nj <= 0) return;
      pack_unit_rows(pg, HG, H, H, j0, j1, w_hh, packed_hh);
      if (kTwoPhase) pack_unit_rows(pg, G - HG, H, H, j0, j1, w_hh + HG * H * H, packed_uh);
      gh.resize(B * std::max(width_h, width_u));
      in.emplace(make_input(sch, j0, j1));
    });
    if (!sync.sync()) return;
    for (int64_t s = 0; s < sch.steps(); ++s) {
      const int64_t n = sch.active(s);
      const T* hp = state.prev(s);
      T* hn = state.next(s);
      const T* operand = state.operand(s);  // h, or h ⊙ m with recurrent dropout
      auto row_at = [&](int64_t r) {
        const int64_t t = sch.time_of(s, r);
        return RowRef{r, t, sch.batch_index(r), s == 0, t - step};
      };
      if constexpr (kTwoPhase) {
        sync.run([&] {
          if (nj <= 0) return;
          in->prepare(s);
          pg.gemm(n, width_h, H, hp, H, packed_hh.data(), T(0), gh.data(), width_h);
          for (int64_t r = 0; r < n; ++r) {
            const RowRef row = row_at(r);
            cell.forward_first(row, j0, j1, in->row(s, r, row.t, row.b), in->stride(),
                               gh.data() + r * width_h, hp + r * H, u.data() + r * H);
          }
        });
        if (!sync.sync()) return;  // u complete (all units) before any thread multiplies it
      }
      sync.run([&] {
        if (nj <= 0) return;
        if (!kTwoPhase) in->prepare(s);
        const int64_t width = kTwoPhase ? width_u : width_h;
        pg.gemm(n, width, H, kTwoPhase ? u.data() : operand, H,
                kTwoPhase ? packed_uh.data() : packed_hh.data(), T(0), gh.data(), width);
        for (int64_t r = 0; r < n; ++r) {
          const RowRef row = row_at(r);
          cell.forward(row, j0, j1, in->row(s, r, row.t, row.b), in->stride(),
                       gh.data() + r * width, hp + r * H, hn + r * H);
          state.finish(s, r, row.t, row.b, j0, j1);  // zoneout; the masked copy
          std::copy(hn + r * H + j0, hn + r * H + j1, y + d.y_row(row.t, row.b) + j0);
        }
      });
      if (!sync.sync()) return;
    }
  });
  lockstep.rethrow();
  write_final_h(h_n, y, h0, sch, d, H);
  cell.end(sch);
}

// Backward through time. Gradients of weights and biases are ADDED to (callers zero them);
// dx and dh0 are overwritten.
//   dx (T, B, I)  dh0 (B, H)  dw_ih (G*H, I)  dw_hh (G*H, H)  db_ih, db_hh (G*H) or nullptr
//   dg (T, B, G*H) workspace: the pre-activation gradient, filled by the loop
//   dy (T, B, H); dh_n (B, H) or nullptr; hs (T, B, H) the forward's y; x (T, B, I);
//   h0 (B, H) or nullptr; u (T, B, H): a two-phase cell's saved operand (HG < G), else
//   nullptr.
// The loop leaves the input-side gradient in dg (what multiplies W_ih); the cell's
// to_hidden_side(dg) then turns it into the hidden-side one (what multiplies W_hh), in place.
// kRowWise: a row-wise cell (cells/cell.h, engine/row_wise.h): each thread runs the pointwise
// of whole rows instead of its units of every row, and after each step's dh product the cell's
// reduce_step(n, j0, j1) sums what the step gave its parameters, on the thread owning j0..j1.
template <int G, int HG, bool kDirectHiddenGrad, bool kRowWise, class T, class Bwd>
void run_backward(Bwd& cell, T* dx, T* dh0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh, T* dg,
                  const T* dy, const T* dh_n, const T* hs, const T* x, const T* h0,
                  const T* u, const T* w_ih, const T* w_hh, const Regularizers<T>& reg,
                  const SeqDims& d, const KernelTable& k) {
  constexpr bool kTwoPhase = HG < G;
  static_assert(!kTwoPhase || kDirectHiddenGrad,
                "a two-phase cell adds to dh_{t-1} itself (backward_second)");
  // GHh: the rows of W_hh (and columns of dG) that multiply h; the rest multiply u.
  const int64_t B = d.B, H = d.H, I = d.I, GH = G * H, GHh = HG * H, TB = d.T * d.B;
  const Schedule sch(d);
  if (d.lengths) std::fill(dg, dg + TB * GH, T(0));  // steps that never run have zero gradient
  // Per-row state written by several threads (by units): 64-byte aligned, see runtime/buffer.h.
  Buffer<T> dh, dg_step, du;
  dh.assign(B * H, T(0));
  dg_step.resize(B * GH);
  if (kTwoPhase) du.resize(B * H);
  std::vector<T> zeros(H, T(0));
  sch.to_sorted(dh_n, dh.data(), H);
  if (kTwoPhase && reg.recurrent_mask)
    throw std::invalid_argument("recurrent dropout is not supported by two-phase cells");
  // Zoneout: its direct share of dh_{t-1} per sorted row; recurrent dropout: the mask and
  // the unmasked product dG·W_hh before the mask applies.
  const bool zoned = reg.zoned();
  const Buffer<T> mask = sorted_mask(reg, sch, B, H);
  Buffer<T> direct, dh_product;
  if (zoned) direct.resize(B * H);
  if (reg.recurrent_mask) dh_product.resize(B * H);
  // dh (+)= dG·W_hh adds to what the pointwise left in dh: a direct term of the cell or of
  // zoneout.
  const T beta = (kDirectHiddenGrad || zoned) ? T(1) : T(0);
  cell.begin(sch);

  const PackedGemm<T> pg = packed_gemm_fns<T>(k);
  const int64_t back = sch.reverse() ? 1 : -1;  // time offset of the previous step
  Lockstep lockstep;
  run_parallel(recurrence_threads(B, H, G), [&](int part, int parts) {
    Lockstep::Thread sync(lockstep);
    int64_t j0, j1;
    split_range(H, parts, part, kUnitAlign, &j0, &j1);
    const int64_t nj = j1 - j0;
    // Columns j0..j1 of W_hh (GHh x nj), packed once: dh[:, j0:j1] = dG_step · W_hh[:, j0:j1].
    // Two phases: the other rows too, for du[:, j0:j1] = dG_late · W_hh[late rows, j0:j1].
    Buffer<T> packed, packed_u;
    sync.run([&] {
      if (nj <= 0) return;
      packed.resize(pg.size(GHh, nj));
      pg.pack(false, GHh, nj, w_hh + j0, H, packed.data());
      if (kTwoPhase) {
        packed_u.resize(pg.size(GH - GHh, nj));
        pg.pack(false, GH - GHh, nj, w_hh + GHh * H + j0, H, packed_u.data());
      }
    });
    if (!sync.sync()) return;
    for (int64_t s = sch.steps() - 1; s >= 0; --s) {
      const int64_t n = sch.active(s);
      auto row_at = [&](int64_t r) {
        const int64_t t = sch.time_of(s, r);
        return RowRef{r, t, sch.batch_index(r), s == 0, t + back};
      };
      auto h_prev_of = [&](const RowRef& row) {
        return s > 0 ? hs + (row.t_prev * B + row.b) * H
                     : (h0 ? h0 + row.b * H : zeros.data());
      };
      sync.run([&] {
        auto pointwise = [&](int64_t r, int64_t u0, int64_t u1) {
          const RowRef row = row_at(r);
          const int64_t tb = row.t * B + row.b;
          T* dhr = dh.data() + r * H;
          const T* dyr = dy + tb * H;
          if (zoned) {  // the cell sees (1 - z) ⊙ (dh + dy) as its output's gradient
            reg.unzone(row.t, row.b, B, H, u0, u1, dhr, dyr, direct.data() + r * H);
            dyr = zeros.data();
          }
          cell.backward(row, u0, u1, h_prev_of(row), dyr, dhr, dg_step.data() + r * GH,
                        dg + tb * GH);
          if (zoned)
            for (int64_t j = u0; j < u1; ++j)
              dhr[j] = (kDirectHiddenGrad ? dhr[j] : T(0)) + direct.data()[r * H + j];
        };
        if constexpr (kRowWise) {  // whole rows: r0..r1 of this step's n
          int64_t r0, r1;
          split_range(n, parts, part, 1, &r0, &r1);
          for (int64_t r = r0; r < r1; ++r) pointwise(r, 0, H);
        } else {
          for (int64_t r = 0; r < n && nj > 0; ++r) pointwise(r, j0, j1);
        }
      });
      // dG_step must be complete (all units) before any thread multiplies it.
      if (!sync.sync()) return;
      if constexpr (kTwoPhase) {
        // du[:, j0:j1] = dG_late · W_hh[late rows, j0:j1]; the cell turns it into the early
        // gates' dG and u's direct term of dh_{t-1}.
        sync.run([&] {
          if (nj <= 0) return;
          pg.gemm(n, nj, GH - GHh, dg_step.data() + GHh, GH, packed_u.data(), T(0),
                  du.data() + j0, H);
          for (int64_t r = 0; r < n; ++r) {
            const RowRef row = row_at(r);
            cell.backward_second(row, j0, j1, h_prev_of(row), du.data() + r * H,
                                 dh.data() + r * H, dg_step.data() + r * GH,
                                 dg + (row.t * B + row.b) * GH);
          }
        });
        if (!sync.sync()) return;  // the early gates' dG_step complete
      }
      // dh_{t-1} (+)= dG_t · W_hh for this thread's units; GRU keeps a direct term (beta 1).
      sync.run([&] {
        if (nj <= 0) return;
        if (reg.recurrent_mask) {  // the product saw h ⊙ m: its gradient reaches h through m
          pg.gemm(n, nj, GHh, dg_step.data(), GH, packed.data(), T(0), dh_product.data() + j0,
                  H);
          for (int64_t r = 0; r < n; ++r)
            for (int64_t j = j0; j < j1; ++j) {
              const int64_t e = r * H + j;
              dh.data()[e] = beta * dh.data()[e] + dh_product.data()[e] * mask.data()[e];
            }
        } else {
          pg.gemm(n, nj, GHh, dg_step.data(), GH, packed.data(), beta, dh.data() + j0, H);
        }
        if constexpr (kRowWise) cell.reduce_step(n, j0, j1);
      });
      if (!sync.sync()) return;  // dh complete before the next step reads it
    }
  });
  lockstep.rethrow();
  sch.from_sorted(dh.data(), dh0, H);

  add_input_side_grads(d, GH, dg, x, w_ih, dx, dw_ih, db_ih, k);

  cell.to_hidden_side(dg);
  // dW_hh += Σ_t dG_tᵀ h_{t-1} (h_{t-1} ⊙ m with recurrent dropout) for the rows that
  // multiply h, and, for two phases, the late rows, which multiplied u_t, formed at step t
  // itself (zero where padded).
  add_recurrent_weight_grad(d, GHh, GH, dg, hs, h0, reg.recurrent_mask, H, dw_hh, k);
  if (kTwoPhase) add_step_products(d, GH - GHh, H, dg + GHh, GH, u, H, dw_hh + GHh * H, H, k);
  if (db_hh) add_bias_grad(d, GH, dg, db_hh);
  cell.end(sch);
}

}  // namespace rnnkit
