// Portable GEMM: the fallback on every CPU and the second reference for the SIMD variants.
// Goto-style blocking: B is packed into NR-column panels and A into MR-row panels per cache
// block, so the micro-kernel's inner loop runs over contiguous memory that the compiler can
// vectorise for whatever baseline ISA it targets.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/kernels.h"

namespace rnnkit {
namespace generic_isa {
namespace {

constexpr int64_t MR = 4;     // rows of C per micro-tile
constexpr int64_t NR = 8;     // columns of C per micro-tile
constexpr int64_t KC = 256;   // depth of one packed block (A and B panels stay in L1/L2)
constexpr int64_t MC = 64;    // rows of A per packed block
constexpr int64_t NC = 1024;  // columns of B per packed block

template <class T>
inline T load_a(bool trans, const T* A, int64_t lda, int64_t m, int64_t k) {
  return trans ? A[k * lda + m] : A[m * lda + k];
}

// Ap[p][k][i] = op(A)(m0 + p*MR + i, k0 + k), zero-padded past mc rows.
template <class T>
void pack_a(bool trans, const T* A, int64_t lda, int64_t m0, int64_t mc, int64_t k0, int64_t kc,
            T* Ap) {
  for (int64_t p = 0; p < mc; p += MR) {
    const int64_t rows = std::min(MR, mc - p);
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t i = 0; i < MR; ++i)
        Ap[k * MR + i] = i < rows ? load_a(trans, A, lda, m0 + p + i, k0 + k) : T(0);
    }
    Ap += kc * MR;
  }
}

// Bp[p][k][j] = op(B)(k0 + k, n0 + p*NR + j), zero-padded past nc columns.
template <class T>
void pack_b(bool trans, const T* B, int64_t ldb, int64_t k0, int64_t kc, int64_t n0, int64_t nc,
            T* Bp) {
  for (int64_t p = 0; p < nc; p += NR) {
    const int64_t cols = std::min(NR, nc - p);
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t j = 0; j < NR; ++j) {
        const int64_t n = n0 + p + j;
        Bp[k * NR + j] =
            j < cols ? (trans ? B[n * ldb + k0 + k] : B[(k0 + k) * ldb + n]) : T(0);
      }
    }
    Bp += kc * NR;
  }
}

template <class T>
void micro_kernel(int64_t kc, const T* Ap, const T* Bp, T* C, int64_t ldc, int64_t rows,
                  int64_t cols, bool accumulate) {
  T acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int64_t i = 0; i < MR; ++i) {
      const T a = Ap[k * MR + i];
      for (int64_t j = 0; j < NR; ++j) acc[i][j] += a * Bp[k * NR + j];
    }
  }
  for (int64_t i = 0; i < rows; ++i) {
    T* c = C + i * ldc;
    if (accumulate)
      for (int64_t j = 0; j < cols; ++j) c[j] += acc[i][j];
    else
      for (int64_t j = 0; j < cols; ++j) c[j] = acc[i][j];
  }
}

template <class T>
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (beta == T(0))
      for (int64_t m = 0; m < M; ++m) std::fill(C + m * ldc, C + m * ldc + N, T(0));
    return;
  }
  // Per-thread scratch that only ever grows: no allocation once the sizes have been seen.
  thread_local std::vector<T> a_pack, b_pack;
  a_pack.resize(static_cast<size_t>(((std::min(MC, M) + MR - 1) / MR) * MR * KC));
  b_pack.resize(static_cast<size_t>(((std::min(NC, N) + NR - 1) / NR) * NR * KC));

  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      const bool accumulate = pc > 0 || beta != T(0);
      pack_b(transB, B, ldb, pc, kc, jc, nc, b_pack.data());
      for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = std::min(MC, M - ic);
        pack_a(transA, A, lda, ic, mc, pc, kc, a_pack.data());
        for (int64_t jr = 0; jr < nc; jr += NR) {
          for (int64_t ir = 0; ir < mc; ir += MR) {
            micro_kernel(kc, a_pack.data() + ir * kc, b_pack.data() + jr * kc,
                         C + (ic + ir) * ldc + jc + jr, ldc, std::min(MR, mc - ir),
                         std::min(NR, nc - jr), accumulate);
          }
        }
      }
    }
  }
}

// C = row + op(A) op(B): row copied into every row of C, then the product added as beta = 1 adds
// it (the definition of GemmRowFn, which the SIMD levels fuse into their first slab).
template <class T>
void gemm_row(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
              const T* B, int64_t ldb, const T* row, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  for (int64_t m = 0; m < M; ++m) std::copy(row, row + N, C + m * ldc);
  gemm<T>(transA, transB, M, N, K, A, lda, B, ldb, T(1), C, ldc);
}

// Packed operand: for each KC slab of K in order, the NR-column panels of pack_b.
int64_t packed_b_size(int64_t K, int64_t N) { return K * ((N + NR - 1) / NR) * NR; }

template <class T>
void pack_b_whole(bool transB, int64_t K, int64_t N, const T* B, int64_t ldb, T* packed) {
  const int64_t n_padded = ((N + NR - 1) / NR) * NR;
  for (int64_t pc = 0; pc < K; pc += KC) {
    const int64_t kc = std::min(KC, K - pc);
    pack_b(transB, B, ldb, pc, kc, 0, N, packed + pc * n_padded);
  }
}

template <class T>
void gemm_packed(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* packed,
                 T beta, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (beta == T(0))
      for (int64_t m = 0; m < M; ++m) std::fill(C + m * ldc, C + m * ldc + N, T(0));
    return;
  }
  thread_local std::vector<T> a_pack;
  a_pack.resize(static_cast<size_t>(((std::min(MC, M) + MR - 1) / MR) * MR * KC));
  const int64_t n_padded = ((N + NR - 1) / NR) * NR;
  for (int64_t pc = 0; pc < K; pc += KC) {
    const int64_t kc = std::min(KC, K - pc);
    const bool accumulate = pc > 0 || beta != T(0);
    const T* b_slab = packed + pc * n_padded;
    for (int64_t ic = 0; ic < M; ic += MC) {
      const int64_t mc = std::min(MC, M - ic);
      pack_a(false, A, lda, ic, mc, pc, kc, a_pack.data());
      for (int64_t jr = 0; jr < N; jr += NR)
        for (int64_t ir = 0; ir < mc; ir += MR)
          micro_kernel(kc, a_pack.data() + ir * kc, b_slab + jr * kc,
                       C + (ic + ir) * ldc + jr, ldc, std::min(MR, mc - ir),
                       std::min(NR, N - jr), accumulate);
    }
  }
}

}  // namespace
}  // namespace generic_isa

void register_generic_activations(KernelTable& table);  // activations_generic.cpp
void register_generic_pointwise(KernelTable& table);    // pointwise_generic.cpp
void register_generic_fma_peak(KernelTable& table);     // fma_peak_generic.cpp
void register_generic_int8(KernelTable& table);         // int8_generic.cpp
void register_generic_bf16(KernelTable& table);         // bf16_generic.cpp

void register_generic(KernelTable& table) {
  table.isa = "generic";
  register_generic_activations(table);
  register_generic_pointwise(table);
  register_generic_fma_peak(table);
  register_generic_int8(table);
  register_generic_bf16(table);
  table.gemm_f32 = generic_isa::gemm<float>;
  table.gemm_f64 = generic_isa::gemm<double>;
  table.gemm_row_f32 = generic_isa::gemm_row<float>;
  table.gemm_row_f64 = generic_isa::gemm_row<double>;
  table.packed_b_size_f32 = table.packed_b_size_f64 = generic_isa::packed_b_size;
  table.pack_b_f32 = generic_isa::pack_b_whole<float>;
  table.pack_b_f64 = generic_isa::pack_b_whole<double>;
  table.gemm_packed_f32 = generic_isa::gemm_packed<float>;
  table.gemm_packed_f64 = generic_isa::gemm_packed<double>;
}

}  // namespace rnnkit
