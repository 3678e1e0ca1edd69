// Portable sigmoid, tanh and exp-sum (softmax): libm's exp/tanh, correctly rounded to within an ulp or so.
// They saturate without NaN: exp overflows to +inf and 1/(1+inf) is exactly 0.
#include <cmath>

#include "kernels/kernels.h"

namespace rnnkit {
namespace generic_isa {
namespace {

template <class T>
void sigmoid(T* y, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = T(1) / (T(1) + std::exp(-x[i]));
}

template <class T>
void tanh_(T* y, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
}

template <class T>
T exp_sum(T* y, const T* x, int64_t n, T shift) {
  T sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += (y[i] = std::exp(x[i] - shift));
  return sum;
}

template <class T>
T row_max(const T* x, int64_t n) {
  T best = x[0];
  for (int64_t i = 1; i < n; ++i) best = x[i] > best ? x[i] : best;
  return best;
}

}  // namespace
}  // namespace generic_isa

// Called by register_generic (gemm_generic.cpp) so the generic level is one registration.
void register_generic_activations(KernelTable& table) {
  table.sigmoid_f32 = generic_isa::sigmoid<float>;
  table.tanh_f32 = generic_isa::tanh_<float>;
  table.sigmoid_f64 = generic_isa::sigmoid<double>;
  table.tanh_f64 = generic_isa::tanh_<double>;
  table.exp_sum_f32 = generic_isa::exp_sum<float>;
  table.exp_sum_f64 = generic_isa::exp_sum<double>;
  table.row_max_f32 = generic_isa::row_max<float>;
  table.row_max_f64 = generic_isa::row_max<double>;
}

}  // namespace rnnkit
