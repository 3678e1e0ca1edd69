// AVX2+FMA sigmoid and tanh (float and double). The algorithm, its constants and its measured
// accuracy are in activations_impl.inl, compiled here with this file's flags; this file supplies
// the vector traits and the array loop with a stack-buffer tail.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

namespace rnnkit {
namespace avx2_isa {
namespace {

struct F32 {
  using T = float;
  using V = __m256;
  using Mask = __m256;
  static constexpr int64_t W = 8;
  static V set(T v) { return _mm256_set1_ps(v); }
  static V load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, V v) { _mm256_storeu_ps(p, v); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V div(V a, V b) { return _mm256_div_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V sign_of(V a) { return _mm256_and_ps(a, _mm256_set1_ps(-0.0f)); }
  static V abs(V a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static V or_(V a, V b) { return _mm256_or_ps(a, b); }
  static V round(V a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static Mask lt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static V select(Mask m, V if_true, V if_false) { return _mm256_blendv_ps(if_false, if_true, m); }
  // 2^(n/2) and 2^(n - n/2) for integral n in [-150, 0], both normal.
  static void pow2_halves(V n, V& s1, V& s2) {
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i n1 = _mm256_srai_epi32(ni, 1);
    const __m256i n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  }
};

struct F64 {
  using T = double;
  using V = __m256d;
  using Mask = __m256d;
  static constexpr int64_t W = 4;
  static V set(T v) { return _mm256_set1_pd(v); }
  static V load(const T* p) { return _mm256_loadu_pd(p); }
  static void store(T* p, V v) { _mm256_storeu_pd(p, v); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static V sub(V a, V b) { return _mm256_sub_pd(a, b); }
  static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static V div(V a, V b) { return _mm256_div_pd(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V max(V a, V b) { return _mm256_max_pd(a, b); }
  static V sign_of(V a) { return _mm256_and_pd(a, _mm256_set1_pd(-0.0)); }
  static V abs(V a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a); }
  static V or_(V a, V b) { return _mm256_or_pd(a, b); }
  static V round(V a) { return _mm256_round_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static Mask lt(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
  static V select(Mask m, V if_true, V if_false) { return _mm256_blendv_pd(if_false, if_true, m); }
  // 2^(n/2) and 2^(n - n/2) for integral n in [-1076, 0], both normal. AVX2 has no double ->
  // int64 conversion, but n fits int32: halve in 32-bit lanes, then widen.
  static void pow2_halves(V n, V& s1, V& s2) {
    const __m128i ni = _mm256_cvtpd_epi32(n);
    const __m128i n1 = _mm_srai_epi32(ni, 1);
    const __m128i n2 = _mm_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi64x(1023);
    s1 = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(n1), bias), 52));
    s2 = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(n2), bias), 52));
  }
};

#define RNNKIT_ACTIVATIONS_IMPL_INSIDE_ISA_FILE
#include "kernels/activations_impl.inl"
#undef RNNKIT_ACTIVATIONS_IMPL_INSIDE_ISA_FILE

// Whole vectors, then the tail through a zero-filled stack vector (AVX2 masked stores are
// microcoded and slow on AMD). Each element is read before its own store, so y == x is fine.
template <class X, typename X::V (*F)(typename X::V)>
void apply(typename X::T* y, const typename X::T* x, int64_t n) {
  using T = typename X::T;
  int64_t i = 0;
  for (; i + X::W <= n; i += X::W) X::store(y + i, F(X::load(x + i)));
  if (i < n) {
    T buf[X::W] = {};
    for (int64_t j = 0; j < n - i; ++j) buf[j] = x[i + j];
    X::store(buf, F(X::load(buf)));
    for (int64_t j = 0; j < n - i; ++j) y[i + j] = buf[j];
  }
}

// exp(x - shift) into y and its sum (see ExpSumFn): lanes accumulate in one vector; the tail
// goes through a stack vector and only its valid lanes are added, after the lanes' sum.
template <class X>
typename X::T exp_sum(typename X::T* y, const typename X::T* x, int64_t n, typename X::T shift) {
  using T = typename X::T;
  const auto s = X::set(shift);
  auto acc = X::set(0);
  int64_t i = 0;
  for (; i + X::W <= n; i += X::W) {
    const auto e = exp_nonpos<X>(X::sub(X::load(x + i), s));
    X::store(y + i, e);
    acc = X::add(acc, e);
  }
  T sum = lanes_sum<X>(acc);
  if (i < n) {
    T buf[X::W] = {};
    for (int64_t j = 0; j < n - i; ++j) buf[j] = x[i + j];
    X::store(buf, exp_nonpos<X>(X::sub(X::load(buf), s)));
    for (int64_t j = 0; j < n - i; ++j) {
      y[i + j] = buf[j];
      sum += buf[j];
    }
  }
  return sum;
}

// The maximum of x (see RowMaxFn): lane-wise maxima, then the tail element by element.
template <class X>
typename X::T row_max(const typename X::T* x, int64_t n) {
  using T = typename X::T;
  auto acc = X::set(x[0]);
  int64_t i = 0;
  for (; i + X::W <= n; i += X::W) acc = X::max(acc, X::load(x + i));
  T best = lanes_max<X>(acc);
  for (; i < n; ++i) best = x[i] > best ? x[i] : best;
  return best;
}

}  // namespace
}  // namespace avx2_isa

// Called by register_avx2 (gemm_avx2.cpp).
void register_avx2_activations(KernelTable& table) {
  using namespace avx2_isa;
  table.sigmoid_f32 = apply<F32, sigmoid_v<F32>>;
  table.tanh_f32 = apply<F32, tanh_v<F32>>;
  table.sigmoid_f64 = apply<F64, sigmoid_v<F64>>;
  table.tanh_f64 = apply<F64, tanh_v<F64>>;
  table.exp_sum_f32 = exp_sum<F32>;
  table.exp_sum_f64 = exp_sum<F64>;
  table.row_max_f32 = row_max<F32>;
  table.row_max_f64 = row_max<F64>;
}

}  // namespace rnnkit
