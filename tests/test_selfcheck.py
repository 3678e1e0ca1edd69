"""`python -m rnnkit` (the self-check) runs every compiled cell and passes, and fails when a
kernel is wrong."""
import subprocess
import sys

import numpy as np

from _run_helpers import child_env

from rnnkit import _selfcheck
from rnnkit._cellspec import CELLS


def test_selfcheck_passes_and_covers_every_cell(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rnnkit"], cwd=tmp_path, env=child_env(),
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "self-check passed" in proc.stdout
    for name in CELLS:
        for dtype in ("float32", "float64"):
            assert any(line.split()[:2] == [name, dtype] and line.endswith("ok")
                       for line in proc.stdout.splitlines()), (name, dtype, proc.stdout)


def test_selfcheck_fails_on_a_wrong_gradient(monkeypatch, capsys):
    real = _selfcheck.ops.sequence_backward

    def off(*args, **kw):
        dx, dstate0, weights = real(*args, **kw)
        return dx * np.float64(1.01), dstate0, weights
    monkeypatch.setattr(_selfcheck.ops, "sequence_backward", off)
    assert _selfcheck.main() == 1
    assert "FAIL" in capsys.readouterr().out
