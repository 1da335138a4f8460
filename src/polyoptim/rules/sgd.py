r"""Stochastic gradient descent with (Nesterov) momentum.

.. math::
    b_t = \begin{cases} g_t & t = 1 \\ \mu b_{t-1} + (1-\tau) g_t & t > 1 \end{cases}
    \qquad
    p_t = p_{t-1} - \gamma \cdot \begin{cases} g_t + \mu b_t & \text{nesterov} \\
                                                b_t & \text{otherwise} \end{cases}

With ``momentum == 0`` there is no buffer and :math:`p_t = p_{t-1} - \gamma g_t`.
"""

from __future__ import annotations

from .base import Buffer, Rule


def update(ops, p, g, buf, *, lr, momentum, dampening, nesterov, first):
    if buf is not None:
        buf = g if first else ops.add(buf * momentum, g, 1 - dampening)
        g = ops.add(g, buf, momentum) if nesterov else buf
    return ops.add(p, g, -lr), buf


def prepare(hp, state, fresh):
    lr = hp["lr"]
    return {
        "lr": lr if hp.get("differentiable") else float(lr),
        "momentum": hp["momentum"],
        "dampening": hp["dampening"],
        "nesterov": hp["nesterov"],
        "first": fresh,
    }


sgd = Rule(
    name="sgd",
    buffers=(Buffer("momentum_buffer", when=lambda hp: hp["momentum"] != 0),),
    update=update,
    prepare=prepare,
)
