// AVX-512 sigmoid and tanh (float and double). The algorithm, its constants and its measured
// accuracy are in activations_impl.inl, compiled here with this file's flags; this file supplies
// the vector traits and the array loop with a masked tail.
// GCC 12's AVX-512 headers self-initialise their "undefined" operands, which -Wall reports as
// maybe-uninitialized at every inlined call (GCC PR105593, fixed in 13); silence it here only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

namespace rnnkit {
namespace avx512_isa {
namespace {

struct F32 {
  using T = float;
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int64_t W = 16;
  static V set(T v) { return _mm512_set1_ps(v); }
  static V load(const T* p) { return _mm512_loadu_ps(p); }
  static V loadz(Mask m, const T* p) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(T* p, V v) { _mm512_storeu_ps(p, v); }
  static void store(T* p, Mask m, V v) { _mm512_mask_storeu_ps(p, m, v); }
  static Mask tail(int64_t n) { return Mask((1u << n) - 1u); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V div(V a, V b) { return _mm512_div_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V abs(V a) { return _mm512_abs_ps(a); }
  static V sign_of(V a) { return _mm512_and_ps(a, _mm512_castsi512_ps(_mm512_set1_epi32(INT32_MIN))); }
  static V or_(V a, V b) { return _mm512_or_ps(a, b); }
  static V round(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static Mask lt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static V select(Mask m, V if_true, V if_false) { return _mm512_mask_blend_ps(m, if_false, if_true); }
  // 2^(n/2) and 2^(n - n/2) for integral n in [-150, 0], both normal.
  static void pow2_halves(V n, V& s1, V& s2) {
    const __m512i ni = _mm512_cvtps_epi32(n);
    const __m512i n1 = _mm512_srai_epi32(ni, 1);
    const __m512i n2 = _mm512_sub_epi32(ni, n1);
    const __m512i bias = _mm512_set1_epi32(127);
    s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, bias), 23));
    s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, bias), 23));
  }
};

struct F64 {
  using T = double;
  using V = __m512d;
  using Mask = __mmask8;
  static constexpr int64_t W = 8;
  static V set(T v) { return _mm512_set1_pd(v); }
  static V load(const T* p) { return _mm512_loadu_pd(p); }
  static V loadz(Mask m, const T* p) { return _mm512_maskz_loadu_pd(m, p); }
  static void store(T* p, V v) { _mm512_storeu_pd(p, v); }
  static void store(T* p, Mask m, V v) { _mm512_mask_storeu_pd(p, m, v); }
  static Mask tail(int64_t n) { return Mask((1u << n) - 1u); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static V sub(V a, V b) { return _mm512_sub_pd(a, b); }
  static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static V div(V a, V b) { return _mm512_div_pd(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V max(V a, V b) { return _mm512_max_pd(a, b); }
  static V abs(V a) { return _mm512_abs_pd(a); }
  static V sign_of(V a) { return _mm512_and_pd(a, _mm512_castsi512_pd(_mm512_set1_epi64(INT64_MIN))); }
  static V or_(V a, V b) { return _mm512_or_pd(a, b); }
  static V round(V a) { return _mm512_roundscale_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static Mask lt(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
  static V select(Mask m, V if_true, V if_false) { return _mm512_mask_blend_pd(m, if_false, if_true); }
  // 2^(n/2) and 2^(n - n/2) for integral n in [-1076, 0], both normal.
  static void pow2_halves(V n, V& s1, V& s2) {
    const __m512i ni = _mm512_cvtpd_epi64(n);
    const __m512i n1 = _mm512_srai_epi64(ni, 1);
    const __m512i n2 = _mm512_sub_epi64(ni, n1);
    const __m512i bias = _mm512_set1_epi64(1023);
    s1 = _mm512_castsi512_pd(_mm512_slli_epi64(_mm512_add_epi64(n1, bias), 52));
    s2 = _mm512_castsi512_pd(_mm512_slli_epi64(_mm512_add_epi64(n2, bias), 52));
  }
};

#define RNNKIT_ACTIVATIONS_IMPL_INSIDE_ISA_FILE
#include "kernels/activations_impl.inl"
#undef RNNKIT_ACTIVATIONS_IMPL_INSIDE_ISA_FILE

// Whole vectors, then one masked vector for the tail (masked-off lanes neither fault nor store).
// Each element is read before its own store, so y == x (in place) is fine.
template <class X, typename X::V (*F)(typename X::V)>
void apply(typename X::T* y, const typename X::T* x, int64_t n) {
  int64_t i = 0;
  for (; i + X::W <= n; i += X::W) X::store(y + i, F(X::load(x + i)));
  if (i < n) {
    const auto m = X::tail(n - i);
    X::store(y + i, m, F(X::loadz(m, x + i)));
  }
}

// exp(x - shift) into y and its sum (see ExpSumFn): lanes accumulate in one vector, the masked
// tail adds zeros in its off lanes, then the lanes are summed in order.
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
  if (i < n) {
    const auto m = X::tail(n - i);
    const auto e = exp_nonpos<X>(X::sub(X::loadz(m, x + i), s));
    X::store(y + i, m, e);
    acc = X::add(acc, X::select(m, e, X::set(0)));
  }
  T sum = lanes_sum<X>(acc);
  return sum;
}

// The maximum of x (see RowMaxFn): lane-wise maxima, the tail's off lanes holding x[0].
template <class X>
typename X::T row_max(const typename X::T* x, int64_t n) {
  using T = typename X::T;
  auto acc = X::set(x[0]);
  int64_t i = 0;
  for (; i + X::W <= n; i += X::W) acc = X::max(acc, X::load(x + i));
  if (i < n) {
    const auto m = X::tail(n - i);
    acc = X::max(acc, X::select(m, X::loadz(m, x + i), X::set(x[0])));
  }
  T best = lanes_max<X>(acc);
  return best;
}

}  // namespace
}  // namespace avx512_isa

// Called by register_avx512 (gemm_avx512.cpp).
void register_avx512_activations(KernelTable& table) {
  using namespace avx512_isa;
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
