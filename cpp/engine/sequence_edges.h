// What every time loop does around its steps, shared by the plain and the projected loops
// (engine/recurrence.h, engine/projection.h): the outputs of padded steps, the final hidden
// state, and the large weight-gradient products after the backward loop.
#pragma once
#include <algorithm>
#include <cstdint>

#include "engine/grad_blocks.h"
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

// dW_hh[:rows] += Σ_t dG_tᵀ h_{t-1}, W_hh (GH, width), for the first `rows` columns of dg
// (T*B, GH), block by block: h_{t-1} is the forward's y (hs, (T, B, width)) at the neighbouring
// time inside a sequence and h0 (B, width; nullptr: zeros) at its first step, times the
// recurrent-dropout mask m (B, width) where given (engine/grad_blocks.h).
template <class T>
void add_recurrent_weight_grad(const SeqDims& d, int64_t rows, int64_t GH, const T* dg,
                               const T* hs, const T* h0, const T* m, int64_t width, T* dw_hh,
                               const KernelTable& k) {
  const int64_t B = d.B;
  Buffer<T> prev;
  for_grad_blocks(d.T, B, d.reverse, [&](int64_t t0, int64_t t1) {
    const int64_t n = (t1 - t0) * B;
    prev.resize(n * width);
    previous_states(d, t0, t1, hs, h0, m, width, prev.data());
    parallel_gemm(true, false, rows, width, n, dg + t0 * B * GH, GH, prev.data(), width, T(1),
                  dw_hh, width, k);
  });
}

// sums (GH) += Σ over every row of dg (T*B, GH), block by block (engine/grad_blocks.h).
template <class T>
void add_bias_grad(const SeqDims& d, int64_t GH, const T* dg, T* sums) {
  for_grad_blocks(d.T, d.B, d.reverse, [&](int64_t t0, int64_t t1) {
    add_column_sums(sums, dg + t0 * d.B * GH, (t1 - t0) * d.B, GH, GH);
  });
}

// C (M, N) += Σ over every row of a (T*B, M) and b (T*B, N) of aᵀ b, block by block
// (engine/grad_blocks.h): a weight gradient whose operands are stored per step.
template <class T>
void add_step_products(const SeqDims& d, int64_t M, int64_t N, const T* a, int64_t lda,
                       const T* b, int64_t ldb, T* c, int64_t ldc, const KernelTable& k) {
  for_grad_blocks(d.T, d.B, d.reverse, [&](int64_t t0, int64_t t1) {
    parallel_gemm(true, false, M, N, (t1 - t0) * d.B, a + t0 * d.B * lda, lda,
                  b + t0 * d.B * ldb, ldb, T(1), c, ldc, k);
  });
}

// Input side: dW_ih += dGᵀ X, db_ih += Σ dG, dX = dG · W_ih; dg (T*B, GH). Padding of x that
// is not finite must not reach dW_ih through the zero rows of dG (engine/padding.h). The sums
// over steps run block by block (engine/grad_blocks.h).
template <class T>
void add_input_side_grads(const SeqDims& d, int64_t GH, const T* dg, const T* x,
                          const T* w_ih, T* dx, T* dw_ih, T* db_ih, const KernelTable& k) {
  const int64_t I = d.I, TB = d.T * d.B;
  Buffer<T> x_copy;
  add_step_products(d, GH, I, dg, GH, x_with_finite_padding(x, d, x_copy), I, dw_ih, I, k);
  if (db_ih) add_bias_grad(d, GH, dg, db_ih);
  parallel_gemm(false, false, TB, I, GH, dg, GH, w_ih, I, T(0), dx, I, k);
}

}  // namespace rnnkit
