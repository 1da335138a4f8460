r"""The Adam family: Adam/AdamW, Adamax, NAdam and RAdam.

Adam (torch's form; decay and ``maximize`` come from the prologue):

.. math::
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t \qquad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \qquad
    \hat v_t = \max(\hat v_{t-1}, v_t) \text{ (amsgrad)}

.. math::
    p_t = p_{t-1} - \frac{\gamma}{1-\beta_1^t} \cdot
          \frac{m_t}{\sqrt{v_t} / \sqrt{1-\beta_2^t} + \epsilon}
"""

from __future__ import annotations

from .base import Buffer, Rule, as_float, host_scalar, on_device, sqrt, step_counter, step_of


def _betas(hp):
    b1, b2 = hp["betas"]
    return float(b1), float(b2)


# -- Adam / AdamW ------------------------------------------------------------------------------
def adam_update(ops, p, g, m, v, vmax, *, beta1, beta2, eps, step_size, bc2_sqrt, amsgrad):
    m = ops.lerp(m, g, 1 - beta1)
    v = ops.addcmul(v * beta2, g, g, 1 - beta2)
    if amsgrad:
        vmax = ops.maximum(vmax, v)
        denom = ops.sqrt(vmax) / bc2_sqrt + eps
    else:
        denom = ops.sqrt(v) / bc2_sqrt + eps
    return ops.addcdiv(p, m, denom, -step_size), m, v, vmax


def adam_prepare(hp, state, fresh):
    t = step_of(state)
    beta1, beta2 = _betas(hp)
    lr = float(hp["lr"])
    if hp.get("differentiable") or hp.get("capturable"):
        # torch takes the bias corrections from the float32 step tensor on these paths;
        # 1 - β2^t loses digits there, and the numbers must agree
        t_f32 = state["step"]
        step_size = lr / as_float(1 - beta1**t_f32)
        bc2_sqrt = as_float((1 - beta2**t_f32).sqrt())
    else:
        step_size = lr / (1 - beta1**t)
        bc2_sqrt = sqrt(1 - beta2**t)
    return {
        "beta1": beta1,
        "beta2": beta2,
        "eps": hp["eps"],
        "step_size": step_size,
        "bc2_sqrt": bc2_sqrt,
        "amsgrad": hp["amsgrad"],
    }


adam = Rule(
    name="adam",
    buffers=(
        Buffer("exp_avg"),
        Buffer("exp_avg_sq"),
        Buffer("max_exp_avg_sq", when=lambda hp: hp["amsgrad"]),
    ),
    update=adam_update,
    prepare=adam_prepare,
    host_state={"step": step_counter},
)


# -- Adamax ------------------------------------------------------------------------------------
def adamax_update(ops, p, g, m, u, *, beta1, beta2, eps, clr):
    r"""``m ← lerp(m, g, 1-β1)``, ``u ← max(β2 u, |g| + ε)``, ``p ← p − γ/(1-β1^t) · m/u``."""
    m = ops.lerp(m, g, 1 - beta1)
    u = ops.maximum(u * beta2, ops.abs(g) + eps)
    return ops.addcdiv(p, m, u, -clr), m, u


def adamax_prepare(hp, state, fresh):
    t = step_of(state)
    beta1, beta2 = _betas(hp)
    return {
        "beta1": beta1,
        "beta2": beta2,
        "eps": hp["eps"],
        "clr": float(hp["lr"]) / (1 - beta1**t),
    }


adamax = Rule(
    name="adamax",
    buffers=(Buffer("exp_avg"), Buffer("exp_inf")),
    update=adamax_update,
    prepare=adamax_prepare,
    host_state={"step": step_counter},
)


# -- NAdam -------------------------------------------------------------------------------------
def nadam_update(ops, p, g, m, v, *, beta1, beta2, eps, bc2, c_grad, c_avg):
    r"""``p ← p + c_g · g/d + c_m · m/d`` with ``d = √(v/(1-β2^t)) + ε`` and the
    momentum-schedule coefficients ``c_g = −γ(1−μ_t)/(1−Πμ)``, ``c_m = −γμ_{t+1}/(1−Πμ·μ_{t+1})``.
    """
    m = ops.lerp(m, g, 1 - beta1)
    v = ops.addcmul(v * beta2, g, g, 1 - beta2)
    denom = ops.sqrt(v / bc2) + eps
    p = ops.addcdiv(p, g, denom, c_grad)
    p = ops.addcdiv(p, m, denom, c_avg)
    return p, m, v


def nadam_prepare(hp, state, fresh):
    t = step_of(state)
    beta1, beta2 = _betas(hp)
    lr, psi = float(hp["lr"]), hp["momentum_decay"]
    mu = beta1 * (1.0 - 0.5 * (0.96 ** (t * psi)))
    mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((t + 1) * psi)))
    # the running product is kept in float32 state, so it is rounded there as torch rounds it
    state["mu_product"] *= mu
    prod = as_float(state["mu_product"])
    return {
        "beta1": beta1,
        "beta2": beta2,
        "eps": hp["eps"],
        "bc2": 1 - beta2**t,
        "c_grad": -lr * (1.0 - mu) / (1.0 - prod),
        "c_avg": (-lr * mu_next) / (1.0 - prod * mu_next),
    }


nadam = Rule(
    name="nadam",
    buffers=(Buffer("exp_avg"), Buffer("exp_avg_sq")),
    update=nadam_update,
    prepare=nadam_prepare,
    host_state={
        "step": step_counter,
        "mu_product": host_scalar(1.0),
    },
)


# -- RAdam -------------------------------------------------------------------------------------
def radam_update(
    ops,
    p,
    g,
    m,
    v,
    *,
    lr,
    beta1,
    beta2,
    eps,
    bc1,
    bc2_sqrt,
    rect,
    folded=False,
    rect_step=0.0,
    unrect_step=0.0,
    tractable=None,
):
    r"""Rectified Adam: when the variance is tractable (``ρ_t > 5``)
    ``p ← p − γ · m/(1-β1^t) · √(1-β2^t)/(√v + ε) · r_t``, else ``p ← p − γ · m/(1-β1^t)``.

    ``folded``: torch's multi-tensor form of the same step (its ``foreach=True`` path), the
    per-tensor factors folded on the host: ``p ← p + m · (1 / ((√v + ε) / c_r) + c_u)`` with
    ``c_r = −√(1-β2^t) · γ r_t/(1-β1^t)`` and ``c_u = −γ [r_t = 0]/(1-β1^t)`` -- one temporary
    and five passes instead of the for-loop's chain of products.

    ``tractable``: per tensor, whether ``ρ_t > 5``, when it is known only on the device (a
    ``capturable`` step): both forms are computed and the kernel picks one, with no host
    branch."""
    m = ops.lerp(m, g, 1 - beta1)
    v = ops.addcmul(v * beta2, g, g, 1 - beta2)
    if folded:
        return ops.addcmul(p, m, 1 / ((ops.sqrt(v) + eps) / rect_step) + unrect_step, 1), m, v
    m_hat = m / bc1
    if rect is not None:
        step = m_hat * lr * (bc2_sqrt / (ops.sqrt(v) + eps)) * rect
        if tractable is not None:
            step = ops.select(tractable, step, m_hat * lr)
        p = p + (-1.0) * step
    else:
        p = p + (-1.0) * (m_hat * lr)
    return p, m, v


def radam_prepare(hp, state, fresh):
    t = step_of(state)
    beta1, beta2 = _betas(hp)
    bc2 = 1 - beta2**t
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * (beta2**t) / bc2
    tractable = rho_t > 5.0
    if on_device(tractable):  # a capturable step: the kernel picks per tensor, no host branch
        rect = _rectification(rho_t, rho_inf)
    else:
        rect, tractable = (_rectification(rho_t, rho_inf) if tractable else None), None
    lr, bc1 = float(hp["lr"]), 1 - beta1**t
    folded = bool(hp.get("foreach")) and not hp.get("differentiable")
    rect_step = unrect_step = 0.0
    if folded:  # torch's host arithmetic for its multi-tensor step, in its order
        r = rect if rect is not None else 0
        rect_step = (bc2**0.5) * (lr * r / bc1) * -1
        unrect_step = (lr * (0 if r > 0 else 1.0) / bc1) * -1
        rect = tractable = None  # the folded update does not branch on it
    return {
        "lr": lr,
        "beta1": beta1,
        "beta2": beta2,
        "eps": hp["eps"],
        "bc1": bc1,
        "bc2_sqrt": bc2**0.5,
        "rect": rect,
        "folded": folded,
        "rect_step": rect_step,
        "unrect_step": unrect_step,
        "tractable": tractable,
    }


def _rectification(rho_t, rho_inf):
    """RAdam's variance rectification term ``r_t`` (real where ``ρ_t > 4``)."""
    return ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5


radam = Rule(
    name="radam",
    buffers=(Buffer("exp_avg"), Buffer("exp_avg_sq")),
    update=radam_update,
    prepare=radam_prepare,
    host_state={"step": step_counter},
)
