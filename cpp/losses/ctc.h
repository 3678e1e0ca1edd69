// Connectionist temporal classification loss (Graves et al., ICML 2006), forward directly above
// backward, both in log space, with torch.nn.CTCLoss's conventions.
//
// Shape legend: T steps (the longest input), N batch, C classes (the blank included), S_n the
// target length of sample n, L = 2·max_n(S_n) + 1 the longest extended label sequence.
// Row-major, last index fastest. log_probs is time-major (T, N, C), as torch's.
//
// The extended label sequence of sample n is l' = (blank, l_1, blank, l_2, ..., l_S, blank),
// L_n = 2·S_n + 1 symbols: l'_s = blank for even s, l_{(s+1)/2} for odd s (1-based labels).
// With y_t(k) = log_probs[t, n, k] and T_n = input_lengths[n], every quantity below is a log:
//
//   α_0(0) = y_0(blank),  α_0(1) = y_0(l'_1),  α_0(s) = -inf for s >= 2
//   α_t(s) = y_t(l'_s) + lse(α_{t-1}(s), α_{t-1}(s-1), [α_{t-1}(s-2)])
//   β_{T_n-1}(L_n-1) = y(blank),  β_{T_n-1}(L_n-2) = y(l'_{L_n-2}),  others -inf
//   β_t(s) = y_t(l'_s) + lse(β_{t+1}(s), β_{t+1}(s+1), [β_{t+1}(s+2)])
//   nll_n = -lse(α_{T_n-1}(L_n-1), α_{T_n-1}(L_n-2))
//
// lse is a log-sum-exp that subtracts the maximum (stable, and exact for -inf terms). The skip
// term [·] from s-2 to s exists only where l'_s is a label different from l'_{s-2}: a blank
// cannot be skipped between two equal labels, or they would collapse into one. T_n = 0 gives
// nll = 0 for an empty target and +inf otherwise (the empty path only yields the empty label
// sequence). An impossible alignment (e.g. S_n > T_n, or repeats that need blanks between them)
// gives nll = +inf.
//
// Gradient (the true one, w.r.t. log_probs as free variables, what finite differences give):
// every path uses y_t(k) once at step t, so with α and β both including step t's emission,
//
//   d nll_n / d y_t(k) = -exp(lse_{s : l'_s = k}(α_t(s) + β_t(s)) + nll_n - y_t(k))
//
// for t < T_n, and 0 for t >= T_n. (torch's native kernel returns exp(y_t(k)) plus this, its
// gradient after a log_softmax; that term vanishes once chained through log_softmax, since the
// gradient above sums to -1 over k at every valid t.)
//
// Threads take whole samples (an atomic counter hands out the next sample: lengths vary, so a
// static split would idle threads); each sample's outputs are computed by one thread in a fixed
// order, so results are bitwise identical for any thread count. Memory: log_alpha is
// (N, T, L), kept from forward for backward, as torch does; backward needs O(L + C) scratch
// per thread (β is consumed row by row as it is computed).
//
// Callers (the binding) must have checked: 0 <= input_lengths[n] <= T, target_lengths[n] >= 0,
// 2·target_lengths[n] + 1 <= L, labels[offsets[n] + i] in [0, C) and != blank for
// i < target_lengths[n], 0 <= blank < C. The kernels index with these values without checks.
#pragma once
#include <cstdint>

namespace rnnkit {

// Forward.
//   nll (N)            out: -log p(target_n | log_probs_n), before zero_infinity or reduction.
//   log_alpha (N,T,L)  out: α_t(s) of sample n at [n, t, s]; -inf where t >= T_n or s >= L_n.
//   log_probs (T,N,C)  in.
//   labels             in: the targets' labels; sample n's are labels[offsets[n] ...
//                      offsets[n] + target_lengths[n]).
//   offsets, input_lengths, target_lengths (N) in.
// No output may alias an input.
template <class Real>
void ctc_loss_forward(Real* nll, Real* log_alpha, const Real* log_probs, const int64_t* labels,
                      const int64_t* offsets, const int64_t* input_lengths,
                      const int64_t* target_lengths, int64_t blank, int64_t T, int64_t N,
                      int64_t C, int64_t L);

// Backward: dlog_probs (T,N,C) out, overwritten (0 at t >= T_n), = dnll[n] · d nll_n/d y.
//   dnll (N)           in: the gradient reaching each sample's nll (reduction and upstream
//                      gradient folded in by the caller).
//   nll (N), log_alpha (N,T,L): forward's outputs for the same inputs.
//   zero_infinity      samples whose nll is +inf get a zero gradient; without it their rows
//                      t < T_n are nan (the loss is constant +inf there: no gradient exists),
//                      as torch's are.
// Other arguments as in forward. dlog_probs must not alias an input.
template <class Real>
void ctc_loss_backward(Real* dlog_probs, const Real* dnll, const Real* log_probs,
                       const int64_t* labels, const int64_t* offsets,
                       const int64_t* input_lengths, const int64_t* target_lengths,
                       const Real* nll, const Real* log_alpha, int64_t blank, bool zero_infinity,
                       int64_t T, int64_t N, int64_t C, int64_t L);

}  // namespace rnnkit
