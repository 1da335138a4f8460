"""Adagrad, Adadelta, RMSprop, Rprop and ASGD with torch.optim's signatures and semantics."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..kernels.eager import run_single
from ..rules.adadelta import adadelta
from ..rules.adagrad import adagrad
from ..rules.asgd import asgd
from ..rules.rmsprop import rmsprop
from ..rules.rprop import rprop
from ..transforms.elementwise import torch_prologue
from ._common import (
    ParamsT,
    check_fused_flags,
    check_lr,
    check_min,
)
from .base import COMMON_FLAGS, TorchOptimizer
from .sparse import sparse_adagrad_update


class Adagrad(TorchOptimizer):
    r"""Adagrad.

    .. math::
        \tilde\gamma = \frac{\gamma}{1 + (t-1)\eta}, \quad
        s_t = s_{t-1} + g_t^2, \quad
        \theta_t = \theta_{t-1} - \tilde\gamma \frac{g_t}{\sqrt{s_t} + \epsilon}

    Args:
        params: tensors, ``(name, tensor)`` pairs or param-group dicts.
        lr: learning rate :math:`\gamma`.
        lr_decay: :math:`\eta`.
        weight_decay: L2 penalty.
        initial_accumulator_value: :math:`s_0`.
        eps: :math:`\epsilon` (default 1e-10).
        foreach, maximize, differentiable, fused: as in torch. Sparse gradients are accepted.

    State is created at construction, as torch does.

    Example:
        >>> import torch, polyoptim
        >>> opt = polyoptim.Adagrad([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    """

    rule = torch_prologue(adagrad, decoupled_key=None)
    setstate_defaults = {"foreach": None, "maximize": False, "differentiable": False, "fused": None}
    scalar_state = ("step",)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        check_lr(lr)
        check_min("lr_decay", lr_decay)
        check_min("weight_decay", weight_decay)
        check_min("initial_accumulator_value", initial_accumulator_value)
        check_min("epsilon", eps)
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            eps=eps,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            fused=fused,
        )
        super().__init__(params, defaults)
        check_fused_flags(fused, foreach, differentiable)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _check_new_param(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        pass  # torch checks fused Adagrad's parameters at step time, not at construction

    def _check_grad(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        if group.get("fused"):
            super()._check_new_param(p, group)

    fused_check_once = True

    def _step_group(self, group, params, grads):
        if group.get("fused") and any(g.is_sparse or p.is_complex() for p, g in zip(params, grads)):
            raise RuntimeError("`fused` does not support sparse grad or complex param")
        if not any(g.is_sparse for g in grads):
            return super()._step_group(group, params, grads)
        for p, g in zip(params, grads):
            st = self.state[p]
            sc = self.rule.prepare(group, st, False)
            if not g.is_sparse:  # a dense tensor in a group with sparse ones
                run_single(self.rule, group, [p], [g], [st], [sc])
                continue
            if group["weight_decay"] != 0:
                raise RuntimeError("weight_decay option is not compatible with sparse gradients")
            g = -g if group["maximize"] else g
            sparse_adagrad_update(p, g, st["sum"], clr=sc["clr"], eps=sc["eps"])


class Adadelta(TorchOptimizer):
    r"""Adadelta.

    .. math::
        v_t = \rho v_{t-1} + (1-\rho) g_t^2, \quad
        \Delta_t = \frac{\sqrt{u_{t-1}+\epsilon}}{\sqrt{v_t+\epsilon}} g_t, \quad
        u_t = \rho u_{t-1} + (1-\rho)\Delta_t^2, \quad
        \theta_t = \theta_{t-1} - \gamma\Delta_t

    Args:
        params: tensors, ``(name, tensor)`` pairs or param-group dicts.
        lr: coefficient :math:`\gamma` scaling the delta (default 1.0).
        rho: :math:`\rho`.
        eps: :math:`\epsilon`.
        weight_decay: L2 penalty.
        foreach, capturable, maximize, differentiable: as in torch.

    Example:
        >>> import torch, polyoptim
        >>> opt = polyoptim.Adadelta([torch.nn.Parameter(torch.ones(2))])
    """

    rule = torch_prologue(adadelta, decoupled_key=None)
    setstate_defaults = COMMON_FLAGS
    scalar_state = ("step",)
    capturable_on_xla = False

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_lr(lr)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        check_min("epsilon", eps)
        check_min("weight_decay", weight_decay)
        defaults = dict(
            lr=lr,
            rho=rho,
            eps=eps,
            weight_decay=weight_decay,
            maximize=maximize,
            capturable=capturable,
            foreach=foreach,
            differentiable=differentiable,
        )
        super().__init__(params, defaults)


class RMSprop(TorchOptimizer):
    r"""RMSprop (torch's form).

    .. math::
        v_t = \alpha v_{t-1} + (1-\alpha) g_t^2, \quad
        d_t = \sqrt{v_t - \bar g_t^2} + \epsilon \;(\bar g \equiv 0 \text{ unless centered}),
        \quad b_t = \mu b_{t-1} + g_t/d_t, \quad \theta_t = \theta_{t-1} - \gamma b_t

    Args:
        params: tensors, ``(name, tensor)`` pairs or param-group dicts.
        lr: learning rate (default 1e-2).
        alpha: smoothing constant :math:`\alpha`.
        eps: :math:`\epsilon`.
        weight_decay: L2 penalty.
        momentum: :math:`\mu`.
        centered: subtract the running mean of the gradient.
        capturable, foreach, maximize, differentiable: as in torch.

    Example:
        >>> import torch, polyoptim
        >>> opt = polyoptim.RMSprop([torch.nn.Parameter(torch.ones(2))], centered=True)
    """

    rule = torch_prologue(rmsprop, decoupled_key=None)
    setstate_defaults = {**COMMON_FLAGS, "momentum": 0, "centered": False}
    scalar_state = ("step",)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_lr(lr)
        check_min("epsilon", eps)
        check_min("momentum", momentum)
        check_min("weight_decay", weight_decay)
        check_min("alpha", alpha)
        defaults = dict(
            lr=lr,
            momentum=momentum,
            alpha=alpha,
            eps=eps,
            centered=centered,
            weight_decay=weight_decay,
            capturable=capturable,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
        )
        super().__init__(params, defaults)


class Rprop(TorchOptimizer):
    r"""Resilient backpropagation.

    .. math::
        \eta_t = \operatorname{clip}(\eta_{t-1}\cdot\{\eta_+, \eta_-, 1\}_{\operatorname{sign}
        (g_t g_{t-1})}, \eta_{min}, \eta_{max}), \quad
        \theta_t = \theta_{t-1} - \eta_t \operatorname{sign}(g_t)

    (:math:`g_t` is zeroed where the sign flipped.)

    Args:
        params: tensors, ``(name, tensor)`` pairs or param-group dicts.
        lr: initial step size.
        etas: :math:`(\eta_-, \eta_+)`.
        step_sizes: :math:`(\eta_{min}, \eta_{max})`.
        capturable, foreach, maximize, differentiable: as in torch.

    Example:
        >>> import torch, polyoptim
        >>> opt = polyoptim.Rprop([torch.nn.Parameter(torch.ones(2))])
    """

    rule = torch_prologue(rprop, decoupled_key=None)
    setstate_defaults = COMMON_FLAGS
    scalar_state = ("step",)

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-6, 50),
        *,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_lr(lr)
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        defaults = dict(
            lr=lr,
            etas=etas,
            step_sizes=step_sizes,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            capturable=capturable,
        )
        super().__init__(params, defaults)


class ASGD(TorchOptimizer):
    r"""Averaged stochastic gradient descent.

    .. math::
        \theta_t = \theta_{t-1}(1-\lambda\eta_t) - \eta_t g_t, \quad
        a_t = a_{t-1} + \mu_t(\theta_t - a_{t-1}), \quad
        \eta_{t+1} = \frac{\gamma}{(1+\lambda\gamma t)^\alpha}, \quad
        \mu_{t+1} = \frac{1}{\max(1, t-t_0)}

    Args:
        params: tensors, ``(name, tensor)`` pairs or param-group dicts.
        lr: :math:`\gamma`.
        lambd: decay term :math:`\lambda`.
        alpha: power for the eta update.
        t0: point at which to start averaging.
        weight_decay: L2 penalty.
        foreach, maximize, differentiable, capturable: as in torch.

    The average is ``state['ax']``.

    Example:
        >>> import torch, polyoptim
        >>> opt = polyoptim.ASGD([torch.nn.Parameter(torch.ones(2))], t0=100)
    """

    rule = torch_prologue(asgd, decoupled_key=None)
    setstate_defaults = COMMON_FLAGS
    scalar_state = ("step", "eta", "mu")
    capturable_tensors = "params, mus, etas, and state_steps"

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        lambd: float = 1e-4,
        alpha: float = 0.75,
        t0: float = 1e6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
    ) -> None:
        check_lr(lr)
        check_min("weight_decay", weight_decay)
        defaults = dict(
            lr=lr,
            lambd=lambd,
            alpha=alpha,
            t0=t0,
            weight_decay=weight_decay,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            capturable=capturable,
        )
        super().__init__(params, defaults)
