"""The examples' checkpoints follow the demo's convention: ``rnnkit.load(path)`` returns the model
and ``rnnkit.load_metadata(path)`` what using it needs (vocabulary, labels, input scaling), and
a character model among them works with ``python -m rnnkit sample``.

test_examples.py runs every example for its quality; here one fast example (co2_forecast,
seconds) runs end to end, and the shared checkpoint writer is checked directly.
"""
from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

import rnnkit
from _run_helpers import ROOT, run
from rnnkit import nn

EXAMPLES = ("char_lm", "sentiment", "tagging", "co2_forecast", "g2p", "ocr_ctc", "music")


def _shared():
    """examples/_shared.py as a module (the examples import it as a sibling script)."""
    spec = importlib.util.spec_from_file_location("rnnkit_examples_shared",
                                                  ROOT / "examples" / "_shared.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_save_checkpoint_stores_the_model_and_its_metadata(tmp_path, capsys):
    model = nn.Sequential(nn.Embedding(4, 3, seed=0), nn.GRU(3, 5, batch_first=True, seed=1),
                          nn.Linear(5, 4, seed=2))
    path = tmp_path / "m.npz"
    meta = {"vocab": ["a", "b", " ", "\n"], "example": "test", "result": {"value": 1.5}}
    _shared().save_checkpoint(model, str(path), meta)
    assert f"saved {path}" in capsys.readouterr().out
    assert rnnkit.load_metadata(path) == meta
    loaded = rnnkit.load(path)
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and np.array_equal(a, b), k


def test_a_character_checkpoint_samples_from_the_command_line(tmp_path):
    vocab = list("abc \n")
    model = nn.Sequential(nn.Embedding(5, 4, seed=3), nn.LSTM(4, 6, batch_first=True, seed=4),
                          nn.Linear(6, 5, seed=5))
    path = tmp_path / "char.npz"
    _shared().save_checkpoint(model, str(path), {"vocab": vocab})
    text, _ = run(["-m", "rnnkit", "sample", str(path), "--prompt", "ab", "--length", "25",
                   "--temperature", "0.9", "--seed", "7"], cwd=tmp_path)
    tokens = rnnkit.sample(model, np.array([0, 1]), 25, temperature=0.9, seed=7)
    assert text.rstrip("\n") == "ab" + "".join(vocab[i] for i in tokens)


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_saves_metadata(name):
    source = (ROOT / "examples" / f"{name}.py").read_text(encoding="utf-8")
    calls = re.findall(r"save_checkpoint\(model, args\.out, \{", source)
    assert len(calls) == 1, f"{name}.py must save its model with its metadata"


def test_co2_checkpoint_metadata_reproduces_the_forecasts(tmp_path):
    """Rebuild the test forecasts from the saved model and metadata alone (lookback, horizon,
    scale), and score them as the example's docstring says: the same error it reported."""
    from rnnkit.datasets import co2
    path = tmp_path / "co2.npz"
    _, result = run([str(ROOT / "examples" / "co2_forecast.py"), "--quick", "--threads", "1",
                     "--out", str(path)], cwd=tmp_path)
    meta = rnnkit.load_metadata(path)
    model = rnnkit.load(path)
    assert meta["result"]["lstm"] == result["lstm"]
    lookback, horizon, scale = meta["lookback"], meta["horizon"], meta["scale_ppm"]

    data = co2()
    years = data.dates.astype("datetime64[Y]").astype(int) + 1970
    origins = np.arange(lookback - 1, len(data.ppm) - horizon)
    test = origins[years[origins] >= 1995]                   # forecasts made from 1995 on
    past = data.ppm[test[:, None] + np.arange(-lookback + 1, 1)]
    future = test[:, None] + np.arange(1, horizon + 1)
    x = ((past - data.ppm[test][:, None]) / scale)[..., None].astype(np.float32)
    model.eval()
    forecast = data.ppm[test][:, None] + scale * model(x)
    scored = ~data.missing[future]
    mae = float(np.abs(forecast - data.ppm[future])[scored].mean())
    # float32 model outputs; the example predicts in batches, here in one call
    assert mae == pytest.approx(result["lstm"], rel=1e-4)
