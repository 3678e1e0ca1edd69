"""What a layer remembers between a forward and its backward, kept per calling thread.

A layer shared by several Python threads (a server, a data-parallel loop) must not hand one
thread's training cache to another thread's backward. So each thread's forward stores its cache
under that thread, the matching backward takes it back, and a lock serialises the calls of one
layer (the kernels inside still release the GIL and use their own threads). A thread that never
calls backward leaves its cache until its next forward (sequence layers), or, where every
training forward keeps its own entry on a stack (cells, Dropout), until train()/eval() clears
all: training-mode forwards without backward (Monte Carlo dropout, say) grow that stack, so run
them in eval() mode or call train() now and then.
"""
from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional


class CallState:
    """Per-thread caches of one layer, and the lock its forward/backward hold."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._caches: Dict[int, Any] = {}
        self._stacks: Dict[int, List[Any]] = {}

    # One cache per forward (sequence layers: a second forward replaces the first's).
    def put(self, cache: Optional[Any]) -> None:
        tid = threading.get_ident()
        if cache is None:
            self._caches.pop(tid, None)
        else:
            self._caches[tid] = cache

    def take(self) -> Optional[Any]:
        """This thread's cache, removed (one backward per forward), or None."""
        return self._caches.pop(threading.get_ident(), None)

    # A stack of caches (cells: one per step, popped by each backward in reverse order).
    def push(self, cache: Any) -> None:
        self._stacks.setdefault(threading.get_ident(), []).append(cache)

    def pop(self) -> Optional[Any]:
        stack = self._stacks.get(threading.get_ident())
        return stack.pop() if stack else None

    def clear(self) -> None:
        self._caches.clear()
        self._stacks.clear()
