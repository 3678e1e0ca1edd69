"""Argument checks shared by the functional kernels.

Every check raises ``TypeError`` (wrong kind or dtype) or ``ValueError`` (wrong rank, shape or
range) whose message names the argument, the shape it got and the shape it expected. Arrays
that pass are returned C-contiguous in the kernel's dtype (a copy only when needed).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _shape_str(shape: Tuple[object, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def floating_input(name: str, x: object, ndim: int, layout: str,
                   rows_only: bool = False) -> np.ndarray:
    """The tensor that fixes the dtype: a float32/float64 ndarray of rank `ndim`, made
    C-contiguous, or with ``rows_only`` only made contiguous along its last axis (the
    inference kernels read any other layout in place)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(
            f"{name} must be {ndim}-D {layout}, got shape {_shape_str(x.shape)}")
    if x.flags.c_contiguous or (rows_only and rows_contiguous(x)):
        return x
    return np.ascontiguousarray(x)


def rows_contiguous(a: np.ndarray) -> bool:
    """Whether every stride is non-negative and the last axis is contiguous (an empty array
    qualifies: nothing is read or written, and numpy's strides of empty arrays vary, as the
    bindings' check knows too)."""
    return a.size == 0 or (all(s >= 0 for s in a.strides)
                           and (a.shape[-1] <= 1 or a.strides[-1] == a.itemsize))


def array(name: str, a: object, shape: Tuple[int, ...], dtype: np.dtype,
          layout: str = "") -> np.ndarray:
    """An ndarray of exactly `shape` and `dtype` (no silent dtype conversion)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype} (the dtype of x), got {a.dtype}")
    if a.shape != tuple(shape):
        what = f" {layout}" if layout else ""
        raise ValueError(f"{name} has shape {_shape_str(a.shape)}, expected "
                         f"{_shape_str(tuple(shape))}{what}")
    return np.ascontiguousarray(a)


def optional_array(name: str, a: object, shape: Tuple[int, ...], dtype: np.dtype,
                   layout: str = "") -> Optional[np.ndarray]:
    return None if a is None else array(name, a, shape, dtype, layout)


def lengths_array(lengths: object, batch: int, steps: int) -> Optional[np.ndarray]:
    """Per-sequence lengths as int64 (B,), each in [0, T]: always a fresh copy, so a caller who
    changes their array afterwards (between a forward and its backward) changes nothing."""
    if lengths is None:
        return None
    arr = np.asarray(lengths)
    if arr.size == 0 and not isinstance(lengths, np.ndarray):
        arr = arr.astype(np.int64)  # [] for a batch of none: numpy makes it float64
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"lengths must be an integer array, got dtype {arr.dtype}")
    if arr.shape != (batch,):
        raise ValueError(f"lengths has shape {_shape_str(arr.shape)}, expected ({batch},) "
                         "(one length per sequence in the batch)")
    if batch and (arr.min() < 0 or arr.max() > steps):
        bad = int(arr[(arr < 0) | (arr > steps)][0])
        raise ValueError(f"lengths must lie in [0, T={steps}], got {bad}")
    return np.array(arr, dtype=np.int64, copy=True)


def hidden_size(w_hh: object, gates: int, dtype: np.dtype) -> int:
    """H from w_hh, which must be (gates*H, H)."""
    if not isinstance(w_hh, np.ndarray):
        raise TypeError(f"w_hh must be a numpy.ndarray, got {type(w_hh).__name__}")
    if w_hh.ndim != 2 or w_hh.shape[1] == 0 or w_hh.shape[0] != gates * w_hh.shape[1]:
        raise ValueError(f"w_hh has shape {_shape_str(w_hh.shape)}, expected "
                         f"({gates}*H, H) with H >= 1 ({gates} gate(s) stacked)")
    return int(w_hh.shape[1])
