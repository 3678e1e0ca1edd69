// The large matrix products outside the time loop (input projection, weight gradients, dx) and
// bias-gradient column sums, spread over threads so that every output element is produced by
// exactly one thread with the GEMM's fixed summation order: results do not depend on threads.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/parallel.h"
#include "runtime/threads.h"

namespace rnnkit {

// C[M,N] = beta*C + op(A) op(B) (see GemmFn) with `table`'s GEMM, split over threads along M
// (or N when M is the smaller side); with a row (N values), C = row + op(A) op(B) instead
// (GemmRowFn; beta unused). Called outside any parallel region.
template <class T>
void parallel_gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const T* A,
                   int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc,
                   const KernelTable& table = kernels(), const T* row = nullptr) {
  if (M <= 0 || N <= 0) return;
  const GemmFn<T> gemm = gemm_fn<T>(table);
  const GemmRowFn<T> gemm_row = gemm_row_fn<T>(table);
  const bool split_m = M >= N;
  const int64_t extent = split_m ? M : N;
  const int64_t align = 16;
  const int nt = threads_for(2.0 * M * N * std::max<int64_t>(K, 1), (extent + align - 1) / align);
  auto run = [&](int part, int parts) {
    int64_t lo, hi;
    split_range(extent, parts, part, align, &lo, &hi);
    if (hi <= lo) return;
    const int64_t m = split_m ? hi - lo : M, n = split_m ? N : hi - lo;
    const T* a = !split_m ? A : transA ? A + lo : A + lo * lda;
    const T* b = split_m ? B : transB ? B + lo * ldb : B + lo;
    T* c = split_m ? C + lo * ldc : C + lo;
    if (row)
      gemm_row(transA, transB, m, n, K, a, lda, b, ldb, split_m ? row : row + lo, c, ldc);
    else
      gemm(transA, transB, m, n, K, a, lda, b, ldb, beta, c, ldc);
  };
  run_parallel(nt, run);
}

// sums[j] += (sum over rows m < M of A[m*lda + j]), j < N: each column summed in row order
// into a local accumulator that is then added once, so accumulating into a non-zero gradient
// rounds exactly as summing into zeros and adding afterwards would.
template <class T>
void add_column_sums(T* sums, const T* A, int64_t M, int64_t N, int64_t lda) {
  if (M <= 0 || N <= 0) return;
  const int nt = threads_for(double(M) * N, (N + 15) / 16);
  auto run = [&](int part, int parts) {
    int64_t lo, hi;
    split_range(N, parts, part, 16, &lo, &hi);
    if (hi <= lo) return;
    std::vector<T> acc(hi - lo, T(0));
    for (int64_t m = 0; m < M; ++m) {
      const T* a = A + m * lda + lo;
      for (int64_t j = 0; j < hi - lo; ++j) acc[j] += a[j];
    }
    for (int64_t j = lo; j < hi; ++j) sums[j] += acc[j - lo];
  };
  run_parallel(nt, run);
}

}  // namespace rnnkit
