r"""MindSpore's ``mindspore.nn.dynamic_lr``: learning-rate lists, one value per step.

Each function returns a Python list whose element ``i`` is the learning rate of step ``i``
(pass it as ``learning_rate``; the list must be as long as training). With
``step_per_epoch`` :math:`n`, step :math:`i` is in epoch :math:`e = \lfloor i/n \rfloor`.
Computed in float64 exactly as MindSpore 2.10.0 computes them.

Example:
    >>> from polyoptim import mindspore as nn
    >>> nn.warmup_lr(0.1, total_step=6, step_per_epoch=2, warmup_epoch=2)
    [0.0, 0.0, 0.05, 0.05, 0.1, 0.1]
"""

from __future__ import annotations

import math

from . import _validator as V

__all__ = [
    "cosine_decay_lr",
    "exponential_decay_lr",
    "inverse_decay_lr",
    "natural_exp_decay_lr",
    "piecewise_constant_lr",
    "polynomial_decay_lr",
    "warmup_lr",
]


def piecewise_constant_lr(milestone: list[int], learning_rates: list[float]) -> list[float]:
    r"""``learning_rates[i]`` for the steps before ``milestone[i]`` (and from the previous one).

    Args:
        milestone: increasing positive step counts; the last one is the list's length.
        learning_rates: one float per milestone.

    Example:
        >>> piecewise_constant_lr([2, 5], [0.1, 0.05])
        [0.1, 0.1, 0.05, 0.05, 0.05]
    """
    V.check_value_type("milestone", milestone, (tuple, list))
    V.check_value_type("learning_rates", learning_rates, (tuple, list))
    if len(milestone) != len(learning_rates):
        raise ValueError(
            "For 'piecewise_constant_lr', the size of 'milestone' must be same with the size "
            f"of 'learning_rates', but got 'milestone' size: {len(milestone)}, "
            f"'learning_rates' size: {len(learning_rates)}."
        )
    lr: list[float] = []
    last = 0
    for i, item in enumerate(milestone):
        V.check_positive_int(item, f"milestone[{i}]")
        V.check_is_float(learning_rates[i], f"learning_rates[{i}]")
        if item < last:
            raise ValueError(
                f"For 'piecewise_constant_lr', the value of milestone[{i}] must be greater than "
                f"milestone[{i - 1}], but got milestone[{i}]: {milestone[i]}, "
                f"milestone[{i - 1}]: {milestone[i - 1]}."
            )
        lr += [learning_rates[i]] * (item - last)
        last = item
    return lr


def _check_inputs(learning_rate, decay_rate, total_step, step_per_epoch, decay_epoch, is_stair):
    V.check_positive_int(total_step, "total_step")
    V.check_positive_int(step_per_epoch, "step_per_epoch")
    V.check_positive_int(decay_epoch, "decay_epoch")
    V.check_positive_float(learning_rate, "learning_rate")
    V.check_is_float(learning_rate, "learning_rate")
    V.check_positive_float(decay_rate, "decay_rate")
    V.check_is_float(decay_rate, "decay_rate")
    V.check_value_type("is_stair", is_stair, [bool])


def exponential_decay_lr(
    learning_rate: float,
    decay_rate: float,
    total_step: int,
    step_per_epoch: int,
    decay_epoch: int,
    is_stair: bool = False,
) -> list[float]:
    r""":math:`\gamma_i = \gamma r^{e/d}` (:math:`r^{\lfloor e/d\rfloor}` when ``is_stair``)."""
    _check_inputs(learning_rate, decay_rate, total_step, step_per_epoch, decay_epoch, is_stair)
    lr = []
    for i in range(total_step):
        epoch = math.floor(i / step_per_epoch)
        if is_stair:
            lr.append(learning_rate * decay_rate ** math.floor(epoch / decay_epoch))
        else:
            lr.append(learning_rate * decay_rate ** (epoch / decay_epoch))
    return lr


def natural_exp_decay_lr(
    learning_rate: float,
    decay_rate: float,
    total_step: int,
    step_per_epoch: int,
    decay_epoch: int,
    is_stair: bool = False,
) -> list[float]:
    r""":math:`\gamma_i = \gamma e^{-r e}` (:math:`e` rounded down to a multiple of
    ``decay_epoch`` when ``is_stair``)."""
    _check_inputs(learning_rate, decay_rate, total_step, step_per_epoch, decay_epoch, is_stair)
    lr = []
    for i in range(total_step):
        epoch = math.floor(i / step_per_epoch)
        if is_stair:
            epoch = math.floor(epoch / decay_epoch) * decay_epoch
        lr.append(learning_rate * math.e ** (-decay_rate * epoch))
    return lr


def inverse_decay_lr(
    learning_rate: float,
    decay_rate: float,
    total_step: int,
    step_per_epoch: int,
    decay_epoch: int,
    is_stair: bool = False,
) -> list[float]:
    r""":math:`\gamma_i = \gamma/(1 + r e/d)` (:math:`\lfloor e/d\rfloor` when ``is_stair``)."""
    _check_inputs(learning_rate, decay_rate, total_step, step_per_epoch, decay_epoch, is_stair)
    lr = []
    for i in range(total_step):
        epoch = math.floor(i / step_per_epoch)
        if is_stair:
            lr.append(learning_rate / (1 + decay_rate * math.floor(epoch / decay_epoch)))
        else:
            lr.append(learning_rate / (1 + decay_rate * epoch / decay_epoch))
    return lr


def cosine_decay_lr(
    min_lr: float, max_lr: float, total_step: int, step_per_epoch: int, decay_epoch: int
) -> list[float]:
    r""":math:`\gamma_i = \gamma_{min} + \tfrac12(\gamma_{max}-\gamma_{min})
    (1 + \cos(\pi \min(e, d)/d))`."""
    if not isinstance(min_lr, float):
        raise TypeError(
            "For 'cosine_decay_lr', the argument 'min_lr' must be type of float, "
            f"but got 'min_lr' type: {type(min_lr)}."
        )
    V.check_non_negative_float(min_lr, "min_lr", None)
    V.check_positive_float(max_lr, "max_lr")
    V.check_is_float(max_lr, "max_lr")
    V.check_positive_int(total_step, "total_step")
    V.check_positive_int(step_per_epoch, "step_per_epoch")
    V.check_positive_int(decay_epoch, "decay_epoch")
    if min_lr >= max_lr:
        raise ValueError(
            "For 'cosine_decay_lr', the 'max_lr' must be greater than the 'min_lr', "
            f"but got 'max_lr' value: {max_lr}, 'min_lr' value: {min_lr}."
        )
    delta = 0.5 * (max_lr - min_lr)
    lr = []
    for i in range(total_step):
        epoch = min(math.floor(i / step_per_epoch), decay_epoch)
        lr.append(min_lr + delta * (1 + math.cos(math.pi * epoch / decay_epoch)))
    return lr


def polynomial_decay_lr(
    learning_rate: float,
    end_learning_rate: float,
    total_step: int,
    step_per_epoch: int,
    decay_epoch: int,
    power: float,
    update_decay_epoch: bool = False,
) -> list[float]:
    r""":math:`\gamma_i = (\gamma - \gamma_{end})(1 - e'/d')^k + \gamma_{end}` with
    :math:`e' = \min(e, d)`, :math:`d' = d`; or with ``update_decay_epoch``
    :math:`e' = e`, :math:`d' = d \max(\lceil e/d\rceil, 1)`."""
    V.check_positive_float(learning_rate, "learning_rate")
    V.check_is_float(learning_rate, "learning_rate")
    if not isinstance(end_learning_rate, float):
        raise TypeError(
            "For 'polynomial_decay_lr', the argument 'end_learning_rate' must be type of float, "
            f"but got 'end_learning_rate' type: {type(end_learning_rate)}."
        )
    V.check_non_negative_float(end_learning_rate, "end_learning_rate", None)
    V.check_positive_float(power, "power")
    V.check_is_float(power, "power")
    V.check_positive_int(total_step, "total_step")
    V.check_positive_int(step_per_epoch, "step_per_epoch")
    V.check_positive_int(decay_epoch, "decay_epoch")
    V.check_value_type("update_decay_epoch", update_decay_epoch, [bool])
    delta = learning_rate - end_learning_rate
    lr = []
    for i in range(total_step):
        epoch = math.floor(i / step_per_epoch)
        if update_decay_epoch:
            span, tmp = decay_epoch * max(math.ceil(epoch / decay_epoch), 1), epoch
        else:
            span, tmp = decay_epoch, min(decay_epoch, epoch)
        lr.append(delta * (1 - tmp / span) ** power + end_learning_rate)
    return lr


def warmup_lr(
    learning_rate: float, total_step: int, step_per_epoch: int, warmup_epoch: int
) -> list[float]:
    r""":math:`\gamma_i = \gamma \min(e, w)/w` (so it starts at 0)."""
    if not isinstance(learning_rate, float):
        raise TypeError(
            "For 'warmup_lr', the argument 'learning_rate' must be type of float, "
            f"but got 'learning_rate' type: {type(learning_rate)}."
        )
    V.check_non_negative_float(learning_rate, "learning_rate", None)
    V.check_positive_int(warmup_epoch, "warmup_epoch")
    V.check_positive_int(total_step, "total_step")
    V.check_positive_int(step_per_epoch, "step_per_epoch")
    lr = []
    for i in range(total_step):
        epoch = math.floor(i / step_per_epoch)
        lr.append(learning_rate * min(warmup_epoch, epoch) / warmup_epoch)
    return lr
