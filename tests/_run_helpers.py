"""Run a script or ``python -m rnnkit`` in a subprocess against the rnnkit under test."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import rnnkit

ROOT = Path(__file__).resolve().parent.parent


def child_env() -> Dict[str, str]:
    """The environment with the tested rnnkit first on PYTHONPATH (absolute), so a child
    process in another directory imports the same package as the tests."""
    env = dict(os.environ)
    pkg_parent = str(Path(rnnkit.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([pkg_parent] + [p for p in
                                         env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("MPLBACKEND", "Agg")
    return env


def run(args: List[str], cwd: Path, timeout: float = 240) -> Tuple[str, Dict[str, Any]]:
    """Run ``python args...``; returns (stdout, the parsed ``RESULT {json}`` line or {})."""
    proc = subprocess.run([sys.executable] + args, cwd=cwd, env=child_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (f"{' '.join(args)} exited with {proc.returncode}\n"
                                  f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    result: Dict[str, Any] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
    return proc.stdout, result
