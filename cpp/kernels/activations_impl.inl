// Shared sigmoid/tanh algorithm for the per-ISA files activations_avx2.cpp and
// activations_avx512.cpp.
// NOT a standalone header: never compile it on its own and never include it anywhere else. Each
// activations_<isa>.cpp includes it inside its own namespace rnnkit::<isa>_isa::{anonymous},
// after <immintrin.h>, <cstddef>, <cstdint> and kernels.h, so every ISA compiles a private copy
// with its own flags and only register_<isa> is visible to the linker.
//
// The including file supplies traits types X (one per element type; they may be defined before
// or after the #include) with T (float/double), V (the vector), Mask (what lt returns),
//   set(s) (broadcast), add, sub, mul, div, fma(a, b, c) = a*b + c, max(lo, t) (returns t when t
//   is NaN), abs, sign_of (the sign bit alone), or_, round (to nearest even), lt (ordered, quiet),
//   select(m, if_true, if_false), and pow2_halves(n, s1, s2): s1 = 2^(n/2), s2 = 2^(n - n/2)
//   for integral n >= -1076 (double) / -150 (float), both normal.
// The loop over an array (apply) stays in each ISA file: tails are where the ISAs differ.
//
// Algorithm, built on one exp(t) for t <= 0:
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
// Measured max error against a long double reference (every 13th float bit pattern with
// |x| <= 100 (all binades, subnormals included), a 1e-5 grid over [-100, 100], 8M random
// doubles over [-100, 100] and 2^[-40, 7], and special values +-0, +-1e30, +-FLT_MAX/DBL_MAX,
// +-inf, NaN), AMD EPYC (Zen 5), both AVX2 and AVX-512 builds:
//   sigmoid_f32 2.41 ulp, tanh_f32 2.04 ulp, sigmoid_f64 2.26 ulp, tanh_f64 2.13 ulp.
// The harness is tests/test_kernels.py: `python tests/test_kernels.py --ulp` prints the max
// error per level over the tests' grid (2^20 points on [-20, 20], every binade, the range where
// sigmoid is subnormal, the branch points), `--ulp --full` over the sample above; the tests
// assert the figures above plus 0.25 ulp, since they are sample maxima, not proven bounds: on
// an Intel Xeon (AMX-class), GCC 12, AVX2 and AVX-512 alike, the same float bit patterns give
// tanh_f32 2.07 ulp, and random doubles have reached sigmoid_f64 2.38 ulp, tanh_f64 2.16 ulp.
// sigmoid(-1e30) = 0, sigmoid(1e30) = 1, tanh(+-1e30) = +-1 exactly; NaN in gives NaN out.
#ifndef RNNKIT_ACTIVATIONS_IMPL_INSIDE_ISA_FILE
#error "activations_impl.inl is included only by activations_<isa>.cpp, inside its ISA namespace"
#endif

// Per-type constants; polynomial coefficients are listed highest degree first (Horner order).
template <class T>
struct ExpTanhConsts;

template <>
struct ExpTanhConsts<float> {
  // Below -104 exp rounds to 0 in float (e^-104 < 2^-150, half the least subnormal); n >= -150.
  static constexpr float exp_lo = -104.0f;
  static constexpr float log2e = 1.44269504088896341f;
  static constexpr float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
  // e^r = 1 + r + r^2 P(r) on [-ln2/2, ln2/2] (Cephes expf minimax coefficients).
  static constexpr float exp_p[] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                    4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
  static constexpr float tanh_small = 0.3f;
  // tanh(a) = a + a^3 Q(a^2), Taylor coefficients of x^13 .. x^3.
  static constexpr float tanh_q[] = {0x1.d6d3d0e157de0p-9f,  -0x1.226e355e6c23dp-7f,
                                     0x1.664f4882c10fap-6f,  -0x1.ba1ba1ba1ba1cp-5f,
                                     0x1.1111111111111p-3f,  -0x1.5555555555555p-2f};
};

template <>
struct ExpTanhConsts<double> {
  // exp underflows to 0 in double below ln(2^-1075) ~ -745.13; n stays >= -1076.
  static constexpr double exp_lo = -745.2;
  static constexpr double log2e = 1.4426950408889634074;
  static constexpr double ln2_hi = 6.93145751953125e-1, ln2_lo = 1.42860682030941723212e-6;
  // e^r = 1 + r + r^2 P(r), P the Taylor series to r^13: |r| <= 0.347 leaves < 2^-60 truncation.
  static constexpr double exp_p[] = {
      1.0 / 87178291200.0, 1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0,
      1.0 / 3628800.0,     1.0 / 362880.0,     1.0 / 40320.0,     1.0 / 5040.0,
      1.0 / 720.0,         1.0 / 120.0,        1.0 / 24.0,        1.0 / 6.0,
      0.5};
  static constexpr double tanh_small = 0.3;
  // tanh(a) = a + a^3 Q(a^2), Taylor coefficients of x^25 .. x^3.
  static constexpr double tanh_q[] = {
      0x1.0b132d39a6050p-16,  -0x1.497d8eea25259p-15, 0x1.967e18afcafadp-14,
      -0x1.f57d7734d1664p-13, 0x1.3558248036744p-11,  -0x1.7da36452b75e3p-10,
      0x1.d6d3d0e157de0p-9,   -0x1.226e355e6c23dp-7,  0x1.664f4882c10fap-6,
      -0x1.ba1ba1ba1ba1cp-5,  0x1.1111111111111p-3,   -0x1.5555555555555p-2};
};

// c[0] x^(N-1) + ... + c[N-1] by Horner's rule, one fma per coefficient.
template <class X, size_t N>
inline typename X::V horner(const typename X::T (&c)[N], typename X::V x) {
  typename X::V p = X::set(c[0]);
#pragma GCC unroll 16
  for (size_t i = 1; i < N; ++i) p = X::fma(p, x, X::set(c[i]));
  return p;
}

// exp(t) for t <= 0 (or NaN).
template <class X>
inline typename X::V exp_nonpos(typename X::V t) {
  using V = typename X::V;
  using C = ExpTanhConsts<typename X::T>;
  t = X::max(X::set(C::exp_lo), t);  // NaN stays NaN: max returns its second operand
  const V n = X::round(X::mul(t, X::set(C::log2e)));
  V r = X::fma(n, X::set(-C::ln2_hi), t);
  r = X::fma(n, X::set(-C::ln2_lo), r);
  V s1, s2;
  X::pow2_halves(n, s1, s2);
  const V e_r = X::add(X::fma(horner<X>(C::exp_p, r), X::mul(r, r), r), X::set(1));
  return X::mul(X::mul(e_r, s1), s2);
}

// The lanes of v summed, and their maximum, in lane order (fixed: the same bits every call).
template <class X>
inline typename X::T lanes_sum(typename X::V v) {
  typename X::T lanes[X::W], sum = 0;
  X::store(lanes, v);
  for (int64_t k = 0; k < X::W; ++k) sum += lanes[k];
  return sum;
}
template <class X>
inline typename X::T lanes_max(typename X::V v) {
  typename X::T lanes[X::W];
  X::store(lanes, v);
  typename X::T best = lanes[0];
  for (int64_t k = 1; k < X::W; ++k) best = lanes[k] > best ? lanes[k] : best;
  return best;
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
  using C = ExpTanhConsts<typename X::T>;
  const V one = X::set(1);
  const V a = X::abs(x);
  const V z = exp_nonpos<X>(X::mul(a, X::set(-2)));
  const V big = X::div(X::sub(one, z), X::add(one, z));
  const V s = X::mul(a, a);
  const V series = X::fma(X::mul(horner<X>(C::tanh_q, s), s), a, a);
  const V r = X::select(X::lt(a, X::set(C::tanh_small)), series, big);
  return X::or_(r, X::sign_of(x));
}
