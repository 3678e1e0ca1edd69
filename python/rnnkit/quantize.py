"""rnnkit.quantize: inference models whose weight matrices run as int8 or bfloat16.

``rnnkit.quantize(model)`` returns a copy of a trained float32 model in which every recurrent
layer (LSTM with peepholes or projection too, GRU with either formula, RNN, their single-step
cells) and every Linear computes its products with int8 weights: each weight matrix quantized
per output channel, symmetrically (scale = max |w| / 127), each activation row quantized the
same way at every product, integer sums exact (AVX-512 VNNI's vpdpbusd where the CPU has it, a
portable loop elsewhere, bitwise the same), then rescaled to float32. Biases, peepholes and all
gate math stay float32. The LayerNorm cells have no int8 form: their LayerNorms rescale every
product to unit variance, and the int8 error with it. See cpp/kernels/int8_driver.inl for the
arithmetic.

``dtype="bfloat16"`` instead rounds the weight matrices to bfloat16 once and every activation
row at each product, and sums the exact products in float32 (AVX-512 BF16's vdpbf16ps where
the CPU has it; cpp/kernels/bf16_driver.inl): no scales, half the bytes of float32.

The copy's float weights are replaced by the values the kernels use (int8: q x scale;
bfloat16: the rounded weights), so what the model holds is what it computes with;
``rnnkit.save`` stores them with the mark ("int8" or "bfloat16") and ``rnnkit.load`` restores the
quantized model. Quantized layers run inference only (a training forward raises), and without
zoneout; with ``lengths`` every row is computed at every step (finished rows keep their state).

Error: on random weights (U(-1/sqrt(H), 1/sqrt(H)), torch's init) and N(0, 1) inputs the
outputs differ from float32 by about 1% of their norm in int8 and 0.3% in bfloat16
(tests/test_quantize.py checks <= 2e-2 and <= 1e-2).
"""
from __future__ import annotations

import numpy as np

from . import io
from .nn.module import Module

__all__ = ["quantize", "int8_round_trip", "bfloat16_round_trip"]


def int8_round_trip(w: np.ndarray) -> np.ndarray:
    """The values the int8 kernels compute with for a weight matrix w (rows = output channels):
    per row, q = round(w * 127 / max|w|) in [-127, 127], returned as q * max|w| / 127 (float32,
    the same float32 operations as the kernels' packing). A row of zeros stays zeros."""
    w = np.asarray(w, np.float32)
    if w.ndim != 2:
        raise ValueError(f"w must be a 2-D weight matrix (out, in), got shape {w.shape}")
    amax = np.abs(w).max(axis=1, keepdims=True) if w.size else np.zeros((w.shape[0], 1),
                                                                          np.float32)
    if not np.all(np.isfinite(amax)):
        raise ValueError("cannot quantize weights that are not finite")
    safe = np.where(amax > 0, amax, np.float32(1))
    inv = np.float32(127) / safe
    q = np.clip(np.rint(w * inv), -127, 127)
    return (q * (safe / np.float32(127))).astype(np.float32) * (amax > 0)


def bfloat16_round_trip(w: np.ndarray) -> np.ndarray:
    """w rounded to bfloat16 (to nearest, ties to even), as float32: what the bfloat16 kernels
    compute with."""
    u = np.ascontiguousarray(w, np.float32).view(np.uint32)
    if not np.all(np.isfinite(u.view(np.float32))):
        raise ValueError("cannot quantize weights that are not finite")
    rounded = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) & \
        np.uint32(0xFFFF0000)
    return rounded.view(np.float32).reshape(np.shape(w))


_ROUND_TRIPS = {"int8": int8_round_trip, "bfloat16": bfloat16_round_trip}


def quantize(model: Module, dtype: str = "int8", *, inplace: bool = False) -> Module:
    """An int8 (or ``dtype="bfloat16"``) inference copy of ``model`` (``inplace=True``:
    ``model`` itself), in eval mode.

    Every layer with a quantized form is converted (see the module docstring); the others
    (Embedding, Dropout, attention, ...) are kept as they are. Raises ValueError if there is
    none, TypeError for a float64 layer. A copy is made through rnnkit's own save format, so a
    model of your own Module class needs ``rnnkit.io.register_module`` (or ``inplace=True``).
    """
    if dtype not in _ROUND_TRIPS:
        raise ValueError(f"dtype must be 'int8' or 'bfloat16', got {dtype!r}")
    if not isinstance(model, Module):
        raise TypeError(f"model must be an rnnkit Module, got {type(model).__name__}")
    targets = [m for m in model.modules() if m._quantizable and not m.quantized]
    if not targets:
        raise ValueError(f"{type(model).__name__} has no layer with an {dtype} form (recurrent "
                         "layers, cells and Linear have one), or is quantized already")
    for m in targets:   # checked before anything is copied or changed
        m._check_quantizable(dtype)
    if not inplace:
        model = _copy(model)
    round_trip = _ROUND_TRIPS[dtype]
    for m in model.modules():
        if m._quantizable and not m.quantized:
            for name in m._quantizable:
                p = m._parameters[name]
                p.data = round_trip(p.data)
            m._set_quantized(dtype)
    return model.eval()


def _copy(model: Module) -> Module:
    try:
        return io.copy_model(model)
    except TypeError as exc:
        raise TypeError(f"cannot copy {type(model).__name__} to quantize it ({exc}); register "
                        "its class with rnnkit.io.register_module or pass inplace=True") from None
