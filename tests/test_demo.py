"""`python -m rnnkit demo --quick` trains, reports, saves; `python -m rnnkit sample` generates.

One kernel thread, as in test_examples.py: these check behaviour and quality, not speed. Also
here: the demo's model files (rnnkit files with metadata, and the older format) and
``rnnkit.sample`` called with a whole Sequential model.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import rnnkit
from _run_helpers import run
from reference import lstm_forward
from rnnkit import nn
from rnnkit.demo import build_model, load_model, optimizer_path, save_model


def test_demo_quick_then_sample(tmp_path):
    model_path = tmp_path / "demo.npz"
    out, result = run(["-m", "rnnkit", "demo", "--quick", "--threads", "1", "--out",
                       str(model_path)],
                      cwd=tmp_path)
    assert "bits/char" in out and "chars/s" in out
    assert "temperature 0.5" in out and "temperature 1.0" in out
    assert result["value"] < result["baseline"] - 1.0, result       # ~2.4 vs ~4.56
    assert model_path.exists()

    # The file is an rnnkit file: rnnkit.load gives the model, load_metadata the rest.
    model = rnnkit.load(model_path)
    meta = rnnkit.load_metadata(model_path)
    assert [type(m) for m in model] == [nn.Embedding, nn.LSTM, nn.Linear]
    assert model[0].num_embeddings == len(meta["vocab"]) > 60         # Shakespeare's characters
    assert meta["config"]["hidden"] == model[1].hidden_size
    assert meta["history"]["step"][-1] == result["steps"] and meta["quick"] is True

    prompt = "My lord, "             # the text is dialogue; 166 speeches begin with these words
    args = ["-m", "rnnkit", "sample", str(model_path), "--prompt", prompt,
            "--temperature", "0.7", "--length", "60", "--seed", "3"]
    first, _ = run(args, cwd=tmp_path)
    again, _ = run(args, cwd=tmp_path)
    assert first == again                                            # same seed, same text
    # ... and is what rnnkit.sample makes of the loaded model and vocabulary.
    vocab = meta["vocab"]
    out = rnnkit.sample(model, np.array([vocab.index(c) for c in prompt]), 60,
                        temperature=0.7, seed=3)
    assert first.rstrip("\n") == prompt + "".join(vocab[i] for i in out)

    # --resume continues from the saved model (and its history).
    out, result = run(["-m", "rnnkit", "demo", "--quick", "--threads", "1", "--minutes", "0.05",
                       "--resume", str(model_path), "--out", str(tmp_path / "resumed.npz")],
                      cwd=tmp_path)
    assert "resumed" in out and result["steps"] > 0
    # ... and its optimiser: Adam's step count goes on from where the first run stopped.

    def adam_steps(path):
        model, _ = load_model(str(path))
        opt = rnnkit.load(optimizer_path(str(path)),
                          into=rnnkit.optim.Adam(model.parameters(), lr=1e-3))
        return opt.state_dict()["state"]["0"]["step"]

    first_steps = adam_steps(model_path)
    assert first_steps > 0
    # result["steps"] counts all steps, the first run's included; Adam's count must agree
    # (it would restart from the resumed run's own steps if its state had been dropped).
    assert result["steps"] > first_steps
    assert adam_steps(tmp_path / "resumed.npz") == result["steps"]

    # A model file of the older demo format (parameters plus one JSON entry) still samples
    # and resumes; the resumed run writes the new format.
    legacy = tmp_path / "legacy.npz"
    _write_legacy(legacy, model, meta)
    loaded, legacy_meta = load_model(str(legacy))
    assert legacy_meta == meta
    _assert_same_weights(model, loaded)
    assert run(["-m", "rnnkit", "sample", str(legacy), "--prompt", prompt, "--temperature",
                "0.7", "--length", "60", "--seed", "3"], cwd=tmp_path)[0] == first
    out, result = run(["-m", "rnnkit", "demo", "--quick", "--threads", "1", "--minutes", "0.01",
                       "--length", "10", "--resume", str(legacy), "--out",
                       str(tmp_path / "upgraded.npz")], cwd=tmp_path)
    assert rnnkit.load_metadata(tmp_path / "upgraded.npz")["history"]["step"][-1] \
        == result["steps"] > meta["history"]["step"][-1]


def _write_legacy(path, model, meta):
    """The demo's file format before rnnkit.save took metadata, written as it was."""
    np.savez(path, **model.state_dict(), __rnnkit_demo__=np.array(json.dumps(meta)))


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and np.array_equal(sa[k], sb[k]), k


def test_save_load_roundtrip(tmp_path):
    model = build_model(11, 8, 2, 4, seed=1)
    meta = {"vocab": [chr(97 + i) for i in range(11)],
            "config": {"hidden": 8, "layers": 2, "embed": 4}, "history": {}}
    path = str(tmp_path / "m.npz")
    save_model(model, path, meta)
    loaded, meta2 = load_model(path)
    assert meta2 == meta
    _assert_same_weights(model, loaded)
    # one convention with the library: the same file through rnnkit's own functions
    assert rnnkit.load_metadata(path) == meta
    _assert_same_weights(model, rnnkit.load(path))
    # the legacy format
    _write_legacy(tmp_path / "old.npz", model, meta)
    loaded, meta3 = load_model(str(tmp_path / "old.npz"))
    assert meta3 == meta
    _assert_same_weights(model, loaded)


def test_load_model_names_a_file_that_is_not_a_character_model(tmp_path):
    path = tmp_path / "plain.npz"
    rnnkit.save(nn.Linear(3, 2), path)                   # an rnnkit file without a vocabulary
    with pytest.raises(ValueError, match="plain.npz has no character vocabulary"):
        load_model(str(path))


# ---------------------------------------------------------------------- rnnkit.sample(model)
def _lm(dropout: bool = False):
    layers = [nn.Embedding(7, 3, seed=0), nn.LSTM(3, 5, batch_first=True, seed=1)]
    if dropout:
        layers.append(nn.Dropout(0.5))
    return nn.Sequential(*layers, nn.Linear(5, 7, seed=2))


def test_sample_takes_a_sequential_model_whole():
    """rnnkit.sample(model, prime, length) with model = Sequential(Embedding, LSTM, [Dropout,]
    Linear): greedy decoding matches a plain-numpy LSTM run over the growing sequence."""
    model = _lm(dropout=True)
    w = model.state_dict()
    prime = np.array([3, 1, 4])
    tokens = list(prime)
    for _ in range(6):
        x = w["0.weight"].astype(np.float64)[tokens][:, None]          # (T, 1, E)
        y, _, _, _ = lstm_forward(x, None, None, w["1.weight_ih_l0"], w["1.weight_hh_l0"],
                                  w["1.bias_ih_l0"], w["1.bias_hh_l0"])
        logits = w["3.weight"] @ y[-1, 0] + w["3.bias"]               # dropout: off in eval
        tokens.append(int(np.argmax(logits)))
    got = rnnkit.sample(model, prime, 6, temperature=0.0)
    np.testing.assert_array_equal(got, tokens[3:])
    assert model.training                                             # the mode comes back
    # by name, too
    np.testing.assert_array_equal(rnnkit.sample(model, prime=prime, length=6, temperature=0.0),
                                  tokens[3:])


def test_sample_sequential_and_unpacked_forms_agree():
    model = _lm()
    prime = np.array([[1, 2], [5, 0]])
    np.testing.assert_array_equal(rnnkit.sample(model, prime, 9, temperature=1.3, seed=4),
                                  rnnkit.sample(*model, prime, 9, temperature=1.3, seed=4))


def test_sample_explains_a_model_it_cannot_use():
    prime = np.array([1, 2])
    with pytest.raises(TypeError, match=r"Sequential\(Embedding, .*got Sequential\(LSTM, Linear"):
        rnnkit.sample(nn.Sequential(nn.LSTM(3, 5), nn.Linear(5, 7)), prime, 4)
    many_to_one = nn.Sequential(nn.Embedding(7, 3), nn.LSTM(3, 5), nn.Last(), nn.Linear(5, 7))
    with pytest.raises(ValueError, match="layer 2 is Last"):
        rnnkit.sample(many_to_one, prime, 4)
    with pytest.raises(TypeError, match="missing length"):
        rnnkit.sample(_lm(), prime)
    with pytest.raises(TypeError, match="too many positional"):
        rnnkit.sample(_lm(), prime, 4, 5)
    with pytest.raises(TypeError, match=r"sample\(model, prime, length\)"):
        rnnkit.sample(nn.Embedding(7, 3), nn.LSTM(3, 5), prime, 4)     # the head left out
