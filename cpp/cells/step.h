// One time step of a cell for a whole batch, with weights packed once and reused across calls:
// the fast path for streaming inference and generation (LSTMCell & co. in eval mode).
//
// Shape legend as in the cell headers: B batch, I input, H hidden, G gates.
// The weights are split among threads by hidden units exactly like the sequence kernels, so the
// same Pointwise math runs on the same slices; each thread's two packed panels (its rows of
// W_ih and W_hh) stay in its own core's cache between calls.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cells/recurrence.h"

namespace rnnkit {

// Typical per-core L2 of current x86 server cores (Zen 4/5: 1 MiB, Sapphire Rapids: 2 MiB).
constexpr double kL2BytesPerCore = 1 << 20;

template <class T>
class StepWeights {
 public:
  // w_ih (G*H, I), w_hh (G*H, H); bias_x (G*H) or nullptr: the bias added to x·W_ihᵀ (the cell
  // decides what folds into it); b_hn (H) or nullptr: GRU's bias inside r ⊙ (W_hn h + b_hn).
  // Arrays are copied: the caller may free or change them afterwards.
  StepWeights(int G, int64_t I, int64_t H, const T* w_ih, const T* w_hh, const T* bias_x,
              const T* b_hn)
      : G_(G), I_(I), H_(H) {
    // A step reads every weight once and does little arithmetic with it, so it is bound by
    // where the weights live: split them over the cores as soon as they outgrow one core's L2
    // (each core then keeps its half in its own cache between calls), else by arithmetic.
    const double weight_bytes = double(G) * H * (I + H) * sizeof(T);
    const int nt = weight_bytes > kL2BytesPerCore / 2
                       ? threads_for(1e30, (H + kUnitAlign - 1) / kUnitAlign)
                       : threads_for(2.0 * G * H * (I + H), (H + kUnitAlign - 1) / kUnitAlign);
    const PackedGemm<T> pg = packed_gemm_fns<T>();
    slices_.resize(nt);
    for (int k = 0; k < nt; ++k) {
      Slice& s = slices_[k];
      split_range(H, nt, k, kUnitAlign, &s.j0, &s.j1);
      const int64_t nj = s.j1 - s.j0;
      if (nj <= 0) continue;
      pack_unit_rows(pg, G, H, I, s.j0, s.j1, w_ih, s.packed_ih);
      pack_unit_rows(pg, G, H, H, s.j0, s.j1, w_hh, s.packed_hh);
      s.bias.resize(G * nj);  // the slice's bias in its product layout: gate g at g*nj
      for (int g = 0; g < G; ++g)
        for (int64_t j = 0; j < nj; ++j)
          s.bias.data()[g * nj + j] = bias_x ? bias_x[g * H + s.j0 + j] : T(0);
    }
    if (b_hn) b_hn_.assign(b_hn, b_hn + H);
    simd_ = kernels().isa;
  }

  int gates() const { return G_; }
  int64_t input_size() const { return I_; }
  int64_t hidden_size() const { return H_; }
  const T* b_hn() const { return b_hn_.empty() ? nullptr : b_hn_.data(); }
  // Packing is ISA-specific: a step after force_simd_level() must repack.
  bool packed_for_current_isa() const { return simd_ == kernels().isa; }

  // h_out (B,H) = cell(x (B,I), h (B,H)); cell state, if any, is the Pointwise's business.
  // No allocation once a batch size has been seen on this thread.
  template <class Pointwise>
  void step(Pointwise& cell, T* h_out, const T* x, const T* h, int64_t B) const {
    const PackedGemm<T> pg = packed_gemm_fns<T>();
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
  std::vector<Slice> slices_;
  std::vector<T> b_hn_;
  const char* simd_;
};

}  // namespace rnnkit
