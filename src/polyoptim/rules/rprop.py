r"""Resilient backpropagation.

Per element, with :math:`s = \operatorname{sign}(g_t \cdot g_{t-1})`:

.. math::
    \eta_t = \operatorname{clip}\big(\eta_{t-1} \cdot
        \{\eta_+ \text{ if } s>0;\ \eta_- \text{ if } s<0;\ 1\}, \eta_{min}, \eta_{max}\big)
    \qquad g_t \leftarrow 0 \text{ where } s < 0

.. math::
    p_t = p_{t-1} - \eta_t \operatorname{sign}(g_t) \qquad g_{t-1} \leftarrow g_t
"""

from __future__ import annotations

import torch

from .base import Buffer, Rule, step_counter, step_of


def update(ops, p, g, prev, step_size, *, etaminus, etaplus, step_min, step_max):
    s = ops.sign(g * prev)
    # s + 1 is 1 where s == 0 and keeps the parameter's dtype (and NaN), as torch's in-place fill
    factor = ops.where(s > 0, etaplus, ops.where(s < 0, etaminus, s + 1))
    step_size = ops.clamp(step_size * factor, step_min, step_max)
    g = ops.where(s < 0, 0.0, g)
    return p + (-1) * (ops.sign(g) * step_size), g, step_size


def prepare(hp, state, fresh):
    step_of(state)
    etaminus, etaplus = hp["etas"]
    step_min, step_max = hp["step_sizes"]
    return {"etaminus": etaminus, "etaplus": etaplus, "step_min": step_min, "step_max": step_max}


def initial_step_size(p: torch.Tensor, hp) -> torch.Tensor:
    lr = float(hp["lr"])
    return torch.full_like(p, complex(lr, lr) if torch.is_complex(p) else lr)


rprop = Rule(
    name="rprop",
    buffers=(Buffer("prev"), Buffer("step_size", init=initial_step_size)),
    update=update,
    prepare=prepare,
    host_state={"step": step_counter},
)
