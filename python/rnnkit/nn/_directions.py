"""The two directions of a bidirectional layer, run at the same time.

The directions are independent until their outputs meet, and each runs on the threads its
kernel is given. Stepping one direction after the other on all threads puts a barrier between
every step's threads; on small layers those barriers cost more than the arithmetic. With two or
more threads allowed, the forward direction runs in the calling thread and the reverse one in a
worker thread, each capped at half of the threads (``_core.limit_calling_thread``), so a
2-thread run steps both directions on one core each, with no barrier at all.

The kernels give bitwise the same results for any thread count, so running concurrently changes
no result. The kernels release the GIL; the Python work around them is small.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional, Sequence, TypeVar

from .. import _core

R = TypeVar("R")

_pool: Optional[ThreadPoolExecutor] = None
_pool_lock = threading.Lock()


def _worker() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rnnkit-direction")
        return _pool


def _capped(fn: Callable[[], R], cap: int) -> R:
    before = _core.limit_calling_thread(cap)
    try:
        return fn()
    finally:
        _core.limit_calling_thread(before)


def run_directions(tasks: Sequence[Callable[[], R]]) -> List[R]:
    """``[task() for task in tasks]``; two tasks run concurrently when two or more threads are
    allowed (and the caller is not itself the worker, which would wait on itself)."""
    threads = _core.get_num_threads()
    if len(tasks) != 2 or threads < 2 or \
            threading.current_thread().name.startswith("rnnkit-direction"):
        return [task() for task in tasks]
    cap = threads // 2
    other = _worker().submit(_capped, tasks[1], threads - cap)
    try:
        first = _capped(tasks[0], cap)
    except BaseException:
        other.exception()   # waited for all the same: the worker never outlives its call
        raise
    return [first, other.result()]
