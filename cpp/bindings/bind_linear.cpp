// Bindings for the linear layer kernels (cells/linear.h). Arguments arrive validated,
// C-contiguous and of one dtype from python/rnnkit/nn/linear.py; gradients are accumulated in
// place into the caller's arrays (the Parameters' .grad).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bindings/common.h"
#include "cells/linear.h"

namespace rnnkit {
namespace {

template <class T>
T* writable(py::array a, const char* name) {
  if (!py::isinstance<py::array_t<T>>(a) || !(a.flags() & py::array::c_style) || !a.writeable())
    throw py::value_error(std::string(name) + ": expected a writable C-contiguous array of the "
                          "layer's dtype");
  return static_cast<T*>(a.mutable_data());
}

template <class T>
py::array_t<T> forward(const py::array& x, const py::array& w, const py::object& b) {
  const int64_t M = x.shape(0), I = x.shape(1), O = w.shape(0);
  auto y = new_array<T>({M, O}, false);
  T* py = out_ptr(y);
  const T *px = in_ptr<T>(x, "x"), *pw = in_ptr<T>(w, "weight"), *pb = in_ptr<T>(b, "bias");
  {
    py::gil_scoped_release nogil;
    linear_forward<T>(py, px, pw, pb, M, I, O);
  }
  return y;
}

template <class T>
py::object backward(const py::array& dy, const py::array& x, const py::array& w,
                    const py::array& dw, const py::object& db, bool want_dx) {
  const int64_t M = x.shape(0), I = x.shape(1), O = w.shape(0);
  py::array_t<T> dx;
  if (want_dx) dx = new_array<T>({M, I}, false);
  T* pdx = want_dx ? out_ptr(dx) : nullptr;
  T* pdw = writable<T>(dw, "dw");
  T* pdb = db.is_none() ? nullptr : writable<T>(py::reinterpret_borrow<py::array>(db), "db");
  const T *pdy = in_ptr<T>(dy, "dy"), *px = in_ptr<T>(x, "x"), *pw = in_ptr<T>(w, "weight");
  {
    py::gil_scoped_release nogil;
    linear_backward<T>(pdx, pdw, pdb, pdy, px, pw, M, I, O);
  }
  return want_dx ? py::object(dx) : py::object(py::none());
}

}  // namespace

void bind_linear(py::module_& m) {
  m.def("linear_forward_f32", &forward<float>);
  m.def("linear_forward_f64", &forward<double>);
  m.def("linear_backward_f32", &backward<float>);
  m.def("linear_backward_f64", &backward<double>);
}

}  // namespace rnnkit
