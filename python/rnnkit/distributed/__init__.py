"""Data-parallel training over MPI (mpi4py): past one process, past one machine.

Install the extra and launch with MPI's own launcher::

    pip install "rnnkit[mpi]"                      # mpi4py + the MPICH wheels from PyPI
    mpiexec -n 2 python examples/char_lm.py --distributed

In a script, ``Trainer(..., distributed=True)`` is all it takes: each of the N ranks trains on
its share of every global batch of ``N * batch_size`` samples, and the result is that of one
process with the N-times batch (see :mod:`.data_parallel` for the contract and
:mod:`.buckets` for how gradients are summed). Only rank 0 prints and writes checkpoints.

Functions: :func:`init` (optional; the Trainer calls it), :func:`rank`, :func:`world_size`,
:func:`is_main`. ``import rnnkit.distributed`` alone does not import mpi4py or start MPI.
"""
from ._comm import DistributedError, init, is_initialized, is_main, rank, world_size
from .buckets import GradientBuckets
from .data_parallel import DataParallel

__all__ = ["init", "rank", "world_size", "is_main", "is_initialized", "DistributedError",
           "DataParallel", "GradientBuckets"]
