"""Every example runs in --quick mode and beats its trivial baseline by a clear margin.

The data packages are the ``examples`` extra, which CI installs: these tests are meant to run
there, not to be skipped (``needs_data``, tests/conftest.py: skipped with only the test extra,
a failure where RNNKIT_REQUIRE_EXTRAS is set, as in CI). They pass ``--threads 1``: on a CI runner shared with other jobs,
two threads that meet at a barrier every time step can wait many times longer for a
descheduled partner than the step takes, and these tests check quality, not speed.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from _run_helpers import ROOT, run


def _example(name: str, tmp_path: Path) -> dict:
    out, result = run([str(ROOT / "examples" / f"{name}.py"), "--quick", "--threads", "1",
                       "--out", str(tmp_path / f"{name}.npz")], cwd=tmp_path)
    assert result, f"{name} printed no RESULT line:\n{out[-2000:]}"
    assert (tmp_path / f"{name}.npz").exists(), f"{name} saved no checkpoint"
    return result


@pytest.mark.needs_data("shakespeare")
def test_char_lm(tmp_path):
    r = _example("char_lm", tmp_path)
    # Unigram frequencies give ~4.56 bits/char; a quick LSTM reaches ~3.
    assert r["value"] < r["baseline"] - 1.0, r


@pytest.mark.needs_data("tweets")
def test_sentiment(tmp_path):
    r = _example("sentiment", tmp_path)
    # Majority class ~0.44 test accuracy; the quick LSTM ~0.69.
    assert r["value"] > r["baseline"] + 0.10, r
    assert r["macro_f1"] > r["baseline_macro_f1"] + 0.25, r


@pytest.mark.needs_data("shakespeare")
def test_tagging(tmp_path):
    r = _example("tagging", tmp_path)
    # The trivial tagger finds no capital and no mark (F1 0); the quick model ~0.2.
    assert r["value"] > 0.10, r
    assert r["f1"]["upper"] > 0.15 and r["f1"][","] > 0.05, r
    assert r["accuracy"] > r["baseline_accuracy"], r


@pytest.mark.needs_data("co2")
def test_co2_forecast(tmp_path):
    r = _example("co2_forecast", tmp_path)
    # Best naive baseline ~1.7 ppm mean absolute error; the quick LSTM ~0.45.
    assert r["value"] < 0.6 * r["baseline"], r
    assert r["lstm"] < r["last_value"] and r["lstm"] < r["seasonal_naive"], r


@pytest.mark.needs_data("cmudict")
def test_g2p(tmp_path):
    r = _example("g2p", tmp_path)
    # Letters read as their most frequent phoneme: ~47% phoneme errors, ~95% of words wrong;
    # the quick encoder-decoder ~13% and ~47%.
    assert r["value"] < 0.5 * r["baseline"], r
    assert r["wer"] < r["baseline_wer"] - 0.3, r


@pytest.mark.needs_data("digits")
def test_ocr_ctc(tmp_path):
    r = _example("ocr_ctc", tmp_path)
    # A trivial reader gets every character wrong (100%); the quick BiLSTM-CTC ~14%.
    assert r["value"] < 0.4 * r["baseline"], r
    assert r["exact"] > 0.2, r


@pytest.mark.needs_data("chorales")
def test_music(tmp_path):
    r = _example("music", tmp_path)
    # Held-out bits per note: unigram ~5.4, interpolated bigram ~4.2; the quick LSTM ~3.6.
    assert r["value"] < r["baseline"] - 0.3 and r["value"] < r["unigram"] - 1.0, r
    assert r["midi"] and all(Path(f).read_bytes()[:4] == b"MThd" for f in r["midi"]), r


@pytest.mark.parametrize("name", ["char_lm", "sentiment", "tagging", "co2_forecast", "g2p",
                                  "ocr_ctc", "music"])
def test_examples_have_quick_mode_and_docstring(name):
    text = (ROOT / "examples" / f"{name}.py").read_text(encoding="utf-8")
    assert text.startswith('"""') and "--quick" in text
