r"""Multiplying gradients by a constant, e.g. undoing a static loss scale:
:math:`g \leftarrow g \cdot s`."""

from __future__ import annotations

from ..engine import GradTransform
from ._select import Where, everywhere, selected


def scale(factor: float, where: Where = everywhere) -> GradTransform:
    r"""Multiply every selected gradient by a constant: :math:`g \leftarrow s\,g`.

    Used to undo a static loss scale (``factor = 1 / loss_scale``).

    Args:
        factor: :math:`s`.
        where: ``where(param, group) -> bool`` chooses the parameters it acts on (default: all).

    Returns:
        A transform for :meth:`polyoptim.Optimizer.add_transform`; it runs over all param groups
        before the update, in the order the transforms were added.

    Example:
        >>> import torch, polyoptim
        >>> w = torch.nn.Parameter(torch.zeros(2)); w.grad = torch.full((2,), 1024.0)
        >>> opt = polyoptim.SGD([w], lr=1.0).add_transform(scale(1 / 1024))
        >>> opt.step(); w.detach()
        tensor([-1., -1.])
    """

    def transform(groups, params, grads):
        for i, j, _, g in selected(groups, params, grads, where):
            grads[i][j] = g * factor

    return transform
