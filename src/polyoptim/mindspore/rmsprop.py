"""MindSpore's ``RMSProp`` (rule: :mod:`polyoptim.rules.tf_rmsprop`)."""

from __future__ import annotations

from typing import Any

from ..rules.tf_rmsprop import tf_rmsprop
from . import _validator as V
from .optimizer import NUMBER_TYPES, Optimizer, f32, primitive_type_error

__all__ = ["RMSProp"]


class RMSProp(Optimizer):
    r"""RMSProp as MindSpore documents it (``nn.RMSProp``; TensorFlow's form).

    .. math::
        s_t = \rho s_{t-1} + (1-\rho) g_t^2 \qquad
        \bar g_t = \rho \bar g_{t-1} + (1-\rho) g_t \ (\text{centered})

    .. math::
        b_t = \mu b_{t-1} + \frac{\gamma g_t}{\sqrt{s_t - \bar g_t^2 + \epsilon}} \qquad
        p_t = p_{t-1} - b_t

    :math:`s` starts at **ones**; :math:`\epsilon` is inside the square root and the learning
    rate inside the momentum buffer (torch's RMSprop differs in all three). MindSpore 2.10.0's
    non-centered CPU kernel adds :math:`\epsilon` outside the root on blocks of 8 elements
    (see docs/mindspore.md); this is the documented rule.

    Args:
        params: tensors, ``(name, tensor)`` pairs or group dicts.
        learning_rate: see :class:`~polyoptim.mindspore.Optimizer` (default 0.1).
        decay: :math:`\rho \ge 0`.
        momentum: :math:`\mu \ge 0`.
        epsilon: :math:`\epsilon > 0`.
        use_locking: accepted; no numeric effect.
        centered: subtract the squared mean gradient.
        loss_scale: static loss scale.
        weight_decay: float or schedule.

    State: ``mean_square.<name>``, ``moment.<name>``, ``mean_grad.<name>`` (centered).

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> w = torch.nn.Parameter(torch.ones(1))
        >>> opt = nn.RMSProp([w], learning_rate=0.1, decay=0.0, epsilon=1e-10)
        >>> _ = opt((torch.full((1,), 2.0),)); w.detach()
        tensor([0.9000])
    """

    rule = tf_rmsprop
    _ckpt_slots = (
        ("mean_square.{}", "square_avg"),
        ("moment.{}", "momentum_buffer"),
        ("mean_grad.{}", "grad_avg"),
    )

    _dtype_refusal = primitive_type_error(
        "ApplyRMSProp", "decay dtype", ("Float16", "Float32"), bare=("Float16", "Float32")
    )
    _bool_refusal = primitive_type_error("ApplyRMSProp", "grad dtype", NUMBER_TYPES[1:])

    def __init__(
        self,
        params: Any,
        learning_rate: Any = 0.1,
        decay: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-10,
        use_locking: bool = False,
        centered: bool = False,
        loss_scale: float = 1.0,
        weight_decay: Any = 0.0,
    ) -> None:
        super().__init__(learning_rate, params, weight_decay, loss_scale)
        name = self.cls_name
        V.check_value_type("decay", decay, [float], name)
        V.check_non_negative_float(decay, "decay", name)
        V.check_value_type("momentum", momentum, [float], name)
        V.check_non_negative_float(momentum, "momentum", name)
        V.check_value_type("epsilon", epsilon, [float], name)
        V.check_positive_float(epsilon, "epsilon", name)
        V.check_value_type("use_locking", use_locking, [bool], name)
        V.check_value_type("centered", centered, [bool], name)
        self.centered = centered
        self._configure(
            rho=f32(decay),
            momentum=f32(momentum),
            eps=f32(epsilon),
            centered=centered,
            initial_mean_square=1.0,
        )
