"""What every torch-dialect optimizer shares: torch's flag semantics on top of the engine."""

from __future__ import annotations

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

    #: torch checks ``fused`` parameters once per optimizer (SGD, Adagrad) or at every new state
    fused_check_once: bool = False

    def _check_new_param(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        if not group.get("fused"):
            return
        if self.fused_check_once:
            if not getattr(self, "_fused_param_checked", False):
                check_fused_param(p)
                self._fused_param_checked = True
        else:
            check_fused_param(p)
