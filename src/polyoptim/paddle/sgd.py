"""Paddle's ``SGD`` and ``Momentum`` (torch's SGD rule, with Paddle's pipeline and names)."""

from __future__ import annotations

from typing import Any

from ..engine import GradTransform
from ..rules.sgd import sgd
from ..transforms import scale
from .base import Acc, Optimizer, ParamsArg
from .clip import ClipGradBase
from .lr import LRScheduler
from .regularizer import L2Decay, WeightDecayRegularizer


class SGD(Optimizer):
    r"""Stochastic gradient descent: :math:`p \leftarrow p - \gamma\, g`.

    ``g`` is the gradient after clipping and regularization (``weight_decay``).

    Args:
        learning_rate: a float or an ``LRScheduler`` (default 0.001).
        parameters: tensors, ``(name, tensor)`` pairs, or group dicts.
        weight_decay: a float (``L2Decay``), ``L1Decay``/``L2Decay``, or None.
        grad_clip: a ``ClipGradBy*`` strategy or None.
        multi_precision: keep fp32 master weights for float16/bfloat16 parameters.
        name: prefixes the state names.

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> lin = torch.nn.Linear(3, 2)
        >>> opt = P.SGD(learning_rate=0.1, parameters=lin.parameters(), weight_decay=0.01)
        >>> lin(torch.ones(4, 3)).sum().backward(); opt.step(); opt.clear_grad()
    """

    rule = sgd

    _kernel_dtypes = "float64, float32, bfloat16"

    def __init__(
        self,
        learning_rate: float | LRScheduler = 0.001,
        parameters: ParamsArg | None = None,
        weight_decay: float | WeightDecayRegularizer | None = None,
        grad_clip: ClipGradBase | None = None,
        multi_precision: bool = False,
        name: str | None = None,
    ) -> None:
        if learning_rate is None:
            raise ValueError("learning_rate is not set")
        self._multi_precision = multi_precision
        super().__init__(learning_rate, parameters, weight_decay, grad_clip, name)

    def _rule_hyper(self, hp: dict[str, Any]) -> dict[str, Any]:
        return {"momentum": 0.0, "dampening": 0.0, "nesterov": False}


class Momentum(Optimizer):
    r"""SGD with (Nesterov) momentum, Paddle's form (the velocity starts at 0):

    .. math::
        v \leftarrow \mu v + g, \qquad
        p \leftarrow p - \gamma \cdot \begin{cases} g + \mu v & \text{use\_nesterov} \\
                                                    v & \text{otherwise} \end{cases}

    with ``g`` rescaled first: :math:`g \leftarrow r\,g` (``rescale_grad``), and then L2 decay
    added (the order of Paddle's fused kernel: clip → L1 regularizers → rescale → L2).

    Args:
        learning_rate: a float or an ``LRScheduler`` (default 0.001).
        momentum: :math:`\mu` (default 0.9).
        parameters: tensors, ``(name, tensor)`` pairs, or group dicts.
        use_nesterov: Nesterov momentum.
        weight_decay: a float (``L2Decay``), ``L1Decay``/``L2Decay``, or None.
        grad_clip: a ``ClipGradBy*`` strategy or None.
        multi_precision: keep fp32 master weights for float16/bfloat16 parameters.
        rescale_grad: :math:`r`, multiplies the gradient (Paddle's documented rule; its CPU
            kernel ignores it).
        use_multi_tensor: run the multi-tensor (foreach) kernel.
        name: prefixes the state names (``{param}_velocity_0``).

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> lin = torch.nn.Linear(3, 2)
        >>> opt = P.Momentum(learning_rate=0.1, momentum=0.9, parameters=lin.parameters())
        >>> lin(torch.ones(4, 3)).sum().backward(); opt.step(); opt.clear_grad()
    """

    rule = sgd
    _accumulators = (Acc("velocity", "momentum_buffer"),)

    _kernel_args = {"momentum": (6, "double"), "rescale_grad": (11, "double")}

    def __init__(
        self,
        learning_rate: float | LRScheduler = 0.001,
        momentum: float = 0.9,
        parameters: ParamsArg | None = None,
        use_nesterov: bool = False,
        weight_decay: float | WeightDecayRegularizer | None = None,
        grad_clip: ClipGradBase | None = None,
        multi_precision: bool = False,
        rescale_grad: float = 1.0,
        use_multi_tensor: bool = False,
        name: str | None = None,
    ) -> None:
        if learning_rate is None:
            raise ValueError("learning_rate is not set")
        if momentum is None:
            raise ValueError("momentum is not set")
        self._multi_precision = multi_precision
        self._use_multi_tensor = use_multi_tensor
        if isinstance(parameters, list) and parameters and isinstance(parameters[0], dict):
            _fuse_group_l2(parameters, weight_decay)
        defaults = {
            "momentum": momentum,
            "use_nesterov": bool(use_nesterov),
            "rescale_grad": rescale_grad,
            # False would ask for the for-loop by name; unset, the engine picks (fused on CPU)
            "foreach": True if use_multi_tensor else None,
        }
        super().__init__(
            learning_rate, parameters, weight_decay, grad_clip, name, _defaults=defaults
        )

    def _rule_hyper(self, hp: dict[str, Any]) -> dict[str, Any]:
        return {
            "momentum": float(hp["momentum"]),
            "dampening": 0.0,
            "nesterov": bool(hp["use_nesterov"]),
        }

    def _regularizer_of(self, p: Any, group: dict[str, Any]) -> Any:
        """A group's L2 decay is the one :func:`_fuse_group_l2` recorded in it (Paddle fuses it
        into the kernel); its other regularizers apply as given; nothing falls back to the
        optimizer's L2 decay."""
        if self._group_rules(group) and "regularization_method" in group:
            if group["regularization_method"] == "l2_decay":
                return L2Decay(float(group["regularization_coeff"]))
            return group.get("weight_decay")
        return super()._regularizer_of(p, group)

    def _decay_transforms(self) -> list[GradTransform]:
        """clip → regularizers other than L2 → ``rescale_grad`` → L2 (Paddle's fused kernel)."""

        def rescale(groups, params, grads):
            for i, group in enumerate(groups):
                factor = float(group.get("rescale_grad", 1.0))
                if factor != 1.0 and params[i]:
                    sub = [grads[i]]
                    scale(factor)([group], [params[i]], sub)
                    grads[i] = sub[0]

        return [
            self._regularize_transform(lambda r: not isinstance(r, L2Decay)),
            rescale,
            self._regularize_transform(lambda r: isinstance(r, L2Decay)),
        ]


def _fuse_group_l2(groups: list[dict[str, Any]], weight_decay: Any) -> None:
    """Rewrite the caller's group dicts as Paddle's ``Momentum`` does: an L2 decay (``L2Decay``
    or a number; the optimizer's when the group sets none) moves to ``regularization_method`` /
    ``regularization_coeff`` for the fused kernel and ``weight_decay`` becomes None; any other
    regularizer stays. A second ``Momentum`` built from the same dicts therefore sees no L2 decay
    in them, exactly as in Paddle (PaddleClas rebuilds its Momentum with
    ``use_multi_tensor=True`` this way, and trains without the group decay)."""
    if isinstance(weight_decay, int) and not isinstance(weight_decay, bool):
        weight_decay = float(weight_decay)
    for group in groups:
        decay = group.get("weight_decay", weight_decay)
        if isinstance(decay, int) and not isinstance(decay, bool):
            decay = float(decay)
        fused = isinstance(decay, L2Decay | float)
        group["regularization_method"] = "l2_decay" if fused else ""
        group["regularization_coeff"] = (
            float(decay) if isinstance(decay, float) else decay.coeff if fused else 0.0
        )
        group["weight_decay"] = None if fused else decay
