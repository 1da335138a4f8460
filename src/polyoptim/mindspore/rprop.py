"""MindSpore's ``Rprop`` (torch's rule, :mod:`polyoptim.rules.rprop`)."""

from __future__ import annotations

from typing import Any

import torch

from ..rules.rprop import rprop
from . import _validator as V
from .optimizer import Optimizer, f32

__all__ = ["Rprop"]


class Rprop(Optimizer):
    r"""Resilient backpropagation (MindSpore's ``nn.Rprop``; torch's rule).

    Per element, with :math:`s = \operatorname{sign}(g_t g_{t-1})`:

    .. math::
        \eta_t = \operatorname{clip}(\eta_{t-1} \cdot \{\eta_+, \eta_-, 1\}_s,
                 \eta_{min}, \eta_{max}) \qquad
        g_t \leftarrow 0 \text{ where } s < 0 \qquad
        p_t = p_{t-1} - \eta_t \operatorname{sign}(g_t)

    with :math:`\eta_0` the learning rate of the first step.

    Args:
        params: tensors, ``(name, tensor)`` pairs or group dicts.
        learning_rate: see :class:`~polyoptim.mindspore.Optimizer` (default 0.1).
        etas: :math:`(\eta_-, \eta_+)` with :math:`0 < \eta_- < 1 < \eta_+`.
        step_sizes: :math:`(\eta_{min}, \eta_{max})`.
        weight_decay: float or schedule.

    State: ``prev.<name>``, ``step_size.<name>``.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> w = torch.nn.Parameter(torch.ones(1))
        >>> opt = nn.Rprop([w], learning_rate=0.1)
        >>> _ = opt((torch.ones(1),)); _ = opt((torch.ones(1),)); w.detach()
        tensor([0.7800])
    """

    rule = rprop
    _ckpt_slots = (("prev.{}", "prev"), ("step_size.{}", "step_size"))

    def __init__(
        self,
        params: Any,
        learning_rate: Any = 0.1,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-6, 50.0),
        weight_decay: Any = 0.0,
    ) -> None:
        super().__init__(learning_rate, params, weight_decay)
        if not isinstance(etas, tuple):
            raise TypeError(f"For Rprop, etas must be a tuple, but got {type(etas)}.")
        if len(etas) != 2:
            raise ValueError(
                f"For Rprop, etas must be a tuple with the size of 2, but got {len(etas)}."
            )
        if not isinstance(step_sizes, tuple):
            raise TypeError(f"For Rprop, step_sizes must be a tuple, but got {type(etas)}.")
        if len(step_sizes) != 2:
            raise ValueError(
                "For Rprop, step_sizes must be a tuple with the size of 2, "
                f"but got {len(step_sizes)}."
            )
        if step_sizes[0] > step_sizes[1]:
            raise ValueError(
                "For Rprop, maximal step size should not be less than minimal step size, "
                f"but got {step_sizes[0]} > {step_sizes[1]}."
            )
        V.check_float_range(etas[0], 0.0, 1.0, "neither", "etaminus", self.cls_name)
        V.check_value_type("etaplus", etas[1], [float], self.cls_name)
        if etas[1] <= 1.0:
            raise ValueError(
                f"For Rprop, etaplus must be greater than 1.0, but got etaplus {etas[1]}."
            )
        V.check_value_type("min_step_sizes", step_sizes[0], [float], self.cls_name)
        V.check_value_type("max_step_sizes", step_sizes[1], [float], self.cls_name)
        self._configure(
            etas=(f32(etas[0]), f32(etas[1])), step_sizes=(f32(step_sizes[0]), f32(step_sizes[1]))
        )

    def _initial_state(self, p: torch.Tensor) -> dict[str, Any]:
        state = super()._initial_state(p)
        state["step_size"] = torch.zeros_like(p)  # MindSpore fills it with lr on step 1
        return state
