"""One-to-many generation: sample tokens from an Embedding -> recurrent -> Linear model.

Generation is sequential by nature (step t+1 reads the token sampled at step t), so this is
the one place in rnnkit that loops over time steps in Python: one recurrent call per
generated token. The prime (seed sequence) goes through a recurrent layer in one call.
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np

from .nn.cells import CELL_CLASSES
from .nn.embedding import Embedding
from .nn.module import Module
from .nn.recurrent import LAYER_CLASSES

__all__ = ["sample"]


def _pick(logits: np.ndarray, temperature: float, top_k: Optional[int],
          rng: np.random.Generator) -> np.ndarray:
    """One token per row of logits (B, V): softmax(logits / temperature), top-k, sampled."""
    z = logits.astype(np.float64)
    if temperature == 0.0:
        return z.argmax(axis=-1)
    z = z / temperature
    v = z.shape[-1]
    if top_k is not None and top_k < v:
        kth = np.partition(z, v - top_k, axis=-1)[:, v - top_k][:, None]
        z = np.where(z >= kth, z, -np.inf)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    cdf = np.cumsum(p, axis=-1)
    u = rng.random(z.shape[0])[:, None] * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=-1), v - 1)


def sample(embedding: Embedding, recurrent: Module, head: Module, prime: Any, length: int, *,
           temperature: float = 1.0, top_k: Optional[int] = None, seed: Optional[int] = None,
           hx: Any = None) -> np.ndarray:
    """Continue ``prime`` by ``length`` tokens sampled from the model, step by step.

    The model is ``logits_t = head(recurrent(embedding(tokens))_t)``: ``embedding`` an
    :class:`~rnnkit.nn.Embedding`, ``recurrent`` a unidirectional ``RNN``/``LSTM``/``GRU``
    layer (any num_layers; its batch_first is respected) or an ``RNNCell``/``LSTMCell``/
    ``GRUCell``, and ``head`` a layer mapping (B, H) to (B, V) logits (a ``Linear``). A
    ``Sequential(Embedding, LSTM, Linear)`` model unpacks into these: ``sample(*model, ...)``.

    Args:
        prime: int tokens (S,) or a batch (B, S), S >= 1: the sequence to continue.
        length: number of tokens to generate (>= 0).
        temperature: divides the logits before the softmax; lower is greedier, 0 is argmax.
        top_k: if given, sample only among the k most likely tokens at each step.
        seed: seeds ``np.random.default_rng``; the same seed gives the same tokens.
        hx: initial recurrent state, as the recurrent layer or cell takes it (None = zeros).

    Returns:
        int64 tokens (length,) for a 1-D prime, (B, length) for a batch; the prime excluded.

    The modules run in ``eval()`` mode (no dropout, no caches) and get their previous mode
    back afterwards (which drops any cache a training-mode forward left).
    """
    if not isinstance(embedding, Embedding):
        raise TypeError(f"embedding must be a rnnkit.nn.Embedding, got {type(embedding).__name__}")
    is_cell = isinstance(recurrent, tuple(CELL_CLASSES.values()))
    if not is_cell and not isinstance(recurrent, tuple(LAYER_CLASSES.values())):
        raise TypeError("recurrent must be a rnnkit.nn RNN/LSTM/GRU layer or RNNCell/LSTMCell/"
                        f"GRUCell, got {type(recurrent).__name__}")
    if not is_cell and recurrent.bidirectional:
        raise ValueError("recurrent is bidirectional: generation needs a unidirectional layer "
                         "(the reverse direction would need the future)")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise ValueError(f"length must be an int >= 0, got {length!r}")
    temperature = float(temperature)
    if not np.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be finite and >= 0, got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer))
                              or top_k < 1):
        raise ValueError(f"top_k must be an int >= 1 or None, got {top_k!r}")
    tokens = np.asarray(prime)
    if tokens.dtype == np.bool_ or not np.issubdtype(tokens.dtype, np.integer):
        raise TypeError(f"prime must be an integer array of tokens, got dtype {tokens.dtype}")
    if tokens.ndim not in (1, 2) or tokens.shape[-1] < 1:
        raise ValueError(f"prime must be (S,) or (B, S) with S >= 1, got shape {tokens.shape}")
    single = tokens.ndim == 1
    batch = tokens.reshape(1, -1) if single else tokens          # (B, S)
    rng = np.random.default_rng(seed)

    modules: List[Module] = [m for top in (embedding, recurrent, head) for m in top.modules()]
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        state, h = _prime(embedding, recurrent, batch, hx, is_cell)
        out = np.empty((batch.shape[0], int(length)), np.int64)
        for i in range(int(length)):
            tok = _pick(np.asarray(head(h)), temperature, top_k, rng)
            out[:, i] = tok
            state, h = _advance(recurrent, embedding(tok), state, is_cell)
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)
    return out[0] if single else out


def _prime(embedding: Embedding, recurrent: Module, batch: np.ndarray, hx: Any,
           is_cell: bool) -> Tuple[Any, np.ndarray]:
    """Run the prime (B, S) through the model; returns the state and last output (B, H)."""
    if is_cell:
        emb = embedding(batch)                                  # (B, S, E)
        state, h = hx, None
        for t in range(batch.shape[1]):                         # cells take one step per call
            state, h = _advance(recurrent, emb[:, t], state, True)
        return state, h
    x = embedding(batch if recurrent.batch_first else batch.T)  # (B, S, E) or (S, B, E)
    y, state = recurrent(x, hx)
    return state, (y[:, -1] if recurrent.batch_first else y[-1])


def _advance(recurrent: Module, e: np.ndarray, state: Any,
             is_cell: bool) -> Tuple[Any, np.ndarray]:
    """One step on embedded tokens e (B, E); returns the new state and output (B, H)."""
    if is_cell:
        state = recurrent(e, state)
        return state, (state[0] if isinstance(state, tuple) else state)
    x = e[:, None] if recurrent.batch_first else e[None]
    y, state = recurrent(x, state)
    return state, (y[:, 0] if recurrent.batch_first else y[0])
