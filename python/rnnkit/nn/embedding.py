"""Embedding: a lookup table of vectors indexed by integer tokens."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._calls import CallState
from .module import Module, _dtype, _no_cache_error, _positive_int
from .parameter import Parameter


class Embedding(Module):
    """``y[..., :] = weight[idx[...], :]``, as ``torch.nn.Embedding``.

    Args:
        num_embeddings: N, the vocabulary size; indices must lie in [0, N).
        embedding_dim: E, the size of each vector.
        padding_idx: optional row (negative counts from the end, as torch) that starts at
            zero and never receives a gradient (for padding tokens).
        dtype: "float32" (default) or "float64".
        seed: seeds the initialisation N(0, 1) (torch's).

    Shapes: idx any integer shape S -> y S + (E,). ``backward(dy)`` adds the gradient of
    each looked-up row into ``weight.grad`` (repeated indices accumulate) and returns None:
    integer inputs have no gradient.
    """

    _takes_lengths = False
    _config_args = ("num_embeddings", "embedding_dim", "padding_idx", "dtype")

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 padding_idx: Optional[int] = None, *, dtype: Any = "float32",
                 seed: Optional[int] = None) -> None:
        super().__init__()
        self.num_embeddings = _positive_int("num_embeddings", num_embeddings)
        self.embedding_dim = _positive_int("embedding_dim", embedding_dim)
        if padding_idx is not None:
            if not isinstance(padding_idx, (int, np.integer)) or isinstance(padding_idx, bool):
                raise TypeError(f"padding_idx must be an int or None, got "
                                f"{type(padding_idx).__name__}")
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"padding_idx must be within num_embeddings="
                                 f"{self.num_embeddings}, got {padding_idx}")
            padding_idx = int(padding_idx) % self.num_embeddings
        self.padding_idx = padding_idx
        self.dtype = _dtype(dtype)
        w = np.random.default_rng(seed).standard_normal((self.num_embeddings,
                                                         self.embedding_dim))
        if padding_idx is not None:
            w[padding_idx] = 0.0
        self.weight = Parameter(w, self.dtype)
        self._calls = CallState()

    def _on_mode_change(self) -> None:
        self._calls.clear()

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        return s + f", dtype={self.dtype.name}"

    def forward(self, idx: Any) -> np.ndarray:
        arr = idx if isinstance(idx, np.ndarray) else np.asarray(idx)
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"Embedding input must be an integer array, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.num_embeddings):
            bad = arr[(arr < 0) | (arr >= self.num_embeddings)].flat[0]
            raise ValueError(f"Embedding index {int(bad)} is out of range [0, "
                             f"{self.num_embeddings})")
        self._calls.put(arr.copy() if self.training else None)
        return self.weight.data[arr]

    def backward(self, dy: Any) -> None:
        with self._calls.lock:
            idx = self._calls.take()
            if idx is None:
                raise _no_cache_error(self)
            shape = idx.shape + (self.embedding_dim,)
            dy_arr = np.asarray(dy)
            if dy_arr.shape != shape:
                self._calls.put(idx)    # a rejected argument consumes nothing
                raise ValueError(f"dy has shape {dy_arr.shape}, expected {shape} (the shape "
                                 "of y)")
            self._accumulate(idx, dy_arr)
        return None

    def _accumulate(self, idx: np.ndarray, dy_arr: np.ndarray) -> None:
        if not self.weight.requires_grad:
            return      # frozen: nothing else depends on this gradient, so skip the scatter
        flat_idx = idx.reshape(-1)
        flat_dy = np.asarray(dy_arr, self.dtype).reshape(-1, self.embedding_dim)
        if self.padding_idx is not None:
            keep = flat_idx != self.padding_idx
            flat_idx, flat_dy = flat_idx[keep], flat_dy[keep]
        np.add.at(self.weight.writable_grad(), flat_idx, flat_dy)
