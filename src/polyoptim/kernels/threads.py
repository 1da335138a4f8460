"""The fused kernel's threads: Numba's threading layer, the thread count, and what a process
forked from one that ran a kernel may do.

Numba runs a ``prange`` loop on one of three threading layers: ``tbb`` (Intel TBB, when the
``tbb`` package is installed), ``omp`` (OpenMP) or its own ``workqueue``. Left to itself on Linux
it picks GNU OpenMP when TBB is missing -- the fastest here, because it shares torch's own
OpenMP pool (``workqueue`` measured 1.1 ms slower per step in a training loop: its workers wake
beside torch's still-spinning ones; docs/performance.md) -- and GNU OpenMP is not fork-safe:
Numba terminates a forked child the moment it launches a parallel kernel ("Terminating: fork()
called from a process already using GNU OpenMP, this is unsafe"). So polyoptim leaves the layer
to Numba (and to ``NUMBA_THREADING_LAYER``) and:

* **a forked child of an OpenMP process** never launches a parallel kernel: :func:`fork_safe`
  is false there (set by an ``os.register_at_fork`` hook), and the fused path steps with the
  eager kernel (same numbers) on one torch thread -- torch's own OpenMP pool is no safer in that
  child than Numba's, which is why DataLoader workers run on one thread -- and warns once. On
  ``tbb`` or ``workqueue`` (fork-safe) a forked child steps on the fused kernel.
* **one launch at a time on workqueue** -- ``workqueue`` must never be entered by two threads at
  once (Numba terminates the process), and the kernels release the GIL, so launches are
  serialised by a lock when it is the layer; a forked child gets a fresh lock.

The thread count follows torch's (``torch.set_num_threads`` limits both).

Example:
    >>> from polyoptim.kernels import threads
    >>> threads.fork_safe()
    True
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

__all__ = ["configure", "fork_safe", "launch", "one_torch_thread"]

#: True in a process forked, after a parallel kernel ran, from one on GNU OpenMP
_FORKED_FROM_OMP = False
_WARNED = False
#: None until the first launch has started Numba's threads; then whether launches take the lock
_SERIAL: bool | None = None
_launch_lock = threading.Lock()
_count = threading.local()
_configured = False


def configure(numba: Any) -> None:
    """Watch for forks (idempotent; called as soon as polyoptim sees Numba imported)."""
    global _configured
    if _configured:
        return
    _configured = True
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _layer(numba: Any) -> str | None:
    """The layer Numba's threads run on, or None before they start."""
    try:
        return numba.threading_layer()
    except ValueError:  # "Threading layer is not initialized."
        return None


def _after_fork_in_child() -> None:
    global _FORKED_FROM_OMP, _launch_lock
    _launch_lock = threading.Lock()  # another thread of the parent may have held it
    numba = sys.modules.get("numba")
    # GNU OpenMP is the unsafe one; Intel's (macOS) and Microsoft's are fork-safe
    if numba is not None and sys.platform.startswith("linux") and _layer(numba) == "omp":
        _FORKED_FROM_OMP = True


def fork_safe() -> bool:
    """False in a process forked from one whose Numba threads ran on GNU OpenMP: a parallel
    kernel would be terminated there, so the fused path runs eagerly (warning once)."""
    if not _FORKED_FROM_OMP:
        return True
    global _WARNED
    if not _WARNED:
        _WARNED = True
        warnings.warn(
            "polyoptim: this process was forked from one that ran Numba's GNU OpenMP threading "
            "layer, which is not fork-safe; the fused kernel steps eagerly on one thread here "
            "(same numbers). NUMBA_THREADING_LAYER=workqueue (or installing tbb) keeps the "
            "fused kernel in forked children, at some cost per step in the parent.",
            RuntimeWarning,
            stacklevel=4,
        )
    return False


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the body on one torch thread (the thread count is restored after)."""
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _sync_count(numba: Any) -> None:
    """Use as many threads as torch does. Numba's setting is per calling thread; it is only
    touched when torch's changes."""
    n = torch.get_num_threads()
    if getattr(_count, "n", None) != n:
        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
        _count.n = n


def launch(fn: Any, *args: Any) -> None:
    """Call the compiled kernel ``fn(*args)`` with torch's thread count, one launch at a time
    when the layer is ``workqueue``."""
    global _SERIAL
    numba = sys.modules["numba"]
    if _SERIAL is None:  # the first launch starts the threads: hold the lock, then look
        with _launch_lock:
            _sync_count(numba)
            fn(*args)
            _SERIAL = _layer(numba) == "workqueue"
        return
    _sync_count(numba)
    if _SERIAL:
        with _launch_lock:
            fn(*args)
    else:
        fn(*args)
