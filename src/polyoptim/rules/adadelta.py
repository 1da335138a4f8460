r"""Adadelta.

.. math::
    v_t = \rho v_{t-1} + (1-\rho) g_t^2 \qquad
    \Delta_t = \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}} g_t \qquad
    u_t = \rho u_{t-1} + (1-\rho)\Delta_t^2 \qquad
    p_t = p_{t-1} - \gamma \Delta_t
"""

from __future__ import annotations

from .base import Buffer, Rule, step_counter, step_of


def update(ops, p, g, v, u, *, lr, rho, eps):
    v = ops.addcmul(v * rho, g, g, 1 - rho)
    delta = ops.sqrt(u + eps) / ops.sqrt(v + eps) * g
    u = ops.addcmul(u * rho, delta, delta, 1 - rho)
    return ops.add(p, delta, -lr), v, u


def prepare(hp, state, fresh):
    step_of(state)
    return {"lr": float(hp["lr"]), "rho": hp["rho"], "eps": hp["eps"]}


adadelta = Rule(
    name="adadelta",
    buffers=(Buffer("square_avg"), Buffer("acc_delta")),
    update=update,
    prepare=prepare,
    host_state={"step": step_counter},
)
