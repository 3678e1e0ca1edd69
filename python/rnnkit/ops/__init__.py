"""Functional kernels (time-major, numpy in, numpy out). See :mod:`rnnkit.ops.cells`."""
from .cells import (GRUGrads, LayerNormGRUGrads, LayerNormLSTMGrads, LSTMGrads,
                    LSTMPeepholeGrads, LSTMProjectedGrads, RNNGrads, SequenceCache,
                    gru_backward, gru_forward, layernorm_gru_backward, layernorm_gru_forward,
                    layernorm_lstm_backward, layernorm_lstm_forward, lstm_backward,
                    lstm_forward, rnn_backward, rnn_forward, sequence_backward,
                    sequence_forward)
from .gates import GateOptions

__all__ = ["lstm_forward", "lstm_backward", "gru_forward", "gru_backward", "rnn_forward",
           "rnn_backward", "layernorm_lstm_forward", "layernorm_lstm_backward",
           "layernorm_gru_forward", "layernorm_gru_backward", "sequence_forward",
           "sequence_backward", "LSTMGrads", "LSTMPeepholeGrads", "LSTMProjectedGrads",
           "GRUGrads", "RNNGrads", "LayerNormLSTMGrads", "LayerNormGRUGrads", "SequenceCache",
           "GateOptions"]
