"""MindSpore's Adam family: ``Adam``, ``AdamWeightDecay``, ``AdamOffload``, ``LazyAdam``,
``AdaMax`` (rules: :mod:`polyoptim.rules.tf_adam`)."""

from __future__ import annotations

from typing import Any

import torch

from ..rules.tf_adam import adam_hat, adamax_hat, adamw_no_bias_correction
from . import _validator as V
from .optimizer import NUMBER_TYPES, Optimizer, f32, primitive_type_error, unsupported_type

__all__ = ["AdaMax", "Adam", "AdamOffload", "AdamWeightDecay", "LazyAdam"]


def _check_betas_eps(beta1: Any, beta2: Any, eps: Any, prim: str) -> None:
    V.check_value_type("beta1", beta1, [float], prim)
    V.check_value_type("beta2", beta2, [float], prim)
    V.check_value_type("eps", eps, [float], prim)
    V.check_float_range(beta1, 0.0, 1.0, "neither", "beta1", prim)
    V.check_float_range(beta2, 0.0, 1.0, "neither", "beta2", prim)
    V.check_positive_float(eps, "eps", prim)


_ADAM_SLOTS = (
    ("moment1.{}", "exp_avg"),
    ("moment2.{}", "exp_avg_sq"),
    ("vhat.{}", "max_exp_avg_sq"),
)


class Adam(Optimizer):
    r"""Adam as MindSpore computes it (``nn.Adam``): TensorFlow's unscaled :math:`\epsilon`.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \qquad
        \gamma_t = \gamma\,\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}

    .. math::
        p_t = p_{t-1} - \gamma_t \frac{m_t}{\sqrt{v_t} + \epsilon}

    With ``use_nesterov`` the numerator is :math:`\beta_1 m_t + (1-\beta_1) g_t`; with
    ``use_amsgrad`` the denominator uses :math:`\hat v_t = \max(\hat v_{t-1}, v_t)`. The
    powers :math:`\beta^t` are float32 state. Torch's Adam equals this one with
    :math:`\epsilon_{torch} = \epsilon/\sqrt{1-\beta_2^t}`.

    Args:
        params: tensors, ``(name, tensor)`` pairs or group dicts.
        learning_rate: see :class:`~polyoptim.mindspore.Optimizer` (default 1e-3).
        beta1, beta2: in (0, 1).
        eps: :math:`\epsilon > 0`.
        use_locking: accepted; no numeric effect.
        use_nesterov: Nesterov numerator.
        weight_decay: float or schedule (coupled, through the pipeline).
        loss_scale: static loss scale.
        use_amsgrad: AMSGrad (not with ``use_lazy``/``use_offload``).
        use_lazy: lazy (row-wise) updates for sparse gradients; dense gradients update every
            row, as in MindSpore.
        use_offload: keep the state and compute the update on the CPU (no gradient
            centralization, as in MindSpore).

    State: ``beta1_power``, ``beta2_power``, ``moment1.<name>``, ``moment2.<name>``,
    ``vhat.<name>`` (AMSGrad).

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> model = torch.nn.Linear(3, 2)
        >>> opt = nn.Adam(model.named_parameters(), learning_rate=1e-2)
        >>> model(torch.randn(4, 3)).sum().backward(); _ = opt.step()
        >>> list(opt.parameters_dict())[:5]
        ['global_step', 'learning_rate', 'weight', 'bias', 'beta1_power']
    """

    rule = adam_hat
    _sparse_ok = True
    _ckpt_slots = _ADAM_SLOTS
    _ckpt_globals = (("beta1_power", "beta1_power", ()), ("beta2_power", "beta2_power", ()))

    _dtype_refusal = primitive_type_error(
        "Adam", "grad", ("Float16", "Float32"), bare=("Float16", "Float32")
    )

    def __init__(
        self,
        params: Any,
        learning_rate: Any = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        use_locking: bool = False,
        use_nesterov: bool = False,
        weight_decay: Any = 0.0,
        loss_scale: float = 1.0,
        use_amsgrad: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, params, weight_decay, loss_scale)
        valid = {"use_lazy", "use_offload"}
        if set(kwargs) - valid:
            raise KeyError(
                "For 'Adam', invalid keys are passed as kwargs, supported keys are 'use_lazy' "
                f"and'use_offload', but got {kwargs.keys()}."
            )
        use_lazy = kwargs.get("use_lazy", False)
        use_offload = kwargs.get("use_offload", False)
        _check_betas_eps(beta1, beta2, eps, self.cls_name)
        for name, flag in (
            ("use_locking", use_locking),
            ("use_nesterov", use_nesterov),
            ("use_amsgrad", use_amsgrad),
            ("use_lazy", use_lazy),
            ("use_offload", use_offload),
        ):
            V.check_value_type(name, flag, [bool], self.cls_name)
        if use_lazy and use_offload:
            raise ValueError(
                "For 'Adam', 'use_lazy' and 'use_offload' can not both be True.But got "
                f"use_lazy={use_lazy}, use_offload={use_offload}."
            )
        if use_amsgrad and (use_lazy or use_offload):
            raise ValueError(
                "For lazy Adam and Adam with offload, there is no parameter named 'use_amsgrad'."
                f"but got 'use_amsgrad'={use_amsgrad}."
            )
        self.use_locking = use_locking
        self.use_nesterov = use_nesterov
        self.use_amsgrad = use_amsgrad
        self.use_lazy = use_lazy
        self.use_offload = use_offload
        self._lazy = use_lazy
        self._sparse_ok = not use_offload  # MindSpore's offload kernel takes dense gradients
        if use_offload:
            self._pipeline = ("decay_weight", "scale_grad")
        self._configure(
            beta1=f32(beta1),
            beta2=f32(beta2),
            eps=f32(eps),
            amsgrad=use_amsgrad,
            nesterov=use_nesterov,
        )

    @property
    def target(self) -> str:
        return self._target

    @target.setter
    def target(self, value: str) -> None:
        self._set_base_target(value)

    # use_offload: state on the host, the update computed there
    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> bool:
        if not self.use_offload or p.device.type == "cpu":
            return super()._init_state(p, group)
        if len(self.state.get(p, ())) != 0:
            return False
        state: dict[str, Any] = {}
        self.rule.init_state(p.detach().to("cpu"), group, state)
        self.state[p] = state
        return True

    def _update_group(self, group, params, grads) -> None:
        if not self.use_offload or all(p.device.type == "cpu" for p in params):
            super()._update_group(group, params, grads)
            return
        fresh = [self._init_state(p, group) for p in params]
        states = [self.state[p] for p in params]
        scalars = [self.rule.prepare(group, st, f) for st, f in zip(states, fresh)]
        host_p = [p.detach().to("cpu") for p in params]
        host_g = [g.to("cpu") for g in grads]
        from ..kernels.eager import run_single

        run_single(self.rule, group, host_p, host_g, states, scalars)
        for p, h in zip(params, host_p):
            p.copy_(h)


class AdamOffload(Adam):
    r"""Adam with its state on the CPU (MindSpore's deprecated ``nn.AdamOffload``).

    The same numbers as ``Adam(..., use_offload=True)``: the update is computed on the host,
    where the moments live, and added to the parameter; there is no gradient centralization.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \qquad
        p_t = p_{t-1} - \gamma\,\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}
              \frac{m_t}{\sqrt{v_t} + \epsilon}

    (TensorFlow's unscaled :math:`\epsilon`; with ``use_nesterov`` the numerator is
    :math:`\beta_1 m_t + (1-\beta_1) g_t`), :math:`g` being the gradient after weight decay and
    loss-scale unscaling. The powers :math:`\beta^t` are float32 state of shape ``[1]``.

    Args:
        params: tensors, ``(name, tensor)`` pairs or group dicts.
        learning_rate: a float, a list or 1-D Tensor of per-step values, or a
            ``LearningRateSchedule`` (default 1e-3).
        beta1, beta2: :math:`\beta_1, \beta_2` in (0, 1) (defaults 0.9, 0.999).
        eps: :math:`\epsilon > 0` (default 1e-8).
        use_locking: accepted; no numeric effect.
        use_nesterov: the Nesterov numerator.
        weight_decay: :math:`\lambda`, a float or a schedule, added to the gradient as
            :math:`\lambda p` (not for names containing ``beta``/``gamma`` without groups).
        loss_scale: a static loss scale the gradients are divided by (default 1.0).

    State: ``beta1_power``/``beta2_power`` (shape ``[1]``), ``moment1.<name>``,
    ``moment2.<name>``.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> model = torch.nn.Linear(3, 2)
        >>> opt = nn.AdamOffload(model.named_parameters(), learning_rate=1e-2)
        >>> model(torch.randn(4, 3)).sum().backward(); _ = opt.step()
        >>> state = opt.parameters_dict()
        >>> state["moment1.weight"].device.type, tuple(state["beta1_power"].shape)
        ('cpu', (1,))
    """

    _ckpt_globals = (("beta1_power", "beta1_power", (1,)), ("beta2_power", "beta2_power", (1,)))

    _dtype_refusal = primitive_type_error("AdamNoUpdateParam", "grad", ("Float32",))

    def __init__(
        self,
        params: Any,
        learning_rate: Any = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        use_locking: bool = False,
        use_nesterov: bool = False,
        weight_decay: Any = 0.0,
        loss_scale: float = 1.0,
    ) -> None:
        super().__init__(
            params,
            learning_rate,
            beta1,
            beta2,
            eps,
            use_locking,
            use_nesterov,
            weight_decay,
            loss_scale,
            use_offload=True,
        )


class LazyAdam(Adam):
    r"""Adam whose sparse updates touch only the gradient's rows (MindSpore's deprecated
    ``nn.LazyAdam``; the same as ``Adam(..., use_lazy=True)``).

    For a row-sparse gradient (``torch.nn.Embedding(sparse=True)``) only the rows present are
    updated, with their moments; dense gradients give :class:`Adam`'s numbers.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \qquad
        p_t = p_{t-1} - \gamma\,\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}
              \frac{m_t}{\sqrt{v_t} + \epsilon}

    (TensorFlow's unscaled :math:`\epsilon`; with ``use_nesterov`` the numerator is
    :math:`\beta_1 m_t + (1-\beta_1) g_t`), :math:`g` being the gradient after weight decay and
    loss-scale unscaling. The powers :math:`\beta^t` are float32 state of shape ``[1]``.

    Args:
        params: tensors, ``(name, tensor)`` pairs or group dicts.
        learning_rate: a float, a list or 1-D Tensor of per-step values, or a
            ``LearningRateSchedule`` (default 1e-3).
        beta1, beta2: :math:`\beta_1, \beta_2` in (0, 1) (defaults 0.9, 0.999).
        eps: :math:`\epsilon > 0` (default 1e-8).
        use_locking: accepted; no numeric effect.
        use_nesterov: the Nesterov numerator.
        weight_decay: :math:`\lambda`, a float or a schedule, added to the gradient as
            :math:`\lambda p` (not for names containing ``beta``/``gamma`` without groups).
        loss_scale: a static loss scale the gradients are divided by (default 1.0).

    State: ``beta1_power``/``beta2_power`` (shape ``[1]``), ``moment1.<name>``,
    ``moment2.<name>``.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> emb = torch.nn.Embedding(4, 2, sparse=True)
        >>> before = emb.weight.detach().clone()
        >>> opt = nn.LazyAdam(emb.named_parameters(), learning_rate=0.1)
        >>> emb(torch.tensor([1])).sum().backward(); _ = opt.step()
        >>> (emb.weight.detach() != before).any(dim=1).tolist()   # only row 1 moved
        [False, True, False, False]
    """

    _ckpt_globals = (("beta1_power", "beta1_power", (1,)), ("beta2_power", "beta2_power", (1,)))

    def __init__(
        self,
        params: Any,
        learning_rate: Any = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        use_locking: bool = False,
        use_nesterov: bool = False,
        weight_decay: Any = 0.0,
        loss_scale: float = 1.0,
    ) -> None:
        super().__init__(
            params,
            learning_rate,
            beta1,
            beta2,
            eps,
            use_locking,
            use_nesterov,
            weight_decay,
            loss_scale,
            use_lazy=True,
        )
        # MindSpore's LazyAdam checks this after the base class, under a misspelt name
        V.check_value_type("weight_dacay", weight_decay, [float], self.cls_name)


class AdamWeightDecay(Optimizer):
    r"""Adam with decoupled weight decay and **no bias correction** (MindSpore's
    ``nn.AdamWeightDecay``, from BERT).

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2
        \qquad p_t = p_{t-1} - \gamma\Big(\frac{m_t}{\sqrt{v_t}+\epsilon} + \lambda p_{t-1}\Big)

    The gradient goes to the rule as given: no loss scale, no gradient centralization. The
    decay follows the decay filter (names with ``beta``/``gamma`` skipped unless grouped).

    Args:
        params: tensors, ``(name, tensor)`` pairs or group dicts.
        learning_rate: see :class:`~polyoptim.mindspore.Optimizer` (default 1e-3).
        beta1, beta2: in (0, 1).
        eps: :math:`\epsilon > 0` (default 1e-6).
        weight_decay: :math:`\lambda`, float or schedule.

    State: ``adam_m.<name>``, ``adam_v.<name>``.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> w = torch.nn.Parameter(torch.ones(2))
        >>> opt = nn.AdamWeightDecay([w], learning_rate=0.1, weight_decay=0.5)
        >>> _ = opt((torch.ones(2),)); w.detach()   # 1 - 0.1 (0.1/(0.0316+1e-6) ... + 0.5)
        tensor([0.6338, 0.6338])
    """

    rule = adamw_no_bias_correction
    _pipeline = ()
    _rule_decay = True
    _ckpt_slots = (("adam_m.{}", "exp_avg"), ("adam_v.{}", "exp_avg_sq"))

    _dtype_refusal = unsupported_type("AdamWeightDecay")
    _bool_refusal = primitive_type_error("AdamWeightDecay", "grad", ("BFloat16", *NUMBER_TYPES[1:]))

    def __init__(
        self,
        params: Any,
        learning_rate: Any = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-6,
        weight_decay: Any = 0.0,
    ) -> None:
        super().__init__(learning_rate, params, weight_decay)
        _check_betas_eps(beta1, beta2, eps, self.cls_name)
        self._configure(beta1=f32(beta1), beta2=f32(beta2), eps=f32(eps))


class AdaMax(Optimizer):
    r"""AdaMax as MindSpore computes it (``nn.AdaMax``, ``ApplyAdaMax``): :math:`\epsilon`
    added after the infinity norm.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t \qquad
        u_t = \max(\beta_2 u_{t-1}, |g_t|) \qquad
        p_t = p_{t-1} - \frac{\gamma}{1-\beta_1^t}\frac{m_t}{u_t + \epsilon}

    Args:
        params: tensors, ``(name, tensor)`` pairs or group dicts.
        learning_rate: see :class:`~polyoptim.mindspore.Optimizer` (default 1e-3).
        beta1, beta2: in (0, 1).
        eps: :math:`\epsilon > 0`.
        weight_decay: float or schedule.
        loss_scale: static loss scale.

    State: ``beta1_power`` (shape ``[1]``), ``moment1.<name>``, ``moment2.<name>``.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> w = torch.nn.Parameter(torch.ones(2))
        >>> opt = nn.AdaMax([w], learning_rate=0.1)
        >>> _ = opt((torch.ones(2),)); w.detach()
        tensor([0.9000, 0.9000])
    """

    rule = adamax_hat
    _ckpt_slots = (("moment1.{}", "exp_avg"), ("moment2.{}", "exp_inf"))
    _ckpt_globals = (("beta1_power", "beta1_power", (1,)),)

    _dtype_refusal = primitive_type_error(
        "ApplyAdaMax", "grad_type", ("Float16", "Float32", "Float64")
    )

    def __init__(
        self,
        params: Any,
        learning_rate: Any = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-08,
        weight_decay: Any = 0.0,
        loss_scale: float = 1.0,
    ) -> None:
        super().__init__(learning_rate, params, weight_decay, loss_scale)
        _check_betas_eps(beta1, beta2, eps, self.cls_name)
        self._configure(beta1=f32(beta1), beta2=f32(beta2), eps=f32(eps))
