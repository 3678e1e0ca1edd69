// GRU over a whole sequence, forward and backward (BPTT).
//
// Shape legend: T steps, B batch, I input features, H hidden units, G = 3 gates.
// Row-major, last index fastest. Weight layout and gate order are PyTorch's:
//   w_ih (3H, I), w_hh (3H, H), b_ih, b_hh (3H); gate rows r, z, n.
//   r = σ(W_ir x + b_ir + W_hr h + b_hr)     z = σ(W_iz x + b_iz + W_hz h + b_hz)
//   n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
//   h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}
// Variable lengths and direction: see SeqDims (cells/schedule.h).
// No pointer may alias another unless stated. All arrays are allocated by the caller.
#pragma once
#include <cstdint>

#include "cells/schedule.h"

namespace rnnkit {

// y (T,B,H) out; h_n (B,H) out.
// gates (T,B,3H): training: out, post-activation r, z, n; inference: nullptr.
// hn (T,B,H): training: out, W_hn h_{t-1} + b_hn (needed for dr); inference: nullptr.
// x (T,B,I); h0 (B,H) or nullptr (zeros); w_ih, w_hh; b_ih, b_hh (3H) or nullptr.
template <class T>
void gru_forward(T* y, T* h_n, T* gates, T* hn, const T* x, const T* h0, const T* w_ih,
                 const T* w_hh, const T* b_ih, const T* b_hh, const SeqDims& d);

// dx (T,B,I), dh0 (B,H): out (overwritten). dw_ih (3H,I), dw_hh (3H,H), db_ih, db_hh (3H or
// nullptr): ADDED to. dy (T,B,H); dh_n (B,H) or nullptr; y, gates and hn from gru_forward.
template <class T>
void gru_backward(T* dx, T* dh0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh, const T* dy,
                  const T* dh_n, const T* x, const T* h0, const T* w_ih, const T* w_hh,
                  const T* y, const T* gates, const T* hn, const SeqDims& d);

// Single steps with weights packed once (cells/step.h), for streaming inference.
template <class T> class StepWeights;
// Packs w_ih (3H,I), w_hh (3H,H), b_ih, b_hh (3H or nullptr) into a new object (caller owns).
template <class T>
StepWeights<T>* gru_step_weights(const T* w_ih, const T* w_hh, const T* b_ih, const T* b_hh,
                                 int64_t I, int64_t H);
// h_out (B,H) out = one GRU step from x (B,I), h (B,H). h_out must not alias h.
template <class T>
void gru_step(const StepWeights<T>& w, T* h_out, const T* x, const T* h, int64_t B);

}  // namespace rnnkit
