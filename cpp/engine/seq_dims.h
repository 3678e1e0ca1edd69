// The sizes and options of one sequence call, shared by the engine and every cell.
#pragma once
#include <cstdint>

namespace rnnkit {

// Shapes use the legend of the cell headers: T steps, B batch, I input features, H hidden units,
// G gates (RNN 1, GRU 3, LSTM 4).
struct SeqDims {
  int64_t T = 0, B = 0, I = 0, H = 0;
  const int64_t* lengths = nullptr;  // (B) each in [0, T], or nullptr for all T; caller-checked
  bool reverse = false;              // process each sequence from its last valid step to 0
  // Where the row of step t, batch b starts in x and in y, in elements: t*x_t + b*x_b. Every
  // row itself is contiguous. The defaults (0) mean a C-contiguous (T, B, ·) array; inference
  // also takes other layouts, so batch-first input and output (x_t = I, x_b = T*I) and a
  // direction's half of a bidirectional output (y_b = 2*H) need no copies. Training uses the
  // defaults only: the weight-gradient products read x and y as (T*B)-row matrices.
  int64_t x_t = 0, x_b = 0, y_t = 0, y_b = 0;

  int64_t x_row(int64_t t, int64_t b) const { return t * (x_t ? x_t : B * I) + b * (x_b ? x_b : I); }
  int64_t y_row(int64_t t, int64_t b) const { return t * (y_t ? y_t : B * H) + b * (y_b ? y_b : H); }
  bool x_time_major_contiguous() const {
    return (x_t == 0 || x_t == B * I) && (x_b == 0 || x_b == I);
  }
};

}  // namespace rnnkit
