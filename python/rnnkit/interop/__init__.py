"""Interoperation with other formats and frameworks, each behind an optional extra that is
imported only when used (``import rnnkit`` imports none of them):

- ONNX: :mod:`.onnx_export` and :mod:`.onnx_import` (with its ops in :mod:`.onnx_numpy_ops`),
  sharing the gate-order maps of :mod:`.onnx_layout`; public as :mod:`rnnkit.onnx`.
- PyTorch: :mod:`.torch_modules` (torch modules on rnnkit's kernels) and :mod:`.torch_convert`
  (models both ways); public as :mod:`rnnkit.torch`.
- :mod:`.state_dict_files`: torch's weights from safetensors files, without torch or pickle.
"""
