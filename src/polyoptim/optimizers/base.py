"""What every torch-dialect optimizer shares: torch's flag semantics on top of the engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from ..engine import Optimizer
from ._common import check_fused_param, fill_defaults, steps_to_tensors

#: the flags most torch optimizers fill in when an old pickle lacks them
COMMON_FLAGS: dict[str, Any] = {
    "foreach": None,
    "maximize": False,
    "differentiable": False,
    "capturable": False,
}


class TorchOptimizer(Optimizer):
    """An engine optimizer that follows torch.optim's ``foreach``/``fused`` conventions."""

    #: flags an older pickled optimizer may lack, and the values torch fills in for them
    setstate_defaults: ClassVar[dict[str, Any]] = {}
    #: per-parameter scalar state that older checkpoints kept as plain numbers
    scalar_state: ClassVar[tuple[str, ...]] = ()

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        fill_defaults(self, **self.setstate_defaults)
        steps_to_tensors(self, *self.scalar_state)

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        super().__init__(params, defaults)
        if defaults.get("fused"):
            # GradScaler hands grad_scale/found_inf to optimizers that declare this
            self._step_supports_amp_scaling = True

    #: torch checks ``fused`` parameters once per optimizer (SGD, Adagrad) or at every new state
    fused_check_once: bool = False

    def _check_new_param(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        if not group.get("fused"):
            return
        if self.fused_check_once:
            if not getattr(self, "_fused_param_checked", False):
                check_fused_param(p)
                self._fused_param_checked = True
        else:
            check_fused_param(p)

    def _refuse_dtypes(self, group: dict[str, Any], params: Sequence[torch.Tensor]) -> None:
        """Refuse integer and bool parameters exactly as torch does (see :func:`replay_in_torch`);
        a class torch does not have gets the engine's error."""
        if not replay_in_torch(self, group, params):
            super()._refuse_dtypes(group, params)


def replay_in_torch(
    optimizer: Optimizer,
    group: dict[str, Any],
    params: Sequence[torch.Tensor],
    closure: Any = None,
    whole: bool = False,
) -> bool:
    """Step ``torch.optim``'s own class over copies of a group, so that its error is raised.

    Which error torch raises for an integer or bool parameter depends on the algorithm, the path
    (for-loop, foreach, fused), the hyperparameters (AdamW's decay runs before the moments) and
    the dtype: it is the first kernel op that fails. Replaying the group through torch's class
    gives that error exactly, while nothing of ours has changed (torch's own step would have
    updated the floating tensors before the failing one). The integer tensors are copied with
    their gradients; each floating one is replaced by a one-element stand-in unless ``whole``
    (LBFGS, whose flat gradient must be the real one).

    Args:
        optimizer: the torch-dialect optimizer.
        group: the group holding the parameters.
        params: the group's stepped parameters.
        closure: passed to torch's ``step`` (LBFGS).
        whole: copy every tensor in full.

    Returns:
        False when torch has no such class; True when torch stepped the copies without error
        (the caller then steps as usual).
    """
    reference = torch_counterpart(type(optimizer))
    if reference is None:
        return False
    copies = []
    for p in params:
        if whole or not (p.is_floating_point() or p.is_complex()):
            q = p.detach().clone()
            q.grad = None if p.grad is None else p.grad.detach().clone()
        else:
            q = p.detach().new_zeros((1,) * p.dim())
            q.grad = torch.zeros_like(q)
        copies.append(q)
    hp = {k: v for k, v in optimizer.hyper(group).items() if k not in ("params", "param_names")}
    replay = reference([{**hp, "params": copies}])
    step = type(replay).step
    # torch's step wrapper runs the global step hooks: the replay is nobody's business
    getattr(step, "__wrapped__", step)(replay, *(() if closure is None else (closure,)))
    return True


def torch_counterpart(cls: type) -> type[torch.optim.Optimizer] | None:
    """The ``torch.optim`` class a torch-dialect class stands for (through subclasses of it)."""
    for klass in cls.__mro__:
        if klass.__module__.startswith("polyoptim.optimizers"):
            ref = getattr(torch.optim, klass.__name__, None)
            if isinstance(ref, type) and issubclass(ref, torch.optim.Optimizer):
                return ref
    return None
