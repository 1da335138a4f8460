r"""LAMB (You et al., 2019): Adam moments with a per-tensor trust ratio.

Not element-wise (the trust ratio needs two norms of the whole tensor), so it is written with
torch ops on one tensor at a time:

.. math::
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2

.. math::
    r_t = \frac{m_t/(1-\beta_1^t)}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon} + \lambda p_{t-1}
    \qquad
    p_t = p_{t-1} - \gamma \frac{\lVert p_{t-1}\rVert}{\lVert r_t\rVert} r_t

The trust ratio :math:`\lVert p\rVert / \lVert r\rVert` is 1 where either norm is 0.
"""

from __future__ import annotations

import torch


def lamb_step(
    p: torch.Tensor,
    g: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step: int,
) -> None:
    """One LAMB step on one tensor, in place on ``p``, ``m`` and ``v`` (math in float32 or
    wider)."""
    compute = torch.promote_types(p.dtype, torch.float32)
    pf, gf = p.detach().to(compute), g.to(compute)
    mf = m.to(compute).lerp_(gf, 1 - beta1)
    vf = v.to(compute).mul_(beta2).addcmul_(gf, gf, value=1 - beta2)
    r = (mf / (1 - beta1**step)) / ((vf / (1 - beta2**step)).sqrt_().add_(eps))
    if weight_decay != 0:
        r.add_(pf, alpha=weight_decay)
    w_norm = torch.linalg.vector_norm(pf)
    r_norm = torch.linalg.vector_norm(r)
    one = torch.ones_like(w_norm)
    trust = torch.where((w_norm > 0) & (r_norm > 0), w_norm / r_norm, one)
    p.copy_(pf - lr * trust * r)
    m.copy_(mf)
    v.copy_(vf)
