"""Counting the fused kernels' launches and eager fallbacks, for tests that must see a fused
kernel actually run (fused == eager proves nothing if both sides ran eagerly)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from polyoptim.kernels import cpu_fused, triton_fused


@contextlib.contextmanager
def count_kernel_calls() -> Iterator[dict[str, int]]:
    """Count fused launches (``"launch"``: ``cpu_fused._launch`` or ``triton_fused._launch``)
    and eager fallbacks inside a fused step (``"eager"``) within the block."""
    calls = {"launch": 0, "eager": 0}
    saved = [(m, m._launch, m._eager) for m in (cpu_fused, triton_fused)]

    def counted(key, fn):
        def wrapper(*args, **kwargs):
            calls[key] += 1
            return fn(*args, **kwargs)

        return wrapper

    for m, launch, eager in saved:
        m._launch, m._eager = counted("launch", launch), counted("eager", eager)
    try:
        yield calls
    finally:
        for m, launch, eager in saved:
            m._launch, m._eager = launch, eager
