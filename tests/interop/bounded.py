"""Reading a hostile file under a time bound and a memory bound.

:func:`read_within_bounds` runs one read with a wall-clock alarm (a hang becomes a
``TimeoutError`` instead of a stuck test run) and under ``tracemalloc`` (Python objects and numpy
buffers are traced), and asserts the one acceptable outcome: the read returns, or raises a
``CheckpointFormatError``, within

* ``TIME_BASE + TIME_PER_BYTE * size`` seconds -- the readers are linear in the file; the per-byte
  allowance is ~5x the worst rate measured for a file of one-byte opcodes on a loaded 2-core
  machine under tracemalloc, so a quadratic or exponential read of the regression files blows it;
* ``MEM_BASE + MEM_PER_BYTE * size`` bytes at the peak -- the worst case is a pickle of tiny
  memoised containers, ~70 bytes of Python objects per byte of file.

Every outcome is recorded as ``user_properties`` (``hostile_*``) for the summary line in
``tests/conftest.py``: attacks tried, clean errors, worst time and memory.
"""

from __future__ import annotations

import signal
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from polyoptim.interop.errors import CheckpointFormatError

TIME_BASE = 5.0
TIME_PER_BYTE = 40e-6
MEM_BASE = 2 * 2**20
MEM_PER_BYTE = 160

#: every read of this session: (label, size, seconds, peak bytes, error or None)
LOG: list[tuple[str, int, float, int, str | None]] = []


@dataclass
class Outcome:
    value: Any
    error: CheckpointFormatError | None
    seconds: float
    peak: int


def _on_alarm(signum: int, frame: Any) -> None:
    raise TimeoutError("the read ran past its time bound")


def read_within_bounds(
    read: Callable[[], Any], size: int, label: str = "", *, seconds: float | None = None
) -> Outcome:
    """Run ``read()``; assert it returns or raises ``CheckpointFormatError`` within the bounds
    for a file of ``size`` bytes (``seconds`` overrides the time bound)."""
    limit_s = TIME_BASE + TIME_PER_BYTE * size if seconds is None else seconds
    limit_mem = MEM_BASE + MEM_PER_BYTE * size
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    value, error = None, None
    start = time.perf_counter()
    try:
        value = read()
    except CheckpointFormatError as exc:
        error = exc
    finally:
        elapsed = time.perf_counter() - start
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        peak = tracemalloc.get_traced_memory()[1] - base
        if not was_tracing:
            tracemalloc.stop()
    LOG.append((label, size, elapsed, peak, None if error is None else type(error).__name__))
    assert elapsed <= limit_s, f"{label}: {elapsed:.2f} s for {size} bytes (bound {limit_s:.1f})"
    assert peak <= limit_mem, (
        f"{label}: {peak / 2**20:.1f} MiB at the peak for {size} bytes "
        f"(bound {limit_mem / 2**20:.1f} MiB)"
    )
    if error is not None:
        assert str(error), "an error without a message"
    return Outcome(value, error, elapsed, peak)


def refused(
    read: Callable[[], Any], size: int, label: str = "", **kw: Any
) -> CheckpointFormatError:
    """:func:`read_within_bounds`, and the read must be refused."""
    out = read_within_bounds(read, size, label, **kw)
    assert out.error is not None, f"{label}: the hostile file was accepted"
    return out.error


def record(node: Any) -> None:
    """Attach this test's reads, summed up, to its report (for the summary line) and clear
    them: ``("hostile_reads", (reads, refused, worst seconds, its label, worst peak, label))``."""
    if not LOG:
        return
    slowest = max(LOG, key=lambda r: r[2])
    biggest = max(LOG, key=lambda r: r[3])
    node.user_properties.append(
        (
            "hostile_reads",
            (
                len(LOG),
                sum(r[4] is not None for r in LOG),
                slowest[2],
                f"{node.nodeid} {slowest[0]} ({slowest[1]} bytes)",
                biggest[3],
                f"{node.nodeid} {biggest[0]} ({biggest[1]} bytes)",
            ),
        )
    )
    LOG.clear()
