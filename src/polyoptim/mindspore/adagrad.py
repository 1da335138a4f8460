"""MindSpore's ``Adagrad``, ``Adadelta``, ``ProximalAdagrad`` and ``FTRL`` (rules:
:mod:`polyoptim.rules.tf_adagrad`, :mod:`polyoptim.rules.adadelta`)."""

from __future__ import annotations

from typing import Any

from ..rules.adadelta import adadelta
from ..rules.tf_adagrad import adagrad_no_eps, ftrl, proximal_adagrad
from . import _validator as V
from .optimizer import NUMBER_TYPES, Optimizer, f32, primitive_type_error

__all__ = ["FTRL", "Adadelta", "Adagrad", "ProximalAdagrad"]


class Adagrad(Optimizer):
    r"""Adagrad as MindSpore computes it (``nn.Adagrad``, ``ApplyAdagrad``): no
    :math:`\epsilon`.

    .. math::
        s_t = s_{t-1} + g_t^2 \ (\text{if update\_slots}) \qquad
        p_t = p_{t-1} - \gamma \frac{g_t}{\sqrt{s_t}}

    Args:
        params: tensors, ``(name, tensor)`` pairs or group dicts.
        accum: :math:`s_0 \ge 0` (float; with 0 the first step divides by :math:`|g|`).
        learning_rate: see :class:`~polyoptim.mindspore.Optimizer` (default 1e-3).
        update_slots: accumulate :math:`g^2` (else :math:`s` stays :math:`s_0`).
        loss_scale: static loss scale.
        weight_decay: float or schedule.

    State: ``accum.<name>``.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> w = torch.nn.Parameter(torch.ones(1))
        >>> opt = nn.Adagrad([w], accum=0.0, learning_rate=0.1)
        >>> _ = opt((torch.full((1,), 2.0),)); w.detach()
        tensor([0.9000])
    """

    rule = adagrad_no_eps
    _ckpt_slots = (("accum.{}", "sum"),)

    _dtype_refusal = primitive_type_error("ApplyAdagrad", "accum", NUMBER_TYPES[:5], ref=True)

    def __init__(
        self,
        params: Any,
        accum: float = 0.1,
        learning_rate: Any = 0.001,
        update_slots: bool = True,
        loss_scale: float = 1.0,
        weight_decay: Any = 0.0,
    ) -> None:
        super().__init__(learning_rate, params, weight_decay, loss_scale)
        V.check_value_type("accum", accum, [float], self.cls_name)
        V.check_value_type("update_slots", update_slots, [bool], self.cls_name)
        V.check_non_negative_float(accum, "accum", self.cls_name)
        self._configure(initial_accumulator_value=f32(accum), update_slots=update_slots)


class Adadelta(Optimizer):
    r"""Adadelta (MindSpore's ``nn.Adadelta``; torch's rule).

    .. math::
        v_t = \rho v_{t-1} + (1-\rho) g_t^2 \qquad
        \Delta_t = \frac{\sqrt{u_{t-1}+\epsilon}}{\sqrt{v_t+\epsilon}} g_t \qquad
        u_t = \rho u_{t-1} + (1-\rho)\Delta_t^2 \qquad p_t = p_{t-1} - \gamma\Delta_t

    Args:
        params: tensors, ``(name, tensor)`` pairs or group dicts.
        learning_rate: see :class:`~polyoptim.mindspore.Optimizer` (default 1.0).
        rho: :math:`\rho \in [0, 1]`.
        epsilon: :math:`\epsilon \ge 0`.
        loss_scale: static loss scale.
        weight_decay: float or schedule.

    State: ``accum.<name>`` (:math:`v`), ``accum_update.<name>`` (:math:`u`).

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> w = torch.nn.Parameter(torch.ones(1))
        >>> opt = nn.Adadelta([w], rho=0.0, epsilon=0.0)
        >>> _ = opt((torch.ones(1),)); w.detach()
        tensor([1.])
    """

    rule = adadelta
    _ckpt_slots = (("accum.{}", "square_avg"), ("accum_update.{}", "acc_delta"))

    _dtype_refusal = primitive_type_error(
        "ApplyAdadelta", "accum_type", ("Float16", "Float32", "Float64"), ref=True
    )

    def __init__(
        self,
        params: Any,
        learning_rate: Any = 1.0,
        rho: float = 0.9,
        epsilon: float = 1e-6,
        loss_scale: float = 1.0,
        weight_decay: Any = 0.0,
    ) -> None:
        super().__init__(learning_rate, params, weight_decay, loss_scale)
        V.check_value_type("rho", rho, [float], self.cls_name)
        V.check_value_type("epsilon", epsilon, [float], self.cls_name)
        V.check_float_range(rho, 0.0, 1.0, "both", "rho", self.cls_name)
        V.check_non_negative_float(epsilon, "epsilon", self.cls_name)
        self._configure(rho=f32(rho), eps=f32(epsilon))


def _check_l1_l2(l1: Any, l2: Any, use_locking: Any, prim: str) -> None:
    V.check_value_type("l1", l1, [float], prim)
    V.check_value_type("l2", l2, [float], prim)
    V.check_value_type("use_locking", use_locking, [bool], prim)
    V.check_non_negative_float(l1, "l1", prim)
    V.check_non_negative_float(l2, "l2", prim)


class ProximalAdagrad(Optimizer):
    r"""Proximal Adagrad (MindSpore's ``nn.ProximalAdagrad``, TensorFlow's
    ``ApplyProximalAdagrad``): the :math:`\ell_1`/:math:`\ell_2` proximal step uses the
    adaptive rate.

    .. math::
        s_t = s_{t-1} + g_t^2 \qquad \eta_t = \gamma/\sqrt{s_t} \qquad
        x = p_{t-1} - \eta_t g_t \qquad
        p_t = \frac{\operatorname{sign}(x)\max(|x| - \eta_t\ell_1, 0)}{1 + \eta_t\ell_2}

    Args:
        params: tensors, ``(name, tensor)`` pairs or group dicts.
        accum: :math:`s_0 \ge 0`.
        learning_rate: see :class:`~polyoptim.mindspore.Optimizer` (default 1e-3).
        l1, l2: :math:`\ge 0`.
        use_locking: accepted; no numeric effect.
        loss_scale: static loss scale.
        weight_decay: float or schedule.

    State: ``accum.<name>``.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> w = torch.nn.Parameter(torch.ones(1))
        >>> opt = nn.ProximalAdagrad([w], accum=0.0, learning_rate=0.5, l1=1.0)
        >>> _ = opt((torch.ones(1),)); w.detach()
        tensor([0.])
    """

    rule = proximal_adagrad
    _ckpt_slots = (("accum.{}", "sum"),)

    _dtype_refusal = primitive_type_error(
        "ApplyProximalAdagrad", "accum", ("Float16", "Float32"), ref=True
    )

    def __init__(
        self,
        params: Any,
        accum: float = 0.1,
        learning_rate: Any = 0.001,
        l1: float = 0.0,
        l2: float = 0.0,
        use_locking: bool = False,
        loss_scale: float = 1.0,
        weight_decay: Any = 0.0,
    ) -> None:
        super().__init__(learning_rate, params, weight_decay, loss_scale)
        V.check_value_type("accum", accum, [float], self.cls_name)
        _check_l1_l2(l1, l2, use_locking, self.cls_name)
        V.check_non_negative_float(accum, "accum", self.cls_name)
        self.use_locking = use_locking
        self._configure(initial_accumulator_value=f32(accum), l1=f32(l1), l2=f32(l2))

    @property
    def target(self) -> str:
        return self._target

    @target.setter
    def target(self, value: str) -> None:
        self._set_base_target(value)


class FTRL(Optimizer):
    r"""FTRL-proximal (MindSpore's ``nn.FTRL``, TensorFlow's ``ApplyFtrl``), with
    :math:`c` = ``lr_power``:

    .. math::
        a_t = a_{t-1} + g_t^2 \qquad
        z_t = z_{t-1} + g_t - \frac{a_t^{-c} - a_{t-1}^{-c}}{\gamma} p_{t-1}

    .. math::
        p_t = \frac{\operatorname{sign}(z_t)\,\ell_1 - z_t}{a_t^{-c}/\gamma + 2\ell_2}
        \text{ if } |z_t| > \ell_1, \text{ else } 0

    This is the documented rule; MindSpore 2.10.0's CPU kernel uses :math:`+\ell_1` whatever
    the sign of :math:`z_t` (see docs/mindspore.md). Without groups every parameter is decayed
    (FTRL has no name filter). The learning rate must be a fixed float.

    Args:
        params: tensors, ``(name, tensor)`` pairs or group dicts (without ``lr``).
        initial_accum: :math:`a_0 \ge 0`.
        learning_rate: :math:`\gamma > 0`, a float (default 1e-3).
        lr_power: :math:`c \le 0`.
        l1, l2: :math:`\ge 0`.
        use_locking: accepted; no numeric effect.
        loss_scale: static loss scale.
        weight_decay: float or schedule.

    State: ``moments.<name>`` (:math:`a`), ``linear.<name>`` (:math:`z`).

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> w = torch.nn.Parameter(torch.zeros(1))
        >>> opt = nn.FTRL([w], initial_accum=0.0, learning_rate=1.0)
        >>> _ = opt((torch.ones(1),)); w.detach()
        tensor([-1.])
    """

    rule = ftrl
    _sparse_ok = True
    _lazy = True
    _ckpt_slots = (("moments.{}", "accum"), ("linear.{}", "linear"))

    _dtype_refusal = (
        "Data type conversion is not supported for a 'Parameter', nor for the input tensor of "
        "an in-place operator, the argument[var]'s data type of primitive[ApplyFtrl] is {ms}, "
        "which cannot be converted to data type Float32 automatically."
    )

    def __init__(
        self,
        params: Any,
        initial_accum: float = 0.1,
        learning_rate: Any = 0.001,
        lr_power: float = -0.5,
        l1: float = 0.0,
        l2: float = 0.0,
        use_locking: bool = False,
        loss_scale: float = 1.0,
        weight_decay: Any = 0.0,
    ) -> None:
        super().__init__(learning_rate, params, weight_decay, loss_scale=loss_scale)
        if self.dynamic_lr or self.is_group_lr:
            raise ValueError(
                "For 'FTRL', dynamic learning rate and group learning rate are currently not "
                "supported in FTRL, they should all be false, but got dynamic learning rate "
                f"{self.dynamic_lr} and group learning rate {self.is_group_lr}."
            )
        name = self.cls_name
        V.check_value_type("initial_accum", initial_accum, [float], name)
        if not initial_accum >= 0:  # NaN too, as MindSpore's check writes it
            raise ValueError(
                f"For '{name}', the argument 'initial_accum' must >= 0.0, but got {initial_accum}."
            )
        V.check_value_type("learning_rate", learning_rate, [float], name)
        V.check_positive_float(learning_rate, "learning_rate", name)
        V.check_value_type("lr_power", lr_power, [float], name)
        if not lr_power <= 0:
            raise ValueError(
                f"For '{name}', the argument 'lr_power' must <= 0.0, but got {lr_power}."
            )
        V.check_value_type("l1", l1, [float], name)
        V.check_value_type("l2", l2, [float], name)
        for arg, value in (("l1", l1), ("l2", l2)):
            if not value >= 0:  # FTRL's own check, not the validator ProximalAdagrad uses
                raise ValueError(
                    f"For '{name}', the argument '{arg}' must >= 0.0, but got {value}."
                )
            # then MindSpore's SparseApplyFtrl primitive, built here, refuses inf
            V.check_non_negative_float(value, arg, "SparseApplyFtrl")
        V.check_value_type("use_locking", use_locking, [bool], name)
        if not self.is_group:
            self.decay_flags = tuple(True for _ in self.parameters)
        self.use_locking = use_locking
        self._configure(
            initial_accumulator_value=f32(initial_accum),
            lr_power=f32(lr_power),
            l1=f32(l1),
            l2=f32(l2),
        )

    @property
    def target(self) -> str:
        return self._target

    @target.setter
    def target(self, value: str) -> None:
        self._set_base_target(value)
