"""What a rule is: the math of one step of one element-wise algorithm, written once.

A rule knows nothing of devices, dtypes, groups or frameworks. It names

* its state buffers (parameter-shaped tensors, under torch's state names) and how each starts,
* ``prepare``: the host-side work of one step for one tensor -- advancing counters kept in the
  state (``step``, ``mu_product``, ...) and computing the per-tensor scalars the update needs
  (bias corrections, step sizes), in Python floats, once per tensor per step,
* ``update``: the element-wise update, written with arithmetic operators and the functions of an
  ``ops`` namespace, so the same text runs on whole tensors (eager), on lists of tensors
  (foreach) and on single elements inside a compiled loop (fused).

``update(ops, p, g, *buffers, **scalars)`` returns ``(p, *buffers)`` -- new values, which the
kernel writes back. Nothing is updated in place inside a rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import torch

Hyper = Mapping[str, Any]
Scalars = dict[str, Any]


def zeros(p: torch.Tensor, hp: Hyper) -> torch.Tensor:
    """A zero buffer shaped, typed and laid out like the parameter."""
    return torch.zeros_like(p, memory_format=torch.preserve_format)


def ones(p: torch.Tensor, hp: Hyper) -> torch.Tensor:
    """A buffer of ones shaped like the parameter."""
    return torch.ones_like(p, memory_format=torch.preserve_format)


def host_scalar(value: float) -> Callable[[torch.Tensor, Hyper], torch.Tensor]:
    """The initialiser of a 0-d float32 host-state tensor holding ``value``: on the parameter's
    device with ``capturable`` or ``fused`` (as torch keeps ``step`` and ``mu_product``
    there), else on the host."""

    def init(p: torch.Tensor, hp: Hyper) -> torch.Tensor:
        if hp.get("capturable") or hp.get("fused"):
            return torch.full((), value, dtype=torch.float32, device=p.device)
        return torch.tensor(value, dtype=torch.float32)

    return init


#: torch's ``step`` state (see :func:`host_scalar`)
step_counter = host_scalar(0.0)


@dataclass(frozen=True)
class Buffer:
    """One parameter-shaped state buffer.

    Attributes:
        name: the state key (torch's name: ``exp_avg``, ``square_avg``, ...).
        init: makes the initial value from the parameter and the group's hyperparameters.
        when: the buffer exists only where this predicate of the hyperparameters holds
            (``max_exp_avg_sq`` only with ``amsgrad``).
    """

    name: str
    init: Callable[[torch.Tensor, Hyper], torch.Tensor] = zeros
    when: Callable[[Hyper], bool] = lambda hp: True


@dataclass(frozen=True)
class Rule:
    """An element-wise optimizer algorithm.

    Attributes:
        name: the algorithm's name.
        buffers: parameter-shaped state, in the order ``update`` takes and returns it.
        update: ``update(ops, p, g, *buffers, **scalars) -> (p, *buffers)``.
        prepare: ``prepare(hp, state, fresh) -> scalars``; advances host counters kept in
            ``state``; ``fresh`` is true on the step that created the state.
        host_state: non-buffer state created before the buffers (``step`` and friends), as
            ``name -> init``; the order fixes the order of keys in the state dict.
    """

    name: str
    buffers: tuple[Buffer, ...]
    update: Callable[..., tuple]
    prepare: Callable[[Hyper, MutableMapping[str, Any], bool], Scalars]
    host_state: Mapping[str, Callable[[torch.Tensor, Hyper], Any]] = field(default_factory=dict)

    def active_buffers(self, hp: Hyper) -> tuple[Buffer, ...]:
        """The buffers this configuration keeps."""
        return tuple(b for b in self.buffers if b.when(hp))

    def init_state(self, p: torch.Tensor, hp: Hyper, state: MutableMapping[str, Any]) -> None:
        """Create the state of one parameter, in torch's key order."""
        for name, init in self.host_state.items():
            state[name] = init(p, hp)
        for b in self.active_buffers(hp):
            state[b.name] = b.init(p, hp)


def host_float(t: torch.Tensor) -> float:
    """A one-element tensor's value as a Python float. A ``DTensor`` (a norm of a sharded
    parameter is a pending reduction over the ranks) is reduced first: its ``item()`` would
    read this rank's partial value."""
    full = getattr(t, "full_tensor", None)
    return float(full() if full is not None else t)


def as_float(x: Any) -> Any:
    """``float(x)`` for a number or a one-element tensor. A kernel that computes the host
    scalars on the device (a ``capturable`` step: no host synchronisation) passes values that
    convert themselves instead, so a rule's ``prepare`` stays one text for both."""
    convert = getattr(x, "as_float", None)
    return convert() if convert is not None else float(x)


def on_device(x: Any) -> bool:
    """Whether ``x`` stands for per-tensor values kept on the device (see :func:`as_float`):
    a rule must not branch on it in Python, but may :func:`pick` by it."""
    return hasattr(x, "as_float")


def sqrt(x: Any) -> Any:
    """``math.sqrt`` of a host scalar (or of per-tensor device values, see :func:`as_float`)."""
    return x.sqrt() if on_device(x) else math.sqrt(x)


def pick(cond: Any, a: Any, b: Any) -> Any:
    """``a if cond else b``, where ``cond`` may be per-tensor device values (then chosen per
    tensor on the device, both sides computed)."""
    if on_device(cond):
        return cond.choose(a, b)
    return a if cond else b


def maximum(a: Any, b: Any) -> Any:
    """Python's ``max(a, b)`` (``a`` unless ``b > a``) of host scalars or device values."""
    if on_device(a) or on_device(b):
        return pick(b > a, b, a)
    return max(a, b)


def set_host_scalar(state: MutableMapping[str, Any], key: str, value: Any) -> None:
    """Write ``value`` into the one-element host-state tensor ``state[key]``, rounded to its
    dtype as ``copy_`` of a Python float rounds it (or into device values, see
    :func:`as_float`)."""
    dst = state[key]
    if on_device(dst):
        dst.assign(value)
    else:
        dst.copy_(torch.as_tensor(value))


def step_of(state: MutableMapping[str, Any]) -> Any:
    """Advance the ``step`` counter kept in the state and return its new value (a float; see
    :func:`as_float`)."""
    step = state["step"]
    if isinstance(step, torch.Tensor):
        step += 1
        return float(step.item())
    if on_device(step):
        step += 1
        return step.as_float()
    state["step"] = step + 1
    return float(step + 1)
