r"""Paddle's gradient clipping (``paddle.nn.ClipGradBy*``), built on :mod:`polyoptim.transforms`.

* ``ClipGradByValue(max, min=None)``: :math:`g \leftarrow \operatorname{clip}(g, \min, \max)`,
  ``min = -max`` by default.
* ``ClipGradByNorm(clip_norm)``: per tensor, :math:`g \leftarrow g\,c/\lVert g\rVert_2` when
  :math:`\lVert g\rVert_2 > c`.
* ``ClipGradByGlobalNorm(clip_norm, group_name, auto_skip_clip=False)``: with
  :math:`n = \sqrt{\sum_i \lVert g_i\rVert_2^2}` (half-precision partial sums in float32,
  everything in float64 when a gradient is float64),
  :math:`g_i \leftarrow g_i\,c/\max(n, c)` -- always applied, and with no :math:`+10^{-6}`
  (torch's ``clip_grad_norm_`` uses :math:`c/(n + 10^{-6})`). With ``auto_skip_clip`` the
  multiplication happens only when :math:`n > c`.

Tensors whose :class:`~polyoptim.paddle.ParamAttr` says ``need_clip=False`` are neither clipped
nor counted in the global norm. An optimizer given ``grad_clip=...`` clips before it
regularizes; with parameter groups each group is clipped on its own (its ``grad_clip`` key,
defaulting to the optimizer's), as Paddle does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..engine import GradTransform
from ..transforms import clip_by_global_norm, clip_by_norm, clip_by_value
from ..transforms._select import Where
from .param_attr import need_clip

ParamsGrads = Sequence[tuple[torch.Tensor, torch.Tensor | None]]


def _need_clip(p: torch.Tensor, group: dict[str, Any]) -> bool:
    return need_clip(p)


class ClipGradBase:
    """Base class of the clipping strategies.

    ``clip(params_grads)`` takes ``[(param, grad), ...]`` and returns the clipped pairs, as
    Paddle's; optimizers use :meth:`transform`.

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> w, g = torch.zeros(2), torch.tensor([3.0, 4.0])
        >>> clip = P.ClipGradByGlobalNorm(1.0)      # any strategy: a ClipGradBase
        >>> [grad for _, grad in clip([(w, g)])]
        [tensor([0.6000, 0.8000])]
    """

    def transform(self, where: Where = _need_clip) -> GradTransform:
        """This strategy as a whole-gradient transform (``where`` picks the tensors)."""
        raise NotImplementedError

    def __call__(self, params_grads: ParamsGrads) -> list[tuple[torch.Tensor, torch.Tensor]]:
        pairs = [(p, g) for p, g in params_grads if g is not None]
        params = [[p for p, _ in pairs]]
        grads = [[g for _, g in pairs]]
        self.transform()([{}], params, grads)
        return list(zip(params[0], grads[0]))


class ClipGradByValue(ClipGradBase):
    r"""Clip every gradient element into ``[min, max]``.

    Args:
        max: the upper bound.
        min: the lower bound (default ``-max``; then ``max`` must be positive).

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> w = torch.nn.Parameter(torch.zeros(2)); w.grad = torch.tensor([3.0, -0.5])
        >>> opt = P.SGD(1.0, parameters=[w], grad_clip=P.ClipGradByValue(1.0))
        >>> opt.step(); w.detach()
        tensor([-1.0000,  0.5000])
    """

    def __init__(self, max: float, min: float | None = None) -> None:
        if min is None:
            assert max > 0.0
            min = -max
        self.max = float(max)
        self.min = float(min)

    def transform(self, where: Where = _need_clip) -> GradTransform:
        return clip_by_value(self.max, self.min, where=where)

    def __str__(self) -> str:
        return f"Clip Gradient By Value, min = {self.min:f}, max={self.max:f}"


class ClipGradByNorm(ClipGradBase):
    r"""Scale each gradient to L2 norm at most ``clip_norm``:
    :math:`g \leftarrow g \cdot c / \lVert g\rVert_2` where :math:`\lVert g\rVert_2 > c`.

    Args:
        clip_norm: :math:`c`.

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> w = torch.nn.Parameter(torch.zeros(2)); w.grad = torch.tensor([3.0, 4.0])
        >>> opt = P.SGD(1.0, parameters=[w], grad_clip=P.ClipGradByNorm(1.0))
        >>> opt.step(); w.detach()
        tensor([-0.6000, -0.8000])
    """

    def __init__(self, clip_norm: float) -> None:
        self.clip_norm = float(clip_norm)

    def transform(self, where: Where = _need_clip) -> GradTransform:
        return clip_by_norm(self.clip_norm, where=where)

    def __str__(self) -> str:
        return f"Gradient Clip By Norm, clip_norm={self.clip_norm:f}"


class ClipGradByGlobalNorm(ClipGradBase):
    r"""Scale all gradients together: :math:`g_i \leftarrow g_i \cdot c / \max(n, c)` with
    :math:`n` the L2 norm of all gradients (no epsilon).

    Args:
        clip_norm: :math:`c`.
        group_name: accepted for compatibility (it only matters in Paddle's static and
            distributed graphs).
        auto_skip_clip: multiply only when :math:`n > c`.

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> w = torch.nn.Parameter(torch.zeros(2)); w.grad = torch.tensor([3.0, 4.0])
        >>> opt = P.SGD(1.0, parameters=[w], grad_clip=P.ClipGradByGlobalNorm(1.0))
        >>> opt.step(); w.detach()
        tensor([-0.6000, -0.8000])
    """

    def __init__(
        self, clip_norm: float, group_name: str = "default_group", auto_skip_clip: bool = False
    ) -> None:
        self.clip_norm = float(clip_norm)
        self.group_name = group_name
        assert isinstance(auto_skip_clip, bool)
        self.auto_skip_clip = auto_skip_clip

    def transform(self, where: Where = _need_clip) -> GradTransform:
        return clip_by_global_norm(
            self.clip_norm, eps=0.0, always_scale=not self.auto_skip_clip, where=where
        )

    def __str__(self) -> str:
        return f"Gradient Clip By GlobalNorm, global_norm={self.clip_norm:f}"


#: Paddle's older name of the base class.
GradientClipBase = ClipGradBase

__all__ = [
    "ClipGradBase",
    "ClipGradByGlobalNorm",
    "ClipGradByNorm",
    "ClipGradByValue",
    "GradientClipBase",
]
