// GRU pointwise math, forward directly above backward (the contract is in cells/cell.h).
//
// Shape legend: T steps, B batch, I input features, H hidden units, G = 3 gates.
// Row-major, last index fastest. Weight layout and gate order are PyTorch's:
//   w_ih (3H, I), w_hh (3H, H), b_ih, b_hh (3H); gate rows r, z, n.
//   r = σ(W_ir x + b_ir + W_hr h + b_hr)     z = σ(W_iz x + b_iz + W_hz h + b_hz)
//   n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
//   h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}
// States: h. Saved for backward: gates (T,B,3H) post-activation r, z, n; hn (T,B,H)
// W_hn h_{t-1} + b_hn (needed for dr).
#pragma once
#include <algorithm>
#include <cstdint>

#include "cells/cell.h"
#include "engine/schedule.h"

namespace rnnkit {

template <class T>
struct GruCell {
  static constexpr const char* kName = "gru";
  static constexpr int G = 3;
  static constexpr int kStates = 1;
  static constexpr const char* kStateNames[kStates] = {"h"};
  static constexpr int kSaved = 2;
  static constexpr const char* kSavedNames[kSaved] = {"gates", "hn"};
  static constexpr int kSavedWidth[kSaved] = {3, 1};
  // dh_{t-1} = dh_t ⊙ z + dG_h·W_hh: the pointwise pass writes the first term, the GEMM adds.
  static constexpr bool kDirectHiddenGrad = true;
  static constexpr int kHGates = G;  // one phase: every row of W_hh multiplies h
  static constexpr int kExtra = 0;
  static constexpr bool kProjectable = false;  // reads h_prev
  // b_hr, b_hz fold into the input projection; b_hn stays inside r ⊙ (W_hn h + b_hn).
  static constexpr bool folds_hh_bias(int gate) { return gate < 2; }

  struct Forward {
    int64_t B, H;
    Activations<T> act;
    const T* b_hn = nullptr;   // (H) or nullptr: the only bias that is not folded
    T* hn_out = nullptr;       // (T,B,H) W_hn h + b_hn kept for backward, or nullptr
    const GateOptions* opts = nullptr;  // ONNX's options (cells/gate_options.h), or nullptr
    SlotActivation<T> slot[kActSlots];  // with opts: f (r, z), g (n)

    Forward(const ForwardArrays<T>& a, const SeqDims& d, Activations<T> fns)
        : B(d.B), H(d.H), act(fns), b_hn(a.w.b_hh ? a.w.b_hh + 2 * d.H : nullptr),
          hn_out(a.saved[1]), opts(a.w.opts) {
      set_slots();
    }
    Forward(const StepArrays<T>&, int64_t batch, int64_t hidden, const CellWeights<T>& w,
            Activations<T> fns)
        : B(batch), H(hidden), act(fns), b_hn(w.b_hh ? w.b_hh + 2 * hidden : nullptr),
          opts(w.opts) {
      set_slots();
    }
    void set_slots() { make_slots(opts, act, slot); }

    void begin(const Schedule&) {}
    void end(const Schedule&) {}

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
      if (opts) {
        slot[0].apply(r, n);
        slot[0].apply(z, n);
      } else {
        act.sigmoid(r, r, n);
        act.sigmoid(z, z, n);
      }
      for (int64_t j = 0; j < n; ++j) nn[j] += r[j] * hnr[j];
      if (opts)
        slot[1].apply(nn, n);
      else
        act.tanh(nn, nn, n);
      if (hn_out) std::copy(hnr, hnr + n, hn_out + (row.t * B + row.b) * H + j0);
      for (int64_t j = 0; j < n; ++j) h_out[j0 + j] = nn[j] + z[j] * (h_prev[j0 + j] - nn[j]);
    }
  };

  struct Backward {
    int64_t B, H;
    const T* gates;           // (T,B,3H) post-activation r, z, n
    const T* hn;              // (T,B,H) W_hn h + b_hn from the forward
    int64_t T_steps;          // dg has T*B rows
    const int64_t* lengths;   // (B) or nullptr

    const GateOptions* opts;
    SlotActivation<T> slot[kActSlots];
    GruBackwardFn<T> plain;   // the level's vectorised copy of backward's loop (no options)

    Backward(const BackwardArrays<T>& a, const SeqDims& d, Activations<T> fns)
        : B(d.B), H(d.H), gates(a.saved[0]), hn(a.saved[1]), T_steps(d.T), lengths(d.lengths),
          opts(a.w.opts), plain(fns.pointwise.gru_backward) {
      make_slots(opts, fns, slot);
    }

    void begin(const Schedule&) {}
    void end(const Schedule&) {}

    void backward(const RowRef& row, int64_t j0, int64_t j1, const T* h_prev, const T* dy, T* dh,
                  T* dg_step, T* dg_seq) const {
      const int64_t tb = row.t * B + row.b;
      const T* g = gates + tb * 3 * H;
      const T* hnr = hn + tb * H;
      if (!opts)
        return plain(j1 - j0, H, g + j0, hnr + j0, h_prev + j0, dy + j0, dh + j0,
                     dg_step + j0, dg_seq + j0);
      for (int64_t j = j0; j < j1; ++j) {
        const T r = g[j], z = g[H + j], nn = g[2 * H + j];
        const T dht = dh[j] + dy[j];
        const T dn = dht * (T(1) - z);
        const T dz = dht * (h_prev[j] - nn);
        const T d_n = dn * (opts ? slot[1].derivative(nn) : T(1) - nn * nn);
        // (the default's products in their usual order: its bits must not change)
        const T dar = opts ? d_n * hnr[j] * slot[0].derivative(r) : d_n * hnr[j] * r * (T(1) - r);
        const T daz = opts ? dz * slot[0].derivative(z) : dz * z * (T(1) - z);
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
};

}  // namespace rnnkit
