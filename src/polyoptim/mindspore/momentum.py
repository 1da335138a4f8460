"""MindSpore's ``Momentum`` and ``SGD`` (both run torch's SGD rule, :mod:`polyoptim.rules.sgd`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..rules.base import Buffer
from ..rules.sgd import sgd
from . import _validator as V
from .optimizer import NUMBER_TYPES, Optimizer, f32, primitive_type_error, unsupported_type

__all__ = ["SGD", "Momentum"]


class Momentum(Optimizer):
    r"""Momentum SGD (MindSpore's ``nn.Momentum``, ``ApplyMomentum``).

    .. math::
        v_t = \mu v_{t-1} + g_t \qquad
        p_t = p_{t-1} - \gamma v_t \quad\text{or, with Nesterov,}\quad
        p_t = p_{t-1} - \gamma (g_t + \mu v_t)

    where :math:`g_t` has been through the pipeline (weight decay, centralization, loss
    scale; see :class:`~polyoptim.mindspore.Optimizer`).

    Args:
        params: tensors, ``(name, tensor)`` pairs or group dicts.
        learning_rate: see :class:`~polyoptim.mindspore.Optimizer`.
        momentum: :math:`\mu \ge 0` (a float).
        weight_decay: float or schedule; names with ``beta``/``gamma`` are not decayed.
        loss_scale: static loss scale.
        use_nesterov: Nesterov momentum, as documented (MindSpore's CPU kernel ignores it).

    State: ``moments.<name>`` (the buffer :math:`v`) and the scalar ``momentum``.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> w = torch.nn.Parameter(torch.ones(2))
        >>> opt = nn.Momentum([("w", w)], learning_rate=0.1, momentum=0.9)
        >>> _ = opt((torch.ones(2),)); _ = opt((torch.ones(2),)); w.detach()
        tensor([0.7100, 0.7100])
    """

    rule = replace(sgd, buffers=(Buffer("momentum_buffer"),))
    _ckpt_slots = (("moments.{}", "momentum_buffer"),)
    _ckpt_hypers = (("momentum", "momentum"),)

    _dtype_refusal = unsupported_type("ApplyMomentum")
    _bool_refusal = primitive_type_error("ApplyMomentum", "v_type", NUMBER_TYPES, ref=True)

    def __init__(
        self,
        params: Any,
        learning_rate: Any,
        momentum: float,
        weight_decay: Any = 0.0,
        loss_scale: float = 1.0,
        use_nesterov: bool = False,
    ) -> None:
        super().__init__(learning_rate, params, weight_decay, loss_scale)
        V.check_value_type("momentum", momentum, [float], self.cls_name)
        if momentum < 0.0:
            raise ValueError(
                f"For 'Momentum', the argument 'momentum' must be at least 0.0, but got {momentum}"
            )
        V.check_bool(use_nesterov)  # MindSpore names neither the argument nor the class
        self.use_nesterov = use_nesterov
        self._configure(momentum=f32(momentum), dampening=0.0, nesterov=use_nesterov)


class SGD(Optimizer):
    r"""Stochastic gradient descent with momentum, dampening and Nesterov (MindSpore's
    ``nn.SGD``; torch's rule).

    .. math::
        b_1 = g_1, \quad b_t = \mu b_{t-1} + (1-\tau) g_t \qquad
        p_t = p_{t-1} - \gamma \cdot (b_t \ \text{or}\ g_t + \mu b_t \text{ (nesterov)})

    and :math:`p_t = p_{t-1} - \gamma g_t` when :math:`\mu = 0`.

    Args:
        params: tensors, ``(name, tensor)`` pairs or group dicts.
        learning_rate: see :class:`~polyoptim.mindspore.Optimizer` (default 0.1).
        momentum: :math:`\mu \ge 0`.
        dampening: :math:`\tau \ge 0`.
        weight_decay: a float (a dynamic weight decay is refused, as in MindSpore).
        nesterov: needs ``momentum > 0`` and ``dampening == 0``.
        loss_scale: static loss scale.

    State: ``accum.<name>``, ``stat.<name>`` (1 until the first step) and ``momentum``.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> w = torch.nn.Parameter(torch.ones(2))
        >>> opt = nn.SGD([w], learning_rate=0.1)
        >>> _ = opt((torch.ones(2),)); w.detach()
        tensor([0.9000, 0.9000])
    """

    rule = sgd
    _ckpt_slots = (("accum.{}", "momentum_buffer"), ("stat.{}", "__stat__"))
    _ckpt_hypers = (("momentum", "momentum"),)

    _dtype_refusal = (
        "For 'SGD', the element of 'parameters' must be one of Tensor[Float16], Tensor[Float32], "
        "but got Ref[Tensor[{ms}]].The supported data types depend on the hardware that executes "
        "the operator, for more details, please refer to the MindSpore official website to get "
        "more information about the data type."
    )

    def __init__(
        self,
        params: Any,
        learning_rate: Any = 0.1,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: Any = 0.0,
        nesterov: bool = False,
        loss_scale: float = 1.0,
    ) -> None:
        super().__init__(learning_rate, params, weight_decay, loss_scale)
        if isinstance(momentum, int) and not isinstance(momentum, bool):
            momentum = float(momentum)
        if not isinstance(momentum, float):
            raise TypeError(
                f"For 'SGD', the argument 'momentum' must be float type, but got {type(momentum)}."
            )
        if momentum < 0.0:
            raise ValueError(
                f"For 'SGD', the argument 'momentum' must be at least 0.0, but got {momentum}."
            )
        if isinstance(dampening, int) and not isinstance(dampening, bool):
            dampening = float(dampening)
        if not isinstance(dampening, float):
            raise TypeError(
                f"For 'SGD', the argument 'dampening' must be float type, but got "
                f"{type(dampening)}."
            )
        if dampening < 0.0:
            raise ValueError(
                f"For 'SGD', the argument 'dampening' must be at least 0.0, but got 'dampening' "
                f"{dampening}"
            )
        V.check_value_type("nesterov", nesterov, [bool], self.cls_name)
        if nesterov and (momentum <= 0.0 or dampening != 0.0):
            raise ValueError(
                "For 'SGD', if 'nesterov' is true, 'momentum' must be > 0.0 and 'dampening' must "
                f"equal to 0.0, but got 'momentum' {momentum}, 'dampening' {dampening}."
            )
        if self.dynamic_weight_decay:
            raise TypeError(
                "For 'SGD', dynamic weight decay is currently not supported, the argument "
                "'weight_decay' or 'weight_decay' set in grouped 'params' must be float or int "
                "type."
            )
        self.dampening = dampening
        self.nesterov = nesterov
        self._configure(momentum=f32(momentum), dampening=f32(dampening), nesterov=nesterov)
