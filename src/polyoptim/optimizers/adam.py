"""Adam, AdamW, Adamax, NAdam and RAdam with torch.optim's signatures and semantics."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..rules.adam import adam, adamax, nadam, radam
from ..transforms.elementwise import torch_prologue
from ._common import (
    ParamsT,
    check_betas,
    check_fused_flags,
    check_lr,
    check_min,
    to_scalar,
)
from .base import COMMON_FLAGS, TorchOptimizer


class Adam(TorchOptimizer):
    r"""Adam (Kingma & Ba), with optional AMSGrad and decoupled weight decay.

    .. math::
        \begin{aligned}
        & g_t \leftarrow \pm\nabla f(\theta_{t-1}) \;(+\lambda\theta_{t-1}
            \text{, or } \theta_{t-1} \leftarrow \theta_{t-1}(1-\gamma\lambda)
            \text{ if decoupled}) \\
        & m_t \leftarrow \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
          v_t \leftarrow \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
        & \hat v_t \leftarrow \max(\hat v_{t-1}, v_t) \text{ (amsgrad) else } v_t \\
        & \theta_t \leftarrow \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}
          \frac{m_t}{\sqrt{\hat v_t}/\sqrt{1-\beta_2^t} + \epsilon}
        \end{aligned}

    Args:
        params: tensors, ``(name, tensor)`` pairs or param-group dicts.
        lr: learning rate :math:`\gamma` (float or 1-element Tensor).
        betas: :math:`(\beta_1, \beta_2)`, both floats or both Tensors.
        eps: :math:`\epsilon`, added to the denominator.
        weight_decay: :math:`\lambda`.
        amsgrad: keep the running maximum of :math:`v_t`.
        foreach: run the bucketed multi-tensor kernel.
        maximize: maximize the objective.
        capturable: torch's CUDA-graph flag (accepted on supported devices only).
        differentiable: let autograd record the step.
        fused: run the fused path (honours ``GradScaler``'s scale and inf flag).
        decoupled_weight_decay: decay the weights directly (AdamW).

    Example:
        >>> import torch, polyoptim
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = polyoptim.Adam(model.parameters(), lr=1e-3)
        >>> model(torch.randn(8, 4)).pow(2).mean().backward(); opt.step()
    """

    rule = torch_prologue(adam)
    setstate_defaults = {
        **COMMON_FLAGS,
        "amsgrad": False,
        "decoupled_weight_decay": False,
        "fused": None,
    }
    scalar_state = ("step",)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        if isinstance(lr, Tensor):
            if foreach and not capturable:
                raise ValueError(
                    "lr as a Tensor is not supported for capturable=False and foreach=True"
                )
            if lr.numel() != 1:
                raise ValueError("Tensor lr must be 1-element")
        check_lr(lr)
        check_min("epsilon", eps)
        check_betas(betas)
        check_min("weight_decay", weight_decay)
        b0, b1 = betas
        if not (
            (isinstance(b0, float) and isinstance(b1, float))
            or (isinstance(b0, Tensor) and isinstance(b1, Tensor))
        ):
            raise ValueError("betas must be either both floats or both Tensors")
        for i, b in enumerate(betas):
            if isinstance(b, Tensor):
                if not capturable and foreach:
                    raise ValueError(
                        f"betas[{i}] as a Tensor is not supported for capturable=False and "
                        "foreach=True"
                    )
                if b.numel() != 1:
                    raise ValueError(f"Tensor betas[{i}] must be 1-element")
        defaults = dict(
            lr=lr,
            betas=tuple(map(to_scalar, betas)),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults)
        check_fused_flags(fused, foreach, differentiable)

    def _validate_group(self, group: dict[str, Any], params: Any) -> None:
        super()._validate_group(group, params)
        if group["foreach"] and isinstance(group["lr"], Tensor) and not group["capturable"]:
            raise RuntimeError(
                "lr as a Tensor is not supported for capturable=False and foreach=True"
            )


class AdamW(Adam):
    r"""AdamW (Loshchilov & Hutter): Adam with decoupled weight decay.

    The weights shrink by :math:`\gamma\lambda` before the Adam step, instead of
    :math:`\lambda\theta` being added to the gradient:

    .. math::
        \begin{aligned}
        & \theta_{t-1} \leftarrow \theta_{t-1}(1-\gamma\lambda), \quad
          g_t \leftarrow \pm\nabla f(\theta_{t-1}) \\
        & m_t \leftarrow \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
          v_t \leftarrow \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
        & \hat v_t \leftarrow \max(\hat v_{t-1}, v_t) \text{ (amsgrad) else } v_t \\
        & \theta_t \leftarrow \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}
          \frac{m_t}{\sqrt{\hat v_t}/\sqrt{1-\beta_2^t} + \epsilon}
        \end{aligned}

    Args:
        params: tensors, ``(name, tensor)`` pairs or param-group dicts.
        lr: learning rate :math:`\gamma` (float or 1-element Tensor; default 1e-3).
        betas: :math:`(\beta_1, \beta_2)`, both floats or both Tensors (default (0.9, 0.999)).
        eps: :math:`\epsilon`, added to the denominator (default 1e-8).
        weight_decay: :math:`\lambda`, the decoupled decay coefficient (default 0.01).
        amsgrad: keep the running maximum of :math:`v_t`.
        maximize: maximize the objective (the sign :math:`\pm`).
        foreach: run the bucketed multi-tensor kernel.
        capturable: torch's CUDA-graph flag (accepted on supported devices only).
        differentiable: let autograd record the step.
        fused: run the fused path (honours ``GradScaler``'s scale and inf flag).

    Example:
        >>> import torch, polyoptim
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> opt = polyoptim.AdamW([w], lr=0.1, weight_decay=0.5)
        >>> w.grad = torch.zeros(3); opt.step()   # zero gradient: only the decay acts
        >>> w.detach()
        tensor([0.9500, 0.9500, 0.9500])
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


def _adam_like_checks(lr: Any, eps: float, betas: tuple, weight_decay: float) -> None:
    check_lr(lr)
    check_min("epsilon", eps)
    check_betas(betas)
    check_min("weight_decay", weight_decay)


class Adamax(TorchOptimizer):
    r"""Adamax: Adam with the infinity norm.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        u_t = \max(\beta_2 u_{t-1}, |g_t| + \epsilon), \quad
        \theta_t = \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}\frac{m_t}{u_t}

    Args:
        params: tensors, ``(name, tensor)`` pairs or param-group dicts.
        lr: learning rate (default 2e-3).
        betas: :math:`(\beta_1, \beta_2)`.
        eps: :math:`\epsilon`.
        weight_decay: L2 penalty.
        foreach, maximize, differentiable, capturable: as in torch.

    Example:
        >>> import torch, polyoptim
        >>> opt = polyoptim.Adamax([torch.nn.Parameter(torch.ones(2))], lr=2e-3)
    """

    rule = torch_prologue(adamax, decoupled_key=None)
    setstate_defaults = COMMON_FLAGS
    scalar_state = ("step",)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
    ) -> None:
        _adam_like_checks(lr, eps, betas, weight_decay)
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            capturable=capturable,
        )
        super().__init__(params, defaults)


class NAdam(TorchOptimizer):
    r"""NAdam: Adam with Nesterov momentum and a momentum schedule.

    .. math::
        \mu_t = \beta_1\big(1 - \tfrac12 0.96^{t\psi}\big), \quad
        \theta_t = \theta_{t-1} - \gamma\Big(\frac{\mu_{t+1} m_t}{1-\prod_{i\le t+1}\mu_i}
        + \frac{(1-\mu_t) g_t}{1-\prod_{i\le t}\mu_i}\Big) \Big/
        \Big(\sqrt{v_t/(1-\beta_2^t)} + \epsilon\Big)

    Args:
        params: tensors, ``(name, tensor)`` pairs or param-group dicts.
        lr: learning rate (default 2e-3).
        betas: :math:`(\beta_1, \beta_2)`.
        eps: :math:`\epsilon`.
        weight_decay: :math:`\lambda`.
        momentum_decay: :math:`\psi`.
        decoupled_weight_decay: decay the weights directly (NAdamW).
        foreach, maximize, capturable, differentiable: as in torch.

    Example:
        >>> import torch, polyoptim
        >>> opt = polyoptim.NAdam([torch.nn.Parameter(torch.ones(2))])
    """

    rule = torch_prologue(nadam)
    setstate_defaults = {**COMMON_FLAGS, "decoupled_weight_decay": False}
    scalar_state = ("step", "mu_product")
    capturable_tensors = "params, mu_products and state_steps"

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        _adam_like_checks(lr, eps, betas, weight_decay)
        check_min("momentum_decay", momentum_decay)
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
        )
        super().__init__(params, defaults)


class RAdam(TorchOptimizer):
    r"""RAdam: Adam with a rectified adaptive learning rate.

    .. math::
        \rho_\infty = \frac{2}{1-\beta_2} - 1, \quad
        \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t}, \quad
        \theta_t = \theta_{t-1} - \gamma\,\frac{m_t}{1-\beta_1^t}\cdot
        \begin{cases} r_t \frac{\sqrt{1-\beta_2^t}}{\sqrt{v_t}+\epsilon} & \rho_t > 5 \\
        1 & \text{otherwise}\end{cases}

    with :math:`r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}
    {(\rho_\infty-4)(\rho_\infty-2)\rho_t}}`.

    Args:
        params: tensors, ``(name, tensor)`` pairs or param-group dicts.
        lr, betas, eps, weight_decay, decoupled_weight_decay: as in :class:`Adam`.
        foreach, maximize, capturable, differentiable: as in torch.

    Example:
        >>> import torch, polyoptim
        >>> opt = polyoptim.RAdam([torch.nn.Parameter(torch.ones(2))])
    """

    rule = torch_prologue(radam)
    setstate_defaults = {**COMMON_FLAGS, "decoupled_weight_decay": False}
    scalar_state = ("step",)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        _adam_like_checks(lr, eps, betas, weight_decay)
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            decoupled_weight_decay=decoupled_weight_decay,
            differentiable=differentiable,
        )
        super().__init__(params, defaults)
