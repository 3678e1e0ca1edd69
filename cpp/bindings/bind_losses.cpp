// Bindings for the CTC loss kernels (losses/ctc.h): every array checked (the rule of
// bindings/common.h), every length and label range-checked, then copied, because the kernels
// index memory with them while the GIL is released and another Python thread could change the
// caller's arrays after the check. One name per operation for float32 and float64, chosen by the
// dtype of log_probs. Users see the checks of python/rnnkit/ctc.py first.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "bindings/common.h"
#include "losses/cross_entropy.h"
#include "losses/ctc.h"

namespace rnnkit {
namespace {

// The sizes of a call and copies of the lengths and of the labels the kernels read, packed:
// sample n's labels are labels[offsets[n] ... offsets[n] + target_lengths[n]).
struct CtcCall {
  int64_t T = 0, N = 0, C = 0, L = 1;
  std::vector<int64_t> labels, offsets, input_lengths, target_lengths;
};

std::string num(int64_t v) { return std::to_string(v); }

CtcCall ctc_call(const py::handle& log_probs, const py::handle& targets,
                 const py::handle& input_lengths, const py::handle& target_lengths,
                 int64_t blank) {
  CtcCall c;
  c.T = dim(log_probs, "log_probs", 3, 0, "(T, N, C)");
  c.N = dim(log_probs, "log_probs", 3, 1, "(T, N, C)");
  c.C = dim(log_probs, "log_probs", 3, 2, "(T, N, C)");
  if (blank < 0 || blank >= c.C)
    throw py::value_error("blank must lie in [0, C=" + num(c.C) + "), got " + num(blank));

  const int64_t* il = input<int64_t>(input_lengths, "input_lengths", {c.N});
  c.input_lengths.assign(il, il + c.N);
  for (int64_t n = 0; n < c.N; ++n)
    if (c.input_lengths[n] < 0 || c.input_lengths[n] > c.T)
      throw py::value_error("input_lengths[" + num(n) + "] = " + num(c.input_lengths[n]) +
                            ", expected a value in [0, T=" + num(c.T) + "]");
  const int64_t* tl = input<int64_t>(target_lengths, "target_lengths", {c.N});
  c.target_lengths.assign(tl, tl + c.N);
  for (int64_t n = 0; n < c.N; ++n)
    if (c.target_lengths[n] < 0)
      throw py::value_error("target_lengths[" + num(n) + "] = " + num(c.target_lengths[n]) +
                            ", expected a value >= 0");

  if (!py::isinstance<py::array>(targets))
    throw py::type_error("targets must be a numpy.ndarray");
  const auto ta = py::reinterpret_borrow<py::array>(targets);
  const int64_t* tp = nullptr;
  std::vector<int64_t> from(c.N);  // where sample n's labels start in targets
  if (ta.ndim() == 2) {  // padded (N, S): row n, the first target_lengths[n] entries
    const int64_t S = ta.shape(1);
    tp = input<int64_t>(targets, "targets", {c.N, S});
    for (int64_t n = 0; n < c.N; ++n) {
      if (c.target_lengths[n] > S)
        throw py::value_error("target_lengths[" + num(n) + "] = " + num(c.target_lengths[n]) +
                              " exceeds the width S=" + num(S) + " of the padded targets " +
                              shape_text(ta));
      from[n] = n * S;
    }
  } else if (ta.ndim() == 1) {  // concatenated (sum(target_lengths),)
    const int64_t size = ta.shape(0);
    int64_t total = 0;
    for (int64_t n = 0; n < c.N; ++n) {
      from[n] = total;
      if (c.target_lengths[n] > size - total)  // (checked before adding: no overflow)
        throw py::value_error("targets has shape " + shape_text(ta) +
                              ", shorter than sum(target_lengths) (concatenated targets)");
      total += c.target_lengths[n];
    }
    if (total != size)
      throw py::value_error("targets has shape " + shape_text(ta) + ", expected (" + num(total) +
                            ",) = (sum(target_lengths),) (concatenated targets)");
    tp = input<int64_t>(targets, "targets", {size});
  } else {
    throw py::value_error("targets must be 2-D (N, S) padded or 1-D (sum(target_lengths),) "
                          "concatenated, got shape " + shape_text(ta));
  }

  c.offsets.resize(c.N);
  int64_t longest = 0;
  for (int64_t n = 0; n < c.N; ++n) {
    c.offsets[n] = static_cast<int64_t>(c.labels.size());
    longest = std::max(longest, c.target_lengths[n]);
    for (int64_t i = 0; i < c.target_lengths[n]; ++i) {
      const int64_t v = tp[from[n] + i];
      if (v < 0 || v >= c.C || v == blank)
        throw py::value_error("targets: label " + num(v) + " of sample " + num(n) +
                              " (position " + num(i) + ") must lie in [0, C=" + num(c.C) +
                              ") and differ from blank=" + num(blank));
      c.labels.push_back(v);
    }
  }
  c.L = 2 * longest + 1;
  return c;
}

// log_probs (T, N, C) -> (nll (N,), log_alpha (N, T, L)).
template <class Real>
py::tuple forward(const py::handle& log_probs, const py::handle& targets,
                  const py::handle& input_lengths, const py::handle& target_lengths,
                  int64_t blank) {
  const CtcCall c = ctc_call(log_probs, targets, input_lengths, target_lengths, blank);
  const Real* lp = input<Real>(log_probs, "log_probs", {c.T, c.N, c.C});
  auto nll = new_array<Real>({c.N}, false);
  auto alpha = new_array<Real>({c.N, c.T, c.L}, false);
  Real* pn = nll.mutable_data();
  Real* pa = alpha.mutable_data();
  {
    py::gil_scoped_release nogil;
    ctc_loss_forward<Real>(pn, pa, lp, c.labels.data(), c.offsets.data(),
                           c.input_lengths.data(), c.target_lengths.data(), blank, c.T, c.N,
                           c.C, c.L);
  }
  return py::make_tuple(nll, alpha);
}

// dnll (N,) and forward's nll (N,), log_alpha (N, T, L) -> dlog_probs (T, N, C).
template <class Real>
py::array_t<Real> backward(const py::handle& dnll, const py::handle& log_probs,
                           const py::handle& targets, const py::handle& input_lengths,
                           const py::handle& target_lengths, const py::handle& nll,
                           const py::handle& log_alpha, int64_t blank, bool zero_infinity) {
  const CtcCall c = ctc_call(log_probs, targets, input_lengths, target_lengths, blank);
  const Real* lp = input<Real>(log_probs, "log_probs", {c.T, c.N, c.C});
  const Real* pd = input<Real>(dnll, "dnll", {c.N});
  const Real* pn = input<Real>(nll, "nll", {c.N});
  const Real* pa = input<Real>(log_alpha, "log_alpha", {c.N, c.T, c.L});
  auto grad = new_array<Real>({c.T, c.N, c.C}, false);
  Real* pg = grad.mutable_data();
  {
    py::gil_scoped_release nogil;
    ctc_loss_backward<Real>(pg, pd, lp, c.labels.data(), c.offsets.data(),
                            c.input_lengths.data(), c.target_lengths.data(), pn, pa, blank,
                            zero_infinity, c.T, c.N, c.C, c.L);
  }
  return grad;
}

// Softmax cross-entropy (losses/cross_entropy.h): z (N, C), target (N,) int64 with -1 for rows
// not counted -> (loss (N,), grad (N, C)). The targets are copied after their range check: the
// kernel indexes rows with them while the GIL is released.
template <class Real>
py::tuple cross_entropy(const py::handle& z, const py::handle& target, const py::handle& weight,
                        double smoothing, double scale) {
  const int64_t N = dim(z, "z", 2, 0, "(N, C)"), C = dim(z, "z", 2, 1, "(N, C)");
  const Real* pz = input<Real>(z, "z", {N, C});
  const int64_t* pt = input<int64_t>(target, "target", {N});
  std::vector<int64_t> t(pt, pt + N);
  for (int64_t i = 0; i < N; ++i)
    if (t[i] < -1 || t[i] >= C)
      throw py::value_error("target[" + num(i) + "] = " + num(t[i]) +
                            ", expected a class in [0, C=" + num(C) + ") or -1 (not counted)");
  const Real* pw = optional_input<Real>(weight, "weight", {C});
  if (!(smoothing >= 0.0 && smoothing <= 1.0))
    throw py::value_error("smoothing must lie in [0, 1]");
  if (C == 0 && N > 0)
    throw py::value_error("z has no classes (shape (" + num(N) + ", 0))");
  auto loss = new_array<Real>({N}, false);
  auto grad = new_array<Real>({N, C}, false);
  Real* pl = loss.mutable_data();
  Real* pg = grad.mutable_data();
  {
    py::gil_scoped_release nogil;
    cross_entropy_forward<Real>(pz, N, C, t.data(), pw, Real(smoothing), Real(scale), pl, pg);
  }
  return py::make_tuple(loss, grad);
}

}  // namespace

void bind_losses(py::module_& m) {
  m.def(
      "cross_entropy_forward",
      [](const py::handle& z, const py::handle& target, const py::handle& weight,
         double smoothing, double scale) {
        return dispatch_float(z, "z", [&](auto real) {
          return cross_entropy<decltype(real)>(z, target, weight, smoothing, scale);
        });
      },
      py::arg("z"), py::arg("target"), py::arg("weight"), py::arg("smoothing"),
      py::arg("scale"),
      "Softmax cross-entropy of logits z (N, C) with class targets (N,) (-1: not counted): "
      "(per-row loss (N,), scale * d(loss)/dz (N, C)); weight (C,) or None; label smoothing.");
  m.def("ctc_loss_forward",
        [](const py::handle& log_probs, const py::handle& targets, const py::handle& il,
           const py::handle& tl, int64_t blank) {
          return dispatch_float(log_probs, "log_probs", [&](auto tag) {
            return forward<decltype(tag)>(log_probs, targets, il, tl, blank);
          });
        },
        py::arg("log_probs"), py::arg("targets"), py::arg("input_lengths"),
        py::arg("target_lengths"), py::arg("blank"));
  m.def("ctc_loss_backward",
        [](const py::handle& dnll, const py::handle& log_probs, const py::handle& targets,
           const py::handle& il, const py::handle& tl, const py::handle& nll,
           const py::handle& log_alpha, int64_t blank, bool zero_infinity) -> py::object {
          return dispatch_float(log_probs, "log_probs", [&](auto tag) -> py::object {
            return backward<decltype(tag)>(dnll, log_probs, targets, il, tl, nll, log_alpha,
                                           blank, zero_infinity);
          });
        },
        py::arg("dnll"), py::arg("log_probs"), py::arg("targets"), py::arg("input_lengths"),
        py::arg("target_lengths"), py::arg("nll"), py::arg("log_alpha"), py::arg("blank"),
        py::arg("zero_infinity"));
}

}  // namespace rnnkit
