r"""Adagrad.

.. math::
    s_t = s_{t-1} + g_t^2 \qquad
    p_t = p_{t-1} - \frac{\gamma}{1 + (t-1)\eta} \cdot \frac{g_t}{\sqrt{s_t} + \epsilon}

:math:`s_0` is ``initial_accumulator_value``; :math:`\eta` is ``lr_decay``.
"""

from __future__ import annotations

import torch

from .base import Buffer, Rule, step_of


def update(ops, p, g, s, *, clr, eps):
    s = ops.addcmul(s, g, g, 1)
    return ops.addcdiv(p, g, ops.sqrt(s) + eps, -clr), s


def prepare(hp, state, fresh):
    t = step_of(state)
    return {"clr": float(hp["lr"]) / (1 + (t - 1) * hp["lr_decay"]), "eps": hp["eps"]}


def initial_sum(p: torch.Tensor, hp) -> torch.Tensor:
    v = hp["initial_accumulator_value"]
    v = complex(v, v) if torch.is_complex(p) else v
    return torch.full_like(p, v, memory_format=torch.preserve_format)


def adagrad_step(p: torch.Tensor, hp) -> torch.Tensor:
    """Adagrad's ``step``: on the parameter's device in float32 when fused, else host."""
    if hp.get("fused"):
        return torch.zeros((), dtype=torch.float32, device=p.device)
    return torch.tensor(0.0, dtype=torch.float32)


adagrad = Rule(
    name="adagrad",
    buffers=(Buffer("sum", init=initial_sum),),
    update=update,
    prepare=prepare,
    host_state={"step": adagrad_step},
)
