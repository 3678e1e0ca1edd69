// Recurrent dropout and zoneout: regularisers of the recurrence itself, applied by the time
// loops around any cell's pointwise (the masks are drawn by the caller, from Python's seeded
// generator, so a run is reproducible and the kernels stay deterministic).
//
//   recurrent dropout (Gal & Ghahramani; Keras's recurrent_dropout): the recurrent product of
//     every step reads h_{t-1} ⊙ m_b, one mask row per sequence for the whole call; what the
//     cell itself reads of h_{t-1} (GRU's z ⊙ h) is unmasked.
//   zoneout (Krueger et al.; haste's zoneout): h_t = z ⊙ h_{t-1} + (1 - z) ⊙ ĥ_t, ĥ_t the cell's
//     output, with per-step weights z (0/1 in training, the probability itself in inference).
//     The LSTM's cell state is not zoned (as haste's).
//
// Backward: with s = dh_t + dy_t reaching h_t, the cell sees (1 - z) ⊙ s as its output's
// gradient and z ⊙ s goes straight to h_{t-1}; the recurrent product's gradient reaching
// h_{t-1} is masked by m, and dW_hh pairs with the masked h_{t-1}.
#pragma once
#include <algorithm>
#include <cstdint>

#include "engine/schedule.h"
#include "engine/seq_dims.h"
#include "runtime/buffer.h"

namespace rnnkit {

template <class T>
struct Regularizers {
  const T* recurrent_mask = nullptr;  // (B, H) in batch order, or nullptr
  const T* zoneout = nullptr;         // (T, B, H) weights z, or nullptr: then zoneout_p for all
  T zoneout_p = T(0);

  bool zoned() const { return zoneout || zoneout_p != T(0); }
  bool any() const { return recurrent_mask || zoned(); }

  // h_out[j] = z ⊙ h_prev[j] + (1 - z) ⊙ h_out[j], units j0..j1 of row (t, b).
  void zone(int64_t t, int64_t b, int64_t B, int64_t H, int64_t j0, int64_t j1,
            const T* h_prev, T* h_out) const {
    if (zoneout) {
      const T* z = zoneout + (t * B + b) * H;
      for (int64_t j = j0; j < j1; ++j) h_out[j] = z[j] * h_prev[j] + (T(1) - z[j]) * h_out[j];
    } else if (zoneout_p != T(0)) {
      const T p = zoneout_p;
      for (int64_t j = j0; j < j1; ++j) h_out[j] = p * h_prev[j] + (T(1) - p) * h_out[j];
    }
  }

  // Backward of zone(): s = dh + dy of units j0..j1 split into the cell's share, left in dh,
  // and the direct share of h_{t-1}, written to direct.
  void unzone(int64_t t, int64_t b, int64_t B, int64_t H, int64_t j0, int64_t j1, T* dh,
              const T* dy, T* direct) const {
    for (int64_t j = j0; j < j1; ++j) {
      const T z = zoneout ? zoneout[(t * B + b) * H + j] : zoneout_p;
      const T s = dh[j] + dy[j];
      direct[j] = z * s;
      dh[j] = (T(1) - z) * s;
    }
  }
};

// The recurrent mask in sorted row order (empty when there is none).
template <class T>
Buffer<T> sorted_mask(const Regularizers<T>& reg, const Schedule& sch, int64_t B, int64_t H) {
  Buffer<T> m;
  if (!reg.recurrent_mask) return m;
  m.resize(B * H);
  sch.to_sorted(reg.recurrent_mask, m.data(), H);
  return m;
}

// A forward loop's hidden state by sorted row (B, H), ping-pong between steps: step s reads
// prev(s) and writes next(s). With recurrent dropout it keeps beside it h ⊙ m, which the
// recurrent products read (operand(s)); finish() applies zoneout to a row's new units and
// writes their masked copy. 64-byte aligned so that no cache line is shared by two threads'
// units (runtime/buffer.h).
template <class T>
class RecurrentState {
 public:
  RecurrentState(const T* h0, const Schedule& sch, int64_t B, int64_t H,
                 const Regularizers<T>& reg)
      : B_(B), H_(H), reg_(reg), mask_(sorted_mask(reg, sch, B, H)) {
    h_.assign(2 * B * H, T(0));
    sch.to_sorted(h0, h_.data(), H);
    if (!reg.recurrent_mask) return;
    hm_.assign(2 * B * H, T(0));
    for (int64_t k = 0; k < B * H; ++k) hm_.data()[k] = h_.data()[k] * mask_.data()[k];
  }
  const T* prev(int64_t s) const { return h_.data() + (s & 1) * B_ * H_; }
  T* next(int64_t s) { return h_.data() + ((s + 1) & 1) * B_ * H_; }
  const T* operand(int64_t s) const {
    return reg_.recurrent_mask ? hm_.data() + (s & 1) * B_ * H_ : prev(s);
  }
  // Units j0..j1 of sorted row r (time t, batch b) of next(s), written by the cell, made final.
  void finish(int64_t s, int64_t r, int64_t t, int64_t b, int64_t j0, int64_t j1) {
    T* h = next(s) + r * H_;
    reg_.zone(t, b, B_, H_, j0, j1, prev(s) + r * H_, h);
    if (!reg_.recurrent_mask) return;
    T* hm = hm_.data() + ((s + 1) & 1) * B_ * H_ + r * H_;
    const T* m = mask_.data() + r * H_;
    for (int64_t j = j0; j < j1; ++j) hm[j] = h[j] * m[j];
  }

 private:
  int64_t B_, H_;
  const Regularizers<T>& reg_;
  Buffer<T> mask_, h_, hm_;
};

}  // namespace rnnkit
