// Softmax cross-entropy over the last axis with integer targets, forward and gradient in one pass
// over each row of logits, as torch.nn.CrossEntropyLoss (weight, ignore_index, label_smoothing).
//
// Shape legend: N rows, C classes; z (N, C) row-major logits, target (N) class indices (-1 marks a
// row that is not counted: ignore_index, checked by the caller), weight (C) or nullptr (all 1).
// With lse_i = max_i + log Σ_c exp(z_ic - max_i) (the stable log-sum-exp), smoothing ε, w_c the
// weights and t = target_i:
//
//   loss_i = (1 - ε) w_t (lse_i - z_it) + (ε / C) Σ_c w_c (lse_i - z_ic)       (0 if ignored)
//   a_i    = (1 - ε) w_t onehot(t) + (ε / C) w,      s_i = Σ_c a_ic
//   grad_i = scale · (softmax(z_i) s_i - a_i)                                  (0 if ignored)
//
// grad is d(Σ_i scale · loss_i)/dz: the caller passes scale = 1/denominator for a mean, 1
// otherwise, and multiplies by the gradient arriving from above afterwards if there is one.
// A row whose maximum is not finite (+inf, NaN, or only -inf) gives NaN, as torch does.
// Rows run on the threads the work warrants; each row is computed by one thread in a fixed
// order, so results do not depend on the thread count. Float and double.
#pragma once
#include <cstdint>

namespace rnnkit {

template <class T>
void cross_entropy_forward(const T* z, int64_t N, int64_t C, const int64_t* target,
                           const T* weight, T smoothing, T scale, T* loss, T* grad);

}  // namespace rnnkit
