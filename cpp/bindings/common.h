// Shared by the binding files: the one validation rule, dtype dispatch, arrays in and out.
//
// The rule: every compiled entry point checks every array it touches - dtype, C-contiguity and
// the exact shape the kernel will use - before it reads or writes anything, and raises
// TypeError (wrong kind or dtype) or ValueError (wrong rank, shape or range) naming the
// argument, the shape it got and the shape it expected. rnnkit.ops and the layers check first,
// with messages in their own terms; these checks keep the C++ core memory-safe whoever calls it
// (a replaced Parameter.data, a stale cache, a direct _core call).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "kernels/kernels.h"

namespace rnnkit {
namespace py = pybind11;

// An expected or actual array shape (rank <= 4), without heap allocation: every binding call
// checks a dozen arrays, so the checks must cost nanoseconds.
struct Shape {
  int64_t d[4] = {0, 0, 0, 0};
  int n = 0;
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) {
    for (int64_t v : dims)
      if (n < 4) d[n++] = v;  // every rnnkit array has rank <= 4
  }
  bool operator==(const Shape& o) const {
    if (n != o.n) return false;
    for (int i = 0; i < n; ++i)
      if (d[i] != o.d[i]) return false;
    return true;
  }
  bool operator!=(const Shape& o) const { return !(*this == o); }
};

inline std::string shape_text(const Shape& s) {
  std::string out = "(";
  for (int i = 0; i < s.n; ++i) out += (i ? ", " : "") + std::to_string(s.d[i]);
  return out + (s.n == 1 ? ",)" : ")");
}

inline std::string shape_text(const py::array& a) {
  std::string out = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) out += (i ? ", " : "") + std::to_string(a.shape(i));
  return out + (a.ndim() == 1 ? ",)" : ")");
}

inline bool has_shape(const py::array& a, const Shape& s) {
  if (a.ndim() != s.n) return false;
  for (int i = 0; i < s.n; ++i)
    if (a.shape(i) != s.d[i]) return false;
  return true;
}

inline const char* dtype_name(float) { return "float32"; }
inline const char* dtype_name(double) { return "float64"; }
inline const char* dtype_name(int64_t) { return "int64"; }

// `obj` as an array of dtype T and exactly `shape` (any strides).
template <class T>
py::array typed_array(const py::handle& obj, const char* name, const Shape& shape) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy.ndarray, got " +
                         std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (!py::isinstance<py::array_t<T>>(a))
    throw py::type_error(std::string(name) + " must have dtype " + dtype_name(T()) + ", got " +
                         std::string(py::str(a.dtype())));
  if (!has_shape(a, shape))
    throw py::value_error(std::string(name) + " has shape " + shape_text(a) + ", expected " +
                          shape_text(shape));
  return a;
}

// `obj` as a C-contiguous array of dtype T and exactly `shape`.
template <class T>
py::array checked_array(const py::handle& obj, const char* name, const Shape& shape) {
  py::array a = typed_array<T>(obj, name, shape);
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  return a;
}

template <class T>
const T* input(const py::handle& obj, const char* name, const Shape& shape) {
  return static_cast<const T*>(checked_array<T>(obj, name, shape).data());
}

// nullptr for None.
template <class T>
const T* optional_input(const py::handle& obj, const char* name, const Shape& shape) {
  return obj.is_none() ? nullptr : input<T>(obj, name, shape);
}

// An array the kernel writes into (gradients accumulated in place); None gives nullptr.
template <class T>
T* optional_output(const py::handle& obj, const char* name, const Shape& shape) {
  if (obj.is_none()) return nullptr;
  py::array a = checked_array<T>(obj, name, shape);
  if (!a.writeable()) throw py::value_error(std::string(name) + " must be writable");
  return static_cast<T*>(a.mutable_data());
}

template <class T>
T* output(const py::handle& obj, const char* name, const Shape& shape) {
  if (obj.is_none()) throw py::type_error(std::string(name) + " must be an array, got None");
  return optional_output<T>(obj, name, shape);
}

// `obj` as a 3-D array (n0, n1, n2) of dtype T whose rows (the last axis) are contiguous, any
// other strides allowed (a transposed or sliced view); the strides of axes 0 and 1 in elements.
template <class T>
py::array strided_rows(const py::handle& obj, const char* name, const Shape& shape,
                       int64_t* stride0, int64_t* stride1, bool writable) {
  py::array a = typed_array<T>(obj, name, shape);
  const auto item = static_cast<py::ssize_t>(sizeof(T));
  if (a.size() == 0) {  // nothing is read or written: numpy's strides of empty arrays vary
    *stride0 = *stride1 = 0;  // (0: contiguous, engine/seq_dims.h)
    if (writable && !a.writeable()) throw py::value_error(std::string(name) + " must be writable");
    return a;
  }
  for (int i = 0; i < 3; ++i)
    if (a.strides(i) < 0 || a.strides(i) % item != 0)
      throw py::value_error(std::string(name) + " must have non-negative strides");
  if (shape.d[2] > 1 && a.strides(2) != item)
    throw py::value_error(std::string(name) + " must be contiguous along its last axis");
  if (writable && !a.writeable()) throw py::value_error(std::string(name) + " must be writable");
  *stride0 = a.strides(0) / item;
  *stride1 = a.strides(1) / item;
  return a;
}

template <class T>
py::array_t<T> new_array(const Shape& shape, bool zero) {
  std::vector<py::ssize_t> s(shape.d, shape.d + shape.n);
  py::array_t<T> a(s);
  if (zero && a.size() > 0) std::fill(a.mutable_data(), a.mutable_data() + a.size(), T(0));
  return a;
}

// Calls f(T()) with T = float or double, the dtype of `obj` (the array that fixes the dtype of
// the call); anything else is a TypeError naming `name`.
template <class F>
auto dispatch_float(const py::handle& obj, const char* name, F&& f) {
  if (py::isinstance<py::array_t<float>>(obj)) return f(float());
  if (py::isinstance<py::array_t<double>>(obj)) return f(double());
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy.ndarray");
  throw py::type_error(std::string(name) + " must have dtype float32 or float64, got " +
                       std::string(py::str(py::reinterpret_borrow<py::array>(obj).dtype())));
}

// The dimension `axis` of `obj` (which must be an ndarray of `ndim` dims: `layout` says which).
inline int64_t dim(const py::handle& obj, const char* name, int ndim, int axis,
                   const char* layout) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy.ndarray");
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) + "-D " +
                          layout + ", got shape " + shape_text(a));
  return a.shape(axis);
}

// The weight formats by their Python names (rnnkit.quantize): "" (the layer's own float type),
// "int8", "bfloat16"; anything else is a ValueError.
inline WeightFormat weight_format_of(const std::string& name) {
  if (name.empty()) return WeightFormat::native;
  if (name == "int8") return WeightFormat::int8;
  if (name == "bfloat16") return WeightFormat::bf16;
  throw py::value_error("quantized must be '', 'int8' or 'bfloat16', got '" + name + "'");
}
inline const char* weight_format_name(WeightFormat f) {
  return f == WeightFormat::int8 ? "int8" : f == WeightFormat::bf16 ? "bfloat16" : "";
}

}  // namespace rnnkit
