r"""RMSProp in TensorFlow's form (``ApplyRMSProp``/``ApplyCenteredRMSProp``): :math:`\epsilon`
inside the square root and the learning rate inside the momentum buffer. One rule serves
MindSpore's ``nn.RMSProp`` and Paddle's ``optimizer.RMSProp``; torch's form is
:mod:`polyoptim.rules.rmsprop`.

.. math::
    s_t = \rho s_{t-1} + (1-\rho) g_t^2 \qquad
    \bar g_t = \rho \bar g_{t-1} + (1-\rho) g_t \ (\text{centered})

.. math::
    b_t = \mu b_{t-1} + \frac{\gamma\, g_t}{\sqrt{s_t - \bar g_t^2 + \epsilon}} \qquad
    p_t = p_{t-1} - b_t

(without centering, :math:`\bar g_t = 0`). The momentum buffer always exists.

Hyperparameters: ``lr``, ``rho``, ``eps``, ``momentum``, and options where the frameworks differ
(default; MindSpore's value; Paddle's value):

* ``centered`` (False; the argument; the argument): subtract :math:`\bar g^2`;
* ``initial_mean_square`` (0; 1; 0): :math:`s_0`;
* ``keep_grad_avg`` (False; False; True): ``grad_avg`` exists (zeros) even when not centered;
* ``lerp_averages`` (True; True; False): the averages as ``lerp(s, g², 1-ρ)`` (that is,
  :math:`s + (1-\rho)(g^2 - s)`) rather than :math:`\rho s + (1-\rho) g^2`.

The two forms of the averages are the same number up to rounding; each framework's option is the
one whose float32 rounding is closest to its CPU kernel's, measured on the golden fixtures
(worst relative error over the RMSProp cases): Paddle 3.3.1 0 on the fused CPU kernel with
:math:`\rho s + (1-\rho) g^2`, 1.9e-7 with ``lerp``; MindSpore 2.10.0 1.5e-7 with ``lerp``,
2.9e-7 with the other form.
"""

from __future__ import annotations

import torch

from .base import Buffer, Rule


def _mean_square(p: torch.Tensor, hp) -> torch.Tensor:
    value = float(hp.get("initial_mean_square", 0.0))
    return torch.full_like(p, value, memory_format=torch.preserve_format)


def _has_grad_avg(hp) -> bool:
    return bool(hp.get("centered", False)) or bool(hp.get("keep_grad_avg", False))


def update(ops, p, g, s, buf, gavg, *, lr, rho, eps, momentum, centered, lerp_averages):
    if lerp_averages:
        s = ops.lerp(s, g * g, 1 - rho)
    else:
        s = s * rho + (1 - rho) * g * g
    if centered:
        if lerp_averages:
            gavg = ops.lerp(gavg, g, 1 - rho)
        else:
            gavg = gavg * rho + (1 - rho) * g
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
        "centered": bool(hp.get("centered", False)),
        "lerp_averages": bool(hp.get("lerp_averages", True)),
    }


tf_rmsprop = Rule(
    name="tf_rmsprop",
    buffers=(
        Buffer("square_avg", init=_mean_square),
        Buffer("momentum_buffer"),
        Buffer("grad_avg", when=_has_grad_avg),
    ),
    update=update,
    prepare=prepare,
)
