"""RNNKIT_SIMD lowers the SIMD level chosen at import, and only lowers it.

The exactness tests switch levels in-process (rnnkit._core.force_simd); this checks the
variable users set, in fresh interpreters, with a kernel run against the default level.
"""
import json
import os
import subprocess
import sys

import pytest

import rnnkit

_PROBE = """
import json, numpy as np, rnnkit
rng = np.random.default_rng(0)
x = rng.standard_normal((7, 3, 5))
w_ih, w_hh = rng.standard_normal((68, 5)) * 0.3, rng.standard_normal((68, 17)) * 0.3
y = rnnkit.ops.lstm_forward(x, None, None, w_ih, w_hh, None, None, training=False)[0]
print(json.dumps({"simd": rnnkit.build_info()["simd"], "y": y.ravel().tolist()}))
"""


def _probe(level):
    env = dict(os.environ)
    env.pop("RNNKIT_SIMD", None)
    if level is not None:
        env["RNNKIT_SIMD"] = level
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("level", rnnkit.build_info()["simd_available"])
def test_variable_selects_each_available_level(level):
    got = _probe(level)
    assert got["simd"] == level
    reference = _probe(None)   # best level; float64 results agree to rounding
    diff = max(abs(a - b) for a, b in zip(got["y"], reference["y"]))
    assert diff < 1e-12, f"{level} vs {reference['simd']}: max abs diff {diff:.3e}"


def test_variable_cannot_raise_the_level_and_ignores_unknown_names():
    best = _probe(None)["simd"]
    assert _probe("avx512")["simd"] == best   # the top level never exceeds what the CPU has
    assert _probe("sse9")["simd"] == best
