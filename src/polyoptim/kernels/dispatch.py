"""Which kernel runs a group: decided from the group's ``foreach``/``fused``/``differentiable``
flags and the tensors' devices, never by the algorithm.

========================================  =================================================
group flags                               kernel
========================================  =================================================
``differentiable=True``                   eager, one tensor at a time (autograd follows it)
``foreach=True``                          eager, ``torch._foreach_*`` per (device, dtype)
``fused=True``                            fused CPU kernel (eager when Numba is missing or the
                                          tensors are not on the CPU -- same numbers)
``foreach=False`` or ``fused=False``      eager, one tensor at a time (torch's for-loop)
neither given (the default)               fused CPU kernel when available and every tensor is
                                          on the CPU (it is faster there; see
                                          docs/performance.md), else the for-loop
========================================  =================================================

The fused default changes no numbers beyond float rounding: both kernels evaluate the same rule
in the same order (see :mod:`polyoptim.kernels.codegen`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

import torch

from ..rules.base import Rule
from . import cpu_fused
from . import master as mw
from .eager import run_foreach, run_single

Kernel = Callable[..., None]

_IS_CPU = operator.attrgetter("is_cpu")


def _PLAIN_MEMORY(p: torch.Tensor) -> bool:
    return type(p).__torch_dispatch__ is torch.Tensor.__torch_dispatch__


__all__ = ["Kernel", "run_group", "run_prepared", "select_kernel", "use_fused"]


def use_fused(group: Mapping[str, Any], params: Sequence[torch.Tensor]) -> bool:
    """Whether the group's step runs the fused CPU kernel.

    Args:
        group: the group's hyperparameters (its ``fused``, ``foreach``, ``differentiable``).
        params: the tensors of the step.
    """
    if group.get("differentiable") or group.get("foreach"):
        return False
    fused = group.get("fused")
    if fused is False or (fused is None and group.get("foreach") is False):
        return False  # the for-loop was asked for by name
    if not cpu_fused.available():
        return False
    # plain memory only: a wrapper subclass (DTensor under FSDP2) has no storage of its own for
    # the kernel to read; the eager kernels step it through its own dispatch
    return all(map(_IS_CPU, params)) and all(map(_PLAIN_MEMORY, params))


def select_kernel(group: Mapping[str, Any], params: Sequence[torch.Tensor]) -> Kernel:
    """The kernel for one group's step, taking prepared scalars:
    ``kernel(rule, hp, params, grads, states, scalars)``.

    Example:
        >>> import torch
        >>> select_kernel({"foreach": True}, [torch.zeros(2)]).__name__
        'run_foreach'
    """
    if group.get("differentiable"):
        return run_single
    if group.get("foreach"):
        return run_foreach
    if use_fused(group, params):
        return cpu_fused.run_prepared
    return run_single


def run_group(
    rule: Rule,
    hp: Mapping[str, Any],
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[MutableMapping[str, Any]],
    fresh: Sequence[bool],
    *,
    grad_scale: torch.Tensor | None = None,
    cache: dict[str, Any] | None = None,
) -> None:
    """Compute the host scalars and run one group's step with the selected kernel.

    Args:
        rule: the element-wise rule.
        hp: the group's hyperparameters for this step.
        params, grads: the tensors to update and their gradients.
        states: each parameter's state (created already).
        fresh: per parameter, whether its state was created this step.
        grad_scale: ``GradScaler``'s scale; the gradients are divided by it (inside the pass on
            the fused kernel) and ``p.grad`` is left holding the unscaled gradient, as torch's
            fused kernels leave it.
        cache: a dict the caller keeps for these tensors between steps, where the fused
            kernel remembers what its checks found (see :func:`cpu_fused.fused_step`).
    """
    if use_fused(hp, params):
        cpu_fused.fused_step(
            rule, hp, params, grads, states, fresh, grad_scale=grad_scale, cache=cache
        )
        return
    if grad_scale is not None:
        grads = [g / grad_scale.to(g.device) for g in grads]
        for p, g in zip(params, grads):
            if p.grad is not None:
                p.grad.copy_(g)
    master = [mw.wants_master(hp, p) for p in params]
    for p, st, f, m in zip(params, states, fresh, master):
        if m:
            mw.ensure_master_state(rule, hp, p, st, f)
    scalars = [rule.prepare(hp, st, f) for st, f in zip(states, fresh)]
    run_prepared(rule, hp, params, grads, states, scalars)


def run_prepared(
    rule: Rule,
    hp: Mapping[str, Any],
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[Mapping[str, Any]],
    scalars: Sequence[Mapping[str, Any]],
) -> None:
    """Run one group's step from host scalars prepared already (one dict per tensor), with the
    kernel the group's flags select, on the float32 master copies where the group keeps them.

    Args:
        rule: the element-wise rule.
        hp: the group's hyperparameters for this step (its flags pick the kernel).
        params, grads: the tensors to update and their gradients.
        states: per tensor, a mapping from the rule's buffer names (and the master copy's) to
            the arrays to update -- the stored state, or views into it: a dialect whose buffer
            is a part of what it stores passes that part (Paddle's ASGD steps one row of its
            gradient table).
        scalars: per tensor, ``rule.prepare``'s result.

    Example:
        >>> import torch
        >>> from polyoptim.rules.sgd import sgd
        >>> p, buf = torch.ones(3), torch.zeros(3)
        >>> hp = {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": False,
        ...       "weight_decay": 0.0, "maximize": False, "foreach": True}
        >>> sc = sgd.prepare(hp, {"momentum_buffer": buf}, False)
        >>> run_prepared(sgd, hp, [p], [torch.ones(3)], [{"momentum_buffer": buf}], [sc])
        >>> p
        tensor([0.9000, 0.9000, 0.9000])
    """
    kernel = select_kernel(hp, params)
    if any(mw.wants_master(hp, p) for p in params):
        mw.run_on_master(kernel, rule, hp, params, grads, states, scalars)
    else:
        kernel(rule, hp, params, grads, states, scalars)
