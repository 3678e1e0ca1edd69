"""Every ```python snippet of README.md runs as written, in a fresh process.

One change is made, and only for time: a loop count listed in _FASTER is lowered (the README's
training loop takes 1000 steps; two show that it runs). A snippet that reads a data set of the
examples extra runs where that extra is installed (tests/conftest.py, needs_data); one that
trains with ``distributed=True`` runs as the README says, under ``mpiexec -n 2``, where the mpi
extra is installed (needs_mpi).
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from _run_helpers import ROOT, child_env
from conftest import mpiexec

README = (ROOT / "README.md").read_text(encoding="utf-8")
SNIPPETS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
_FASTER = {"range(1000)": "range(2)"}
_DATA = {"shakespeare(": "shakespeare", "tweets_sentiment(": "tweets", "co2(": "co2"}
# Optional packages a snippet imports (each an extra, or a peer the README names).
_MODULES = ("torch", "onnx", "onnxruntime", "safetensors")


def _distributed(code: str) -> bool:
    return "distributed=True" in code


def _marks(code: str):
    marks = [pytest.mark.needs_data(name) for call, name in _DATA.items() if call in code]
    return marks + ([pytest.mark.needs_mpi] if _distributed(code) else [])


@pytest.mark.parametrize("code", [pytest.param(c, marks=_marks(c), id=f"snippet{i}")
                                  for i, c in enumerate(SNIPPETS)])
def test_readme_snippet_runs(code, tmp_path):
    for name in _MODULES:
        if re.search(rf"\b(import|from) {name}\b|rnnkit\.{name}\b", code):
            pytest.importorskip(name)
    for slow, fast in _FASTER.items():
        code = code.replace(slow, fast)
    launch = [mpiexec(), "-n", "2"] if _distributed(code) else []
    proc = subprocess.run(launch + [sys.executable, "-c", code], cwd=tmp_path, env=child_env(),
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"snippet failed:\n{code}\nstderr:\n{proc.stderr[-3000:]}"


def test_readme_snippets_found():
    """The pattern above still finds the README's layer-API, Trainer and ops snippets."""
    assert len(SNIPPETS) >= 3 and any("Trainer(" in c for c in SNIPPETS)
