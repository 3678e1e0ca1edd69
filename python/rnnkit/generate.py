"""One-to-many generation: sample tokens from an Embedding -> recurrent -> Linear model.

Generation is sequential by nature (step t+1 reads the token sampled at step t), so this is
the one place in rnnkit that loops over time steps in Python: one recurrent call per
generated token. The prime (seed sequence) goes through a recurrent layer in one call.

``sample`` takes the model whole (a ``Sequential(Embedding, LSTM, Linear)``) or as its three
parts.
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple, overload

import numpy as np

from .nn.cells import CELL_CLASSES
from .nn.embedding import Embedding
from .nn.module import Module
from .nn.recurrent import LAYER_CLASSES
from .nn.sequential import Sequential

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


@overload
def sample(embedding: Sequential, recurrent: Any = None, head: Any = None, prime: Any = None,
           length: Optional[int] = None, *, temperature: float = 1.0,
           top_k: Optional[int] = None, seed: Optional[int] = None,
           hx: Any = None) -> np.ndarray: ...          # sample(model, prime, length, ...)


@overload
def sample(embedding: Embedding, recurrent: Module, head: Module, prime: Any, length: int, *,
           temperature: float = 1.0, top_k: Optional[int] = None, seed: Optional[int] = None,
           hx: Any = None) -> np.ndarray: ...


def sample(embedding: Module, recurrent: Any = None, head: Any = None, prime: Any = None,
           length: Optional[int] = None, *, temperature: float = 1.0,
           top_k: Optional[int] = None, seed: Optional[int] = None,
           hx: Any = None) -> np.ndarray:
    """Continue ``prime`` by ``length`` tokens sampled from the model, step by step.

    Two call forms::

        sample(model, prime, length, ...)                    # model = Sequential(Embedding,
                                                             #   LSTM/GRU/RNN, Linear)
        sample(embedding, recurrent, head, prime, length, ...)

    The model is ``logits_t = head(recurrent(embedding(tokens))_t)``: ``embedding`` an
    :class:`~rnnkit.nn.Embedding`, ``recurrent`` a unidirectional ``RNN``/``LSTM``/``GRU``
    layer (any num_layers; its batch_first is respected) or an ``RNNCell``/``LSTMCell``/
    ``GRUCell``, and ``head`` a layer mapping (B, H) to (B, V) logits (a ``Linear``). A
    :class:`~rnnkit.nn.Sequential` is taken whole: its first layer is the embedding, its second
    the recurrent layer and the rest (say ``Dropout, Linear``) the head, so
    ``sample(model, ...)`` and ``sample(*model, ...)`` (three layers) are the same call.
    (Accepting the Sequential, rather than only its parts, is what a user of a trained
    language model tries first.) In the Sequential form ``prime`` and ``length`` are the two
    arguments after the model, positionally or by name.

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
    if isinstance(embedding, Sequential):
        embedding, recurrent, head, prime, length = _unpack_model(embedding, recurrent, head,
                                                                  prime, length)
    elif head is None or prime is None or length is None:
        missing = [n for n, v in (("recurrent", recurrent), ("head", head), ("prime", prime),
                                  ("length", length)) if v is None]
        raise TypeError(f"rnnkit.sample: missing {', '.join(missing)}; call it as "
                        "sample(model, prime, length) with a Sequential(Embedding, recurrent, "
                        "Linear) model, or sample(embedding, recurrent, head, prime, length)")
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


def _unpack_model(model: Sequential, *rest: Any) -> Tuple[Any, ...]:
    """``Sequential(Embedding, recurrent, *head)`` and the arguments after it (``prime`` and
    ``length``, positionally in the first two slots or by name in the last two) ->
    ``(embedding, recurrent, head, prime, length)``."""
    layers = list(model)
    if len(layers) < 3 or not isinstance(layers[0], Embedding):
        kinds = ", ".join(type(m).__name__ for m in layers) or "no layers"
        raise TypeError("rnnkit.sample(model, prime, length) needs a Sequential(Embedding, "
                        f"RNN/LSTM/GRU, Linear) language model, got Sequential({kinds})")
    for i, layer in enumerate(layers[2:], start=2):
        # A head maps each step's (B, H) output to logits: a layer that wants lengths or
        # returns a state (Last, a second recurrent layer) does not act step by step.
        if (isinstance(layer, Embedding) or getattr(layer, "_takes_lengths", False)
                or getattr(layer, "_returns_state", False)):
            raise ValueError(f"rnnkit.sample: model layer {i} is {type(layer).__name__}; the "
                             "layers after the recurrent one must map each step's output to "
                             "next-token logits (e.g. Linear), as in Sequential(Embedding, "
                             "LSTM, Linear)")
    head = layers[2] if len(layers) == 3 else Sequential(*layers[2:])
    positional = [v for v in rest[:2] if v is not None]
    prime, length = rest[2:]
    if prime is None and positional:
        prime = positional.pop(0)
    if length is None and positional:
        length = positional.pop(0)
    if positional:
        raise TypeError("rnnkit.sample with a Sequential model takes (model, prime, length, *, "
                        "temperature, top_k, seed, hx): too many positional arguments")
    if prime is None or length is None:
        raise TypeError(f"rnnkit.sample(model, prime, length): missing "
                        f"{'prime' if prime is None else 'length'}")
    return layers[0], layers[1], head, prime, length


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
