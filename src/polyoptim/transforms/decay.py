r"""Coupled regularizers added to the gradient before the rule.

* L2: :math:`g \leftarrow g + c\,p`
* L1: :math:`g \leftarrow g + c\,\operatorname{sign}(p)`
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..engine import GradTransform
from ._select import Where, everywhere, selected

Coeff = float | Callable[[torch.Tensor, dict[str, Any]], float]


def _regularize(
    coeff: Coeff, term: Callable[[torch.Tensor], torch.Tensor], where: Where
) -> GradTransform:
    def transform(groups, params, grads):
        for i, j, p, g in selected(groups, params, grads, where):
            c = coeff(p, groups[i]) if callable(coeff) else coeff
            if c:
                grads[i][j] = g + c * term(p.detach())

    return transform


def l2_regularize(coeff: Coeff, where: Where = everywhere) -> GradTransform:
    r"""Coupled L2 regularization: :math:`g \leftarrow g + c\,p`.

    Args:
        coeff: :math:`c`, a float or a function ``coeff(param, group) -> float`` (0 skips the
            parameter).
        where: ``where(param, group) -> bool`` chooses the parameters it acts on (default: all).

    Returns:
        A transform for :meth:`polyoptim.Optimizer.add_transform`; it runs over all param groups
        before the update, in the order the transforms were added.

    Example:
        >>> import torch, polyoptim
        >>> w = torch.nn.Parameter(torch.ones(2)); w.grad = torch.zeros(2)
        >>> opt = polyoptim.SGD([w], lr=1.0).add_transform(l2_regularize(0.5))
        >>> opt.step(); w.detach()
        tensor([0.5000, 0.5000])
    """
    return _regularize(coeff, lambda p: p, where)


def l1_regularize(coeff: Coeff, where: Where = everywhere) -> GradTransform:
    r"""Coupled L1 regularization: :math:`g \leftarrow g + c\,\operatorname{sign}(p)`.

    Args:
        coeff: :math:`c`, a float or a function ``coeff(param, group) -> float`` (0 skips the
            parameter).
        where: ``where(param, group) -> bool`` chooses the parameters it acts on (default: all).

    Returns:
        A transform for :meth:`polyoptim.Optimizer.add_transform`; it runs over all param groups
        before the update, in the order the transforms were added.

    Example:
        >>> import torch, polyoptim
        >>> w = torch.nn.Parameter(torch.tensor([2.0, -2.0])); w.grad = torch.zeros(2)
        >>> opt = polyoptim.SGD([w], lr=1.0).add_transform(l1_regularize(0.5))
        >>> opt.step(); w.detach()
        tensor([ 1.5000, -1.5000])
    """
    return _regularize(coeff, torch.sign, where)
