"""What every torch-dialect optimizer shares: torch's flag semantics on top of the engine."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ..engine import Optimizer
from ._common import check_fused_param, fill_defaults, steps_to_tensors

#: the flags most torch optimizers fill in when an old pickle lacks them
COMMON_FLAGS: dict[str, Any] = {
    "foreach": None,
    "maximize": False,
    "differentiable": False,
    "capturable": False,
}


class TorchOptimizer(Optimizer):
    """An engine optimizer that follows torch.optim's ``foreach``/``fused`` conventions."""

    #: flags an older pickled optimizer may lack, and the values torch fills in for them
    setstate_defaults: ClassVar[dict[str, Any]] = {}
    #: per-parameter scalar state that older checkpoints kept as plain numbers
    scalar_state: ClassVar[tuple[str, ...]] = ()

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        fill_defaults(self, **self.setstate_defaults)
        steps_to_tensors(self, *self.scalar_state)

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
