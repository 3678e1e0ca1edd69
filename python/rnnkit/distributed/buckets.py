"""Gradient buckets: the parameters' gradients as views into a few flat buffers, summed over
ranks one buffer at a time while the backward pass goes on.

Layout. The trainable parameters are grouped by the top-level layer of a ``Sequential`` that
owns them, in backward order (last layer first), and consecutive layers share a bucket until
it holds ``bucket_bytes``. Each bucket is one contiguous buffer of the parameters' dtype, and
every ``Parameter.grad`` is made a view into it, so the kernels accumulate straight into the
buffer that MPI sends: no packing copy. (A ``grad`` that something replaced, e.g.
``zero_grad(set_to_none=True)``, is put back into its view before the next backward.)

Order and sameness. A bucket is summed by ``Reduce_scatter_block`` (each rank sums one slice
of the buffer, in MPI's fixed order for a given number of ranks) and then ``Allgather`` (every
rank copies every slice). Every rank therefore holds bitwise the same sums, which a plain
``Allreduce`` does not promise past two ranks, at the same cost as a ring all-reduce.

Overlap. MPICH moves a non-blocking collective only while some thread is inside MPI, and the
backward kernels run in C++ for long stretches. So a progress thread starts each bucket as
soon as the layers it holds have finished their backward (``Sequential`` layer hooks) and
tests the pending requests every half millisecond while the backward runs, sleeping in
between: the summing of the last layers' gradients hides behind the first layers' backward.
Once the backward is done it tests without pausing (MPICH moves a large message one chunk per
test), so what was not hidden completes at the transport's speed. Parameters used by more than
one layer, or owned by no top-level layer, go in a last bucket summed after the backward.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from . import _comm

DEFAULT_BUCKET_BYTES = 4 << 20
_POLL_SECONDS = 5e-4
# How long the progress thread polls without sleeping once the backward is done; past it (a
# rank far behind, a stuck one) it goes back to gentle polling until the deadline.
_SPIN_SECONDS = 0.25


class _Bucket:
    """One flat buffer and the parameters whose gradients are views into it."""

    def __init__(self, params: Sequence[Any], layers: Sequence[int], world: int) -> None:
        self.params = list(params)
        self.layers = set(layers)          # the top-level layer indices it waits for
        dtype = self.params[0].data.dtype
        n = sum(p.data.size for p in self.params)
        padded = -(-n // world) * world    # Reduce_scatter_block needs equal slices
        self.buffer = np.zeros(padded, dtype)
        self.views: List[np.ndarray] = []
        offset = 0
        for p in self.params:
            view = self.buffer[offset:offset + p.data.size].reshape(p.data.shape)
            self.views.append(view)
            offset += p.data.size
        self.slice = padded // world
        self.stage = 0                     # 0 waiting, 1 reduce-scatter, 2 allgather, 3 done
        self.request: Any = None
        self.comm: Any = None              # its own communicator (see GradientBuckets)

    def attach(self) -> None:
        """Make each parameter's ``grad`` its view again where something replaced it, keeping
        the gradient it held."""
        for p, view in zip(self.params, self.views):
            if p.grad is not view:
                if p.grad is None:
                    view[...] = 0
                else:
                    np.copyto(view, p.grad)
                p.grad = view


def _owners(model: Any) -> Optional[List[List[Any]]]:
    """The trainable parameters of each top-level layer of a Sequential (None otherwise)."""
    layers = getattr(model, "_modules", None)
    if not hasattr(model, "register_layer_backward_hook") or layers is None:
        return None
    return [[p for p in layer.parameters() if p.requires_grad] for layer in layers.values()]


class GradientBuckets:
    """Sums the gradients of ``model``'s trainable parameters over the ranks.

    Use per step: :meth:`begin` before the backward (reattaches views, arms the hooks),
    the backward itself, then :meth:`finish` (starts what is left, waits for everything).
    :meth:`close` removes the hooks and stops the progress thread.

    After each :meth:`finish`, ``last_comm_s`` is the time from the first bucket's start to
    the last bucket's sum and ``last_wait_s`` the part of it that :meth:`finish` waited for:
    the communication that the backward did not hide, and ``last_overlap_s`` the window the
    backward left for hiding it (first bucket's start to the backward's end); all 0 with one
    rank.
    """

    def __init__(self, model: Any, bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> None:
        if bucket_bytes < 1:
            raise ValueError(f"bucket_bytes must be >= 1, got {bucket_bytes}")
        self.model = model
        self.world = _comm.world_size()
        params = [p for p in model.parameters() if p.requires_grad]
        self.params = params
        owners = _owners(model)
        self.buckets: List[_Bucket] = []
        late: List[Any] = []
        if owners is None:
            late = params
        else:
            count: Dict[int, int] = {}
            for layer_params in owners:
                for p in {id(p): p for p in layer_params}.values():
                    count[id(p)] = count.get(id(p), 0) + 1
            layer_of = {}
            for i, layer_params in enumerate(owners):
                for p in layer_params:
                    if count[id(p)] == 1:
                        layer_of[id(p)] = i
            # Backward order: last layer first; within a layer, its parameters' order.
            group: List[Any] = []
            group_layers: List[int] = []
            for i in reversed(range(len(owners))):
                mine = [p for p in owners[i] if layer_of.get(id(p)) == i]
                for p in mine:
                    if group and p.data.dtype != group[0].data.dtype:
                        self.buckets.append(_Bucket(group, group_layers, self.world))
                        group, group_layers = [], []
                    group.append(p)
                    if not group_layers or group_layers[-1] != i:
                        group_layers.append(i)
                if group and sum(p.data.nbytes for p in group) >= bucket_bytes:
                    self.buckets.append(_Bucket(group, group_layers, self.world))
                    group, group_layers = [], []
            if group:
                self.buckets.append(_Bucket(group, group_layers, self.world))
            late = [p for p in params if id(p) not in layer_of]
        for dtype in dict.fromkeys(p.data.dtype for p in late):
            same = [p for p in late if p.data.dtype == dtype]
            self.buckets.append(_Bucket(same, [-1], self.world))   # -1: after the backward
        # One communicator per bucket. MPI matches collectives on a communicator by the order
        # each rank issues them, and the progress thread issues a bucket's allgather as soon as
        # its reduce-scatter completes, which races with the next bucket's reduce-scatter
        # differently on each rank: on a shared communicator the ranks' messages would pair up
        # wrongly. Per bucket, the order (reduce-scatter, then allgather) is the same everywhere.
        if self.world > 1:
            for b in self.buckets:
                b.comm, request = _comm.comm().Idup()
                _comm.wait(request, "creating the gradient buckets' communicators")
        self._hook = None
        if owners is not None:
            self._hook = model.register_layer_backward_hook(self._layer_done)
        self._cond = threading.Condition()
        self._pending: List[_Bucket] = []
        self._error: Optional[BaseException] = None
        self._closed = False
        self._thread: Optional[threading.Thread] = None
        self._done_layers: set = set()
        self._hurry: Optional[float] = None   # when finish() started waiting
        # Timings of the last step (perf_counter seconds), for benchmarks and logs.
        self.last_wait_s = 0.0        # finish() blocked: communication the backward did not hide
        self.last_comm_s = 0.0        # first bucket started -> last bucket summed
        self.last_overlap_s = 0.0     # first bucket started -> backward done (finish called)
        self._first_start: Optional[float] = None
        self._last_done: Optional[float] = None

    @property
    def nbytes(self) -> int:
        """Bytes summed per step (every bucket's padded buffer)."""
        return sum(b.buffer.nbytes for b in self.buckets)

    # ------------------------------------------------------------------ per step
    def begin(self) -> None:
        """Before the backward: views reattached, every bucket waiting for its layers."""
        for b in self.buckets:
            b.attach()
            b.stage = 0
        self._done_layers = set()
        self._error = None
        self._first_start = self._last_done = None
        self._hurry: Optional[float] = None

    def _layer_done(self, index: int, layer: Any) -> None:
        self._done_layers.add(index)
        ready = [b for b in self.buckets if b.stage == 0 and -1 not in b.layers
                 and b.layers <= self._done_layers]
        if ready:
            self._start(ready)

    def _start(self, buckets: List[_Bucket]) -> None:
        if self.world == 1:          # nothing to sum: no MPI call, no thread
            for b in buckets:
                b.stage = 3
            return
        if self._first_start is None:
            self._first_start = time.perf_counter()
        for b in buckets:
            b.stage = 1    # claimed: the progress thread issues the reduce-scatter
        with self._cond:
            self._pending.extend(buckets)
            if self._thread is None:
                self._thread = threading.Thread(target=self._progress, daemon=True,
                                                name="rnnkit-gradient-buckets")
                self._thread.start()
            self._cond.notify()

    def finish(self) -> None:
        """Start the buckets not yet started and wait until every bucket is summed on every
        rank; raises DistributedError (a rank is gone or stuck) after the timeout."""
        rest = [b for b in self.buckets if b.stage == 0]
        if rest:
            self._start(rest)
        waited_from = time.perf_counter()
        deadline = waited_from + _comm._state.timeout
        with self._cond:
            self._hurry = waited_from    # the backward is done: the core is free to poll
            self._cond.notify()
            while (self._pending or any(b.stage != 3 for b in self.buckets)) \
                    and self._error is None:
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise _comm.DistributedError(
                        f"rank {_comm.rank()} of {self.world}: the gradient sum did not "
                        f"complete within {_comm._state.timeout:g} s; another rank died, is "
                        "stuck, or stopped taking part")
                self._cond.wait(min(left, 0.05))
        now = time.perf_counter()
        self.last_wait_s = now - waited_from
        start = self._first_start if self._first_start is not None else now
        self.last_comm_s = (self._last_done or now) - start
        self.last_overlap_s = max(0.0, waited_from - start)
        if self._error is not None:
            raise _comm.DistributedError(
                f"rank {_comm.rank()}: summing the gradients failed: {self._error}") \
                from self._error

    def close(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for b in self.buckets:
            if b.comm is not None:
                b.comm.Free()
                b.comm = None

    # ------------------------------------------------------------------ progress thread
    def _progress(self) -> None:
        mpi = _comm.mpi()
        me = _comm.rank()
        active: List[_Bucket] = []
        try:
            while True:
                with self._cond:
                    while not self._pending and not active and not self._closed:
                        self._cond.wait()
                    if self._closed:
                        return
                    fresh, self._pending = self._pending, []
                for b in fresh:
                    b.request = b.comm.Ireduce_scatter_block(
                        mpi.IN_PLACE, [b.buffer, b.slice], mpi.SUM)
                active.extend(fresh)
                still: List[_Bucket] = []
                for b in active:
                    if not b.request.Test():
                        still.append(b)
                        continue
                    if b.stage == 1:
                        # In place, this rank's summed slice lands at the buffer's start;
                        # the in-place allgather expects it at its own offset.
                        if me:
                            b.buffer[me * b.slice:(me + 1) * b.slice] = b.buffer[:b.slice]
                        b.stage = 2
                        b.request = b.comm.Iallgather(mpi.IN_PLACE, [b.buffer, b.slice])
                        still.append(b)
                        continue
                    b.stage, b.request = 3, None
                    self._last_done = time.perf_counter()
                finished = len(still) < len(active)
                active = still
                if finished:
                    with self._cond:
                        self._cond.notify_all()
                if active:
                    # MPICH moves a large message only inside a test call, one chunk per
                    # call: poll gently while the backward needs the core, flat out (giving
                    # up the GIL in between) once the main thread only waits.
                    hurry = self._hurry
                    fast = hurry is not None and time.perf_counter() - hurry < _SPIN_SECONDS
                    time.sleep(0.0 if fast else _POLL_SECONDS)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting main thread
            with self._cond:
                self._error = exc
                self._cond.notify_all()
