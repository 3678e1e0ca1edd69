// Linear (affine) layer on rows: the output head of most recurrent models. It is built from the
// engine's large products (engine/products.h), which keeps
// the whole training step on rnnkit's threads instead of mixing in a second BLAS thread pool
// (whose spinning workers steal the cores the recurrence's per-step barriers wait on).
//
// Shapes: M rows, I input features, O output features; row-major, last index fastest.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/buffer.h"

namespace rnnkit {

// y (M, O) = x (M, I) · wᵀ + b.   w (O, I); b (O) or nullptr. y must not alias x or w.
template <class T>
void linear_forward(T* y, const T* x, const T* w, const T* b, int64_t M, int64_t I, int64_t O);

// dx (M, I) = dy · w (overwritten; nullptr skips it); dw (O, I) += dyᵀ · x; db (O) += Σ_rows dy
// (nullptr skips it). dy (M, O), x (M, I), w (O, I). No output may alias an input.
template <class T>
void linear_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int64_t M,
                     int64_t I, int64_t O);

// An inference Linear with int8 weights (kernels/int8_driver.inl: w quantized per output
// feature and packed once, x quantized per row at each call) or bfloat16 ones
// (kernels/bf16_driver.inl), float32 out. Keeps the kernel table it packed for (the layout is
// shared by every level, but its products are its own).
class QuantizedLinear {
 public:
  QuantizedLinear(const float* w, const float* b, int64_t O, int64_t I, WeightFormat format);
  // y (M, O) = x (M, I) · wᵀ + b, rows split over threads (each row's result is the same on
  // any thread).
  void forward(const float* x, int64_t M, float* y) const;
  int64_t in_features() const { return I_; }
  int64_t out_features() const { return O_; }

 private:
  PackedGemm<float> products() const;
  int64_t O_, I_;
  WeightFormat format_;
  const KernelTable* table_;
  Buffer<float> packed_;
  std::vector<float> bias_;
};

}  // namespace rnnkit
