"""Small vocabulary and encoding helpers for characters and words."""
from __future__ import annotations

import re
from collections import Counter
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

__all__ = ["Vocab", "tokenize_words", "pad_sequences"]


class Vocab:
    """A bijection between tokens (characters or words) and ints 0..len-1.

    Build it with :meth:`from_text` (characters) or :meth:`from_tokens` (any tokens, e.g.
    words, with ``max_size``/``min_count`` to bound it). ``specials`` (such as a padding and an
    unknown token) take the first indices in the order given; tokens not in the vocabulary
    encode to ``unk`` when one is set and raise ``KeyError`` otherwise.
    """

    def __init__(self, tokens: Sequence[str], unk: Optional[str] = None) -> None:
        if len(set(tokens)) != len(tokens):
            raise ValueError("Vocab tokens must be unique")
        self.itos: List[str] = list(tokens)
        self.stoi: Dict[str, int] = {s: i for i, s in enumerate(self.itos)}
        if unk is not None and unk not in self.stoi:
            raise ValueError(f"unk token {unk!r} is not in the vocabulary")
        self.unk = unk

    @classmethod
    def from_text(cls, *texts: str) -> "Vocab":
        """Every character that occurs in ``texts``, sorted (so the order is stable)."""
        chars = set()
        for t in texts:
            chars.update(t)
        return cls(sorted(chars))

    @classmethod
    def from_tokens(cls, sequences: Iterable[Sequence[str]], *, max_size: Optional[int] = None,
                    min_count: int = 1, specials: Sequence[str] = ("<pad>", "<unk>"),
                    unk: Optional[str] = "<unk>") -> "Vocab":
        """The most frequent tokens (ties broken alphabetically, so the result is stable)."""
        counts = Counter(tok for seq in sequences for tok in seq)
        ranked = sorted((c for c in counts.items() if c[1] >= min_count and c[0] not in specials),
                        key=lambda kv: (-kv[1], kv[0]))
        if max_size is not None:
            ranked = ranked[:max(0, max_size - len(specials))]
        return cls(list(specials) + [tok for tok, _ in ranked], unk=unk)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """int64 indices of ``tokens`` (a string encodes character by character)."""
        if self.unk is None:
            try:
                return np.fromiter((self.stoi[t] for t in tokens), np.int64)
            except KeyError as exc:
                raise KeyError(f"token {exc.args[0]!r} is not in the vocabulary (and it has no "
                               "unk token)") from None
        u = self.stoi[self.unk]
        return np.fromiter((self.stoi.get(t, u) for t in tokens), np.int64)

    def decode(self, indices: Iterable[int], sep: str = "") -> str:
        """The tokens of ``indices`` joined by ``sep`` ("" for characters, " " for words)."""
        return sep.join(self.itos[int(i)] for i in indices)

    def to_json(self) -> Dict[str, object]:
        """A JSON-serialisable description (for saving beside a model)."""
        return {"itos": self.itos, "unk": self.unk}

    @classmethod
    def from_json(cls, d: Dict[str, object]) -> "Vocab":
        return cls(list(d["itos"]), unk=d.get("unk"))  # type: ignore[arg-type]


_WORD = re.compile(r"[a-z0-9']+|[@#][a-z0-9_]+|[^\sa-z0-9]")


def tokenize_words(text: str) -> List[str]:
    """Lowercased word tokens: words (with apostrophes), @mentions/#hashtags, punctuation.

    Links become one ``<url>`` token: their characters carry no meaning a model could learn.
    """
    text = re.sub(r"https?://\S+", " <url> ", text.lower())
    out: List[str] = []
    for part in text.split():
        out.extend(["<url>"] if part == "<url>" else _WORD.findall(part))
    return out


def pad_sequences(seqs: Sequence[np.ndarray], max_len: Optional[int] = None,
                  pad: int = 0) -> "tuple[np.ndarray, np.ndarray]":
    """Pad int sequences to a (B, T) batch; returns (batch, lengths).

    Sequences longer than ``max_len`` keep their first ``max_len`` tokens. A length-0
    sequence gets length 0 (the recurrent layers return zeros for it).
    """
    lengths = np.array([len(s) for s in seqs], np.int64)
    if max_len is not None:
        lengths = np.minimum(lengths, max_len)
    t = int(lengths.max()) if len(seqs) else 0
    out = np.full((len(seqs), t), pad, np.int64)
    for i, (s, n) in enumerate(zip(seqs, lengths)):
        out[i, :n] = s[:n]
    return out, lengths
