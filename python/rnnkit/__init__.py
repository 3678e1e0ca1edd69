"""rnnkit: fast CPU recurrent networks (RNN, LSTM, GRU) with a numpy API.

The hot paths (forward over a sequence, backpropagation through time) are C++ kernels with
SIMD and OpenMP; this package validates arguments and holds models, losses and training loops.
"""
from . import ops
from ._runtime import __version__, build_info, get_num_threads, set_num_threads

__all__ = ["ops", "build_info", "get_num_threads", "set_num_threads", "__version__"]
