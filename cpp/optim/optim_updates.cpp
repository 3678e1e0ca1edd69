// Fused optimiser updates (see optim_updates.h for the equations).
//
// Every option is a template parameter, so each instantiation is one branch-free loop over
// restrict pointers that the compiler vectorises. The operation order inside the loops is
// torch's (addcmul: self + value * t1 * t2; addcdiv: self + value * t1 / t2; add with alpha:
// self + alpha * other), so float64 trajectories agree with torch.optim to rounding.
#include "optim/optim_updates.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "runtime/parallel.h"
#include "runtime/threads.h"

namespace rnnkit {
namespace {

// Threads split a tensor into contiguous runs of whole chunks of this many elements (a multiple
// of every vector width and cache line), so chunk boundaries never fall inside a vector.
constexpr int64_t kAlign = 1024;

// body(lo, hi) over [0, n), split over threads when the tensor is large enough to pay for it.
// Elementwise updates: each element is computed identically whatever the split.
template <class F>
void parallel_elems(int64_t n, double flops_per_elem, F&& body) {
  if (n <= 0) return;
  const int nt = threads_for(flops_per_elem * double(n), (n + kAlign - 1) / kAlign);
  run_parallel(nt, [&](int part, int parts) {
    int64_t lo, hi;
    split_range(n, parts, part, kAlign, &lo, &hi);
    if (hi > lo) body(lo, hi);
  });
}

// Calls f(std::integral_constant<bool, b>{}) so a runtime flag becomes a template argument.
template <class F>
void with_flag(bool b, F&& f) {
  if (b)
    f(std::true_type{});
  else
    f(std::false_type{});
}

// torch.lerp(a, b, w) for a scalar weight: the branch is on w only, so it is loop-invariant.
template <bool SMALL_W, class T>
inline T lerp(T a, T b, T w, T one_minus_w) {
  return SMALL_W ? a + w * (b - a) : b - (b - a) * one_minus_w;
}

// torch.maximum: NaN in either operand gives NaN.
template <class T>
inline T nan_max(T a, T b) {
  const T m = b > a ? b : a;
  return b != b ? b : m;
}

// ------------------------------------------------------------------------------------- SGD

template <class T, bool WD, bool MOMENTUM, bool NESTEROV, bool FIRST>
void sgd_range(T* __restrict p, T* __restrict buf, const T* __restrict grad, int64_t lo,
               int64_t hi, T sign, T wd, T mom, T one_minus_damp, T neg_lr) {
  for (int64_t i = lo; i < hi; ++i) {
    T g = grad[i] * sign;
    if (WD) g = g + wd * p[i];
    if (MOMENTUM) {
      T b;
      if (FIRST) {
        b = g;
      } else {
        b = buf[i] * mom;
        b = b + one_minus_damp * g;
      }
      buf[i] = b;
      g = NESTEROV ? g + mom * b : b;
    }
    p[i] = p[i] + neg_lr * g;
  }
}

// --------------------------------------------------------------------------------- Adam(W)

template <class T, bool COUPLED_WD, bool AMSGRAD, bool SMALL_W>
void adam_range(T* __restrict p, T* __restrict m, T* __restrict v, T* __restrict vmax,
                const T* __restrict grad, int64_t lo, int64_t hi, T sign, T wd, T decay, T w1,
                T one_minus_w1, T beta2, T one_minus_beta2, T bc2_sqrt, T eps, T neg_step) {
  for (int64_t i = lo; i < hi; ++i) {
    T g = grad[i] * sign;
    T pi = p[i];
    if (COUPLED_WD) g = g + wd * pi;
    pi = pi * decay;  // decoupled decay; exactly p when decay == 1
    const T mi = lerp<SMALL_W>(m[i], g, w1, one_minus_w1);
    m[i] = mi;
    T vi = v[i] * beta2;
    vi = vi + one_minus_beta2 * g * g;
    v[i] = vi;
    if (AMSGRAD) {
      vi = nan_max(vmax[i], vi);
      vmax[i] = vi;
    }
    const T denom = std::sqrt(vi) / bc2_sqrt + eps;
    p[i] = pi + neg_step * mi / denom;
  }
}

// --------------------------------------------------------------------------------- RMSprop

template <class T, bool WD, bool CENTERED, bool MOMENTUM, bool SMALL_W>
void rmsprop_range(T* __restrict p, T* __restrict s, T* __restrict a, T* __restrict buf,
                   const T* __restrict grad, int64_t lo, int64_t hi, T sign, T wd, T alpha,
                   T one_minus_alpha, T w, T one_minus_w, T eps, T mom, T neg_lr) {
  for (int64_t i = lo; i < hi; ++i) {
    T g = grad[i] * sign;
    if (WD) g = g + wd * p[i];
    T si = s[i] * alpha;
    si = si + one_minus_alpha * g * g;
    s[i] = si;
    T avg;
    if (CENTERED) {
      const T ai = lerp<SMALL_W>(a[i], g, w, one_minus_w);
      a[i] = ai;
      avg = std::sqrt(si - ai * ai);  // torch: addcmul(a, a, value=-1); (-1 * a) * a is exact
    } else {
      avg = std::sqrt(si);
    }
    avg = avg + eps;
    if (MOMENTUM) {
      T b = buf[i] * mom;
      b = b + g / avg;
      buf[i] = b;
      p[i] = p[i] + neg_lr * b;
    } else {
      p[i] = p[i] + neg_lr * g / avg;
    }
  }
}

// --------------------------------------------------------------------------------- Adagrad

template <class T, bool WD>
void adagrad_range(T* __restrict p, T* __restrict sum, const T* __restrict grad, int64_t lo,
                   int64_t hi, T sign, T wd, T eps, T neg_clr) {
  for (int64_t i = lo; i < hi; ++i) {
    T g = grad[i] * sign;
    if (WD) g = g + wd * p[i];
    const T si = sum[i] + g * g;
    sum[i] = si;
    const T std_ = std::sqrt(si) + eps;
    p[i] = p[i] + neg_clr * g / std_;
  }
}

// ------------------------------------------------------------------------------ norms

// Norm reductions sum fixed chunks of this many elements, each in a fixed order.
constexpr int64_t kNormChunk = 16384;
enum class NormMode { one, two, inf, general };

template <NormMode MODE>
inline double norm_term(double a, double p) {
  if (MODE == NormMode::one) return a;
  if (MODE == NormMode::two) return a * a;
  return std::pow(a, p);
}

template <class T, NormMode MODE>
double chunk_abs_pow_sum(const T* __restrict x, int64_t n, double p) {
  // Eight independent accumulators: a fixed order the compiler may vectorise without
  // reassociating (no -ffast-math).
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  if (MODE == NormMode::inf) {
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; ++j) acc[j] = nan_max(acc[j], std::fabs(double(x[i + j])));
    for (; i < n; ++i) acc[0] = nan_max(acc[0], std::fabs(double(x[i])));
    double r = acc[0];
    for (int j = 1; j < 8; ++j) r = nan_max(r, acc[j]);
    return r;
  }
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += norm_term<MODE>(std::fabs(double(x[i + j])), p);
  for (; i < n; ++i) acc[0] += norm_term<MODE>(std::fabs(double(x[i])), p);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

template <class T, NormMode MODE>
double abs_pow_sum_mode(const T* x, int64_t n, double p) {
  if (n <= 0) return 0.0;
  const int64_t chunks = (n + kNormChunk - 1) / kNormChunk;
  std::vector<double> part(chunks);
  auto run = [&](int index, int parts) {
    int64_t c0, c1;
    split_range(chunks, parts, index, 1, &c0, &c1);
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t lo = c * kNormChunk, hi = std::min(n, lo + kNormChunk);
      part[c] = chunk_abs_pow_sum<T, MODE>(x + lo, hi - lo, p);
    }
  };
  const double flops = MODE == NormMode::general ? 20.0 * n : 2.0 * n;
  run_parallel(threads_for(flops, chunks), run);
  double r = part[0];
  for (int64_t c = 1; c < chunks; ++c)
    r = MODE == NormMode::inf ? nan_max(r, part[c]) : r + part[c];
  return r;
}

}  // namespace

template <class T>
void sgd_update(T* param, T* momentum_buffer, const T* grad, int64_t n, const SgdHyper& h) {
  const T sign = h.maximize ? T(-1) : T(1);
  const T wd = T(h.weight_decay), mom = T(h.momentum), omd = T(1.0 - h.dampening);
  const T neg_lr = T(-h.lr);
  with_flag(h.weight_decay != 0, [&](auto WD) {
    with_flag(h.momentum != 0, [&](auto MOM) {
      with_flag(h.nesterov, [&](auto NEST) {
        with_flag(h.first_step, [&](auto FIRST) {
          parallel_elems(n, 6.0, [&](int64_t lo, int64_t hi) {
            sgd_range<T, decltype(WD)::value, decltype(MOM)::value, decltype(NEST)::value,
                      decltype(FIRST)::value>(param, momentum_buffer, grad, lo, hi, sign, wd,
                                              mom, omd, neg_lr);
          });
        });
      });
    });
  });
}

template <class T>
void adam_update(T* param, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq, const T* grad, int64_t n,
                 const AdamHyper& h) {
  // Scalars exactly as torch's single-tensor Adam computes them in Python (double).
  const double t = double(h.step);
  const double bias_correction1 = 1.0 - std::pow(h.beta1, t);
  const double bias_correction2 = 1.0 - std::pow(h.beta2, t);
  const double step_size = h.lr / bias_correction1;
  const double bc2_sqrt = std::pow(bias_correction2, 0.5);
  const bool coupled = h.weight_decay != 0 && !h.decoupled_weight_decay;
  const double decay = (h.weight_decay != 0 && h.decoupled_weight_decay)
                           ? 1.0 - h.lr * h.weight_decay : 1.0;
  const T w1 = T(1.0 - h.beta1);
  const T one_minus_w1 = T(1) - w1;
  const T sign = h.maximize ? T(-1) : T(1);
  with_flag(coupled, [&](auto WD) {
    with_flag(h.amsgrad, [&](auto AMS) {
      with_flag(std::fabs(double(w1)) < 0.5, [&](auto SMALL) {
        parallel_elems(n, 14.0, [&](int64_t lo, int64_t hi) {
          adam_range<T, decltype(WD)::value, decltype(AMS)::value, decltype(SMALL)::value>(
              param, exp_avg, exp_avg_sq, max_exp_avg_sq, grad, lo, hi, sign,
              T(h.weight_decay), T(decay), w1, one_minus_w1, T(h.beta2), T(1.0 - h.beta2),
              T(bc2_sqrt), T(h.eps), T(-step_size));
        });
      });
    });
  });
}

template <class T>
void rmsprop_update(T* param, T* square_avg, T* grad_avg, T* momentum_buffer, const T* grad,
                    int64_t n, const RmspropHyper& h) {
  const T sign = h.maximize ? T(-1) : T(1);
  const T one_minus_alpha = T(1.0 - h.alpha);
  const T w = one_minus_alpha;  // torch: grad_avg.lerp_(grad, 1 - alpha)
  const T one_minus_w = T(1) - w;
  with_flag(h.weight_decay != 0, [&](auto WD) {
    with_flag(h.centered, [&](auto CEN) {
      with_flag(h.momentum > 0, [&](auto MOM) {
        with_flag(std::fabs(double(w)) < 0.5, [&](auto SMALL) {
          parallel_elems(n, 12.0, [&](int64_t lo, int64_t hi) {
            rmsprop_range<T, decltype(WD)::value, decltype(CEN)::value, decltype(MOM)::value,
                          decltype(SMALL)::value>(
                param, square_avg, grad_avg, momentum_buffer, grad, lo, hi, sign,
                T(h.weight_decay), T(h.alpha), one_minus_alpha, w, one_minus_w, T(h.eps),
                T(h.momentum), T(-h.lr));
          });
        });
      });
    });
  });
}

template <class T>
void adagrad_update(T* param, T* sum, const T* grad, int64_t n, const AdagradHyper& h) {
  const double clr = h.lr / (1.0 + double(h.step - 1) * h.lr_decay);
  const T sign = h.maximize ? T(-1) : T(1);
  with_flag(h.weight_decay != 0, [&](auto WD) {
    parallel_elems(n, 8.0, [&](int64_t lo, int64_t hi) {
      adagrad_range<T, decltype(WD)::value>(param, sum, grad, lo, hi, sign, T(h.weight_decay),
                                            T(h.eps), T(-clr));
    });
  });
}

template <class T>
double abs_pow_sum(const T* x, int64_t n, double p) {
  if (std::isinf(p) && p > 0) return abs_pow_sum_mode<T, NormMode::inf>(x, n, p);
  if (p == 2.0) return abs_pow_sum_mode<T, NormMode::two>(x, n, p);
  if (p == 1.0) return abs_pow_sum_mode<T, NormMode::one>(x, n, p);
  return abs_pow_sum_mode<T, NormMode::general>(x, n, p);
}

#define RNNKIT_INSTANTIATE(T)                                                                  \
  template void sgd_update<T>(T*, T*, const T*, int64_t, const SgdHyper&);                     \
  template void adam_update<T>(T*, T*, T*, T*, const T*, int64_t, const AdamHyper&);           \
  template void rmsprop_update<T>(T*, T*, T*, T*, const T*, int64_t, const RmspropHyper&);     \
  template void adagrad_update<T>(T*, T*, const T*, int64_t, const AdagradHyper&);             \
  template double abs_pow_sum<T>(const T*, int64_t, double);
RNNKIT_INSTANTIATE(float)
RNNKIT_INSTANTIATE(double)
#undef RNNKIT_INSTANTIATE

}  // namespace rnnkit
