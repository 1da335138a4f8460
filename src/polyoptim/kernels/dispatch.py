"""Which kernel runs a group: decided from the group's ``foreach``/``fused``/``differentiable``
flags and the tensors' devices, never by the algorithm."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from .eager import run_foreach, run_single

Kernel = Callable[..., None]


def select_kernel(group: Mapping[str, Any], params: Sequence[torch.Tensor]) -> Kernel:
    """The kernel for one group's step.

    * ``differentiable`` → the single-tensor eager kernel (autograd follows it);
    * ``foreach=True`` → the bucketed ``torch._foreach_*`` kernel;
    * otherwise (including ``fused=True`` until a compiled backend covers the case) → the
      single-tensor eager kernel, as torch's default on CPU.
    """
    if group.get("differentiable"):
        return run_single
    if group.get("foreach"):
        return run_foreach
    return run_single
