"""MindSpore's ``ASGD`` (torch's rule, :mod:`polyoptim.rules.asgd`)."""

from __future__ import annotations

from typing import Any

import torch

from ..rules.asgd import asgd
from . import _validator as V
from .optimizer import Optimizer, f32, unsupported_type

__all__ = ["ASGD"]


class ASGD(Optimizer):
    r"""Averaged SGD (MindSpore's ``nn.ASGD``; torch's rule).

    .. math::
        p_t = p_{t-1}(1 - \lambda\eta_t) - \eta_t g_t \qquad
        a_t = a_{t-1} + \mu_t (p_t - a_{t-1}) \ (a_t = p_t \text{ while } \mu_t = 1)

    with :math:`\eta_1 = \gamma`, then :math:`\eta_{t+1} = \gamma/(1 + \lambda\gamma t)^\alpha`
    and :math:`\mu_{t+1} = 1/\max(1, t - t_0)`.

    Args:
        params: tensors, ``(name, tensor)`` pairs or group dicts.
        learning_rate: see :class:`~polyoptim.mindspore.Optimizer` (default 0.1).
        lambd: decay term :math:`\lambda`.
        alpha: power :math:`\alpha`.
        t0: the step at which averaging starts.
        weight_decay: float or schedule.

    State: ``mu_<name>``, ``eta_<name>`` (scalars), ``ax_.<name>`` (the average).

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> w = torch.nn.Parameter(torch.ones(1))
        >>> opt = nn.ASGD([w], learning_rate=0.1, lambd=0.0)
        >>> _ = opt((torch.ones(1),)); w.detach()
        tensor([0.9000])
    """

    rule = asgd
    _ckpt_slots = (("mu_{}", "mu"), ("eta_{}", "eta"), ("ax_.{}", "ax"))

    _bool_refusal = unsupported_type("AssignAdd")

    def __init__(
        self,
        params: Any,
        learning_rate: Any = 0.1,
        lambd: float = 1e-4,
        alpha: float = 0.75,
        t0: float = 1e6,
        weight_decay: Any = 0.0,
    ) -> None:
        super().__init__(learning_rate, params, weight_decay)
        V.check_value_type("lambd", lambd, [float], self.cls_name)
        V.check_value_type("alpha", alpha, [float], self.cls_name)
        V.check_value_type("t0", t0, [float], self.cls_name)
        self._configure(lambd=f32(lambd), alpha=f32(alpha), t0=f32(t0))

    def _initial_state(self, p: torch.Tensor) -> dict[str, Any]:
        state = super()._initial_state(p)
        state["eta"] = torch.tensor(0.0, dtype=torch.float32)  # MindSpore sets it on step 1
        return state
