// Bindings for the linear layer kernels (layers/linear.h): every array checked against the
// sizes the kernel uses (bindings/common.h), one name per operation for float32 and float64
// (chosen by the dtype of x). Gradients are accumulated in place into the caller's arrays
// (the Parameters' .grad).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "bindings/common.h"
#include "layers/linear.h"

namespace rnnkit {
namespace {

// x (M, I), weight (O, I), bias (O,) or None -> y (M, O).
template <class T>
py::array_t<T> forward(const py::handle& x, const py::handle& w, const py::handle& b) {
  const int64_t M = dim(x, "x", 2, 0, "(M, in_features)"), I = dim(x, "x", 2, 1, "");
  const int64_t O = dim(w, "weight", 2, 0, "(out_features, in_features)");
  const T* px = input<T>(x, "x", {M, I});
  const T* pw = input<T>(w, "weight", {O, I});
  const T* pb = optional_input<T>(b, "bias", {O});
  auto y = new_array<T>({M, O}, false);
  T* py = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    linear_forward<T>(py, px, pw, pb, M, I, O);
  }
  return y;
}

// dy (M, O), x (M, I), weight (O, I); dw (O, I) and db (O,) or None accumulated in place.
// Returns dx (M, I), or None without want_dx.
template <class T>
py::object backward(const py::handle& dy, const py::handle& x, const py::handle& w,
                    const py::handle& dw, const py::handle& db, bool want_dx) {
  const int64_t M = dim(x, "x", 2, 0, "(M, in_features)"), I = dim(x, "x", 2, 1, "");
  const int64_t O = dim(w, "weight", 2, 0, "(out_features, in_features)");
  const T* pdy = input<T>(dy, "dy", {M, O});
  const T* px = input<T>(x, "x", {M, I});
  const T* pw = input<T>(w, "weight", {O, I});
  T* pdw = output<T>(dw, "dw", {O, I});
  T* pdb = optional_output<T>(db, "db", {O});
  py::array_t<T> dx;
  T* pdx = nullptr;
  if (want_dx) {
    dx = new_array<T>({M, I}, false);
    pdx = dx.mutable_data();
  }
  {
    py::gil_scoped_release nogil;
    linear_backward<T>(pdx, pdw, pdb, pdy, px, pw, M, I, O);
  }
  return want_dx ? py::object(dx) : py::object(py::none());
}

}  // namespace

void bind_linear(py::module_& m) {
  py::class_<QuantizedLinear>(m, "QuantizedLinear",
                              "A Linear layer's weights as int8 or bfloat16, packed once, for "
                              "inference (layers/linear.h).")
      .def(py::init([](const py::handle& w, const py::handle& b, const std::string& kind) {
             const WeightFormat format = weight_format_of(kind);
             if (format == WeightFormat::native)
               throw py::value_error("quantized must be 'int8' or 'bfloat16', got ''");
             const int64_t O = dim(w, "weight", 2, 0, "(out_features, in_features)");
             const int64_t I = dim(w, "weight", 2, 1, "(out_features, in_features)");
             const float* pw = input<float>(w, "weight", {O, I});
             const float* pb = optional_input<float>(b, "bias", {O});
             py::gil_scoped_release nogil;
             return std::make_unique<QuantizedLinear>(pw, pb, O, I, format);
           }),
           py::arg("weight"), py::arg("bias"), py::arg("quantized"))
      .def("forward", [](const QuantizedLinear& lin, const py::handle& x) {
             const int64_t M = dim(x, "x", 2, 0, "(M, in_features)");
             const float* px = input<float>(x, "x", {M, lin.in_features()});
             auto y = new_array<float>({M, lin.out_features()}, false);
             float* py_ = y.mutable_data();
             {
               py::gil_scoped_release nogil;
               lin.forward(px, M, py_);
             }
             return y;
           }, py::arg("x"), "y (M, out_features) = x (M, in_features) · weightᵀ + bias.");
  m.def("linear_forward",
        [](const py::handle& x, const py::handle& w, const py::handle& b) -> py::object {
          return dispatch_float(x, "x", [&](auto tag) -> py::object {
            return forward<decltype(tag)>(x, w, b);
          });
        },
        py::arg("x"), py::arg("weight"), py::arg("bias"));
  m.def("linear_backward",
        [](const py::handle& dy, const py::handle& x, const py::handle& w, const py::handle& dw,
           const py::handle& db, bool want_dx) {
          return dispatch_float(x, "x", [&](auto tag) {
            return backward<decltype(tag)>(dy, x, w, dw, db, want_dx);
          });
        },
        py::arg("dy"), py::arg("x"), py::arg("weight"), py::arg("dw"), py::arg("db"),
        py::arg("want_dx"));
}

}  // namespace rnnkit
