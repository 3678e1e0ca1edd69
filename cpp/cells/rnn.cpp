// Vanilla RNN pointwise math; the time loop, threads and products are in recurrence.h.
#include "cells/rnn.h"

#include <algorithm>
#include <vector>

#include "cells/recurrence.h"
#include "runtime/buffer.h"
#include "cells/step.h"

namespace rnnkit {
namespace {

template <class T>
struct RnnPointwise {
  static constexpr int G = 1;
  static constexpr bool kDirectHiddenGrad = false;
  int64_t B, H;
  Nonlinearity act;
  const T* acts;  // backward: (T,B,H) post-activation h_t

  void begin_forward(const Schedule&) {}
  void end_forward(const Schedule&) {}

  // gx: this row's input pre-activations for units j0..j1 (rewritten to h); gh: W_hh h.
  void forward(const RowRef&, int64_t j0, int64_t j1, T* gx, int64_t /*gx_stride*/, T* gh,
               const T*, T* h_out) const {
    T* a = gx;
    const int64_t n = j1 - j0;
    for (int64_t j = 0; j < n; ++j) a[j] += gh[j];  // gh: this row's units j0..j1
    if (act == Nonlinearity::tanh)
      tanh_fn<T>()(a, a, n);
    else
      for (int64_t j = 0; j < n; ++j) a[j] = std::max(a[j], T(0));
    std::copy(a, a + n, h_out + j0);
  }

  void begin_backward(const Schedule&) {}
  void end_backward(const Schedule&) {}

  void backward(const RowRef& row, int64_t j0, int64_t j1, const T*, const T* dy, T* dh,
                T* dg_step, T* dg_seq) const {
    const T* h = acts + (row.t * B + row.b) * H;
    for (int64_t j = j0; j < j1; ++j) {
      const T dht = dh[j] + dy[j];
      // Derivatives from the output: tanh' = 1 - h², relu' = [h > 0].
      const T da = act == Nonlinearity::tanh ? dht * (T(1) - h[j] * h[j])
                                             : (h[j] > T(0) ? dht : T(0));
      dg_step[j] = dg_seq[j] = da;
    }
  }

  void to_hidden_side(T*) const {}  // both sides see the same gate gradients
};

}  // namespace

template <class T>
void rnn_forward(T* y, T* h_n, T* acts, const T* x, const T* h0, const T* w_ih, const T* w_hh,
                 const T* b_ih, const T* b_hh, Nonlinearity act, const SeqDims& d) {
  const int64_t H = d.H, TB = d.T * d.B;
  std::vector<T> bias;
  if (b_ih || b_hh) {
    bias.assign(H, T(0));
    for (int64_t k = 0; k < H; ++k) bias[k] = (b_ih ? b_ih[k] : T(0)) + (b_hh ? b_hh[k] : T(0));
  }
  const ForwardInput<T> in =
      input_side(acts, x, w_ih, bias.empty() ? nullptr : bias.data(), 1, d);
  RnnPointwise<T> cell{d.B, H, act, nullptr};
  run_forward(cell, y, h_n, in, h0, w_hh, d);
}

template <class T>
void rnn_backward(T* dx, T* dh0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh, const T* dy,
                  const T* dh_n, const T* x, const T* h0, const T* w_ih, const T* w_hh,
                  const T* y, const T* acts, Nonlinearity act, const SeqDims& d) {
  Buffer<T> dg(d.T * d.B * d.H);  // every row is written (or zeroed) by run_backward
  RnnPointwise<T> cell{d.B, d.H, act, acts};
  run_backward(cell, dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dg.data(), dy, dh_n, y, x, h0, w_ih,
               w_hh, d);
}

template <class T>
StepWeights<T>* rnn_step_weights(const T* w_ih, const T* w_hh, const T* b_ih, const T* b_hh,
                                 int64_t I, int64_t H) {
  std::vector<T> bias(H, T(0));
  for (int64_t k = 0; k < H; ++k) bias[k] = (b_ih ? b_ih[k] : T(0)) + (b_hh ? b_hh[k] : T(0));
  return new StepWeights<T>(1, I, H, w_ih, w_hh, bias.data(), nullptr);
}

template <class T>
void rnn_step(const StepWeights<T>& w, T* h_out, const T* x, const T* h, Nonlinearity act,
              int64_t B) {
  RnnPointwise<T> cell{B, w.hidden_size(), act, nullptr};
  w.step(cell, h_out, x, h, B);
}

#define RNNKIT_INSTANTIATE(T)                                                                 \
  template void rnn_forward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,  \
                               const T*, Nonlinearity, const SeqDims&);                      \
  template void rnn_backward<T>(T*, T*, T*, T*, T*, T*, const T*, const T*, const T*,         \
                                const T*, const T*, const T*, const T*, const T*,            \
                                Nonlinearity, const SeqDims&);                                \
  template StepWeights<T>* rnn_step_weights<T>(const T*, const T*, const T*, const T*, int64_t, \
                                               int64_t);                                         \
  template void rnn_step<T>(const StepWeights<T>&, T*, const T*, const T*, Nonlinearity,        \
                            int64_t);
RNNKIT_INSTANTIATE(float)
RNNKIT_INSTANTIATE(double)
#undef RNNKIT_INSTANTIATE

}  // namespace rnnkit
