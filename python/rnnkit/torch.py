"""rnnkit's kernels inside PyTorch (``pip install "rnnkit[torch]"``; ``import rnnkit.torch``
imports torch, ``import rnnkit`` does not).

- :class:`LSTM`, :class:`GRU`, :class:`RNN`: ``torch.nn.Module`` s with torch's constructor,
  parameter names, initialisation and call (``PackedSequence`` too), running rnnkit's
  forward and backward kernels through ``torch.library`` custom ops, so autograd and
  ``torch.compile`` work; :func:`use_rnnkit_kernels` swaps them into a torch model in place;
  :class:`LSTMOutput` and friends return the output alone, for ``torch.nn.Sequential``.
- :func:`from_torch` / :func:`to_torch`: a torch model of recurrent, Embedding, Linear,
  Dropout and activation layers to rnnkit.nn layers, and back.

See :mod:`rnnkit.interop.torch_modules` and :mod:`rnnkit.interop.torch_convert`.
"""
from .interop.torch_convert import from_torch, to_torch
from .interop.torch_modules import (GRU, LSTM, RNN, GRUOutput, LSTMOutput, RNNOutput,
                                    recurrent_backward, recurrent_forward, use_rnnkit_kernels)

__all__ = ["LSTM", "GRU", "RNN", "LSTMOutput", "GRUOutput", "RNNOutput", "use_rnnkit_kernels",
           "from_torch", "to_torch", "recurrent_forward", "recurrent_backward"]
