r"""PaddlePaddle's variants of the element-wise rules, as siblings of torch's.

Where Paddle's arithmetic equals torch's, only the host-side bookkeeping differs and the torch
``update`` is reused with a Paddle ``prepare``:

* **Adam/AdamW** keep per-parameter β-power accumulators (``beta1_pow_acc``,
  ``beta2_pow_acc``, float32 tensors of shape [1]) that *start at β* and are multiplied by β
  after each update, so at step t they hold :math:`\beta^t` (and :math:`\beta^{t+1}` once the
  step is done). The update is torch's:
  :math:`p \leftarrow p - \frac{\gamma\sqrt{1-\beta_2^t}}{1-\beta_1^t}
  \frac{m}{\sqrt v + \epsilon\sqrt{1-\beta_2^t}}`.
* **NAdam** keeps ``momentum_decay_pow`` (:math:`0.96^t`), ``beta2_pow`` and ``mu_product``;
  **RAdam** keeps ``beta1_pow``, ``beta2_pow`` and ``rho`` (:math:`t\beta_2^t/(1-\beta_2^t)`
  through a recursion). Paddle stores them per element; every element holds the same value, so
  they are kept here as one float32 scalar per tensor and expanded when saved.

Where the arithmetic differs, there is a new ``update``:

* **Adamax**: :math:`u \leftarrow \max(\beta_2 u + \epsilon, |g|)` (torch: :math:`\max(\beta_2
  u, |g| + \epsilon)`), :math:`p \leftarrow p - \frac{\gamma}{1-\beta_1^t}\frac{m}{u}`.
* **ASGD** (SAG-style, not torch's averaged SGD): a table ``y`` of the last ``n`` gradients
  and their running sum ``d``: :math:`d \leftarrow d - y_i + g`, :math:`y_i \leftarrow g`,
  :math:`p \leftarrow p - \gamma d / \min(m, n)` with :math:`i = (m-1) \bmod n`.

Shared with MindSpore, in their own modules:

* **RMSProp** (ε inside the square root, the learning rate inside the momentum buffer) is
  :data:`polyoptim.rules.tf_rmsprop.tf_rmsprop` with ``keep_grad_avg=True`` (Paddle creates
  ``mean_grad`` even when not centered) and ``lerp_averages=False`` (``ρv + (1-ρ)g²``, as
  Paddle's kernel rounds it); ``mean_square`` starts at 0.
* **Lamb**'s direction :math:`r = \hat m/(\sqrt{\hat v} + \epsilon) + \lambda p`, trust ratio
  and final step are :mod:`polyoptim.rules.lamb`'s; :data:`lamb` here only swaps in the β-pow
  accumulators (as Adam's) for the step counter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from .adam import adam_update, nadam_update, radam_update
from .base import Buffer, Rule
from .lamb import lamb_direction

Hyper = Mapping[str, Any]


def _pow_acc(key: str, default_key: str):
    """A float32 [1] accumulator starting at the value ``hp[key]`` (Paddle's β-pow init)."""

    def init(p: torch.Tensor, hp: Hyper) -> torch.Tensor:
        return torch.tensor([float(hp.get(key, hp[default_key]))], dtype=torch.float32)

    return init


def _scalar(value: float):
    def init(p: torch.Tensor, hp: Hyper) -> torch.Tensor:
        return torch.tensor(value, dtype=torch.float32)

    return init


def _advance(acc: torch.Tensor, factor: float) -> float:
    """``acc *= factor`` in the accumulator's float32; returns the new value."""
    acc.mul_(factor)
    return float(acc.reshape(-1)[0])


# -- Adam / AdamW ------------------------------------------------------------------------------
def adam_prepare(hp, state, fresh):
    r"""Bias corrections from the β-pow accumulators (which hold :math:`\beta^t` now), then
    advance them to :math:`\beta^{t+1}`, as Paddle's kernel does after its update."""
    beta1, beta2 = float(hp["beta1"]), float(hp["beta2"])
    b1p = float(state["beta1_pow_acc"].reshape(-1)[0])
    b2p = float(state["beta2_pow_acc"].reshape(-1)[0])
    _advance(state["beta1_pow_acc"], beta1)
    _advance(state["beta2_pow_acc"], beta2)
    return {
        "beta1": beta1,
        "beta2": beta2,
        "eps": float(hp["epsilon"]),
        "step_size": float(hp["lr"]) / (1 - b1p),
        "bc2_sqrt": math.sqrt(1 - b2p),
        "amsgrad": bool(hp["amsgrad"]),
    }


adam = Rule(
    name="paddle_adam",
    buffers=(
        Buffer("exp_avg"),
        Buffer("exp_avg_sq"),
        Buffer("max_exp_avg_sq", when=lambda hp: hp["amsgrad"]),
    ),
    update=adam_update,
    prepare=adam_prepare,
    host_state={
        "beta1_pow_acc": _pow_acc("beta1_pow_init", "beta1"),
        "beta2_pow_acc": _pow_acc("beta2_pow_init", "beta2"),
    },
)


# -- Adamax ------------------------------------------------------------------------------------
def adamax_update(ops, p, g, m, u, *, beta1, beta2, eps, clr):
    r"""``m ← β1 m + (1-β1) g``, ``u ← max(β2 u + ε, |g|)``, ``p ← p − γ/(1-β1^t) · m/u``."""
    m = m * beta1 + (1 - beta1) * g
    u = ops.maximum(u * beta2 + eps, ops.abs(g))
    return p + (-clr) * (m / u), m, u


def adamax_prepare(hp, state, fresh):
    beta1 = float(hp["beta1"])
    b1p = float(state["beta1_pow_acc"].reshape(-1)[0])
    _advance(state["beta1_pow_acc"], beta1)
    return {
        "beta1": beta1,
        "beta2": float(hp["beta2"]),
        "eps": float(hp["epsilon"]),
        "clr": float(hp["lr"]) / (1 - b1p),
    }


adamax = Rule(
    name="paddle_adamax",
    buffers=(Buffer("exp_avg"), Buffer("exp_inf")),
    update=adamax_update,
    prepare=adamax_prepare,
    host_state={"beta1_pow_acc": _pow_acc("beta1_pow_init", "beta1")},
)


# -- NAdam -------------------------------------------------------------------------------------
def nadam_prepare(hp, state, fresh):
    r""":math:`\mu_t = \beta_1(1 - \tfrac12 (0.96^t)^\psi)`, :math:`\mu_{t+1} = \beta_1(1 -
    \tfrac12 (0.96^t)^\psi 0.96^\psi)`, with the powers and :math:`\Pi\mu` kept in float32."""
    beta1, beta2 = float(hp["beta1"]), float(hp["beta2"])
    lr, psi = float(hp["lr"]), float(hp["momentum_decay"])
    decay_pow = _advance(state["momentum_decay_pow"], 0.96)
    b2p = _advance(state["beta2_pow"], beta2)
    mu = beta1 * (1.0 - 0.5 * decay_pow**psi)
    mu_next = beta1 * (1.0 - 0.5 * decay_pow**psi * 0.96**psi)
    prod = _advance(state["mu_product"], mu)
    return {
        "beta1": beta1,
        "beta2": beta2,
        "eps": float(hp["epsilon"]),
        "bc2": 1 - b2p,
        "c_grad": -lr * (1.0 - mu) / (1.0 - prod),
        "c_avg": (-lr * mu_next) / (1.0 - prod * mu_next),
    }


nadam = Rule(
    name="paddle_nadam",
    buffers=(Buffer("exp_avg"), Buffer("exp_avg_sq")),
    update=nadam_update,
    prepare=nadam_prepare,
    host_state={
        "momentum_decay_pow": _scalar(1.0),
        "beta2_pow": _scalar(1.0),
        "mu_product": _scalar(1.0),
    },
)


# -- RAdam -------------------------------------------------------------------------------------
def radam_prepare(hp, state, fresh):
    r"""The pows advance first; ``rho`` holds :math:`t\beta_2^t/(1-\beta_2^t)` through
    :math:`\rho' = (\rho(\beta_2 - \beta_2^t) + \beta_2^t)/(1-\beta_2^t)`, and
    :math:`\rho_t = \rho_\infty - 2\rho'` decides the rectification."""
    beta1, beta2 = float(hp["beta1"]), float(hp["beta2"])
    b1p = _advance(state["beta1_pow"], beta1)
    b2p = _advance(state["beta2_pow"], beta2)
    rho = float(state["rho"])
    rho = (rho * (beta2 - b2p) + b2p) / (1 - b2p)
    state["rho"].fill_(rho)
    rho = float(state["rho"])
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * rho
    rect = None
    if rho_t > 5.0:
        rect = math.sqrt(
            (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        )
    return {
        "lr": float(hp["lr"]),
        "beta1": beta1,
        "beta2": beta2,
        "eps": float(hp["epsilon"]),
        "bc1": 1 - b1p,
        "bc2_sqrt": math.sqrt(1 - b2p),
        "rect": rect,
    }


radam = Rule(
    name="paddle_radam",
    buffers=(Buffer("exp_avg"), Buffer("exp_avg_sq")),
    update=radam_update,
    prepare=radam_prepare,
    host_state={"beta1_pow": _scalar(1.0), "beta2_pow": _scalar(1.0), "rho": _scalar(0.0)},
)


# -- ASGD (SAG-style) --------------------------------------------------------------------------
def asgd_update(ops, p, g, d, y, *, step_size):
    r"""``d ← d − y_i + g``, ``y_i ← g``, ``p ← p − γ/min(m, n) · d`` (``y`` is the row
    :math:`y_i` of the gradient table)."""
    d = d + (-1) * y + g
    return p + (-step_size) * d, d, g


def asgd_prepare(hp, state, fresh):
    """Advance ``m``; the row to replace is ``(m - 1) mod n`` and the divisor ``min(m, n)``."""
    n = int(hp["batch_num"])
    m = int(state["m"].reshape(-1)[0]) + 1
    state["m"].fill_(m)
    return {"row": (m - 1) % n, "step_size": float(hp["lr"]) / min(m, n)}


def _gradient_table(p: torch.Tensor, hp: Hyper) -> torch.Tensor:
    return torch.zeros((int(hp["batch_num"]), *p.shape), dtype=p.dtype, device=p.device)


asgd = Rule(
    name="paddle_asgd",
    buffers=(Buffer("d"), Buffer("y", init=_gradient_table)),
    update=asgd_update,
    prepare=asgd_prepare,
    host_state={"m": lambda p, hp: torch.zeros(1, dtype=torch.int64)},
)


# -- Lamb --------------------------------------------------------------------------------------
def lamb_prepare(hp, state, fresh):
    """Bias corrections from the β-pow accumulators, then advance them (as Adam)."""
    beta1, beta2 = float(hp["beta1"]), float(hp["beta2"])
    b1p = float(state["beta1_pow_acc"].reshape(-1)[0])
    b2p = float(state["beta2_pow_acc"].reshape(-1)[0])
    _advance(state["beta1_pow_acc"], beta1)
    _advance(state["beta2_pow_acc"], beta2)
    return {
        "beta1": beta1,
        "beta2": beta2,
        "eps": float(hp["epsilon"]),
        "bc1": 1 - b1p,
        "bc2": 1 - b2p,
        "weight_decay": float(hp["lamb_weight_decay"]),
    }


#: Lamb's element-wise half (:func:`polyoptim.rules.lamb.lamb_direction`, shared with
#: MindSpore) with Paddle's β-pow bookkeeping; :class:`polyoptim.paddle.Lamb` runs it around
#: :func:`~polyoptim.rules.lamb.lamb_trust_ratio` and :func:`~polyoptim.rules.lamb.lamb_apply`.
lamb = Rule(
    name="paddle_lamb_direction",
    buffers=(Buffer("exp_avg"), Buffer("exp_avg_sq")),
    update=lamb_direction,
    prepare=lamb_prepare,
    host_state={
        "beta1_pow_acc": _pow_acc("beta1_pow_init", "beta1"),
        "beta2_pow_acc": _pow_acc("beta2_pow_init", "beta2"),
    },
)

__all__ = [
    "adam",
    "adamax",
    "asgd",
    "lamb",
    "nadam",
    "radam",
]
