#include "layers/linear.h"

#include <algorithm>

#include "engine/products.h"

namespace rnnkit {

template <class T>
void linear_forward(T* y, const T* x, const T* w, const T* b, int64_t M, int64_t I, int64_t O) {
  if (b)
    for (int64_t m = 0; m < M; ++m) std::copy(b, b + O, y + m * O);
  parallel_gemm(false, true, M, O, I, x, I, w, I, b ? T(1) : T(0), y, O);
}

template <class T>
void linear_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int64_t M,
                     int64_t I, int64_t O) {
  if (dx) parallel_gemm(false, false, M, I, O, dy, O, w, I, T(0), dx, I);
  parallel_gemm(true, false, O, I, M, dy, O, x, I, T(1), dw, I);
  if (db) add_column_sums(db, dy, M, O, O);
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
