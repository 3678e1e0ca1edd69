// Definitions of the entry points in engine/sequence.h. Included only by cells/instantiate.cpp,
// which instantiates them for every cell of the list.
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include "engine/inference.h"
#include "engine/projection.h"
#include "engine/recurrence.h"
#include "engine/row_wise.h"
#include "engine/sequence.h"
#include "engine/step.h"
#include "runtime/buffer.h"

namespace rnnkit {

// The bias row added to x·W_ihᵀ: b_ih plus the parts of b_hh the cell folds in. Empty when the
// layer has no biases, unless `always` (single steps always add a bias row).
// A row-wise cell applies its biases itself, after its row statistics: nothing folds (zeros).
template <class Cell, class T>
std::vector<T> folded_bias(const CellWeights<T>& w, int64_t H, bool always) {
  std::vector<T> bias;
  if (!always && (row_wise<Cell>() || (!w.b_ih && !w.b_hh))) return bias;
  const int64_t GH = Cell::G * H;
  bias.assign(GH, T(0));
  if (row_wise<Cell>()) return bias;
  for (int64_t k = 0; k < GH; ++k)
    bias[k] = (w.b_ih ? w.b_ih[k] : T(0)) +
              (w.b_hh && Cell::folds_hh_bias(static_cast<int>(k / H)) ? w.b_hh[k] : T(0));
  return bias;
}

template <class Cell, class T>
void sequence_forward_by_units(typename Cell::Forward& cell, const ForwardArrays<T>& a,
                               const SeqDims& d, const KernelTable& k);

template <class Cell, class T>
void sequence_forward(const ForwardArrays<T>& a, const SeqDims& dims) {
  constexpr int G = Cell::G;
  const SeqDims d = dims.resolved();  // row strides of x and y, resolved once
  const KernelTable& k = kernels();  // one table for the whole call
  typename Cell::Forward cell(a, d, activations<T>(k));
  if constexpr (row_wise<Cell>()) {  // every step's raw input products first (row_wise.h)
    Buffer<T> inference_gx;
    T* gx = a.saved[0];
    if (!gx) {
      inference_gx.resize(d.T * d.B * G * d.H);
      gx = inference_gx.data();
    }
    raw_input_products(gx, a.x, a.w.w_ih, G * d.H, d, k);
    run_forward_row_wise<G>(cell, a.y, a.state_n[0], gx, a.state0[0], a.w.w_hh, a.reg, d, k);
  } else {
    sequence_forward_by_units<Cell>(cell, a, d, k);
  }
}

// The forward of the other cells (engine/recurrence.h, projection.h): threads own units.
template <class Cell, class T>
void sequence_forward_by_units(typename Cell::Forward& cell, const ForwardArrays<T>& a,
                               const SeqDims& d, const KernelTable& k) {
  constexpr int G = Cell::G, HG = Cell::kHGates;
  const std::vector<T> folded = folded_bias<Cell>(a.w, d.H, false);
  const T* bias = folded.empty() ? nullptr : folded.data();
  auto run = [&](auto make_input) {
    if constexpr (Cell::kProjectable) {
      if (a.w.w_hr) {  // the projected LSTM (engine/projection.h)
        if (a.reg.any())
          throw std::invalid_argument("recurrent dropout and zoneout are not supported with "
                                      "a projection");
        run_forward_projected<G>(cell, a.y, a.state_n[0], a.m_saved, make_input, a.state0[0],
                                 a.w.w_hh, a.w.w_hr, d, k);
        return;
      }
    }
    run_forward<G, HG>(cell, a.y, a.state_n[0], make_input, a.state0[0], a.w.w_hh, a.reg, d,
                       k);
  };
  if (T* gx = a.saved[0]) {  // training: project every step now, into the buffer backward keeps
    input_projection(gx, a.x, a.w.w_ih, bias, G, d, k);
    run([&](const Schedule&, int64_t j0, int64_t) {
      return PrecomputedInput<T>{gx, d.B, G * d.H, d.H, j0};
    });
  } else {  // inference: each thread projects its units a chunk of steps at a time
    const PackedGemm<T> pg = packed_gemm_fns<T>(k);
    run([&](const Schedule& sch, int64_t j0, int64_t j1) {
      return ChunkedProjection<T>(pg, sch, d, G, j0, j1, a.x, a.w.w_ih, bias);
    });
  }
}

template <class Cell, class T>
void sequence_backward(const BackwardArrays<T>& a, const SeqDims& dims) {
  const SeqDims d = dims.resolved();  // (P: the width of h)
  const KernelTable& k = kernels();
  Buffer<T> dg(d.T * d.B * Cell::G * d.H);  // every row is written (or zeroed) by run_backward
  typename Cell::Backward cell(a, d, activations<T>(k));
  if constexpr (Cell::kProjectable) {
    if (a.w.w_hr) {
      if (a.reg.any())
        throw std::invalid_argument("recurrent dropout and zoneout are not supported with a "
                                    "projection");
      run_backward_projected<Cell::G>(cell, a.dx, a.dstate0[0], a.dw_ih, a.dw_hh, a.dw_hr,
                                      a.db_ih, a.db_hh, dg.data(), a.dy, a.dstate_n[0], a.y,
                                      a.m_saved, a.x, a.state0[0], a.w.w_ih, a.w.w_hh,
                                      a.w.w_hr, d, k);
      return;
    }
  }
  constexpr bool kTwoPhase = Cell::kHGates < Cell::G;  // u is then the last saved array
  // A row-wise cell sums its bias gradients itself (they are not dG's column sums).
  constexpr bool kRowWise = row_wise<Cell>();
  run_backward<Cell::G, Cell::kHGates, Cell::kDirectHiddenGrad, kRowWise>(
      cell, a.dx, a.dstate0[0], a.dw_ih, a.dw_hh, kRowWise ? nullptr : a.db_ih,
      kRowWise ? nullptr : a.db_hh, dg.data(), a.dy,
      a.dstate_n[0], a.y, a.x, a.state0[0], kTwoPhase ? a.saved[Cell::kSaved - 1] : nullptr,
      a.w.w_ih, a.w.w_hh, a.reg, d, k);
}

template <class Cell, class T>
std::unique_ptr<StepWeights<T>> make_step_weights(const CellWeights<T>& w, int64_t I,
                                                  int64_t H, int64_t P,
                                                  WeightFormat format) {
  const std::vector<T> bias = folded_bias<Cell>(w, H, true);
  int64_t extra_size[kMaxExtra] = {};
  for (int i = 0; i < Cell::kExtra; ++i) extra_size[i] = extra_width<Cell>(i) * H;
  return std::make_unique<StepWeights<T>>(Cell::G, Cell::kHGates, I, H, P, w, bias.data(),
                                          extra_size, format);
}

template <class Cell, class T>
void sequence_step(const StepWeights<T>& w, const StepArrays<T>& a, int64_t B) {
  typename Cell::Forward cell(a, B, w.hidden_size(), w.kept(), activations<T>(w.table()));
  w.chooser().run(double(B), [&] {
    w.template step<(Cell::kHGates < Cell::G), row_wise<Cell>()>(cell, a.state_out[0], a.x,
                                                                 a.state[0], B);
  });
}

template <class Cell, class T>
void sequence_steps_on(const StepWeights<T>& w, const StepSequenceArrays<T>& a, int64_t steps,
                       int64_t B);

template <class Cell, class T>
void sequence_steps(const StepWeights<T>& w, const StepSequenceArrays<T>& a, int64_t steps,
                    int64_t B) {
  w.chooser().run(double(steps) * double(B), [&] { sequence_steps_on<Cell, T>(w, a, steps, B); });
}

template <class Cell, class T>
void sequence_steps_on(const StepWeights<T>& w, const StepSequenceArrays<T>& a, int64_t steps,
                       int64_t B) {
  constexpr bool kTwoPhase = Cell::kHGates < Cell::G, kRowWise = row_wise<Cell>();
  const int64_t I = w.input_size(), H = w.hidden_size(), P = w.output_size();
  const int64_t width[kMaxStates] = {P, H};
  if (steps == 0) {
    for (int i = 0; i < Cell::kStates; ++i)
      std::copy(a.state0[i], a.state0[i] + B * width[i], a.state_n[i]);
    return;
  }
  // The cell's own states (c) move between two buffers, step to step; h is read back from y,
  // or with lengths moves between two buffers too (a finished row keeps h while y is zero).
  thread_local Buffer<T> own[2], hbuf[2];
  if (Cell::kStates > 1) {
    own[0].resize(B * H);
    own[1].resize(B * H);
  }
  const int64_t* lengths = a.lengths;
  if (lengths) {
    hbuf[0].resize(B * P);
    hbuf[1].resize(B * P);
  }
  // The input products of a chunk of steps at a time (one GEMM per slice), kept per calling
  // thread so that a steady stream of calls allocates nothing.
  thread_local std::vector<Buffer<T>> px;
  thread_local std::vector<T*> px_step;
  const int64_t chunk = std::max<int64_t>(1, kChunkRows / std::max<int64_t>(B, 1));
  const Activations<T> act = activations<T>(w.table());
  const T* h = a.state0[0];
  const T* c = Cell::kStates > 1 ? a.state0[1] : nullptr;
  for (int64_t first = 0; first < steps; first += chunk) {
    const int64_t last = std::min(steps, first + chunk);        // steps first..last-1
    const int64_t t_lo = a.reverse ? steps - last : first;      // their times, ascending
    if constexpr (!kRowWise) {   // a row-wise cell's step projects its own x
      w.input_products(a.x + t_lo * B * I, (last - first) * B, px);
      px_step.resize(px.size());
    }
    for (int64_t s = first; s < last; ++s) {
      const int64_t t = a.reverse ? steps - 1 - s : s;
      if constexpr (!kRowWise)
        for (size_t k = 0; k < px.size(); ++k)
          px_step[k] = px[k].data() + (t - t_lo) * B * w.slice_width(static_cast<int>(k));
      StepArrays<T> st;
      st.x = a.x + t * B * I;
      st.state[0] = h;
      st.state_out[0] = lengths ? hbuf[s & 1].data() : a.y + t * B * P;
      if (Cell::kStates > 1) {
        st.state[1] = c;
        st.state_out[1] = s + 1 == steps ? a.state_n[1] : own[s & 1].data();
      }
      typename Cell::Forward cell(st, B, H, w.kept(), act);
      w.template step<kTwoPhase, kRowWise>(cell, st.state_out[0], st.x, h, B,
                                           kRowWise ? nullptr : px_step.data());
      if (lengths)  // rows past their end: the previous states back, y zero
        for (int64_t b = 0; b < B; ++b) {
          T* y_row = a.y + (t * B + b) * P;
          T* h_row = st.state_out[0] + b * P;
          if (t < lengths[b]) {
            std::copy(h_row, h_row + P, y_row);
            continue;
          }
          std::copy(h + b * P, h + (b + 1) * P, h_row);
          std::fill(y_row, y_row + P, T(0));
          if (Cell::kStates > 1)
            std::copy(c + b * H, c + (b + 1) * H, st.state_out[1] + b * H);
        }
      h = st.state_out[0];
      if (Cell::kStates > 1) c = st.state_out[1];
    }
  }
  std::copy(h, h + B * P, a.state_n[0]);
}

}  // namespace rnnkit
