// Vanilla (Elman) RNN over a whole sequence, forward and backward (BPTT).
//
// Shape legend: T steps, B batch, I input features, H hidden units, G = 1.
// Row-major, last index fastest. PyTorch's layout: w_ih (H, I), w_hh (H, H), b_ih, b_hh (H).
//   h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),  act = tanh or relu
// Variable lengths and direction: see SeqDims (cells/schedule.h).
// No pointer may alias another unless stated. All arrays are allocated by the caller.
#pragma once
#include <cstdint>

#include "cells/schedule.h"

namespace rnnkit {

enum class Nonlinearity { tanh, relu };

// y (T,B,H) out; h_n (B,H) out.
// acts (T,B,H): training: out, the post-activation h_t kept for backward; inference: nullptr.
// x (T,B,I); h0 (B,H) or nullptr (zeros); w_ih, w_hh; b_ih, b_hh (H) or nullptr.
template <class T>
void rnn_forward(T* y, T* h_n, T* acts, const T* x, const T* h0, const T* w_ih, const T* w_hh,
                 const T* b_ih, const T* b_hh, Nonlinearity act, const SeqDims& d);

// dx (T,B,I), dh0 (B,H): out (overwritten). dw_ih (H,I), dw_hh (H,H), db_ih, db_hh (H or
// nullptr): ADDED to. dy (T,B,H); dh_n (B,H) or nullptr; y and acts from rnn_forward.
template <class T>
void rnn_backward(T* dx, T* dh0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh, const T* dy,
                  const T* dh_n, const T* x, const T* h0, const T* w_ih, const T* w_hh,
                  const T* y, const T* acts, Nonlinearity act, const SeqDims& d);

// Single steps with weights packed once (cells/step.h), for streaming inference.
template <class T> class StepWeights;
// Packs w_ih (H,I), w_hh (H,H), b_ih, b_hh (H or nullptr) into a new object (caller owns).
template <class T>
StepWeights<T>* rnn_step_weights(const T* w_ih, const T* w_hh, const T* b_ih, const T* b_hh,
                                 int64_t I, int64_t H);
// h_out (B,H) out = one RNN step from x (B,I), h (B,H). h_out must not alias h.
template <class T>
void rnn_step(const StepWeights<T>& w, T* h_out, const T* x, const T* h, Nonlinearity act,
              int64_t B);

}  // namespace rnnkit
