// The sizes and options of one sequence call, shared by the engine and every cell.
#pragma once
#include <cstdint>

namespace rnnkit {

// Shapes use the legend of the cell headers: T steps, B batch, I input features, H hidden units,
// G gates (RNN 1, GRU 3, LSTM 4).
struct SeqDims {
  int64_t T = 0, B = 0, I = 0, H = 0;
  int64_t P = 0;  // the width of h and y: H, or a projection's size (engine/projection.h)
  const int64_t* lengths = nullptr;  // (B) each in [0, T], or nullptr for all T; caller-checked
  bool reverse = false;              // process each sequence from its last valid step to 0
  // Where the row of step t, batch b starts in x and in y, in elements: t*x_t + b*x_b. Every
  // row itself is contiguous. 0 means "as in a C-contiguous (T, B, ·) array"; inference also
  // takes other layouts, so batch-first input and output (x_t = I, x_b = T*I) and a
  // direction's half of a bidirectional output (y_b = 2*H) need no copies. Training uses the
  // contiguous layout only: the weight-gradient products read x and y as (T*B)-row matrices.
  int64_t x_t = 0, x_b = 0, y_t = 0, y_b = 0;

  // A copy with every 0 stride replaced by its contiguous value: the engine resolves them once
  // at its entry, so the per-row offsets below are two multiply-adds.
  SeqDims resolved() const {
    SeqDims d = *this;
    if (!d.x_t) d.x_t = B * I;
    if (!d.x_b) d.x_b = I;
    if (!d.P) d.P = H;
    if (!d.y_t) d.y_t = B * d.P;
    if (!d.y_b) d.y_b = d.P;
    return d;
  }
  // Offsets of row (t, b) in x and y; on a resolved() SeqDims.
  int64_t x_row(int64_t t, int64_t b) const { return t * x_t + b * x_b; }
  int64_t y_row(int64_t t, int64_t b) const { return t * y_t + b * y_b; }
  bool x_time_major_contiguous() const { return x_t == B * I && x_b == I; }
};

}  // namespace rnnkit
