r"""Gradient centralization (Yong et al., 2020).

:math:`g \leftarrow g - \operatorname{mean}(g)` over every axis but the first, for gradients of
at least ``min_ndim`` dimensions (MindSpore also requires ``shape[1] % 16 == 0``).
"""

from __future__ import annotations

from ..engine import GradTransform
from ._select import Where, everywhere, selected


def centralize(
    min_ndim: int = 2, divisible: int | None = None, where: Where = everywhere
) -> GradTransform:
    r"""Gradient centralization: subtract from each gradient its mean over axes 1..n-1.

    .. math::
        g \leftarrow g - \operatorname{mean}_{1..n-1}(g)

    (for a matrix, each row's mean). Gradients with fewer than ``min_ndim`` dimensions, or
    whose ``shape[1]`` is not a multiple of ``divisible``, are left as they are.

    Args:
        min_ndim: skip gradients with fewer dimensions (default 2).
        divisible: when set, skip gradients whose ``shape[1]`` is not a multiple of it
            (MindSpore's rule uses 16).
        where: ``where(param, group) -> bool`` chooses the parameters it acts on (default: all).

    Returns:
        A transform for :meth:`polyoptim.Optimizer.add_transform`; it runs over all param groups
        before the update, in the order the transforms were added.

    Example:
        >>> import torch, polyoptim
        >>> w = torch.nn.Parameter(torch.zeros(1, 2)); w.grad = torch.tensor([[1.0, 3.0]])
        >>> opt = polyoptim.SGD([w], lr=1.0).add_transform(centralize())
        >>> opt.step(); w.detach()
        tensor([[ 1., -1.]])
    """

    def transform(groups, params, grads):
        for i, j, _, g in selected(groups, params, grads, where):
            if g.dim() < min_ndim or (divisible and g.shape[1] % divisible):
                continue
            grads[i][j] = g - g.mean(dim=tuple(range(1, g.dim())), keepdim=True)

    return transform
