"""Strings of handwritten digits, for recognising unsegmented sequences (CTC).

scikit-learn (BSD-3) ships ``sklearn/datasets/data/digits.csv.gz``: the 1,797 test images of
UCI's "Optical Recognition of Handwritten Digits" (Alpaydin and Kaynak, 1998), 8x8 pixels with
values 0-16, written by 13 people, with their labels. The file is read directly; scikit-learn
(and so scipy) is not imported.

:func:`digit_strings` places 3 to 8 of those images side by side, with random gaps of blank
columns and a random vertical shift of a pixel, and reads the result column by column: a
sequence of 8-pixel columns whose labels are the digits in order, with no mark of where one
digit ends and the next begins. That is the shape of speech recognition (frames in, an
unsegmented label string out), in a data set small enough for CI.

The file does not say which writer drew which image, so the split cannot be by writer; it is by
image, in contiguous blocks of the file (the images of one block are more likely to share a
writer than random picks would be): test strings are made only of images that no training
string contains.
"""
from __future__ import annotations

import gzip
from typing import List, NamedTuple, Tuple

import numpy as np

from ._resources import package_file

__all__ = ["digit_images", "digit_strings", "DigitStrings"]

EXTRA = "examples-ocr"


def digit_images() -> Tuple[np.ndarray, np.ndarray]:
    """The 1,797 images as float32 (N, 8, 8) in [0, 1] and their int64 labels (N,)."""
    path = package_file("sklearn", "datasets/data/digits.csv.gz", "digit_images", extra=EXTRA)
    with gzip.open(path, "rt", encoding="ascii") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 65:
        raise ValueError(f"{path}: expected rows of 64 pixels and a label, got shape "
                         f"{table.shape}")
    return (table[:, :64].reshape(-1, 8, 8) / 16.0).astype(np.float32), table[:, 64]


class DigitStrings(NamedTuple):
    """One split: ``columns`` (N, W, 8) float32 padded with zeros, ``widths`` (N,) int64 (each
    string's columns), ``labels`` a list of int64 arrays (its digits), and ``image_ids`` the
    source images used, in order (to check that splits share none)."""

    columns: np.ndarray
    widths: np.ndarray
    labels: List[np.ndarray]
    image_ids: List[np.ndarray]


def _compose(images: np.ndarray, ids: np.ndarray, rng: np.random.Generator,
             max_gap: int) -> np.ndarray:
    """Images side by side as (W, 8) columns: a gap of 0..max_gap blank columns before each
    digit and after the last, each digit shifted up or down by at most one row (the row pushed
    out is lost: it is mostly blank)."""
    parts = []
    for i in ids:
        parts.append(np.zeros((rng.integers(0, max_gap + 1), 8), np.float32))
        shift = int(rng.integers(-1, 2))          # rows moved down (+1) or up (-1), zero-filled
        img = np.zeros_like(images[i])
        if shift >= 0:
            img[shift:] = images[i][:8 - shift]
        else:
            img[:shift] = images[i][-shift:]
        parts.append(img.T)                       # columns, left to right
    parts.append(np.zeros((rng.integers(0, max_gap + 1), 8), np.float32))
    return np.concatenate(parts, axis=0)


def digit_strings(num_train: int = 6000, num_test: int = 1000, *, min_digits: int = 3,
                  max_digits: int = 8, max_gap: int = 2, test_fraction: float = 0.25,
                  seed: int = 0) -> Tuple[DigitStrings, DigitStrings]:
    """``(train, test)`` strings of ``min_digits``..``max_digits`` digits (see the module
    docstring). The last ``test_fraction`` of the file's images make the test strings, the
    rest the training strings; the same seed gives the same strings.

    Raises:
        ImportError: scikit-learn is not installed (``pip install "rnnkit[examples-ocr]"``).
        ValueError: counts or sizes out of range.
    """
    if not 1 <= min_digits <= max_digits:
        raise ValueError(f"need 1 <= min_digits <= max_digits, got {min_digits}, {max_digits}")
    if num_train < 0 or num_test < 0:
        raise ValueError(f"num_train and num_test must be >= 0, got {num_train}, {num_test}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if max_gap < 0:
        raise ValueError(f"max_gap must be >= 0, got {max_gap}")
    images, labels = digit_images()
    cut = int(round(len(images) * (1.0 - test_fraction)))
    rng = np.random.default_rng(seed)
    out = []
    for pool, count in ((np.arange(cut), num_train), (np.arange(cut, len(images)), num_test)):
        seqs, ids_used = [], []
        for _ in range(count):
            ids = rng.choice(pool, size=int(rng.integers(min_digits, max_digits + 1)))
            seqs.append(_compose(images, ids, rng, max_gap))
            ids_used.append(ids)
        widths = np.array([len(s) for s in seqs], np.int64)
        columns = np.zeros((count, int(widths.max()) if count else 0, 8), np.float32)
        for k, s in enumerate(seqs):
            columns[k, :len(s)] = s
        out.append(DigitStrings(columns, widths, [labels[ids] for ids in ids_used], ids_used))
    return out[0], out[1]
