"""Interoperation with other formats and frameworks: ONNX export and import
(:mod:`.onnx_export`, :mod:`.onnx_import`, sharing :mod:`.onnx_layout`), rnnkit's kernels as
PyTorch modules, and torch weights read without torch or pickle. Each needs an optional extra
and imports it only when used; ``import rnnkit`` imports none of them."""
