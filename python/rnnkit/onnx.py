"""ONNX in and out (``pip install "rnnkit[onnx]"``; the onnx package is imported only when one
of these is called).

- :func:`export` writes an rnnkit model (a Sequential of Embedding, RNN/LSTM/GRU and their
  variants, Linear, Dropout, Last and activations, or one layer) as an ONNX file that ONNX
  Runtime and OpenVINO run with rnnkit's numbers (:mod:`rnnkit.interop.onnx_export`).
- :func:`load` runs an ONNX graph whose recurrent parts are LSTM/GRU/RNN ops (torch's,
  tf2onnx's or rnnkit's exports) on rnnkit's kernels, and ``.to_sequential()`` turns a
  simple chain back into rnnkit layers (:mod:`rnnkit.interop.onnx_import`).
"""
from .interop.onnx_export import export
from .interop.onnx_import import OnnxModel, OnnxUnsupportedError, load

__all__ = ["export", "load", "OnnxModel", "OnnxUnsupportedError"]
