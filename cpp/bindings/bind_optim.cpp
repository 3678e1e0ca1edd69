// Bindings for the fused optimiser updates and the gradient-norm reduction: check dtype,
// contiguity, writability and shape of every array (the rule of bindings/common.h), release the
// GIL, call. One name per operation, with a float32 and a float64 overload chosen by the
// parameter's dtype (no conversion). Users see the checks made by python/rnnkit/optim first.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "optim/optim_updates.h"

namespace rnnkit {
namespace {

namespace py = pybind11;

// The data of `obj`: a C-contiguous array of dtype T with exactly the shape of `like`
// (nullptr for None when `optional`); writable when `writable`.
template <class T>
T* checked(const py::object& obj, const char* name, const py::array& like, bool writable,
           bool optional = false) {
  if (obj.is_none()) {
    if (optional) return nullptr;
    throw py::type_error(std::string(name) + ": expected a numpy array, got None");
  }
  if (!py::isinstance<py::array_t<T>>(obj))
    throw py::type_error(std::string(name) + ": expected a numpy array of dtype " +
                         std::string(py::str(py::dtype::of<T>())));
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!(arr.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + ": expected a C-contiguous array");
  if (writable && !arr.writeable())
    throw py::value_error(std::string(name) + ": array is read-only");
  bool same = arr.ndim() == like.ndim();
  for (py::ssize_t d = 0; same && d < arr.ndim(); ++d) same = arr.shape(d) == like.shape(d);
  if (!same)
    throw py::value_error(std::string(name) + ": shape differs from the parameter's shape");
  return static_cast<T*>(arr.mutable_data());
}

template <class T>
T* param_ptr(const py::array& param) {
  return checked<T>(param, "param", param, true);
}

template <class T>
void sgd(const py::array_t<T>& param, const py::object& momentum_buffer, const py::array& grad,
         double lr, double momentum, double dampening, double weight_decay, bool nesterov,
         bool maximize, bool first_step) {
  SgdHyper h;
  h.lr = lr;
  h.momentum = momentum;
  h.dampening = dampening;
  h.weight_decay = weight_decay;
  h.nesterov = nesterov;
  h.maximize = maximize;
  h.first_step = first_step;
  T* p = param_ptr<T>(param);
  T* buf = checked<T>(momentum_buffer, "momentum_buffer", param, true, momentum == 0);
  const T* g = checked<T>(grad, "grad", param, false);
  const int64_t n = param.size();
  py::gil_scoped_release nogil;
  sgd_update<T>(p, buf, g, n, h);
}

template <class T>
void adam(const py::array_t<T>& param, const py::array& exp_avg, const py::array& exp_avg_sq,
          const py::object& max_exp_avg_sq, const py::array& grad, int64_t step, double lr,
          double beta1, double beta2, double eps, double weight_decay, bool amsgrad,
          bool maximize, bool decoupled_weight_decay) {
  if (step < 1) throw py::value_error("step must be >= 1");
  AdamHyper h;
  h.lr = lr;
  h.beta1 = beta1;
  h.beta2 = beta2;
  h.eps = eps;
  h.weight_decay = weight_decay;
  h.amsgrad = amsgrad;
  h.maximize = maximize;
  h.decoupled_weight_decay = decoupled_weight_decay;
  h.step = step;
  T* p = param_ptr<T>(param);
  T* m = checked<T>(exp_avg, "exp_avg", param, true);
  T* v = checked<T>(exp_avg_sq, "exp_avg_sq", param, true);
  T* vmax = checked<T>(max_exp_avg_sq, "max_exp_avg_sq", param, true, !amsgrad);
  const T* g = checked<T>(grad, "grad", param, false);
  const int64_t n = param.size();
  py::gil_scoped_release nogil;
  adam_update<T>(p, m, v, amsgrad ? vmax : nullptr, g, n, h);
}

template <class T>
void rmsprop(const py::array_t<T>& param, const py::array& square_avg, const py::object& grad_avg,
             const py::object& momentum_buffer, const py::array& grad, double lr, double alpha,
             double eps, double weight_decay, double momentum, bool centered, bool maximize) {
  RmspropHyper h;
  h.lr = lr;
  h.alpha = alpha;
  h.eps = eps;
  h.weight_decay = weight_decay;
  h.momentum = momentum;
  h.centered = centered;
  h.maximize = maximize;
  T* p = param_ptr<T>(param);
  T* s = checked<T>(square_avg, "square_avg", param, true);
  T* a = checked<T>(grad_avg, "grad_avg", param, true, !centered);
  T* buf = checked<T>(momentum_buffer, "momentum_buffer", param, true, !(momentum > 0));
  const T* g = checked<T>(grad, "grad", param, false);
  const int64_t n = param.size();
  py::gil_scoped_release nogil;
  rmsprop_update<T>(p, s, centered ? a : nullptr, momentum > 0 ? buf : nullptr, g, n, h);
}

template <class T>
void adagrad(const py::array_t<T>& param, const py::array& sum, const py::array& grad, int64_t step,
             double lr, double lr_decay, double weight_decay, double eps, bool maximize) {
  if (step < 1) throw py::value_error("step must be >= 1");
  AdagradHyper h;
  h.lr = lr;
  h.lr_decay = lr_decay;
  h.weight_decay = weight_decay;
  h.eps = eps;
  h.maximize = maximize;
  h.step = step;
  T* p = param_ptr<T>(param);
  T* s = checked<T>(sum, "sum", param, true);
  const T* g = checked<T>(grad, "grad", param, false);
  const int64_t n = param.size();
  py::gil_scoped_release nogil;
  adagrad_update<T>(p, s, g, n, h);
}

template <class T>
double abs_pow(const py::array_t<T>& x, double p) {
  const T* data = checked<T>(x, "x", x, false);
  const int64_t n = x.size();
  py::gil_scoped_release nogil;
  return abs_pow_sum<T>(data, n, p);
}

template <class T>
void bind_dtype(py::module_& m) {
  using py::arg;
  m.def("sgd_update", &sgd<T>, arg("param").noconvert(), arg("momentum_buffer"), arg("grad"),
        arg("lr"), arg("momentum"), arg("dampening"), arg("weight_decay"), arg("nesterov"),
        arg("maximize"), arg("first_step"));
  m.def("adam_update", &adam<T>, arg("param").noconvert(), arg("exp_avg"), arg("exp_avg_sq"),
        arg("max_exp_avg_sq"), arg("grad"), arg("step"), arg("lr"), arg("beta1"), arg("beta2"),
        arg("eps"), arg("weight_decay"), arg("amsgrad"), arg("maximize"),
        arg("decoupled_weight_decay"));
  m.def("rmsprop_update", &rmsprop<T>, arg("param").noconvert(), arg("square_avg"),
        arg("grad_avg"), arg("momentum_buffer"), arg("grad"), arg("lr"), arg("alpha"),
        arg("eps"), arg("weight_decay"), arg("momentum"), arg("centered"), arg("maximize"));
  m.def("adagrad_update", &adagrad<T>, arg("param").noconvert(), arg("sum"), arg("grad"),
        arg("step"), arg("lr"), arg("lr_decay"), arg("weight_decay"), arg("eps"),
        arg("maximize"));
  m.def("abs_pow_sum", &abs_pow<T>, arg("x").noconvert(), arg("p"),
        "sum |x|^p in double (max |x| for p = inf), for gradient-norm clipping");
}

}  // namespace

void bind_optim(py::module_& m) {
  bind_dtype<float>(m);
  bind_dtype<double>(m);
}

}  // namespace rnnkit
