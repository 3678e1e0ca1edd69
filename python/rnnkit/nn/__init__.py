"""Layers, modelled on ``torch.nn``: recurrent layers and cells (and the LayerNorm LSTM and
GRU, which torch lacks), Embedding, Linear, Dropout, Attention (Luong's dot and general,
Bahdanau's additive), Seq2Seq (an attention encoder-decoder), Last, Sequential and the activations Tanh, ReLU, Sigmoid, GELU, Softmax
and LogSoftmax.
Each layer has ``forward`` (also ``__call__``) and an explicit ``backward`` that adds into
``Parameter.grad`` and returns the input gradient;
``parameters()``, ``named_parameters()``, ``state_dict()`` and ``load_state_dict()`` use
torch's names, so torch state dicts load unchanged.
"""
from .activations import GELU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .attention import Attention
from .cells import GRUCell, LayerNormGRUCell, LayerNormLSTMCell, LSTMCell, RNNCell
from .dropout import Dropout
from .embedding import Embedding
from .last import Last
from .linear import Linear
from .module import Module
from .parameter import Parameter
from .recurrent import GRU, LSTM, RNN, LayerNormGRU, LayerNormLSTM
from .seq2seq import Seq2Seq
from .sequential import Sequential

__all__ = ["Module", "Parameter", "RNN", "LSTM", "GRU", "LayerNormLSTM", "LayerNormGRU",
           "RNNCell", "LSTMCell", "GRUCell", "LayerNormLSTMCell", "LayerNormGRUCell",
           "Embedding", "Linear", "Dropout", "Attention", "Seq2Seq", "Last", "Sequential",
           "Tanh", "ReLU",
           "Sigmoid", "GELU", "Softmax", "LogSoftmax"]
