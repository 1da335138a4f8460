"""SGD, torch.optim's signature and semantics."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..rules.sgd import sgd
from ..transforms.elementwise import torch_prologue
from ._common import (
    ParamsT,
    check_fused_flags,
    scalar_type_name,
)
from .base import TorchOptimizer
from .sparse import sparse_sgd_step


class SGD(TorchOptimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum.

    .. math::
        \begin{aligned}
        & g_t \leftarrow \pm\nabla f(\theta_{t-1}) + \lambda\theta_{t-1} \\
        & b_t \leftarrow \mu b_{t-1} + (1-\tau) g_t \quad (b_1 = g_1) \\
        & \theta_t \leftarrow \theta_{t-1} - \gamma\,(g_t + \mu b_t \text{ if nesterov else } b_t)
        \end{aligned}

    Args:
        params: tensors, ``(name, tensor)`` pairs or param-group dicts.
        lr: learning rate :math:`\gamma` (float or 1-element Tensor).
        momentum: momentum factor :math:`\mu`.
        dampening: dampening :math:`\tau` for momentum.
        weight_decay: L2 penalty :math:`\lambda` (float or Tensor).
        nesterov: use Nesterov momentum.
        maximize: maximize the objective instead of minimizing it.
        foreach: run the bucketed multi-tensor kernel.
        differentiable: let autograd record the step.
        fused: run the fused path (honours ``GradScaler``'s scale and inf flag).

    Sparse gradients are accepted, as in torch.

    Example:
        >>> import torch, polyoptim
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = polyoptim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
        >>> model(torch.randn(8, 4)).pow(2).mean().backward(); opt.step(); opt.zero_grad()
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float | Tensor = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        # SGD compares with ``<`` where the others write ``not 0 <= x``: NaN passes, as in torch
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            foreach=foreach,
            differentiable=differentiable,
            fused=fused,
        )
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)
        check_fused_flags(fused, foreach, differentiable)

    rule = torch_prologue(sgd, decoupled_key=None)
    setstate_defaults = {
        "nesterov": False,
        "maximize": False,
        "foreach": None,
        "differentiable": False,
        "fused": False,
    }

    def _check_grad(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        pass  # SGD takes sparse gradients

    fused_check_once = True

    def _step_group(self, group, params, grads):
        if group.get("fused"):
            if any(g.is_sparse for g in grads):
                raise RuntimeError("`_fused_sgd` does not support sparse gradients")
            for p in params:
                if p.is_complex():
                    # torch's fused SGD kernel has no complex instantiation; say so the same way
                    raise NotImplementedError(
                        f"\"fused_sgd_kernel\" not implemented for '{scalar_type_name(p.dtype)}'"
                    )
        if any(g.is_sparse for g in grads):
            sparse_sgd_step(self, group, params, grads)
            return
        super()._step_group(group, params, grads)
