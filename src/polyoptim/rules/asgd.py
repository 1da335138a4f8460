r"""Averaged SGD (torch's ASGD).

.. math::
    p_t = p_{t-1}(1 - \lambda\eta_t) - \eta_t g_t \qquad
    a_t = a_{t-1} + \mu_t (p_t - a_{t-1})

then on the host :math:`\eta_{t+1} = \gamma / (1 + \lambda\gamma t)^\alpha`,
:math:`\mu_{t+1} = 1/\max(1, t - t_0)`. ``eta`` and ``mu`` are float32 state, as in torch.
"""

from __future__ import annotations

import torch

from .base import Buffer, Rule, as_float, maximum, set_host_scalar, step_counter, step_of


def update(ops, p, g, ax, *, eta, lambd, mu, copy_ax):
    p = p * (1 - lambd * eta)
    p = ops.add(p, g, -eta)
    ax = ops.select(copy_ax, p, ax + (p - ax) * mu)
    return p, ax


def prepare(hp, state, fresh):
    t = step_of(state)
    eta, mu = as_float(state["eta"]), as_float(state["mu"])
    lr, lambd = float(hp["lr"]), hp["lambd"]
    set_host_scalar(state, "eta", lr / ((1 + lambd * lr * t) ** hp["alpha"]))
    set_host_scalar(state, "mu", 1 / maximum(1, t - hp["t0"]))
    return {"eta": eta, "lambd": lambd, "mu": mu, "copy_ax": mu == 1}


asgd = Rule(
    name="asgd",
    buffers=(Buffer("ax"),),
    update=update,
    prepare=prepare,
    host_state={
        "step": step_counter,
        "eta": lambda p, hp: torch.tensor(float(hp["lr"]), dtype=torch.float32),
        "mu": lambda p, hp: torch.tensor(1.0, dtype=torch.float32),
    },
)
