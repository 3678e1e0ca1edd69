// Bindings of the sequence kernels and single steps, generated for every cell of
// cells/cell_list.h: <name>_forward, <name>_backward (float32/float64 chosen by the dtype of x),
// the step class <name>_step, and cells(), the spec table python/rnnkit/_cellspec.py reads.
// Each binding checks every array (bindings/common.h), allocates outputs, releases the GIL
// around the kernel only, and returns.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <type_traits>
#include <utility>
#include <string>
#include <vector>

#include "bindings/common.h"
#include "cells/cell_list.h"
#include "engine/grad_blocks.h"
#include "engine/sequence.h"

namespace rnnkit {
namespace {

// The sizes of a call, read from x (T, B, I), w_hh (G*H, H) and, for a projected LSTM, w_hr
// (P, H) with w_hh (G*H, P); and the lengths, copied (the kernel must not see a caller's array
// change under it) and range-checked.
struct CallSizes {
  SeqDims d;
  std::vector<int64_t> lengths;
};

CallSizes sizes_of(const py::handle& x, const py::handle& w_hh, int G, const py::handle& lengths,
                   bool reverse, const py::handle& w_hr = py::none()) {
  CallSizes c;
  c.d.T = dim(x, "x", 3, 0, "(T, B, I)");
  c.d.B = dim(x, "x", 3, 1, "(T, B, I)");
  c.d.I = dim(x, "x", 3, 2, "(T, B, I)");
  const int64_t rows = dim(w_hh, "w_hh", 2, 0, "(G*H, H)");
  const int64_t cols = dim(w_hh, "w_hh", 2, 1, "(G*H, H)");
  if (w_hr.is_none()) {
    c.d.H = c.d.P = cols;
    if (c.d.H < 1 || rows != G * c.d.H)
      throw py::value_error("w_hh has shape " + shape_text({rows, cols}) + ", expected (" +
                            std::to_string(G) + "*H, H) with H >= 1");
  } else {
    c.d.P = dim(w_hr, "w_hr", 2, 0, "(P, H)");
    c.d.H = dim(w_hr, "w_hr", 2, 1, "(P, H)");
    if (c.d.H < 1 || c.d.P < 1)
      throw py::value_error("w_hr has shape " + shape_text({c.d.P, c.d.H}) +
                            ", expected (P, H) with P, H >= 1");
    if (rows != G * c.d.H || cols != c.d.P)
      throw py::value_error("w_hh has shape " + shape_text({rows, cols}) + ", expected (" +
                            std::to_string(G) + "*H, P) = " +
                            shape_text({G * c.d.H, c.d.P}) + " with a projection w_hr");
  }
  if (!lengths.is_none()) {
    const int64_t* p = input<int64_t>(lengths, "lengths", {c.d.B});
    c.lengths.assign(p, p + c.d.B);
    for (int64_t v : c.lengths)
      if (v < 0 || v > c.d.T)
        throw py::value_error("lengths must lie in [0, T=" + std::to_string(c.d.T) + "], got " +
                              std::to_string(v));
    c.d.lengths = c.lengths.data();
  }
  c.d.reverse = reverse;
  return c;
}

template <class T>
CellWeights<T> weights_of(const py::handle& w_ih, const py::handle& w_hh, const py::handle& b_ih,
                          const py::handle& b_hh, int G, const SeqDims& d) {
  CellWeights<T> w;
  w.w_ih = input<T>(w_ih, "w_ih", {G * d.H, d.I});
  w.w_hh = input<T>(w_hh, "w_hh", {G * d.H, d.P});
  w.b_ih = optional_input<T>(b_ih, "b_ih", {G * d.H});
  w.b_hh = optional_input<T>(b_hh, "b_hh", {G * d.H});
  return w;
}

// A tuple of exactly n entries (states, gradients of states, saved arrays, extra parameters).
py::tuple tuple_of(const py::handle& obj, const char* name, int n) {
  if (!py::isinstance<py::tuple>(obj) && !py::isinstance<py::list>(obj))
    throw py::type_error(std::string(name) + " must be a tuple of " + std::to_string(n));
  py::tuple t = py::tuple(py::reinterpret_borrow<py::object>(obj));
  if (static_cast<int>(t.size()) != n)
    throw py::value_error(std::string(name) + " must have " + std::to_string(n) +
                          " entries, got " + std::to_string(t.size()));
  return t;
}

// "state0[h]", "saved[gates]", ...: the names errors use, built once per cell type (a binding
// call must not allocate strings for arrays that pass).
template <class Cell>
struct ItemNames {
  std::string state0[kMaxStates], dstate_n[kMaxStates], saved[kMaxSaved];
  std::string extra[kMaxExtra], dextra[kMaxExtra];
  ItemNames() {
    for (int i = 0; i < Cell::kExtra; ++i) {
      extra[i] = std::string("extra[") + extra_name<Cell>(i) + "]";
      dextra[i] = std::string("dextra[") + extra_name<Cell>(i) + "]";
    }
    for (int i = 0; i < Cell::kStates; ++i) {
      state0[i] = std::string("state0[") + Cell::kStateNames[i] + "]";
      dstate_n[i] = std::string("dstate_n[") + Cell::kStateNames[i] + "]";
    }
    for (int i = 0; i < Cell::kSaved; ++i)
      saved[i] = std::string("saved[") + Cell::kSavedNames[i] + "]";
  }
  static const ItemNames& get() {
    static const ItemNames names;
    return names;
  }
};

// The (B, ·) shape of state i: h is P wide (the projection's size, or H), a cell state H.
Shape state_shape(const SeqDims& d, int i) { return {d.B, i == 0 ? d.P : d.H}; }

// A projection (w_hr) is for the cells that never read h_prev; the others refuse it.
template <class Cell, class T>
const T* projection_of(const py::handle& w_hr, const SeqDims& d) {
  if (w_hr.is_none()) return nullptr;
  if (!Cell::kProjectable)
    throw py::value_error(std::string("the ") + Cell::kName + " cell has no projection (w_hr)");
  return input<T>(w_hr, "w_hr", {d.P, d.H});
}

// ONNX's gate options from Python: None, or (kinds, alphas, betas, clip, input_forget) with
// one kind (cells/gate_options.h's Act), alpha and beta per slot. Returns whether given.
bool options_of(const py::handle& obj, GateOptions* out) {
  if (obj.is_none()) return false;
  py::tuple t = tuple_of(obj, "options", 5);
  py::tuple kinds = tuple_of(t[0], "options kinds", kActSlots);
  py::tuple alphas = tuple_of(t[1], "options alphas", kActSlots);
  py::tuple betas = tuple_of(t[2], "options betas", kActSlots);
  for (int s = 0; s < kActSlots; ++s) {
    const int k = kinds[s].cast<int>();
    if (k < 0 || k > static_cast<int>(Act::hard_sigmoid))
      throw py::value_error("options: unknown activation kind " + std::to_string(k));
    out->act[s] = ActSpec{static_cast<Act>(k), alphas[s].cast<double>(),
                          betas[s].cast<double>()};
  }
  out->clip = t[3].cast<double>();
  if (!(out->clip >= 0.0)) throw py::value_error("options: clip must be >= 0");
  out->input_forget = t[4].cast<bool>();
  return true;
}

// The cell's extra parameters (`extra`, a tuple of kExtra arrays of kExtraWidth[i]*H) into w.
template <class Cell, class T>
void extras_of(const py::handle& extra, int64_t H, CellWeights<T>& w) {
  py::tuple e = tuple_of(extra, "extra", Cell::kExtra);
  for (int i = 0; i < Cell::kExtra; ++i)
    w.extra[i] = input<T>(e[i], ItemNames<Cell>::get().extra[i].c_str(),
                          {extra_width<Cell>(i) * H});
}

// Recurrent dropout and zoneout (engine/regularizers.h) from Python: recurrent_mask None or
// (B, H); zoneout None, a probability, or (T, B, H) weights. Neither with a projection, and no
// recurrent mask for a two-phase cell (its second product reads r ⊙ h).
template <class Cell, class T>
Regularizers<T> regularizers_of(const py::handle& recurrent_mask, const py::handle& zoneout,
                                const SeqDims& d, bool projected) {
  Regularizers<T> reg;
  const bool any = !recurrent_mask.is_none() || !zoneout.is_none();
  if (any && projected)
    throw py::value_error("recurrent dropout and zoneout are not supported with a projection");
  if (!recurrent_mask.is_none()) {
    if (Cell::kHGates < Cell::G)
      throw py::value_error(std::string("the ") + Cell::kName + " cell takes no recurrent "
                            "mask: its second recurrent product reads r ⊙ h");
    reg.recurrent_mask = input<T>(recurrent_mask, "recurrent_mask", {d.B, d.H});
  }
  if (zoneout.is_none()) return reg;
  if (py::isinstance<py::float_>(zoneout) || py::isinstance<py::int_>(zoneout)) {
    const double p = zoneout.cast<double>();
    if (!(p >= 0.0 && p <= 1.0))
      throw py::value_error("zoneout must be a probability in [0, 1], got " +
                            std::to_string(p));
    reg.zoneout_p = static_cast<T>(p);
  } else {
    reg.zoneout = input<T>(zoneout, "zoneout", {d.T, d.B, d.H});
  }
  return reg;
}

// Strides of a (T, B, ·) operand for SeqDims, normalised so that an axis of length 1 reads as
// contiguous (its stride is never used).
void row_strides(int64_t T, int64_t B, int64_t width, int64_t st, int64_t sb, int64_t* out_t,
                 int64_t* out_b) {
  *out_b = B > 1 ? sb : width;
  *out_t = T > 1 ? st : B * width;
}

// Whether rows of `width` elements at t*st + b*sb (t < T, b < B) never overlap.
bool rows_disjoint(int64_t T, int64_t st, int64_t B, int64_t sb, int64_t width) {
  int64_t n_lo = B, s_lo = sb, n_hi = T, s_hi = st;  // the axis with the smaller stride first
  if (T > 1 && (B <= 1 || st < sb)) {
    std::swap(n_lo, n_hi);
    std::swap(s_lo, s_hi);
  }
  if (n_lo > 1 && s_lo < width) return false;
  return n_hi <= 1 || s_hi >= (n_lo > 1 ? n_lo * s_lo : width);
}

template <template <class> class CellT, class T>
py::tuple forward(const py::array& x, const py::handle& state0, const py::handle& w_ih,
                  const py::handle& w_hh, const py::handle& b_ih, const py::handle& b_hh,
                  const py::handle& lengths, bool reverse, bool training,
                  const py::handle& out, const py::handle& extra, const py::handle& w_hr,
                  const py::handle& options, const py::handle& recurrent_mask,
                  const py::handle& zoneout) {
  using Cell = CellT<T>;
  GateOptions opts;
  const bool has_opts = options_of(options, &opts);
  CallSizes c = sizes_of(x, w_hh, Cell::G, lengths, reverse, w_hr);
  SeqDims& d = c.d;
  ForwardArrays<T> a;
  if (training) {  // backward reads x and y as (T*B)-row matrices: C-contiguous only
    a.x = input<T>(x, "x", {d.T, d.B, d.I});
    if (!out.is_none()) throw py::value_error("out is for inference (training=False) only");
  } else {
    int64_t st, sb;
    a.x = static_cast<const T*>(strided_rows<T>(x, "x", {d.T, d.B, d.I}, &st, &sb, false).data());
    row_strides(d.T, d.B, d.I, st, sb, &d.x_t, &d.x_b);
  }
  a.w = weights_of<T>(w_ih, w_hh, b_ih, b_hh, Cell::G, d);
  extras_of<Cell>(extra, d.H, a.w);
  a.w.w_hr = projection_of<Cell, T>(w_hr, d);
  if (has_opts) a.w.opts = &opts;
  a.reg = regularizers_of<Cell, T>(recurrent_mask, zoneout, d, a.w.w_hr != nullptr);
  py::tuple s0 = tuple_of(state0, "state0", Cell::kStates);
  for (int i = 0; i < Cell::kStates; ++i)
    a.state0[i] = optional_input<T>(s0[i], ItemNames<Cell>::get().state0[i].c_str(),
                                    state_shape(d, i));
  py::array y;
  if (out.is_none()) {
    y = new_array<T>({d.T, d.B, d.P}, false);
  } else {  // the caller's (T, B, P) view: a batch-first or bidirectional output buffer
    int64_t st, sb;
    y = strided_rows<T>(out, "out", {d.T, d.B, d.P}, &st, &sb, true);
    row_strides(d.T, d.B, d.P, st, sb, &d.y_t, &d.y_b);
    if (y.size() > 0 && !rows_disjoint(d.T, d.y_t, d.B, d.y_b, d.P))  // (empty: no rows)
      throw py::value_error("out: its (t, b) rows overlap in memory");
  }
  a.y = static_cast<T*>(y.mutable_data());
  py::tuple finals(Cell::kStates);
  for (int i = 0; i < Cell::kStates; ++i) {
    auto f = new_array<T>(state_shape(d, i), false);
    a.state_n[i] = f.mutable_data();
    finals[i] = f;
  }
  py::object saved = py::none();
  if (training) {  // the cell's saved arrays, then, projected, m (T, B, H)
    const int n_saved = Cell::kSaved + (a.w.w_hr ? 1 : 0);
    py::tuple s(n_saved);
    for (int i = 0; i < Cell::kSaved; ++i) {
      auto arr = new_array<T>({d.T, d.B, Cell::kSavedWidth[i] * d.H}, false);
      a.saved[i] = arr.mutable_data();
      s[i] = arr;
    }
    if (a.w.w_hr) {
      auto arr = new_array<T>({d.T, d.B, d.H}, false);
      a.m_saved = arr.mutable_data();
      s[Cell::kSaved] = arr;
    }
    saved = s;
  }
  {
    py::gil_scoped_release nogil;
    sequence_forward<Cell, T>(a, d);
  }
  return py::make_tuple(y, finals, saved);
}

template <template <class> class CellT, class T>
py::tuple backward(const py::array& dy, const py::handle& dstate_n, const py::handle& x,
                   const py::handle& state0, const py::handle& w_ih, const py::handle& w_hh,
                   const py::handle& y, const py::handle& saved, const py::handle& lengths,
                   bool reverse, const py::handle& dw_ih, const py::handle& dw_hh,
                   const py::handle& db_ih, const py::handle& db_hh, const py::handle& extra,
                   const py::handle& dextra, const py::handle& w_hr, const py::handle& dw_hr,
                   const py::handle& options, const py::handle& b_ih, const py::handle& b_hh,
                   const py::handle& recurrent_mask, const py::handle& zoneout) {
  using Cell = CellT<T>;
  GateOptions opts;
  const bool has_opts = options_of(options, &opts);
  const CallSizes c = sizes_of(x, w_hh, Cell::G, lengths, reverse, w_hr);
  const SeqDims& d = c.d;
  const int64_t GH = Cell::G * d.H;
  BackwardArrays<T> a;
  a.x = input<T>(x, "x", {d.T, d.B, d.I});
  a.w = weights_of<T>(w_ih, w_hh, b_ih, b_hh, Cell::G, d);  // the forward's (row-wise cells
                                                            // recompute with the biases)
  extras_of<Cell>(extra, d.H, a.w);
  a.w.w_hr = projection_of<Cell, T>(w_hr, d);
  if (a.w.w_hr) a.dw_hr = output<T>(dw_hr, "dw_hr", {d.P, d.H});
  if (has_opts) a.w.opts = &opts;
  a.reg = regularizers_of<Cell, T>(recurrent_mask, zoneout, d, a.w.w_hr != nullptr);
  py::tuple de = tuple_of(dextra, "dextra", Cell::kExtra);
  for (int i = 0; i < Cell::kExtra; ++i)
    a.dextra[i] = output<T>(de[i], ItemNames<Cell>::get().dextra[i].c_str(),
                            {extra_width<Cell>(i) * d.H});
  a.dy = input<T>(dy, "dy", {d.T, d.B, d.P});
  a.y = input<T>(y, "y", {d.T, d.B, d.P});
  py::tuple s0 = tuple_of(state0, "state0", Cell::kStates);
  py::tuple dn = tuple_of(dstate_n, "dstate_n", Cell::kStates);
  for (int i = 0; i < Cell::kStates; ++i) {
    a.state0[i] = optional_input<T>(s0[i], ItemNames<Cell>::get().state0[i].c_str(),
                                    state_shape(d, i));
    a.dstate_n[i] = optional_input<T>(dn[i], ItemNames<Cell>::get().dstate_n[i].c_str(),
                                      state_shape(d, i));
  }
  py::tuple sv = tuple_of(saved, "saved", Cell::kSaved + (a.w.w_hr ? 1 : 0));
  for (int i = 0; i < Cell::kSaved; ++i)
    a.saved[i] = input<T>(sv[i], ItemNames<Cell>::get().saved[i].c_str(),
                          {d.T, d.B, Cell::kSavedWidth[i] * d.H});
  if (a.w.w_hr) a.m_saved = input<T>(sv[Cell::kSaved], "saved[m]", {d.T, d.B, d.H});
  a.dw_ih = output<T>(dw_ih, "dw_ih", {GH, d.I});
  a.dw_hh = output<T>(dw_hh, "dw_hh", {GH, d.P});
  a.db_ih = optional_output<T>(db_ih, "db_ih", {GH});
  a.db_hh = optional_output<T>(db_hh, "db_hh", {GH});
  auto dx = new_array<T>({d.T, d.B, d.I}, false);
  a.dx = dx.mutable_data();
  py::tuple dinit(Cell::kStates);
  for (int i = 0; i < Cell::kStates; ++i) {
    auto arr = new_array<T>(state_shape(d, i), false);
    a.dstate0[i] = arr.mutable_data();
    dinit[i] = arr;
  }
  {
    py::gil_scoped_release nogil;
    sequence_backward<Cell, T>(a, d);
  }
  return py::make_tuple(dx, dinit);
}

// Single steps: one Python class per cell, holding weights packed for float or double (the
// dtype of w_ih at construction).
template <template <class> class CellT>
struct Step {
  std::unique_ptr<StepWeights<float>> f32;
  std::unique_ptr<StepWeights<double>> f64;

  template <class T>
  std::unique_ptr<StepWeights<T>>& weights() {
    if constexpr (sizeof(T) == 4) return f32; else return f64;
  }
};

template <template <class> class CellT>
std::unique_ptr<Step<CellT>> make_step(const py::handle& w_ih, const py::handle& w_hh,
                                       const py::handle& b_ih, const py::handle& b_hh,
                                       const py::handle& extra, const py::handle& w_hr,
                                       const py::handle& options,
                                       const std::string& quantized) {
  const WeightFormat format = weight_format_of(quantized);
  GateOptions opts;
  const bool has_opts = options_of(options, &opts);
  return dispatch_float(w_ih, "w_ih", [&](auto tag) {
    using T = decltype(tag);
    using Cell = CellT<T>;
    SeqDims d;
    d.I = dim(w_ih, "w_ih", 2, 1, "(G*H, I)");
    if (w_hr.is_none()) {
      d.H = d.P = dim(w_hh, "w_hh", 2, 1, "(G*H, H)");
      if (d.H < 1) throw py::value_error("w_hh must have H >= 1 columns");
    } else {
      d.P = dim(w_hr, "w_hr", 2, 0, "(P, H)");
      d.H = dim(w_hr, "w_hr", 2, 1, "(P, H)");
      if (d.H < 1 || d.P < 1) throw py::value_error("w_hr must be (P, H) with P, H >= 1");
    }
    CellWeights<T> w = weights_of<T>(w_ih, w_hh, b_ih, b_hh, Cell::G, d);
    extras_of<Cell>(extra, d.H, w);
    w.w_hr = projection_of<Cell, T>(w_hr, d);
    if (has_opts) w.opts = &opts;  // StepWeights keeps a copy
    auto s = std::make_unique<Step<CellT>>();
    py::gil_scoped_release nogil;
    if (format != WeightFormat::native && !std::is_same_v<T, float>)
      throw py::type_error(quantized + " weights need float32 weights, got float64");
    s->template weights<T>() = make_step_weights<Cell, T>(w, d.I, d.H, d.P, format);
    return s;
  });
}

// The compiled steps' states: each of `states` (B, P) for h, (B, H) for the cell's own, checked
// into in[i], and a new array of the same shape for each, returned, its data in out[i].
template <class Cell, class T>
py::tuple step_states(const StepWeights<T>& w, const py::tuple& states, int64_t B,
                      const T** in, T** out) {
  py::tuple arrays(Cell::kStates);
  for (int i = 0; i < Cell::kStates; ++i) {
    const Shape shape{B, i == 0 ? w.output_size() : w.hidden_size()};
    in[i] = input<T>(states[i], Cell::kStateNames[i], shape);
    auto o = new_array<T>(shape, false);
    out[i] = o.mutable_data();
    arrays[i] = o;
  }
  return arrays;
}

// states: a tuple of kStates arrays (B, H) (h: (B, P) when projected); returns the new ones.
template <template <class> class CellT, class T>
py::tuple step_typed(const StepWeights<T>& w, const py::handle& x, const py::tuple& states) {
  using Cell = CellT<T>;
  const int64_t B = dim(x, "x", 2, 0, "(B, input_size)");
  StepArrays<T> a;
  a.x = input<T>(x, "x", {B, w.input_size()});
  py::tuple out = step_states<Cell, T>(w, states, B, a.state, a.state_out);
  {
    py::gil_scoped_release nogil;
    sequence_step<Cell, T>(w, a, B);
  }
  return out;
}

// x (T, B, I) time-major; states as step_typed's; returns (y (T, B, P), final states).
template <template <class> class CellT, class T>
py::tuple sequence_typed(const StepWeights<T>& w, const py::handle& x, const py::tuple& states,
                         bool reverse, const py::handle& lengths) {
  using Cell = CellT<T>;
  const int64_t steps = dim(x, "x", 3, 0, "(T, B, input_size)");
  const int64_t B = dim(x, "x", 3, 1, "(T, B, input_size)");
  StepSequenceArrays<T> a;
  a.x = input<T>(x, "x", {steps, B, w.input_size()});
  a.reverse = reverse;
  std::vector<int64_t> lens;  // copied after the range check: read with the GIL released
  if (!lengths.is_none()) {
    const int64_t* pl = input<int64_t>(lengths, "lengths", {B});
    lens.assign(pl, pl + B);
    for (int64_t b = 0; b < B; ++b)
      if (lens[b] < 0 || lens[b] > steps)
        throw py::value_error("lengths[" + std::to_string(b) + "] = " + std::to_string(lens[b]) +
                              ", expected a value in [0, T=" + std::to_string(steps) + "]");
    a.lengths = lens.data();
  }
  auto y = new_array<T>({steps, B, w.output_size()}, false);
  a.y = y.mutable_data();
  py::tuple finals = step_states<Cell, T>(w, states, B, a.state0, a.state_n);
  {
    py::gil_scoped_release nogil;
    sequence_steps<Cell, T>(w, a, steps, B);
  }
  return py::make_tuple(y, finals);
}

template <template <class> class CellT>
void bind_cell(py::module_& m, const char* name, py::list& specs) {
  using Cf = CellT<float>;
  const std::string n(name);
  m.def((n + "_forward").c_str(),
        [](const py::array& x, const py::handle& state0, const py::handle& w_ih,
           const py::handle& w_hh, const py::handle& b_ih, const py::handle& b_hh,
           const py::handle& lengths, bool reverse, bool training, const py::handle& out,
           const py::handle& extra, const py::handle& w_hr, const py::handle& options,
           const py::handle& recurrent_mask, const py::handle& zoneout) {
          return dispatch_float(x, "x", [&](auto tag) {
            return forward<CellT, decltype(tag)>(x, state0, w_ih, w_hh, b_ih, b_hh, lengths,
                                                 reverse, training, out, extra, w_hr, options,
                                                 recurrent_mask, zoneout);
          });
        },
        py::arg("x"), py::arg("state0"), py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"),
        py::arg("b_hh"), py::arg("lengths"), py::arg("reverse"), py::arg("training"),
        py::arg("out") = py::none(), py::arg("extra") = py::tuple(),
        py::arg("w_hr") = py::none(), py::arg("options") = py::none(),
        py::arg("recurrent_mask") = py::none(), py::arg("zoneout") = py::none());
  m.def((n + "_backward").c_str(),
        [](const py::array& dy, const py::handle& dstate_n, const py::handle& x,
           const py::handle& state0, const py::handle& w_ih, const py::handle& w_hh,
           const py::handle& y, const py::handle& saved, const py::handle& lengths,
           bool reverse, const py::handle& dw_ih, const py::handle& dw_hh,
           const py::handle& db_ih, const py::handle& db_hh, const py::handle& extra,
           const py::handle& dextra, const py::handle& w_hr, const py::handle& dw_hr,
           const py::handle& options, const py::handle& b_ih, const py::handle& b_hh,
           const py::handle& recurrent_mask, const py::handle& zoneout) {
          return dispatch_float(dy, "dy", [&](auto tag) {
            return backward<CellT, decltype(tag)>(dy, dstate_n, x, state0, w_ih, w_hh, y, saved,
                                                  lengths, reverse, dw_ih, dw_hh, db_ih, db_hh,
                                                  extra, dextra, w_hr, dw_hr, options, b_ih,
                                                  b_hh, recurrent_mask, zoneout);
          });
        },
        py::arg("dy"), py::arg("dstate_n"), py::arg("x"), py::arg("state0"), py::arg("w_ih"),
        py::arg("w_hh"), py::arg("y"), py::arg("saved"), py::arg("lengths"), py::arg("reverse"),
        py::arg("dw_ih"), py::arg("dw_hh"), py::arg("db_ih"), py::arg("db_hh"),
        py::arg("extra") = py::tuple(), py::arg("dextra") = py::tuple(),
        py::arg("w_hr") = py::none(), py::arg("dw_hr") = py::none(),
        py::arg("options") = py::none(), py::arg("b_ih") = py::none(),
        py::arg("b_hh") = py::none(), py::arg("recurrent_mask") = py::none(),
        py::arg("zoneout") = py::none());
  py::class_<Step<CellT>>(m, (n + "_step").c_str())
      .def(py::init(&make_step<CellT>), py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"),
           py::arg("b_hh"), py::arg("extra") = py::tuple(), py::arg("w_hr") = py::none(),
           py::arg("options") = py::none(), py::arg("quantized") = "")
      .def("step", [](Step<CellT>& s, const py::handle& x, const py::handle& states) {
        py::tuple st = tuple_of(states, "states", Cf::kStates);
        if (s.f32) return step_typed<CellT, float>(*s.f32, x, st);
        return step_typed<CellT, double>(*s.f64, x, st);
      }, py::arg("x"), py::arg("states"))
      .def("sequence", [](Step<CellT>& s, const py::handle& x, const py::handle& states,
                          bool reverse, const py::handle& lengths) {
        py::tuple st = tuple_of(states, "states", Cf::kStates);
        if (s.f32) return sequence_typed<CellT, float>(*s.f32, x, st, reverse, lengths);
        return sequence_typed<CellT, double>(*s.f64, x, st, reverse, lengths);
      }, py::arg("x"), py::arg("states"), py::arg("reverse") = false,
      py::arg("lengths") = py::none(),
      "An inference forward over x (T, B, I) from states, on the packed weights: returns "
      "(y (T, B, P), final states). lengths (B,) int64 or None: as the sequence kernels'.")
      .def_property_readonly("dtype", [](const Step<CellT>& s) {
        return std::string(s.f32 ? "float32" : "float64");
      })
      .def_property_readonly("quantized", [](const Step<CellT>& s) {
        return std::string(weight_format_name(s.f32 ? s.f32->format() : WeightFormat::native));
      });

  py::dict spec;
  spec["name"] = n;
  spec["gates"] = Cf::G;
  py::list states, saved;
  for (int i = 0; i < Cf::kStates; ++i) states.append(Cf::kStateNames[i]);
  for (int i = 0; i < Cf::kSaved; ++i)
    saved.append(py::make_tuple(Cf::kSavedNames[i], Cf::kSavedWidth[i]));
  py::list extra;
  for (int i = 0; i < Cf::kExtra; ++i)
    extra.append(py::make_tuple(extra_name<Cf>(i), extra_width<Cf>(i)));
  spec["states"] = states;
  spec["saved"] = saved;
  spec["extra"] = extra;
  spec["projectable"] = Cf::kProjectable;
  spec["two_phase"] = Cf::kHGates < Cf::G;  // its second product reads r ⊙ h: no recurrent mask
  spec["forward"] = m.attr((n + "_forward").c_str());
  spec["backward"] = m.attr((n + "_backward").c_str());
  spec["step"] = m.attr((n + "_step").c_str());
  specs.append(spec);
}

}  // namespace

void bind_cells(py::module_& m) {
  py::list specs;
#define RNNKIT_BIND_CELL(name, CellT) bind_cell<CellT>(m, #name, specs);
  RNNKIT_FOR_EACH_CELL(RNNKIT_BIND_CELL)
#undef RNNKIT_BIND_CELL
  m.def("cells", [specs]() { return specs; },
        "The cells compiled in (cells/cell_list.h): name, gates, state names, saved arrays "
        "and extra parameters (name, width in units of H each), and their forward, backward "
        "and step class.");
  m.def("grad_block_steps", &grad_block_steps, py::arg("batch"),
        "Steps per block in which a sequence's weight gradients are summed, for a batch of "
        "`batch` rows (engine/grad_blocks.h): a recomputing backward cut at multiples of it "
        "gives gradients bitwise equal to one over the whole sequence.");
}

}  // namespace rnnkit
