"""Paddle's ``Adagrad``, ``Adadelta``, ``RMSProp``, ``ASGD`` and ``Rprop``.

Adagrad, Adadelta and Rprop run torch's rules (Paddle's arithmetic is the same; only the
defaults and names differ); RMSProp runs :mod:`polyoptim.rules.tf_rmsprop` (shared with
MindSpore) and ASGD Paddle's own rule from :mod:`polyoptim.rules.paddle`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..kernels import master as mw
from ..kernels.dispatch import run_prepared
from ..rules import paddle as rules
from ..rules.adadelta import adadelta
from ..rules.adagrad import adagrad
from ..rules.rprop import rprop
from ..rules.tf_rmsprop import tf_rmsprop
from .base import Acc, Optimizer, ParamsArg
from .clip import ClipGradBase
from .lr import LRScheduler
from .regularizer import WeightDecayRegularizer


class Adagrad(Optimizer):
    r"""Adagrad: :math:`s \leftarrow s + g^2`, :math:`p \leftarrow p - \gamma\, g/(\sqrt s +
    \epsilon)`, with :math:`s_0` = ``initial_accumulator_value``.

    Args:
        learning_rate: a float or an ``LRScheduler`` (required).
        epsilon: ε (default 1e-6; torch's is 1e-10).
        parameters: tensors, ``(name, tensor)`` pairs, or group dicts.
        weight_decay: a float (``L2Decay``), ``L1Decay``/``L2Decay``, or None.
        grad_clip: a ``ClipGradBy*`` strategy or None.
        name: prefixes the state names (``{param}_moment_0``).
        initial_accumulator_value: :math:`s_0` (default 0).

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> opt = P.Adagrad(learning_rate=0.1, parameters=[w])
        >>> w.sum().backward(); opt.step(); opt.clear_grad()
    """

    rule = adagrad
    _accumulators = (Acc("moment", "sum"),)

    _kernel_args = {"epsilon": (6, "double")}

    def __init__(
        self,
        learning_rate: float | LRScheduler,
        epsilon: float = 1.0e-6,
        parameters: ParamsArg | None = None,
        weight_decay: float | WeightDecayRegularizer | None = None,
        grad_clip: ClipGradBase | None = None,
        name: str | None = None,
        initial_accumulator_value: float = 0.0,
    ) -> None:
        assert learning_rate is not None
        assert epsilon is not None
        defaults = {"epsilon": epsilon, "initial_accumulator_value": initial_accumulator_value}
        super().__init__(
            learning_rate, parameters, weight_decay, grad_clip, name, _defaults=defaults
        )

    def _rule_hyper(self, hp: dict[str, Any]) -> dict[str, Any]:
        return {
            "eps": float(hp["epsilon"]),
            "lr_decay": 0.0,
            "initial_accumulator_value": float(hp["initial_accumulator_value"]),
        }


class Adadelta(Optimizer):
    r"""Adadelta (torch's arithmetic, Paddle's defaults):

    .. math::
        v \leftarrow \rho v + (1-\rho) g^2, \quad
        \Delta = \frac{\sqrt{u + \epsilon}}{\sqrt{v + \epsilon}}\, g, \quad
        u \leftarrow \rho u + (1-\rho)\Delta^2, \quad p \leftarrow p - \gamma\Delta

    Args:
        learning_rate: a float or an ``LRScheduler`` (default 0.001; torch's is 1).
        epsilon: ε (default 1e-6).
        rho: ρ (default 0.95; torch's is 0.9).
        parameters: tensors, ``(name, tensor)`` pairs, or group dicts.
        weight_decay: a float (``L2Decay``), ``L1Decay``/``L2Decay``, or None.
        grad_clip: a ``ClipGradBy*`` strategy or None.
        name: prefixes the state names (``{param}__avg_squared_grad_0``, ...).

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> opt = P.Adadelta(learning_rate=1.0, parameters=[w])
        >>> w.sum().backward(); opt.step(); opt.clear_grad()
    """

    rule = adadelta
    _accumulators = (
        Acc("_avg_squared_grad", "square_avg"),
        Acc("_avg_squared_update", "acc_delta"),
    )

    _kernel_args = {"rho": (7, "double"), "epsilon": (8, "double")}

    def __init__(
        self,
        learning_rate: float | LRScheduler = 0.001,
        epsilon: float = 1.0e-6,
        rho: float = 0.95,
        parameters: ParamsArg | None = None,
        weight_decay: float | WeightDecayRegularizer | None = None,
        grad_clip: ClipGradBase | None = None,
        name: str | None = None,
    ) -> None:
        if learning_rate is None:
            raise ValueError("learning_rate is not set.")
        if epsilon is None:
            raise ValueError("epsilon is not set.")
        if rho is None:
            raise ValueError("rho is not set.")
        defaults = {"epsilon": epsilon, "rho": rho}
        super().__init__(
            learning_rate, parameters, weight_decay, grad_clip, name, _defaults=defaults
        )

    def _rule_hyper(self, hp: dict[str, Any]) -> dict[str, Any]:
        return {"eps": float(hp["epsilon"]), "rho": float(hp["rho"])}


class RMSProp(Optimizer):
    r"""RMSProp, Paddle's form: ε inside the square root, the learning rate inside the
    momentum buffer.

    .. math::
        \begin{aligned}
        & v \leftarrow \rho v + (1-\rho) g^2, \qquad
          \bar g \leftarrow \rho \bar g + (1-\rho) g \text{ (centered)} \\
        & b \leftarrow \mu b + \frac{\gamma\, g}{\sqrt{v - \bar g^2 + \epsilon}}, \qquad
          p \leftarrow p - b
        \end{aligned}

    (without ``centered`` the :math:`\bar g^2` term is dropped). Torch divides by
    :math:`\sqrt v + \epsilon` and applies :math:`\gamma` outside the buffer.

    Args:
        learning_rate: a float or an ``LRScheduler`` (required).
        rho: ρ (default 0.95).
        epsilon: ε (default 1e-6).
        momentum: μ (default 0).
        centered: subtract the squared mean gradient.
        parameters: tensors, ``(name, tensor)`` pairs, or group dicts.
        weight_decay: a float (``L2Decay``), ``L1Decay``/``L2Decay``, or None.
        grad_clip: a ``ClipGradBy*`` strategy or None.
        name: prefixes the state names (``momentum``, ``mean_square``, ``mean_grad``).

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> opt = P.RMSProp(learning_rate=0.01, parameters=[w], momentum=0.9)
        >>> w.sum().backward(); opt.step(); opt.clear_grad()
    """

    rule = tf_rmsprop
    _accumulators = (
        Acc("momentum", "momentum_buffer"),
        Acc("mean_square", "square_avg"),
        Acc("mean_grad", "grad_avg"),
    )

    _kernel_args = {"centered": (11, "bool")}

    def __init__(
        self,
        learning_rate: float | LRScheduler,
        rho: float = 0.95,
        epsilon: float = 1.0e-6,
        momentum: float = 0.0,
        centered: bool = False,
        parameters: ParamsArg | None = None,
        weight_decay: float | WeightDecayRegularizer | None = None,
        grad_clip: ClipGradBase | None = None,
        name: str | None = None,
    ) -> None:
        if learning_rate is None:
            raise ValueError("learning_rate is not set.")
        if rho is None:
            raise ValueError("rho is not set.")
        if epsilon is None:
            raise ValueError("epsilon is not set.")
        if momentum is None:
            raise ValueError("momentum is not set.")
        if not 0.0 <= epsilon:  # noqa: SIM300 (Paddle's order)
            raise ValueError("Invalid value of epsilon, expect epsilon >= 0.")
        if not 0.0 <= momentum:  # noqa: SIM300 (Paddle's order)
            raise ValueError("Invalid value of momentum, expect momentum >= 0.")
        if not 0.0 <= rho:  # noqa: SIM300 (Paddle's order)
            raise ValueError("Invalid value of rho, expect rho >= 0.")
        defaults = {"rho": rho, "epsilon": epsilon, "momentum": momentum, "centered": centered}
        super().__init__(
            learning_rate, parameters, weight_decay, grad_clip, name, _defaults=defaults
        )

    def _rule_hyper(self, hp: dict[str, Any]) -> dict[str, Any]:
        return {
            "rho": float(hp["rho"]),
            "eps": float(hp["epsilon"]),
            "momentum": float(hp["momentum"]),
            "centered": bool(hp["centered"]),
            "keep_grad_avg": True,  # Paddle creates ``mean_grad`` even when not centered
            "lerp_averages": False,  # ρs + (1-ρ)g², as Paddle's kernel rounds it
        }


class ASGD(Optimizer):
    r"""Paddle's ASGD: stochastic average gradient over the last ``batch_num`` gradients
    (SAG-style; *not* torch's averaged SGD).

    .. math::
        m \leftarrow m + 1, \quad i = (m - 1) \bmod n, \quad
        d \leftarrow d - y_i + g, \quad y_i \leftarrow g, \quad
        p \leftarrow p - \frac{\gamma}{\min(m, n)}\, d

    State: ``d`` (like the parameter), ``y`` (``[batch_num, *shape]``), ``m`` (int64 [1]).

    Args:
        learning_rate: a float or an ``LRScheduler`` (default 0.001).
        batch_num: :math:`n`, the number of gradients averaged (> 0).
        parameters: tensors, ``(name, tensor)`` pairs, or group dicts.
        weight_decay: a float (``L2Decay``), ``L1Decay``/``L2Decay``, or None.
        grad_clip: a ``ClipGradBy*`` strategy or None.
        multi_precision: fp32 master weights for float16/bfloat16 parameters.
        name: prefixes the state names.

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> opt = P.ASGD(learning_rate=0.1, batch_num=4, parameters=[w])
        >>> w.sum().backward(); opt.step(); opt.clear_grad()
    """

    rule = rules.asgd
    _accumulators = (Acc("d", "d"), Acc("y", "y"), Acc("m", "m"))

    def _check_kernel_args(self) -> None:
        super()._check_kernel_args()
        for group in self.param_groups:
            n = group["batch_num"]
            if not isinstance(n, int):  # Paddle builds its gradient table of shape [n, ...]
                raise TypeError(
                    "(InvalidType) argument (position 2) must be list of int, but got "
                    f"{type(n).__name__} at pos 0"
                )

    def __init__(
        self,
        learning_rate: float | LRScheduler = 0.001,
        batch_num: int = 1,
        parameters: ParamsArg | None = None,
        weight_decay: float | WeightDecayRegularizer | None = None,
        grad_clip: ClipGradBase | None = None,
        multi_precision: bool = False,
        name: str | None = None,
    ) -> None:
        if learning_rate is None:
            raise ValueError("learning_rate should not be none")
        if batch_num is None:
            raise ValueError("batch_num should not be none")
        if not 0 < batch_num:  # noqa: SIM300 (Paddle's order)
            raise ValueError("batch_num should be greater than 0")
        self._multi_precision = multi_precision
        super().__init__(
            learning_rate,
            parameters,
            weight_decay,
            grad_clip,
            name,
            _defaults={"batch_num": batch_num},
        )

    def _update(
        self, hp: dict[str, Any], params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]
    ) -> None:
        """The rule on the row ``y[i]`` of each gradient table that this step replaces, through
        the kernel the group's flags select (the fused one on the CPU)."""
        rule = self.rule
        arrays, scalars = [], []
        for p in params:
            state, fresh, _ = self._slot(hp, p)
            sc = rule.prepare(hp, state, fresh)
            view = {"d": state["d"], "y": state["y"][sc.pop("row")]}
            if mw.MASTER_KEY in state:
                view[mw.MASTER_KEY] = state[mw.MASTER_KEY]
            arrays.append(view)
            scalars.append(sc)
        run_prepared(rule, hp, params, grads, arrays, scalars)

    def _update_rows(
        self, hp: dict[str, Any], p: torch.Tensor, g: torch.Tensor, rows: torch.Tensor
    ) -> None:
        self._update(hp, [p], [g])


class Rprop(Optimizer):
    r"""Resilient backpropagation (torch's algorithm, Paddle's defaults):

    .. math::
        s = \operatorname{sign}(g\,g_{prev}), \quad
        \eta \leftarrow \operatorname{clip}(\eta \cdot \{\eta_+, \eta_-, 1\}_s, \eta_{min},
        \eta_{max}), \quad g \leftarrow 0 \text{ where } s < 0, \quad
        p \leftarrow p - \operatorname{sign}(g)\,\eta, \quad g_{prev} \leftarrow g

    State: ``prevs`` and ``learning_rates`` (starting at ``learning_rate``).

    Args:
        learning_rate: the initial step size (default 0.001).
        learning_rate_range: :math:`(\eta_{min}, \eta_{max})` (default (1e-5, 50)).
        parameters: tensors, ``(name, tensor)`` pairs, or group dicts.
        etas: :math:`(\eta_-, \eta_+)` (default (0.5, 1.2)).
        grad_clip: a ``ClipGradBy*`` strategy or None.
        multi_precision: fp32 master weights for float16/bfloat16 parameters.
        name: prefixes the state names.

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> opt = P.Rprop(learning_rate=0.01, parameters=[w])
        >>> w.sum().backward(); opt.step(); opt.clear_grad()
    """

    rule = rprop
    _accumulators = (Acc("prevs", "prev"), Acc("learning_rates", "step_size"))

    _kernel_dtypes = "float64, float32, bfloat16"

    def __init__(
        self,
        learning_rate: float | LRScheduler = 0.001,
        learning_rate_range: tuple[float, float] = (1e-5, 50),
        parameters: ParamsArg | None = None,
        etas: tuple[float, float] = (0.5, 1.2),
        grad_clip: ClipGradBase | None = None,
        multi_precision: bool = False,
        name: str | None = None,
    ) -> None:
        if learning_rate is None:
            raise ValueError("learning_rate is not set")
        lr0 = learning_rate() if isinstance(learning_rate, LRScheduler) else learning_rate
        if not 0.0 < learning_rate_range[0] <= lr0 <= learning_rate_range[1]:
            raise ValueError(
                "'0.0 < learning_rate_range[0] <= learning_rate <= learning_rate_range[1]' "
                "must be true"
            )
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError("'0.0 < etas[0] < 1.0 < etas[1]' must be true")
        self._multi_precision = multi_precision
        defaults = {"learning_rate_range": tuple(learning_rate_range), "etas": tuple(etas)}
        super().__init__(learning_rate, parameters, None, grad_clip, name, _defaults=defaults)

    def _rule_hyper(self, hp: dict[str, Any]) -> dict[str, Any]:
        return {"etas": tuple(hp["etas"]), "step_sizes": tuple(hp["learning_rate_range"])}
