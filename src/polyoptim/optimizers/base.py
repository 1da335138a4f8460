"""What every torch-dialect optimizer shares: torch's flag semantics on top of the engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..engine import Optimizer
from ._common import check_fused_param


class TorchOptimizer(Optimizer):
    """An engine optimizer that follows torch.optim's ``foreach``/``fused`` conventions."""

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        super().__init__(params, defaults)
        if defaults.get("fused"):
            # GradScaler hands grad_scale/found_inf to optimizers that declare this
            self._step_supports_amp_scaling = True

    def _check_new_param(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        if group.get("fused"):
            check_fused_param(p)

    def _validate_group(self, group: dict[str, Any], params: Sequence[torch.Tensor]) -> None:
        super()._validate_group(group, params)
        if group.get("foreach") and torch.is_tensor(group["lr"]) and not group.get("capturable"):
            raise RuntimeError(
                "lr as a Tensor is not supported for capturable=False and foreach=True"
            )
