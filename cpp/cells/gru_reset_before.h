// GRU with the reset gate applied before the recurrent product: Cho et al.'s original formula,
// ONNX's linear_before_reset=0 (its default), Keras's reset_after=False. Pointwise math, forward
// directly above backward (the contract is in cells/cell.h).
//
// Shape legend: T steps, B batch, I input features, H hidden units, G = 3 gates.
// Weights, layout and gate order as GruCell (PyTorch's): w_ih (3H, I), w_hh (3H, H),
// b_ih, b_hh (3H); gate rows r, z, n.
//   r = σ(W_ir x + b_ir + W_hr h + b_hr)     z = σ(W_iz x + b_iz + W_hz h + b_hz)
//   n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)
//   h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}
// Every bias adds outside a product, so all of b_hh folds into the input projection. Two
// phases (cells/cell.h): r and z from h·W_hhᵀ first, then the n rows of W_hh multiply
// u = r ⊙ h_{t-1}, which needs r of every unit.
// States: h. Saved for backward: gates (T,B,3H) post-activation r, z, n; u (T,B,H).
#pragma once
#include <algorithm>
#include <cstdint>

#include "cells/cell.h"
#include "engine/schedule.h"

namespace rnnkit {

template <class T>
struct GruResetBeforeCell {
  static constexpr const char* kName = "gru_reset_before";
  static constexpr int G = 3;
  static constexpr int kStates = 1;
  static constexpr const char* kStateNames[kStates] = {"h"};
  static constexpr int kSaved = 2;
  static constexpr const char* kSavedNames[kSaved] = {"gates", "u"};
  static constexpr int kSavedWidth[kSaved] = {3, 1};
  // dh_{t-1} = dh_t ⊙ z + du ⊙ r + dG_rz·W_hrz: the cell writes the first two terms.
  static constexpr bool kDirectHiddenGrad = true;
  static constexpr int kHGates = 2;  // r, z multiply h; n multiplies u
  static constexpr int kExtra = 0;
  static constexpr bool kProjectable = false;  // reads h_prev
  static constexpr bool folds_hh_bias(int) { return true; }

  struct Forward {
    int64_t B, H, T_steps = 0;
    Activations<T> act;
    T* u_out = nullptr;                // (T,B,H) u kept for backward, or nullptr
    const int64_t* lengths = nullptr;  // (B) or nullptr
    const GateOptions* opts = nullptr;  // ONNX's options (cells/gate_options.h), or nullptr
    SlotActivation<T> slot[kActSlots];  // with opts: f (r, z), g (n)

    Forward(const ForwardArrays<T>& a, const SeqDims& d, Activations<T> fns)
        : B(d.B), H(d.H), T_steps(d.T), act(fns), u_out(a.saved[1]), lengths(d.lengths),
          opts(a.w.opts) {
      set_slots();
    }
    Forward(const StepArrays<T>&, int64_t batch, int64_t hidden, const CellWeights<T>& w,
            Activations<T> fns)
        : B(batch), H(hidden), act(fns), opts(w.opts) {
      set_slots();
    }
    void set_slots() { make_slots(opts, act, slot); }

    // Steps that never run keep u at zero: backward multiplies all of u by dG (zero there).
    void begin(const Schedule&) {
      if (!u_out || !lengths) return;
      for (int64_t t = 0; t < T_steps; ++t)
        for (int64_t b = 0; b < B; ++b)
          if (t >= lengths[b]) {
            T* row = u_out + (t * B + b) * H;
            std::fill(row, row + H, T(0));
          }
    }
    void end(const Schedule&) {}

    // gh: h·W_hrᵀ, h·W_hzᵀ for units j0..j1.
    void forward_first(const RowRef& row, int64_t j0, int64_t j1, T* gx, int64_t gx_stride,
                       T* gh, const T* h_prev, T* u) const {
      const int64_t n = j1 - j0;
      T* r = gx;
      T* z = gx + gx_stride;
      for (int64_t j = 0; j < n; ++j) {
        r[j] += gh[j];
        z[j] += gh[n + j];
      }
      if (opts) {
        slot[0].apply(r, n);
        slot[0].apply(z, n);
      } else {
        act.sigmoid(r, r, n);
        act.sigmoid(z, z, n);
      }
      for (int64_t j = 0; j < n; ++j) u[j0 + j] = r[j] * h_prev[j0 + j];
      if (u_out) std::copy(u + j0, u + j1, u_out + (row.t * B + row.b) * H + j0);
    }

    // gh: u·W_hnᵀ for units j0..j1.
    void forward(const RowRef&, int64_t j0, int64_t j1, T* gx, int64_t gx_stride, T* gh,
                 const T* h_prev, T* h_out) const {
      const int64_t n = j1 - j0;
      const T* z = gx + gx_stride;
      T* nn = gx + 2 * gx_stride;
      for (int64_t j = 0; j < n; ++j) nn[j] += gh[j];
      if (opts)
        slot[1].apply(nn, n);
      else
        act.tanh(nn, nn, n);
      for (int64_t j = 0; j < n; ++j) h_out[j0 + j] = nn[j] + z[j] * (h_prev[j0 + j] - nn[j]);
    }
  };

  struct Backward {
    int64_t B, H;
    const T* gates;  // (T,B,3H) post-activation r, z, n
    const GateOptions* opts;
    SlotActivation<T> slot[kActSlots];

    Backward(const BackwardArrays<T>& a, const SeqDims& d, Activations<T> fns)
        : B(d.B), H(d.H), gates(a.saved[0]), opts(a.w.opts) {
      make_slots(opts, fns, slot);
    }

    void begin(const Schedule&) {}
    void end(const Schedule&) {}

    // The gradients of z and n, and dh_{t-1}'s direct term dh_t ⊙ z.
    void backward(const RowRef& row, int64_t j0, int64_t j1, const T* h_prev, const T* dy, T* dh,
                  T* dg_step, T* dg_seq) const {
      const T* g = gates + (row.t * B + row.b) * 3 * H;
      for (int64_t j = j0; j < j1; ++j) {
        const T z = g[H + j], nn = g[2 * H + j];
        const T dht = dh[j] + dy[j];
        // (the default's products in their usual order: its bits must not change)
        const T daz = opts ? dht * (h_prev[j] - nn) * slot[0].derivative(z)
                           : dht * (h_prev[j] - nn) * z * (T(1) - z);
        const T dan = opts ? dht * (T(1) - z) * slot[1].derivative(nn)
                           : dht * (T(1) - z) * (T(1) - nn * nn);
        dg_step[H + j] = dg_seq[H + j] = daz;
        dg_step[2 * H + j] = dg_seq[2 * H + j] = dan;
        dh[j] = dht * z;
      }
    }

    // du = dG_n·W_hn reaches r (through u = r ⊙ h) and h_{t-1} directly.
    void backward_second(const RowRef& row, int64_t j0, int64_t j1, const T* h_prev,
                         const T* du, T* dh, T* dg_step, T* dg_seq) const {
      const T* g = gates + (row.t * B + row.b) * 3 * H;
      for (int64_t j = j0; j < j1; ++j) {
        const T r = g[j];
        dg_step[j] = dg_seq[j] = opts ? du[j] * h_prev[j] * slot[0].derivative(r)
                                      : du[j] * h_prev[j] * r * (T(1) - r);
        dh[j] += du[j] * r;
      }
    }

    // The input side and the hidden side of every gate see the same gradient.
    void to_hidden_side(T*) const {}
  };
};

}  // namespace rnnkit
