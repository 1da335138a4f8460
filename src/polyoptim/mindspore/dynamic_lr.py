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
    r""":math:`\gamma_i = \gamma\, r^{e/d}` (:math:`r^{\lfloor e/d\rfloor}` when ``is_stair``).

    Returns a list with the learning rate of each step (``mindspore.nn.exponential_decay_lr``).

    Args:
        learning_rate: :math:`\gamma`, a float > 0.
        decay_rate: :math:`r`, a float > 0.
        total_step: the length of the list (a positive int).
        step_per_epoch: steps per epoch :math:`n` (a positive int); step :math:`i` is in
            epoch :math:`e = \lfloor i/n \rfloor`.
        decay_epoch: :math:`d`, epochs per decay period (a positive int).
        is_stair: decay once every ``decay_epoch`` epochs instead of continuously.

    Returns:
        ``total_step`` floats.

    Example:
        >>> from polyoptim import mindspore as nn
        >>> [round(x, 6) for x in nn.exponential_decay_lr(0.1, 0.9, 6, 2, 1)]
        [0.1, 0.1, 0.09, 0.09, 0.081, 0.081]
    """
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
    r""":math:`\gamma_i = \gamma\, e^{-r e}`, with :math:`e` rounded down to a multiple of
    ``decay_epoch`` when ``is_stair`` (``mindspore.nn.natural_exp_decay_lr``, as MindSpore
    2.10.0 computes it: the exponent is not divided by ``decay_epoch``).

    Args:
        learning_rate: :math:`\gamma`, a float > 0.
        decay_rate: :math:`r`, a float > 0.
        total_step: the length of the list (a positive int).
        step_per_epoch: steps per epoch :math:`n` (a positive int); step :math:`i` is in
            epoch :math:`e = \lfloor i/n \rfloor`.
        decay_epoch: the period of ``is_stair`` (a positive int).
        is_stair: hold the rate for ``decay_epoch`` epochs at a time.

    Returns:
        ``total_step`` floats.

    Example:
        >>> from polyoptim import mindspore as nn
        >>> [round(x, 6) for x in nn.natural_exp_decay_lr(0.1, 0.5, 6, 2, 2, is_stair=True)]
        [0.1, 0.1, 0.1, 0.1, 0.036788, 0.036788]
    """
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
    r""":math:`\gamma_i = \gamma/(1 + r\, e/d)` (:math:`\lfloor e/d\rfloor` when ``is_stair``).

    Returns a list with the learning rate of each step (``mindspore.nn.inverse_decay_lr``).

    Args:
        learning_rate: :math:`\gamma`, a float > 0.
        decay_rate: :math:`r`, a float > 0.
        total_step: the length of the list (a positive int).
        step_per_epoch: steps per epoch :math:`n` (a positive int); step :math:`i` is in
            epoch :math:`e = \lfloor i/n \rfloor`.
        decay_epoch: :math:`d` (a positive int).
        is_stair: floor :math:`e/d`.

    Returns:
        ``total_step`` floats.

    Example:
        >>> from polyoptim import mindspore as nn
        >>> [round(x, 6) for x in nn.inverse_decay_lr(0.1, 0.5, 4, 1, 1)]
        [0.1, 0.066667, 0.05, 0.04]
    """
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
    (1 + \cos(\pi \min(e, d)/d))`.

    Returns a list with the learning rate of each step (``mindspore.nn.cosine_decay_lr``): from
    ``max_lr`` down to ``min_lr`` over ``decay_epoch`` epochs, then ``min_lr``.

    Args:
        min_lr: :math:`\gamma_{min}`, a float >= 0.
        max_lr: :math:`\gamma_{max}`, a float > ``min_lr``.
        total_step: the length of the list (a positive int).
        step_per_epoch: steps per epoch :math:`n` (a positive int); step :math:`i` is in
            epoch :math:`e = \lfloor i/n \rfloor`.
        decay_epoch: :math:`d` (a positive int).

    Returns:
        ``total_step`` floats.

    Example:
        >>> from polyoptim import mindspore as nn
        >>> [round(x, 6) for x in nn.cosine_decay_lr(0.01, 0.1, 6, 1, 4)]
        [0.1, 0.08682, 0.055, 0.02318, 0.01, 0.01]
    """
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
    r""":math:`\gamma_i = (\gamma - \gamma_{end})(1 - e'/d')^k + \gamma_{end}`.

    Returns a list with the learning rate of each step (``mindspore.nn.polynomial_decay_lr``),
    with :math:`e' = \min(e, d)`, :math:`d' = d`; or, with ``update_decay_epoch``,
    :math:`e' = e`, :math:`d' = d \max(\lceil e/d\rceil, 1)` (a new cycle every :math:`d`
    epochs).

    Args:
        learning_rate: :math:`\gamma`, a float > 0.
        end_learning_rate: :math:`\gamma_{end}`, a float >= 0.
        total_step: the length of the list (a positive int).
        step_per_epoch: steps per epoch :math:`n` (a positive int); step :math:`i` is in
            epoch :math:`e = \lfloor i/n \rfloor`.
        decay_epoch: :math:`d` (a positive int).
        power: :math:`k`, a float > 0.
        update_decay_epoch: restart the decay every ``decay_epoch`` epochs.

    Returns:
        ``total_step`` floats.

    Example:
        >>> from polyoptim import mindspore as nn
        >>> [round(x, 6) for x in nn.polynomial_decay_lr(0.1, 0.01, 6, 1, 4, power=1.0)]
        [0.1, 0.0775, 0.055, 0.0325, 0.01, 0.01]
    """
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
    r""":math:`\gamma_i = \gamma \min(e, w)/w`: a linear warm-up that starts at 0.

    Returns a list with the learning rate of each step (``mindspore.nn.warmup_lr``).

    Args:
        learning_rate: :math:`\gamma`, a float > 0.
        total_step: the length of the list (a positive int).
        step_per_epoch: steps per epoch :math:`n` (a positive int); step :math:`i` is in
            epoch :math:`e = \lfloor i/n \rfloor`.
        warmup_epoch: :math:`w`, epochs of warm-up (a positive int).

    Returns:
        ``total_step`` floats.

    Example:
        >>> from polyoptim import mindspore as nn
        >>> nn.warmup_lr(0.1, total_step=6, step_per_epoch=2, warmup_epoch=2)
        [0.0, 0.0, 0.05, 0.05, 0.1, 0.1]
    """
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
