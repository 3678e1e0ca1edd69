// Linear (affine) layer on rows: the output head of most recurrent models. It is built from the
// engine's large products (engine/products.h), which keeps
// the whole training step on rnnkit's threads instead of mixing in a second BLAS thread pool
// (whose spinning workers steal the cores the recurrence's per-step barriers wait on).
//
// Shapes: M rows, I input features, O output features; row-major, last index fastest.
#pragma once
#include <cstdint>

namespace rnnkit {

// y (M, O) = x (M, I) · wᵀ + b.   w (O, I); b (O) or nullptr. y must not alias x or w.
template <class T>
void linear_forward(T* y, const T* x, const T* w, const T* b, int64_t M, int64_t I, int64_t O);

// dx (M, I) = dy · w (overwritten; nullptr skips it); dw (O, I) += dyᵀ · x; db (O) += Σ_rows dy
// (nullptr skips it). dy (M, O), x (M, I), w (O, I). No output may alias an input.
template <class T>
void linear_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int64_t M,
                     int64_t I, int64_t O);

}  // namespace rnnkit
