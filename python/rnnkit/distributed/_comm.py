"""The MPI communicator: start-up, who is who, waiting with a deadline, dying together.

mpi4py is imported on the first :func:`init` only: importing ``mpi4py.MPI`` starts MPI, and
the core install (numpy only) must never need it. Everything here is thin on purpose; the
transport is MPI's (shared memory on one machine, the network between machines).

Failure behaviour, the reason for most of this file:

- An uncaught exception on any rank prints its traceback and calls ``MPI_Abort``, which makes
  the launcher (``mpiexec``) kill every rank; without it the other ranks would wait forever in
  their next collective. A rank killed by a signal is noticed by the launcher itself.
- Every wait here has a deadline (``init(timeout=...)``): a rank that is alive but never joins
  (stuck, or it left ``fit`` early) makes the others raise :class:`DistributedError` naming the
  operation, and that, uncaught, aborts the job as above.
"""
from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Any, Optional

import numpy as np

from .._runtime import get_num_threads, set_num_threads

# Seconds a rank waits for the others in one collective before it gives up. A wait covers the
# slowest rank's compute since the last collective (a forward, or a validation pass), so it
# must be far longer than a step; RNNKIT_MPI_TIMEOUT overrides it for the whole job.
DEFAULT_TIMEOUT = 300.0


class DistributedError(RuntimeError):
    """A collective did not complete: a rank died, is stuck, or the ranks disagree."""


class _State:
    comm: Any = None          # mpi4py.MPI.Comm once init() ran
    mpi: Any = None           # the mpi4py.MPI module
    timeout: float = DEFAULT_TIMEOUT
    previous_hook: Any = None


_state = _State()


def _import_mpi() -> Any:
    try:
        from mpi4py import MPI  # noqa: PLC0415 - starts MPI: only on demand
    except ImportError as exc:
        raise ImportError(
            "rnnkit.distributed needs mpi4py and an MPI library: pip install 'rnnkit[mpi]' "
            "(mpi4py and the mpich wheels from PyPI), then launch with "
            "mpiexec -n 2 python your_script.py") from exc
    return MPI


def init(comm: Any = None, *, timeout: Optional[float] = None) -> None:
    """Start MPI (if the launcher has not already) and make ``comm`` rnnkit's communicator.

    Args:
        comm: an ``mpi4py.MPI.Comm``; default ``MPI.COMM_WORLD``. Calling ``init`` again with
            another communicator switches to it.
        timeout: seconds any collective may wait for the other ranks before raising
            :class:`DistributedError` (default ``RNNKIT_MPI_TIMEOUT`` or 300).

    Also installs an exception hook that aborts the whole job when an exception reaches the
    top level of any rank, so that the others never hang waiting for it.
    """
    mpi = _import_mpi()
    if timeout is None:
        env = os.environ.get("RNNKIT_MPI_TIMEOUT", "")
        timeout = float(env) if env else DEFAULT_TIMEOUT
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    comm = mpi.COMM_WORLD if comm is None else comm
    if not isinstance(comm, mpi.Comm):
        raise TypeError(f"comm must be an mpi4py.MPI.Comm, got {type(comm).__name__}")
    # MPI errors raise mpi4py's exception (then the hook below) instead of aborting silently.
    comm.Set_errhandler(mpi.ERRORS_RETURN)
    _state.mpi, _state.comm, _state.timeout = mpi, comm, float(timeout)
    if _state.previous_hook is None:
        _state.previous_hook = sys.excepthook
        sys.excepthook = _abort_on_uncaught
    _share_cores(comm, mpi)


def _share_cores(comm: Any, mpi: Any) -> None:
    """With k ranks on one machine and no thread count chosen (OMP_NUM_THREADS unset, the
    default cap of all cores still in place), give each rank cores / k kernel threads: k ranks
    each starting a thread per core would oversubscribe every core k times."""
    if "OMP_NUM_THREADS" in os.environ:
        return
    local = comm.Split_type(mpi.COMM_TYPE_SHARED)
    try:
        k = local.Get_size()
    finally:
        local.Free()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else (os.cpu_count() or 1)
    if k > 1 and get_num_threads() >= cores:
        set_num_threads(max(1, cores // k))


def _abort_on_uncaught(kind: Any, value: Any, tb: Any) -> None:
    traceback.print_exception(kind, value, tb)
    comm = _state.comm
    if comm is not None and comm.Get_size() > 1:
        sys.stderr.write(f"rnnkit.distributed: rank {comm.Get_rank()} failed; aborting all "
                         f"{comm.Get_size()} ranks\n")
        sys.stderr.flush()
        comm.Abort(1)


def is_initialized() -> bool:
    return _state.comm is not None


def comm() -> Any:
    """The communicator; :func:`init` runs first if it has not."""
    if _state.comm is None:
        init()
    return _state.comm


def mpi() -> Any:
    comm()
    return _state.mpi


def rank() -> int:
    """This process's rank, 0 ... world_size() - 1 (0 when MPI is not initialised)."""
    return 0 if _state.comm is None else _state.comm.Get_rank()


def world_size() -> int:
    """The number of ranks (1 when MPI is not initialised)."""
    return 1 if _state.comm is None else _state.comm.Get_size()


def is_main() -> bool:
    """Whether this is rank 0, the one that prints, saves checkpoints and keeps History."""
    return rank() == 0


def wait(request: Any, what: str) -> None:
    """Complete ``request`` (a non-blocking collective) or raise DistributedError after the
    timeout. Polls: spinning for the first millisecond (a step's collectives usually finish
    in microseconds), then sleeping between tests so that a rank waiting for a slower one
    leaves the cores to it."""
    start = time.perf_counter()
    deadline = start + _state.timeout
    pause = 0.0
    while not request.Test():
        now = time.perf_counter()
        if now > deadline:
            raise DistributedError(
                f"rank {rank()} of {world_size()}: {what} did not complete within "
                f"{_state.timeout:g} s; another rank died, is stuck, or stopped taking part "
                f"(set the limit with rnnkit.distributed.init(timeout=...) or "
                f"RNNKIT_MPI_TIMEOUT)")
        if now - start > 1e-3:
            pause = min(max(pause * 2, 5e-5), 2e-3)
            time.sleep(pause)


def allgather_rows(row: np.ndarray, what: str) -> np.ndarray:
    """(world_size, n) float64: every rank's ``row`` (n,), in rank order, on every rank. Summing
    it along axis 0 gives all ranks bitwise the same total, in a fixed order."""
    row = np.ascontiguousarray(row, np.float64)
    out = np.empty((world_size(), row.size), np.float64)
    wait(comm().Iallgather(row, out), what)
    return out


def broadcast(a: np.ndarray, what: str) -> None:
    """Overwrite the contiguous array ``a`` with rank 0's, in place."""
    wait(comm().Ibcast(a, root=0), what)


def barrier(what: str = "barrier") -> None:
    wait(comm().Ibarrier(), what)
