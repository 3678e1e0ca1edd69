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
};

}  // namespace rnnkit
