r"""Paddle's regularizers (``paddle.regularizer``): coupled decay added to the gradient.

* ``L2Decay(c)``: :math:`g \leftarrow g + c\,p`
* ``L1Decay(c)``: :math:`g \leftarrow g + c\,\operatorname{sign}(p)`

They run after gradient clipping and before the update rule, through
:func:`polyoptim.transforms.l2_regularize` / :func:`~polyoptim.transforms.l1_regularize`.
"""

from __future__ import annotations

from typing import Any

import torch

from ..engine import GradTransform
from ..transforms import l1_regularize, l2_regularize
from ..transforms._select import Where, everywhere


class WeightDecayRegularizer:
    """Base class of Paddle's regularizers.

    Calling one, ``reg(param, grad)``, returns the term Paddle adds to the gradient.
    """

    _coeff: float

    def __init__(self, coeff: float = 0.0) -> None:
        self._coeff = float(coeff)

    @property
    def coeff(self) -> float:
        """The coefficient :math:`c`."""
        return self._coeff

    def term(self, param: torch.Tensor) -> torch.Tensor:
        """The term added to the gradient of ``param``."""
        raise NotImplementedError

    def __call__(self, param: torch.Tensor, grad: torch.Tensor | None = None, block: Any = None):
        return self.term(param.detach())

    def transform(self, where: Where = everywhere) -> GradTransform:
        """This regularizer as a whole-gradient transform over the parameters ``where`` picks."""
        raise NotImplementedError


class L1Decay(WeightDecayRegularizer):
    r"""L1 weight decay: :math:`g \leftarrow g + c\,\operatorname{sign}(p)`.

    Args:
        coeff: the coefficient :math:`c` (default 0.0).

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0])); w.grad = torch.zeros(2)
        >>> opt = P.SGD(learning_rate=1.0, parameters=[w], weight_decay=P.L1Decay(0.5))
        >>> opt.step(); w.detach()
        tensor([ 0.5000, -1.5000])
    """

    def term(self, param: torch.Tensor) -> torch.Tensor:
        return torch.sign(param) * self._coeff

    def transform(self, where: Where = everywhere) -> GradTransform:
        return l1_regularize(self._coeff, where)

    def __str__(self) -> str:
        return f"L1Decay, coeff={self._coeff:f}"

    __repr__ = __str__


class L2Decay(WeightDecayRegularizer):
    r"""L2 weight decay: :math:`g \leftarrow g + c\,p`.

    A float ``weight_decay`` given to an optimizer means ``L2Decay(weight_decay)``.

    Args:
        coeff: the coefficient :math:`c` (default 0.0).

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0])); w.grad = torch.zeros(2)
        >>> opt = P.SGD(learning_rate=1.0, parameters=[w], weight_decay=P.L2Decay(0.5))
        >>> opt.step(); w.detach()
        tensor([ 0.5000, -1.0000])
    """

    def term(self, param: torch.Tensor) -> torch.Tensor:
        return param * self._coeff

    def transform(self, where: Where = everywhere) -> GradTransform:
        return l2_regularize(self._coeff, where)

    def __str__(self) -> str:
        return f"L2Decay, coeff={self._coeff:f}"

    __repr__ = __str__


def as_regularizer(weight_decay: Any) -> Any:
    """Paddle's reading of a ``weight_decay`` argument: a number means ``L2Decay(number)``, a
    one-element Tensor likewise, ``None`` means none, a regularizer is kept -- and so is
    anything else, which the step refuses as Paddle's does."""
    if weight_decay is None or isinstance(weight_decay, WeightDecayRegularizer):
        return weight_decay
    if isinstance(weight_decay, bool):
        raise TypeError(f"weight_decay should be float or a regularizer, got {weight_decay!r}")
    if isinstance(weight_decay, (int, float)):
        return L2Decay(float(weight_decay))
    if isinstance(weight_decay, torch.Tensor) and weight_decay.numel() == 1:
        return L2Decay(float(weight_decay))
    # Paddle keeps anything else and calls it at the step ("'str' object is not callable"):
    # so does polyoptim (Optimizer.step refuses it before anything changes)
    return weight_decay


__all__ = ["L1Decay", "L2Decay", "WeightDecayRegularizer", "as_regularizer"]
