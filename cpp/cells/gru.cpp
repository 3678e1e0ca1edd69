// GRU pointwise math; the time loop, threads and products are in recurrence.h.
#include "cells/gru.h"

#include <algorithm>
#include <vector>

#include "cells/recurrence.h"
#include "runtime/buffer.h"
#include "cells/step.h"

namespace rnnkit {
namespace {

template <class T>
struct GruPointwise {
  static constexpr int G = 3;
  // dh_{t-1} = dh_t ⊙ z + dG_h·W_hh: the pointwise pass writes the first term, the GEMM adds.
  static constexpr bool kDirectHiddenGrad = true;
  int64_t B, H;
  const T* b_hn;     // (H) or nullptr: the only bias that cannot be folded into x·W_ihᵀ
  T* hn_out;         // forward: (T,B,H) W_hn h + b_hn kept for backward, or nullptr
  const T* hn;       // backward: the same, from the forward
  const T* gates;    // backward: (T,B,3H) post-activation r, z, n
  int64_t T_steps;          // backward: T (dg has T*B rows)
  const int64_t* lengths;   // backward: (B) or nullptr

  void begin_forward(const Schedule&) {}
  void end_forward(const Schedule&) {}

  // gx: this row's input pre-activations for units j0..j1, gate g at gx + g*gx_stride
  // (rewritten to r, z, n); gh: its recurrent products, gate g at gh + g*n.
  void forward(const RowRef& row, int64_t j0, int64_t j1, T* gx, int64_t gx_stride, T* gh,
               const T* h_prev, T* h_out) const {
    const int64_t n = j1 - j0;
    T* hnr = gh + 2 * n;  // W_hn h + b_hn for units j0..j1
    T* r = gx;
    T* z = gx + gx_stride;
    T* nn = gx + 2 * gx_stride;
    for (int64_t j = 0; j < n; ++j) {
      r[j] += gh[j];
      z[j] += gh[n + j];
      hnr[j] += b_hn ? b_hn[j0 + j] : T(0);
    }
    sigmoid_fn<T>()(r, r, n);
    sigmoid_fn<T>()(z, z, n);
    for (int64_t j = 0; j < n; ++j) nn[j] += r[j] * hnr[j];
    tanh_fn<T>()(nn, nn, n);
    if (hn_out) std::copy(hnr, hnr + n, hn_out + (row.t * B + row.b) * H + j0);
    for (int64_t j = 0; j < n; ++j) h_out[j0 + j] = nn[j] + z[j] * (h_prev[j0 + j] - nn[j]);
  }

  void begin_backward(const Schedule&) {}
  void end_backward(const Schedule&) {}

  void backward(const RowRef& row, int64_t j0, int64_t j1, const T* h_prev, const T* dy, T* dh,
                T* dg_step, T* dg_seq) {
    const int64_t tb = row.t * B + row.b;
    const T* g = gates + tb * 3 * H;
    const T* hnr = hn + tb * H;
    for (int64_t j = j0; j < j1; ++j) {
      const T r = g[j], z = g[H + j], nn = g[2 * H + j];
      const T dht = dh[j] + dy[j];
      const T dn = dht * (T(1) - z);
      const T dz = dht * (h_prev[j] - nn);
      const T d_n = dn * (T(1) - nn * nn);
      const T dar = d_n * hnr[j] * r * (T(1) - r);
      const T daz = dz * z * (T(1) - z);
      dg_step[j] = dg_seq[j] = dar;
      dg_step[H + j] = dg_seq[H + j] = daz;
      dg_step[2 * H + j] = d_n * r;  // into W_hn h + b_hn, through r ⊙ (.)
      dg_seq[2 * H + j] = d_n;       // into W_in x + b_in; to_hidden_side scales it later
      dh[j] = dht * z;
    }
  }

  // dg holds the input-side gradient (dr, dz, dn); W_hh's n rows see dn ⊙ r instead, because
  // r multiplies W_hn h + b_hn. Steps that never ran keep their zeros (their gates were never
  // written, so they are not read).
  void to_hidden_side(T* dg) const {
    for (int64_t t = 0; t < T_steps; ++t)
      for (int64_t b = 0; b < B; ++b) {
        if (lengths && t >= lengths[b]) continue;
        const T* r = gates + (t * B + b) * 3 * H;
        T* dn = dg + (t * B + b) * 3 * H + 2 * H;
        for (int64_t j = 0; j < H; ++j) dn[j] *= r[j];
      }
  }
};

}  // namespace

template <class T>
void gru_forward(T* y, T* h_n, T* gates, T* hn, const T* x, const T* h0, const T* w_ih,
                 const T* w_hh, const T* b_ih, const T* b_hh, const SeqDims& d) {
  const int64_t H = d.H, GH = 3 * H, TB = d.T * d.B;
  std::vector<T> bias;
  if (b_ih || b_hh) {  // b_hr, b_hz fold into the input projection; b_hn stays inside r ⊙ (.)
    bias.assign(GH, T(0));
    for (int64_t k = 0; k < GH; ++k)
      bias[k] = (b_ih ? b_ih[k] : T(0)) + (b_hh && k < 2 * H ? b_hh[k] : T(0));
  }
  const ForwardInput<T> in =
      input_side(gates, x, w_ih, bias.empty() ? nullptr : bias.data(), 3, d);
  GruPointwise<T> cell{d.B, H, b_hh ? b_hh + 2 * H : nullptr, hn, nullptr, nullptr, d.T,
                       nullptr};
  run_forward(cell, y, h_n, in, h0, w_hh, d);
}

template <class T>
void gru_backward(T* dx, T* dh0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh, const T* dy,
                  const T* dh_n, const T* x, const T* h0, const T* w_ih, const T* w_hh,
                  const T* y, const T* gates, const T* hn, const SeqDims& d) {
  const int64_t TB = d.T * d.B;
  Buffer<T> dg(TB * 3 * d.H);  // every row is written (or zeroed) by run_backward
  GruPointwise<T> cell{d.B, d.H, nullptr, nullptr, hn, gates, d.T, d.lengths};
  run_backward(cell, dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dg.data(), dy, dh_n, y, x, h0, w_ih,
               w_hh, d);
}

template <class T>
StepWeights<T>* gru_step_weights(const T* w_ih, const T* w_hh, const T* b_ih, const T* b_hh,
                                 int64_t I, int64_t H) {
  std::vector<T> bias(3 * H, T(0));  // folded as in gru_forward
  for (int64_t k = 0; k < 3 * H; ++k)
    bias[k] = (b_ih ? b_ih[k] : T(0)) + (b_hh && k < 2 * H ? b_hh[k] : T(0));
  return new StepWeights<T>(3, I, H, w_ih, w_hh, bias.data(), b_hh ? b_hh + 2 * H : nullptr);
}

template <class T>
void gru_step(const StepWeights<T>& w, T* h_out, const T* x, const T* h, int64_t B) {
  GruPointwise<T> cell{B, w.hidden_size(), w.b_hn(), nullptr, nullptr, nullptr, 1, nullptr};
  w.step(cell, h_out, x, h, B);
}

#define RNNKIT_INSTANTIATE(T)                                                                  \
  template void gru_forward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*,         \
                               const T*, const T*, const SeqDims&);                           \
  template void gru_backward<T>(T*, T*, T*, T*, T*, T*, const T*, const T*, const T*,          \
                                const T*, const T*, const T*, const T*, const T*, const T*,   \
                                const SeqDims&);                                              \
  template StepWeights<T>* gru_step_weights<T>(const T*, const T*, const T*, const T*, int64_t, \
                                               int64_t);                                         \
  template void gru_step<T>(const StepWeights<T>&, T*, const T*, const T*, int64_t);
RNNKIT_INSTANTIATE(float)
RNNKIT_INSTANTIATE(double)
#undef RNNKIT_INSTANTIATE

}  // namespace rnnkit
