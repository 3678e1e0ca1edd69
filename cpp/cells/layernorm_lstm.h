// LayerNorm LSTM pointwise math (Ba et al. 2016, as haste's LayerNormLSTM), forward directly
// above backward; a row-wise cell (cells/cell.h).
//
// Shape legend: T steps, B batch, I input features, H hidden units, G = 4 gates i, f, g, o in
// PyTorch's layout (w_ih (4H, I), w_hh (4H, H), b_ih, b_hh (4H) or none). With LN(v; γ) of
// cells/layer_norm.h over the whole row of 4H products:
//   a = LN(W_ih x; ln_weight_ih) + b_ih + LN(W_hh h; ln_weight_hh) + b_hh
//   i, f, o = σ(a_i, a_f, a_o)   g = tanh(a_g)
//   c_t = f ⊙ c_{t-1} + i ⊙ g     (the state carried is c_t itself, not normalised)
//   h_t = o ⊙ tanh(LN(c_t; ln_weight_c) + ln_bias_c)   (over the H units)
// The biases are the two gate LayerNorms' own (their β): extra parameters are the three
// gains and the cell LayerNorm's bias. States: h, c. Saved for backward: the raw products
// x·W_ihᵀ and h·W_hhᵀ and c_t; the backward recomputes the statistics, the gates and LN(c_t)
// from them, with the forward's code, so exactly.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cells/cell.h"
#include "cells/layer_norm.h"
#include "engine/schedule.h"
#include "runtime/buffer.h"

namespace rnnkit {

template <class T>
struct LayerNormLstmCell {
  static constexpr const char* kName = "layernorm_lstm";
  static constexpr int G = 4;
  static constexpr int kStates = 2;
  static constexpr const char* kStateNames[kStates] = {"h", "c"};
  static constexpr int kSaved = 3;
  static constexpr const char* kSavedNames[kSaved] = {"input_products", "recurrent_products",
                                                      "cells"};
  static constexpr int kSavedWidth[kSaved] = {4, 4, 1};
  static constexpr bool kDirectHiddenGrad = false;
  static constexpr int kHGates = G;
  static constexpr bool kProjectable = false;
  static constexpr bool kRowWise = true;
  static constexpr int kExtra = 4;
  static constexpr const char* kExtraNames[kExtra] = {"ln_weight_ih", "ln_weight_hh",
                                                      "ln_weight_c", "ln_bias_c"};
  static constexpr int kExtraWidth[kExtra] = {4, 4, 1, 1};
  static constexpr bool folds_hh_bias(int) { return false; }  // applied after the LayerNorm

  // The parameters every row reads, and the arithmetic shared by forward and backward.
  struct Params {
    int64_t H;
    const T *b_ih, *b_hh, *g_ih, *g_hh, *g_c, *b_c;
    Activations<T> act;

    Params(const CellWeights<T>& w, int64_t hidden, Activations<T> fns)
        : H(hidden), b_ih(w.b_ih), b_hh(w.b_hh), g_ih(w.extra[0]), g_hh(w.extra[1]),
          g_c(w.extra[2]), b_c(w.extra[3]), act(fns) {}

    // gates (4H) = i, f, g, o from the raw products px, ph (4H each, ph may be gates);
    // xhat, hhat (4H each, or nullptr): the normalised products. Returns the two rstds.
    void gates(const T* px, const T* ph, T* xhat, T* hhat, T* gates, T* rstd) const {
      const int64_t n = G * H;
      const RowStats<T> sx = row_stats(px, n), sh = row_stats(ph, n);
      rstd[0] = sx.rstd;
      rstd[1] = sh.rstd;
      for (int64_t k = 0; k < n; ++k) {
        const T x = (px[k] - sx.mean) * sx.rstd, h = (ph[k] - sh.mean) * sh.rstd;
        if (xhat) xhat[k] = x;
        if (hhat) hhat[k] = h;
        gates[k] = g_ih[k] * x + (b_ih ? b_ih[k] : T(0)) + g_hh[k] * h + (b_hh ? b_hh[k] : T(0));
      }
      act.sigmoid(gates, gates, 2 * H);  // i, f
      act.tanh(gates + 2 * H, gates + 2 * H, H);
      act.sigmoid(gates + 3 * H, gates + 3 * H, H);
    }
    // out (H) = tanh(LN(c) + b_c); chat (H) the normalised c. Returns LN's rstd.
    T cell_output(const T* c, T* chat, T* out) const {
      const RowStats<T> s = row_stats(c, H);
      normalize(c, s, H, chat);
      for (int64_t j = 0; j < H; ++j) out[j] = g_c[j] * chat[j] + b_c[j];
      act.tanh(out, out, H);
      return s.rstd;
    }
  };

  // c by sorted row, updated in place (as the LSTM's, cells/lstm.h).
  struct Forward {
    int64_t B, H;
    Params p;
    const T* c0 = nullptr;
    T* c_n = nullptr;
    T* recurrent_out = nullptr;  // (T,B,4H) raw h·W_hhᵀ kept for backward, or nullptr
    T* cells_out = nullptr;      // (T,B,H) c_t kept for backward, or nullptr
    T* c_state = nullptr;        // (B,H)
    Buffer<T> storage;           // what c_state points to for a sequence

    Forward(const ForwardArrays<T>& a, const SeqDims& d, Activations<T> fns)
        : B(d.B), H(d.H), p(a.w, d.H, fns), c0(a.state0[1]), c_n(a.state_n[1]),
          recurrent_out(a.saved[1]), cells_out(a.saved[2]) {}
    Forward(const StepArrays<T>& a, int64_t batch, int64_t hidden, const CellWeights<T>& w,
            Activations<T> fns)
        : B(batch), H(hidden), p(w, hidden, fns), c_state(a.state_out[1]) {
      std::copy(a.state[1], a.state[1] + B * H, c_state);
    }

    void begin(const Schedule& sch) {
      storage.assign(B * H, T(0));
      c_state = storage.data();
      sch.to_sorted(c0, c_state, H);
    }
    void end(const Schedule& sch) { sch.from_sorted(c_state, c_n, H); }

    // Whole rows (j0 = 0, j1 = H): gx the raw input product (left as it is), gh the raw
    // recurrent product, then scratch.
    void forward(const RowRef& row, int64_t, int64_t, T* gx, int64_t, T* gh, const T*,
                 T* h_out) {
      const int64_t tb = row.t * B + row.b;
      if (recurrent_out) std::copy(gh, gh + G * H, recurrent_out + tb * G * H);
      T rstd[2];
      p.gates(gx, gh, nullptr, nullptr, gh, rstd);
      const T *i = gh, *f = gh + H, *g = gh + 2 * H, *o = gh + 3 * H;
      T* c = c_state + row.r * H;
      for (int64_t j = 0; j < H; ++j) c[j] = f[j] * c[j] + i[j] * g[j];
      if (cells_out) std::copy(c, c + H, cells_out + tb * H);
      // i and g are consumed: the normalised c and tanh(LN(c) + b_c) go there
      T* out = gh + 2 * H;
      p.cell_output(c, gh, out);
      for (int64_t j = 0; j < H; ++j) h_out[j] = o[j] * out[j];
    }
  };

  // dc by sorted row, carried backwards; per sorted row, what reduce_step sums into the
  // parameter gradients: the gates' pre-activation gradient dA, the normalised products, and
  // the gradient reaching LN(c) with the normalised c.
  struct Backward {
    int64_t B, H;
    Params p;
    const T* c0;
    const T *input_products, *recurrent_products, *cells;  // the forward's saved arrays
    const T* dc_n;
    T* dc0;
    T *db_ih, *db_hh, *dg_ih, *dg_hh, *dg_c, *db_c;  // ADDED to at end() (biases: nullptr)
    Buffer<T> dc_state, dA, xhat, hhat, dcn, chat, dgh;  // dgh (T,B,4H): hidden-side dG
    Buffer<T> sum_dA, sum_ih, sum_hh, sum_c, sum_dcn;     // this call's parameter sums
    std::vector<T> zeros;
    int64_t T_;
    bool padded;  // lengths given: some (t, b) never run, and their dgh rows must be zero

    Backward(const BackwardArrays<T>& a, const SeqDims& d, Activations<T> fns)
        : B(d.B), H(d.H), p(a.w, d.H, fns), c0(a.state0[1]), input_products(a.saved[0]),
          recurrent_products(a.saved[1]), cells(a.saved[2]), dc_n(a.dstate_n[1]),
          dc0(a.dstate0[1]), db_ih(a.db_ih), db_hh(a.db_hh), dg_ih(a.dextra[0]),
          dg_hh(a.dextra[1]), dg_c(a.dextra[2]), db_c(a.dextra[3]), T_(d.T),
          padded(d.lengths != nullptr) {}

    void begin(const Schedule& sch) {
      const int64_t GH = G * H;
      dc_state.assign(B * H, T(0));
      sch.to_sorted(dc_n, dc_state.data(), H);
      for (Buffer<T>* b : {&dA, &xhat, &hhat}) b->resize(B * GH);
      dcn.resize(B * H);
      chat.resize(B * H);
      if (padded)  // to_hidden_side copies all of it; without lengths every row is written
        dgh.assign(T_ * B * GH, T(0));
      else
        dgh.resize(T_ * B * GH);
      for (Buffer<T>* b : {&sum_dA, &sum_ih, &sum_hh}) b->assign(GH, T(0));
      sum_c.assign(H, T(0));
      sum_dcn.assign(H, T(0));
      zeros.assign(H, T(0));
    }
    void end(const Schedule& sch) {
      sch.from_sorted(dc_state.data(), dc0, H);
      add_parameter_sums(db_ih, sum_dA);
      add_parameter_sums(db_hh, sum_dA);  // both biases enter a alike
      add_parameter_sums(dg_ih, sum_ih);
      add_parameter_sums(dg_hh, sum_hh);
      add_parameter_sums(dg_c, sum_c);
      add_parameter_sums(db_c, sum_dcn);
    }

    void backward(const RowRef& row, int64_t, int64_t, const T*, const T* dy, T* dh,
                  T* dg_step, T* dg_seq) {
      const int64_t GH = G * H, tb = row.t * B + row.b, r = row.r;
      const T* c = cells + tb * H;
      const T* c_prev = row.first ? (c0 ? c0 + row.b * H : zeros.data())
                                  : cells + (row.t_prev * B + row.b) * H;
      T* da = dA.data() + r * GH;  // the gates first, then (in place) their gradients
      T* xh = xhat.data() + r * GH;
      T* hh = hhat.data() + r * GH;
      T rstd[2];
      p.gates(input_products + tb * GH, recurrent_products + tb * GH, xh, hh, da, rstd);
      T* ch = chat.data() + r * H;
      T* tc = dcn.data() + r * H;  // tanh(LN(c) + b_c), then the gradient reaching LN(c)
      const T rstd_c = p.cell_output(c, ch, tc);
      T* dc = dc_state.data() + r * H;
      T* dchat = dg_step;  // scratch (H) until dg_step is written below
      for (int64_t j = 0; j < H; ++j) {
        const T dht = dh[j] + dy[j], o = da[3 * H + j];
        const T dout = dht * o * (T(1) - tc[j] * tc[j]);
        da[3 * H + j] = dht * tc[j] * o * (T(1) - o);  // dA of o
        tc[j] = dout;
        dchat[j] = dout;
      }
      layer_norm_backward(dchat, p.g_c, ch, rstd_c, H, dchat);  // the gradient reaching c_t
      for (int64_t j = 0; j < H; ++j) {
        const T i = da[j], f = da[H + j], g = da[2 * H + j];
        const T dct = dc[j] + dchat[j];
        da[j] = dct * g * i * (T(1) - i);
        da[H + j] = dct * c_prev[j] * f * (T(1) - f);
        da[2 * H + j] = dct * i * (T(1) - g * g);
        dc[j] = dct * f;
      }
      layer_norm_backward(da, p.g_ih, xh, rstd[0], GH, dg_seq);
      layer_norm_backward(da, p.g_hh, hh, rstd[1], GH, dg_step);
      std::copy(dg_step, dg_step + GH, dgh.data() + tb * GH);
    }

    // The step's rows 0..n-1, units j0..j1 of every gate, in row order.
    void reduce_step(int64_t n, int64_t j0, int64_t j1) {
      const int64_t GH = G * H;
      for (int g = 0; g < G; ++g)
        for (int64_t r = 0; r < n; ++r) {
          for (int64_t k = g * H + j0; k < g * H + j1; ++k) {
            const T d = dA.data()[r * GH + k];
            sum_dA.data()[k] += d;
            sum_ih.data()[k] += d * xhat.data()[r * GH + k];
            sum_hh.data()[k] += d * hhat.data()[r * GH + k];
          }
        }
      for (int64_t r = 0; r < n; ++r)
        for (int64_t j = j0; j < j1; ++j) {
          const T d = dcn.data()[r * H + j];
          sum_dcn.data()[j] += d;
          sum_c.data()[j] += d * chat.data()[r * H + j];
        }
    }

    void to_hidden_side(T* dg) const { std::copy(dgh.data(), dgh.data() + dgh.size(), dg); }
  };
};

}  // namespace rnnkit
