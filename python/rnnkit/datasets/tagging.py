"""Capitalisation and punctuation restoration as a character tagging task.

A real many-to-many sequence-labelling problem on real text: the model reads text that has
been lowercased, stripped of punctuation and flattened to one line, and tags each character
with (a) its case and (b) the punctuation mark that followed it in the original, if any.
Restoring both recovers readable text::

    original:  "Who's there?\\nNay, answer me: stand"
    input:     "who's there nay answer me stand"
    case:       U.... ..... U.. ...... .. .....       (U = upper)
    punct:      ..... ....? ..,  .....:  .....        (mark after the character)

Apostrophes and hyphens inside words stay in the input (they belong to the word). Newlines
become spaces, because in verse a line break gives away the capital that follows it. A run
of several marks (``?!``, ``,--``) is tagged with its first mark in :data:`PUNCTUATION`;
marks outside that set (dashes, quotes, brackets) are simply removed.
"""
from __future__ import annotations

import re
from typing import NamedTuple, Tuple

import numpy as np

__all__ = ["capitalisation_tagging", "restore_text", "Tagged", "PUNCTUATION", "CASES",
           "tag_names"]

#: Punctuation classes; index 0 means "no mark follows this character".
PUNCTUATION: Tuple[str, ...] = ("", ",", ".", "?", "!", ":", ";")
#: Case classes.
CASES: Tuple[str, ...] = ("lower", "upper")

_KEEP = re.compile(r"[a-z0-9'\-]")     # characters of the (lowercased) input besides spaces
_DASH = re.compile(r"(?<![A-Za-z0-9])-|-(?![A-Za-z0-9])")


class Tagged(NamedTuple):
    """The tagging task for one text; all arrays have one entry per character of ``text``.

    ``text`` is the model input (lowercase, no punctuation, single spaces, no newlines).
    ``case`` is 1 where the original character was upper case; ``punct`` indexes
    :data:`PUNCTUATION` (0 = none). ``labels = case * len(PUNCTUATION) + punct`` combines both
    in one class per character (14 classes) for a single softmax head; ``mask`` is False on
    spaces, whose tag is always (lower, none) and so is left out of losses and metrics.
    """

    text: str
    case: np.ndarray
    punct: np.ndarray

    @property
    def labels(self) -> np.ndarray:
        return self.case.astype(np.int64) * len(PUNCTUATION) + self.punct

    @property
    def mask(self) -> np.ndarray:
        return np.frombuffer(self.text.encode("ascii", "replace"), np.uint8) != ord(" ")


def tag_names() -> Tuple[str, ...]:
    """Names of the combined labels, e.g. "upper+?" (index = case * 7 + punct)."""
    return tuple(f"{c}+{p or 'none'}" for c in CASES for p in PUNCTUATION)


def capitalisation_tagging(text: str) -> Tagged:
    """Turn ``text`` into the tagging task (see the module docstring).

    Characters that are neither letters, digits, apostrophes, hyphens, whitespace nor one of
    :data:`PUNCTUATION` are dropped; non-ASCII letters are dropped too, so the input alphabet
    is small and fixed (28 symbols plus digits).
    """
    out_chars = []
    case = []
    punct = []
    marks = {m: i for i, m in enumerate(PUNCTUATION) if m}
    pending_space = False
    # A hyphen joins a word ("to-night"); anywhere else it is a dash, which acts as a space.
    text = _DASH.sub(" ", text)
    for ch in text:
        low = ch.lower()
        if _KEEP.match(low) and low.isascii():
            if pending_space and out_chars:
                out_chars.append(" ")
                case.append(0)
                punct.append(0)
            pending_space = False
            out_chars.append(low)
            case.append(1 if ch != low else 0)
            punct.append(0)
        elif ch.isspace():
            pending_space = True
        elif ch in marks and out_chars and out_chars[-1] != " " and punct[-1] == 0 \
                and not pending_space:
            punct[-1] = marks[ch]          # the first mark of a run wins
    return Tagged("".join(out_chars), np.array(case, np.int64), np.array(punct, np.int64))


def restore_text(text: str, case: np.ndarray, punct: np.ndarray) -> str:
    """Apply (predicted) tags to the lowercase ``text``: the inverse of the transform.

    Tags on spaces are ignored: a space never carries one, and a model that leaves spaces
    out of its loss may predict anything there.
    """
    return "".join(ch if ch == " " else (ch.upper() if c else ch) + PUNCTUATION[int(p)]
                   for ch, c, p in zip(text, case, punct))
