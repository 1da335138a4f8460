r"""Layer-wise adaptive rate scaling (You et al., 2017) as a gradient transform.

Each selected gradient is replaced, before the wrapped algorithm's rule, by

.. math::
    \tau = \eta\, \frac{\lVert w\rVert}{\lVert g\rVert + \lambda \lVert w\rVert + \epsilon}
    \qquad g \leftarrow \tau\,(g + \lambda w)

with :math:`\tau = 1` where :math:`\lVert w\rVert` or :math:`\lVert g\rVert` is 0. With
clipping (LARC), :math:`\tau \leftarrow \min(\tau/\gamma, 1)` for the step's learning rate
:math:`\gamma`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..engine import GradTransform
from ._select import Where, everywhere, selected

PerParam = Callable[[torch.Tensor, dict[str, Any]], float]


def lars(
    coefficient: float,
    epsilon: float,
    weight_decay: PerParam,
    *,
    use_clip: bool = False,
    lr: PerParam | None = None,
    where: Where = everywhere,
) -> GradTransform:
    """Scale each selected gradient by its layer's trust ratio (see the module docstring).

    Args:
        coefficient: :math:`\\eta`, the trust coefficient.
        epsilon: :math:`\\epsilon` in the denominator.
        weight_decay: ``weight_decay(param, group)``: :math:`\\lambda` for this step (0 for
            parameters that are not decayed).
        use_clip: LARC's clipping by the learning rate.
        lr: ``lr(param, group)``: this step's learning rate, needed with ``use_clip``.
        where: which parameters are scaled (others pass through untouched).

    Example:
        >>> import torch, polyoptim
        >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0])); w.grad = torch.tensor([0.0, 1.0])
        >>> opt = polyoptim.SGD([w], lr=1.0).add_transform(lars(0.1, 0.0, lambda p, g: 0.0))
        >>> opt.step(); w.detach()
        tensor([3.0000, 3.5000])
    """
    if use_clip and lr is None:
        raise ValueError("lars(use_clip=True) needs the learning rate")

    def transform(groups, params, grads):
        for i, j, p, g in selected(groups, params, grads, where):
            wd = weight_decay(p, groups[i])
            w = p.detach()
            w_norm = torch.linalg.vector_norm(w.float() if w.dtype.itemsize < 4 else w)
            g_norm = torch.linalg.vector_norm(g.float() if g.dtype.itemsize < 4 else g)
            trust = coefficient * w_norm / (g_norm + wd * w_norm + epsilon)
            if use_clip:
                trust = torch.clamp(trust / lr(p, groups[i]), max=1.0)
            trust = torch.where((w_norm > 0) & (g_norm > 0), trust, torch.ones_like(trust))
            decayed = g + wd * w if wd else g
            grads[i][j] = decayed * trust.to(g.dtype)

    return transform
