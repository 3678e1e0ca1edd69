#include "layers/linear.h"

#include <algorithm>

#include "engine/products.h"
#include "runtime/parallel.h"
#include "runtime/threads.h"

namespace rnnkit {

// The bias enters the GEMM's first store (GemmRowFn): the bits of "y = b, then y += x·Wᵀ" in
// one pass over y, which for a language model's decoder (B*T x V logits) is tens of MB.
template <class T>
void linear_forward(T* y, const T* x, const T* w, const T* b, int64_t M, int64_t I, int64_t O) {
  parallel_gemm(false, true, M, O, I, x, I, w, I, T(0), y, O, kernels(), b);
}

template <class T>
void linear_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int64_t M,
                     int64_t I, int64_t O) {
  if (dx) parallel_gemm(false, false, M, I, O, dy, O, w, I, T(0), dx, I);
  parallel_gemm(true, false, O, I, M, dy, O, x, I, T(1), dw, I);
  if (db) add_column_sums(db, dy, M, O, O);
}

QuantizedLinear::QuantizedLinear(const float* w, const float* b, int64_t O, int64_t I,
                                 WeightFormat format)
    : O_(O), I_(I), format_(format), table_(&kernels()) {
  const PackedGemm<float> pg = products();
  packed_.resize(pg.size(I, O));
  pg.pack(true, I, O, w, I, packed_.data());
  if (b) bias_.assign(b, b + O);
}

PackedGemm<float> QuantizedLinear::products() const {
  return format_ == WeightFormat::bf16 ? bf16_gemm_fns(*table_) : q8_gemm_fns(*table_);
}

void QuantizedLinear::forward(const float* x, int64_t M, float* y) const {
  const PackedGemm<float> pg = products();
  const int nt = threads_for(2.0 * M * O_ * I_, (M + 15) / 16);
  run_parallel(nt, [&](int part, int parts) {
    int64_t lo, hi;
    split_range(M, parts, part, 16, &lo, &hi);
    if (hi <= lo) return;
    if (!bias_.empty())
      for (int64_t m = lo; m < hi; ++m) std::copy(bias_.begin(), bias_.end(), y + m * O_);
    pg.gemm(hi - lo, O_, I_, x + lo * I_, I_, packed_.data(), bias_.empty() ? 0.0f : 1.0f,
            y + lo * O_, O_);
  });
}

template void linear_forward<float>(float*, const float*, const float*, const float*, int64_t,
                                    int64_t, int64_t);
template void linear_forward<double>(double*, const double*, const double*, const double*,
                                     int64_t, int64_t, int64_t);
template void linear_backward<float>(float*, float*, float*, const float*, const float*,
                                     const float*, int64_t, int64_t, int64_t);
template void linear_backward<double>(double*, double*, double*, const double*, const double*,
                                      const double*, int64_t, int64_t, int64_t);

}  // namespace rnnkit
