// The engine's entry points, one set per cell type (instantiated for every cell of
// cells/cell_list.h and T = float, double in cells/instantiate.cpp). Shapes and ownership of
// every array are documented on the structs in cells/cell.h; SeqDims in engine/seq_dims.h.
#pragma once
#include <cstdint>
#include <memory>

#include "cells/cell.h"
#include "engine/seq_dims.h"
#include "engine/step.h"

namespace rnnkit {

// A whole sequence forward: training when a.saved[0] is given (the cell's saved arrays are
// filled for backward), inference otherwise (nothing is kept).
template <class Cell, class T>
void sequence_forward(const ForwardArrays<T>& a, const SeqDims& d);

// Backpropagation through time for sequence_forward.
template <class Cell, class T>
void sequence_backward(const BackwardArrays<T>& a, const SeqDims& d);

// Weights packed for single steps (input size I, hidden size H; P: the width of h, the
// projection's size where w.w_hr is set, else H); format: int8 or bfloat16 weights
// (engine/step.h).
template <class Cell, class T>
std::unique_ptr<StepWeights<T>> make_step_weights(const CellWeights<T>& w, int64_t I,
                                                  int64_t H, int64_t P,
                                                  WeightFormat format);

// One step of a batch of B rows.
template <class Cell, class T>
void sequence_step(const StepWeights<T>& w, const StepArrays<T>& a, int64_t B);

// An inference forward of `steps` steps over B rows on weights packed once (StepWeights):
// for small batches, where a sequence is bound by reading its weights and packing them on
// every call costs as much as the steps. The input products run a chunk of steps at a time
// (W_ih read once per chunk), the recurrence step by step with the packed W_hh. Every row runs
// every step (no lengths); the same arithmetic as sequence_step, step after step.
template <class T>
struct StepSequenceArrays {
  const T* x = nullptr;                  // (steps, B, I), time-major, contiguous
  const T* state0[kMaxStates] = {};      // (B, P) h, then (B, H) the cell's own state
  T* y = nullptr;                        // (steps, B, P) out: h at every step
  T* state_n[kMaxStates] = {};           // out: the final states, shaped as state0
  bool reverse = false;                  // run from the last time step to the first
  // (B) each in [0, steps], or nullptr for all: row b runs the steps t < lengths[b] only (in
  // reverse from its own last one); elsewhere its state is kept and its y row is zero.
  const int64_t* lengths = nullptr;
};

template <class Cell, class T>
void sequence_steps(const StepWeights<T>& w, const StepSequenceArrays<T>& a, int64_t steps,
                    int64_t B);

}  // namespace rnnkit
