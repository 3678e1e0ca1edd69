// LSTM pointwise math, forward directly above backward (the contract is in cells/cell.h).
//
// Shape legend: T steps, B batch, I input features, H hidden units, G = 4 gates.
// Row-major, last index fastest. Weight layout and gate order are PyTorch's:
//   w_ih (4H, I), w_hh (4H, H), b_ih (4H), b_hh (4H); gate rows i, f, g, o.
//   i = σ(W_ii x + b_ii + W_hi h + b_hi)   f = σ(...)   g = tanh(...)   o = σ(...)
//   c_t = f ⊙ c_{t-1} + i ⊙ g              h_t = o ⊙ tanh(c_t)
// States: h, c. Saved for backward: gates (T,B,4H) post-activation i, f, g, o; cells (T,B,H)
// c_t (rows past a length are unspecified).
//
// The peephole LSTM (kPeephole; Gers & Schmidhuber, ONNX's P input, oneDNN's peephole LSTM)
// adds one parameter, peephole (3H) = [p_i, p_f, p_o], through which the gates see the cell:
//   i = σ(a_i + p_i ⊙ c_{t-1})   f = σ(a_f + p_f ⊙ c_{t-1})   o = σ(a_o + p_o ⊙ c_t)
// (a: the gate's input and recurrent products plus biases, as above).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cells/cell.h"
#include "engine/schedule.h"
#include "runtime/buffer.h"

namespace rnnkit {

template <class T, bool kPeephole>
struct LstmCellT {
  static constexpr const char* kName = kPeephole ? "lstm_peephole" : "lstm";
  static constexpr int G = 4;
  static constexpr int kStates = 2;
  static constexpr const char* kStateNames[kStates] = {"h", "c"};
  static constexpr int kSaved = 2;
  static constexpr const char* kSavedNames[kSaved] = {"gates", "cells"};
  static constexpr int kSavedWidth[kSaved] = {4, 1};
  static constexpr bool kDirectHiddenGrad = false;  // dh_{t-1} comes from dG·W_hh alone
  static constexpr int kHGates = G;  // one phase: every row of W_hh multiplies h
  static constexpr bool kProjectable = true;  // never reads h_prev (torch's proj_size)
  static constexpr int kExtra = kPeephole ? 1 : 0;
  static constexpr const char* kExtraNames[1] = {"peephole"};  // read only when kPeephole
  static constexpr int kExtraWidth[1] = {3};
  static constexpr bool folds_hh_bias(int) { return true; }  // both biases enter every gate

  // c by sorted row, updated in place: a copy of c0 for a sequence, the caller's c_out for a
  // step (rows are then unsorted: r == b).
  struct Forward {
    int64_t B, H;
    Activations<T> act;
    const T* peep = nullptr;     // (3H) p_i, p_f, p_o (kPeephole)
    const GateOptions* opts = nullptr;  // ONNX's options, or nullptr (cells/gate_options.h)
    SlotActivation<T> slot[kActSlots];  // with opts: f (i, f, o), g, h
    const T* c0 = nullptr;       // (B,H) or nullptr
    T* c_n = nullptr;            // (B,H) out
    T* cells_out = nullptr;      // (T,B,H) c_t kept for backward, or nullptr
    T* c_state = nullptr;        // (B,H)
    Buffer<T> storage;           // what c_state points to for a sequence (64-byte aligned:
                                 // threads write their units of every row)

    Forward(const ForwardArrays<T>& a, const SeqDims& d, Activations<T> fns)
        : B(d.B), H(d.H), act(fns), peep(a.w.extra[0]), opts(a.w.opts), c0(a.state0[1]),
          c_n(a.state_n[1]), cells_out(a.saved[1]) {
      set_slots();
    }
    Forward(const StepArrays<T>& a, int64_t batch, int64_t hidden, const CellWeights<T>& w,
            Activations<T> fns)
        : B(batch), H(hidden), act(fns), peep(w.extra[0]), opts(w.opts),
          c_state(a.state_out[1]) {
      std::copy(a.state[1], a.state[1] + B * H, c_state);  // updated row by row in place
      set_slots();
    }
    void set_slots() { make_slots(opts, act, slot); }

    void begin(const Schedule& sch) {
      storage.assign(B * H, T(0));
      c_state = storage.data();
      sch.to_sorted(c0, c_state, H);
    }
    void end(const Schedule& sch) { sch.from_sorted(c_state, c_n, H); }

    // Every slot's activation is its usual one (σ, tanh, tanh) unless ONNX's options say
    // otherwise (cells/gate_options.h); with input_forget, f = 1 - i (the f rows' products
    // are then unused).
    void forward(const RowRef& row, int64_t j0, int64_t j1, T* gx, int64_t gx_stride, T* gh,
                 const T* /*h_prev*/, T* h_out) {
      const int64_t n = j1 - j0;
      for (int g = 0; g < G; ++g)
        for (int64_t j = 0; j < n; ++j) gx[g * gx_stride + j] += gh[g * n + j];
      T* i = gx;
      T* f = gx + gx_stride;
      T* gg = gx + 2 * gx_stride;
      T* o = gx + 3 * gx_stride;
      T* c = c_state + row.r * H + j0;
      if constexpr (kPeephole) {  // i and f see c_{t-1}; o sees c_t, once it is known
        const T* p_i = peep + j0;
        const T* p_f = peep + H + j0;
        for (int64_t j = 0; j < n; ++j) {
          i[j] += p_i[j] * c[j];
          f[j] += p_f[j] * c[j];
        }
      }
      gate(i, n);
      if (opts && opts->input_forget)
        for (int64_t j = 0; j < n; ++j) f[j] = T(1) - i[j];
      else
        gate(f, n);
      if (opts)
        slot[1].apply(gg, n);
      else
        act.tanh(gg, gg, n);
      for (int64_t j = 0; j < n; ++j) c[j] = f[j] * c[j] + i[j] * gg[j];
      if (cells_out) std::copy(c, c + n, cells_out + (row.t * B + row.b) * H + j0);
      if constexpr (kPeephole) {
        const T* p_o = peep + 2 * H + j0;
        for (int64_t j = 0; j < n; ++j) o[j] += p_o[j] * c[j];
      }
      gate(o, n);
      T* act_c = gh;  // gh is consumed: reuse as scratch
      cell_activation(act_c, c, n);
      for (int64_t j = 0; j < n; ++j) h_out[j0 + j] = o[j] * act_c[j];
    }

    // Slot f (the i, f and o gates) in place; the h slot of c into out (ONNX Runtime does
    // not clip it).
    void gate(T* x, int64_t n) const {
      if (opts)
        slot[0].apply(x, n);
      else
        act.sigmoid(x, x, n);
    }
    void cell_activation(T* out, const T* c, int64_t n) const {
      if (!opts) return act.tanh(out, c, n);
      std::copy(c, c + n, out);
      slot[2].apply(out, n, false);
    }
  };

  // dc by sorted row, carried backwards through the steps.
  struct Backward {
    int64_t B, H;
    Activations<T> act;
    const T* peep;       // (3H) (kPeephole)
    T* dpeep;            // (3H) ADDED to at end() (kPeephole)
    const GateOptions* opts;            // ONNX's options, or nullptr
    SlotActivation<T> slot[kActSlots];
    Buffer<T> dpeep_sum;         // (3H) this call's sum; each unit's by the thread owning it
    const T* c0;         // (B,H) or nullptr
    const T* gates;      // (T,B,4H) post-activation gates from the forward
    const T* cells;      // (T,B,H) c_t from the forward
    const T* dc_n;       // (B,H) or nullptr
    T* dc0;              // (B,H) out
    Buffer<T> dc_state;          // (B,H) by sorted row, 64-byte aligned as c_state
    std::vector<T> zeros;

    Backward(const BackwardArrays<T>& a, const SeqDims& d, Activations<T> fns)
        : B(d.B), H(d.H), act(fns), peep(a.w.extra[0]), dpeep(a.dextra[0]), opts(a.w.opts),
          c0(a.state0[1]), gates(a.saved[0]), cells(a.saved[1]), dc_n(a.dstate_n[1]),
          dc0(a.dstate0[1]) {
      make_slots(opts, fns, slot);
    }

    void begin(const Schedule& sch) {
      dc_state.assign(B * H, T(0));
      sch.to_sorted(dc_n, dc_state.data(), H);
      zeros.assign(H, T(0));
      if (kPeephole) dpeep_sum.assign(3 * H, T(0));
    }
    void end(const Schedule& sch) {
      sch.from_sorted(dc_state.data(), dc0, H);
      // Summed apart and added once, so that accumulating into a non-zero gradient rounds as
      // "zeros, then +=" does.
      if (kPeephole)
        for (int64_t k = 0; k < 3 * H; ++k) dpeep[k] += dpeep_sum.data()[k];
    }

    void backward(const RowRef& row, int64_t j0, int64_t j1, const T* /*h_prev*/, const T* dy,
                  T* dh, T* dg_step, T* dg_seq) {
      const int64_t n = j1 - j0, tb = row.t * B + row.b;
      const T* gt = gates + tb * 4 * H;
      const T* c = cells + tb * H;
      const T* c_prev = row.first ? (c0 ? c0 + row.b * H : zeros.data())
                                  : cells + (row.t_prev * B + row.b) * H;
      T* act_c = dg_step + 3 * H + j0;  // scratch until the o-gate gradient overwrites it
      if (opts) {
        std::copy(c + j0, c + j1, act_c);
        slot[2].apply(act_c, n, false);
      } else {
        act.tanh(act_c, c + j0, n);
      }
      T* dc = dc_state.data() + row.r * H;
      if (!kPeephole && !opts)  // the plain cell: the level's vectorised copy of the loop below
        return act.pointwise.lstm_backward(n, H, gt + j0, c_prev + j0, dh + j0, dy + j0,
                                           dc + j0, dg_step + j0, dg_seq + j0);
      const bool coupled = opts && opts->input_forget;
      // Derivatives from the outputs; the usual ones keep their products' order (their bits
      // must not change), ONNX's options take theirs from the slots.
      for (int64_t j = j0; j < j1; ++j) {
        const T i = gt[j], f = gt[H + j], g = gt[2 * H + j], o = gt[3 * H + j];
        const T tc = act_c[j - j0];
        const T cp = c_prev[j];
        const T dht = dh[j] + dy[j];
        T dct = opts ? dc[j] + dht * o * slot[2].derivative(tc, false)
                     : dc[j] + dht * o * (T(1) - tc * tc);
        const T dao = opts ? dht * tc * slot[0].derivative(o) : dht * tc * o * (T(1) - o);
        if constexpr (kPeephole) dct += dao * peep[2 * H + j];  // o saw c_t
        T dai, daf, dag;
        if (opts) {
          const T df = dct * cp;
          // f = 1 - i (coupled): the forget path's gradient reaches i with a minus sign.
          dai = (dct * g - (coupled ? df : T(0))) * slot[0].derivative(i);
          daf = coupled ? T(0) : df * slot[0].derivative(f);
          dag = dct * i * slot[1].derivative(g);
        } else {
          dai = dct * g * i * (T(1) - i);
          daf = dct * cp * f * (T(1) - f);
          dag = dct * i * (T(1) - g * g);
        }
        if constexpr (kPeephole) {  // i and f saw c_{t-1}
          dc[j] = dct * f + dai * peep[j] + daf * peep[H + j];
          T* dp = dpeep_sum.data();
          dp[j] += dai * cp;
          dp[H + j] += daf * cp;
          dp[2 * H + j] += dao * c[j];
        } else {
          dc[j] = dct * f;
        }
        dg_step[j] = dg_seq[j] = dai;
        dg_step[H + j] = dg_seq[H + j] = daf;
        dg_step[2 * H + j] = dg_seq[2 * H + j] = dag;
        dg_step[3 * H + j] = dg_seq[3 * H + j] = dao;
      }
    }

    void to_hidden_side(T*) const {}  // both sides see the same gate gradients
  };
};

template <class T>
using LstmCell = LstmCellT<T, false>;
template <class T>
using LstmPeepholeCell = LstmCellT<T, true>;

}  // namespace rnnkit
