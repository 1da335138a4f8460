r"""RMSprop (torch's form: ε outside the square root, lr outside the momentum buffer).

.. math::
    v_t = \alpha v_{t-1} + (1-\alpha) g_t^2 \qquad
    \bar g_t = \alpha \bar g_{t-1} + (1-\alpha) g_t \text{ (centered)}

.. math::
    d_t = \sqrt{v_t - \bar g_t^2} + \epsilon \qquad
    b_t = \mu b_{t-1} + g_t / d_t \qquad
    p_t = p_{t-1} - \gamma b_t \quad (\text{or } p_{t-1} - \gamma g_t/d_t \text{ if } \mu = 0)
"""

from __future__ import annotations

from .base import Buffer, Rule, step_counter, step_of


def update(ops, p, g, v, buf, gavg, *, lr, alpha, eps, momentum):
    v = ops.addcmul(v * alpha, g, g, 1 - alpha)
    if gavg is not None:
        gavg = ops.lerp(gavg, g, 1 - alpha)
        avg = ops.sqrt(ops.addcmul(v, gavg, gavg, -1)) + eps
    else:
        avg = ops.sqrt(v) + eps
    if buf is not None:
        buf = ops.addcdiv(buf * momentum, g, avg, 1)
        p = ops.add(p, buf, -lr)
    else:
        p = ops.addcdiv(p, g, avg, -lr)
    return p, v, buf, gavg


def prepare(hp, state, fresh):
    step_of(state)
    return {
        "lr": float(hp["lr"]),
        "alpha": hp["alpha"],
        "eps": hp["eps"],
        "momentum": hp["momentum"],
    }


rmsprop = Rule(
    name="rmsprop",
    buffers=(
        Buffer("square_avg"),
        Buffer("momentum_buffer", when=lambda hp: hp["momentum"] > 0),
        Buffer("grad_avg", when=lambda hp: hp["centered"]),
    ),
    update=update,
    prepare=prepare,
    host_state={"step": step_counter},
)
