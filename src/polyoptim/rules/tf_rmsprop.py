r"""RMSProp in TensorFlow's form (``ApplyRMSProp``/``ApplyCenteredRMSProp``): :math:`\epsilon`
inside the square root and the learning rate inside the momentum buffer. MindSpore's
``RMSProp`` and Paddle's ``RMSProp`` both follow it; torch's form is
:mod:`polyoptim.rules.rmsprop`.

.. math::
    s_t = \rho s_{t-1} + (1-\rho) g_t^2 \qquad
    \bar g_t = \rho \bar g_{t-1} + (1-\rho) g_t \ (\text{centered})

.. math::
    b_t = \mu b_{t-1} + \frac{\gamma\, g_t}{\sqrt{s_t - \bar g_t^2 + \epsilon}} \qquad
    p_t = p_{t-1} - b_t

(without centering, :math:`\bar g_t = 0`). The momentum buffer always exists. ``s`` starts at
``hp["initial_mean_square"]`` (MindSpore and TensorFlow: 1; default 0).

Hyperparameters: ``lr``, ``rho``, ``momentum``, ``eps``, ``centered``,
``initial_mean_square``.
"""

from __future__ import annotations

import torch

from .base import Buffer, Rule


def _mean_square(p: torch.Tensor, hp) -> torch.Tensor:
    value = float(hp.get("initial_mean_square", 0.0))
    return torch.full_like(p, value, memory_format=torch.preserve_format)


def update(ops, p, g, s, buf, gavg, *, lr, rho, eps, momentum):
    s = ops.lerp(s, g * g, 1 - rho)
    if gavg is not None:
        gavg = ops.lerp(gavg, g, 1 - rho)
        denom = ops.sqrt(s - gavg * gavg + eps)
    else:
        denom = ops.sqrt(s + eps)
    buf = buf * momentum + lr * g / denom
    return p - buf, s, buf, gavg


def prepare(hp, state, fresh):
    return {
        "lr": float(hp["lr"]),
        "rho": float(hp["rho"]),
        "eps": float(hp["eps"]),
        "momentum": float(hp["momentum"]),
    }


tf_rmsprop = Rule(
    name="tf_rmsprop",
    buffers=(
        Buffer("square_avg", init=_mean_square),
        Buffer("momentum_buffer"),
        Buffer("grad_avg", when=lambda hp: bool(hp.get("centered", False))),
    ),
    update=update,
    prepare=prepare,
)
