"""Where rnnkit comes from, and the environment of the subprocesses.

The suite measures whatever rnnkit ``import rnnkit`` finds. From a source checkout without an
installed package, it falls back to the in-tree build (``python/rnnkit`` after
``bash .ci/dev-build``), copied first to a temporary directory: a rebuild of the tree while the
suite runs would otherwise replace the shared library under the running workers (a crash), or
have the 1- and 2-thread runs measure different builds.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Optional

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_TREE = REPO_ROOT / "python"

# Every thread-count knob a library in this process might read. They must be set before
# numpy (OpenBLAS/MKL), torch or rnnkit (OpenMP) is imported, because the BLAS and OpenMP
# runtimes size their pools at load time; that is why each thread count runs in its own
# subprocess instead of switching in place.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def rnnkit_source_path() -> Optional[Path]:
    """The in-tree package directory to add to sys.path, or None if rnnkit is installed."""
    if importlib.util.find_spec("rnnkit") is not None:
        return None
    if (SOURCE_TREE / "rnnkit" / "__init__.py").is_file():
        return SOURCE_TREE
    return None


def snapshot_source_tree() -> Optional[Path]:
    """Copy the in-tree package (if that is what would be imported) and return the copy's
    parent directory, to be put on the workers' PYTHONPATH; None when rnnkit is installed.

    The copy lives until the process exits (the caller removes it)."""
    src = rnnkit_source_path()
    if src is None:
        return None
    dest = Path(tempfile.mkdtemp(prefix="rnnkit-bench-snapshot-"))
    shutil.copytree(src / "rnnkit", dest / "rnnkit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def child_env(threads: int, rnnkit_parent: Optional[Path] = None) -> Dict[str, str]:
    """The environment of a subprocess that runs with ``threads`` threads everywhere.

    ``rnnkit_parent``: a directory holding the ``rnnkit`` package to import (a snapshot of
    the source tree), or None for whatever the interpreter finds."""
    env = dict(os.environ)
    for var in THREAD_VARIABLES:
        env[var] = str(threads)
    paths = [str(REPO_ROOT)]
    if rnnkit_parent is not None:
        paths.append(str(rnnkit_parent))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def write_results(path: "str | Path", info: Dict[str, object], results: object) -> None:
    """results as JSON at path (its folder made if need be), with the CPU and SIMD level of
    rnnkit's build_info() ``info`` beside them."""
    import json
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpu": info["cpu_model"], "simd": info["simd"],
                               "results": results}, indent=1))
