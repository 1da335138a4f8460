"""Paddle's Adam family: ``Adam``, ``AdamW``, ``Adamax``, ``NAdam``, ``RAdam`` and ``Lamb``.

The update math lives in :mod:`polyoptim.rules.paddle` (and torch's Adam/NAdam/RAdam updates,
which Paddle's equal, and :mod:`polyoptim.rules.lamb`, shared with MindSpore); this module
holds signatures, defaults, validation and state names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..kernels.ops import TensorOps
from ..rules import paddle as rules
from ..rules.lamb import lamb_apply, lamb_trust_ratio
from ..transforms.elementwise import torch_prologue
from .base import Acc, Optimizer, ParamsArg
from .clip import ClipGradBase
from .lr import LRScheduler
from .param_attr import param_attr
from .regularizer import WeightDecayRegularizer

Number = float | torch.Tensor


def _value(x: Any) -> float:
    """A float or one-element Tensor hyperparameter as a float."""
    return float(x.reshape(-1)[0]) if isinstance(x, torch.Tensor) else float(x)


def _scalar(x: Any) -> Any:
    """A one-element Tensor hyperparameter as a float; anything else as given (Paddle's
    messages print the value as the user wrote it)."""
    return _value(x) if isinstance(x, torch.Tensor) else x


def _check_adam_args(beta1: Any, beta2: Any, epsilon: Any) -> None:
    if not isinstance(beta1, torch.Tensor) and not 0 <= beta1 < 1:
        raise ValueError("Invalid value of beta1, expect beta1 in [0,1).")
    if not isinstance(beta2, torch.Tensor) and not 0 <= beta2 < 1:
        raise ValueError("Invalid value of beta2, expect beta2 in [0,1).")
    if not isinstance(epsilon, torch.Tensor) and not 0 <= epsilon:  # noqa: SIM300 (Paddle's order)
        raise ValueError("Invalid value of epsilon, expect epsilon >= 0.")


def _betas_hyper(hp: dict[str, Any]) -> dict[str, Any]:
    """Float betas and epsilon; the pow accumulators start at β -- or at 0.9/0.999 when β is a
    Tensor (Paddle's quirk, kept: the Tensor's value is used in the update only)."""
    b1, b2 = hp["beta1"], hp["beta2"]
    return {
        "beta1": _value(b1),
        "beta2": _value(b2),
        "epsilon": _value(hp["epsilon"]),
        "beta1_pow_init": 0.9 if isinstance(b1, torch.Tensor) else float(b1),
        "beta2_pow_init": 0.999 if isinstance(b2, torch.Tensor) else float(b2),
    }


_ADAM_ACCS = (
    Acc("moment1", "exp_avg"),
    Acc("moment2", "exp_avg_sq"),
    Acc("moment2_max", "max_exp_avg_sq"),
    Acc("beta1_pow_acc", "beta1_pow_acc"),
    Acc("beta2_pow_acc", "beta2_pow_acc"),
)


class Adam(Optimizer):
    r"""Adam, Paddle's form.

    .. math::
        \begin{aligned}
        & m \leftarrow \beta_1 m + (1-\beta_1) g, \qquad
          v \leftarrow \beta_2 v + (1-\beta_2) g^2, \qquad
          \hat v \leftarrow \max(\hat v, v) \text{ (amsgrad) else } v \\
        & p \leftarrow p - \frac{\gamma\sqrt{1-\beta_2^t}}{1-\beta_1^t} \cdot
          \frac{m}{\sqrt{\hat v} + \epsilon\sqrt{1-\beta_2^t}}
        \end{aligned}

    :math:`\beta^t` come from the accumulators ``beta1_pow_acc``/``beta2_pow_acc``, which start
    at β (0.9/0.999 when β is a Tensor) and hold :math:`\beta^{t+1}` after step t.

    Args:
        learning_rate: a float or an ``LRScheduler`` (default 0.001).
        beta1, beta2: floats in [0, 1) or one-element Tensors.
        epsilon: ε (float or one-element Tensor, default 1e-8).
        parameters: tensors, ``(name, tensor)`` pairs, or group dicts (groups may set
            ``beta1``, ``beta2``, ``epsilon``, ``lazy_mode``, ``weight_decay``,
            ``learning_rate`` (a scale) and ``grad_clip``).
        weight_decay: a float (``L2Decay``), ``L1Decay``/``L2Decay``, or None (coupled).
        grad_clip: a ``ClipGradBy*`` strategy or None.
        lazy_mode: with sparse gradients (``Embedding(sparse=True)``) update only the rows
            present; otherwise absent rows count as zero gradients.
        multi_precision: fp32 master weights (and fp32 state) for float16/bfloat16 parameters.
        use_multi_tensor: run the multi-tensor (foreach) kernel.
        amsgrad: keep the running maximum of :math:`v` (``moment2_max``).
        name: prefixes the state names.

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> lin = torch.nn.Linear(3, 2)
        >>> opt = P.Adam(learning_rate=0.01, parameters=lin.named_parameters())
        >>> lin(torch.ones(4, 3)).sum().backward(); opt.step(); opt.clear_grad()
        >>> sorted(opt.state_dict())[:2]
        ['bias_beta1_pow_acc_0', 'bias_beta2_pow_acc_0']
    """

    rule = rules.adam
    _accumulators = _ADAM_ACCS

    _kernel_args = {"lazy_mode": (14, "bool"), "amsgrad": (18, "bool")}

    def __init__(
        self,
        learning_rate: float | LRScheduler = 0.001,
        beta1: Number = 0.9,
        beta2: Number = 0.999,
        epsilon: Number = 1e-8,
        parameters: ParamsArg | None = None,
        weight_decay: float | WeightDecayRegularizer | None = None,
        grad_clip: ClipGradBase | None = None,
        lazy_mode: bool = False,
        multi_precision: bool = False,
        use_multi_tensor: bool = False,
        amsgrad: bool = False,
        name: str | None = None,
    ) -> None:
        assert learning_rate is not None
        assert beta1 is not None
        assert beta2 is not None
        assert epsilon is not None
        _check_adam_args(beta1, beta2, epsilon)
        self._multi_precision = multi_precision
        self._use_multi_tensor = use_multi_tensor
        defaults = {
            "beta1": beta1,
            "beta2": beta2,
            "epsilon": epsilon,
            "lazy_mode": lazy_mode,
            "amsgrad": amsgrad,
            # False would ask for the for-loop by name; unset, the engine picks (fused on CPU)
            "foreach": True if use_multi_tensor else None,
        }
        super().__init__(
            learning_rate, parameters, weight_decay, grad_clip, name, _defaults=defaults
        )

    def _rule_hyper(self, hp: dict[str, Any]) -> dict[str, Any]:
        return _betas_hyper(hp)

    def _check_sparse(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        # Paddle checks this on the plain-list path only
        if not self._group_rules(group) and self.regularization is not None:
            raise RuntimeError(
                "Adam don't support weight_decay with sparse parameters, please set it to None."
            )


class AdamW(Optimizer):
    r"""AdamW: Adam with decoupled weight decay, applied first with the raw learning rate.

    .. math::
        \begin{aligned}
        & p \leftarrow p\,(1 - \gamma\rho\lambda), \qquad
          m \leftarrow \beta_1 m + (1-\beta_1) g, \qquad
          v \leftarrow \beta_2 v + (1-\beta_2) g^2 \\
        & \hat v \leftarrow \max(\hat v, v) \text{ (amsgrad) else } v, \qquad
          p \leftarrow p - \frac{\gamma\rho\sqrt{1-\beta_2^t}}{1-\beta_1^t} \cdot
          \frac{m}{\sqrt{\hat v} + \epsilon\sqrt{1-\beta_2^t}}
        \end{aligned}

    where :math:`\rho` = ``lr_ratio(param)`` (default 1) and :math:`\lambda` = ``weight_decay``
    (0 for tensors whose name ``apply_decay_param_fun`` rejects). A ``ParamAttr`` regularizer
    is still added to the gradient (coupled), as in Paddle.

    Args:
        learning_rate: a float or an ``LRScheduler`` (default 0.001).
        beta1, beta2: floats in [0, 1) or one-element Tensors (defaults 0.9, 0.999).
        epsilon: :math:`\epsilon` (float or one-element Tensor, default 1e-8).
        parameters: tensors, ``(name, tensor)`` pairs, or group dicts.
        weight_decay: :math:`\lambda`, a float or a one-element Tensor (default 0.01).
        use_lowprecision_moment: accepted for compatibility (state follows the master dtype).
        lr_ratio: a function of the tensor giving :math:`\rho` (Paddle refuses it on CPU;
            polyoptim applies it everywhere).
        apply_decay_param_fun: a function of the parameter *name*; False turns decay off.
        grad_clip: a ``ClipGradBy*`` strategy or None.
        lazy_mode: row-sparse updates for sparse gradients (see :class:`Adam`).
        multi_precision: fp32 master weights for float16/bfloat16 parameters.
        amsgrad: keep the running maximum of :math:`v`.
        name: prefixes the state names.

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> lin = torch.nn.Linear(3, 2)
        >>> opt = P.AdamW(
        ...     learning_rate=0.01, parameters=lin.named_parameters(), weight_decay=0.1,
        ...     apply_decay_param_fun=lambda name: name != "bias",
        ... )
        >>> lin(torch.ones(4, 3)).sum().backward(); opt.step(); opt.clear_grad()
    """

    rule = torch_prologue(rules.adam)
    _accumulators = _ADAM_ACCS

    _kernel_args = {"lazy_mode": (17, "bool"), "amsgrad": (21, "bool")}

    def __init__(
        self,
        learning_rate: float | LRScheduler = 0.001,
        beta1: Number = 0.9,
        beta2: Number = 0.999,
        epsilon: Number = 1e-8,
        parameters: ParamsArg | None = None,
        weight_decay: float | torch.Tensor = 0.01,
        use_lowprecision_moment: bool = False,
        lr_ratio: Callable[[torch.Tensor], float] | None = None,
        apply_decay_param_fun: Callable[[str], bool] | None = None,
        grad_clip: ClipGradBase | None = None,
        lazy_mode: bool = False,
        multi_precision: bool = False,
        amsgrad: bool = False,
        name: str | None = None,
    ) -> None:
        assert learning_rate is not None
        assert beta1 is not None
        assert beta2 is not None
        assert epsilon is not None
        _check_adam_args(beta1, beta2, epsilon)
        if isinstance(weight_decay, bool) or not isinstance(
            weight_decay, (int, float, torch.Tensor)
        ):
            raise TypeError("weight_decay should be int, float or Tensor.")
        if isinstance(weight_decay, torch.Tensor) and weight_decay.numel() != 1:
            raise TypeError("weight_decay as a Tensor must have exactly one element")
        if lr_ratio is not None:
            assert callable(lr_ratio)
        self._multi_precision = multi_precision
        self._apply_decay_param_fun = apply_decay_param_fun
        self._lr_ratio = lr_ratio
        self._use_lowprecision_moment = use_lowprecision_moment
        defaults = {
            "beta1": beta1,
            "beta2": beta2,
            "epsilon": epsilon,
            "lazy_mode": lazy_mode,
            "amsgrad": amsgrad,
            "weight_decay": _value(weight_decay),
        }
        super().__init__(learning_rate, parameters, None, grad_clip, name, _defaults=defaults)

    def _read_group_weight_decay(self, weight_decay: Any) -> Any:
        return _value(weight_decay)

    def _regularizer_of(self, p: torch.Tensor, group: dict[str, Any]) -> Any:
        return param_attr(p).regularizer

    def _lr_scale(self, p: torch.Tensor, group: dict[str, Any]) -> float:
        scale = super()._lr_scale(p, group)
        return scale * float(self._lr_ratio(p)) if self._lr_ratio is not None else scale

    def _param_hyper(self, p: torch.Tensor, hp: dict[str, Any]) -> dict[str, Any]:
        fun = self._apply_decay_param_fun
        if fun is not None and not fun(self.param_name(p)):
            return {"weight_decay": 0.0}
        return {}

    def _rule_hyper(self, hp: dict[str, Any]) -> dict[str, Any]:
        return {
            **_betas_hyper(hp),
            "weight_decay": float(hp["weight_decay"]),
            "decoupled_weight_decay": True,
            "maximize": False,
        }


class Adamax(Optimizer):
    r"""Adamax, Paddle's form (ε inside the max):

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g, \qquad
        u \leftarrow \max(\beta_2 u + \epsilon, |g|), \qquad
        p \leftarrow p - \frac{\gamma}{1-\beta_1^t}\,\frac{m}{u}

    Torch instead uses :math:`\max(\beta_2 u, |g| + \epsilon)`. State: ``moment``,
    ``inf_norm``, ``beta1_pow_acc``.

    Args:
        learning_rate: a float or an ``LRScheduler`` (default 0.001).
        beta1, beta2: :math:`\beta_1, \beta_2`, floats in [0, 1) or one-element Tensors
            (defaults 0.9, 0.999).
        epsilon: :math:`\epsilon` (float or one-element Tensor, default 1e-8).
        parameters: tensors, ``(name, tensor)`` pairs, or group dicts.
        weight_decay: a float (``L2Decay``), ``L1Decay``/``L2Decay``, or None.
        grad_clip: a ``ClipGradBy*`` strategy or None.
        name: prefixes the state names.

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> opt = P.Adamax(learning_rate=0.1, parameters=[w])
        >>> w.sum().backward(); opt.step(); opt.clear_grad()
    """

    rule = rules.adamax
    _accumulators = (
        Acc("moment", "exp_avg"),
        Acc("inf_norm", "exp_inf"),
        Acc("beta1_pow_acc", "beta1_pow_acc"),
    )

    def __init__(
        self,
        learning_rate: float | LRScheduler = 0.001,
        beta1: Number = 0.9,
        beta2: Number = 0.999,
        epsilon: Number = 1e-8,
        parameters: ParamsArg | None = None,
        weight_decay: float | WeightDecayRegularizer | None = None,
        grad_clip: ClipGradBase | None = None,
        name: str | None = None,
    ) -> None:
        assert learning_rate is not None
        assert beta1 is not None
        assert beta2 is not None
        assert epsilon is not None
        _check_adam_args(beta1, beta2, epsilon)
        defaults = {"beta1": beta1, "beta2": beta2, "epsilon": epsilon}
        super().__init__(
            learning_rate, parameters, weight_decay, grad_clip, name, _defaults=defaults
        )

    def _rule_hyper(self, hp: dict[str, Any]) -> dict[str, Any]:
        return _betas_hyper(hp)


def _check_nadam_args(learning_rate: Any, beta1: Any, beta2: Any, epsilon: Any) -> None:
    if isinstance(learning_rate, (float, int)) and not learning_rate >= 0.0:
        raise ValueError(f"Invalid learning rate: {learning_rate}, expect learning_rate >= 0.")
    # the comparisons as Paddle writes them: a str or None fails the same way
    if not 0.0 <= epsilon:  # noqa: SIM300 (Paddle's order)
        raise ValueError(f"Invalid epsilon value: {epsilon}, expect epsilon >= 0.")
    if not 0.0 <= beta1 < 1.0:
        raise ValueError(f"Invalid beta1: {beta1}, expect 0. <= beta1 < 1.0.")
    if not 0.0 <= beta2 < 1.0:
        raise ValueError(f"Invalid beta2: {beta2}, expect 0. <= beta2 < 1.0.")


class NAdam(Optimizer):
    r"""NAdam (Dozat), Paddle's form (the same numbers as torch's NAdam with L2 decay):

    .. math::
        \begin{aligned}
        & \mu_t = \beta_1\big(1 - \tfrac12 0.96^{t\psi}\big), \quad
          \mu_{t+1} = \beta_1\big(1 - \tfrac12 0.96^{(t+1)\psi}\big), \quad
          \Pi_t = \textstyle\prod_{k\le t} \mu_k \\
        & \hat m = \frac{\mu_{t+1} m}{1 - \Pi_t \mu_{t+1}} + \frac{(1-\mu_t) g}{1 - \Pi_t},
          \qquad \hat v = \frac{v}{1-\beta_2^t}, \qquad
          p \leftarrow p - \gamma\,\frac{\hat m}{\sqrt{\hat v} + \epsilon}
        \end{aligned}

    State: ``momentum_decay_pow`` (:math:`0.96^t`), ``beta2_pow``, ``mu_product`` (shaped like
    the parameter in ``state_dict``, as Paddle's), ``moment1``, ``moment2``.

    Args:
        learning_rate: a float or an ``LRScheduler`` (default 0.002).
        beta1, beta2: in [0, 1).
        epsilon: ε (default 1e-8).
        momentum_decay: :math:`\psi` (default 0.004).
        parameters: tensors, ``(name, tensor)`` pairs, or group dicts.
        weight_decay: a float (``L2Decay``), ``L1Decay``/``L2Decay``, or None.
        grad_clip: a ``ClipGradBy*`` strategy or None.
        name: prefixes the state names.

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> opt = P.NAdam(parameters=[w])
        >>> w.sum().backward(); opt.step(); opt.clear_grad()
    """

    rule = rules.nadam
    _accumulators = (
        Acc("momentum_decay_pow", "momentum_decay_pow", per_element=True),
        Acc("beta2_pow", "beta2_pow", per_element=True),
        Acc("mu_product", "mu_product", per_element=True),
        Acc("moment1", "exp_avg"),
        Acc("moment2", "exp_avg_sq"),
    )

    def __init__(
        self,
        learning_rate: float | LRScheduler = 0.002,
        beta1: Number = 0.9,
        beta2: Number = 0.999,
        epsilon: float = 1.0e-8,
        momentum_decay: float = 0.004,
        parameters: ParamsArg | None = None,
        weight_decay: float | torch.Tensor | WeightDecayRegularizer | None = None,
        grad_clip: ClipGradBase | None = None,
        name: str | None = None,
    ) -> None:
        _check_nadam_args(learning_rate, _scalar(beta1), _scalar(beta2), epsilon)
        if not 0.0 <= momentum_decay:  # noqa: SIM300 (Paddle's order)
            raise ValueError(
                f"Invalid momentum_decay value: {momentum_decay}, expect momentum_decay >= 0."
            )
        defaults = {
            "beta1": beta1,
            "beta2": beta2,
            "epsilon": epsilon,
            "momentum_decay": momentum_decay,
        }
        super().__init__(
            learning_rate, parameters, weight_decay, grad_clip, name, _defaults=defaults
        )

    def _rule_hyper(self, hp: dict[str, Any]) -> dict[str, Any]:
        return {**_betas_hyper(hp), "momentum_decay": float(hp["momentum_decay"])}


class RAdam(Optimizer):
    r"""Rectified Adam, Paddle's form (the same numbers as torch's RAdam):

    .. math::
        \begin{aligned}
        & \rho_\infty = \frac{2}{1-\beta_2} - 1, \qquad
          \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1-\beta_2^t}, \qquad
          \hat m = \frac{m}{1-\beta_1^t} \\
        & p \leftarrow p - \gamma\,\hat m\, r_t \frac{\sqrt{1-\beta_2^t}}{\sqrt v + \epsilon}
          \text{ if } \rho_t > 5, \text{ else } p - \gamma\,\hat m, \qquad
          r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}}
        \end{aligned}

    State: ``beta1_pow``, ``beta2_pow``, ``rho`` (:math:`t\beta_2^t/(1-\beta_2^t)`; shaped like
    the parameter in ``state_dict``), ``moment1``, ``moment2``.

    Args:
        learning_rate: a float or an ``LRScheduler`` (default 0.001).
        beta1, beta2: in [0, 1).
        epsilon: ε (default 1e-8).
        parameters: tensors, ``(name, tensor)`` pairs, or group dicts.
        weight_decay: a float (``L2Decay``), ``L1Decay``/``L2Decay``, or None.
        grad_clip: a ``ClipGradBy*`` strategy or None.
        name: prefixes the state names.

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> opt = P.RAdam(learning_rate=0.01, parameters=[w])
        >>> w.sum().backward(); opt.step(); opt.clear_grad()
    """

    rule = rules.radam
    _accumulators = (
        Acc("beta1_pow", "beta1_pow", per_element=True),
        Acc("beta2_pow", "beta2_pow", per_element=True),
        Acc("rho", "rho", per_element=True),
        Acc("moment1", "exp_avg"),
        Acc("moment2", "exp_avg_sq"),
    )

    def __init__(
        self,
        learning_rate: float | LRScheduler = 0.001,
        beta1: Number = 0.9,
        beta2: Number = 0.999,
        epsilon: float = 1.0e-8,
        parameters: ParamsArg | None = None,
        weight_decay: float | torch.Tensor | WeightDecayRegularizer | None = None,
        grad_clip: ClipGradBase | None = None,
        name: str | None = None,
    ) -> None:
        _check_nadam_args(learning_rate, _scalar(beta1), _scalar(beta2), epsilon)
        defaults = {"beta1": beta1, "beta2": beta2, "epsilon": epsilon}
        super().__init__(
            learning_rate, parameters, weight_decay, grad_clip, name, _defaults=defaults
        )

    def _rule_hyper(self, hp: dict[str, Any]) -> dict[str, Any]:
        return _betas_hyper(hp)


class Lamb(Optimizer):
    r"""LAMB (You et al.), Paddle's form:

    .. math::
        \begin{aligned}
        & m \leftarrow \beta_1 m + (1-\beta_1) g, \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2,
          \qquad r = \frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)} + \epsilon} + \lambda p \\
        & p \leftarrow p - \gamma\,\frac{\lVert p\rVert}{\lVert r\rVert}\, r
        \end{aligned}

    The trust ratio is 1 when either norm is 0, and also when :math:`\lambda = 0` (a tensor
    excluded by ``exclude_from_weight_decay_fn``) unless ``always_adapt``. The β-powers are
    accumulators as in :class:`Adam`.

    Args:
        learning_rate: a float or an ``LRScheduler`` (default 0.001).
        lamb_weight_decay: :math:`\lambda` (default 0.01). Lamb has no ``weight_decay``.
        beta1, beta2: in [0, 1).
        epsilon: ε (default 1e-6).
        parameters: tensors, ``(name, tensor)`` pairs, or group dicts.
        grad_clip: a ``ClipGradBy*`` strategy or None.
        exclude_from_weight_decay_fn: a function of the *tensor*; True gives it
            :math:`\lambda = 0`.
        multi_precision: fp32 master weights for float16/bfloat16 parameters.
        always_adapt: keep the trust ratio when :math:`\lambda = 0`.
        name: prefixes the state names.

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> opt = P.Lamb(learning_rate=0.01, parameters=[w])
        >>> w.sum().backward(); opt.step(); opt.clear_grad()
    """

    rule = rules.lamb
    _accumulators = (
        Acc("moment1", "exp_avg"),
        Acc("moment2", "exp_avg_sq"),
        Acc("beta1_pow_acc", "beta1_pow_acc"),
        Acc("beta2_pow_acc", "beta2_pow_acc"),
    )

    _kernel_args = {
        "lamb_weight_decay": (10, "double"),
        "epsilon": (13, "double"),
        "always_adapt": (14, "bool"),
    }

    def __init__(
        self,
        learning_rate: float | LRScheduler = 0.001,
        lamb_weight_decay: float = 0.01,
        beta1: Number = 0.9,
        beta2: Number = 0.999,
        epsilon: Number = 1e-6,
        parameters: ParamsArg | None = None,
        grad_clip: ClipGradBase | None = None,
        exclude_from_weight_decay_fn: Callable[[torch.Tensor], bool] | None = None,
        multi_precision: bool = False,
        always_adapt: bool = False,
        name: str | None = None,
    ) -> None:
        assert learning_rate is not None
        assert beta1 is not None
        assert beta2 is not None
        assert epsilon is not None
        self._multi_precision = multi_precision
        self.always_adapt = always_adapt
        defaults = {
            "beta1": beta1,
            "beta2": beta2,
            "epsilon": epsilon,
            "lamb_weight_decay": lamb_weight_decay,
            "exclude_from_weight_decay_fn": exclude_from_weight_decay_fn,
        }
        super().__init__(learning_rate, parameters, None, grad_clip, name, _defaults=defaults)

    def _rule_hyper(self, hp: dict[str, Any]) -> dict[str, Any]:
        return {**_betas_hyper(hp), "lamb_weight_decay": float(hp["lamb_weight_decay"])}

    def _param_hyper(self, p: torch.Tensor, hp: dict[str, Any]) -> dict[str, Any]:
        exclude = hp.get("exclude_from_weight_decay_fn")
        if exclude is not None and exclude(p):
            return {"lamb_weight_decay": 0.0}
        return {}

    def _update(
        self, hp: dict[str, Any], params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]
    ) -> None:
        """Direction (element-wise), trust ratio (two norms), then the parameter update."""
        rule = self.rule
        adapt = float(hp["lamb_weight_decay"]) > 0 or self.always_adapt
        for p, g in zip(params, grads):
            state, fresh, target = self._slot(hp, p)
            scalars = rule.prepare(hp, state, fresh)
            m, v = state["exp_avg"], state["exp_avg_sq"]
            r, m_new, v_new = rule.update(TensorOps, target, g.to(target.dtype), m, v, **scalars)
            ratio = lamb_trust_ratio(target, r) if adapt else 1.0
            step_size = float(hp["lr"]) * ratio
            target.detach().copy_(lamb_apply(TensorOps, target, r, step_size=step_size))
            m.copy_(m_new)
            v.copy_(v_new)
            if target is not p:
                p.detach().copy_(target)

    def _update_rows(
        self, hp: dict[str, Any], p: torch.Tensor, g: torch.Tensor, rows: torch.Tensor
    ) -> None:
        self._update(hp, [p], [g])
