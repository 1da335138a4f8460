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
    """Subtract the mean over axes 1..n-1 from each qualifying gradient.

    Args:
        min_ndim: skip gradients with fewer dimensions.
        divisible: when set, skip gradients whose ``shape[1]`` is not a multiple of it.
        where: which parameters are centralized.

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
