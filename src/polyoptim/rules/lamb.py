r"""LAMB (You et al., 2019): Adam moments with a per-tensor trust ratio. One rule serves
MindSpore's ``nn.Lamb`` and Paddle's ``optimizer.Lamb``.

.. math::
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2

.. math::
    r_t = \frac{m_t/(1-\beta_1^t)}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon} + \lambda p_{t-1}
    \qquad
    p_t = p_{t-1} - \gamma \frac{\lVert p_{t-1}\rVert}{\lVert r_t\rVert} r_t

The trust ratio :math:`\lVert p\rVert / \lVert r\rVert` is 1 where either norm is 0.

LAMB is not element-wise -- the trust ratio needs two norms of the whole tensor -- so it comes
in three pieces, run in order by the optimizer, one tensor at a time:

* :data:`lamb` -- a :class:`~polyoptim.rules.base.Rule` whose ``update`` returns
  ``(r, m, v)``: the *direction* in the place of the parameter (never run by a plain kernel);
* :func:`lamb_trust_ratio` -- :math:`\lVert p\rVert/\lVert r\rVert` on the host;
* :func:`lamb_apply` -- :math:`p - \gamma\,\mathrm{ratio}\; r`.

``lamb``'s ``prepare`` keeps torch's ``step`` counter and computes :math:`1-\beta^t` from it
(MindSpore's bookkeeping; hyperparameters ``beta1``, ``beta2``, ``eps``, ``weight_decay``).
Paddle's variant (:data:`polyoptim.rules.paddle.lamb`) reuses :func:`lamb_direction` with
float32 β-pow accumulators instead of the counter.
"""

from __future__ import annotations

import torch

from .base import Buffer, Rule, host_float, step_counter, step_of


def lamb_direction(ops, p, g, m, v, *, beta1, beta2, eps, bc1, bc2, weight_decay):
    r"""Moments and the Lamb direction
    :math:`r = \frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)} + \epsilon} + \lambda p`
    (``bc1``, ``bc2`` = :math:`1-\beta_1^t`, :math:`1-\beta_2^t`)."""
    m = m * beta1 + (1 - beta1) * g
    v = v * beta2 + (1 - beta2) * g * g
    r = (m / bc1) / (ops.sqrt(v / bc2) + eps) + weight_decay * p
    return r, m, v


def lamb_apply(ops, p, r, *, step_size):
    r""":math:`p \leftarrow p - \gamma\,\mathrm{ratio}\; r` (``step_size`` = γ·ratio)."""
    return p + (-step_size) * r


def lamb_trust_ratio(p: torch.Tensor, r: torch.Tensor) -> float:
    r""":math:`\lVert p\rVert_2 / \lVert r\rVert_2` (norms in float32, or float64 for float64
    tensors), or 1 when either norm is 0."""
    acc = torch.float64 if p.dtype == torch.float64 else torch.float32
    pn = host_float(torch.linalg.vector_norm(p.to(acc)))
    rn = host_float(torch.linalg.vector_norm(r.to(acc)))
    return pn / rn if pn > 0 and rn > 0 else 1.0


def prepare(hp, state, fresh):
    """Advance ``step``; bias corrections :math:`1-\\beta^t` in double precision."""
    step = step_of(state)
    beta1, beta2 = float(hp["beta1"]), float(hp["beta2"])
    return {
        "beta1": beta1,
        "beta2": beta2,
        "eps": float(hp["eps"]),
        "bc1": 1 - beta1**step,
        "bc2": 1 - beta2**step,
        "weight_decay": float(hp["weight_decay"]),
    }


#: Lamb's element-wise half: ``update`` returns ``(r, m, v)`` -- the direction in place of the
#: parameter -- so the optimizer runs it around :func:`lamb_trust_ratio`, never a plain kernel.
lamb = Rule(
    name="lamb_direction",
    buffers=(Buffer("exp_avg"), Buffer("exp_avg_sq")),
    update=lamb_direction,
    prepare=prepare,
    host_state={"step": step_counter},
)

__all__ = ["lamb", "lamb_apply", "lamb_direction", "lamb_trust_ratio"]
