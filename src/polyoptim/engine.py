"""The engine: ``polyoptim.Optimizer``, the one base class every dialect builds on.

It subclasses ``torch.optim.Optimizer`` -- so param groups, named parameters, hooks,
``zero_grad``, ``state_dict``/``load_state_dict`` and the torch ecosystem (LR schedulers,
``GradScaler``, ``swa_utils``) work unchanged -- and adds the pipeline of DESIGN.md:

    gather (params, grads) per group
    → gradient transforms across all groups (loss-scale unscaling, clipping, regularizers, ...)
    → per group: lazy state, host scalars (``rule.prepare``), element-wise rule in a kernel.

Algorithms that are not element-wise (LBFGS, Adafactor, Muon, ...) override ``_step_group``.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import chain
from typing import Any

import torch

from . import graph_step
from .kernels.dispatch import run_group
from .kernels.master import LOW_PRECISION, wants_master
from .learning_rate import is_plain, lr_at
from .rules.base import Rule

GradTransform = Callable[[list[dict], list[list[torch.Tensor]], list[list[torch.Tensor]]], None]
"""A whole-gradient transform: ``t(groups, params, grads)`` edits ``grads[i][j]`` in place of
the list (it may replace list items), with ``params[i]``/``grads[i]`` the tensors of group i."""

# per-tensor reads done in C over a whole group (``map``), not in a Python loop: a step over
# thousands of small tensors is dominated by this host work
_GRAD = operator.attrgetter("grad")
_IS_SPARSE = operator.attrgetter("is_sparse")
_IS_FLOAT = torch.Tensor.is_floating_point
_is_none = functools.partial(operator.is_, None)


def use_grad_for_differentiable(step: Callable) -> Callable:
    """Run ``step`` with autograd on only when the optimizer is ``differentiable``."""

    @functools.wraps(step)
    def wrapper(self: Optimizer, *args: Any, **kwargs: Any) -> Any:
        with torch.set_grad_enabled(bool(self.defaults.get("differentiable", False))):
            return step(self, *args, **kwargs)

    return wrapper


class Optimizer(torch.optim.Optimizer):
    """Base class of every polyoptim optimizer.

    Subclasses set ``rule`` (an element-wise :class:`~polyoptim.rules.base.Rule`) or override
    :meth:`_step_group`. Gradient transforms added with :meth:`add_transform` run over all
    groups before any update, in the order they were added.

    Args:
        params: tensors, ``(name, tensor)`` pairs, or param-group dicts.
        defaults: the default value of every hyperparameter.

    Example:
        >>> import torch, polyoptim
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> opt = polyoptim.SGD([w], lr=0.1)
        >>> w.sum().backward(); opt.step()
        >>> w.detach()
        tensor([0.9000, 0.9000, 0.9000])
    """

    rule: Rule | None = None

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        super().__init__(params, defaults)
        self.transforms: list[GradTransform] = []
        #: steps taken; indexes per-step learning-rate sequences and schedules
        self.global_step = 0
        #: per stepped tensor list, what the kernels' checks found last step (never saved)
        self._step_caches: dict[tuple[int, int], dict[str, Any]] = {}
        graph_step.register(self)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("transforms", [])
        self.__dict__.setdefault("global_step", 0)
        self.__dict__.setdefault("_step_caches", {})
        graph_step.register(self)  # a copy is an optimizer of its own
        # during load_state_dict: put back the float32 state torch's loader cast down
        self._restore_master_state(self.__dict__.pop("_loading_master_state", None))

    # -- checkpoints ----------------------------------------------------------------------------
    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:  # type: ignore[override]
        """torch's ``load_state_dict``, with two differences.

        * Parameters stepped through an fp32 master copy (``master_weights=True``, a bf16/fp16
          parameter) keep their float32 state as float32: torch's loader casts every floating
          state tensor to the parameter's dtype, which would round the master copy and the
          moments to bfloat16 and make a resumed run differ from an uninterrupted one.
        * A load that fails changes nothing: torch's loader swaps in the new state and groups
          before the ``__setstate__`` fix-ups and the post-hooks run, so an error there would
          leave them half loaded; the previous ones are put back.
        """
        before = self.__dict__.get("state"), self.__dict__.get("param_groups")
        self.__dict__["_loading_master_state"] = self._master_state_to_keep(state_dict)
        try:
            super().load_state_dict(state_dict)  # type: ignore[arg-type]
        except BaseException:
            self.__dict__["state"], self.__dict__["param_groups"] = before
            raise
        finally:
            self.__dict__.pop("_loading_master_state", None)

    def _master_state_to_keep(
        self, state_dict: Mapping[str, Any]
    ) -> list[tuple[torch.Tensor, str, torch.Tensor]]:
        """``(param, key, value)`` for each float32 tensor saved for a parameter that the loaded
        groups step through a master copy (``step`` aside: torch does not cast it). Matches
        saved ids to parameters by position, as torch does; a state dict torch will refuse
        yields whatever it yields, harmlessly."""
        keep: list[tuple[torch.Tensor, str, torch.Tensor]] = []
        try:
            saved_groups = state_dict["param_groups"]
            saved_state = state_dict["state"]
            ids = chain.from_iterable(g["params"] for g in saved_groups)
            masters = chain.from_iterable(
                [bool(g.get("master_weights"))] * len(g["params"]) for g in saved_groups
            )
            params = chain.from_iterable(g["params"] for g in self.param_groups)
            for pid, master, p in zip(ids, masters, params):
                if not master or p.dtype not in LOW_PRECISION:
                    continue
                for key, value in saved_state.get(pid, {}).items():
                    if (
                        key != "step"
                        and isinstance(value, torch.Tensor)
                        and value.dtype == torch.float32
                    ):
                        keep.append((p, key, value))
        except (KeyError, TypeError, AttributeError):
            return []  # a malformed state dict: torch's loader says what is wrong with it
        return keep

    def _restore_master_state(
        self, keep: list[tuple[torch.Tensor, str, torch.Tensor]] | None
    ) -> None:
        for p, key, value in keep or ():
            state = self.state.get(p)
            if state is not None and key in state:
                # a copy, as torch's casting copy is: stepping must not write into the checkpoint
                state[key] = value.to(device=p.device, dtype=torch.float32, copy=True)

    def hyper(self, group: dict[str, Any]) -> dict[str, Any]:
        """The group's hyperparameters for this step, with its ``lr`` resolved to a number
        (see :mod:`polyoptim.learning_rate`). Dialects extend this (lr scales, ...)."""
        lr = group.get("lr")
        if lr is None or is_plain(lr):
            return group
        return {**group, "lr": lr_at(lr, self.global_step)}

    # -- the pipeline ---------------------------------------------------------------------------
    def add_transform(self, transform: GradTransform) -> Optimizer:
        """Append a whole-gradient transform (clipping, regularization, ...) to the pipeline."""
        self.transforms.append(transform)
        return self

    def _gather(self, group: dict[str, Any]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The parameters of a group that have a gradient, and those gradients."""
        params = group["params"]
        grads = list(map(_GRAD, params))
        if any(map(_is_none, grads)):
            params = [p for p, g in zip(params, grads) if g is not None]
            grads = [g for g in grads if g is not None]
        else:
            params = list(params)
        if getattr(self._check_grad, "__func__", None) is Optimizer._check_grad:
            if any(map(_IS_SPARSE, grads)):  # the default check, over the whole list at once
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
        else:
            for p in params:
                self._check_grad(p, group)
        return params, grads

    def _check_dtypes(self, params: Sequence[Sequence[torch.Tensor]]) -> None:
        """Refuse integer and bool parameters before any transform or update runs, so that a
        refused step changes nothing (``params[i]``: the stepped tensors of group i)."""
        for group, ps in zip(self.param_groups, params):
            if all(map(_IS_FLOAT, ps)):  # the usual case, checked in C over the whole list
                continue
            if any(not (p.is_floating_point() or p.is_complex()) for p in ps):
                self._refuse_dtypes(group, ps)

    def _refuse_dtypes(self, group: dict[str, Any], params: Sequence[torch.Tensor]) -> None:
        """Raise the dialect's error for a group holding integer or bool parameters (the
        dialects give their framework's; this is the engine's own)."""
        bad = next(p for p in params if not (p.is_floating_point() or p.is_complex()))
        raise RuntimeError(
            f"{type(self).__name__} steps floating point and complex parameters only, "
            f"got one of dtype {bad.dtype}"
        )

    def _check_grad(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        """Refuse gradients the algorithm cannot take (sparse ones by default)."""
        if p.grad.is_sparse:
            raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")

    @use_grad_for_differentiable
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Perform a single optimization step.

        Args:
            closure: a closure that re-evaluates the model and returns the loss.

        Under ``torch.compile`` the step is one opaque operation (:mod:`polyoptim.graph_step`).
        """
        if torch.compiler.is_compiling() and not self.defaults.get("differentiable"):
            return graph_step.in_graph_step(self, closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params, grads = [], []
        for g in self.param_groups:
            ps, gs = self._gather(g)
            params.append(ps)
            grads.append(gs)
        self._check_dtypes(params)
        for transform in self.transforms:
            transform(self.param_groups, params, grads)
        for group, ps, gs in zip(self.param_groups, params, grads):
            if ps:
                self._step_group(self.hyper(group), ps, gs)
        self.global_step += 1
        return loss

    # -- one group through its rule -------------------------------------------------------------
    def _amp(self, group: dict[str, Any]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``GradScaler``'s scale and inf flag, honoured by the fused path as torch's is."""
        if not group.get("fused"):
            return None, None
        return getattr(self, "grad_scale", None), getattr(self, "found_inf", None)

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> bool:
        """Create the state of ``p`` if it has none; True if it was created. (A step skips the
        call when every parameter it updates has a non-empty state.)"""
        if len(self.state.get(p, ())) != 0:
            return False
        self._check_new_param(p, group)
        state: dict[str, Any] = {}
        rule = self.rule
        assert rule is not None
        rule.init_state(p, group, state)
        if state:  # an algorithm with no state (plain SGD) leaves no empty entry behind
            self.state[p] = state
        return True

    def _state_of(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        """The state the kernel may write into: the stored one; a new stored one when the step
        keeps something even for a stateless rule (an fp32 master copy); else a throwaway."""
        if p in self.state or wants_master(group, p):
            return self.state[p]
        return {}

    def _check_new_param(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        """Refuse a parameter the configuration cannot update (checked once, at state creation)."""

    def _step_group(
        self, group: dict[str, Any], params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]
    ) -> None:
        rule = self.rule
        if rule is None:
            raise NotImplementedError(f"{type(self).__name__} has no rule and no _step_group")
        # the usual step: every parameter has its state already, and nothing is created
        found = list(map(self.state.get, params))
        ready = all(found)
        if ready:
            fresh = [False] * len(params)
        else:
            fresh = [self._init_state(p, group) for p in params]
        grad_scale, found_inf = self._amp(group)
        self._validate_group(group, params)
        states = found if ready else [self._state_of(p, group) for p in params]
        # host scalars, kernel choice and unscaling by grad_scale (inside the fused pass, where
        # the unscaled gradient is written back as torch's fused kernels do) live in kernels/
        run_group(
            rule,
            group,
            params,
            grads,
            states,
            fresh,
            grad_scale=grad_scale,
            found_inf=found_inf,  # inf/nan found: no change (on the device where it can be)
            cache=self._step_cache(params),
        )

    def _step_cache(self, params: Sequence[torch.Tensor]) -> dict[str, Any] | None:
        """A scratch dict for the kernels, kept from step to step for the same tensor list.

        Keyed by the first tensor and the count: the group's ``hp`` may be a new dict each
        step, and a dialect may step a group in parts. The kernels validate what they find in
        it against the tensors of the step, so a stale or shared entry costs time, not
        correctness.
        """
        if self.__dict__.get("_from_graph"):
            return None  # a compiled graph passes each state tensor as an operand of its own
        caches = self._step_caches
        key = (id(params[0]), len(params))
        cache = caches.get(key)
        if cache is None:
            if len(caches) >= 64:  # param groups came and went: start over
                caches.clear()
            cache = caches[key] = {}
        return cache

    #: what torch's capturable-device error names, and whether XLA counts for this algorithm
    capturable_tensors: str = "params and state_steps"
    capturable_on_xla: bool = True

    def _validate_group(self, group: dict[str, Any], params: Sequence[torch.Tensor]) -> None:
        """Checks made at step time (torch raises some errors only when stepping)."""
        if group.get("capturable"):
            supported = capturable_devices(self.capturable_on_xla)
            for p in params:
                if p.device.type not in supported:
                    raise AssertionError(
                        f"If capturable=True, {self.capturable_tensors} must be on supported "
                        f"devices: {supported}."
                    )


def capturable_devices(xla: bool = True) -> list[str]:
    """Device types on which ``capturable=True`` is allowed (torch's list)."""
    devices = ["cuda", "xpu", "hpu", torch._C._get_privateuse1_backend_name()]
    return [*devices, "xla"] if xla else devices


def params_of(optimizer: torch.optim.Optimizer) -> Iterable[torch.Tensor]:
    """Every parameter of an optimizer, group by group."""
    for group in optimizer.param_groups:
        yield from group["params"]
