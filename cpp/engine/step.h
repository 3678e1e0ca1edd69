// One time step of a cell for a whole batch, with weights packed once and reused across calls:
// the fast path for streaming inference and generation (LSTMCell & co. in eval mode).
//
// Shape legend as in the cell headers: B batch, I input, H hidden, G gates.
// The weights are split among threads by hidden units exactly like the sequence kernels, so the
// same pointwise math runs on the same slices; each thread's two packed panels (its rows of
// W_ih and W_hh) stay in its own core's cache between calls. Packing is specific to one kernel
// table, so the object keeps the table it packed for and steps with it, whatever kernels() says
// later.
#pragma once
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "cells/cell.h"
#include "engine/unit_split.h"
#include "kernels/kernels.h"
#include "runtime/buffer.h"
#include "runtime/parallel.h"
#include "runtime/thread_chooser.h"
#include "runtime/threads.h"

namespace rnnkit {

// Typical per-core L2 of current x86 server cores (Zen 4/5: 1 MiB, Sapphire Rapids: 2 MiB).
constexpr double kL2BytesPerCore = 1 << 20;

template <class T>
class StepWeights {
 public:
  // w (torch layout, see CellWeights); bias_x (G*H) or nullptr: the bias added to x·W_ihᵀ (the
  // cell decides what folds into it). b_hh and the extra parameters are kept too, for the
  // cells that apply them themselves (GRU's b_hn, peepholes). Arrays are copied: the caller
  // may free or change them afterwards.
  // h_gates: the cell's kHGates (G unless it runs in two phases, cells/cell.h); extra_size:
  // the lengths of w.extra[i] (the cell's own parameters), kMaxExtra entries. P: the width of
  // h, the projection's size where w.w_hr (P, H) is set (then w_hh is (G*H, P)), else H.
  // format: int8 or bf16 store every weight matrix that way and run every product on the
  // table's int8 (kernels/int8_driver.inl) or bfloat16 (kernels/bf16_driver.inl) kernels, for
  // float32 only: a quantized inference model's steps, with the gate math unchanged in float.
  StepWeights(int G, int h_gates, int64_t I, int64_t H, int64_t P, const CellWeights<T>& w,
              const T* bias_x, const int64_t* extra_size,
              WeightFormat format = WeightFormat::native)
      : G_(G), HG_(h_gates), I_(I), H_(H), P_(P), projected_(w.w_hr != nullptr),
        format_(format), table_(&kernels()) {
    if (format != WeightFormat::native && !std::is_same_v<T, float>)
      throw std::invalid_argument("int8 and bfloat16 weights are for float32 layers");
    // A step reads every weight once and does little arithmetic with it, so it is bound by
    // where the weights live: split them over the cores as soon as they outgrow one core's L2
    // (each core then keeps its half in its own cache between calls), else by arithmetic.
    const double weight_bytes = (double(G) * H * (I + P) + double(P) * H * projected_) *
                                bytes_per_weight(format);
    const int64_t parts = (H + kUnitAlign - 1) / kUnitAlign;
    const int nt = weight_bytes > kL2BytesPerCore / 2
                       ? std::min<int64_t>(get_num_threads(), parts)
                       : threads_for(2.0 * G * H * (I + H), parts);
    const PackedGemm<T> pg = products();
    slices_.resize(nt);
    for (int k = 0; k < nt; ++k) {
      Slice& s = slices_[k];
      split_range(H, nt, k, kUnitAlign, &s.j0, &s.j1);
      if (projected_) {  // this slice's outputs of the projection: rows p0..p1 of W_hr
        split_range(P, nt, k, kUnitAlign, &s.p0, &s.p1);
        if (s.p1 > s.p0) pack_unit_rows(pg, 1, P, H, s.p0, s.p1, w.w_hr, s.packed_hr);
      }
      if (s.j1 - s.j0 <= 0) continue;
      pack_unit_rows(pg, G, H, I, s.j0, s.j1, w.w_ih, s.packed_ih);
      pack_unit_rows(pg, HG_, H, P, s.j0, s.j1, w.w_hh, s.packed_hh);  // K = P (= H unprojected)
      if (HG_ < G)
        pack_unit_rows(pg, G - HG_, H, H, s.j0, s.j1, w.w_hh + HG_ * H * H, s.packed_uh);
      unit_bias(G, H, s.j0, s.j1, bias_x, s.bias);
    }
    if (w.b_ih) b_ih_.assign(w.b_ih, w.b_ih + G * H);
    if (w.b_hh) b_hh_.assign(w.b_hh, w.b_hh + G * H);
    kept_.b_ih = b_ih_.empty() ? nullptr : b_ih_.data();  // read by row-wise cells only
    kept_.b_hh = b_hh_.empty() ? nullptr : b_hh_.data();
    if (w.opts) {
      opts_ = *w.opts;
      kept_.opts = &opts_;
    }
    for (int i = 0; i < kMaxExtra; ++i)
      if (w.extra[i] && extra_size[i] > 0) {
        extra_[i].assign(w.extra[i], w.extra[i] + extra_size[i]);
        kept_.extra[i] = extra_[i].data();
      }
  }

  int gates() const { return G_; }
  int64_t input_size() const { return I_; }
  int64_t hidden_size() const { return H_; }
  int64_t output_size() const { return P_; }  // the width of h
  WeightFormat format() const { return format_; }
  // What a step's Forward reads besides the packed weights: the biases, the extra parameters
  // and the gate options (copies of the caller's; w_ih and w_hh are not set).
  const CellWeights<T>& kept() const { return kept_; }
  const KernelTable& table() const { return *table_; }
  // Whether a call runs on all the allowed threads or on one (runtime/thread_chooser.h): the
  // callers (engine/sequence_impl.h) run each step or sequence through it.
  ThreadChooser& chooser() const { return chooser_; }

  // h_out (B,P) = cell(x (B,I), h (B,P)); cell state, if any, is the Forward's business
  // (P = H unless projected: then the cell writes m (B,H), and h_out = m · W_hrᵀ).
  // kTwoPhase: the cell's kHGates < G (it must match the constructor's h_gates); kRowWise: the
  // cell is row-wise (cells/cell.h), see row_wise_step.
  // No allocation once a batch size has been seen on this thread; a failed allocation throws
  // std::bad_alloc and leaves the object usable.
  // px_pre: for each slice, this step's input products (B, G*nj) as input_products() wrote
  // them, or nullptr to compute them here from x (which is then not read). Not for row-wise
  // cells.
  template <bool kTwoPhase, bool kRowWise, class Fwd>
  void step(Fwd& cell, T* h_out, const T* x, const T* h, int64_t B,
            T* const* px_pre = nullptr) const {
    if constexpr (kRowWise) {
      row_wise_step(cell, h_out, x, h, B);
      return;
    }
    const PackedGemm<T> pg = products();
    // Two phases keep each slice's input products from the first phase to the second, and
    // the operand u of all units: per calling thread, as calls may come from several threads.
    // (The workers must see the caller's buffers, not thread_locals of their own: hence the
    // plain pointers below.)
    thread_local Buffer<T> px_buffer, u_buffer;
    if (kTwoPhase) {
      px_buffer.resize(B * G_ * H_);
      u_buffer.resize(B * H_);
    }
    T* const px_all = px_buffer.data();
    T* const u = u_buffer.data();
    thread_local Buffer<T> m_buffer;  // projected: the cell's output m (B, H), all units
    if (projected_) m_buffer.resize(B * H_);
    T* const m = m_buffer.data();
    auto input_products = [&](const Slice& s, T* px) { slice_input_products(pg, s, x, B, px); };
    auto pre = [&](const Slice& s) { return px_pre[&s - slices_.data()]; };
    // Phase 1 of two: the gates < kHGates and u. Slice k's products start at B*G*j0.
    auto first_phase = [&](const Slice& s) {
      if constexpr (kTwoPhase) {  // (one-phase cells have no forward_first)
        const int64_t nj = s.j1 - s.j0, width = G_ * nj, width_h = HG_ * nj;
        if (nj <= 0) return;
        thread_local Buffer<T> ph;
        ph.resize(B * width_h);
        T* px = px_pre ? pre(s) : px_all + B * G_ * s.j0;
        if (!px_pre) input_products(s, px);
        pg.gemm(B, width_h, H_, h, H_, s.packed_hh.data(), T(0), ph.data(), width_h);
        for (int64_t r = 0; r < B; ++r)
          cell.forward_first(RowRef{r, 0, r, true, 0}, s.j0, s.j1, px + r * width, nj,
                             ph.data() + r * width_h, h + r * H_, u + r * H_);
      }
    };
    // One phase: everything; of two, the gates >= kHGates from u.
    auto last_phase = [&](const Slice& s) {
      const int64_t nj = s.j1 - s.j0, width = G_ * nj;
      const int64_t width_p = (kTwoPhase ? G_ - HG_ : G_) * nj;  // this product's width
      if (nj <= 0) return;
      thread_local Buffer<T> px_one, ph;  // this worker's products for its slice
      ph.resize(B * width_p);
      T* px;
      if (kTwoPhase) {
        px = px_pre ? pre(s) : px_all + B * G_ * s.j0;
        pg.gemm(B, width_p, H_, u, H_, s.packed_uh.data(), T(0), ph.data(), width_p);
      } else {
        if (px_pre) {
          px = pre(s);
        } else {
          px_one.resize(B * width);
          px = px_one.data();
          input_products(s, px);
        }
        pg.gemm(B, width_p, P_, h, P_, s.packed_hh.data(), T(0), ph.data(), width_p);
      }
      for (int64_t r = 0; r < B; ++r)
        cell.forward(RowRef{r, 0, r, true, 0}, s.j0, s.j1, px + r * width, nj,
                     ph.data() + r * width_p, h + r * P_,
                     projected_ ? m + r * H_ : h_out + r * H_);
    };
    // Projected: h_out[:, p0:p1] = m · W_hr[p0:p1]ᵀ, once m is complete.
    auto projection = [&](const Slice& s) {
      if (s.p1 > s.p0)
        pg.gemm(B, s.p1 - s.p0, H_, m, H_, s.packed_hr.data(), T(0), h_out + s.p0, P_);
    };
    if (kTwoPhase) over_slices(first_phase);  // returns once u is complete
    over_slices(last_phase);
    if (projected_) over_slices(projection);
  }

  // The input products x·W_ihᵀ + bias of `rows` rows of x (rows, I), for every slice into
  // out[k] (rows, G*nj), resized here: what step() computes for its B rows, done for many
  // steps in one GEMM per slice (a sequence then reads W_ih once, not once per step). Not for
  // row-wise cells (they add their biases themselves).
  void input_products(const T* x, int64_t rows, std::vector<Buffer<T>>& out) const {
    const PackedGemm<T> pg = products();
    out.resize(slices_.size());
    for (size_t k = 0; k < slices_.size(); ++k) out[k].resize(rows * width_of(slices_[k]));
    over_slices([&](const Slice& s) {
      if (width_of(s) > 0) slice_input_products(pg, s, x, rows, out[&s - slices_.data()].data());
    });
  }
  // Slice k's width in input_products' output: G times its number of units.
  int64_t slice_width(int k) const { return width_of(slices_[k]); }

  // A row-wise cell's step: every slice's raw products x·W_ihᵀ and h·W_hhᵀ are gathered into
  // whole rows (gate g at g*H), then threads run the cell on whole rows (as engine/row_wise.h).
  template <class Fwd>
  void row_wise_step(Fwd& cell, T* h_out, const T* x, const T* h, int64_t B) const {
    const PackedGemm<T> pg = products();
    const int64_t GH = G_ * H_;
    thread_local Buffer<T> px_buffer, ph_buffer;  // per calling thread, as in step()
    px_buffer.resize(B * GH);
    ph_buffer.resize(B * GH);
    T* const px_all = px_buffer.data();
    T* const ph_all = ph_buffer.data();
    auto products = [&](const Slice& s) {
      const int64_t nj = s.j1 - s.j0, width = G_ * nj;
      if (nj <= 0) return;
      thread_local Buffer<T> px, ph;
      px.resize(B * width);
      ph.resize(B * width);
      pg.gemm(B, width, I_, x, I_, s.packed_ih.data(), T(0), px.data(), width);
      pg.gemm(B, width, H_, h, H_, s.packed_hh.data(), T(0), ph.data(), width);
      for (int64_t r = 0; r < B; ++r)
        for (int g = 0; g < G_; ++g) {
          const int64_t from = r * width + g * nj, to = r * GH + g * H_ + s.j0;
          std::copy(px.data() + from, px.data() + from + nj, px_all + to);
          std::copy(ph.data() + from, ph.data() + from + nj, ph_all + to);
        }
    };
    over_slices(products);
    const int nt = static_cast<int>(std::min<int64_t>(get_num_threads(), B));
    run_parallel(nt, [&](int part, int parts) {
      int64_t r0, r1;
      split_range(B, parts, part, 1, &r0, &r1);
      for (int64_t r = r0; r < r1; ++r)
        cell.forward(RowRef{r, 0, r, true, 0}, 0, H_, px_all + r * GH, H_, ph_all + r * GH,
                     h + r * H_, h_out + r * H_);
    });
  }

 private:
  struct Slice {
    int64_t j0 = 0, j1 = 0, p0 = 0, p1 = 0;  // units; outputs of the projection
    Buffer<T> packed_ih, packed_hh, packed_uh, packed_hr, bias;  // uh: two phases; hr: projected
  };

  int64_t width_of(const Slice& s) const { return G_ * (s.j1 - s.j0); }

  static double bytes_per_weight(WeightFormat f) {
    return f == WeightFormat::int8 ? 1 : f == WeightFormat::bf16 ? 2 : sizeof(T);
  }

  // The packed products every weight runs through: the layer's float type, int8 or bfloat16.
  PackedGemm<T> products() const {
    if constexpr (std::is_same_v<T, float>) {
      if (format_ == WeightFormat::int8) return q8_gemm_fns(*table_);
      if (format_ == WeightFormat::bf16) return bf16_gemm_fns(*table_);
    }
    return packed_gemm_fns<T>(*table_);
  }

  // px (rows, G*nj) = bias + x (rows, I) · this slice's rows of W_ihᵀ.
  void slice_input_products(const PackedGemm<T>& pg, const Slice& s, const T* x, int64_t rows,
                            T* px) const {
    const int64_t width = width_of(s);
    for (int64_t r = 0; r < rows; ++r)
      std::copy(s.bias.data(), s.bias.data() + width, px + r * width);
    pg.gemm(rows, width, I_, x, I_, s.packed_ih.data(), T(1), px, width);
  }

  // body(slice) for every slice, in parallel. The slices were fixed at packing time; if the
  // thread cap dropped since, threads take several slices each. Every slice is computed the
  // same way whoever runs it.
  template <class Body>
  void over_slices(Body&& body) const {
    const int n_slices = static_cast<int>(slices_.size());
    run_parallel(std::min(n_slices, get_num_threads()), [&](int part, int parts) {
      for (int k = part; k < n_slices; k += parts) body(slices_[k]);
    });
  }
  int G_, HG_;
  int64_t I_, H_, P_;
  bool projected_;
  WeightFormat format_;
  const KernelTable* table_;
  std::vector<Slice> slices_;
  std::vector<T> b_ih_, b_hh_, extra_[kMaxExtra];
  GateOptions opts_;
  CellWeights<T> kept_;
  mutable ThreadChooser chooser_;
};

}  // namespace rnnkit
