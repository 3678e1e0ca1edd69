// LSTM pointwise math; the time loop, threads and products are in recurrence.h.
#include "cells/lstm.h"

#include <vector>

#include "cells/recurrence.h"
#include "runtime/buffer.h"
#include "cells/step.h"

namespace rnnkit {
namespace {

template <class T>
struct LstmPointwise {
  static constexpr int G = 4;
  static constexpr bool kDirectHiddenGrad = false;  // dh_{t-1} comes from dG·W_hh alone
  int64_t B, H;
  const T* c0;    // (B,H) or nullptr
  T* cells_out;         // forward: (T,B,H) c_t kept for backward, or nullptr
  const T* cells;       // backward: (T,B,H) c_t from the forward
  const T* gates;       // backward: (T,B,4H) post-activation gates
  T* c_n;         // (B,H) forward out
  T* dc0;         // (B,H) backward out
  const T* dc_n;  // (B,H) or nullptr
  T* c_state = nullptr;    // (B,H) by sorted row: c in forward, dc in backward
  std::vector<T> storage;  // what c_state points to in the sequence kernels
  std::vector<T> zeros;    // (H) c_{-1} when c0 is nullptr

  void load_sorted(const Schedule& sch, const T* src) {
    storage.assign(B * H, T(0));
    c_state = storage.data();
    if (src)
      for (int64_t r = 0; r < B; ++r)
        std::copy(src + sch.batch_index(r) * H, src + (sch.batch_index(r) + 1) * H,
                  c_state + r * H);
  }
  void store_sorted(const Schedule& sch, T* dst) const {
    for (int64_t r = 0; r < B; ++r)
      std::copy(c_state + r * H, c_state + (r + 1) * H, dst + sch.batch_index(r) * H);
  }

  void begin_forward(const Schedule& sch) { load_sorted(sch, c0); }
  void end_forward(const Schedule& sch) { store_sorted(sch, c_n); }

  // gx: this row's input pre-activations for units j0..j1, gate g at gx + g*gx_stride
  // (rewritten to post-activation gates); gh: its recurrent products, gate g at gh + g*n
  // (scratch afterwards).
  void forward(const RowRef& row, int64_t j0, int64_t j1, T* gx, int64_t gx_stride, T* gh,
               const T* /*h_prev*/, T* h_out) {
    const int64_t n = j1 - j0;
    for (int g = 0; g < G; ++g)
      for (int64_t j = 0; j < n; ++j) gx[g * gx_stride + j] += gh[g * n + j];
    T* i = gx;
    T* f = gx + gx_stride;
    T* gg = gx + 2 * gx_stride;
    T* o = gx + 3 * gx_stride;
    sigmoid_fn<T>()(i, i, n);
    sigmoid_fn<T>()(f, f, n);
    tanh_fn<T>()(gg, gg, n);
    sigmoid_fn<T>()(o, o, n);
    T* c = c_state + row.r * H + j0;
    for (int64_t j = 0; j < n; ++j) c[j] = f[j] * c[j] + i[j] * gg[j];
    if (cells_out) std::copy(c, c + n, cells_out + (row.t * B + row.b) * H + j0);
    T* tanh_c = gh;  // gh is consumed: reuse as scratch
    tanh_fn<T>()(tanh_c, c, n);
    for (int64_t j = 0; j < n; ++j) h_out[j0 + j] = o[j] * tanh_c[j];
  }

  void begin_backward(const Schedule& sch) {
    load_sorted(sch, dc_n);
    zeros.assign(H, T(0));
  }
  void end_backward(const Schedule& sch) { store_sorted(sch, dc0); }

  // dh: (H) gradient reaching h_t from later steps (excluding dy). Writes the pre-activation
  // gradient of all four gates to dg_step (sorted row) and dg_seq (row t, b).
  void backward(const RowRef& row, int64_t j0, int64_t j1, const T* /*h_prev*/, const T* dy,
                T* dh, T* dg_step, T* dg_seq) {
    const int64_t n = j1 - j0, tb = row.t * B + row.b;
    const T* gt = gates + tb * 4 * H;
    const T* c = cells + tb * H;
    const T* c_prev = row.first ? (c0 ? c0 + row.b * H : zeros.data())
                                : cells + (row.t_prev * B + row.b) * H;
    T* tanh_c = dg_step + 3 * H + j0;  // scratch until the o-gate gradient overwrites it
    tanh_fn<T>()(tanh_c, c + j0, n);
    T* dc = c_state + row.r * H;
    for (int64_t j = j0; j < j1; ++j) {
      const T i = gt[j], f = gt[H + j], g = gt[2 * H + j], o = gt[3 * H + j];
      const T tc = tanh_c[j - j0];
      const T cp = c_prev[j];
      const T dht = dh[j] + dy[j];
      const T dct = dc[j] + dht * o * (T(1) - tc * tc);
      const T dai = dct * g * i * (T(1) - i);
      const T daf = dct * cp * f * (T(1) - f);
      const T dag = dct * i * (T(1) - g * g);
      const T dao = dht * tc * o * (T(1) - o);
      dc[j] = dct * f;
      dg_step[j] = dg_seq[j] = dai;
      dg_step[H + j] = dg_seq[H + j] = daf;
      dg_step[2 * H + j] = dg_seq[2 * H + j] = dag;
      dg_step[3 * H + j] = dg_seq[3 * H + j] = dao;
    }
  }

  void to_hidden_side(T*) const {}  // both sides see the same gate gradients
};

}  // namespace

template <class T>
void lstm_forward(T* y, T* h_n, T* c_n, T* gates, T* cells, const T* x, const T* h0,
                  const T* c0, const T* w_ih, const T* w_hh, const T* b_ih, const T* b_hh,
                  const SeqDims& d) {
  const int64_t GH = 4 * d.H, TB = d.T * d.B;
  std::vector<T> bias;
  if (b_ih || b_hh) {  // both biases enter every gate the same way: fold them into one row
    bias.assign(GH, T(0));
    for (int64_t k = 0; k < GH; ++k) bias[k] = (b_ih ? b_ih[k] : T(0)) + (b_hh ? b_hh[k] : T(0));
  }
  const ForwardInput<T> in =
      input_side(gates, x, w_ih, bias.empty() ? nullptr : bias.data(), 4, d);
  LstmPointwise<T> cell{d.B, d.H, c0, cells, nullptr, nullptr, c_n, nullptr, nullptr};
  run_forward(cell, y, h_n, in, h0, w_hh, d);
}

template <class T>
void lstm_backward(T* dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh, const T* dy,
                   const T* dh_n, const T* dc_n, const T* x, const T* h0, const T* c0,
                   const T* w_ih, const T* w_hh, const T* y, const T* gates, const T* cells,
                   const SeqDims& d) {
  Buffer<T> dg(d.T * d.B * 4 * d.H);  // every row is written (or zeroed) by run_backward
  LstmPointwise<T> cell{d.B, d.H, c0, nullptr, cells, gates, nullptr, dc0, dc_n};
  run_backward(cell, dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dg.data(), dy, dh_n, y, x, h0, w_ih,
               w_hh, d);
}

template <class T>
StepWeights<T>* lstm_step_weights(const T* w_ih, const T* w_hh, const T* b_ih, const T* b_hh,
                                  int64_t I, int64_t H) {
  std::vector<T> bias(4 * H, T(0));
  for (int64_t k = 0; k < 4 * H; ++k) bias[k] = (b_ih ? b_ih[k] : T(0)) + (b_hh ? b_hh[k] : T(0));
  return new StepWeights<T>(4, I, H, w_ih, w_hh, bias.data(), nullptr);
}

template <class T>
void lstm_step(const StepWeights<T>& w, T* h_out, T* c_out, const T* x, const T* h, const T* c,
               int64_t B) {
  const int64_t H = w.hidden_size();
  std::copy(c, c + B * H, c_out);  // updated in place, row by row, by the pointwise pass
  LstmPointwise<T> cell{B, H, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
  cell.c_state = c_out;
  w.step(cell, h_out, x, h, B);
}

#define RNNKIT_INSTANTIATE(T)                                                                 \
  template void lstm_forward<T>(T*, T*, T*, T*, T*, const T*, const T*, const T*, const T*,   \
                                const T*, const T*, const T*, const SeqDims&);               \
  template void lstm_backward<T>(T*, T*, T*, T*, T*, T*, T*, const T*, const T*, const T*,    \
                                 const T*, const T*, const T*, const T*, const T*, const T*, \
                                 const T*, const T*, const SeqDims&);                        \
  template StepWeights<T>* lstm_step_weights<T>(const T*, const T*, const T*, const T*,       \
                                                int64_t, int64_t);                             \
  template void lstm_step<T>(const StepWeights<T>&, T*, T*, const T*, const T*, const T*,     \
                             int64_t);
RNNKIT_INSTANTIATE(float)
RNNKIT_INSTANTIATE(double)
#undef RNNKIT_INSTANTIATE

}  // namespace rnnkit
