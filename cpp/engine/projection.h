// The time loops of a recurrence with a projection: torch's LSTM(proj_size=P), oneDNN's
// projection LSTM.
//   m_t = o_t ⊙ tanh(c_t)  (H)        h_t = W_hr m_t  (P),  W_hr (P, H)
// The recurrent product reads the P-wide h: W_hh is (G*H, P); y and h are P wide, c stays H
// wide. The cell computes m exactly as it computes h without a projection (the LSTM's pointwise
// never reads h_{t-1}), so the projection is the engine's: one more phase per step, after the
// barrier that completes m, in which the threads split the P outputs. Backward mirrors it:
// dm = (dh + dy) · W_hr (by units), the cell's pointwise with dm as the gradient reaching its
// output, then dh_{t-1} = dG · W_hh (by the P columns). Every output element still has one
// writer and a fixed order of operations: bitwise identical for any thread count.
#pragma once
#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "engine/products.h"
#include "engine/schedule.h"
#include "engine/sequence_edges.h"
#include "engine/unit_split.h"
#include "kernels/kernels.h"
#include "runtime/buffer.h"
#include "runtime/parallel.h"

namespace rnnkit {

// Forward. y (T, B, P) at d.y_row; h_n (B, P); h0 (B, P) or nullptr; w_hh (G*H, P);
// w_hr (P, H); m_seq (T, B, H): m_t kept for backward (zero where padded), or nullptr.
template <int G, class T, class Fwd, class MakeInput>
void run_forward_projected(Fwd& cell, T* y, T* h_n, T* m_seq, MakeInput make_input,
                           const T* h0, const T* w_hh, const T* w_hr, const SeqDims& d,
                           const KernelTable& k) {
  const int64_t B = d.B, H = d.H, P = d.P;
  const Schedule sch(d);
  zero_padded_rows(y, d, P);
  if (m_seq && d.lengths)  // backward multiplies all of m_seq by dh_total (zero there)
    for (int64_t t = 0; t < d.T; ++t)
      for (int64_t b = 0; b < B; ++b)
        if (t >= d.lengths[b]) {
          T* row = m_seq + (t * B + b) * H;
          std::fill(row, row + H, T(0));
        }
  Buffer<T> h_state, m;  // h ping-pong (B, P) by sorted row; m (B, H), all units
  h_state.assign(2 * B * P, T(0));
  m.assign(B * H, T(0));
  sch.to_sorted(h0, h_state.data(), P);
  cell.begin(sch);

  const PackedGemm<T> pg = packed_gemm_fns<T>(k);
  const int64_t step = sch.reverse() ? -1 : 1;
  using Input = decltype(make_input(sch, int64_t(0), int64_t(0)));
  Lockstep lockstep;
  run_parallel(recurrence_threads(B, H, G), [&](int part, int parts) {
    Lockstep::Thread sync(lockstep);
    int64_t j0, j1, p0, p1;  // this thread's hidden units, and its outputs of the projection
    split_range(H, parts, part, kUnitAlign, &j0, &j1);
    split_range(P, parts, part, kUnitAlign, &p0, &p1);
    const int64_t nj = j1 - j0, np = p1 - p0, width = G * nj;
    Buffer<T> packed_hh, packed_hr, gh;
    std::optional<Input> in;
    sync.run([&] {
      if (nj > 0) {
        pack_unit_rows(pg, G, H, P, j0, j1, w_hh, packed_hh);  // K = P
        gh.resize(B * width);
        in.emplace(make_input(sch, j0, j1));
      }
      if (np > 0) pack_unit_rows(pg, 1, P, H, p0, p1, w_hr, packed_hr);  // rows p0..p1, K = H
    });
    if (!sync.sync()) return;
    for (int64_t s = 0; s < sch.steps(); ++s) {
      const int64_t n = sch.active(s);
      const T* hp = h_state.data() + (s & 1) * B * P;
      T* hn = h_state.data() + ((s + 1) & 1) * B * P;
      sync.run([&] {  // the gates and m of this thread's units
        if (nj <= 0) return;
        in->prepare(s);
        pg.gemm(n, width, P, hp, P, packed_hh.data(), T(0), gh.data(), width);
        for (int64_t r = 0; r < n; ++r) {
          const int64_t t = sch.time_of(s, r), b = sch.batch_index(r);
          const RowRef row{r, t, b, s == 0, t - step};
          cell.forward(row, j0, j1, in->row(s, r, t, b), in->stride(), gh.data() + r * width,
                       hp + r * P, m.data() + r * H);
          if (m_seq)
            std::copy(m.data() + r * H + j0, m.data() + r * H + j1,
                      m_seq + (t * B + b) * H + j0);
        }
      });
      if (!sync.sync()) return;  // m complete (all units) before any thread projects it
      sync.run([&] {  // h = W_hr m for this thread's outputs
        if (np <= 0) return;
        pg.gemm(n, np, H, m.data(), H, packed_hr.data(), T(0), hn + p0, P);
        for (int64_t r = 0; r < n; ++r)
          std::copy(hn + r * P + p0, hn + r * P + p1,
                    y + d.y_row(sch.time_of(s, r), sch.batch_index(r)) + p0);
      });
      if (!sync.sync()) return;
    }
  });
  lockstep.rethrow();
  write_final_h(h_n, y, h0, sch, d, P);
  cell.end(sch);
}

// Backward: gradients ADDED to dw_ih (G*H, I), dw_hh (G*H, P), dw_hr (P, H), db_*; dx (T,B,I)
// and dh0 (B, P) overwritten. dy (T, B, P); dh_n (B, P) or nullptr; hs (T, B, P) the forward's
// y; m_seq (T, B, H) its m; h0 (B, P) or nullptr; dg (T, B, G*H) workspace.
template <int G, class T, class Bwd>
void run_backward_projected(Bwd& cell, T* dx, T* dh0, T* dw_ih, T* dw_hh, T* dw_hr, T* db_ih,
                            T* db_hh, T* dg, const T* dy, const T* dh_n, const T* hs,
                            const T* m_seq, const T* x, const T* h0, const T* w_ih,
                            const T* w_hh, const T* w_hr, const SeqDims& d,
                            const KernelTable& k) {
  const int64_t B = d.B, H = d.H, P = d.P, GH = G * H, TB = d.T * d.B;
  const Schedule sch(d);
  if (d.lengths) std::fill(dg, dg + TB * GH, T(0));  // steps that never run: zero gradient
  // dh (B, P): the gradient reaching h_t from later steps; dh_total = dh + dy_t, all of it
  // kept (T, B, P) for dW_hr; dm (B, H) reaches m_t; zeros: the cell's dy (all in dm).
  Buffer<T> dh, dh_total, dm, dg_step, dh_seq;
  dh.assign(B * P, T(0));
  dh_total.resize(B * P);
  dm.resize(B * H);
  dg_step.resize(B * GH);
  dh_seq.assign(TB * P, T(0));  // zero where padded: dW_hr multiplies all of it
  std::vector<T> zeros(H, T(0));
  sch.to_sorted(dh_n, dh.data(), P);
  cell.begin(sch);

  const PackedGemm<T> pg = packed_gemm_fns<T>(k);
  Lockstep lockstep;
  run_parallel(recurrence_threads(B, H, G), [&](int part, int parts) {
    Lockstep::Thread sync(lockstep);
    int64_t j0, j1, p0, p1;
    split_range(H, parts, part, kUnitAlign, &j0, &j1);
    split_range(P, parts, part, kUnitAlign, &p0, &p1);
    const int64_t nj = j1 - j0, np = p1 - p0;
    // Columns j0..j1 of W_hr (P x nj): dm[:, j0:j1] = dh_total · W_hr[:, j0:j1]; columns
    // p0..p1 of W_hh (G*H x np): dh[:, p0:p1] = dG_step · W_hh[:, p0:p1].
    Buffer<T> packed_hr, packed_hh;
    sync.run([&] {
      if (nj > 0) {
        packed_hr.resize(pg.size(P, nj));
        pg.pack(false, P, nj, w_hr + j0, H, packed_hr.data());
      }
      if (np > 0) {
        packed_hh.resize(pg.size(GH, np));
        pg.pack(false, GH, np, w_hh + p0, P, packed_hh.data());
      }
    });
    if (!sync.sync()) return;
    for (int64_t s = sch.steps() - 1; s >= 0; --s) {
      const int64_t n = sch.active(s);
      sync.run([&] {  // dh_total = dh + dy_t for this thread's outputs
        for (int64_t r = 0; r < n && np > 0; ++r) {
          const int64_t tb = sch.time_of(s, r) * B + sch.batch_index(r);
          for (int64_t p = p0; p < p1; ++p) {
            const T v = dh.data()[r * P + p] + dy[tb * P + p];
            dh_total.data()[r * P + p] = v;
            dh_seq.data()[tb * P + p] = v;
          }
        }
      });
      if (!sync.sync()) return;
      sync.run([&] {  // dm, then the cell's pointwise, for this thread's units
        if (nj <= 0) return;
        pg.gemm(n, nj, P, dh_total.data(), P, packed_hr.data(), T(0), dm.data() + j0, H);
        for (int64_t r = 0; r < n; ++r) {
          const int64_t t = sch.time_of(s, r), b = sch.batch_index(r);
          const RowRef row{r, t, b, s == 0, t + (sch.reverse() ? 1 : -1)};
          cell.backward(row, j0, j1, zeros.data(), zeros.data(), dm.data() + r * H,
                        dg_step.data() + r * GH, dg + (t * B + b) * GH);
        }
      });
      if (!sync.sync()) return;  // dG_step complete before any thread multiplies it
      sync.run([&] {  // dh_{t-1} = dG_t · W_hh for this thread's outputs
        if (np > 0)
          pg.gemm(n, np, GH, dg_step.data(), GH, packed_hh.data(), T(0), dh.data() + p0, P);
      });
      if (!sync.sync()) return;
    }
  });
  lockstep.rethrow();
  sch.from_sorted(dh.data(), dh0, P);

  add_input_side_grads(d, GH, dg, x, w_ih, dx, dw_ih, db_ih, k);
  cell.to_hidden_side(dg);
  add_recurrent_weight_grad(d, GH, GH, dg, hs, h0, static_cast<const T*>(nullptr), P, dw_hh,
                            k);
  // dW_hr += Σ_t dh_totalᵀ m_t
  add_step_products(d, P, H, dh_seq.data(), P, m_seq, H, dw_hr, H, k);
  if (db_hh) add_bias_grad(d, GH, dg, db_hh);
  cell.end(sch);
}

}  // namespace rnnkit
