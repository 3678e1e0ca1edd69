"""Threads and build facts."""
from __future__ import annotations

import operator
from typing import Any, Dict

import numpy as np

from . import _core

try:
    from importlib.metadata import PackageNotFoundError, version as _dist_version
    try:
        __version__ = _dist_version("rnnkit")
    except PackageNotFoundError:  # running from a source tree (PYTHONPATH=python)
        __version__ = "0.1.0+src"
except ImportError:  # pragma: no cover
    __version__ = "0.1.0"


# Far above any machine's cores, and far below what would make OpenMP try to start threads
# the process cannot have (the C++ side takes an int).
_MAX_THREADS = 4096


def set_num_threads(n: int) -> None:
    """Cap the threads rnnkit kernels use (default: OMP_NUM_THREADS, else all cores).

    Kernels still pick fewer threads for small problems, where more would only add overhead.
    """
    if isinstance(n, (bool, np.bool_)):
        raise TypeError(f"set_num_threads: n must be an integer, got {n!r}")
    try:  # any integer type (numpy's too), but not a float or a string that looks like one
        count = operator.index(n)
    except TypeError:
        raise TypeError(f"set_num_threads: n must be an integer, got {type(n).__name__} "
                        f"{n!r}") from None
    if not 1 <= count <= _MAX_THREADS:
        raise ValueError(f"set_num_threads: n must be an integer in [1, {_MAX_THREADS}], "
                         f"got {n!r}")
    _core.set_num_threads(count)


def get_num_threads() -> int:
    """The current cap on kernel threads."""
    return int(_core.get_num_threads())


def build_info() -> Dict[str, Any]:
    """Version, compiler, OpenMP, CPU model and SIMD levels (compiled, supported, in use)."""
    info = dict(_core.build_info())
    info["version"] = __version__
    return info
