"""A bounded run of the API fuzz (tests/fuzz_api.py); benchmarks/fuzz_api.py runs it longer."""
import numpy as np

import fuzz_api


def test_fuzz_ops_and_layers():
    findings = fuzz_api.run(cases=6000, seed=20261202, time_limit=30.0)
    assert findings.cases >= 1000, findings.summary()
    assert findings.valid > 300 and findings.rejected > 300, findings.summary()
    assert not findings.problems, findings.summary() + "\n" + "\n".join(findings.problems[:20])


def test_fuzz_finds_a_planted_error(monkeypatch):
    """The harness can fail: a GRU forward that is off by 1e-3 and an LSTM forward that accepts
    any x are both reported."""
    real_gru, real_lstm = fuzz_api.ops.gru_forward, fuzz_api.ops.lstm_forward

    def off_gru(*args, **kw):
        y, *rest = real_gru(*args, **kw)
        return (y + np.asarray(1e-3, y.dtype), *rest)

    def lax_lstm(x, *args, **kw):
        try:
            return real_lstm(x, *args, **kw)
        except ValueError:
            return None, None, None, None

    monkeypatch.setattr(fuzz_api.ops, "gru_forward", off_gru)
    monkeypatch.setattr(fuzz_api.ops, "lstm_forward", lax_lstm)
    findings = fuzz_api.run(cases=2000, seed=1)
    text = "\n".join(findings.problems)
    assert "ops gru" in text and "y differs from the reference" in text
    assert "ops lstm" in text and "invalid call accepted" in text
