// Vanilla (Elman) RNN pointwise math, forward directly above backward (contract: cells/cell.h).
//
// Shape legend: T steps, B batch, I input features, H hidden units, G = 1.
// Row-major, last index fastest. PyTorch's layout: w_ih (H, I), w_hh (H, H), b_ih, b_hh (H).
//   h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),  act = tanh or relu
// Two cells, rnn_tanh and rnn_relu, share this template; the activation is a template argument.
// States: h. Saved for backward: acts (T,B,H) post-activation h_t.
#pragma once
#include <algorithm>
#include <cstdint>

#include "cells/cell.h"
#include "engine/schedule.h"

namespace rnnkit {

enum class Nonlinearity { tanh, relu };

template <class T, Nonlinearity A>
struct RnnCell {
  static constexpr const char* kName = A == Nonlinearity::tanh ? "rnn_tanh" : "rnn_relu";
  static constexpr int G = 1;
  static constexpr int kStates = 1;
  static constexpr const char* kStateNames[kStates] = {"h"};
  static constexpr int kSaved = 1;
  static constexpr const char* kSavedNames[kSaved] = {"acts"};
  static constexpr int kSavedWidth[kSaved] = {1};
  static constexpr bool kDirectHiddenGrad = false;
  static constexpr int kHGates = G;  // one phase: every row of W_hh multiplies h
  static constexpr int kExtra = 0;
  static constexpr bool kProjectable = false;  // torch projects only the LSTM
  static constexpr bool folds_hh_bias(int) { return true; }

  // With ONNX's options (cells/gate_options.h) slot f's activation and the clip replace A.
  struct Forward {
    Activations<T> act;
    const GateOptions* opts = nullptr;
    SlotActivation<T> slot;
    Forward(const ForwardArrays<T>& a, const SeqDims&, Activations<T> fns)
        : act(fns), opts(a.w.opts) {
      make_slots(opts, act, &slot, 1);
    }
    Forward(const StepArrays<T>&, int64_t, int64_t, const CellWeights<T>& w, Activations<T> fns)
        : act(fns), opts(w.opts) {
      make_slots(opts, act, &slot, 1);
    }

    void begin(const Schedule&) {}
    void end(const Schedule&) {}

    // gx: this row's input pre-activations for units j0..j1 (rewritten to h); gh: W_hh h.
    void forward(const RowRef&, int64_t j0, int64_t j1, T* gx, int64_t /*gx_stride*/, T* gh,
                 const T*, T* h_out) const {
      T* a = gx;
      const int64_t n = j1 - j0;
      for (int64_t j = 0; j < n; ++j) a[j] += gh[j];  // gh: this row's units j0..j1
      if (opts)
        slot.apply(a, n);
      else if (A == Nonlinearity::tanh)
        act.tanh(a, a, n);
      else
        for (int64_t j = 0; j < n; ++j) a[j] = std::max(a[j], T(0));
      std::copy(a, a + n, h_out + j0);
    }
  };

  struct Backward {
    int64_t B, H;
    const T* acts;  // (T,B,H) post-activation h_t
    const GateOptions* opts;
    SlotActivation<T> slot;

    Backward(const BackwardArrays<T>& a, const SeqDims& d, Activations<T> fns)
        : B(d.B), H(d.H), acts(a.saved[0]), opts(a.w.opts) {
      make_slots(opts, fns, &slot, 1);
    }

    void begin(const Schedule&) {}
    void end(const Schedule&) {}

    void backward(const RowRef& row, int64_t j0, int64_t j1, const T*, const T* dy, T* dh,
                  T* dg_step, T* dg_seq) const {
      const T* h = acts + (row.t * B + row.b) * H;
      for (int64_t j = j0; j < j1; ++j) {
        const T dht = dh[j] + dy[j];
        // Derivatives from the output: tanh' = 1 - h², relu' = [h > 0].
        const T da = opts ? dht * slot.derivative(h[j])
                     : A == Nonlinearity::tanh ? dht * (T(1) - h[j] * h[j])
                                               : (h[j] > T(0) ? dht : T(0));
        dg_step[j] = dg_seq[j] = da;
      }
    }

    void to_hidden_side(T*) const {}  // both sides see the same gate gradients
  };
};

template <class T> using RnnTanhCell = RnnCell<T, Nonlinearity::tanh>;
template <class T> using RnnReluCell = RnnCell<T, Nonlinearity::relu>;

}  // namespace rnnkit
