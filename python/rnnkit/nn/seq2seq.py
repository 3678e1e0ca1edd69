"""Seq2Seq: an LSTM encoder-decoder with Luong's global attention, trained with teacher forcing
and decoded greedily or by length-normalised beam search.

The pattern (Luong, Pham and Manning 2015, "Effective Approaches to Attention-based Neural
Machine Translation"), with the shapes of a batch of B source sequences of S tokens and target
sequences of T tokens (batch first throughout):

    encoder   e = BiLSTM(embed_src(source))                      (B, S, H): H/2 per direction
    bridge    decoder (h0, c0) = encoder's final (forward, backward) states, concatenated
    decoder   d = LSTM(embed_tgt(target_in), (h0, c0))          (B, T, H)
    attention a, _ = Attention(query=d, keys=e, key_lengths=source_lengths)
    output    logits = W_out dropout(tanh(W_c [a; d]))           (B, T, V_target)

Attention comes after the decoder LSTM and is not fed back into its input, so a whole target
sequence trains in one call of each layer: no Python loop over time in training. ``backward``
chains the gradients through the same path in reverse, including the decoder's gradient of its
initial states into the encoder's final states.
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np

from .attention import Attention
from .activations import Tanh
from .dropout import Dropout
from .embedding import Embedding
from .linear import Linear
from .module import Module, _dtype, _positive_int
from .recurrent import LSTM

__all__ = ["Seq2Seq"]


def _seed(seed: Optional[int], k: int) -> Optional[int]:
    """Independent but reproducible seeds for the sub-layers."""
    return None if seed is None else int(seed) * 16 + k


class Seq2Seq(Module):
    """Attention encoder-decoder over token ids (see the module docstring for the model).

    Args:
        source_vocab, target_vocab: vocabulary sizes.
        embedding_dim: size of both embeddings.
        hidden_size: H, the decoder's hidden size; the encoder has H/2 per direction (H even).
        num_layers: layers of the encoder and of the decoder.
        score: the attention score, "dot", "general" (default) or "additive".
        dropout: between stacked LSTM layers and before the output layer (training only).
        bos, eos: the target vocabulary's begin and end tokens. ``target_in`` starts with
            ``bos``; decoding starts from it and stops at ``eos``.
        source_pad: the source vocabulary's padding token (its embedding stays zero).

    Training: ``logits = model(source, target_in, source_lengths, target_lengths)`` with
    ``source`` (B, S) and ``target_in`` (B, T) int arrays, then ``model.backward(dlogits)``
    (dlogits (B, T, V_target), e.g. from ``CrossEntropyLoss(ignore_index=...)`` over the
    targets shifted by one). Decoding: :meth:`greedy_decode` and :meth:`beam_search`.
    """

    _config_args = ("source_vocab", "target_vocab", "embedding_dim", "hidden_size",
                    "num_layers", "score", "dropout", "bos", "eos", "source_pad", "dtype")

    def __init__(self, source_vocab: int, target_vocab: int, embedding_dim: int = 64,
                 hidden_size: int = 256, num_layers: int = 1, *, score: str = "general",
                 dropout: float = 0.0, bos: int = 1, eos: int = 2, source_pad: int = 0,
                 dtype: Any = "float32", seed: Optional[int] = None) -> None:
        super().__init__()
        self.source_vocab = _positive_int("source_vocab", source_vocab)
        self.target_vocab = _positive_int("target_vocab", target_vocab)
        self.embedding_dim = _positive_int("embedding_dim", embedding_dim)
        self.hidden_size = _positive_int("hidden_size", hidden_size)
        if self.hidden_size % 2:
            raise ValueError(f"hidden_size must be even (the encoder has hidden_size/2 per "
                             f"direction), got {hidden_size}")
        self.num_layers = _positive_int("num_layers", num_layers)
        for name, token in (("bos", bos), ("eos", eos)):
            if not 0 <= int(token) < self.target_vocab:
                raise ValueError(f"{name} must be a target token in [0, {self.target_vocab}), "
                                 f"got {token}")
        if not 0 <= int(source_pad) < self.source_vocab:
            raise ValueError(f"source_pad must be a source token in [0, {self.source_vocab}), "
                             f"got {source_pad}")
        self.bos, self.eos, self.source_pad = int(bos), int(eos), int(source_pad)
        self.score = score
        self.dropout = float(dropout)
        self.dtype = _dtype(dtype)
        H, E, L = self.hidden_size, self.embedding_dim, self.num_layers
        self.source_embedding = Embedding(self.source_vocab, E, padding_idx=self.source_pad,
                                          dtype=self.dtype, seed=_seed(seed, 1))
        self.encoder = LSTM(E, H // 2, L, batch_first=True, bidirectional=True,
                            dropout=self.dropout if L > 1 else 0.0, dtype=self.dtype,
                            seed=_seed(seed, 2))
        self.target_embedding = Embedding(self.target_vocab, E, dtype=self.dtype,
                                          seed=_seed(seed, 3))
        self.decoder = LSTM(E, H, L, batch_first=True,
                            dropout=self.dropout if L > 1 else 0.0, dtype=self.dtype,
                            seed=_seed(seed, 4))
        self.attention = Attention(H, H, score=score, batch_first=True, dtype=self.dtype,
                                   seed=_seed(seed, 5))
        self.combine = Linear(2 * H, H, dtype=self.dtype, seed=_seed(seed, 6))
        self.combine_tanh = Tanh()
        self.output_dropout = Dropout(self.dropout, seed=_seed(seed, 7))
        self.output = Linear(H, self.target_vocab, dtype=self.dtype, seed=_seed(seed, 8))

    def extra_repr(self) -> str:
        return (f"source_vocab={self.source_vocab}, target_vocab={self.target_vocab}, "
                f"hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
                f"score={self.score!r}")

    # -- the encoder's final states <-> the decoder's initial states -----------------------
    def _bridge(self, state: np.ndarray) -> np.ndarray:
        """(2L, B, H/2), directions interleaved per layer -> (L, B, H): [forward; backward]."""
        L, B, half = self.num_layers, state.shape[1], self.hidden_size // 2
        return state.reshape(L, 2, B, half).transpose(0, 2, 1, 3).reshape(L, B, 2 * half)

    def _unbridge(self, d_state: np.ndarray) -> np.ndarray:
        L, B, half = self.num_layers, d_state.shape[1], self.hidden_size // 2
        return np.ascontiguousarray(
            d_state.reshape(L, B, 2, half).transpose(0, 2, 1, 3).reshape(2 * L, B, half))

    def _tokens(self, name: str, tokens: Any) -> np.ndarray:
        arr = np.asarray(tokens)
        if arr.ndim != 2:
            raise ValueError(f"{name} must be a (batch, time) int array, got shape {arr.shape}")
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
        return arr

    def _encode(self, source: Any, source_lengths: Any
                ) -> Tuple[np.ndarray, Tuple[np.ndarray, np.ndarray], Optional[np.ndarray]]:
        src = self._tokens("source", source)
        lengths = None if source_lengths is None else np.asarray(source_lengths)
        keys, (h_n, c_n) = self.encoder(self.source_embedding(src), lengths=lengths)
        return keys, (self._bridge(h_n), self._bridge(c_n)), lengths

    def _head(self, dec: np.ndarray, keys: np.ndarray,
              key_lengths: Optional[np.ndarray]) -> np.ndarray:
        context, _ = self.attention(dec, keys, key_lengths=key_lengths)
        mixed = self.combine_tanh(self.combine(np.concatenate([context, dec], axis=-1)))
        return self.output(self.output_dropout(mixed))

    # -- training ------------------------------------------------------------------------
    def forward(self, source: Any, target_in: Any, source_lengths: Any = None,
                target_lengths: Any = None) -> np.ndarray:
        """Logits (B, T, V_target) for each next target token, given the previous ones."""
        keys, state, lengths = self._encode(source, source_lengths)
        tgt = self._tokens("target_in", target_in)
        if tgt.shape[0] != keys.shape[0]:
            raise ValueError(f"target_in has batch {tgt.shape[0]}, source has {keys.shape[0]}")
        dec, _ = self.decoder(self.target_embedding(tgt), state,
                              lengths=None if target_lengths is None
                              else np.asarray(target_lengths))
        return self._head(dec, keys, lengths)

    def backward(self, dlogits: Any) -> None:
        """Gradients of every parameter from d(loss)/d(logits); returns None (the inputs are
        token ids)."""
        H = self.hidden_size
        d_mixed = self.output_dropout.backward(self.output.backward(dlogits))
        d_cat = self.combine.backward(self.combine_tanh.backward(d_mixed))
        d_query, d_keys, _ = self.attention.backward(np.ascontiguousarray(d_cat[..., :H]))
        d_dec = d_cat[..., H:] + d_query
        d_tgt_emb, (dh0, dc0) = self.decoder.backward(d_dec)
        self.target_embedding.backward(d_tgt_emb)
        d_src_emb, _ = self.encoder.backward(d_keys, (self._unbridge(dh0), self._unbridge(dc0)))
        self.source_embedding.backward(d_src_emb)

    # -- decoding ------------------------------------------------------------------------
    def _step(self, tokens: np.ndarray, state: Tuple[np.ndarray, np.ndarray], keys: np.ndarray,
              key_lengths: Optional[np.ndarray]):
        """Log-probabilities (N, V) of the next token and the new decoder state."""
        dec, state = self.decoder(self.target_embedding(tokens[:, None]), state)
        logits = self._head(dec, keys, key_lengths)[:, 0].astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return logp, state

    def _eval_mode(self):
        was_training = self.training
        self.eval()
        return was_training

    def greedy_decode(self, source: Any, source_lengths: Any = None,
                      max_length: int = 50) -> List[List[int]]:
        """The most likely next token at each step until ``eos`` (not included) or
        ``max_length`` tokens."""
        max_length = _positive_int("max_length", max_length)
        was_training = self._eval_mode()
        try:
            keys, state, lengths = self._encode(source, source_lengths)
            B = keys.shape[0]
            tokens = np.full(B, self.bos, np.int64)
            out = np.zeros((B, max_length), np.int64)
            done = np.zeros(B, bool)
            for t in range(max_length):
                logp, state = self._step(tokens, state, keys, lengths)
                tokens = logp.argmax(axis=1)
                out[:, t] = tokens
                done |= tokens == self.eos
                if done.all():
                    break
        finally:
            self.train(was_training)
        result = []
        for row in out:
            ends = np.flatnonzero(row == self.eos)
            result.append(row[:ends[0] if ends.size else max_length].tolist())
        return result

    def beam_search(self, source: Any, source_lengths: Any = None, beam_width: int = 5,
                    max_length: int = 50, length_penalty: float = 1.0) -> List[List[int]]:
        """Beam search: the hypothesis with the best log-probability / length**length_penalty
        (length counting ``eos``) per source sequence, without ``eos``.

        At each step the 2·beam_width best extensions of the live hypotheses are ranked by
        log-probability; those ending in ``eos`` among the ranks above the beam_width-th live
        one are set aside as finished, the next beam_width live ones carry on. A sequence
        stops once beam_width hypotheses have finished; at ``max_length`` the best live one
        is taken if none did.
        """
        K = _positive_int("beam_width", beam_width)
        max_length = _positive_int("max_length", max_length)
        alpha = float(length_penalty)
        was_training = self._eval_mode()
        try:
            keys, (h, c), lengths = self._encode(source, source_lengths)
            B = keys.shape[0]
            # Every sequence's keys, lengths and states repeated for its K hypotheses.
            keys = np.repeat(keys, K, axis=0)
            lengths = None if lengths is None else np.repeat(lengths, K)
            h, c = np.repeat(h, K, axis=1), np.repeat(c, K, axis=1)
            scores = np.full((B, K), -np.inf)
            scores[:, 0] = 0.0                  # one live hypothesis to start from
            history = np.zeros((B, K, 0), np.int64)
            tokens = np.full(B * K, self.bos, np.int64)
            finished: List[List[Tuple[float, List[int]]]] = [[] for _ in range(B)]
            rows = np.arange(B)[:, None]
            for t in range(max_length):
                logp, (h, c) = self._step(tokens, (h, c), keys, lengths)
                V = logp.shape[1]
                cand = (scores[:, :, None] + logp.reshape(B, K, V)).reshape(B, K * V)
                top = np.argsort(-cand, axis=1, kind="stable")[:, :2 * K]
                top_scores = cand[rows, top]
                is_eos = (top % V) == self.eos
                live_rank = np.cumsum(~is_eos, axis=1)        # live ones up to and including
                keep = ~is_eos & (live_rank <= K)
                record = is_eos & (live_rank - ~is_eos < K) & np.isfinite(top_scores)
                for b, j in zip(*np.nonzero(record)):
                    if len(finished[b]) < K:
                        seq = history[b, top[b, j] // V].tolist()
                        finished[b].append((top_scores[b, j] / (len(seq) + 1) ** alpha, seq))
                chosen = top[keep].reshape(B, K)
                parent, token = chosen // V, chosen % V
                scores = cand[rows, chosen]
                history = np.concatenate([history[rows, parent], token[:, :, None]], axis=2)
                flat_parent = (np.arange(B)[:, None] * K + parent).reshape(-1)
                h, c = h[:, flat_parent], c[:, flat_parent]
                tokens = token.reshape(-1)
                if all(len(f) >= K for f in finished):
                    break
        finally:
            self.train(was_training)
        result = []
        for b in range(B):
            if finished[b]:
                result.append(max(finished[b], key=lambda item: item[0])[1])
            else:
                norm = scores[b] / max(history.shape[2], 1) ** alpha
                result.append(history[b, int(np.argmax(norm))].tolist())
        return result

