// LayerNorm GRU pointwise math (as haste's LayerNormGRU), forward directly above backward; a
// row-wise cell (cells/cell.h).
//
// Shape legend: T steps, B batch, I input features, H hidden units, G = 3 gates r, z, n in
// PyTorch's layout (w_ih (3H, I), w_hh (3H, H), b_ih, b_hh (3H) or none). With LN(v; γ) of
// cells/layer_norm.h over the whole row of 3H products:
//   ax = LN(W_ih x; ln_weight_ih) + b_ih        ah = LN(W_hh h; ln_weight_hh) + b_hh
//   r = σ(ax_r + ah_r)   z = σ(ax_z + ah_z)   n = tanh(ax_n + r ⊙ ah_n)
//   h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}
// (the reset applies after the recurrent product, with b_hn inside it, as torch's GRU). The
// biases are the two LayerNorms' own β; the extra parameters are the gains. Saved for backward:
// the raw products x·W_ihᵀ and h·W_hhᵀ, from which the backward recomputes the rest exactly.
#pragma once
#include <algorithm>
#include <cstdint>

#include "cells/cell.h"
#include "cells/layer_norm.h"
#include "engine/schedule.h"
#include "runtime/buffer.h"

namespace rnnkit {

template <class T>
struct LayerNormGruCell {
  static constexpr const char* kName = "layernorm_gru";
  static constexpr int G = 3;
  static constexpr int kStates = 1;
  static constexpr const char* kStateNames[kStates] = {"h"};
  static constexpr int kSaved = 2;
  static constexpr const char* kSavedNames[kSaved] = {"input_products", "recurrent_products"};
  static constexpr int kSavedWidth[kSaved] = {3, 3};
  static constexpr bool kDirectHiddenGrad = true;  // h_t = ... + z ⊙ h_{t-1}
  static constexpr int kHGates = G;
  static constexpr bool kProjectable = false;
  static constexpr bool kRowWise = true;
  static constexpr int kExtra = 2;
  static constexpr const char* kExtraNames[kExtra] = {"ln_weight_ih", "ln_weight_hh"};
  static constexpr int kExtraWidth[kExtra] = {3, 3};
  static constexpr bool folds_hh_bias(int) { return false; }  // applied after the LayerNorm

  struct Params {
    int64_t H;
    const T *b_ih, *b_hh, *g_ih, *g_hh;
    Activations<T> act;

    Params(const CellWeights<T>& w, int64_t hidden, Activations<T> fns)
        : H(hidden), b_ih(w.b_ih), b_hh(w.b_hh), g_ih(w.extra[0]), g_hh(w.extra[1]), act(fns) {}

    // gates (3H) = r, z, n from the raw products px, ph (ph may be gates); ah_n (H): the
    // n gate's recurrent part LN(W_hh h)_n + b_hn; xhat, hhat (3H each, or nullptr): the
    // normalised products. Writes the two rstds.
    void gates(const T* px, const T* ph, T* xhat, T* hhat, T* gates, T* ah_n, T* rstd) const {
      const int64_t n = G * H;
      const RowStats<T> sx = row_stats(px, n), sh = row_stats(ph, n);
      rstd[0] = sx.rstd;
      rstd[1] = sh.rstd;
      for (int64_t k = 0; k < n; ++k) {
        const T x = (px[k] - sx.mean) * sx.rstd, h = (ph[k] - sh.mean) * sh.rstd;
        if (xhat) xhat[k] = x;
        if (hhat) hhat[k] = h;
        const T ax = g_ih[k] * x + (b_ih ? b_ih[k] : T(0));
        const T ah = g_hh[k] * h + (b_hh ? b_hh[k] : T(0));
        if (k < 2 * H) {
          gates[k] = ax + ah;
        } else {
          gates[k] = ax;
          ah_n[k - 2 * H] = ah;
        }
      }
      act.sigmoid(gates, gates, 2 * H);
      for (int64_t j = 0; j < H; ++j) gates[2 * H + j] += gates[j] * ah_n[j];
      act.tanh(gates + 2 * H, gates + 2 * H, H);
    }
  };

  struct Forward {
    int64_t B, H;
    Params p;
    T* recurrent_out = nullptr;  // (T,B,3H) raw h·W_hhᵀ kept for backward, or nullptr
    Buffer<T> ah_n;              // (B,H) per sorted row

    Forward(const ForwardArrays<T>& a, const SeqDims& d, Activations<T> fns)
        : B(d.B), H(d.H), p(a.w, d.H, fns), recurrent_out(a.saved[1]) {
      ah_n.resize(B * H);
    }
    Forward(const StepArrays<T>&, int64_t batch, int64_t hidden, const CellWeights<T>& w,
            Activations<T> fns)
        : B(batch), H(hidden), p(w, hidden, fns) {
      ah_n.resize(B * H);
    }
    void begin(const Schedule&) {}
    void end(const Schedule&) {}

    // Whole rows (j0 = 0, j1 = H), as LayerNormLstmCell's.
    void forward(const RowRef& row, int64_t, int64_t, T* gx, int64_t, T* gh, const T* h_prev,
                 T* h_out) {
      if (recurrent_out) std::copy(gh, gh + G * H, recurrent_out + (row.t * B + row.b) * G * H);
      T rstd[2];
      p.gates(gx, gh, nullptr, nullptr, gh, ah_n.data() + row.r * H, rstd);
      const T *z = gh + H, *n = gh + 2 * H;
      for (int64_t j = 0; j < H; ++j) h_out[j] = (T(1) - z[j]) * n[j] + z[j] * h_prev[j];
    }
  };

  // Per sorted row, what reduce_step sums into the parameter gradients: the gradients reaching
  // the two LayerNorms' outputs (dAx, dAh: they differ in n, which sees ah_n through r) and
  // the normalised products.
  struct Backward {
    int64_t B, H;
    Params p;
    const T *input_products, *recurrent_products;
    T *db_ih, *db_hh, *dg_ih, *dg_hh;  // ADDED to at end() (biases: nullptr without)
    Buffer<T> dAx, dAh, xhat, hhat, ah_n, dgh;  // dgh (T,B,3H): the hidden-side dG
    Buffer<T> sum_ax, sum_ah, sum_ih, sum_hh;
    int64_t T_;
    bool padded;  // lengths given: some (t, b) never run, and their dgh rows must be zero

    Backward(const BackwardArrays<T>& a, const SeqDims& d, Activations<T> fns)
        : B(d.B), H(d.H), p(a.w, d.H, fns), input_products(a.saved[0]),
          recurrent_products(a.saved[1]), db_ih(a.db_ih), db_hh(a.db_hh), dg_ih(a.dextra[0]),
          dg_hh(a.dextra[1]), T_(d.T),
          padded(d.lengths != nullptr) {}

    void begin(const Schedule&) {
      const int64_t GH = G * H;
      for (Buffer<T>* b : {&dAx, &dAh, &xhat, &hhat}) b->resize(B * GH);
      ah_n.resize(B * H);
      if (padded)  // to_hidden_side copies all of it; without lengths every row is written
        dgh.assign(T_ * B * GH, T(0));
      else
        dgh.resize(T_ * B * GH);
      for (Buffer<T>* b : {&sum_ax, &sum_ah, &sum_ih, &sum_hh}) b->assign(GH, T(0));
    }
    void end(const Schedule&) {
      add_parameter_sums(db_ih, sum_ax);
      add_parameter_sums(db_hh, sum_ah);
      add_parameter_sums(dg_ih, sum_ih);
      add_parameter_sums(dg_hh, sum_hh);
    }

    void backward(const RowRef& row, int64_t, int64_t, const T* h_prev, const T* dy, T* dh,
                  T* dg_step, T* dg_seq) {
      const int64_t GH = G * H, tb = row.t * B + row.b, r = row.r;
      T* dx = dAx.data() + r * GH;  // the gates first, then (in place) dAx
      T* dhh = dAh.data() + r * GH;
      T* xh = xhat.data() + r * GH;
      T* hh = hhat.data() + r * GH;
      T* ahn = ah_n.data() + r * H;
      T rstd[2];
      p.gates(input_products + tb * GH, recurrent_products + tb * GH, xh, hh, dx, ahn, rstd);
      for (int64_t j = 0; j < H; ++j) {
        const T rg = dx[j], z = dx[H + j], n = dx[2 * H + j];
        const T dht = dh[j] + dy[j];
        const T dn = dht * (T(1) - z) * (T(1) - n * n);
        const T dar = dn * ahn[j] * rg * (T(1) - rg);
        const T daz = dht * (h_prev[j] - n) * z * (T(1) - z);
        dx[j] = dhh[j] = dar;
        dx[H + j] = dhh[H + j] = daz;
        dx[2 * H + j] = dn;
        dhh[2 * H + j] = dn * rg;
        dh[j] = dht * z;  // the direct term; the engine adds dG_step · W_hh
      }
      layer_norm_backward(dx, p.g_ih, xh, rstd[0], GH, dg_seq);
      layer_norm_backward(dhh, p.g_hh, hh, rstd[1], GH, dg_step);
      std::copy(dg_step, dg_step + GH, dgh.data() + tb * GH);
    }

    // The step's rows 0..n-1, units j0..j1 of every gate, in row order.
    void reduce_step(int64_t n, int64_t j0, int64_t j1) {
      const int64_t GH = G * H;
      for (int g = 0; g < G; ++g)
        for (int64_t r = 0; r < n; ++r)
          for (int64_t k = g * H + j0; k < g * H + j1; ++k) {
            const T ax = dAx.data()[r * GH + k], ah = dAh.data()[r * GH + k];
            sum_ax.data()[k] += ax;
            sum_ah.data()[k] += ah;
            sum_ih.data()[k] += ax * xhat.data()[r * GH + k];
            sum_hh.data()[k] += ah * hhat.data()[r * GH + k];
          }
    }

    void to_hidden_side(T* dg) const { std::copy(dgh.data(), dgh.data() + dgh.size(), dg); }
  };
};

}  // namespace rnnkit
