"""Counting the fused kernel's launches and eager fallbacks, for tests that must see the fused
kernel actually run (fused == eager proves nothing if both sides ran eagerly)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from polyoptim.kernels import cpu_fused


@contextlib.contextmanager
def count_kernel_calls() -> Iterator[dict[str, int]]:
    """Count ``cpu_fused._launch`` calls (``"launch"``) and eager fallbacks inside a fused step
    (``"eager"``) within the block."""
    calls = {"launch": 0, "eager": 0}
    launch, eager = cpu_fused._launch, cpu_fused._eager

    def counted(key, fn):
        def wrapper(*args, **kwargs):
            calls[key] += 1
            return fn(*args, **kwargs)

        return wrapper

    cpu_fused._launch, cpu_fused._eager = counted("launch", launch), counted("eager", eager)
    try:
        yield calls
    finally:
        cpu_fused._launch, cpu_fused._eager = launch, eager
