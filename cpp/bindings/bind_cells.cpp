// Bindings for the sequence kernels: check, allocate, release the GIL, call, return.
// Arguments arrive validated and C-contiguous from python/rnnkit/ops/cells.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <functional>

#include "bindings/common.h"
#include "cells/gru.h"
#include "cells/lstm.h"
#include "cells/rnn.h"

namespace rnnkit {
namespace {

using ssize = py::ssize_t;

SeqDims dims_of(const py::array& x, int64_t H, const py::object& lengths, bool reverse) {
  SeqDims d;
  d.T = x.shape(0);
  d.B = x.shape(1);
  d.I = x.shape(2);
  d.H = H;
  d.lengths = in_ptr<int64_t>(lengths, "lengths");
  d.reverse = reverse;
  return d;
}

// ---- LSTM ----
template <class T>
py::tuple lstm_fwd(const py::array& x, const py::object& h0, const py::object& c0,
                   const py::array& w_ih, const py::array& w_hh, const py::object& b_ih,
                   const py::object& b_hh, const py::object& lengths, bool reverse,
                   bool training) {
  const SeqDims d = dims_of(x, w_hh.shape(1), lengths, reverse);
  auto y = new_array<T>({d.T, d.B, d.H}, false);
  auto h_n = new_array<T>({d.B, d.H}, false);
  auto c_n = new_array<T>({d.B, d.H}, false);
  py::array_t<T> gates, cells;
  if (training) {
    gates = new_array<T>({d.T, d.B, 4 * d.H}, false);
    cells = new_array<T>({d.T, d.B, d.H}, false);
  }
  {
    // Arguments (pointers) are evaluated now, with the GIL; the kernel runs without it.
    auto call = std::bind(lstm_forward<T>, out_ptr(y), out_ptr(h_n), out_ptr(c_n), training ? out_ptr(gates) : nullptr,
                    training ? out_ptr(cells) : nullptr, in_ptr<T>(x, "x"), in_ptr<T>(h0, "h0"),
                    in_ptr<T>(c0, "c0"), in_ptr<T>(w_ih, "w_ih"), in_ptr<T>(w_hh, "w_hh"),
                    in_ptr<T>(b_ih, "b_ih"), in_ptr<T>(b_hh, "b_hh"), d);
    py::gil_scoped_release nogil;
    call();
  }
  return py::make_tuple(y, h_n, c_n, or_none(training, gates), or_none(training, cells));
}

template <class T>
py::tuple lstm_bwd(const py::array& dy, const py::object& dh_n, const py::object& dc_n,
                   const py::array& x, const py::object& h0, const py::object& c0,
                   const py::array& w_ih, const py::array& w_hh, bool has_bias,
                   const py::array& y, const py::array& gates, const py::array& cells,
                   const py::object& lengths, bool reverse) {
  const SeqDims d = dims_of(x, w_hh.shape(1), lengths, reverse);
  const ssize G = 4;
  auto dx = new_array<T>({d.T, d.B, d.I}, false);
  auto dh0 = new_array<T>({d.B, d.H}, false);
  auto dc0 = new_array<T>({d.B, d.H}, false);
  auto dw_ih = new_array<T>({G * d.H, d.I}, true);
  auto dw_hh = new_array<T>({G * d.H, d.H}, true);
  auto db_ih = new_array<T>({has_bias ? G * d.H : 0}, true);
  auto db_hh = new_array<T>({has_bias ? G * d.H : 0}, true);
  {
    // Arguments (pointers) are evaluated now, with the GIL; the kernel runs without it.
    auto call = std::bind(lstm_backward<T>, out_ptr(dx), out_ptr(dh0), out_ptr(dc0), out_ptr(dw_ih), out_ptr(dw_hh),
                     has_bias ? out_ptr(db_ih) : nullptr, has_bias ? out_ptr(db_hh) : nullptr,
                     in_ptr<T>(dy, "dy"), in_ptr<T>(dh_n, "dh_n"), in_ptr<T>(dc_n, "dc_n"),
                     in_ptr<T>(x, "x"), in_ptr<T>(h0, "h0"), in_ptr<T>(c0, "c0"),
                     in_ptr<T>(w_ih, "w_ih"), in_ptr<T>(w_hh, "w_hh"), in_ptr<T>(y, "y"),
                     in_ptr<T>(gates, "gates"), in_ptr<T>(cells, "cells"), d);
    py::gil_scoped_release nogil;
    call();
  }
  return py::make_tuple(dx, dh0, dc0, dw_ih, dw_hh, or_none(has_bias, db_ih),
                        or_none(has_bias, db_hh));
}

// ---- GRU ----
template <class T>
py::tuple gru_fwd(const py::array& x, const py::object& h0, const py::array& w_ih,
                  const py::array& w_hh, const py::object& b_ih, const py::object& b_hh,
                  const py::object& lengths, bool reverse, bool training) {
  const SeqDims d = dims_of(x, w_hh.shape(1), lengths, reverse);
  auto y = new_array<T>({d.T, d.B, d.H}, false);
  auto h_n = new_array<T>({d.B, d.H}, false);
  py::array_t<T> gates, hn;
  if (training) {
    gates = new_array<T>({d.T, d.B, 3 * d.H}, false);
    hn = new_array<T>({d.T, d.B, d.H}, false);
  }
  {
    // Arguments (pointers) are evaluated now, with the GIL; the kernel runs without it.
    auto call = std::bind(gru_forward<T>, out_ptr(y), out_ptr(h_n), training ? out_ptr(gates) : nullptr,
                   training ? out_ptr(hn) : nullptr, in_ptr<T>(x, "x"), in_ptr<T>(h0, "h0"),
                   in_ptr<T>(w_ih, "w_ih"), in_ptr<T>(w_hh, "w_hh"), in_ptr<T>(b_ih, "b_ih"),
                   in_ptr<T>(b_hh, "b_hh"), d);
    py::gil_scoped_release nogil;
    call();
  }
  return py::make_tuple(y, h_n, or_none(training, gates), or_none(training, hn));
}

template <class T>
py::tuple gru_bwd(const py::array& dy, const py::object& dh_n, const py::array& x,
                  const py::object& h0, const py::array& w_ih, const py::array& w_hh,
                  bool has_bias, const py::array& y, const py::array& gates, const py::array& hn,
                  const py::object& lengths, bool reverse) {
  const SeqDims d = dims_of(x, w_hh.shape(1), lengths, reverse);
  const ssize G = 3;
  auto dx = new_array<T>({d.T, d.B, d.I}, false);
  auto dh0 = new_array<T>({d.B, d.H}, false);
  auto dw_ih = new_array<T>({G * d.H, d.I}, true);
  auto dw_hh = new_array<T>({G * d.H, d.H}, true);
  auto db_ih = new_array<T>({has_bias ? G * d.H : 0}, true);
  auto db_hh = new_array<T>({has_bias ? G * d.H : 0}, true);
  {
    // Arguments (pointers) are evaluated now, with the GIL; the kernel runs without it.
    auto call = std::bind(gru_backward<T>, out_ptr(dx), out_ptr(dh0), out_ptr(dw_ih), out_ptr(dw_hh),
                    has_bias ? out_ptr(db_ih) : nullptr, has_bias ? out_ptr(db_hh) : nullptr,
                    in_ptr<T>(dy, "dy"), in_ptr<T>(dh_n, "dh_n"), in_ptr<T>(x, "x"),
                    in_ptr<T>(h0, "h0"), in_ptr<T>(w_ih, "w_ih"), in_ptr<T>(w_hh, "w_hh"),
                    in_ptr<T>(y, "y"), in_ptr<T>(gates, "gates"), in_ptr<T>(hn, "hn"), d);
    py::gil_scoped_release nogil;
    call();
  }
  return py::make_tuple(dx, dh0, dw_ih, dw_hh, or_none(has_bias, db_ih), or_none(has_bias, db_hh));
}

// ---- RNN ----
Nonlinearity parse_nonlinearity(const std::string& name) {
  if (name == "tanh") return Nonlinearity::tanh;
  if (name == "relu") return Nonlinearity::relu;
  throw py::value_error("nonlinearity must be 'tanh' or 'relu', got '" + name + "'");
}

template <class T>
py::tuple rnn_fwd(const py::array& x, const py::object& h0, const py::array& w_ih,
                  const py::array& w_hh, const py::object& b_ih, const py::object& b_hh,
                  const std::string& nonlinearity, const py::object& lengths, bool reverse,
                  bool training) {
  const SeqDims d = dims_of(x, w_hh.shape(1), lengths, reverse);
  const Nonlinearity act = parse_nonlinearity(nonlinearity);
  auto y = new_array<T>({d.T, d.B, d.H}, false);
  auto h_n = new_array<T>({d.B, d.H}, false);
  py::array_t<T> acts;
  if (training) acts = new_array<T>({d.T, d.B, d.H}, false);
  {
    // Arguments (pointers) are evaluated now, with the GIL; the kernel runs without it.
    auto call = std::bind(rnn_forward<T>, out_ptr(y), out_ptr(h_n), training ? out_ptr(acts) : nullptr,
                   in_ptr<T>(x, "x"), in_ptr<T>(h0, "h0"), in_ptr<T>(w_ih, "w_ih"),
                   in_ptr<T>(w_hh, "w_hh"), in_ptr<T>(b_ih, "b_ih"), in_ptr<T>(b_hh, "b_hh"), act,
                   d);
    py::gil_scoped_release nogil;
    call();
  }
  return py::make_tuple(y, h_n, or_none(training, acts));
}

template <class T>
py::tuple rnn_bwd(const py::array& dy, const py::object& dh_n, const py::array& x,
                  const py::object& h0, const py::array& w_ih, const py::array& w_hh,
                  bool has_bias, const py::array& y, const py::array& acts,
                  const std::string& nonlinearity, const py::object& lengths, bool reverse) {
  const SeqDims d = dims_of(x, w_hh.shape(1), lengths, reverse);
  const Nonlinearity act = parse_nonlinearity(nonlinearity);
  auto dx = new_array<T>({d.T, d.B, d.I}, false);
  auto dh0 = new_array<T>({d.B, d.H}, false);
  auto dw_ih = new_array<T>({d.H, d.I}, true);
  auto dw_hh = new_array<T>({d.H, d.H}, true);
  auto db_ih = new_array<T>({has_bias ? d.H : 0}, true);
  auto db_hh = new_array<T>({has_bias ? d.H : 0}, true);
  {
    // Arguments (pointers) are evaluated now, with the GIL; the kernel runs without it.
    auto call = std::bind(rnn_backward<T>, out_ptr(dx), out_ptr(dh0), out_ptr(dw_ih), out_ptr(dw_hh),
                    has_bias ? out_ptr(db_ih) : nullptr, has_bias ? out_ptr(db_hh) : nullptr,
                    in_ptr<T>(dy, "dy"), in_ptr<T>(dh_n, "dh_n"), in_ptr<T>(x, "x"),
                    in_ptr<T>(h0, "h0"), in_ptr<T>(w_ih, "w_ih"), in_ptr<T>(w_hh, "w_hh"),
                    in_ptr<T>(y, "y"), in_ptr<T>(acts, "acts"), act, d);
    py::gil_scoped_release nogil;
    call();
  }
  return py::make_tuple(dx, dh0, dw_ih, dw_hh, or_none(has_bias, db_ih), or_none(has_bias, db_hh));
}

}  // namespace

void bind_cells(py::module_& m) {
  // One name per kernel and dtype; ops picks by the validated dtype.
  m.def("lstm_forward_f32", &lstm_fwd<float>);
  m.def("lstm_forward_f64", &lstm_fwd<double>);
  m.def("lstm_backward_f32", &lstm_bwd<float>);
  m.def("lstm_backward_f64", &lstm_bwd<double>);
  m.def("gru_forward_f32", &gru_fwd<float>);
  m.def("gru_forward_f64", &gru_fwd<double>);
  m.def("gru_backward_f32", &gru_bwd<float>);
  m.def("gru_backward_f64", &gru_bwd<double>);
  m.def("rnn_forward_f32", &rnn_fwd<float>);
  m.def("rnn_forward_f64", &rnn_fwd<double>);
  m.def("rnn_backward_f32", &rnn_bwd<float>);
  m.def("rnn_backward_f64", &rnn_bwd<double>);
}

}  // namespace rnnkit
