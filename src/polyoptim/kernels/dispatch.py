"""Which kernel runs a group: decided from the group's ``foreach``/``fused``/``differentiable``
flags and the tensors' devices, never by the algorithm.

========================================  =================================================
group flags                               kernel
========================================  =================================================
``differentiable=True``                   eager, one tensor at a time (autograd follows it)
``foreach=True``                          eager, ``torch._foreach_*`` per (device, dtype)
``fused=True``                            the fused kernel of the tensors' device (below);
                                          eager when there is none -- same numbers
``foreach=False`` or ``fused=False``      eager, one tensor at a time (torch's for-loop)
neither given (the default)               the fused kernel of the tensors' device when there
                                          is one (it is faster; see docs/performance.md);
                                          else on CUDA the foreach kernel, elsewhere the
                                          for-loop
========================================  =================================================

The fused kernel of a device (:func:`fused_backend`): on the CPU the Numba kernel
(:mod:`~polyoptim.kernels.cpu_fused`), on CUDA the Triton kernel
(:mod:`~polyoptim.kernels.triton_fused`), each when its compiler can be imported. The environment
variable ``POLYOPTIM_KERNEL=triton`` sends every fused step to the Triton kernel whatever the
device (CPU tensors run in Triton's interpreter: how the Triton kernels are tested without a
GPU); ``POLYOPTIM_KERNEL=numba`` allows the CPU kernel only.

The fused default changes no numbers beyond float rounding: both kernels evaluate the same rule
in the same order (see :mod:`polyoptim.kernels.codegen`).
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from types import ModuleType
from typing import Any

import torch

from ..rules.base import Rule
from . import cpu_fused, triton_fused
from . import master as mw
from .eager import run_foreach, run_single
from .host_state import prepare_all
from .local import local_step_args, plain_memory

Kernel = Callable[..., None]

_IS_CPU = operator.attrgetter("is_cpu")

__all__ = [
    "Kernel",
    "fused_backend",
    "run_group",
    "run_prepared",
    "select_kernel",
    "use_fused",
]


def fused_backend(params: Sequence[torch.Tensor]) -> ModuleType | None:
    """The fused kernel module for the tensors' device, or None when there is none.

    Every tensor must be on one device: all on the CPU -> :mod:`cpu_fused` (Numba); all on one
    CUDA device -> :mod:`triton_fused`. ``POLYOPTIM_KERNEL=triton`` picks the Triton kernel for
    any device, ``POLYOPTIM_KERNEL=numba`` the CPU kernel only.

    Example:
        >>> import torch
        >>> fused_backend([torch.zeros(2)]) in (cpu_fused, None)
        True
    """
    choice = os.environ.get("POLYOPTIM_KERNEL", "").strip().lower()
    if choice == "triton":
        return triton_fused if triton_fused.available() else None
    if all(map(_IS_CPU, params)):
        return cpu_fused if cpu_fused.available() else None
    if choice == "numba" or not params:
        return None
    device = params[0].device
    if device.type == "cuda" and all(p.device == device for p in params):
        return triton_fused if triton_fused.available() else None
    return None


def _on_cuda(params: Sequence[torch.Tensor]) -> bool:
    return bool(params) and all(p.is_cuda for p in params)


def use_fused(group: Mapping[str, Any], params: Sequence[torch.Tensor]) -> bool:
    """Whether the group's step runs a fused kernel (:func:`fused_backend`).

    Args:
        group: the group's hyperparameters (its ``fused``, ``foreach``, ``differentiable``).
        params: the tensors of the step.
    """
    if group.get("differentiable") or group.get("foreach"):
        return False
    fused = group.get("fused")
    if fused is False or (fused is None and group.get("foreach") is False):
        return False  # the for-loop was asked for by name
    # a tensor subclass (DTensor, torch.compile's fake tensors) has no address to hand over
    return fused_backend(params) is not None and plain_memory(params)


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
        return fused_backend(params).run_prepared  # type: ignore[union-attr]
    if group.get("fused") is None and group.get("foreach") is None and _on_cuda(params):
        return run_foreach  # torch's CUDA default, when no fused kernel is at hand
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
    found_inf: torch.Tensor | None = None,
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
        found_inf: ``GradScaler``'s inf flag: when it is not zero the step changes nothing
            (decided on the device by the Triton kernel, on the host otherwise).
        cache: a dict the caller keeps for these tensors between steps, where the fused
            kernel remembers what its checks found (see :func:`cpu_fused.fused_step`).

    ``DTensor`` parameters (FSDP2, tensor parallelism) are stepped shard by shard: every kernel
    sees the local tensors (:func:`~polyoptim.kernels.local.local_step_args`).
    """
    params, grads, states, finish = local_step_args(params, grads, states, _shaped(rule))
    try:
        _run_group(rule, hp, params, grads, states, fresh, grad_scale, found_inf, cache)
    finally:
        finish()


def _shaped(rule: Rule) -> list[str]:
    """The state keys holding parameter-shaped tensors."""
    return [*(b.name for b in rule.buffers), mw.MASTER_KEY]


def _run_group(
    rule: Rule,
    hp: Mapping[str, Any],
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[MutableMapping[str, Any]],
    fresh: Sequence[bool],
    grad_scale: torch.Tensor | None,
    found_inf: torch.Tensor | None,
    cache: dict[str, Any] | None,
) -> None:
    backend = fused_backend(params) if use_fused(hp, params) else None
    if backend is triton_fused:
        triton_fused.fused_step(
            rule,
            hp,
            params,
            grads,
            states,
            fresh,
            grad_scale=grad_scale,
            found_inf=found_inf,
            cache=cache,
        )
        return
    if found_inf is not None and float(found_inf) != 0.0:
        return  # the scaler found inf/nan: skip the step, as torch's fused kernels do
    if backend is not None:
        backend.fused_step(
            rule, hp, params, grads, states, fresh, grad_scale=grad_scale, cache=cache
        )
        return
    if grad_scale is not None:
        grads = [g / grad_scale.to(g.device) for g in grads]
        for p, g in zip(params, grads):
            if p.grad is not None:
                p.grad.copy_(g)
    if hp.get("master_weights"):
        for p, st, f in zip(params, states, fresh):
            if mw.wants_master(hp, p):
                mw.ensure_master_state(rule, hp, p, st, f)
    # one ``prepare`` per distinct host state, as on the fused path: a step over thousands of
    # tensors at one step count does the host arithmetic once
    rows, srow = prepare_all(rule, hp, states, list(fresh), cache)
    scalars = rows * len(srow) if len(rows) == 1 else [rows[r] for r in srow]
    _run_prepared(rule, hp, params, grads, states, scalars)


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
    params, grads, states, finish = local_step_args(params, grads, states, _shaped(rule))
    try:
        _run_prepared(rule, hp, params, grads, states, scalars)
    finally:
        finish()


def _run_prepared(
    rule: Rule,
    hp: Mapping[str, Any],
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[Mapping[str, Any]],
    scalars: Sequence[Mapping[str, Any]],
) -> None:
    kernel = select_kernel(hp, params)
    if hp.get("master_weights") and any(mw.wants_master(hp, p) for p in params):
        mw.run_on_master(kernel, rule, hp, params, grads, states, scalars)
    else:
        kernel(rule, hp, params, grads, states, scalars)
