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

template <class T>
class StepWeights {
 public:
  // w_ih (G*H, I), w_hh (G*H, H); bias_x (G*H) or nullptr: the bias added to x·W_ihᵀ (the cell
  // decides what folds into it); b_hn (H) or nullptr: GRU's bias inside r ⊙ (W_hn h + b_hn).
  // Arrays are copied: the caller may free or change them afterwards.
  StepWeights(int G, int64_t I, int64_t H, const T* w_ih, const T* w_hh, const T* bias_x,
              const T* b_hn)
      : G_(G), I_(I), H_(H) {
    const int nt = threads_for(2.0 * G * H * (I + H), (H + kUnitAlign - 1) / kUnitAlign);
    const PackedGemm<T> pg = packed_gemm_fns<T>();
    slices_.resize(nt);
    for (int k = 0; k < nt; ++k) {
      Slice& s = slices_[k];
      split_range(H, nt, k, kUnitAlign, &s.j0, &s.j1);
      const int64_t nj = s.j1 - s.j0, width = G * nj;
      if (nj <= 0) continue;
      std::vector<T> rows_ih(width * I), rows_hh(width * H);
      for (int g = 0; g < G; ++g) {
        std::copy(w_ih + (g * H + s.j0) * I, w_ih + (g * H + s.j1) * I,
                  rows_ih.begin() + g * nj * I);
        std::copy(w_hh + (g * H + s.j0) * H, w_hh + (g * H + s.j1) * H,
                  rows_hh.begin() + g * nj * H);
      }
      s.packed_ih.resize(pg.size(I, width));
      s.packed_hh.resize(pg.size(H, width));
      pg.pack(true, I, width, rows_ih.data(), I, s.packed_ih.data());
      pg.pack(true, H, width, rows_hh.data(), H, s.packed_hh.data());
    }
    bias_x_.assign(G * H, T(0));
    if (bias_x) std::copy(bias_x, bias_x + G * H, bias_x_.begin());
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
    const int64_t GH = G_ * H_;
    const PackedGemm<T> pg = packed_gemm_fns<T>();
    thread_local std::vector<T> gx_buffer;
    gx_buffer.resize(B * GH);
    T* gx = gx_buffer.data();  // by pointer: inside workers the name would be *their* buffer
    auto run_slice = [&](const Slice& s) {
      const int64_t nj = s.j1 - s.j0, width = G_ * nj;
      if (nj <= 0) return;
      thread_local std::vector<T> px, ph;  // this worker's products for its slice
      px.resize(B * width);
      ph.resize(B * width);
      pg.gemm(B, width, I_, x, I_, s.packed_ih.data(), T(0), px.data(), width);
      pg.gemm(B, width, H_, h, H_, s.packed_hh.data(), T(0), ph.data(), width);
      for (int64_t r = 0; r < B; ++r) {
        T* g_row = gx + r * GH;
        for (int g = 0; g < G_; ++g)
          for (int64_t j = 0; j < nj; ++j)
            g_row[g * H_ + s.j0 + j] = px[r * width + g * nj + j] + bias_x_[g * H_ + s.j0 + j];
        const RowRef row{r, 0, r, true, 0};
        cell.forward(row, s.j0, s.j1, g_row, ph.data() + r * width, h + r * H_, h_out + r * H_);
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
    std::vector<T> packed_ih, packed_hh;
  };
  int G_;
  int64_t I_, H_;
  std::vector<Slice> slices_;
  std::vector<T> bias_x_, b_hn_;
  const char* simd_;
};

}  // namespace rnnkit
