"""Threads and build facts."""
from __future__ import annotations

from typing import Any, Dict

from . import _core

try:
    from importlib.metadata import PackageNotFoundError, version as _dist_version
    try:
        __version__ = _dist_version("rnnkit")
    except PackageNotFoundError:  # running from a source tree (PYTHONPATH=python)
        __version__ = "0.1.0+src"
except ImportError:  # pragma: no cover
    __version__ = "0.1.0"


def set_num_threads(n: int) -> None:
    """Cap the threads rnnkit kernels use (default: OMP_NUM_THREADS, else all cores).

    Kernels still pick fewer threads for small problems, where more would only add overhead.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be an integer >= 1, got {n!r}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """The current cap on kernel threads."""
    return int(_core.get_num_threads())


def build_info() -> Dict[str, Any]:
    """Version, compiler, OpenMP, CPU model and SIMD levels (compiled, supported, in use)."""
    info = dict(_core.build_info())
    info["version"] = __version__
    return info
