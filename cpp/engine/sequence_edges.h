// What every time loop does around its steps, shared by the plain and the projected loops
// (engine/recurrence.h, engine/projection.h): the outputs of padded steps, the final hidden
// state, and the large weight-gradient products after the backward loop.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/padding.h"
#include "engine/products.h"
#include "engine/schedule.h"
#include "kernels/kernels.h"
#include "runtime/buffer.h"

namespace rnnkit {

// y rows (`width` wide, at d.y_row) of steps past each sequence's end: zero.
template <class T>
void zero_padded_rows(T* y, const SeqDims& d, int64_t width) {
  if (!d.lengths) return;
  for (int64_t t = 0; t < d.T; ++t)
    for (int64_t b = 0; b < d.B; ++b)
      if (t >= d.lengths[b]) std::fill(y + d.y_row(t, b), y + d.y_row(t, b) + width, T(0));
}

// h_n (B, width): each sequence's last output, h0 (or zeros) where its length is 0.
template <class T>
void write_final_h(T* h_n, const T* y, const T* h0, const Schedule& sch, const SeqDims& d,
                   int64_t width) {
  for (int64_t r = 0; r < d.B; ++r) {
    const int64_t b = sch.batch_index(r), len = sch.length(r);
    T* out = h_n + b * width;
    if (len > 0) {
      const T* last = y + d.y_row(sch.time_of(len - 1, r), b);
      std::copy(last, last + width, out);
    } else if (h0) {
      std::copy(h0 + b * width, h0 + (b + 1) * width, out);
    } else {
      std::fill(out, out + width, T(0));
    }
  }
}

// Input side: dW_ih += dGᵀ X, db_ih += Σ dG, dX = dG · W_ih; dg (T*B, GH). Padding of x that
// is not finite must not reach dW_ih through the zero rows of dG (engine/padding.h).
template <class T>
void add_input_side_grads(const SeqDims& d, int64_t GH, const T* dg, const T* x,
                          const T* w_ih, T* dx, T* dw_ih, T* db_ih, const KernelTable& k) {
  const int64_t I = d.I, TB = d.T * d.B;
  Buffer<T> x_copy;
  parallel_gemm(true, false, GH, I, TB, dg, GH, x_with_finite_padding(x, d, x_copy), I, T(1),
                dw_ih, I, k);
  if (db_ih) add_column_sums(db_ih, dg, TB, GH, GH);
  parallel_gemm(false, false, TB, I, GH, dg, GH, w_ih, I, T(0), dx, I, k);
}

// dW_hh[:rows] += Σ_t dG_tᵀ h_{t-1}, W_hh (GH, width), for the first `rows` columns of dg
// (T*B, GH): inside a sequence h_{t-1} is hs (T, B, width), the forward's y, at the
// neighbouring time index (pairs that reach past a sequence's end multiply zeros: hs and dg
// are zero there); the first step of every sequence pairs with h0 (B, width), if any.
template <class T>
void add_recurrent_weight_grad(const Schedule& sch, const SeqDims& d, int64_t rows, int64_t GH,
                               const T* dg, const T* hs, const T* h0, int64_t width, T* dw_hh,
                               const KernelTable& k) {
  const int64_t B = d.B;
  if (d.T > 1) {
    const int64_t K = (d.T - 1) * B;
    if (!sch.reverse())
      parallel_gemm(true, false, rows, width, K, dg + B * GH, GH, hs, width, T(1), dw_hh,
                    width, k);
    else
      parallel_gemm(true, false, rows, width, K, dg, GH, hs + B * width, width, T(1), dw_hh,
                    width, k);
  }
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
    if (d.T > 0)
      parallel_gemm(true, false, rows, width, B, first, GH, h0, width, T(1), dw_hh, width, k);
  }
}

}  // namespace rnnkit
