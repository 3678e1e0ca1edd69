// One time step of a cell for a whole batch, with weights packed once and reused across calls:
// the fast path for streaming inference and generation (LSTMCell & co. in eval mode).
//
// Shape legend as in the cell headers: B batch, I input, H hidden, G gates.
// The weights are split among threads by hidden units exactly like the sequence kernels, so the
// same pointwise math runs on the same slices; each thread's two packed panels (its rows of
// W_ih and W_hh) stay in its own core's cache between calls. Packing is specific to one kernel
// table, so the object keeps the table it packed for and steps with it, whatever kernels() says
// later.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cells/cell.h"
#include "engine/unit_split.h"
#include "kernels/kernels.h"
#include "runtime/buffer.h"
#include "runtime/parallel.h"
#include "runtime/threads.h"

namespace rnnkit {

// Typical per-core L2 of current x86 server cores (Zen 4/5: 1 MiB, Sapphire Rapids: 2 MiB).
constexpr double kL2BytesPerCore = 1 << 20;

template <class T>
class StepWeights {
 public:
  // w (torch layout, see CellWeights); bias_x (G*H) or nullptr: the bias added to x·W_ihᵀ (the
  // cell decides what folds into it). b_hh is kept too, for the cells that apply part of it
  // themselves (GRU's b_hn). Arrays are copied: the caller may free or change them afterwards.
  StepWeights(int G, int64_t I, int64_t H, const CellWeights<T>& w, const T* bias_x)
      : G_(G), I_(I), H_(H), table_(&kernels()) {
    // A step reads every weight once and does little arithmetic with it, so it is bound by
    // where the weights live: split them over the cores as soon as they outgrow one core's L2
    // (each core then keeps its half in its own cache between calls), else by arithmetic.
    const double weight_bytes = double(G) * H * (I + H) * sizeof(T);
    const int64_t parts = (H + kUnitAlign - 1) / kUnitAlign;
    const int nt = weight_bytes > kL2BytesPerCore / 2
                       ? std::min<int64_t>(get_num_threads(), parts)
                       : threads_for(2.0 * G * H * (I + H), parts);
    const PackedGemm<T> pg = packed_gemm_fns<T>(*table_);
    slices_.resize(nt);
    for (int k = 0; k < nt; ++k) {
      Slice& s = slices_[k];
      split_range(H, nt, k, kUnitAlign, &s.j0, &s.j1);
      if (s.j1 - s.j0 <= 0) continue;
      pack_unit_rows(pg, G, H, I, s.j0, s.j1, w.w_ih, s.packed_ih);
      pack_unit_rows(pg, G, H, H, s.j0, s.j1, w.w_hh, s.packed_hh);
      unit_bias(G, H, s.j0, s.j1, bias_x, s.bias);
    }
    if (w.b_hh) b_hh_.assign(w.b_hh, w.b_hh + G * H);
  }

  int gates() const { return G_; }
  int64_t input_size() const { return I_; }
  int64_t hidden_size() const { return H_; }
  const T* b_hh() const { return b_hh_.empty() ? nullptr : b_hh_.data(); }
  const KernelTable& table() const { return *table_; }

  // h_out (B,H) = cell(x (B,I), h (B,H)); cell state, if any, is the Forward's business.
  // No allocation once a batch size has been seen on this thread; a failed allocation throws
  // std::bad_alloc and leaves the object usable.
  template <class Fwd>
  void step(Fwd& cell, T* h_out, const T* x, const T* h, int64_t B) const {
    const PackedGemm<T> pg = packed_gemm_fns<T>(*table_);
    auto run_slice = [&](const Slice& s) {
      const int64_t nj = s.j1 - s.j0, width = G_ * nj;
      if (nj <= 0) return;
      thread_local Buffer<T> px, ph;  // this worker's products for its slice
      px.resize(B * width);
      ph.resize(B * width);
      for (int64_t r = 0; r < B; ++r)
        std::copy(s.bias.data(), s.bias.data() + width, px.data() + r * width);
      pg.gemm(B, width, I_, x, I_, s.packed_ih.data(), T(1), px.data(), width);
      pg.gemm(B, width, H_, h, H_, s.packed_hh.data(), T(0), ph.data(), width);
      for (int64_t r = 0; r < B; ++r) {
        const RowRef row{r, 0, r, true, 0};
        cell.forward(row, s.j0, s.j1, px.data() + r * width, nj, ph.data() + r * width,
                     h + r * H_, h_out + r * H_);
      }
    };
    // The slices were fixed at packing time; if the thread cap dropped since, threads take
    // several slices each. Every slice is computed the same way whoever runs it.
    const int n_slices = static_cast<int>(slices_.size());
    const int nt = std::min(n_slices, get_num_threads());
    run_parallel(nt, [&](int part, int parts) {
      for (int k = part; k < n_slices; k += parts) run_slice(slices_[k]);
    });
  }

 private:
  struct Slice {
    int64_t j0 = 0, j1 = 0;
    Buffer<T> packed_ih, packed_hh, bias;
  };
  int G_;
  int64_t I_, H_;
  const KernelTable* table_;
  std::vector<Slice> slices_;
  std::vector<T> b_hh_;
};

}  // namespace rnnkit
