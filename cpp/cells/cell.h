// The contract between the engine (cpp/engine/) and a cell (cpp/cells/<cell>.h).
//
// The engine owns everything a recurrent layer does that is not a cell's own arithmetic: the
// length-sorted schedule, the input projection x·W_ihᵀ, the per-step recurrent product
// h·W_hhᵀ, threads and barriers, the hidden-state buffers, and the weight-gradient products
// after the backward loop. A cell supplies only its pointwise math, forward directly above
// backward, in a class template `Cell<T>` (T = float or double) with these members:
//
//   static constexpr const char* kName;   the name everywhere (bindings, Python spec, tests)
//   static constexpr int G;               gates stacked in W_ih (G*H, I) and W_hh (G*H, H)
//   static constexpr int kStates;         1: h only; 2: h and one state of the cell's own (c)
//   static constexpr const char* kStateNames[kStates];     {"h"} or {"h", "c"}
//   static constexpr int kSaved;          arrays a training forward keeps for backward
//   static constexpr const char* kSavedNames[kSaved];
//   static constexpr int kSavedWidth[kSaved];   each is (T, B, width*H); kSavedWidth[0] == G
//   static constexpr bool kDirectHiddenGrad;    see Backward below
//   static constexpr int kHGates;         the first kHGates gates' rows of W_hh multiply
//                                         h_{t-1}: G for most cells; fewer for a two-phase
//                                         cell, whose other rows multiply an operand u that
//                                         its first phase computes (see "Two phases" below)
//   static constexpr bool folds_hh_bias(int gate);   b_hh of `gate` adds into x·W_ihᵀ + b_ih
//                                                    (else the cell applies it itself)
//   static constexpr bool kProjectable;   whether a projection (torch's proj_size) may follow
//                                         the pointwise: true only for cells that never read
//                                         h_prev (the LSTM), see engine/projection.h
//   static constexpr int kExtra;          parameters of the cell's own beyond the four
//                                         weights and biases (0 for most; the peephole
//                                         LSTM's one), and, only where kExtra > 0:
//   static constexpr const char* kExtraNames[kExtra];   {"peephole"}
//   static constexpr int kExtraWidth[kExtra];   each a vector of kExtraWidth[i]*H values,
//                                         read from CellWeights::extra[i]; their gradients
//                                         are ADDED to BackwardArrays::dextra[i]
//   struct Forward;  struct Backward;     the per-call state, see below
//
// Forward (one object per call; one per single step):
//   Forward(const ForwardArrays<T>&, const SeqDims&, Activations<T>)  for a sequence
//   Forward(const StepArrays<T>&, int64_t B, int64_t H, const CellWeights<T>& w,
//           Activations<T>)  for one step (w: only b_hh, the layer's (G*H) hidden bias or
//           nullptr, and the extra parameters are set)
//   void begin(const Schedule&), end(const Schedule&)   around a sequence (not called for steps)
//   void forward(const RowRef& row, int64_t j0, int64_t j1, T* gx, int64_t gx_stride, T* gh,
//                const T* h_prev, T* h_out)
//     Units j0..j1 of one row. gx: the input pre-activations (x·W_ihᵀ + folded biases), gate g
//     at gx + g*gx_stride; the cell may rewrite them (in training, gx is the row of saved[0],
//     so what it writes there is what backward reads). gh: the recurrent products h·W_hhᵀ for
//     these units, gate g at gh + g*(j1-j0), scratch once read. h_prev (H): the row's previous
//     h, all units. h_out (H): write units j0..j1 of the new h only.
//
// Backward (one object per call):
//   Backward(const BackwardArrays<T>&, const SeqDims&, Activations<T>)
//   void begin(const Schedule&), end(const Schedule&)
//   void backward(const RowRef& row, int64_t j0, int64_t j1, const T* h_prev, const T* dy,
//                 T* dh, T* dg_step, T* dg_seq)
//     Units j0..j1 of one row, steps in reverse. dh (H): the gradient reaching h_t from later
//     steps (dy excluded, all units). Write the pre-activation gradients of units j0..j1 of
//     every gate to dg_step (this step, sorted row; multiplied by W_hh for dh_{t-1}) and
//     dg_seq (row t, b of the sequence buffer; multiplied by W_ih and x after the loop).
//     kDirectHiddenGrad: the cell also writes units j0..j1 of dh with a direct term of
//     dh_{t-1} that the engine's dG·W_hh product then adds to (GRU's z ⊙ dh); otherwise dh is
//     overwritten by that product.
//   void to_hidden_side(T* dg) const
//     After the loop dg (T, B, G*H) holds the input-side gradient; turn it, in place, into what
//     multiplies W_hh and h (they differ only where a gate's hidden part is scaled, GRU's n).
//
// Two phases (kHGates < G; GRU with reset_after=False, where n reads W_hn (r ⊙ h)):
//   Forward, per step:
//     void forward_first(row, j0, j1, T* gx, int64_t gx_stride, T* gh, const T* h_prev, T* u)
//       gh: h·W_hhᵀ of the gates < kHGates only. Compute those gates and write units j0..j1
//       of u (H), the operand of the other gates' rows; in training also keep u in the last
//       saved array (T, B, H), zero on padded steps (t >= lengths[b]).
//     -- barrier: u complete --
//     forward(row, j0, j1, gx, gx_stride, gh, h_prev, h_out) as above, except that gh holds
//       u·W_hhᵀ of the gates >= kHGates (gate g at gh + (g - kHGates)*(j1-j0)).
//   Backward, per step (kDirectHiddenGrad must be true):
//     backward(...) as above, writing dg_step/dg_seq of the gates >= kHGates (and of any early
//       gate whose gradient does not depend on du: GRU's z) and the direct dh term;
//     -- barrier -- the engine forms du = dG_late·W_hh[late rows] --
//     void backward_second(row, j0, j1, const T* h_prev, const T* du, T* dh, T* dg_step,
//                          T* dg_seq)
//       du (H): the gradient reaching u. Write dg_step/dg_seq of the gates < kHGates and ADD
//       u's direct dependence on h_{t-1} to units j0..j1 of dh;
//     -- barrier -- dh += dG_early·W_hh[early rows].
//   After the loop the engine multiplies the late gates' dg by the saved u for their rows of
//   dW_hh (u_t pairs with step t itself, so no shift and no h0 term).
//
// Row-wise cells (kRowWise = true; the LayerNorm LSTM and GRU, whose row statistics span every
// unit): a cell may declare `static constexpr bool kRowWise = true;` (absent means false, see
// row_wise below). The engine (engine/row_wise.h) then forms the whole recurrent product of a
// step first, and forward/backward are called with j0 = 0, j1 = H: one thread per row, all
// units. Besides:
//   - gx is the raw input product x·W_ihᵀ (no bias folded in; in training the first saved
//     array, which the cell must leave as it is) and gh the raw h·W_hhᵀ, gate g at g*H. The
//     cell applies b_ih and b_hh itself (CellWeights), and the engine gives it their gradients
//     (BackwardArrays::db_ih, db_hh) instead of summing dG into them.
//   - backward writes dg_seq with the gradient of the raw input product and dg_step with that
//     of the raw recurrent product; to_hidden_side(dg) must then fill dg with the latter for
//     every (t, b) (zeros where padded), as the cell kept it.
//   - void reduce_step(int64_t n, int64_t j0, int64_t j1), called after each backward step's
//     pointwise, on the thread owning units j0..j1: sum what the step's n rows contribute to
//     parameter gradients of those units (rows in order, so no sum depends on threads).
//
// Threading rules: forward/backward of different unit slices (j0..j1) of one row, and of
// different rows, run concurrently on different threads; a call may read anything of its own
// row that no other thread writes in the same step (h_prev, dh, dy, saved rows of earlier
// steps) and writes only its own units. Per-row state the cell keeps across steps (LSTM's c) is
// indexed by the sorted row (row.r) and unit, so each element has one owner. Nothing in a cell
// may allocate or throw inside forward/backward; constructors and begin() may (before any
// thread starts).
#pragma once
#include <cstdint>
#include <type_traits>

#include "cells/gate_options.h"
#include "engine/regularizers.h"
#include "engine/seq_dims.h"
#include "kernels/kernels.h"

namespace rnnkit {

class Schedule;

// Which row a pointwise call works on: sorted row r = batch index b at time index t.
// `first` is true on the first step of the sequence (the one that reads h0/c0); otherwise the
// previous step ran at time index t_prev (t - 1, or t + 1 in reverse).
struct RowRef {
  int64_t r, t, b;
  bool first;
  int64_t t_prev;
};

constexpr int kMaxStates = 2;  // h, plus at most one state of the cell's own
constexpr int kMaxSaved = 3;
constexpr int kMaxExtra = 6;   // a LayerNorm cell's gains and biases

// Whether Cell is row-wise (see above): its kRowWise if it declares one, else false.
template <class Cell, class = void>
struct RowWiseTrait : std::false_type {};
template <class Cell>
struct RowWiseTrait<Cell, std::void_t<decltype(Cell::kRowWise)>>
    : std::bool_constant<Cell::kRowWise> {};
template <class Cell>
constexpr bool row_wise() { return RowWiseTrait<Cell>::value; }

// The layer's weights in PyTorch's layout: w_ih (G*H, I), w_hh (G*H, H); b_ih, b_hh (G*H) or
// nullptr; the cell's extra parameters (kExtraWidth[i]*H each).
template <class T>
struct CellWeights {
  const T* w_ih = nullptr;
  const T* w_hh = nullptr;
  const T* b_ih = nullptr;
  const T* b_hh = nullptr;
  const T* extra[kMaxExtra] = {};
  const T* w_hr = nullptr;  // (P, H): the projection of a projected LSTM, or nullptr
  const GateOptions* opts = nullptr;  // ONNX's activations, clip, input_forget (gate_options.h)
};

// A cell's extra parameters, uniformly for cells that have none (kExtraNames and kExtraWidth
// exist only where kExtra > 0).
template <class Cell>
constexpr const char* extra_name(int i) {
  if constexpr (Cell::kExtra > 0) return Cell::kExtraNames[i]; else return "";
}
template <class Cell>
constexpr int extra_width(int i) {
  if constexpr (Cell::kExtra > 0) return Cell::kExtraWidth[i]; else return 0;
}

// The arrays of one sequence forward. Shapes: T steps, B batch, I input, H hidden.
template <class T>
struct ForwardArrays {
  T* y = nullptr;                     // (T, B, H) out: h_t, zero where t >= lengths[b]
  T* state_n[kMaxStates] = {};        // (B, H) each, out: final h, then the cell's own states
  T* saved[kMaxSaved] = {};           // training: out, (T, B, kSavedWidth[i]*H);
                                      // inference: all nullptr (nothing is kept)
  const T* x = nullptr;               // (T, B, I)
  const T* state0[kMaxStates] = {};   // (B, H) each, or nullptr (zeros); h is (B, P)
  CellWeights<T> w;
  T* m_saved = nullptr;               // projected, training: out, (T, B, H) m_t for backward
  Regularizers<T> reg;                // recurrent dropout, zoneout (engine/regularizers.h)
};

// The arrays of one backward: outputs, the incoming gradients, then the forward's inputs and
// what it kept, exactly as the forward had them.
template <class T>
struct BackwardArrays {
  T* dx = nullptr;                    // (T, B, I) out (overwritten)
  T* dstate0[kMaxStates] = {};        // (B, H) each, out (overwritten)
  T* dw_ih = nullptr;                 // (G*H, I)  ADDED to
  T* dw_hh = nullptr;                 // (G*H, H)  ADDED to
  T* db_ih = nullptr;                 // (G*H) ADDED to, or nullptr (no bias gradients)
  T* db_hh = nullptr;                 // (G*H) ADDED to, or nullptr
  T* dextra[kMaxExtra] = {};          // the extra parameters' gradients, ADDED to
  T* dw_hr = nullptr;                 // projected: (P, H) ADDED to
  const T* m_saved = nullptr;         // projected: the forward's m_saved
  const T* dy = nullptr;              // (T, B, H)
  const T* dstate_n[kMaxStates] = {}; // (B, H) each, or nullptr (zero)
  const T* x = nullptr;
  const T* state0[kMaxStates] = {};
  CellWeights<T> w;
  const T* y = nullptr;               // the forward's y
  const T* saved[kMaxSaved] = {};     // the forward's saved arrays
  Regularizers<T> reg;                // the forward's
};

// One step of a batch: state_out (B, H) each = cell(x (B, I), state (B, H) each). No output
// may alias an input.
template <class T>
struct StepArrays {
  T* state_out[kMaxStates] = {};
  const T* x = nullptr;
  const T* state[kMaxStates] = {};
};

}  // namespace rnnkit
