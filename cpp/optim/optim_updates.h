// Fused optimiser updates: one pass over a parameter and its state per step, in place.
//
// Each function applies one step of torch.optim's single-tensor rule (torch 2.x, the default on
// CPU) to n elements, elementwise, in the same order of floating-point operations as torch, in
// the parameter's precision T. Scalars (learning rate, betas, bias corrections) are computed in
// double and rounded to T once, as torch does for a Python-float hyperparameter.
//
// Pointers: param, state buffers and grad are n contiguous elements each, allocated by the caller.
// param and the state buffers are read and written; grad is only read. No pointer may alias
// another. Optional buffers are nullptr when the option that needs them is off.
//
// Large tensors are split over OpenMP threads in fixed contiguous chunks; every element is
// computed by one thread with the same operations, so results are bitwise independent of the
// thread count. Memory-bound: one generic translation unit built at the baseline ISA (the
// compiler vectorises the plain loops; SSE2 has packed sqrt and division).
#pragma once
#include <cstdint>

namespace rnnkit {

// SGD (torch.optim.SGD):
//   g = maximize ? -grad : grad;  if weight_decay != 0: g = g + weight_decay * p
//   if momentum != 0:
//     b = first_step ? g : momentum * b + (1 - dampening) * g      (b: momentum_buffer)
//     g = nesterov ? g + momentum * b : b
//   p = p - lr * g
struct SgdHyper {
  double lr = 1e-3, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false, maximize = false;
  bool first_step = false;  // momentum_buffer is uninitialised and gets g (torch: buf = g.clone())
};
// momentum_buffer: nullptr when momentum == 0.
template <class T>
void sgd_update(T* param, T* momentum_buffer, const T* grad, int64_t n, const SgdHyper& h);

// Adam / AdamW (torch.optim.Adam, torch.optim.AdamW = Adam with decoupled weight decay), step t:
//   g = maximize ? -grad : grad
//   if weight_decay != 0: decoupled ? p = p * (1 - lr * weight_decay) : g = g + weight_decay * p
//   m = lerp(m, g, 1 - beta1);   v = beta2 * v + (1 - beta2) * g * g
//   if amsgrad: v_max = max(v_max, v), and v_max replaces v below
//   p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// lerp(a, b, w) = |w| < 0.5 ? a + w * (b - a) : b - (b - a) * (1 - w), as torch.lerp.
struct AdamHyper {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool amsgrad = false, maximize = false, decoupled_weight_decay = false;
  int64_t step = 1;  // t, already incremented for this step (>= 1)
};
// exp_avg (m), exp_avg_sq (v); max_exp_avg_sq (v_max): nullptr unless amsgrad.
template <class T>
void adam_update(T* param, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq, const T* grad, int64_t n,
                 const AdamHyper& h);

// RMSprop (torch.optim.RMSprop):
//   g = maximize ? -grad : grad;  if weight_decay != 0: g = g + weight_decay * p
//   s = alpha * s + (1 - alpha) * g * g                               (s: square_avg)
//   if centered: a = lerp(a, g, 1 - alpha); d = sqrt(s - a * a) + eps   (a: grad_avg)
//   else d = sqrt(s) + eps
//   if momentum > 0: b = momentum * b + g / d; p = p - lr * b         (b: momentum_buffer)
//   else p = p - lr * g / d
struct RmspropHyper {
  double lr = 1e-2, alpha = 0.99, eps = 1e-8, weight_decay = 0, momentum = 0;
  bool centered = false, maximize = false;
};
// grad_avg: nullptr unless centered; momentum_buffer: nullptr unless momentum > 0.
template <class T>
void rmsprop_update(T* param, T* square_avg, T* grad_avg, T* momentum_buffer, const T* grad,
                    int64_t n, const RmspropHyper& h);

// Adagrad (torch.optim.Adagrad), step t:
//   g = maximize ? -grad : grad;  if weight_decay != 0: g = g + weight_decay * p
//   clr = lr / (1 + (t - 1) * lr_decay)
//   S = S + g * g;  p = p - clr * g / (sqrt(S) + eps)                  (S: sum)
struct AdagradHyper {
  double lr = 1e-2, lr_decay = 0, weight_decay = 0, eps = 1e-10;
  bool maximize = false;
  int64_t step = 1;  // t, already incremented for this step (>= 1)
};
template <class T>
void adagrad_update(T* param, T* sum, const T* grad, int64_t n, const AdagradHyper& h);

// For gradient-norm clipping: sum over i < n of |x[i]|^p in double (p == 2 and p == 1 are
// special-cased), or max |x[i]| when p is +inf. NaN anywhere gives NaN. Summed per fixed chunk
// in a fixed order, then over chunks in order: bitwise independent of the thread count.
template <class T>
double abs_pow_sum(const T* x, int64_t n, double p);

}  // namespace rnnkit
