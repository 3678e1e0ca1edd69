// Small helpers shared by the binding files: arrays in and out, nothing else.
// Validation that users see (names, shapes) happens in python/rnnkit/ops; these checks only
// guard the C++ core against a caller that bypassed it.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace rnnkit {
namespace py = pybind11;

// Data pointer of a C-contiguous array of dtype T, or nullptr for None.
template <class T>
const T* in_ptr(const py::object& obj, const char* name) {
  if (obj.is_none()) return nullptr;
  if (!py::isinstance<py::array_t<T>>(obj))
    throw py::type_error(std::string(name) + ": expected a numpy array of the kernel's dtype");
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!(arr.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + ": expected a C-contiguous array");
  return static_cast<const T*>(arr.data());
}

template <class T>
py::array_t<T> new_array(std::vector<py::ssize_t> shape, bool zero) {
  py::array_t<T> a(shape);
  if (zero && a.size() > 0) std::fill(a.mutable_data(), a.mutable_data() + a.size(), T(0));
  return a;
}

template <class T>
T* out_ptr(py::array_t<T>& a) {
  return a.mutable_data();
}

inline py::object or_none(bool present, py::object value) {
  return present ? value : py::object(py::none());
}

}  // namespace rnnkit
