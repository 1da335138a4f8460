r"""Paddle's learning-rate schedulers (``paddle.optimizer.lr``), on plain Python floats.

The contract is Paddle's, not torch's:

* a scheduler is constructed at epoch 0: the constructor calls :meth:`LRScheduler.step` once,
  so ``last_epoch`` goes from ``-1`` to ``0`` and ``last_lr = get_lr()``;
* ``scheduler.step()`` is called by hand (usually once per epoch or per iteration) and
  increments ``last_epoch``; ``step(epoch)`` jumps, using the closed form where one exists;
* the optimizer does not own the schedule: given ``learning_rate=scheduler`` it reads
  ``scheduler()`` (= ``last_lr``) at every ``opt.step()``;
* ``state_dict()`` holds ``last_epoch`` and ``last_lr`` (plus ``LinearWarmup_LR`` for a wrapped
  scheduler, and the plateau counters for :class:`ReduceOnPlateau`).

Example:
    >>> import torch
    >>> from polyoptim import paddle as P
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> sched = P.lr.StepDecay(learning_rate=0.5, step_size=2, gamma=0.1)
    >>> opt = P.SGD(learning_rate=sched, parameters=[w])
    >>> [round(opt.get_lr(), 6) for _ in range(4) if sched.step() is None]
    [0.5, 0.05, 0.05, 0.005]
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch

__all__ = [
    "LRScheduler",
    "NoamDecay",
    "PiecewiseDecay",
    "NaturalExpDecay",
    "InverseTimeDecay",
    "PolynomialDecay",
    "LinearWarmup",
    "ExponentialDecay",
    "MultiStepDecay",
    "StepDecay",
    "LambdaDecay",
    "ReduceOnPlateau",
    "CosineAnnealingDecay",
    "MultiplicativeDecay",
    "OneCycleLR",
    "CyclicLR",
    "LinearLR",
    "CosineAnnealingWarmRestarts",
]


class LRScheduler:
    """Base class: a learning rate that changes when :meth:`step` is called.

    Subclasses implement :meth:`get_lr` from ``self.last_epoch`` (and ``self.base_lr``,
    ``self.last_lr``).

    Args:
        learning_rate: the initial learning rate (a float or int, at least 0).
        last_epoch: the epoch before the first :meth:`step` (-1 starts at epoch 0).
        verbose: print the learning rate at every step.

    Example:
        >>> from polyoptim.paddle.lr import LRScheduler
        >>> class Halving(LRScheduler):
        ...     def get_lr(self):
        ...         return self.base_lr * 0.5**self.last_epoch
        >>> sched = Halving(learning_rate=0.8)
        >>> sched(), sched.last_epoch
        (0.8, 0)
        >>> sched.step(); sched()
        0.4
    """

    base_lr: float
    last_lr: float
    last_epoch: int
    verbose: bool

    def __init__(
        self, learning_rate: float = 0.1, last_epoch: int = -1, verbose: bool = False
    ) -> None:
        if not isinstance(learning_rate, (float, int)):
            raise TypeError(
                f"The type of learning rate must be float, but received {type(learning_rate)}"
            )
        if learning_rate < 0:
            raise ValueError(f"Invalid learning rate: {learning_rate}")
        self.base_lr = float(learning_rate)
        self.last_lr = float(learning_rate)
        self.last_epoch = last_epoch
        self.verbose = verbose
        self.step()

    def __call__(self) -> float:
        """The current learning rate (``last_lr``)."""
        return self.last_lr

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (or jump to ``epoch``) and update ``last_lr``.

        Args:
            epoch: the epoch to jump to; None increments ``last_epoch``.
        """
        if epoch is None:
            self.last_epoch += 1
            self.last_lr = self.get_lr()
        else:
            self.last_epoch = epoch
            closed_form = getattr(self, "_get_closed_form_lr", None)
            self.last_lr = closed_form() if closed_form is not None else self.get_lr()
        if self.verbose:
            print(
                f"Epoch {self.last_epoch}: {type(self).__name__} set learning rate to "
                f"{self.last_lr}."
            )

    def state_keys(self) -> None:
        """Set ``self.keys``, the attributes :meth:`state_dict` saves."""
        self.keys = ["last_epoch", "last_lr"]

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's state: ``{'last_epoch': int, 'last_lr': float, ...}``."""
        self.state_keys()
        state: dict[str, Any] = {}
        for key in self.keys:
            if key not in self.__dict__:
                continue
            value = self.__dict__[key]
            if isinstance(value, torch.Tensor):
                assert value.numel() == 1, "numel of Tensor in state_dict must be 1"
                value = float(value)
            state[key] = value
        return state

    def _check_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.state_keys()
        if not isinstance(state_dict, dict):
            raise TypeError(
                f"a scheduler state_dict must be a dict, but received {type(state_dict).__name__}"
            )
        for key in self.keys:
            if key not in state_dict:
                raise RuntimeError(
                    "Please check whether state_dict is correct for optimizer. Can't find "
                    f"[ {key} ] in state_dict"
                )

    def set_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (keys are checked before anything changes)."""
        self._check_state_dict(state_dict)
        values = {}  # all converted first: a value that fails changes nothing
        for key in self.keys:
            value = state_dict[key]
            if isinstance(value, (np.ndarray, np.generic)):
                value = value.item()
            values[key] = value
        self.__dict__.update(values)
        if len(state_dict) > len(self.keys):
            warnings.warn(
                "There are some unused values in state_dict. Maybe the optimizer have "
                "different 'LearningRateDecay' when invoking state_dict and set_dict",
                stacklevel=2,
            )

    set_dict = set_state_dict

    def get_lr(self) -> float:
        """The learning rate at ``self.last_epoch``."""
        raise NotImplementedError


class NoamDecay(LRScheduler):
    r"""Noam decay (Transformer): :math:`lr \cdot d^{-1/2} \min(e^{-1/2}, w^{-3/2} e)`, with
    :math:`e^{-1/2} := 1` at epoch 0.

    Args:
        d_model: the model width :math:`d` (> 0).
        warmup_steps: :math:`w`.
        learning_rate: the multiplier (default 1.0).
        last_epoch: the epoch before the first :meth:`step` (-1, the default, starts at
            epoch 0).
        verbose: print the learning rate at every :meth:`step`.

    Example:
        >>> from polyoptim.paddle.lr import NoamDecay
        >>> sched = NoamDecay(d_model=64, warmup_steps=3)
        >>> rates = []
        >>> for epoch in range(6):
        ...     rates.append(round(sched(), 6))  # this epoch's rate
        ...     sched.step()
        >>> rates
        [0.0, 0.024056, 0.048113, 0.072169, 0.0625, 0.055902]
    """

    def __init__(
        self,
        d_model: int,
        warmup_steps: int,
        learning_rate: float = 1.0,
        last_epoch: int = -1,
        verbose: bool = False,
    ) -> None:
        if d_model <= 0:
            raise ValueError("d_model should be grater than 0")
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        super().__init__(learning_rate, last_epoch, verbose)

    def get_lr(self) -> float:
        a = 1 if self.last_epoch == 0 else self.last_epoch**-0.5
        b = self.warmup_steps**-1.5 * self.last_epoch
        return self.base_lr * (self.d_model**-0.5) * min(a, b)


class PiecewiseDecay(LRScheduler):
    """Piecewise constant: ``values[i]`` while ``epoch < boundaries[i]``, the last value after.

    Args:
        boundaries: increasing epochs.
        values: one more value than boundaries.
        last_epoch: the epoch before the first :meth:`step` (-1, the default, starts at
            epoch 0).
        verbose: print the learning rate at every :meth:`step`.

    Example:
        >>> from polyoptim.paddle.lr import PiecewiseDecay
        >>> sched = PiecewiseDecay(boundaries=[2, 4], values=[0.1, 0.01, 0.001])
        >>> rates = []
        >>> for epoch in range(6):
        ...     rates.append(round(sched(), 6))  # this epoch's rate
        ...     sched.step()
        >>> rates
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    """

    def __init__(
        self,
        boundaries: Sequence[int],
        values: Sequence[float],
        last_epoch: int = -1,
        verbose: bool = False,
    ) -> None:
        if len(boundaries) == 0:
            raise ValueError("The boundaries cannot be empty.")
        if len(values) <= len(boundaries):
            raise ValueError(
                "The values have one more element than boundaries, but received len(values) "
                f"[{len(values)}] < len(boundaries) + 1 [{len(boundaries) + 1}]."
            )
        self.boundaries = boundaries
        self.values = values
        super().__init__(last_epoch=last_epoch, verbose=verbose)

    def get_lr(self) -> float:
        for i, boundary in enumerate(self.boundaries):
            if self.last_epoch < boundary:
                return self.values[i]
        return self.values[len(self.values) - 1]


class NaturalExpDecay(LRScheduler):
    r""":math:`lr \cdot e^{-\gamma\, epoch}`.

    Args:
        learning_rate: the initial learning rate.
        gamma: the decay rate (> 0).
        last_epoch: the epoch before the first :meth:`step` (-1, the default, starts at
            epoch 0).
        verbose: print the learning rate at every :meth:`step`.

    Example:
        >>> from polyoptim.paddle.lr import NaturalExpDecay
        >>> sched = NaturalExpDecay(learning_rate=0.5, gamma=0.1)
        >>> rates = []
        >>> for epoch in range(4):
        ...     rates.append(round(sched(), 6))  # this epoch's rate
        ...     sched.step()
        >>> rates
        [0.5, 0.452419, 0.409365, 0.370409]
    """

    def __init__(
        self, learning_rate: float, gamma: float, last_epoch: int = -1, verbose: bool = False
    ) -> None:
        assert gamma > 0.0, (
            " 'gamma' must be a positive number so that the learning rate will decay."
        )
        self.gamma = gamma
        super().__init__(learning_rate, last_epoch, verbose)

    def get_lr(self) -> float:
        return self.base_lr * math.exp(-1 * self.gamma * self.last_epoch)


class InverseTimeDecay(LRScheduler):
    r""":math:`lr / (1 + \gamma\, epoch)`.

    Args:
        learning_rate: the initial learning rate.
        gamma: the decay rate.
        last_epoch: the epoch before the first :meth:`step` (-1, the default, starts at
            epoch 0).
        verbose: print the learning rate at every :meth:`step`.

    Example:
        >>> from polyoptim.paddle.lr import InverseTimeDecay
        >>> sched = InverseTimeDecay(learning_rate=0.5, gamma=0.5)
        >>> rates = []
        >>> for epoch in range(4):
        ...     rates.append(round(sched(), 6))  # this epoch's rate
        ...     sched.step()
        >>> rates
        [0.5, 0.333333, 0.25, 0.2]
    """

    def __init__(
        self, learning_rate: float, gamma: float, last_epoch: int = -1, verbose: bool = False
    ) -> None:
        self.gamma = gamma
        super().__init__(learning_rate, last_epoch, verbose)

    def get_lr(self) -> float:
        return self.base_lr / (1 + self.gamma * self.last_epoch)


class PolynomialDecay(LRScheduler):
    r""":math:`(lr - end)(1 - e/s)^{power} + end`, with :math:`e = \min(epoch, s)`; with
    ``cycle`` the horizon :math:`s` grows to the next multiple of ``decay_steps`` instead.

    Args:
        learning_rate: the initial learning rate.
        decay_steps: :math:`s` (a positive int).
        end_lr: the final learning rate (default 1e-4).
        power: the exponent (> 0).
        cycle: restart the decay every ``decay_steps``.
        last_epoch: the epoch before the first :meth:`step` (-1, the default, starts at
            epoch 0).
        verbose: print the learning rate at every :meth:`step`.

    Example:
        >>> from polyoptim.paddle.lr import PolynomialDecay
        >>> sched = PolynomialDecay(learning_rate=0.5, decay_steps=4, end_lr=0.1)
        >>> rates = []
        >>> for epoch in range(6):
        ...     rates.append(round(sched(), 6))  # this epoch's rate
        ...     sched.step()
        >>> rates
        [0.5, 0.4, 0.3, 0.2, 0.1, 0.1]
    """

    def __init__(
        self,
        learning_rate: float,
        decay_steps: int,
        end_lr: float = 0.0001,
        power: float = 1.0,
        cycle: bool = False,
        last_epoch: int = -1,
        verbose: bool = False,
    ) -> None:
        assert decay_steps > 0 and isinstance(decay_steps, int), (
            " 'decay_steps' must be a positive integer."
        )
        self.decay_steps = decay_steps
        self.end_lr = end_lr
        assert power > 0.0, (
            " 'power' must be greater than 0.0 so that the learning rate will decay."
        )
        self.power = power
        self.cycle = cycle
        super().__init__(learning_rate, last_epoch, verbose)

    def get_lr(self) -> float:
        epoch, steps = self.last_epoch, self.decay_steps
        if self.cycle:
            div = math.ceil(float(self.last_epoch) / float(self.decay_steps))
            if self.last_epoch == 0:
                div = 1
            steps = self.decay_steps * div
        else:
            epoch = min(self.last_epoch, self.decay_steps)
        return (self.base_lr - self.end_lr) * (
            (1 - float(epoch) / float(steps)) ** self.power
        ) + self.end_lr


class LinearWarmup(LRScheduler):
    r"""Linear warm-up from ``start_lr`` to ``end_lr`` over ``warmup_steps`` epochs, then
    ``learning_rate`` (a float, or a scheduler stepped to ``epoch - warmup_steps``).

    Args:
        learning_rate: the learning rate after warm-up: a float or an :class:`LRScheduler`.
        warmup_steps: a positive int.
        start_lr: the first learning rate.
        end_lr: the learning rate reached at the end of warm-up (> ``start_lr``).
        last_epoch: the epoch before the first :meth:`step` (-1, the default, starts at
            epoch 0).
        verbose: print the learning rate at every :meth:`step`.

    Example:
        >>> from polyoptim.paddle.lr import LinearWarmup
        >>> sched = LinearWarmup(learning_rate=0.5, warmup_steps=4, start_lr=0.0, end_lr=0.5)
        >>> rates = []
        >>> for epoch in range(6):
        ...     rates.append(round(sched(), 6))  # this epoch's rate
        ...     sched.step()
        >>> rates
        [0.0, 0.125, 0.25, 0.375, 0.5, 0.5]
    """

    def __init__(
        self,
        learning_rate: float | LRScheduler,
        warmup_steps: int,
        start_lr: float,
        end_lr: float,
        last_epoch: int = -1,
        verbose: bool = False,
    ) -> None:
        if not isinstance(learning_rate, (float, int, LRScheduler)):
            raise TypeError(
                "the type of learning_rate should be [int, float or LRScheduler], the current "
                f"type is {learning_rate}"
            )
        self.learning_rate = learning_rate
        assert warmup_steps > 0 and isinstance(warmup_steps, int), (
            " 'warmup_steps' must be a positive integer."
        )
        self.warmup_steps = warmup_steps
        self.start_lr = start_lr
        self.end_lr = end_lr
        assert end_lr > start_lr, f"end_lr {end_lr} must be greater than start_lr {start_lr}"
        super().__init__(start_lr, last_epoch, verbose)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if isinstance(self.learning_rate, LRScheduler):
            state["LinearWarmup_LR"] = self.learning_rate.state_dict()
        return state

    def set_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._check_state_dict(state_dict)
        if isinstance(self.learning_rate, LRScheduler):
            if "LinearWarmup_LR" not in state_dict:
                raise RuntimeError(
                    "Please check whether state_dict is correct for optimizer. Can't find "
                    "[ LinearWarmup_LR ] in state_dict"
                )
            self.learning_rate._check_state_dict(state_dict["LinearWarmup_LR"])
        inner = {k: v for k, v in state_dict.items() if k != "LinearWarmup_LR"}
        super().set_state_dict(inner)
        if isinstance(self.learning_rate, LRScheduler):
            self.learning_rate.set_state_dict(state_dict["LinearWarmup_LR"])

    set_dict = set_state_dict

    def get_lr(self) -> float:
        if self.last_epoch < self.warmup_steps:
            return (self.end_lr - self.start_lr) * float(self.last_epoch) / float(
                self.warmup_steps
            ) + self.start_lr
        if isinstance(self.learning_rate, LRScheduler):
            self.learning_rate.step(self.last_epoch - self.warmup_steps)
            return self.learning_rate()
        return self.learning_rate


class ExponentialDecay(LRScheduler):
    r""":math:`lr \cdot \gamma^{epoch}`.

    Args:
        learning_rate: the initial learning rate.
        gamma: in (0, 1).
        last_epoch: the epoch before the first :meth:`step` (-1, the default, starts at
            epoch 0).
        verbose: print the learning rate at every :meth:`step`.

    Example:
        >>> from polyoptim.paddle.lr import ExponentialDecay
        >>> sched = ExponentialDecay(learning_rate=0.5, gamma=0.9)
        >>> rates = []
        >>> for epoch in range(4):
        ...     rates.append(round(sched(), 6))  # this epoch's rate
        ...     sched.step()
        >>> rates
        [0.5, 0.45, 0.405, 0.3645]
    """

    def __init__(
        self, learning_rate: float, gamma: float, last_epoch: int = -1, verbose: bool = False
    ) -> None:
        assert gamma > 0.0 and gamma < 1.0, (
            " 'gamma' must be in interval (0.0, 1.0) so that the learning rate will decay."
        )
        self.gamma = gamma
        super().__init__(learning_rate, last_epoch, verbose)

    def get_lr(self) -> float:
        return self.base_lr * (self.gamma**self.last_epoch)


class MultiStepDecay(LRScheduler):
    r""":math:`lr \cdot \gamma^{i}` with :math:`i` the number of milestones passed.

    Args:
        learning_rate: the initial learning rate.
        milestones: increasing epochs (list or tuple).
        gamma: the factor (< 1, default 0.1).
        last_epoch: the epoch before the first :meth:`step` (-1, the default, starts at
            epoch 0).
        verbose: print the learning rate at every :meth:`step`.

    Example:
        >>> from polyoptim.paddle.lr import MultiStepDecay
        >>> sched = MultiStepDecay(learning_rate=0.5, milestones=[2, 4], gamma=0.1)
        >>> rates = []
        >>> for epoch in range(6):
        ...     rates.append(round(sched(), 6))  # this epoch's rate
        ...     sched.step()
        >>> rates
        [0.5, 0.5, 0.05, 0.05, 0.005, 0.005]
    """

    def __init__(
        self,
        learning_rate: float,
        milestones: Sequence[int],
        gamma: float = 0.1,
        last_epoch: int = -1,
        verbose: bool = False,
    ) -> None:
        if not isinstance(milestones, (tuple, list)):
            raise TypeError(
                "The type of 'milestones' in 'MultiStepDecay' must be 'tuple, list', but "
                f"received {type(milestones)}."
            )
        if not all(milestones[i] < milestones[i + 1] for i in range(len(milestones) - 1)):
            raise ValueError("The elements of milestones must be incremented")
        if gamma >= 1.0:
            raise ValueError("gamma should be < 1.0.")
        self.milestones = milestones
        self.gamma = gamma
        super().__init__(learning_rate, last_epoch, verbose)

    def get_lr(self) -> float:
        for i, milestone in enumerate(self.milestones):
            if self.last_epoch < milestone:
                return self.base_lr * (self.gamma**i)
        return self.base_lr * (self.gamma ** len(self.milestones))


class StepDecay(LRScheduler):
    r""":math:`lr \cdot \gamma^{\lfloor epoch / s\rfloor}`.

    Args:
        learning_rate: the initial learning rate.
        step_size: :math:`s` (a positive int).
        gamma: the factor (< 1, default 0.1).
        last_epoch: the epoch before the first :meth:`step` (-1, the default, starts at
            epoch 0).
        verbose: print the learning rate at every :meth:`step`.

    Example:
        >>> from polyoptim.paddle.lr import StepDecay
        >>> sched = StepDecay(learning_rate=0.5, step_size=2, gamma=0.1)
        >>> rates = []
        >>> for epoch in range(5):
        ...     rates.append(round(sched(), 6))  # this epoch's rate
        ...     sched.step()
        >>> rates
        [0.5, 0.5, 0.05, 0.05, 0.005]
    """

    def __init__(
        self,
        learning_rate: float,
        step_size: int,
        gamma: float = 0.1,
        last_epoch: int = -1,
        verbose: bool = False,
    ) -> None:
        if not isinstance(step_size, int):
            raise TypeError(
                f"The type of 'step_size' must be 'int', but received {type(step_size)}."
            )
        if gamma >= 1.0:
            raise ValueError("gamma should be < 1.0.")
        assert step_size > 0 and isinstance(step_size, int), (
            " 'step_size' must be a positive integer."
        )
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(learning_rate, last_epoch, verbose)

    def get_lr(self) -> float:
        return self.base_lr * (self.gamma ** (self.last_epoch // self.step_size))


def _checked_lambda(scheduler: str, lr_lambda: Any) -> Callable[[int], float]:
    """Paddle's check that a scheduler's ``lr_lambda`` is callable, with its message."""
    if not callable(lr_lambda):
        raise TypeError(
            f"The type of 'lr_lambda' in '{scheduler}' must be 'function', but received "
            f"{type(lr_lambda)}."
        )
    return lr_lambda


class LambdaDecay(LRScheduler):
    r""":math:`lr \cdot \lambda(epoch)`.

    Args:
        learning_rate: the initial learning rate.
        lr_lambda: a function of the epoch.
        last_epoch: the epoch before the first :meth:`step` (-1, the default, starts at
            epoch 0).
        verbose: print the learning rate at every :meth:`step`.

    Example:
        >>> from polyoptim.paddle.lr import LambdaDecay
        >>> sched = LambdaDecay(learning_rate=0.5, lr_lambda=lambda epoch: 0.9**epoch)
        >>> rates = []
        >>> for epoch in range(4):
        ...     rates.append(round(sched(), 6))  # this epoch's rate
        ...     sched.step()
        >>> rates
        [0.5, 0.45, 0.405, 0.3645]
    """

    def __init__(
        self,
        learning_rate: float,
        lr_lambda: Callable[[int], float],
        last_epoch: int = -1,
        verbose: bool = False,
    ) -> None:
        self.lr_lambda = _checked_lambda("LambdaDecay", lr_lambda)
        super().__init__(learning_rate, last_epoch, verbose)

    def get_lr(self) -> float:
        return self.base_lr * self.lr_lambda(self.last_epoch)


class MultiplicativeDecay(LRScheduler):
    r""":math:`lr \cdot \prod_{k=1}^{epoch} \lambda(k)`.

    Args:
        learning_rate: the initial learning rate.
        lr_lambda: a function of the epoch.
        last_epoch: the epoch before the first :meth:`step` (-1, the default, starts at
            epoch 0).
        verbose: print the learning rate at every :meth:`step`.

    Example:
        >>> from polyoptim.paddle.lr import MultiplicativeDecay
        >>> sched = MultiplicativeDecay(learning_rate=0.5, lr_lambda=lambda epoch: 0.5)
        >>> rates = []
        >>> for epoch in range(4):
        ...     rates.append(round(sched(), 6))  # this epoch's rate
        ...     sched.step()
        >>> rates
        [0.5, 0.25, 0.125, 0.0625]
    """

    def __init__(
        self,
        learning_rate: float,
        lr_lambda: Callable[[int], float],
        last_epoch: int = -1,
        verbose: bool = False,
    ) -> None:
        self.lr_lambda = _checked_lambda("MultiplicativeDecay", lr_lambda)
        super().__init__(learning_rate, last_epoch, verbose)

    def get_lr(self) -> float:
        lr = self.base_lr
        for epoch in range(1, self.last_epoch + 1):
            lr = lr * self.lr_lambda(epoch)
        return lr


class ReduceOnPlateau(LRScheduler):
    r"""Multiply the learning rate by ``factor`` when a metric stops improving.

    Called as ``step(metric)``. After ``patience`` epochs without an improvement larger than
    ``threshold`` (relative or absolute) the rate becomes :math:`\max(lr \cdot factor,
    min\_lr)`, unless that changes it by ``epsilon`` or less; then ``cooldown`` epochs follow
    during which the metric is ignored entirely (Paddle does not update ``best`` then, torch
    does).

    Args:
        learning_rate: the initial learning rate.
        mode: ``'min'`` or ``'max'``.
        factor: < 1.
        patience: epochs without improvement tolerated.
        threshold: the improvement that counts.
        threshold_mode: ``'rel'`` or ``'abs'``.
        cooldown: epochs to wait after a reduction.
        min_lr: the lower bound.
        epsilon: the smallest change applied.
        last_epoch: the epoch before the first :meth:`step` (-1, the default, starts at
            epoch 0).
        verbose: print the learning rate at every :meth:`step`.

    Example:
        >>> from polyoptim.paddle.lr import ReduceOnPlateau
        >>> sched = ReduceOnPlateau(learning_rate=0.5, factor=0.5, patience=1)
        >>> rates = []
        >>> for loss in [1.0, 0.9, 0.9, 0.9, 0.9, 0.9]:  # one step per epoch, with its metric
        ...     rates.append(round(sched(), 6))
        ...     sched.step(loss)
        >>> rates
        [0.5, 0.5, 0.5, 0.5, 0.25, 0.25]
    """

    def __init__(
        self,
        learning_rate: float,
        mode: Literal["min", "max"] = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: Literal["rel", "abs"] = "rel",
        cooldown: int = 0,
        min_lr: float = 0,
        epsilon: float = 1e-8,
        verbose: bool = False,
    ) -> None:
        mode = mode.lower()  # type: ignore[assignment]
        if mode not in ["min", "max"]:
            raise ValueError("mode: " + mode + " is unknown!")
        self.mode = mode
        if factor >= 1.0:
            raise ValueError("new_lr = origin_lr * gamma and gamma should be < 1.0.")
        self.factor = factor
        threshold_mode = threshold_mode.lower()  # type: ignore[assignment]
        if threshold_mode not in ["rel", "abs"]:
            raise ValueError("threshold mode: " + threshold_mode + " is unknown!")
        if not isinstance(learning_rate, (float, int)):
            raise TypeError(
                "The type of 'learning_rate' in 'ReduceOnPlateau' must be 'float', but "
                f"received {type(learning_rate)}."
            )
        self.patience = patience
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self.cooldown = cooldown
        self.min_lr = min_lr
        self.epsilon = epsilon
        self.cooldown_counter = 0
        self.best: Any = None
        self.num_bad_epochs = 0
        self.base_lr = float(learning_rate)
        self.last_lr = float(learning_rate)
        self.last_epoch = 0
        self.verbose = verbose

    def state_keys(self) -> None:
        self.keys = ["cooldown_counter", "best", "num_bad_epochs", "last_epoch", "last_lr"]

    def step(self, metrics: Any, epoch: int | None = None) -> None:  # type: ignore[override]
        """Record this epoch's metric (a number or a one-element tensor/array).

        Args:
            metrics: the monitored value.
            epoch: the epoch to jump to; None increments ``last_epoch``.
        """
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if isinstance(metrics, (torch.Tensor, np.ndarray)):
            size = metrics.numel() if isinstance(metrics, torch.Tensor) else metrics.size
            assert size == 1, (
                f"the size of metrics must be 1, but the current metrics.size is {size}. "
                "Maybe that you should call paddle.mean to process it first."
            )
            metrics = float(metrics.reshape(-1)[0])
        elif not isinstance(metrics, numbers.Real):
            raise TypeError(
                "metrics must be 'int', 'float', 'np.float64', 'numpy.ndarray' or "
                f"'paddle.Tensor', but receive {type(metrics)}"
            )
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            return
        if self.best is None or self._is_better(metrics, self.best):
            self.best = metrics
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.num_bad_epochs > self.patience:
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
            new_lr = max(self.last_lr * self.factor, self.min_lr)
            if self.last_lr - new_lr > self.epsilon:
                self.last_lr = new_lr
                if self.verbose:
                    print(
                        f"Epoch {self.last_epoch}: {type(self).__name__} set learning rate to "
                        f"{self.last_lr}."
                    )

    def _is_better(self, current: float, best: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return current < best - best * self.threshold
        if self.mode == "min" and self.threshold_mode == "abs":
            return current < best - self.threshold
        if self.mode == "max" and self.threshold_mode == "rel":
            return current > best + best * self.threshold
        return current > best + self.threshold

    def get_lr(self) -> float:
        return self.last_lr


class CosineAnnealingDecay(LRScheduler):
    r"""Cosine annealing (SGDR without restarts), in the recursive form torch also uses:

    .. math::
        \eta_e = \eta_{min} + (\eta_{e-1} - \eta_{min})
        \frac{1 + \cos(\pi e / T)}{1 + \cos(\pi (e-1) / T)}

    Args:
        learning_rate: the initial learning rate.
        T_max: half the period (a positive int).
        eta_min: the minimum (default 0).
        last_epoch: the epoch before the first :meth:`step` (-1, the default, starts at
            epoch 0).
        verbose: print the learning rate at every :meth:`step`.

    Example:
        >>> from polyoptim.paddle.lr import CosineAnnealingDecay
        >>> sched = CosineAnnealingDecay(learning_rate=0.5, T_max=4)
        >>> rates = []
        >>> for epoch in range(6):
        ...     rates.append(round(sched(), 6))  # this epoch's rate
        ...     sched.step()
        >>> rates
        [0.5, 0.426777, 0.25, 0.073223, 0.0, 0.073223]
    """

    def __init__(
        self,
        learning_rate: float,
        T_max: int,
        eta_min: float = 0,
        last_epoch: int = -1,
        verbose: bool = False,
    ) -> None:
        if not isinstance(T_max, int):
            raise TypeError(
                "The type of 'T_max' in 'CosineAnnealingDecay' must be 'int', but received "
                f"{type(T_max)}."
            )
        if not isinstance(eta_min, (float, int)):
            raise TypeError(
                "The type of 'eta_min' in 'CosineAnnealingDecay' must be 'float, int', but "
                f"received {type(eta_min)}."
            )
        assert T_max > 0 and isinstance(T_max, int), " 'T_max' must be a positive integer."
        self.T_max = T_max
        self.eta_min = float(eta_min)
        super().__init__(learning_rate, last_epoch, verbose)

    def get_lr(self) -> float:
        if self.last_epoch == 0:
            return self.base_lr
        if (self.last_epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
            return (
                self.last_lr
                + (self.base_lr - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
            )
        return (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / (
            1 + math.cos(math.pi * (self.last_epoch - 1) / self.T_max)
        ) * (self.last_lr - self.eta_min) + self.eta_min

    def _get_closed_form_lr(self) -> float:
        return (
            self.eta_min
            + (self.base_lr - self.eta_min)
            * (1 + math.cos(math.pi * self.last_epoch / self.T_max))
            / 2
        )


class OneCycleLR(LRScheduler):
    r"""The one-cycle policy: from ``max_learning_rate / divide_factor`` up to
    ``max_learning_rate`` over ``phase_pct`` of ``total_steps``, then down to
    ``end_learning_rate`` (an absolute rate, unlike torch's ``initial_lr/final_div_factor``);
    with ``three_phase`` the descent first returns to the initial rate.

    Args:
        max_learning_rate: the peak.
        total_steps: the number of steps in the cycle.
        divide_factor: initial rate = peak / divide_factor (default 25).
        end_learning_rate: the final rate (default 1e-4).
        phase_pct: the fraction of steps spent increasing (a float in [0, 1]).
        anneal_strategy: ``'cos'`` or ``'linear'``.
        three_phase: use the three-phase schedule.
        last_epoch: the epoch before the first :meth:`step` (-1, the default, starts at
            epoch 0).
        verbose: print the learning rate at every :meth:`step`.

    Example:
        >>> from polyoptim.paddle.lr import OneCycleLR
        >>> sched = OneCycleLR(max_learning_rate=1.0, total_steps=6, phase_pct=0.4)
        >>> rates = []
        >>> for epoch in range(6):
        ...     rates.append(round(sched(), 4))  # this epoch's rate
        ...     sched.step()
        >>> rates
        [0.04, 0.8193, 0.933, 0.5869, 0.1787, 0.0001]
    """

    def __init__(
        self,
        max_learning_rate: float,
        total_steps: int,
        divide_factor: float = 25.0,
        end_learning_rate: float = 0.0001,
        phase_pct: float = 0.3,
        anneal_strategy: Literal["cos", "linear"] = "cos",
        three_phase: bool = False,
        last_epoch: int = -1,
        verbose: bool = False,
    ) -> None:
        if not isinstance(max_learning_rate, (float, int)):
            raise TypeError(
                "'max_learning_rate' must be 'float' or 'int', but received "
                f"{type(max_learning_rate)}"
            )
        if max_learning_rate < 0:
            raise ValueError("'max_learning_rate' must be a positive integer.")
        if not isinstance(end_learning_rate, (float, int)):
            raise TypeError(
                "'end_learning_rate' must be 'float' or 'int', but received "
                f"{type(end_learning_rate)}"
            )
        if end_learning_rate < 0:
            raise ValueError("'end_learning_rate' must be a positive integer.")
        if not isinstance(total_steps, int):
            raise TypeError(f"'total_step' must be 'int', but received {type(total_steps)}")
        if total_steps <= 0:
            raise ValueError("'total_step' must be a positive integer.")
        self.total_steps = total_steps
        if not isinstance(phase_pct, float):
            raise TypeError(f"'phase_pct' must be 'float', but received {type(phase_pct)}")
        if phase_pct < 0 or phase_pct > 1:
            raise ValueError(f"'phase_pct' must be between 0 and 1, but received {phase_pct}")
        if not isinstance(divide_factor, (float, int)):
            raise TypeError(
                f"'divide_factor' must be 'float' or 'int', but received {type(divide_factor)}"
            )
        initial_lr = max_learning_rate / float(divide_factor)
        min_lr = float(end_learning_rate)
        n = self.total_steps
        if three_phase:
            if phase_pct >= 0.5:
                raise ValueError("When three_phase is True, 'phase_pct' must be less than 0.5")
            self._step_config = [0, phase_pct * n - 1, 2 * phase_pct * n - 2, n - 1, n - 1]
            c = self._step_config
            self._steps_size = [c[1] - c[0], c[2] - c[1], c[3] - c[2], c[3] - c[2]]
            self._lr_config = [initial_lr, max_learning_rate, initial_lr, min_lr]
        else:
            self._step_config = [0, phase_pct * n - 1, n - 1, n - 1]
            c = self._step_config
            self._steps_size = [c[1] - c[0], c[2] - c[1], c[2] - c[1]]
            self._lr_config = [initial_lr, max_learning_rate, min_lr]
        if anneal_strategy == "cos":
            self.anneal_func = self._cos_annealing
        elif anneal_strategy == "linear":
            self.anneal_func = self._linear_annealing
        else:
            raise ValueError(
                "'anneal_strategy' must by one of 'cos' or 'linear', but received "
                f"{anneal_strategy}"
            )
        super().__init__(initial_lr, last_epoch, verbose)

    @staticmethod
    def _cos_annealing(start_lr: float, end_lr: float, pct: float) -> float:
        return end_lr + (start_lr - end_lr) / 2.0 * (math.cos(math.pi * pct) + 1)

    @staticmethod
    def _linear_annealing(start_lr: float, end_lr: float, pct: float) -> float:
        return (end_lr - start_lr) * pct + start_lr

    def get_lr(self) -> float:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(
                f"Tried to step {step} times. However the number of total steps is "
                f"{self.total_steps}"
            )
        phases = zip(self._step_config[1:], self._steps_size)
        for i, (end_step, size) in enumerate(phases):
            if step <= end_step or i == len(self._lr_config) - 2:
                pct = (step - self._step_config[i]) / size
                return self.anneal_func(self._lr_config[i], self._lr_config[i + 1], pct)
        raise AssertionError("unreachable")  # pragma: no cover


class CyclicLR(LRScheduler):
    r"""Cyclical learning rate between ``base_learning_rate`` and ``max_learning_rate``:
    up in ``step_size_up`` steps, down in ``step_size_down``; the amplitude is scaled by
    ``scale_fn`` of the cycle number or of the iteration.

    Args:
        base_learning_rate: the lower bound.
        max_learning_rate: the upper bound.
        step_size_up: steps of the rising half (a positive int).
        step_size_down: steps of the falling half (default ``step_size_up``).
        mode: ``'triangular'``, ``'triangular2'`` (amplitude halves every cycle) or
            ``'exp_range'`` (amplitude × ``exp_gamma`` per iteration).
        exp_gamma: the factor of ``'exp_range'`` (a float).
        scale_fn: a custom scaling function (overrides ``mode``).
        scale_mode: ``'cycle'`` or ``'iterations'``, the argument given to ``scale_fn``.
        last_epoch: the epoch before the first :meth:`step` (-1, the default, starts at
            epoch 0).
        verbose: print the learning rate at every :meth:`step`.

    Example:
        >>> from polyoptim.paddle.lr import CyclicLR
        >>> sched = CyclicLR(base_learning_rate=0.1, max_learning_rate=0.5, step_size_up=2)
        >>> rates = []
        >>> for epoch in range(6):
        ...     rates.append(round(sched(), 6))  # this epoch's rate
        ...     sched.step()
        >>> rates
        [0.1, 0.3, 0.5, 0.3, 0.1, 0.3]
    """

    def __init__(
        self,
        base_learning_rate: float,
        max_learning_rate: float,
        step_size_up: int,
        step_size_down: int | None = None,
        mode: Literal["triangular", "triangular2", "exp_range"] = "triangular",
        exp_gamma: float = 1.0,
        scale_fn: Callable[[float], float] | None = None,
        scale_mode: Literal["cycle", "iterations"] = "cycle",
        last_epoch: int = -1,
        verbose: bool = False,
    ) -> None:
        if not isinstance(max_learning_rate, (float, int)):
            raise TypeError(
                "'max_learning_rate' must be 'float' or 'int', but received "
                f"{type(max_learning_rate)}"
            )
        if max_learning_rate < 0:
            raise ValueError(
                f"'max_learning_rate' must be a positive integer, but received {max_learning_rate}"
            )
        if not isinstance(step_size_up, int):
            raise TypeError(
                f"The type of 'step_size_up' must be int, but received {type(step_size_up)}"
            )
        if step_size_up <= 0:
            raise ValueError(
                f"'step_size_up' must be a positive integer, but received {step_size_up}"
            )
        if step_size_down is not None:
            if not isinstance(step_size_down, int):
                raise TypeError(
                    f"The type of 'step_size_down' must be int, but received {type(step_size_down)}"
                )
            if step_size_down <= 0:
                raise ValueError(
                    f"'step_size_down' must be a positive integer, but received {step_size_down}"
                )
        if not isinstance(exp_gamma, float):
            raise TypeError(
                f"The type of 'exp_gamma' must be float, but received {type(exp_gamma)}"
            )
        up = float(step_size_up)
        down = float(step_size_down) if step_size_down is not None else up
        self.cycle_size = up + down
        self.step_up_pct = up / self.cycle_size
        self.max_lr = float(max_learning_rate)
        self.amplitude = self.max_lr - base_learning_rate
        if mode not in ["triangular", "triangular2", "exp_range"] and scale_fn is None:
            raise ValueError(
                "'mode' is invalid and 'scale_fn' is not specified, make sure one of 'mode' or "
                "'scale_fn' is valid"
            )
        if scale_mode not in ["cycle", "iterations"]:
            raise ValueError("'scale_mode' must be one of 'cycle' or 'iterations")
        self.mode = mode
        self.gamma = exp_gamma
        if scale_fn is None:
            if self.mode == "triangular":
                self.scale_fn, self.scale_mode = self._triangular_scale_fn, "cycle"
            elif self.mode == "triangular2":
                self.scale_fn, self.scale_mode = self._triangular2_scale_fn, "cycle"
            else:
                self.scale_fn, self.scale_mode = self._exp_range_scale_fn, "iterations"
        else:
            self.scale_fn, self.scale_mode = scale_fn, scale_mode
        super().__init__(base_learning_rate, last_epoch, verbose)

    def _triangular_scale_fn(self, x: float) -> float:
        return 1.0

    def _triangular2_scale_fn(self, x: float) -> float:
        return 1 / (2.0 ** (x - 1))

    def _exp_range_scale_fn(self, x: float) -> float:
        return self.gamma**x

    def get_lr(self) -> float:
        iterations = self.last_epoch
        cycle = 1 + iterations // self.cycle_size
        pct = 1.0 + iterations / self.cycle_size - cycle
        if pct <= self.step_up_pct:
            scale_factor = pct / self.step_up_pct
        else:
            scale_factor = (1 - pct) / (1 - self.step_up_pct)
        base_height = self.amplitude * scale_factor
        x = cycle if self.scale_mode == "cycle" else iterations
        return self.base_lr + base_height * self.scale_fn(x)


class LinearLR(LRScheduler):
    r"""Multiply the learning rate by a factor going linearly from ``start_factor`` to
    ``end_factor`` over ``total_steps`` epochs (recursive form, as torch's ``LinearLR``).

    Args:
        learning_rate: the base learning rate.
        total_steps: the number of epochs of the ramp (> 0).
        start_factor: in (0, 1] (default 1/3).
        end_factor: in [0, 1] (default 1).
        last_epoch: the epoch before the first :meth:`step` (-1, the default, starts at
            epoch 0).
        verbose: print the learning rate at every :meth:`step`.

    Example:
        >>> from polyoptim.paddle.lr import LinearLR
        >>> sched = LinearLR(learning_rate=0.5, total_steps=3, start_factor=0.25)
        >>> rates = []
        >>> for epoch in range(5):
        ...     rates.append(round(sched(), 6))  # this epoch's rate
        ...     sched.step()
        >>> rates
        [0.125, 0.25, 0.375, 0.5, 0.5]
    """

    def __init__(
        self,
        learning_rate: float,
        total_steps: int,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        last_epoch: int = -1,
        verbose: bool = False,
    ) -> None:
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError(
                "`start_factor` must be greater than 0 and less or equal to 1, but got "
                f"{start_factor}"
            )
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError(
                f"`end_factor` must be greater than 0 and less than 1, but got {end_factor}"
            )
        if total_steps <= 0:
            raise ValueError(f"`total_steps` must be greater than 0, but got {total_steps}")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_steps = total_steps
        super().__init__(learning_rate, last_epoch, verbose)

    def get_lr(self) -> float:
        if self.last_epoch == 0:
            return self.base_lr * self.start_factor
        if self.last_epoch > self.total_steps:
            return self.last_lr
        base = self.total_steps * self.start_factor
        delta = self.end_factor - self.start_factor
        return self.last_lr * (1.0 + delta / (base + (self.last_epoch - 1) * delta))


class CosineAnnealingWarmRestarts(LRScheduler):
    r"""SGDR: cosine annealing restarted every :math:`T_i` epochs, :math:`T_{i+1} = T_i \cdot
    T_{mult}`: :math:`\eta = \eta_{min} + (lr - \eta_{min})(1 + \cos(\pi T_{cur}/T_i))/2`.

    Args:
        learning_rate: the initial learning rate.
        T_0: the first period (a positive int).
        T_mult: the period factor (an int >= 1).
        eta_min: the minimum.
        last_epoch: the epoch before the first :meth:`step` (-1, the default, starts at
            epoch 0).
        verbose: print the learning rate at every :meth:`step`.

    Example:
        >>> from polyoptim.paddle.lr import CosineAnnealingWarmRestarts
        >>> sched = CosineAnnealingWarmRestarts(learning_rate=0.5, T_0=2, T_mult=2)
        >>> rates = []
        >>> for epoch in range(7):
        ...     rates.append(round(sched(), 6))  # this epoch's rate
        ...     sched.step()
        >>> rates
        [0.5, 0.25, 0.5, 0.426777, 0.25, 0.073223, 0.5]
    """

    def __init__(
        self,
        learning_rate: float,
        T_0: int,
        T_mult: int = 1,
        eta_min: float = 0,
        last_epoch: int = -1,
        verbose: bool = False,
    ) -> None:
        if T_0 <= 0 or not isinstance(T_0, int):
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if T_mult < 1 or not isinstance(T_mult, int):
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(learning_rate, last_epoch, verbose)

    def get_lr(self) -> float:
        return (
            self.eta_min
            + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
        )

    def set_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore ``last_epoch``/``last_lr`` (Paddle's state) and, unlike Paddle, the position
        in the current period (``T_cur``, ``T_i``), recomputed from ``last_epoch``, so a resumed
        schedule continues where it stopped."""
        super().set_state_dict(state_dict)
        epoch = self.last_epoch
        if epoch < 0:
            return
        if epoch >= self.T_0:
            if self.T_mult == 1:
                self.T_cur, self.T_i = epoch % self.T_0, self.T_0
            else:
                n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
                self.T_cur = epoch - self.T_0 * (self.T_mult**n - 1) / (self.T_mult - 1)
                self.T_i = self.T_0 * self.T_mult**n
        else:
            self.T_i, self.T_cur = self.T_0, epoch

    set_dict = set_state_dict

    def step(self, epoch: int | None = None) -> None:
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur - self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if epoch < 0:
                raise ValueError(f"Expected non-negative epoch, but got {epoch}")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult**n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult**n
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        self.last_lr = self.get_lr()
        if self.verbose:
            print(
                f"Epoch {self.last_epoch}: {type(self).__name__} set learning rate to "
                f"{self.last_lr}."
            )
