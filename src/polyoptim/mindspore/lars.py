"""MindSpore's ``LARS`` wrapper (transform: :mod:`polyoptim.transforms.lars`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..transforms.lars import lars
from . import _validator as V
from .optimizer import Optimizer

__all__ = ["LARS"]


class NamedParameter:
    """What ``lars_filter`` receives: the parameter's ``name`` (and the tensor's attributes)."""

    def __init__(self, name: str, tensor: torch.Tensor) -> None:
        self.name = name
        self.tensor = tensor

    def __getattr__(self, item: str) -> Any:
        return getattr(self.tensor, item)

    def __repr__(self) -> str:
        return f"NamedParameter(name={self.name!r}, shape={tuple(self.tensor.shape)})"


def _default_filter(x: NamedParameter) -> bool:
    return "LayerNorm" not in x.name and "bias" not in x.name


class LARS(Optimizer):
    r"""Layer-wise adaptive rate scaling around another MindSpore-dialect optimizer (MindSpore's
    ``nn.LARS``).

    Before the wrapped optimizer runs, each gradient (unscaled by the loss scale) of a
    parameter passing ``lars_filter`` becomes

    .. math::
        g \leftarrow \tau (g + \lambda w), \qquad
        \tau = \eta \frac{\lVert w\rVert}{\lVert g\rVert + \lambda\lVert w\rVert + \epsilon}

    (:math:`\tau = 1` where a norm is 0; :math:`\lambda` the wrapped optimizer's weight decay
    for decayed parameters, else 0). With ``use_clip``, :math:`\tau \leftarrow
    \min(\tau/\gamma, 1)` (LARC). The wrapped optimizer then runs with its own weight decay and
    loss scale turned off, as in MindSpore. MindSpore has no CPU kernel for ``LARSUpdate``.

    Args:
        optimizer: the wrapped MindSpore-dialect optimizer.
        epsilon: :math:`\epsilon`.
        coefficient: the trust coefficient :math:`\eta`.
        use_clip: clip by the learning rate (LARC).
        lars_filter: called with each parameter (an object with ``.name``); only those it
            accepts are scaled. By default names without ``LayerNorm`` and ``bias``.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> model = torch.nn.Linear(3, 2)
        >>> opt = nn.LARS(nn.Momentum(model.named_parameters(), 0.1, 0.9), coefficient=0.01)
        >>> model(torch.randn(4, 3)).sum().backward(); _ = opt.step()
        >>> opt.global_step
        1
    """

    _pipeline = ()

    def __init__(
        self,
        optimizer: Optimizer,
        epsilon: float = 1e-05,
        coefficient: float = 0.001,
        use_clip: bool = False,
        lars_filter: Callable[[Any], bool] = _default_filter,
    ) -> None:
        super().__init__(0.0, [("fake_param", torch.zeros(()))])
        V.check_value_type("optimizer", optimizer, [Optimizer], self.cls_name)
        V.check_value_type("epsilon", epsilon, [float], self.cls_name)
        V.check_value_type("coefficient", coefficient, [float], self.cls_name)
        V.check_value_type("use_clip", use_clip, [bool], self.cls_name)
        if use_clip and optimizer.is_group_lr and optimizer.dynamic_lr:
            raise ValueError(
                "For 'LARS', if the argument 'use_clip' is set to True, then the dynamic "
                "learning rate and group learning rate cannot both be true."
            )
        self.opt = optimizer
        self.epsilon = epsilon
        self.coefficient = coefficient
        self.use_clip = use_clip
        self.parameters = optimizer.parameters
        self._parameters = optimizer.parameters
        self.lars_flag = tuple(
            bool(lars_filter(NamedParameter(n, p)))
            for n, p in zip(optimizer.parameters.names, optimizer.parameters)
        )
        self.decay_flags = optimizer.decay_flags
        self.loss_scale = optimizer.loss_scale
        self.need_scale = optimizer.need_scale
        self.reciprocal_scale = optimizer.reciprocal_scale
        self.is_group = optimizer.is_group
        self.is_group_lr = optimizer.is_group_lr
        self.dynamic_lr = optimizer.dynamic_lr
        # the wrapped optimizer no longer decays or unscales: LARS did
        optimizer.decay_flags = tuple(False for _ in optimizer.decay_flags)
        optimizer.exec_weight_decay = False
        optimizer.reciprocal_scale = 1.0
        optimizer.need_scale = False
        self._index = optimizer._index

    # the wrapped optimizer's groups, state and step are LARS's (MindSpore shares them too)
    def _shared(name: str, default: Any = None):  # noqa: N805 -- a property factory
        def get(self):
            opt = self.__dict__.get("opt")
            return getattr(opt, name) if opt is not None else self.__dict__.get("_" + name, default)

        def set_(self, value):
            opt = self.__dict__.get("opt")
            if opt is not None:
                setattr(opt, name, value)
            else:
                self.__dict__["_" + name] = value

        return property(get, set_)

    global_step = _shared("global_step", 0)
    param_groups = _shared("param_groups")
    state = _shared("state")
    _group_of = _shared("_group_of")
    del _shared

    def state_dict(self) -> dict[str, Any]:
        return self.opt.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.opt.load_state_dict(state_dict)

    def get_lr(self) -> Any:
        return self.opt.get_lr()

    def get_weight_decay(self) -> Any:
        return self.opt.get_weight_decay()

    def _lars_grads(self, gradients: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        params = list(self.parameters)
        grads = [torch.as_tensor(g) for g in gradients]
        if self.need_scale:
            grads = self.opt._scale_by(self.reciprocal_scale, params, grads)
        inner = self.opt

        def decay(p: torch.Tensor, group: dict[str, Any]) -> float:
            if not self.decay_flags[inner._index[p]]:
                return 0.0
            return inner._resolve_wd(group) / self.loss_scale

        transform = lars(
            self.coefficient,
            self.epsilon,
            decay,
            use_clip=self.use_clip,
            lr=lambda p, group: inner._resolve_lr(group),
            where=lambda p, group: self.lars_flag[inner._index[p]],
        )
        return inner._apply(transform, params, grads)

    def __call__(self, gradients: Sequence[torch.Tensor]) -> Any:
        gradients = tuple(gradients)
        if len(gradients) != len(self.parameters):
            raise ValueError(
                f"For 'LARS', expected {len(self.parameters)} gradients (one per parameter), "
                f"got {len(gradients)}."
            )
        with torch.no_grad():
            grads = self._lars_grads(gradients)
        return self.opt(tuple(grads))

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grads = tuple(
            p.grad if p.grad is not None else torch.zeros_like(p) for p in self.parameters
        )
        self(grads)
        return loss
