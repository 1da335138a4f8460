r"""Gradient clipping: by value, by per-tensor norm, by global norm.

The conventions differ between frameworks and are options here, not copies:

* torch (``torch.nn.utils.clip_grad_norm_``): :math:`g \leftarrow g \cdot
  \min(1, c / (\lVert g\rVert + 10^{-6}))`;
* Paddle (``ClipGradByGlobalNorm``): :math:`g \leftarrow g \cdot c / \max(\lVert g\rVert, c)`,
  no epsilon, half-precision norms summed in float32.
"""

from __future__ import annotations

import torch

from ..engine import GradTransform
from ._select import Where, everywhere, selected


def clip_by_value(
    max_value: float, min_value: float | None = None, where: Where = everywhere
) -> GradTransform:
    r""":math:`g \leftarrow \operatorname{clip}(g, \min, \max)`, element-wise.

    Args:
        max_value: the upper bound :math:`\max`.
        min_value: the lower bound :math:`\min` (default ``-max_value``).
        where: ``where(param, group) -> bool`` chooses the parameters it acts on (default: all).

    Returns:
        A transform for :meth:`polyoptim.Optimizer.add_transform`; it runs over all param groups
        before the update, in the order the transforms were added.

    Example:
        >>> import torch, polyoptim
        >>> w = torch.nn.Parameter(torch.zeros(2)); w.grad = torch.tensor([3.0, -0.5])
        >>> opt = polyoptim.SGD([w], lr=1.0).add_transform(clip_by_value(1.0))
        >>> opt.step(); w.detach()
        tensor([-1.0000,  0.5000])
    """
    lo = -max_value if min_value is None else min_value

    def transform(groups, params, grads):
        for i, j, _, g in selected(groups, params, grads, where):
            grads[i][j] = g.clamp(lo, max_value)

    return transform


def clip_by_norm(max_norm: float, where: Where = everywhere) -> GradTransform:
    r"""Clip each gradient tensor to a norm of at most ``max_norm``, on its own.

    .. math::
        g \leftarrow g \cdot \frac{c}{\lVert g\rVert_2} \quad\text{where }
        \lVert g\rVert_2 > c, \text{ else unchanged}

    This is Paddle's ``ClipGradByNorm``; the norm of a float16/bfloat16 gradient is taken in
    float32.

    Args:
        max_norm: :math:`c`.
        where: ``where(param, group) -> bool`` chooses the parameters it acts on (default: all).

    Returns:
        A transform for :meth:`polyoptim.Optimizer.add_transform`; it runs over all param groups
        before the update, in the order the transforms were added.

    Example:
        >>> import torch, polyoptim
        >>> w = torch.nn.Parameter(torch.zeros(2)); w.grad = torch.tensor([3.0, 4.0])
        >>> opt = polyoptim.SGD([w], lr=1.0).add_transform(clip_by_norm(1.0))
        >>> opt.step(); w.detach()
        tensor([-0.6000, -0.8000])
    """

    def transform(groups, params, grads):
        for i, j, _, g in selected(groups, params, grads, where):
            norm = torch.linalg.vector_norm(g.float() if g.dtype.itemsize < 4 else g)
            factor = torch.where(norm > max_norm, max_norm / norm, torch.ones_like(norm))
            grads[i][j] = g * factor.to(g.dtype)

    return transform


def global_norm(grads: list[torch.Tensor], norm_type: float = 2.0) -> torch.Tensor:
    """The norm of all gradients together; half-precision partial sums are taken in float32
    and everything in float64 when any gradient is float64."""
    if not grads:
        return torch.tensor(0.0)
    acc = torch.float64 if any(g.dtype == torch.float64 for g in grads) else torch.float32
    norms = torch.stack([torch.linalg.vector_norm(g.to(acc), norm_type) for g in grads])
    return torch.linalg.vector_norm(norms, norm_type)


def clip_by_global_norm(
    max_norm: float,
    *,
    norm_type: float = 2.0,
    eps: float = 1e-6,
    always_scale: bool = False,
    where: Where = everywhere,
) -> GradTransform:
    r"""Scale all selected gradients together so their global norm is at most ``max_norm``.

    .. math::
        n = \Big(\sum_i \lVert g_i\rVert^p\Big)^{1/p}, \qquad
        g_i \leftarrow g_i \cdot \min\Big(1, \frac{c}{n + \epsilon}\Big)

    Args:
        max_norm: :math:`c`.
        norm_type: :math:`p`.
        eps: torch's ``1e-6``; Paddle uses 0 and ``always_scale=True``.
        always_scale: multiply even when the norm is below ``max_norm`` (Paddle multiplies
            by :math:`c/\max(n, c)` = 1 then, which still rounds half-precision gradients).
        where: which parameters take part (others are neither counted nor clipped).

    Example:
        >>> import torch, polyoptim
        >>> w = torch.nn.Parameter(torch.zeros(2)); w.grad = torch.tensor([3.0, 4.0])
        >>> opt = polyoptim.SGD([w], lr=1.0).add_transform(clip_by_global_norm(1.0, eps=0))
        >>> opt.step(); w.detach()
        tensor([-0.6000, -0.8000])
    """

    def transform(groups, params, grads):
        chosen = list(selected(groups, params, grads, where))
        if not chosen:
            return
        norm = global_norm([g for *_, g in chosen], norm_type)
        if always_scale:
            factor = max_norm / torch.maximum(norm, torch.tensor(max_norm, dtype=norm.dtype))
        else:
            factor = torch.clamp(max_norm / (norm + eps), max=1.0)
        for i, j, _, g in chosen:
            grads[i][j] = g * factor.to(g.dtype)

    return transform
