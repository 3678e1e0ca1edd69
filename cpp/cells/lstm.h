// LSTM over a whole sequence, forward and backward (BPTT).
//
// Shape legend: T steps, B batch, I input features, H hidden units, G = 4 gates.
// Row-major, last index fastest. Weight layout and gate order are PyTorch's:
//   w_ih (4H, I), w_hh (4H, H), b_ih (4H), b_hh (4H); gate rows i, f, g, o.
//   i = σ(W_ii x + b_ii + W_hi h + b_hi)   f = σ(...)   g = tanh(...)   o = σ(...)
//   c_t = f ⊙ c_{t-1} + i ⊙ g              h_t = o ⊙ tanh(c_t)
// Variable lengths and direction: see SeqDims (cells/schedule.h). Outputs past a sequence's
// length are zero; its final state is the state after its last valid step.
// No pointer may alias another unless stated. All arrays are allocated by the caller.
#pragma once
#include <cstdint>

#include "cells/schedule.h"

namespace rnnkit {

// y (T,B,H) out; h_n, c_n (B,H) out.
// gates (T,B,4H): training: out, the post-activation gates kept for backward;
//                 inference: nullptr (the input is then projected a chunk of steps at a time).
// cells (T,B,H):  training: out, c_t kept for backward (rows past a length are unspecified);
//                 inference: nullptr.
// x (T,B,I); h0, c0 (B,H) or nullptr (zeros); w_ih, w_hh; b_ih, b_hh (4H) or nullptr.
template <class T>
void lstm_forward(T* y, T* h_n, T* c_n, T* gates, T* cells, const T* x, const T* h0,
                  const T* c0, const T* w_ih, const T* w_hh, const T* b_ih, const T* b_hh,
                  const SeqDims& d);

// dx (T,B,I), dh0, dc0 (B,H): out (overwritten).
// dw_ih (4H,I), dw_hh (4H,H), db_ih, db_hh (4H or nullptr): ADDED to.
// dy (T,B,H); dh_n, dc_n (B,H) or nullptr; then the forward's inputs and what it kept:
// y (T,B,H) as returned by lstm_forward, gates, cells.
template <class T>
void lstm_backward(T* dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh, const T* dy,
                   const T* dh_n, const T* dc_n, const T* x, const T* h0, const T* c0,
                   const T* w_ih, const T* w_hh, const T* y, const T* gates, const T* cells,
                   const SeqDims& d);

// Single steps with weights packed once (cells/step.h), for streaming inference.
template <class T> class StepWeights;
// Packs w_ih (4H,I), w_hh (4H,H), b_ih, b_hh (4H or nullptr) into a new object (caller owns).
template <class T>
StepWeights<T>* lstm_step_weights(const T* w_ih, const T* w_hh, const T* b_ih, const T* b_hh,
                                  int64_t I, int64_t H);
// h_out, c_out (B,H) out = one LSTM step from x (B,I), h, c (B,H). Outputs must not alias inputs.
template <class T>
void lstm_step(const StepWeights<T>& w, T* h_out, T* c_out, const T* x, const T* h, const T* c,
               int64_t B);

}  // namespace rnnkit
