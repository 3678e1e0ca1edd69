"""Layers, modelled on ``torch.nn``: recurrent layers and cells, Embedding, Linear, Dropout,
Last, Sequential and the activations Tanh, ReLU, Sigmoid, GELU, Softmax and LogSoftmax.
Each layer has ``forward`` (also ``__call__``) and an explicit ``backward`` that adds into
``Parameter.grad`` and returns the input gradient;
``parameters()``, ``named_parameters()``, ``state_dict()`` and ``load_state_dict()`` use
torch's names, so torch state dicts load unchanged.
"""
from .activations import GELU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .cells import GRUCell, LSTMCell, RNNCell
from .dropout import Dropout
from .embedding import Embedding
from .last import Last
from .linear import Linear
from .module import Module
from .parameter import Parameter
from .recurrent import GRU, LSTM, RNN
from .sequential import Sequential

__all__ = ["Module", "Parameter", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell",
           "Embedding", "Linear", "Dropout", "Last", "Sequential", "Tanh", "ReLU", "Sigmoid",
           "GELU", "Softmax", "LogSoftmax"]
