r"""Adafactor as fairseq (and Hugging Face, T5, MindSpore's ``nn.AdaFactor``) implement it.

Not element-wise: the second moment of a matrix (the last two dimensions) is kept as row and
column means, and the update is clipped by its own RMS. It differs from torch's Adafactor
(:mod:`polyoptim.rules.adafactor`) in where :math:`\epsilon_1` goes (added to
:math:`g^2`), in the relative step size and in the optional first moment.

For step :math:`t`, :math:`\hat\beta_{2,t} = 1 - t^{-c}` (``decay_rate`` :math:`c`) and

.. math::
    \alpha_t = \gamma_t \cdot \max(\epsilon_2, \mathrm{RMS}(p_{t-1}))
    \ (\text{scale\_parameter; else } \gamma_t) \qquad
    G = g_t^2 + \epsilon_1

.. math::
    R_t = \hat\beta_{2,t} R_{t-1} + (1-\hat\beta_{2,t})\,\mathrm{mean}_{-1}(G), \quad
    C_t = \hat\beta_{2,t} C_{t-1} + (1-\hat\beta_{2,t})\,\mathrm{mean}_{-2}(G), \quad
    U = \frac{g_t}{\sqrt{R_t/\mathrm{mean}(R_t)}\,\sqrt{C_t}}

(vectors: :math:`V_t = \hat\beta_{2,t} V_{t-1} + (1-\hat\beta_{2,t}) G`,
:math:`U = g_t/\sqrt{V_t}`), then

.. math::
    U \leftarrow \frac{\alpha_t U}{\max(1, \mathrm{RMS}(U)/d)} \qquad
    m_t = \beta_1 m_{t-1} + (1-\beta_1) U,\ U \leftarrow m_t \ (\beta_1 > 0) \qquad
    p_t = p_{t-1} - \lambda\alpha_t p_{t-1} - U

The relative step size (``relative_step``) is
:math:`\gamma_t = \min(10^{-2} \text{ or } 10^{-6} t \text{ (warmup\_init)}, 1/\sqrt t)`.
"""

from __future__ import annotations

import math

import torch


def relative_step_size(step: float, warmup_init: bool) -> float:
    """:math:`\\min(10^{-2}` (or :math:`10^{-6} t` with warm-up init) :math:`, 1/\\sqrt t)`."""
    return min(1e-6 * step if warmup_init else 1e-2, 1.0 / math.sqrt(step))


def second_moment_weight(step: float, decay_rate: float) -> float:
    """:math:`\\hat\\beta_{2,t} = 1 - t^{-c}`."""
    return 1.0 - step ** (-decay_rate)


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.square().mean().sqrt()


def adafactor_step(
    p: torch.Tensor,
    g: torch.Tensor,
    exp_avg: torch.Tensor | None,
    row: torch.Tensor,
    col: torch.Tensor,
    full: torch.Tensor,
    *,
    lr: float,
    beta2t: float,
    beta1: float,
    eps1: float,
    eps2: float,
    clip_threshold: float,
    weight_decay: float,
    scale_parameter: bool,
) -> None:
    """One step on one tensor, in place on ``p`` and its state (``row``/``col`` for tensors of
    two or more dimensions, else ``full``; ``exp_avg`` only when :math:`\\beta_1 > 0`)."""
    compute = torch.promote_types(p.dtype, torch.float32)
    pf, gf = p.detach().to(compute), g.to(compute)
    alpha = lr * torch.clamp_min(_rms(pf), eps2) if scale_parameter else torch.tensor(lr)
    update = gf * gf + eps1
    if g.dim() >= 2:
        r = row.to(compute) * beta2t + update.mean(dim=-1) * (1.0 - beta2t)
        c = col.to(compute) * beta2t + update.mean(dim=-2) * (1.0 - beta2t)
        row.copy_(r)
        col.copy_(c)
        r_factor = (1.0 / torch.sqrt(r / r.mean(dim=-1, keepdim=True))).unsqueeze(-1)
        c_factor = (1.0 / torch.sqrt(c)).unsqueeze(-2)
        update = r_factor * c_factor * gf
    else:
        v = full.to(compute) * beta2t + update * (1.0 - beta2t)
        full.copy_(v)
        update = (1.0 / torch.sqrt(v)) * gf
    coeff = torch.clamp_min(_rms(update) / clip_threshold, 1.0)
    update = update / coeff * alpha
    if exp_avg is not None:
        m = exp_avg.to(compute) * beta1 + update * (1.0 - beta1)
        exp_avg.copy_(m)
        update = m
    if weight_decay != 0:
        pf = pf + pf * (-weight_decay * alpha)
    p.copy_(pf - update)
