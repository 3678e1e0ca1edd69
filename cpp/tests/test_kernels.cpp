// C++ test of every kernel table this CPU and build can run (kernels/kernels.h), no framework:
//   gemm and pack_b + gemm_packed, float and double, all four (transA, transB), beta 0 and 1, at
//   edge sizes, leading dimensions wider than the matrices, K = 0 and empty M or N, against a
//   naive triple loop in long double; sigmoid and tanh against std::exp / std::tanh in long
//   double (max ulp error), saturation, NaN, awkward lengths and y == x in place; exp_sum and
//   row_max (softmax's pieces) against long double; the int8 products against exact integer
//   arithmetic, bitwise equal on every level; the bfloat16 products against long double.
// Prints the max errors per level and returns non-zero if anything fails. Built with
// -DRNNKIT_BUILD_TESTS=ON and run by ctest (CMakeLists.txt, .ci/run). The finer-grained Python
// tests of the same kernels are tests/test_kernels.py.
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/kernels.h"

namespace {

using namespace rnnkit;

int failures = 0;

void fail(const char* level, const char* what, const char* fmt, ...) {
  ++failures;
  if (failures > 40) return;  // enough to see the pattern
  std::printf("FAIL %s %s: ", level, what);
  va_list args;
  va_start(args, fmt);
  std::vprintf(fmt, args);
  va_end(args);
  std::printf("\n");
}

template <class T> const char* type_name();
template <> const char* type_name<float>() { return "f32"; }
template <> const char* type_name<double>() { return "f64"; }

template <class T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// ---- GEMM ----------------------------------------------------------------------------------

constexpr double kGuard = 3.0;  // finite and nonzero: a stray store changes it

struct GemmStats {
  double worst_ratio = 0;  // max |C - ref| / tol
  double worst_abs = 0;
  int cases = 0;
};

// One product C = beta*C0 + op(A) op(B) through gemm or pack_b + gemm_packed, with row strides
// `pad` wider than the matrices and guard cells around C, checked element by element against
// the long double triple loop. Tolerance as in tests/test_kernels.py: (K + 2) eps sum |a||b|
// (+ |C0|) bounds the rounding of a K-term fma chain (Higham 3.1) with room to spare.
template <class T>
void gemm_case(const KernelTable& k, bool packed, bool tA, bool tB, int64_t M, int64_t N,
               int64_t K, int beta, int64_t pad, std::mt19937_64& rng, GemmStats& st) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  const int64_t lda = (tA ? M : K) + pad, ldb = (tB ? K : N) + pad, ldc = N + pad;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  // Padding of A and B is NaN: reading it would poison the result.
  std::vector<T> A(size_t((tA ? K : M) * lda + 1), nan), B(size_t((tB ? N : K) * ldb + 1), nan);
  auto a = [&](int64_t m, int64_t kk) -> T& { return tA ? A[kk * lda + m] : A[m * lda + kk]; };
  auto b = [&](int64_t kk, int64_t n) -> T& { return tB ? B[n * ldb + kk] : B[kk * ldb + n]; };
  for (int64_t m = 0; m < M; ++m)
    for (int64_t kk = 0; kk < K; ++kk) a(m, kk) = T(u(rng));
  for (int64_t kk = 0; kk < K; ++kk)
    for (int64_t n = 0; n < N; ++n) b(kk, n) = T(u(rng));
  // C has a guard row above and below; rows are ldc wide, the last pad columns guards.
  std::vector<T> Cbuf(size_t((M + 2) * ldc), T(kGuard));
  T* C = Cbuf.data() + ldc;
  std::vector<T> C0(size_t(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      C0[m * N + n] = T(u(rng));
      C[m * ldc + n] = beta ? C0[m * N + n] : nan;  // beta = 0 must not read C
    }

  if (packed) {
    const PackedGemm<T> pg = packed_gemm_fns<T>(k);
    std::vector<T> buf(size_t(pg.size(K, N)) + 1);
    pg.pack(tB, K, N, B.data(), ldb, buf.data());
    pg.gemm(M, N, K, A.data(), lda, buf.data(), T(beta), C, ldc);
  } else {
    gemm_fn<T>(k)(tA, tB, M, N, K, A.data(), lda, B.data(), ldb, T(beta), C, ldc);
  }

  const double eps = std::numeric_limits<T>::epsilon();
  char what[160];
  std::snprintf(what, sizeof what, "%s %s tA=%d tB=%d M=%lld N=%lld K=%lld beta=%d",
                type_name<T>(), packed ? "gemm_packed" : "gemm", tA, tB, (long long)M,
                (long long)N, (long long)K, beta);
  const char* level = k.isa;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      long double ref = beta ? (long double)C0[m * N + n] : 0.0L, mag = beta ? std::fabs(ref) : 0;
      for (int64_t kk = 0; kk < K; ++kk) {
        const long double p = (long double)a(m, kk) * (long double)b(kk, n);
        ref += p;
        mag += std::fabs(p);
      }
      const double err = std::fabs(double((long double)C[m * ldc + n] - ref));
      const double tol = (K + 2) * eps * double(mag);
      if (!(err <= tol)) {  // NaN fails too
        char w[220];
        std::snprintf(w, sizeof w, "%s at (%lld, %lld)", what, (long long)m, (long long)n);
        fail(level, w, "abs err %.3e > tol %.3e", err, tol);
        return;
      }
      st.worst_abs = std::max(st.worst_abs, err);
      if (tol > 0) st.worst_ratio = std::max(st.worst_ratio, err / tol);
    }
  for (int64_t i = 0; i < (M + 2) * ldc; ++i) {
    const int64_t r = i / ldc - 1, c = i % ldc;
    if (r >= 0 && r < M && c < N) continue;
    if (!same_bits(Cbuf[i], T(kGuard))) {
      fail(level, what, "wrote the guard cell %lld (value %g)", (long long)i, double(Cbuf[i]));
      return;
    }
  }
  ++st.cases;
}

template <class T>
void test_gemm(const KernelTable& k) {
  // Edge sizes of every ISA's blocking at once (gemm_<isa>.cpp: W 2..16, MR 4/6/8, NR 8..32,
  // KC 256): tails of a vector, a row tile, a column sliver and a K slab, each side.
  const int64_t edges[] = {1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 65, 255, 257};
  const int64_t small[] = {1, 4, 7, 17, 33};
  std::mt19937_64 rng(42);
  GemmStats st;
  int sample = 0;
  for (int packed = 0; packed < 2; ++packed)
    for (int t = 0; t < 4; ++t) {
      const bool tA = t & 2, tB = t & 1;
      if (packed && tA) continue;  // gemm_packed takes A untransposed
      for (int d = 0; d < 3; ++d)
        for (int64_t v : edges) {
          int64_t mnk[3];
          for (int64_t& x : mnk) x = small[(sample++ * 7 + d) % 5];
          mnk[d] = v;
          for (int beta = 0; beta < 2; ++beta)
            gemm_case<T>(k, packed, tA, tB, mnk[0], mnk[1], mnk[2], beta, 1 + sample % 9, rng,
                         st);
        }
      // more rows than any MC (the large-M path), and K = 0 / empty M or N
      for (int beta = 0; beta < 2; ++beta) {
        gemm_case<T>(k, packed, tA, tB, 200, 33, 17, beta, 3, rng, st);
        gemm_case<T>(k, packed, tA, tB, 5, 7, 0, beta, 2, rng, st);
        gemm_case<T>(k, packed, tA, tB, 0, 7, 5, beta, 2, rng, st);
        gemm_case<T>(k, packed, tA, tB, 5, 0, 5, beta, 2, rng, st);
      }
    }
  std::printf("  gemm %s: %d products, max abs err %.3e, max err/tol %.3f\n", type_name<T>(),
              st.cases, st.worst_abs, st.worst_ratio);
}

// K = 0 with beta = 1 must leave C bitwise alone (gemm_case checks values, not bits).
template <class T>
void test_gemm_k0_keeps_c(const KernelTable& k) {
  T A[1] = {}, B[1] = {}, C[6] = {T(0.1), T(-0.2), T(0.3), T(-0.0), T(5e-30), T(7)};
  T before[6];
  std::memcpy(before, C, sizeof C);
  gemm_fn<T>(k)(false, false, 2, 3, 0, A, 1, B, 3, T(1), C, 3);
  const PackedGemm<T> pg = packed_gemm_fns<T>(k);
  pg.gemm(2, 3, 0, A, 1, B, T(1), C, 3);
  if (std::memcmp(before, C, sizeof C) != 0)
    fail(k.isa, type_name<T>(), "K = 0, beta = 1 changed C");
}

// ---- activations ---------------------------------------------------------------------------

// Documented max errors of the SIMD levels (kernels/activations_impl.inl), plus the margin
// tests/test_kernels.py allows (they are sample maxima, not proofs); the generic level is libm
// (activations_generic.cpp), held to 3 ulp where the result is normal.
double ulp_bound(const char* level, bool sigmoid, bool f64) {
  if (std::strcmp(level, "generic") == 0) return 3.0;
  const double doc = sigmoid ? (f64 ? 2.26 : 2.41) : (f64 ? 2.13 : 2.04);
  return doc + 0.25;
}

template <class T>
long double ulp_of(long double ref) {
  int e;
  std::frexp(std::fabs(ref), &e);  // |ref| = m 2^e, m in [0.5, 1)
  if (ref == 0) e = std::numeric_limits<T>::min_exponent;
  e = std::max(e, std::numeric_limits<T>::min_exponent);
  return std::ldexp(1.0L, e - std::numeric_limits<T>::digits);
}

template <class T>
void test_activation(const KernelTable& k, bool sigmoid) {
  const Activations<T> act = activations<T>(k);
  const UnaryFn<T> f = sigmoid ? act.sigmoid : act.tanh;
  const char* name = sigmoid ? "sigmoid" : "tanh";
  const char* level = k.isa;
  char what[64];
  std::snprintf(what, sizeof what, "%s %s", name, type_name<T>());

  // Finite inputs: [-20, 20] in steps of 2^-10, magnitudes 2^e for e over every binade (and
  // the subnormals), the region where sigmoid(x) is subnormal, both signs.
  std::vector<T> x;
  for (int i = -20 * 1024; i <= 20 * 1024; ++i) x.push_back(T(std::ldexp(double(i), -10)));
  const int lo = std::numeric_limits<T>::min_exponent - std::numeric_limits<T>::digits;
  for (double e = lo; e <= 10; e += 1.0 / 16) {
    x.push_back(T(std::exp2(e)));
    x.push_back(T(-std::exp2(e)));
  }
  const double ub = sizeof(T) == 4 ? 106 : 746, lb = sizeof(T) == 4 ? 86 : 707;
  for (double v = lb; v <= ub; v += 1.0 / 64) x.push_back(T(-v));
  std::vector<T> y(x.size());
  f(y.data(), x.data(), int64_t(x.size()));

  const bool ld_ok = std::numeric_limits<long double>::digits >= std::numeric_limits<T>::digits + 10;
  const double bound = ulp_bound(level, sigmoid, sizeof(T) == 8);
  const bool generic = std::strcmp(level, "generic") == 0;
  const long double least_normal = std::numeric_limits<T>::min();
  double worst = 0, worst_x = 0, sub_abs = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const long double xl = x[i];
    const long double ref = sigmoid ? 1.0L / (1.0L + std::exp(-xl)) : std::tanh(xl);
    if (std::isnan(y[i])) {
      fail(level, what, "NaN for finite x = %.17g", double(x[i]));
      return;
    }
    const long double err = std::fabs((long double)y[i] - ref);
    if (generic && std::fabs(ref) < least_normal) {  // libm's exp overflows: flushed to zero
      sub_abs = std::max(sub_abs, double(err));
      continue;
    }
    const double ulps = double(err / ulp_of<T>(ref));
    if (ulps > worst) worst = ulps, worst_x = double(x[i]);
  }
  if (ld_ok) {
    std::printf("  %-7s %s: max %.3f ulp at x = %.9g (bound %.2f)\n", name, type_name<T>(),
                worst, worst_x, bound);
    if (worst > bound) fail(level, what, "%.3f ulp > bound %.2f", worst, bound);
  } else {
    std::printf("  %-7s %s: ulp check skipped (long double has %d bits)\n", name,
                type_name<T>(), std::numeric_limits<long double>::digits);
  }
  if (sub_abs > double(least_normal)) fail(level, what, "below-normal abs err %.3g", sub_abs);

  // Saturation and NaN: exact values.
  const T inf = std::numeric_limits<T>::infinity(), big = std::numeric_limits<T>::max();
  const T sx[] = {-inf, inf, -big, big, T(-1e30), T(1e30), T(0), T(-0.0),
                  std::numeric_limits<T>::quiet_NaN()};
  T sy[9];
  f(sy, sx, 9);
  for (int i = 0; i < 6; ++i) {
    const T want = (i % 2) ? T(1) : (sigmoid ? T(0) : T(-1));
    if (!same_bits(sy[i], want)) fail(level, what, "f(%g) = %.17g, not saturated", double(sx[i]), double(sy[i]));
  }
  const T z0 = sigmoid ? T(0.5) : T(0), z1 = sigmoid ? T(0.5) : T(-0.0);
  if (!same_bits(sy[6], z0) || !same_bits(sy[7], z1))
    fail(level, what, "f(+-0) = %g, %g", double(sy[6]), double(sy[7]));
  if (!std::isnan(sy[8])) fail(level, what, "f(NaN) = %g, not NaN", double(sy[8]));

  // Lengths that are not multiples of any vector width, into a guarded buffer and in place:
  // every element must equal the same input's result in the long array above.
  for (int64_t n : {0, 1, 3, 7, 8, 9, 15, 16, 17, 53}) {
    std::vector<T> out(size_t(n + 32), T(kGuard)), in(size_t(n + 32), T(kGuard));
    for (int64_t i = 0; i < n; ++i) in[16 + i] = x[size_t(i * 997 + 13) % x.size()];
    f(out.data() + 16, in.data() + 16, n);
    f(in.data() + 16, in.data() + 16, n);  // in place: y == x
    for (int64_t i = 0; i < n + 32; ++i) {
      const bool inside = i >= 16 && i < 16 + n;
      const T want = inside ? y[size_t((i - 16) * 997 + 13) % x.size()] : T(kGuard);
      if (!same_bits(out[i], want) || !same_bits(in[i], want)) {
        fail(level, what, "length n = %lld: element %lld wrong (or written past y)",
             (long long)n, (long long)(i - 16));
        break;
      }
    }
  }
}

// ---- softmax pieces: exp_sum, row_max ------------------------------------------------------

template <class T>
void test_softmax_pieces(const KernelTable& k) {
  const char* level = k.isa;
  char what[64];
  std::snprintf(what, sizeof what, "exp_sum/row_max %s", type_name<T>());
  std::mt19937 rng(7);
  std::normal_distribution<double> normal(0.0, 4.0);
  for (int64_t n : {1, 2, 7, 8, 15, 16, 17, 31, 33, 1000}) {
    std::vector<T> x(size_t(n + 32), T(kGuard)), y(size_t(n + 32), T(kGuard));
    for (int64_t i = 0; i < n; ++i) x[16 + i] = T(normal(rng));
    if (n > 2) x[17] = -std::numeric_limits<T>::infinity();  // a masked class: exp gives 0
    long double mref = x[16];
    for (int64_t i = 1; i < n; ++i) mref = std::max<long double>(mref, x[16 + i]);
    const T m = row_max_fn<T>(k)(x.data() + 16, n);
    if (!same_bits(m, T(mref))) fail(level, what, "row_max n=%lld: %g, not %g", (long long)n,
                                     double(m), double(mref));
    const T sum = exp_sum_fn<T>(k)(y.data() + 16, x.data() + 16, n, m);
    long double sref = 0;
    for (int64_t i = 0; i < n; ++i) {
      // The kernel's argument is x - m rounded to T: its exp is what it can get right.
      const long double e = std::exp((long double)T(x[16 + i] - m));
      sref += e;
      const long double err = std::fabs((long double)y[16 + i] - e);
      if (err > 8 * ulp_of<T>(e) + std::numeric_limits<T>::denorm_min())
        fail(level, what, "exp n=%lld i=%lld: %.9g vs %.9Lg", (long long)n, (long long)i,
             double(y[16 + i]), e);
    }
    if (n > 2 && y[17] != T(0)) fail(level, what, "exp(-inf) = %g, not 0", double(y[17]));
    if (std::fabs((long double)sum - sref) > 8 * n * ulp_of<T>(sref))
      fail(level, what, "sum n=%lld: %.9g vs %.9Lg", (long long)n, double(sum), sref);
    for (int64_t i : {int64_t(0), int64_t(1), int64_t(15), 16 + n, 16 + n + 15})
      if (!same_bits(y[size_t(i)], T(kGuard))) fail(level, what, "wrote outside y (n=%lld)",
                                                    (long long)n);
  }
  const T nan = std::numeric_limits<T>::quiet_NaN();
  T xs[3] = {T(1), nan, T(2)}, ys[3];
  if (!std::isnan(exp_sum_fn<T>(k)(ys, xs, 3, T(2)))) fail(level, what, "NaN did not propagate");
}

// ---- int8 products -------------------------------------------------------------------------

// gemm_q8 against the scheme done by hand in integers: per-column weight scales, per-row
// activation scales, exact sums; every level must give the first level's bits.
std::vector<float> q8_reference_run(const KernelTable& k, int64_t M, int64_t N, int64_t K,
                                    const std::vector<float>& A, const std::vector<float>& W) {
  const PackedGemm<float> pg = q8_gemm_fns(k);
  std::vector<float> packed(size_t(pg.size(K, N)));
  pg.pack(true, K, N, W.data(), K, packed.data());
  std::vector<float> C(size_t(M * N), 1.0f);
  pg.gemm(M, N, K, A.data(), K, packed.data(), 0.0f, C.data(), N);
  return C;
}

void test_int8(const KernelTable& k, std::vector<std::vector<float>>* first) {
  const char* level = k.isa;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  const int64_t shapes[][3] = {{1, 1, 1}, {3, 15, 5}, {4, 16, 4}, {5, 17, 63}, {70, 40, 130}};
  size_t idx = 0;
  for (const auto& s : shapes) {
    const int64_t M = s[0], N = s[1], K = s[2];
    std::vector<float> A(size_t(M * K)), W(size_t(N * K));
    for (float& v : A) v = uni(rng);
    for (float& v : W) v = uni(rng);
    const std::vector<float> C = q8_reference_run(k, M, N, K, A, W);
    auto quant = [](const float* v, int64_t n, std::vector<long>& q) {
      float amax = 0;
      for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(v[i]));
      const float inv = 127.0f / amax;
      q.resize(size_t(n));
      for (int64_t i = 0; i < n; ++i) q[i] = std::lrint(v[i] * inv);
      return amax / 127.0f;
    };
    double worst = 0;
    std::vector<long> qa, qw;
    for (int64_t m = 0; m < M; ++m) {
      const float sa = quant(A.data() + m * K, K, qa);
      for (int64_t n = 0; n < N; ++n) {
        const float sw = quant(W.data() + n * K, K, qw);
        long acc = 0;
        for (int64_t i = 0; i < K; ++i) acc += qa[i] * qw[i];
        const double want = double(sa) * sw * double(acc);
        worst = std::max(worst, std::fabs(C[m * N + n] - want) / (1e-6 + std::fabs(want)));
      }
    }
    if (worst > 1e-5) fail(level, "int8", "M=%lld N=%lld K=%lld: relative error %.3g",
                           (long long)M, (long long)N, (long long)K, worst);
    if (first->size() <= idx) {
      first->push_back(C);
    } else if (std::memcmp((*first)[idx].data(), C.data(), C.size() * sizeof(float)) != 0) {
      fail(level, "int8", "M=%lld N=%lld K=%lld: bits differ from the first level",
           (long long)M, (long long)N, (long long)K);
    }
    ++idx;
  }
  std::printf("  int8 (%s): %zu shapes checked\n", k.q8_kernel, idx);
}

// gemm_bf16 against long double sums of the operands rounded to bfloat16 (the rounding done here
// by hand: to nearest, ties to even), within float32's summation error.
void test_bf16(const KernelTable& k) {
  const char* level = k.isa;
  auto round_bf16 = [](float v) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    float r;
    std::memcpy(&r, &u, 4);
    return r;
  };
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  const int64_t shapes[][3] = {{1, 1, 1}, {3, 15, 5}, {4, 16, 4}, {5, 17, 63}, {70, 40, 131}};
  const PackedGemm<float> pg = bf16_gemm_fns(k);
  for (const auto& s : shapes) {
    const int64_t M = s[0], N = s[1], K = s[2];
    std::vector<float> A(size_t(M * K)), W(size_t(N * K));
    for (float& v : A) v = uni(rng);
    for (float& v : W) v = uni(rng);
    std::vector<float> packed(size_t(pg.size(K, N))), C(size_t(M * N), 2.0f);
    pg.pack(true, K, N, W.data(), K, packed.data());
    pg.gemm(M, N, K, A.data(), K, packed.data(), 1.0f, C.data(), N);  // beta 1: C0 = 2
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        long double ref = 2, mag = 2;
        for (int64_t i = 0; i < K; ++i) {
          const long double p = (long double)round_bf16(A[m * K + i]) * round_bf16(W[n * K + i]);
          ref += p;
          mag += std::fabs(p);
        }
        if (std::fabs(C[m * N + n] - ref) > (K + 2) * std::ldexp(1.0L, -24) * mag) {
          fail(level, "bf16", "M=%lld N=%lld K=%lld: %g vs %Lg", (long long)M, (long long)N,
               (long long)K, double(C[m * N + n]), ref);
          return;
        }
      }
  }
  std::printf("  bf16 (%s): 5 shapes checked\n", k.bf16_kernel);
}

}  // namespace

int main() {
  SimdLevel levels[3];
  const int n = available_simd_levels(levels);
  std::vector<std::vector<float>> int8_first;  // the first level's int8 results
  for (int i = 0; i < n; ++i) {
    const KernelTable& k = kernel_table(levels[i]);
    std::printf("%s:\n", simd_level_name(levels[i]));
    test_gemm<float>(k);
    test_gemm<double>(k);
    test_gemm_k0_keeps_c<float>(k);
    test_gemm_k0_keeps_c<double>(k);
    for (bool sigmoid : {true, false}) {
      test_activation<float>(k, sigmoid);
      test_activation<double>(k, sigmoid);
    }
    test_softmax_pieces<float>(k);
    test_softmax_pieces<double>(k);
    test_int8(k, &int8_first);
    test_bf16(k);
  }
  if (failures) {
    std::printf("%d check(s) FAILED\n", failures);
    return 1;
  }
  std::printf("all kernel checks passed (%d levels)\n", n);
  return 0;
}
