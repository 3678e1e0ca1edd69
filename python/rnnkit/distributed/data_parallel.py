"""DataParallel: what ``Trainer(..., distributed=True)`` does differently on each rank.

The contract: N ranks with ``batch_size=B`` each train as one process would with ``N * B``.

- Every rank draws the same epoch permutation (same seed, same generator state: checked at
  the start of ``fit``), takes the same global batch of N * B samples and keeps its own
  share (:meth:`shard`); a last, short global batch is split as evenly as it goes.
- After the forward, one small all-gather sums every rank's loss, target count and metrics
  (and whether Ctrl-C arrived), so all ranks see the same batch and epoch metrics, the same
  non-finite-loss decision and the same stop.
- Each rank's loss gradient is weighted by its share of the counted targets, so that the
  plain sum of the gradients over ranks (:class:`~.buckets.GradientBuckets`) is the gradient
  of the global batch's mean loss, however unevenly targets were split or ignored.
- Summed gradients are bitwise the same on every rank, so clipping, the optimiser step and
  the overflow guard agree everywhere; a checksum of the parameters at each epoch's end
  proves it (:meth:`check_in_sync`).
"""
from __future__ import annotations

import hashlib
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _comm
from .buckets import DEFAULT_BUCKET_BYTES, GradientBuckets


def _digest(arrays: Sequence[np.ndarray]) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.view(np.uint8).reshape(-1).data if a.size else b"")
    return h.digest()


class DataParallel:
    """The per-rank half of data-parallel training; the Trainer owns one when distributed."""

    def __init__(self, model: Any, *, bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> None:
        comm = _comm.comm()          # starts MPI (init) if the script has not
        mpi = _comm.mpi()
        if mpi.Query_thread() < mpi.THREAD_SERIALIZED:
            raise RuntimeError(
                "rnnkit.distributed needs MPI initialised with at least THREAD_SERIALIZED (its "
                "gradient sums progress on a helper thread); mpi4py asks for THREAD_MULTIPLE "
                "unless mpi4py.rc.thread_level was lowered before importing mpi4py.MPI")
        self.model = model
        self.rank, self.world = comm.Get_rank(), comm.Get_size()
        self.bucket_bytes = bucket_bytes
        self._buckets: Optional[GradientBuckets] = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def buckets(self) -> Optional[GradientBuckets]:
        """The gradient buckets of the current fit (None before the first ``begin_fit``); its
        ``last_wait_s`` and ``last_comm_s`` time the last step's gradient sum."""
        return self._buckets

    # ------------------------------------------------------------------ start of fit
    def begin_fit(self, trainer: Any, run: Any = ()) -> None:
        """Rank 0's parameters to every rank, gradient buckets for the current parameters,
        and a check that every rank starts from the same trainer state (epoch, step,
        shuffling generator) and ``run`` (the fit's data shape and arguments): ranks that
        differ there would draw different batches and wait for each other forever."""
        for i, p in enumerate(self.model.parameters()):
            if not (p.data.flags.c_contiguous and p.data.flags.writeable):
                p.data = np.array(p.data, order="C")
            _comm.broadcast(p.data, f"broadcasting parameter {i} from rank 0")
            mark = getattr(p, "mark_changed", None)
            if mark is not None:   # layers that cache packed weights look at it
                mark()
        # Built anew each fit: parameters may have been added, frozen or replaced since.
        self.close()
        self._buckets = GradientBuckets(self.model, self.bucket_bytes)
        state = trainer.state_dict()
        fingerprint = repr((state["epoch"], state["global_step"], state["rng"], run)).encode()
        self._same_everywhere([np.frombuffer(fingerprint, np.uint8)],
                              "the trainer state (epoch, step count, shuffling generator) or "
                              "the fit's data shape and arguments",
                              "pass the same data and arguments on every rank, and load the "
                              "same checkpoint on every rank or none")

    # ------------------------------------------------------------------ batches
    def global_batch(self, batch_size: int) -> int:
        return batch_size * self.world

    def shard(self, idx: np.ndarray) -> np.ndarray:
        """This rank's share of one global batch's sample indices (contiguous, in rank
        order, sizes differing by at most one)."""
        n = idx.shape[0]
        base, extra = divmod(n, self.world)
        start = self.rank * base + min(self.rank, extra)
        return idx[start:start + base + (self.rank < extra)]

    def shard_range(self, n: int) -> Tuple[int, int]:
        """[start, stop) of this rank's share of n samples (for evaluation)."""
        base, extra = divmod(n, self.world)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (self.rank < extra)

    # ------------------------------------------------------------------ per step
    def reduce_totals(self, loss: float, count: float, metrics: Dict[str, List[float]],
                      flag: bool, what: str) -> Tuple[float, float, Dict[str, List[float]], bool]:
        """Sum (loss total, count, each metric's (total, n)) over ranks, in rank order, and
        OR ``flag``; every rank gets bitwise the same result. Every rank must have the same
        metric names (they come from the same loss)."""
        names = sorted(metrics)
        row = [loss, count, float(flag)] + [v for k in names for v in metrics[k]]
        rows = _comm.allgather_rows(np.array(row, np.float64), what)
        total = rows.sum(axis=0)
        out = {k: [float(total[3 + 2 * i]), float(total[4 + 2 * i])]
               for i, k in enumerate(names)}
        return float(total[0]), float(total[1]), out, bool(total[2] > 0)

    def any(self, flag: bool, what: str) -> bool:
        """Whether ``flag`` is set on any rank (the same answer everywhere)."""
        return bool(_comm.allgather_rows(np.array([float(flag)]), what).max() > 0)

    def backward(self, run_backward: Any) -> None:
        """``run_backward()`` (this rank's backward, or None for a rank with no sample in
        this batch) inside the bucket protocol; returns when the summed gradients are in
        every trainable parameter's ``grad`` on every rank."""
        buckets = self._buckets
        if buckets is None:
            raise RuntimeError("DataParallel.backward before begin_fit")
        buckets.begin()
        if run_backward is not None:
            run_backward()
        buckets.finish()

    # ------------------------------------------------------------------ checks
    def check_in_sync(self, epoch: int) -> None:
        """Raise DistributedError unless every rank holds bitwise the same parameters."""
        self._same_everywhere([p.data for p in self.model.parameters()],
                              f"the parameters after epoch {epoch + 1}",
                              "this is a bug in rnnkit.distributed or a rank-dependent change "
                              "to the model (a callback that edits parameters on one rank)")

    def _same_everywhere(self, arrays: Sequence[np.ndarray], what: str, hint: str) -> None:
        digest = np.frombuffer(_digest(arrays), np.uint8).astype(np.float64)
        rows = _comm.allgather_rows(digest, f"comparing {what} across ranks")
        differ = [r for r in range(self.world) if not np.array_equal(rows[r], rows[0])]
        if differ:
            raise _comm.DistributedError(
                f"rank(s) {differ} differ from rank 0 in {what}; {hint}")

    def close(self) -> None:
        if self._buckets is not None:
            self._buckets.close()
            self._buckets = None
