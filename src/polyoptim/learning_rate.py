"""Learning rates that are not a single number: resolved once per group per step.

The engine accepts, wherever a group's ``lr`` is read:

* a float or int, or a 1-element Tensor (torch's kinds; used as they are);
* a 1-D Tensor or any sequence: element ``i`` at global step ``i`` (the last one after the end);
* a callable schedule: ``schedule(step)`` (MindSpore's ``LearningRateSchedule``; anything with
  ``__call__``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def is_plain(lr: Any) -> bool:
    """A learning rate torch itself understands (no per-step resolution needed)."""
    return isinstance(lr, (int, float)) or (isinstance(lr, torch.Tensor) and lr.numel() == 1)


def lr_at(lr: Any, step: int) -> Any:
    """The learning rate in force at global step ``step`` (0-based).

    Example:
        >>> lr_at([0.1, 0.05, 0.01], 1), lr_at([0.1, 0.05], 9), lr_at(lambda s: 0.1 / (s + 1), 1)
        (0.05, 0.05, 0.05)
    """
    if is_plain(lr):
        return lr
    if isinstance(lr, torch.Tensor):
        if lr.dim() != 1:
            raise ValueError(f"a Tensor learning rate must be 0-d or 1-D, got {lr.dim()}-D")
        return float(lr[min(step, lr.numel() - 1)])
    if callable(lr):
        value = lr(step)
        return float(value) if isinstance(value, torch.Tensor) else value
    if isinstance(lr, Sequence) and not isinstance(lr, str):
        return float(lr[min(step, len(lr) - 1)])
    raise TypeError(f"unsupported learning rate: {type(lr).__name__}")
