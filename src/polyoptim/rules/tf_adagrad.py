r"""TensorFlow's Adagrad family (MindSpore's ``Adagrad``, ``ProximalAdagrad`` and ``FTRL``).

Adagrad (``ApplyAdagrad``): no :math:`\epsilon`, and the accumulator may be frozen
(``update_slots=False``):

.. math::
    s_t = s_{t-1} + g_t^2 \ (\text{if update\_slots}) \qquad
    p_t = p_{t-1} - \gamma \frac{g_t}{\sqrt{s_t}}

Proximal Adagrad (``ApplyProximalAdagrad``; :math:`\ell_1, \ell_2` scaled by the adaptive rate):

.. math::
    s_t = s_{t-1} + g_t^2 \qquad \eta_t = \gamma/\sqrt{s_t} \qquad x = p_{t-1} - \eta_t g_t
    \qquad p_t = \frac{\operatorname{sign}(x)\max(|x| - \eta_t\ell_1, 0)}{1 + \eta_t\ell_2}

FTRL-proximal (``ApplyFtrl``; :math:`c` is ``lr_power`` :math:`\le 0`):

.. math::
    a_t = a_{t-1} + g_t^2 \qquad
    z_t = z_{t-1} + g_t - \frac{a_t^{-c} - a_{t-1}^{-c}}{\gamma} p_{t-1} \qquad
    p_t = \begin{cases} \dfrac{\operatorname{sign}(z_t)\ell_1 - z_t}{a_t^{-c}/\gamma + 2\ell_2}
          & |z_t| > \ell_1 \\ 0 & \text{otherwise} \end{cases}
"""

from __future__ import annotations

import torch

from .base import Buffer, Rule


def filled(key: str):
    """A buffer initializer: the parameter's shape filled with ``hp[key]``."""

    def init(p: torch.Tensor, hp) -> torch.Tensor:
        return torch.full_like(p, float(hp[key]), memory_format=torch.preserve_format)

    return init


# -- Adagrad without epsilon -------------------------------------------------------------------
def adagrad_update(ops, p, g, s, *, lr, update_slots):
    if update_slots:
        s = s + g * g
    return p + (-lr) * (g / ops.sqrt(s)), s


def adagrad_prepare(hp, state, fresh):
    return {"lr": float(hp["lr"]), "update_slots": bool(hp.get("update_slots", True))}


adagrad_no_eps = Rule(
    name="adagrad_no_eps",
    buffers=(Buffer("sum", init=filled("initial_accumulator_value")),),
    update=adagrad_update,
    prepare=adagrad_prepare,
)
"""Adagrad with no :math:`\\epsilon` and an optional frozen accumulator.

Hyperparameters: ``lr``, ``initial_accumulator_value``, ``update_slots``."""


# -- Proximal Adagrad --------------------------------------------------------------------------
def proximal_adagrad_update(ops, p, g, s, *, lr, l1, l2):
    s = s + g * g
    eta = lr / ops.sqrt(s)
    x = p - eta * g
    if l1 > 0:
        shrunk = ops.maximum(ops.abs(x) - eta * l1, 0.0)
        x = ops.sign(x) * shrunk
    if l2 > 0:
        x = x / (eta * l2 + 1)
    return x, s


def proximal_adagrad_prepare(hp, state, fresh):
    return {"lr": float(hp["lr"]), "l1": float(hp["l1"]), "l2": float(hp["l2"])}


proximal_adagrad = Rule(
    name="proximal_adagrad",
    buffers=(Buffer("sum", init=filled("initial_accumulator_value")),),
    update=proximal_adagrad_update,
    prepare=proximal_adagrad_prepare,
)
"""Proximal Adagrad. Hyperparameters: ``lr``, ``l1``, ``l2``, ``initial_accumulator_value``."""


# -- FTRL --------------------------------------------------------------------------------------
def ftrl_update(ops, p, g, a, z, *, lr, l1, l2, lr_power):
    a_new = a + g * g
    power = -lr_power
    a_new_pow = a_new**power
    z = z + g - (a_new_pow - a**power) / lr * p
    quad = a_new_pow / lr + 2 * l2
    p = ops.where(ops.abs(z) > l1, (ops.sign(z) * l1 - z) / quad, 0.0)
    return p, a_new, z


def ftrl_prepare(hp, state, fresh):
    return {
        "lr": float(hp["lr"]),
        "l1": float(hp["l1"]),
        "l2": float(hp["l2"]),
        "lr_power": float(hp["lr_power"]),
    }


ftrl = Rule(
    name="ftrl",
    buffers=(Buffer("accum", init=filled("initial_accumulator_value")), Buffer("linear")),
    update=ftrl_update,
    prepare=ftrl_prepare,
)
"""FTRL-proximal. Hyperparameters: ``lr``, ``l1``, ``l2``, ``lr_power``,
``initial_accumulator_value``."""
