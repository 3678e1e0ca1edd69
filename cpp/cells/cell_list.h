// THE list of cells. Everything per cell is generated from it: the explicit instantiations of
// the engine (cells/instantiate.cpp), the Python bindings and their spec table
// (bindings/bind_cells.cpp), and through that spec the Python layers and the tests.
// A new cell: its header in cells/, one #include and one X(...) line here.
//
//   X(name, CellTemplate): name is the identifier used everywhere (== CellTemplate<T>::kName).
#pragma once
#include "cells/gru.h"
#include "cells/gru_reset_before.h"
#include "cells/layernorm_gru.h"
#include "cells/layernorm_lstm.h"
#include "cells/lstm.h"
#include "cells/rnn.h"

#define RNNKIT_FOR_EACH_CELL(X) \
  X(lstm, LstmCell)             \
  X(lstm_peephole, LstmPeepholeCell) \
  X(gru, GruCell)               \
  X(gru_reset_before, GruResetBeforeCell) \
  X(rnn_tanh, RnnTanhCell)      \
  X(rnn_relu, RnnReluCell)      \
  X(layernorm_lstm, LayerNormLstmCell) \
  X(layernorm_gru, LayerNormGruCell)
