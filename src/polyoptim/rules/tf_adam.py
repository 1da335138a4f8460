r"""The Adam family in TensorFlow's form (MindSpore's ``Adam``, ``AdaMax`` and BERT's
``AdamWeightDecay``).

They differ from torch's Adam (:mod:`polyoptim.rules.adam`) in three ways:

* the bias corrections use running powers :math:`\beta^t` kept in float32 state
  (``beta1_power``/``beta2_power``, starting at 1 and multiplied by :math:`\beta` in float32
  before each use), as the frameworks store them;
* :math:`\epsilon` is added to :math:`\sqrt{v_t}` unscaled ("epsilon hat"): torch's
  :math:`\epsilon` equals :math:`\hat\epsilon/\sqrt{1-\beta_2^t}`;
* variants: a Nesterov numerator, AMSGrad's running maximum, no bias correction at all
  (``AdamWeightDecay``) and AdaMax's :math:`\epsilon` outside the maximum.

Adam (``ApplyAdam``, ``ApplyAdamWithAmsgradV2``):

.. math::
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t \qquad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \qquad
    \hat v_t = \max(\hat v_{t-1}, v_t) \text{ (amsgrad)}

.. math::
    \gamma_t = \gamma \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t} \qquad
    p_t = p_{t-1} - \gamma_t \frac{n_t}{\sqrt{v_t \text{ or } \hat v_t} + \epsilon}, \qquad
    n_t = m_t \text{ or } \beta_1 m_t + (1-\beta_1) g_t \text{ (nesterov)}
"""

from __future__ import annotations

import math

import torch

from .base import Buffer, Rule


def _power(p: torch.Tensor, hp) -> torch.Tensor:
    """A running power :math:`\\beta^t`: a 0-d float32 host tensor starting at 1."""
    return torch.tensor(1.0, dtype=torch.float32)


def advance_power(state, key: str, beta: float) -> float:
    """Multiply the float32 power ``state[key]`` by ``beta`` (in float32) and return it."""
    power = state[key]
    power.mul_(torch.tensor(beta, dtype=torch.float32))
    return float(power.item())


# -- Adam (epsilon hat) ------------------------------------------------------------------------
def adam_update(ops, p, g, m, v, vmax, *, beta1, beta2, eps, lr_t, amsgrad, nesterov):
    m = ops.lerp(m, g, 1 - beta1)
    v = ops.lerp(v, g * g, 1 - beta2)
    if amsgrad:
        vmax = ops.maximum(vmax, v)
        denom = ops.sqrt(vmax) + eps
    else:
        denom = ops.sqrt(v) + eps
    num = m * beta1 + (1 - beta1) * g if nesterov else m
    return p + (-lr_t) * (num / denom), m, v, vmax


def adam_prepare(hp, state, fresh):
    beta1, beta2 = float(hp["beta1"]), float(hp["beta2"])
    b1t = advance_power(state, "beta1_power", beta1)
    b2t = advance_power(state, "beta2_power", beta2)
    return {
        "beta1": beta1,
        "beta2": beta2,
        "eps": float(hp["eps"]),
        "lr_t": float(hp["lr"]) * math.sqrt(1.0 - b2t) / (1.0 - b1t),
        "amsgrad": bool(hp.get("amsgrad", False)),
        "nesterov": bool(hp.get("nesterov", False)),
    }


adam_hat = Rule(
    name="adam_hat",
    buffers=(
        Buffer("exp_avg"),
        Buffer("exp_avg_sq"),
        Buffer("max_exp_avg_sq", when=lambda hp: bool(hp.get("amsgrad", False))),
    ),
    update=adam_update,
    prepare=adam_prepare,
    host_state={"beta1_power": _power, "beta2_power": _power},
)
"""Adam with an unscaled :math:`\\epsilon` and float32 :math:`\\beta^t` state.

Hyperparameters: ``lr``, ``beta1``, ``beta2``, ``eps``, ``amsgrad``, ``nesterov``."""


# -- AdamWeightDecay (BERT; no bias correction) ------------------------------------------------
def adamw_nobc_update(ops, p, g, m, v, *, lr, beta1, beta2, eps, weight_decay):
    r"""``p ← p − γ (m/(√v + ε) + λ p)`` with plain (uncorrected) moments."""
    m = ops.lerp(m, g, 1 - beta1)
    v = ops.lerp(v, g * g, 1 - beta2)
    update = m / (ops.sqrt(v) + eps)
    if weight_decay != 0:
        update = update + p * weight_decay
    return p + (-lr) * update, m, v


def adamw_nobc_prepare(hp, state, fresh):
    return {
        "lr": float(hp["lr"]),
        "beta1": float(hp["beta1"]),
        "beta2": float(hp["beta2"]),
        "eps": float(hp["eps"]),
        "weight_decay": float(hp.get("weight_decay", 0.0)),
    }


adamw_no_bias_correction = Rule(
    name="adamw_no_bias_correction",
    buffers=(Buffer("exp_avg"), Buffer("exp_avg_sq")),
    update=adamw_nobc_update,
    prepare=adamw_nobc_prepare,
)
r"""BERT's AdamWeightDecay: no bias correction, decoupled decay inside the update.

.. math::
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t \quad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \quad
    p_t = p_{t-1} - \gamma\Big(\frac{m_t}{\sqrt{v_t} + \epsilon} + \lambda p_{t-1}\Big)

Hyperparameters: ``lr``, ``beta1``, ``beta2``, ``eps``, ``weight_decay``."""


# -- AdaMax (TensorFlow's ApplyAdaMax) ---------------------------------------------------------
def adamax_update(ops, p, g, m, u, *, beta1, beta2, eps, clr):
    r"""``u ← max(β2 u, |g|)``, ``p ← p − γ/(1−β1^t) · m/(u + ε)``."""
    m = ops.lerp(m, g, 1 - beta1)
    u = ops.maximum(u * beta2, ops.abs(g))
    return p + (-clr) * (m / (u + eps)), m, u


def adamax_prepare(hp, state, fresh):
    beta1 = float(hp["beta1"])
    b1t = advance_power(state, "beta1_power", beta1)
    return {
        "beta1": beta1,
        "beta2": float(hp["beta2"]),
        "eps": float(hp["eps"]),
        "clr": float(hp["lr"]) / (1.0 - b1t),
    }


adamax_hat = Rule(
    name="adamax_hat",
    buffers=(Buffer("exp_avg"), Buffer("exp_inf")),
    update=adamax_update,
    prepare=adamax_prepare,
    host_state={"beta1_power": _power},
)
r"""AdaMax with :math:`\epsilon` added after the maximum (torch adds it to :math:`|g|` inside).

.. math::
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t \quad
    u_t = \max(\beta_2 u_{t-1}, |g_t|) \quad
    p_t = p_{t-1} - \frac{\gamma}{1-\beta_1^t}\frac{m_t}{u_t + \epsilon}

Hyperparameters: ``lr``, ``beta1``, ``beta2``, ``eps``."""
