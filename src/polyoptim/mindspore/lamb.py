"""MindSpore's ``Lamb`` (rule: :mod:`polyoptim.rules.lamb`, shared with Paddle)."""

from __future__ import annotations

from typing import Any

import torch

from ..kernels.ops import TensorOps
from ..rules.lamb import lamb, lamb_apply, lamb_trust_ratio
from .adam import _check_betas_eps
from .optimizer import NUMBER_TYPES, Optimizer, f32, primitive_type_error

__all__ = ["Lamb"]


class Lamb(Optimizer):
    r"""LAMB (You et al., 2019) as MindSpore documents it (``nn.Lamb``).

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2

    .. math::
        r_t = \frac{m_t/(1-\beta_1^t)}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon} + \lambda p_{t-1}
        \qquad
        p_t = p_{t-1} - \gamma\,\frac{\lVert p_{t-1}\rVert}{\lVert r_t\rVert}\, r_t

    (trust ratio 1 where a norm is 0; :math:`\lambda` only for decayed parameters). Gradient
    centralization applies; there is no loss scale. MindSpore has no CPU kernel for Lamb.

    Args:
        params: tensors, ``(name, tensor)`` pairs or group dicts.
        learning_rate: any learning-rate kind (required).
        beta1, beta2: in (0, 1).
        eps: :math:`\epsilon > 0` (default 1e-6).
        weight_decay: :math:`\lambda`, float or schedule.

    State: ``lamb_m.<name>``, ``lamb_v.<name>``.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
        >>> opt = nn.Lamb([w], learning_rate=0.1)
        >>> _ = opt((torch.tensor([1.0, 1.0]),)); w.detach()   # step 0.1 * 5 along r/|r|
        tensor([2.6464, 3.6464])
    """

    rule = lamb
    _pipeline = ("gradients_centralization",)
    _rule_decay = True
    _ckpt_slots = (("lamb_m.{}", "exp_avg"), ("lamb_v.{}", "exp_avg_sq"))

    _bool_refusal = primitive_type_error("Lamb", "m", NUMBER_TYPES, ref=True)

    def __init__(
        self,
        params: Any,
        learning_rate: Any,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-6,
        weight_decay: Any = 0.0,
    ) -> None:
        super().__init__(learning_rate, params, weight_decay)
        _check_betas_eps(beta1, beta2, eps, self.cls_name)
        self._configure(beta1=f32(beta1), beta2=f32(beta2), eps=f32(eps))

    def _update_group(self, group, params, grads) -> None:
        """Direction (element-wise), trust ratio (two norms), then the parameter update, one
        tensor at a time; float16/bfloat16 tensors are computed in float32."""
        rule = self.rule
        lr = float(group["lr"])
        for p, g in zip(params, grads):
            fresh = self._init_state(p, group)
            state = self.state[p]
            scalars = rule.prepare(group, state, fresh)
            m, v = state["exp_avg"], state["exp_avg_sq"]
            compute = torch.promote_types(p.dtype, torch.float32)
            pf = p.detach().to(compute)
            r, m_new, v_new = rule.update(
                TensorOps, pf, g.to(compute), m.to(compute), v.to(compute), **scalars
            )
            step_size = lr * lamb_trust_ratio(pf, r)
            p.detach().copy_(lamb_apply(TensorOps, pf, r, step_size=step_size))
            m.copy_(m_new)
            v.copy_(v_new)
