// CTC loss kernels: the recursions and the gradient are documented in losses/ctc.h.
#include "losses/ctc.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "runtime/parallel.h"
#include "runtime/threads.h"

namespace rnnkit {
namespace {

// Work per (t, s) cell of α or β, for the thread policy: a three-term log-sum-exp is three exp
// and one log (~10 flops each as polynomials), the backward adds one log-add per cell and one
// exp per class. Only the order of magnitude matters.
constexpr double kFlopsPerCell = 40.0;

template <class Real>
constexpr Real neg_inf() {
  return -std::numeric_limits<Real>::infinity();
}

// log(e^a + e^b), without overflow (the larger term is factored out) or cancellation.
// When both are -inf the max trick would compute -inf - -inf = nan; a + b is -inf then, and
// stays nan when a nan lost the comparison against -inf, so a nan input is never dropped.
template <class Real>
inline Real log_add(Real a, Real b) {
  const Real m = a > b ? a : b;
  if (m == neg_inf<Real>()) return a + b;
  return m + std::log1p(std::exp(-std::fabs(a - b)));
}

// log(e^a + e^b + e^c), by the same rules (one log instead of two log1p: this is the inner loop).
template <class Real>
inline Real log_add3(Real a, Real b, Real c) {
  Real m = a > b ? a : b;
  m = m > c ? m : c;
  if (m == neg_inf<Real>()) return a + b + c;
  return m + std::log(std::exp(a - m) + std::exp(b - m) + std::exp(c - m));
}

// Sample n's extended labels ext (L_n): blank at even s, label (s-1)/2 at odd s; skip[s] says
// whether α may come from s-2 (l'_s is a label unlike l'_{s-2}). Returns L_n.
int64_t extend(int64_t* ext, unsigned char* skip, const int64_t* labels, int64_t S, int64_t blank) {
  const int64_t Ln = 2 * S + 1;
  for (int64_t s = 0; s < Ln; ++s) {
    ext[s] = (s & 1) ? labels[s >> 1] : blank;
    skip[s] = (s & 1) && s >= 2 && ext[s] != ext[s - 2];
  }
  return Ln;
}

// Runs body(n, scratch) for every sample n on the threads the work warrants. Threads take the
// next sample from a shared counter; which thread computes a sample changes nothing in it.
template <class Scratch, class Body>
void for_each_sample(int64_t N, double work, Scratch make_scratch, Body body) {
  const int nt = threads_for(work, N);
  std::atomic<int64_t> next{0};
  run_parallel(nt, [&](int, int) {
    auto scratch = make_scratch();
    for (int64_t n = next.fetch_add(1); n < N; n = next.fetch_add(1)) body(n, scratch);
  });
}

double work_of(const int64_t* input_lengths, const int64_t* target_lengths, int64_t N) {
  double cells = 0;
  for (int64_t n = 0; n < N; ++n)
    cells += static_cast<double>(input_lengths[n]) * static_cast<double>(2 * target_lengths[n] + 1);
  return cells * kFlopsPerCell;
}

struct Labels {
  std::vector<int64_t> ext;
  std::vector<unsigned char> skip;
  explicit Labels(int64_t L) : ext(L), skip(L) {}
};

}  // namespace

template <class Real>
void ctc_loss_forward(Real* nll, Real* log_alpha, const Real* log_probs, const int64_t* labels,
                      const int64_t* offsets, const int64_t* input_lengths,
                      const int64_t* target_lengths, int64_t blank, int64_t T, int64_t N,
                      int64_t C, int64_t L) {
  const Real ninf = neg_inf<Real>();
  for_each_sample(
      N, work_of(input_lengths, target_lengths, N), [L] { return Labels(L); },
      [&](int64_t n, Labels& lab) {
        const int64_t Tn = input_lengths[n], S = target_lengths[n];
        const int64_t Ln = extend(lab.ext.data(), lab.skip.data(), labels + offsets[n], S, blank);
        const int64_t* ext = lab.ext.data();
        const unsigned char* skip = lab.skip.data();
        Real* alpha = log_alpha + n * T * L;  // (T, L) of this sample
        std::fill(alpha, alpha + T * L, ninf);
        if (Tn == 0) {  // only the empty path, which yields the empty label sequence
          nll[n] = S == 0 ? Real(0) : std::numeric_limits<Real>::infinity();
          return;
        }
        const Real* y0 = log_probs + n * C;
        alpha[0] = y0[blank];
        if (Ln > 1) alpha[1] = y0[ext[1]];
        for (int64_t t = 1; t < Tn; ++t) {
          const Real* y = log_probs + (t * N + n) * C;
          const Real* prev = alpha + (t - 1) * L;
          Real* cur = alpha + t * L;
          // After t+1 steps a path has reached at most s = 2t+1: the rest stays -inf.
          const int64_t s_end = std::min(Ln, 2 * t + 2);
          for (int64_t s = 0; s < s_end; ++s) {
            const Real from_s1 = s >= 1 ? prev[s - 1] : ninf;
            const Real from_s2 = skip[s] ? prev[s - 2] : ninf;
            cur[s] = y[ext[s]] + log_add3(prev[s], from_s1, from_s2);
          }
        }
        const Real* last = alpha + (Tn - 1) * L;
        nll[n] = -(Ln > 1 ? log_add(last[Ln - 1], last[Ln - 2]) : last[0]);
      });
}

template <class Real>
void ctc_loss_backward(Real* dlog_probs, const Real* dnll, const Real* log_probs,
                       const int64_t* labels, const int64_t* offsets,
                       const int64_t* input_lengths, const int64_t* target_lengths,
                       const Real* nll, const Real* log_alpha, int64_t blank, bool zero_infinity,
                       int64_t T, int64_t N, int64_t C, int64_t L) {
  const Real ninf = neg_inf<Real>();
  struct Scratch {
    Labels lab;
    std::vector<Real> beta, beta_next, by_class;  // (L), (L), (C)
    Scratch(int64_t L, int64_t C) : lab(L), beta(L), beta_next(L), by_class(C) {}
  };
  for_each_sample(
      N, work_of(input_lengths, target_lengths, N), [L, C] { return Scratch(L, C); },
      [&](int64_t n, Scratch& w) {
        const int64_t Tn = input_lengths[n], S = target_lengths[n];
        for (int64_t t = Tn; t < T; ++t) {  // steps past the input's length: no gradient
          Real* g = dlog_probs + (t * N + n) * C;
          std::fill(g, g + C, Real(0));
        }
        if (Tn == 0) return;
        const Real loss = nll[n], scale = dnll[n];
        if (!std::isfinite(loss)) {
          // +inf: no alignment exists, the loss is constant and has no gradient. torch gives nan
          // (its formula meets inf - inf); zero_infinity asks for 0 instead.
          const Real v =
              zero_infinity && loss > 0 ? Real(0) : std::numeric_limits<Real>::quiet_NaN();
          for (int64_t t = 0; t < Tn; ++t) {
            Real* g = dlog_probs + (t * N + n) * C;
            std::fill(g, g + C, v);
          }
          return;
        }
        const int64_t Ln = extend(w.lab.ext.data(), w.lab.skip.data(), labels + offsets[n], S,
                                  blank);
        const int64_t* ext = w.lab.ext.data();
        const unsigned char* skip = w.lab.skip.data();
        Real* beta = w.beta.data();
        Real* next = w.beta_next.data();
        Real* by_class = w.by_class.data();
        const Real* alpha = log_alpha + n * T * L;
        for (int64_t t = Tn - 1; t >= 0; --t) {
          const Real* y = log_probs + (t * N + n) * C;
          if (t == Tn - 1) {
            std::fill(beta, beta + Ln, ninf);
            beta[Ln - 1] = y[blank];
            if (Ln > 1) beta[Ln - 2] = y[ext[Ln - 2]];
          } else {
            for (int64_t s = 0; s < Ln; ++s) {
              const Real from_s1 = s + 1 < Ln ? next[s + 1] : ninf;
              const Real from_s2 = s + 2 < Ln && skip[s + 2] ? next[s + 2] : ninf;
              beta[s] = y[ext[s]] + log_add3(next[s], from_s1, from_s2);
            }
          }
          // log Σ over the positions s showing class k of α_t(s)·β_t(s): the probability of the
          // valid paths through (t, k), times y_t(k) (both α and β include it).
          std::fill(by_class, by_class + C, ninf);
          const Real* a = alpha + t * L;
          for (int64_t s = 0; s < Ln; ++s)
            by_class[ext[s]] = log_add(by_class[ext[s]], a[s] + beta[s]);
          Real* g = dlog_probs + (t * N + n) * C;
          for (int64_t k = 0; k < C; ++k) {
            // -inf: no valid path shows k at t (also where y_t(k) = -inf, whose difference
            // below would be nan): the gradient is exactly 0.
            g[k] = by_class[k] == ninf ? Real(0) : -(std::exp(by_class[k] + loss - y[k]) * scale);
          }
          std::swap(beta, next);
        }
      });
}

template void ctc_loss_forward<float>(float*, float*, const float*, const int64_t*,
                                      const int64_t*, const int64_t*, const int64_t*, int64_t,
                                      int64_t, int64_t, int64_t, int64_t);
template void ctc_loss_forward<double>(double*, double*, const double*, const int64_t*,
                                       const int64_t*, const int64_t*, const int64_t*, int64_t,
                                       int64_t, int64_t, int64_t, int64_t);
template void ctc_loss_backward<float>(float*, const float*, const float*, const int64_t*,
                                       const int64_t*, const int64_t*, const int64_t*,
                                       const float*, const float*, int64_t, bool, int64_t,
                                       int64_t, int64_t, int64_t);
template void ctc_loss_backward<double>(double*, const double*, const double*, const int64_t*,
                                        const int64_t*, const int64_t*, const int64_t*,
                                        const double*, const double*, int64_t, bool, int64_t,
                                        int64_t, int64_t, int64_t);

}  // namespace rnnkit
