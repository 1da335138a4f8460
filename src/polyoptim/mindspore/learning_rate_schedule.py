r"""MindSpore's ``mindspore.nn.learning_rate_schedule``: learning rates computed from the
global step, in float32, exactly as MindSpore 2.10.0 computes them.

An optimizer given a schedule as ``learning_rate`` calls it with its global step (a 1-element
int32 tensor, 0 on the first step) before advancing the step. ``s`` below is that step.

Example:
    >>> import torch
    >>> from polyoptim import mindspore as nn
    >>> sched = nn.ExponentialDecayLR(0.1, 0.9, 4)
    >>> [round(float(sched(torch.tensor([s], dtype=torch.int32))), 6) for s in (0, 4, 8)]
    [0.1, 0.09, 0.081]
"""

from __future__ import annotations

import math
from typing import Any

import torch

from . import _validator as V

__all__ = [
    "CosineDecayLR",
    "ExponentialDecayLR",
    "InverseDecayLR",
    "LearningRateSchedule",
    "NaturalExpDecayLR",
    "PolynomialDecayLR",
    "WarmUpLR",
]

_F32 = torch.float32


def _step(global_step: Any) -> torch.Tensor:
    """The global step as MindSpore passes it: a tensor (int32 ``[1]`` from an optimizer)."""
    if isinstance(global_step, torch.Tensor):
        return global_step
    return torch.tensor([int(global_step)], dtype=torch.int32)


def _c(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=_F32)


class LearningRateSchedule:
    """Base class of learning-rate schedules: subclasses implement ``construct(global_step)``.

    ``global_step`` is a 1-element int32 tensor; the result is a float32 tensor (or a number).

    Example:
        >>> import torch
        >>> class Halving(LearningRateSchedule):
        ...     def __init__(self, lr):
        ...         super().__init__()
        ...         self.lr = lr
        ...     def construct(self, global_step):
        ...         return self.lr * 0.5 ** global_step.to(torch.float32)
        >>> float(Halving(0.4)(torch.tensor([2], dtype=torch.int32)))
        0.10000000149011612
    """

    def __init__(self) -> None:
        pass

    def construct(self, global_step: torch.Tensor) -> Any:
        raise NotImplementedError

    def __call__(self, global_step: Any) -> Any:
        return self.construct(_step(global_step))

    @property
    def cls_name(self) -> str:
        return type(self).__name__


def _check_inputs(lr, decay_rate, decay_steps, is_stair, cls_name):
    V.check_positive_int(decay_steps, "decay_steps", cls_name)
    V.check_positive_float(lr, "learning_rate", cls_name)
    V.check_is_float(lr, "learning_rate", cls_name)
    V.check_positive_float(decay_rate, "decay_rate", cls_name)
    V.check_is_float(decay_rate, "decay_rate", cls_name)
    V.check_value_type("is_stair", is_stair, [bool], cls_name)


class ExponentialDecayLR(LearningRateSchedule):
    r"""Exponential decay: :math:`\gamma_s = \gamma \cdot r^{p}`, :math:`p = s/d`
    (:math:`\lfloor s/d\rfloor` when ``is_stair``).

    Args:
        learning_rate: :math:`\gamma > 0`.
        decay_rate: :math:`r > 0`.
        decay_steps: :math:`d`, a positive int.
        is_stair: floor the exponent.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> sched = nn.ExponentialDecayLR(0.1, decay_rate=0.9, decay_steps=4)
        >>> def lr(step): return round(float(sched(torch.tensor([step], dtype=torch.int32))), 6)
        >>> [lr(s) for s in [0, 2, 4, 8]]
        [0.1, 0.094868, 0.09, 0.081]
    """

    def __init__(
        self, learning_rate: float, decay_rate: float, decay_steps: int, is_stair: bool = False
    ) -> None:
        super().__init__()
        _check_inputs(learning_rate, decay_rate, decay_steps, is_stair, self.cls_name)
        self.learning_rate = learning_rate
        self.decay_rate = decay_rate
        self.decay_steps = decay_steps
        self.is_stair = is_stair

    def construct(self, global_step: torch.Tensor) -> torch.Tensor:
        p = global_step.to(_F32) / self.decay_steps
        if self.is_stair:
            p = torch.floor(p)
        return self.learning_rate * torch.pow(_c(self.decay_rate), p)


class NaturalExpDecayLR(LearningRateSchedule):
    r"""Natural exponential decay as MindSpore 2.10.0 *computes* it:
    :math:`\gamma_s = \gamma e^{-r p}` with :math:`p = s` (:math:`\lfloor s/d\rfloor d` when
    ``is_stair``). MindSpore's docstring says :math:`p = s/d`; its code does not divide.

    Args:
        learning_rate: :math:`\gamma > 0`.
        decay_rate: :math:`r > 0`.
        decay_steps: :math:`d`, a positive int (used only by ``is_stair``).
        is_stair: step-wise decay every ``decay_steps``.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> sched = nn.NaturalExpDecayLR(0.1, decay_rate=0.5, decay_steps=2)
        >>> def lr(step): return round(float(sched(torch.tensor([step], dtype=torch.int32))), 6)
        >>> [lr(s) for s in [0, 1, 2, 4]]
        [0.1, 0.060653, 0.036788, 0.013534]
    """

    def __init__(
        self, learning_rate: float, decay_rate: float, decay_steps: int, is_stair: bool = False
    ) -> None:
        super().__init__()
        _check_inputs(learning_rate, decay_rate, decay_steps, is_stair, self.cls_name)
        self.learning_rate = learning_rate
        self.decay_rate = decay_rate
        self.decay_steps = decay_steps
        self.is_stair = is_stair

    def construct(self, global_step: torch.Tensor) -> torch.Tensor:
        p = global_step.to(_F32)
        if self.is_stair:
            p = torch.floor_divide(p, self.decay_steps) * self.decay_steps
        return self.learning_rate * torch.pow(_c(math.e), -self.decay_rate * p)


class InverseDecayLR(LearningRateSchedule):
    r"""Inverse-time decay: :math:`\gamma_s = \gamma / (1 + r p)`, :math:`p = s/d`
    (floored when ``is_stair``).

    Args:
        learning_rate: :math:`\gamma > 0`.
        decay_rate: :math:`r > 0`.
        decay_steps: :math:`d`, a positive int.
        is_stair: floor :math:`p`.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> sched = nn.InverseDecayLR(0.1, decay_rate=0.5, decay_steps=2)
        >>> def lr(step): return round(float(sched(torch.tensor([step], dtype=torch.int32))), 6)
        >>> [lr(s) for s in [0, 1, 2, 4]]
        [0.1, 0.08, 0.066667, 0.05]
    """

    def __init__(
        self, learning_rate: float, decay_rate: float, decay_steps: int, is_stair: bool = False
    ) -> None:
        super().__init__()
        _check_inputs(learning_rate, decay_rate, decay_steps, is_stair, self.cls_name)
        self.learning_rate = learning_rate
        self.decay_rate = decay_rate
        self.decay_steps = decay_steps
        self.is_stair = is_stair

    def construct(self, global_step: torch.Tensor) -> torch.Tensor:
        p = global_step.to(_F32) / self.decay_steps
        if self.is_stair:
            p = torch.floor(p)
        return self.learning_rate / (1 + self.decay_rate * p)


class CosineDecayLR(LearningRateSchedule):
    r"""Cosine decay from ``max_lr`` to ``min_lr`` over ``decay_steps``, then constant:

    .. math::
        \gamma_s = \gamma_{min} + \tfrac12(\gamma_{max}-\gamma_{min})
                   \big(1 + \sin(\pi(\min(s,d)/d + \tfrac12))\big)

    (:math:`\sin(\pi x + \pi/2) = \cos(\pi x)`, as MindSpore writes it).

    Args:
        min_lr: float :math:`\ge 0`.
        max_lr: float :math:`>` ``min_lr``.
        decay_steps: :math:`d`, a positive int.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> sched = nn.CosineDecayLR(min_lr=0.01, max_lr=0.1, decay_steps=4)
        >>> def lr(step): return round(float(sched(torch.tensor([step], dtype=torch.int32))), 6)
        >>> [lr(s) for s in range(6)]
        [0.1, 0.08682, 0.055, 0.02318, 0.01, 0.01]
    """

    def __init__(self, min_lr: float, max_lr: float, decay_steps: int) -> None:
        super().__init__()
        if not isinstance(min_lr, float):
            raise TypeError(
                "For 'CosineDecayLR', the argument 'min_lr' must be type of float, "
                f"but got 'min_lr' type: {type(min_lr)}."
            )
        V.check_non_negative_float(min_lr, "min_lr", self.cls_name)
        V.check_positive_float(max_lr, "max_lr", self.cls_name)
        V.check_is_float(max_lr, "max_lr", self.cls_name)
        V.check_positive_int(decay_steps, "decay_steps", self.cls_name)
        if min_lr >= max_lr:
            raise ValueError(
                "For 'CosineDecayLR', the 'max_lr' must be greater than the 'min_lr', "
                f"but got 'max_lr' value: {max_lr}, 'min_lr' value: {min_lr}."
            )
        self.min_lr = min_lr
        self.max_lr = max_lr
        self.decay_steps = decay_steps
        self.delta = 0.5 * (max_lr - min_lr)

    def construct(self, global_step: torch.Tensor) -> torch.Tensor:
        p = torch.clamp(global_step, max=self.decay_steps).to(_F32)
        return self.min_lr + self.delta * (1.0 + torch.sin(math.pi * (p / self.decay_steps + 0.5)))


class PolynomialDecayLR(LearningRateSchedule):
    r"""Polynomial decay from ``learning_rate`` to ``end_learning_rate``:

    .. math::
        \gamma_s = (\gamma - \gamma_{end})(1 - s'/d')^{k} + \gamma_{end}

    with :math:`s' = \min(s, d)`, :math:`d' = d`; or, with ``update_decay_steps``,
    :math:`s' = s`, :math:`d' = d\max(\lceil s/d\rceil, 1)` (a new cycle every :math:`d`).

    Args:
        learning_rate: :math:`\gamma > 0` (float).
        end_learning_rate: :math:`\gamma_{end} \ge 0` (float).
        decay_steps: :math:`d`, a positive int.
        power: :math:`k > 0` (float).
        update_decay_steps: restart the decay every ``decay_steps``.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> sched = nn.PolynomialDecayLR(0.1, end_learning_rate=0.01, decay_steps=4, power=1.0)
        >>> def lr(step): return round(float(sched(torch.tensor([step], dtype=torch.int32))), 6)
        >>> [lr(s) for s in range(6)]
        [0.1, 0.0775, 0.055, 0.0325, 0.01, 0.01]
    """

    def __init__(
        self,
        learning_rate: float,
        end_learning_rate: float,
        decay_steps: int,
        power: float,
        update_decay_steps: bool = False,
    ) -> None:
        super().__init__()
        V.check_positive_float(learning_rate, "learning_rate")
        V.check_is_float(learning_rate, "learning_rate")
        if not isinstance(end_learning_rate, float):
            raise TypeError(
                "For 'PolynomialDecayLR', the argument 'end_learning_rate' must be type of "
                f"float, but got 'end_learning_rate' type: {type(end_learning_rate)}."
            )
        V.check_non_negative_float(end_learning_rate, "end_learning_rate", self.cls_name)
        V.check_positive_int(decay_steps, "decay_steps", self.cls_name)
        V.check_value_type("update_decay_steps", update_decay_steps, [bool], self.cls_name)
        V.check_positive_float(power, "power", self.cls_name)
        V.check_is_float(power, "power", self.cls_name)
        self.decay_steps = decay_steps
        self.start_learning_rate = learning_rate
        self.end_learning_rate = end_learning_rate
        self.diff_learning_rate = learning_rate - end_learning_rate
        self.power = power
        self.update_decay_steps = update_decay_steps

    def construct(self, global_step: torch.Tensor) -> torch.Tensor:
        step = global_step.to(_F32)
        decay: Any = self.decay_steps
        if self.update_decay_steps:
            decay = decay * torch.clamp(torch.ceil(step / decay), min=1.0)
        else:
            step = torch.clamp(step, max=float(decay))
        p = step / decay
        return self.diff_learning_rate * torch.pow(1.0 - p, self.power) + self.end_learning_rate


class WarmUpLR(LearningRateSchedule):
    r"""Linear warm-up: :math:`\gamma_s = \gamma \min(s, w)/w` (0 on the first step).

    Args:
        learning_rate: :math:`\gamma \ge 0` (float).
        warmup_steps: :math:`w`, a positive int.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> sched = nn.WarmUpLR(0.1, warmup_steps=4)
        >>> def lr(step): return round(float(sched(torch.tensor([step], dtype=torch.int32))), 6)
        >>> [lr(s) for s in range(6)]
        [0.0, 0.025, 0.05, 0.075, 0.1, 0.1]
    """

    def __init__(self, learning_rate: float, warmup_steps: int) -> None:
        super().__init__()
        if not isinstance(learning_rate, float):
            raise TypeError(
                "For 'WarmUpLR', the argument 'learning_rate' must be type of float, "
                f"but got 'learning_rate' type: {type(learning_rate)}."
            )
        V.check_non_negative_float(learning_rate, "learning_rate", self.cls_name)
        V.check_positive_int(warmup_steps, "warmup_steps", self.cls_name)
        self.warmup_steps = warmup_steps
        self.learning_rate = learning_rate

    def construct(self, global_step: torch.Tensor) -> torch.Tensor:
        warmup = torch.clamp(global_step, max=self.warmup_steps).to(_F32) / self.warmup_steps
        return self.learning_rate * warmup
