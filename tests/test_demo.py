"""`python -m rnnkit demo --quick` trains, reports, saves; `python -m rnnkit sample` generates.

One kernel thread, as in test_examples.py: these check behaviour and quality, not speed.
"""
from __future__ import annotations

import numpy as np

from _run_helpers import run
from rnnkit.demo import build_model, load_model, save_model


def test_demo_quick_then_sample(tmp_path):
    model_path = tmp_path / "demo.npz"
    out, result = run(["-m", "rnnkit", "demo", "--quick", "--threads", "1", "--out",
                       str(model_path)],
                      cwd=tmp_path)
    assert "bits/char" in out and "chars/s" in out
    assert "temperature 0.5" in out and "temperature 1.0" in out
    assert result["value"] < result["baseline"] - 1.0, result       # ~2.4 vs ~4.56
    assert model_path.exists()

    args = ["-m", "rnnkit", "sample", str(model_path), "--prompt", "KING. ",
            "--temperature", "0.7", "--length", "60", "--seed", "3"]
    first, _ = run(args, cwd=tmp_path)
    again, _ = run(args, cwd=tmp_path)
    assert first.startswith("KING. ") and len(first.rstrip("\n")) >= len("KING. ") + 50
    assert first == again                                            # same seed, same text

    # --resume continues from the saved model (and its history).
    out, result = run(["-m", "rnnkit", "demo", "--quick", "--threads", "1", "--minutes", "0.05",
                       "--resume", str(model_path), "--out", str(tmp_path / "resumed.npz")],
                      cwd=tmp_path)
    assert "resumed" in out and result["steps"] > 0
    # ... and its optimiser: Adam's step count goes on from where the first run stopped.
    import rnnkit
    from rnnkit.demo import optimizer_path

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


def test_save_load_roundtrip(tmp_path):
    model = build_model(11, 8, 2, 4, seed=1)
    meta = {"vocab": [chr(97 + i) for i in range(11)],
            "config": {"hidden": 8, "layers": 2, "embed": 4}, "history": {}}
    path = str(tmp_path / "m.npz")
    save_model(model, path, meta)
    loaded, meta2 = load_model(path)
    assert meta2 == meta
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and np.array_equal(a, b)


def test_selfcheck_still_default():
    from rnnkit.__main__ import main
    assert main(["no-such-command"]) == 2
