// ONNX's options of the LSTM, GRU and RNN ops that change the pointwise math: the activation of
// each slot (with its alpha and beta), the cell clip, and the LSTM's coupled input and forget
// gates. A cell given none (CellWeights::opts == nullptr) runs its usual code; with options it
// runs a general path that applies them.
//
// Slots, as ONNX numbers them: LSTM f (gates i, f, o), g (the cell candidate), h (applied to
// c before o); GRU f (r, z), g (n); RNN f. `clip` bounds every activation's input to
// [-clip, clip] (0: no clip; as ONNX Runtime, the gates' inputs: not the LSTM's cell state before
// its h activation). The backward takes each derivative from the activation's output
// (so nothing more is saved): every activation here is monotone, and an output equal to
// f(±clip) marks a clipped input, whose derivative is 0. An unclipped input whose output rounds
// to that same value (sigmoid, tanh near saturation) also gets 0 where its true derivative is
// tiny (float32, clip 10: inputs within ~1e-3 of the clip, derivative ~5e-5).
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/kernels.h"

namespace rnnkit {

enum class Act : int32_t { sigmoid = 0, tanh = 1, relu = 2, hard_sigmoid = 3 };
constexpr int kActSlots = 3;

struct ActSpec {
  Act kind = Act::sigmoid;
  double alpha = 0.0, beta = 0.0;  // HardSigmoid: max(0, min(1, alpha * x + beta))
};

struct GateOptions {
  ActSpec act[kActSlots];
  double clip = 0.0;          // > 0: activation inputs bounded to [-clip, clip]
  bool input_forget = false;  // LSTM: f = 1 - i
};

// One slot's activation with its clip, in place over n values, and its derivative.
template <class T>
struct SlotActivation {
  ActSpec spec;
  T clip = T(0);            // 0: none
  T y_lo = T(0), y_hi = T(0);  // f(-clip), f(clip): outputs that mark a clipped input
  Activations<T> fns{};

  SlotActivation() = default;
  SlotActivation(const GateOptions& o, int slot, Activations<T> f)
      : spec(o.act[slot]), clip(T(o.clip)), fns(f) {
    y_lo = value(-clip);
    y_hi = value(clip);
  }

  T value(T a) const {  // for one value (the clip marks)
    T y = a;
    apply(&y, 1, false);
    return y;
  }

  void apply(T* x, int64_t n, bool clipped = true) const {
    if (clipped && clip > T(0))
      for (int64_t j = 0; j < n; ++j) x[j] = std::min(std::max(x[j], -clip), clip);
    switch (spec.kind) {
      case Act::sigmoid: fns.sigmoid(x, x, n); break;
      case Act::tanh: fns.tanh(x, x, n); break;
      case Act::relu:
        for (int64_t j = 0; j < n; ++j) x[j] = std::max(x[j], T(0));
        break;
      case Act::hard_sigmoid: {
        const T a = T(spec.alpha), b = T(spec.beta);
        for (int64_t j = 0; j < n; ++j) x[j] = std::min(std::max(a * x[j] + b, T(0)), T(1));
        break;
      }
    }
  }

  // d f / d (the unclipped input), from the output y (clipped: whether apply clipped it).
  T derivative(T y, bool clipped = true) const {
    if (clipped && clip > T(0) && (y == y_lo || y == y_hi)) return T(0);
    switch (spec.kind) {
      case Act::sigmoid: return y * (T(1) - y);
      case Act::tanh: return T(1) - y * y;
      case Act::relu: return y > T(0) ? T(1) : T(0);
      case Act::hard_sigmoid: return y > T(0) && y < T(1) ? T(spec.alpha) : T(0);
    }
    return T(0);
  }
};

// A cell's slot activations, built once per call (nothing when `o` is nullptr).
template <class T>
void make_slots(const GateOptions* o, Activations<T> fns, SlotActivation<T>* slots,
                int n = kActSlots) {
  if (o)
    for (int s = 0; s < n; ++s) slots[s] = SlotActivation<T>(*o, s, fns);
}

}  // namespace rnnkit
