// Bindings for single-step kernels with packed weights (the fast path of LSTMCell & co.).
// These are called once per generated token, so the checks are done here, in C++, where they
// cost nanoseconds, and the Python layer adds nothing per call.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <functional>
#include <memory>
#include <string>

#include "bindings/common.h"
#include "cells/gru.h"
#include "cells/lstm.h"
#include "cells/rnn.h"
#include "cells/step.h"

namespace rnnkit {
namespace {

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// A C-contiguous (rows, cols) array of dtype T; rows == -1 accepts any batch size.
template <class T>
const T* checked(const py::handle& obj, const char* name, py::ssize_t rows, py::ssize_t cols,
                 const char* layout) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy.ndarray");
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (!py::isinstance<py::array_t<T>>(obj))
    throw py::type_error(std::string(name) + " must have dtype " +
                         (sizeof(T) == 4 ? "float32" : "float64") + " (the cell's dtype), got " +
                         std::string(py::str(a.dtype())));
  if (a.ndim() != 2 || (rows >= 0 && a.shape(0) != rows) || a.shape(1) != cols)
    throw py::value_error(std::string(name) + " has shape " + shape_str(a) + ", expected " +
                          layout + " = (" + (rows >= 0 ? std::to_string(rows) : "B") + ", " +
                          std::to_string(cols) + ")");
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  return static_cast<const T*>(a.data());
}

// One C++ type per cell (Kind), because pybind11 binds each C++ type to one Python class.
enum Kind { kLstm, kGru, kRnn };
template <class T, Kind K>
struct Step {
  std::unique_ptr<StepWeights<T>> w;
  Nonlinearity act = Nonlinearity::tanh;
  py::ssize_t I() const { return w->input_size(); }
  py::ssize_t H() const { return w->hidden_size(); }
  void check_isa() const {
    if (!w->packed_for_current_isa())
      throw std::runtime_error("step weights were packed for another SIMD level; rebuild them");
  }
};

// Packs the weights with `pack` (lstm_step_weights, gru_step_weights, ...) into a new S.
template <class T, class S, class Pack>
std::unique_ptr<S> make_step(Pack pack, const py::array& w_ih, const py::array& w_hh,
                             const py::object& b_ih, const py::object& b_hh) {
  auto s = std::make_unique<S>();
  s->w.reset(pack(in_ptr<T>(w_ih, "w_ih"), in_ptr<T>(w_hh, "w_hh"), in_ptr<T>(b_ih, "b_ih"),
                  in_ptr<T>(b_hh, "b_hh"), w_ih.shape(1), w_hh.shape(1)));
  return s;
}

// A one-state step (GRU, RNN): check x and h, allocate h', run kernel(h', x, h, B) without
// the GIL.
template <class T, class S, class Kernel>
py::array_t<T> step_one_state(const S& s, const py::object& x, const py::object& h,
                              Kernel kernel) {
  s.check_isa();
  const T* px = checked<T>(x, "x", -1, s.I(), "(B, input_size)");
  const py::ssize_t B = py::reinterpret_borrow<py::array>(x).shape(0);
  const T* ph = checked<T>(h, "h", B, s.H(), "(B, hidden_size)");
  auto h_out = new_array<T>({B, s.H()}, false);
  T* ph_out = out_ptr(h_out);
  {
    py::gil_scoped_release nogil;
    kernel(ph_out, px, ph, B);
  }
  return h_out;
}

template <class T>
void bind_one(py::module_& m, const std::string& suffix) {
  using SL = Step<T, kLstm>;
  py::class_<SL>(m, ("LSTMStep_" + suffix).c_str())
      .def(py::init([](const py::array& w_ih, const py::array& w_hh, const py::object& b_ih,
                       const py::object& b_hh) {
        return make_step<T, SL>(lstm_step_weights<T>, w_ih, w_hh, b_ih, b_hh);
      }))
      .def("step", [](const SL& s, const py::object& x, const py::object& h,
                      const py::object& c) {
        s.check_isa();
        const T* px = checked<T>(x, "x", -1, s.I(), "(B, input_size)");
        const py::ssize_t B = py::reinterpret_borrow<py::array>(x).shape(0);
        const T* ph = checked<T>(h, "h", B, s.H(), "(B, hidden_size)");
        const T* pc = checked<T>(c, "c", B, s.H(), "(B, hidden_size)");
        auto h_out = new_array<T>({B, s.H()}, false);
        auto c_out = new_array<T>({B, s.H()}, false);
        T* ph_out = out_ptr(h_out);
        T* pc_out = out_ptr(c_out);
        {
          py::gil_scoped_release nogil;
          lstm_step<T>(*s.w, ph_out, pc_out, px, ph, pc, B);
        }
        return py::make_tuple(h_out, c_out);
      });

  using SG = Step<T, kGru>;
  py::class_<SG>(m, ("GRUStep_" + suffix).c_str())
      .def(py::init([](const py::array& w_ih, const py::array& w_hh, const py::object& b_ih,
                       const py::object& b_hh) {
        return make_step<T, SG>(gru_step_weights<T>, w_ih, w_hh, b_ih, b_hh);
      }))
      .def("step", [](const SG& s, const py::object& x, const py::object& h) {
        return step_one_state<T>(s, x, h, [&](T* h_out, const T* px, const T* ph, int64_t B) {
          gru_step<T>(*s.w, h_out, px, ph, B);
        });
      });

  using SR = Step<T, kRnn>;
  py::class_<SR>(m, ("RNNStep_" + suffix).c_str())
      .def(py::init([](const py::array& w_ih, const py::array& w_hh, const py::object& b_ih,
                       const py::object& b_hh, const std::string& nonlinearity) {
        if (nonlinearity != "tanh" && nonlinearity != "relu")
          throw py::value_error("nonlinearity must be 'tanh' or 'relu', got '" + nonlinearity +
                                "'");
        auto s = make_step<T, SR>(rnn_step_weights<T>, w_ih, w_hh, b_ih, b_hh);
        s->act = nonlinearity == "tanh" ? Nonlinearity::tanh : Nonlinearity::relu;
        return s;
      }))
      .def("step", [](const SR& s, const py::object& x, const py::object& h) {
        return step_one_state<T>(s, x, h, [&](T* h_out, const T* px, const T* ph, int64_t B) {
          rnn_step<T>(*s.w, h_out, px, ph, s.act, B);
        });
      });
}

}  // namespace

void bind_step(py::module_& m) {
  bind_one<float>(m, "f32");
  bind_one<double>(m, "f64");
}

}  // namespace rnnkit
