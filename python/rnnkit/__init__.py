"""rnnkit: fast CPU recurrent networks (RNN, LSTM, GRU) with a numpy API.

The hot paths (forward over a sequence, backpropagation through time) are C++ kernels with
SIMD and OpenMP; this package validates arguments and holds models, losses, optimisers and
training loops. Layers, weight names and gate order follow torch.nn.
"""
from . import distributed, losses, nn, onnx, ops, optim, train
from ._runtime import __version__, build_info, get_num_threads, set_num_threads
from .generate import sample
from .interop.state_dict_files import load_state_dict_file, save_state_dict_file
from .io import load, load_metadata, save
from .quantize import quantize
from .nn import (GRU, LSTM, RNN, Attention, Dropout, Embedding, GRUCell, Last, Linear,
                 LSTMCell, Module, Parameter, RNNCell, Sequential)

__all__ = ["ops", "nn", "losses", "optim", "train", "distributed", "onnx", "save", "load",
           "load_metadata", "load_state_dict_file", "save_state_dict_file", "sample", "quantize",
           "build_info", "get_num_threads", "set_num_threads", "__version__", "Module",
           "Parameter", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "Embedding",
           "Linear", "Dropout", "Attention", "Last", "Sequential"]
