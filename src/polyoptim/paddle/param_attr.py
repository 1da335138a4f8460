"""Per-parameter attributes standing in for Paddle's ``ParamAttr``.

Paddle fixes a parameter's name, learning-rate scale, regularizer and clipping flag when the
parameter is created (``paddle.ParamAttr``). A torch tensor has no such slots, so polyoptim keeps
them in one attribute on the tensor, ``tensor.paddle_attr`` (a :class:`ParamAttr`), set with
:func:`set_param_attr` or :meth:`ParamAttr.apply`. The Paddle optimizers read it at every step.

Precedence (Paddle's):

* without parameter groups, ``ParamAttr(learning_rate=s)`` scales the optimizer's learning
  rate for that tensor and ``ParamAttr(regularizer=R)`` wins over the optimizer's
  ``weight_decay``;
* with parameter groups, the group's ``learning_rate`` (default 1.0) and ``weight_decay``
  (default: the optimizer's) replace both, even when the group does not set them;
* ``need_clip=False`` keeps the tensor out of gradient clipping (and out of the global norm).

Python attributes do not survive ``copy.deepcopy`` of a ``torch.nn.Parameter``; set them again on
a copied model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from .regularizer import WeightDecayRegularizer, as_regularizer

_UNSET: Any = object()


@dataclass
class ParamAttr:
    """Paddle's ``ParamAttr`` for a torch tensor.

    Args:
        name: the parameter's name (keys its optimizer state, as in Paddle's ``state_dict``).
        initializer: accepted for signature compatibility; polyoptim does not initialize.
        learning_rate: the scale of the optimizer's learning rate for this tensor.
        regularizer: ``L1Decay``/``L2Decay`` (or a float, meaning ``L2Decay``) for this tensor.
        trainable: False excludes the tensor from updates (as ``requires_grad=False``).
        do_model_average: accepted for signature compatibility.
        need_clip: False keeps the tensor out of gradient clipping.

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> w = torch.nn.Parameter(torch.ones(2))
        >>> _ = P.ParamAttr(name="w", learning_rate=2.0, need_clip=False).apply(w)
        >>> w.paddle_attr.learning_rate
        2.0
    """

    name: str | None = None
    initializer: Any = None
    learning_rate: float = 1.0
    regularizer: WeightDecayRegularizer | None = None
    trainable: bool = True
    do_model_average: bool = True
    need_clip: bool = True

    def __post_init__(self) -> None:
        if self.regularizer is not None:
            self.regularizer = as_regularizer(self.regularizer)
        self.learning_rate = float(self.learning_rate)

    def apply(self, tensor: torch.Tensor) -> torch.Tensor:
        """Attach these attributes to ``tensor`` (returned, for chaining)."""
        tensor.paddle_attr = replace(self)  # type: ignore[attr-defined]
        if not self.trainable:
            tensor.requires_grad_(False)
        return tensor


def set_param_attr(
    tensor: torch.Tensor,
    *,
    name: str | None = _UNSET,
    learning_rate: float = _UNSET,
    regularizer: WeightDecayRegularizer | float | None = _UNSET,
    need_clip: bool = _UNSET,
    trainable: bool = _UNSET,
) -> torch.Tensor:
    """Set some of a tensor's Paddle attributes, keeping the others.

    Args:
        tensor: the parameter.
        name: its name (keys the optimizer's ``state_dict``).
        learning_rate: the scale of the optimizer's learning rate.
        regularizer: ``L1Decay``/``L2Decay``/float, or None to clear it.
        need_clip: whether gradient clipping applies.
        trainable: False freezes the tensor (``requires_grad=False``).

    Returns:
        ``tensor``.

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> b = torch.nn.Parameter(torch.zeros(2))
        >>> _ = P.set_param_attr(b, regularizer=P.L1Decay(0.1), need_clip=False)
        >>> param_attr(b).need_clip
        False
    """
    attr = replace(param_attr(tensor))
    if name is not _UNSET:
        attr.name = name
    if learning_rate is not _UNSET:
        attr.learning_rate = float(learning_rate)
    if regularizer is not _UNSET:
        attr.regularizer = as_regularizer(regularizer)
    if need_clip is not _UNSET:
        attr.need_clip = bool(need_clip)
    if trainable is not _UNSET:
        attr.trainable = bool(trainable)
    return attr.apply(tensor)


_DEFAULT = ParamAttr()


def param_attr(tensor: torch.Tensor) -> ParamAttr:
    r"""The tensor's :class:`ParamAttr` (defaults when none was set).

    Args:
        tensor: a parameter (``torch.Tensor``).

    Returns:
        The :class:`ParamAttr` set with :meth:`ParamAttr.apply` or :func:`set_param_attr`, or
        one with Paddle's defaults (``learning_rate=1.0``, no name, no regularizer,
        ``need_clip=True``, ``trainable=True``).

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> w = torch.nn.Parameter(torch.ones(2))
        >>> P.param_attr(w).learning_rate
        1.0
        >>> _ = P.set_param_attr(w, learning_rate=0.5)
        >>> P.param_attr(w).learning_rate
        0.5
    """
    attr = getattr(tensor, "paddle_attr", None)
    return attr if isinstance(attr, ParamAttr) else _DEFAULT


def need_clip(tensor: torch.Tensor) -> bool:
    """Whether gradient clipping applies to ``tensor`` (Paddle's ``param.need_clip``)."""
    return param_attr(tensor).need_clip


__all__ = ["ParamAttr", "need_clip", "param_attr", "set_param_attr"]
