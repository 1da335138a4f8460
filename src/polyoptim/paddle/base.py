"""``polyoptim.paddle.Optimizer``: Paddle's optimizer semantics on the polyoptim engine.

What this layer adds to :class:`polyoptim.Optimizer` (it holds no update math):

* Paddle's arguments: ``learning_rate`` (a float or a :class:`~polyoptim.paddle.lr.LRScheduler`
  read at every step), ``parameters`` (tensors, ``named_parameters()`` pairs or group dicts),
  ``weight_decay`` (a float/int/one-element Tensor meaning ``L2Decay``, or ``L1Decay``/
  ``L2Decay``), ``grad_clip`` and ``name``;
* the pipeline of one step: gradient clipping (per group) → regularization (``param``'s own
  regularizer, else the optimizer's) → the rule, run with ``lr × scale`` per tensor (the scale
  comes from the group's ``learning_rate`` or from :class:`~polyoptim.paddle.ParamAttr`);
* Paddle's group semantics: a group's ``learning_rate`` is a *scale* of the base rate, and every
  other constructor hyperparameter (``weight_decay``, ``beta1``, ...) overrides the default;
* fp32 master weights (``multi_precision``), lazy row-sparse updates (``lazy_mode``) for
  gradients from ``torch.nn.Embedding(sparse=True)``, the multi-tensor kernel
  (``use_multi_tensor``);
* Paddle's methods: ``step``, ``minimize``, ``clear_grad``, ``get_lr``/``set_lr``/
  ``set_lr_scheduler``, ``append_regularization_ops``, and ``state_dict``/``set_state_dict``
  with Paddle's key names (``{param}_moment1_0``, ``{param}_beta1_pow_acc_0``, ``LR_Scheduler``,
  ``master_weights``), so checkpoints written by Paddle load here and the other way round.

Parameter names. Paddle keys state by the parameter's name. A tensor given inside a
``(name, tensor)`` pair (``model.named_parameters()``) is called by that name; otherwise by the
``name`` of its :class:`~polyoptim.paddle.ParamAttr`; otherwise ``param_{i}``, where ``i`` is its
position among all the optimizer's parameters (group by group, from 0).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..engine import GradTransform
from ..engine import Optimizer as EngineOptimizer
from ..kernels import master as mw
from ..kernels.ops import TensorOps
from .adopt import paddle_layout
from .clip import ClipGradBase
from .lr import LambdaDecay, LRScheduler
from .param_attr import param_attr
from .regularizer import WeightDecayRegularizer, as_regularizer

ParamsArg = Iterable[Any]
_LOW_PRECISION = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class Acc:
    """How one piece of state maps to a Paddle accumulator.

    Attributes:
        name: Paddle's accumulator name (``moment1``, ``beta1_pow_acc``, ...).
        key: the key in polyoptim's per-tensor state.
        per_element: the state is one scalar per tensor but Paddle stores it with the
            parameter's shape (NAdam's and RAdam's pows).
    """

    name: str
    key: str
    per_element: bool = False


def _to_tensor(value: Any) -> torch.Tensor:
    """A checkpoint value (torch tensor, numpy array or number) as a CPU tensor."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (np.ndarray, np.generic)):
        return torch.from_numpy(np.array(value, copy=True))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.tensor(value)
    raise TypeError(f"expected a Tensor or numpy array, got {type(value).__name__}")


_NUMBERED = re.compile(r"(.*_)(\d+)", re.DOTALL)


def _numbered_keys(sd: dict[str, Any]) -> dict[str, list[str]]:
    """``{'name_': ['name_0', 'name_12', ...]}`` for the keys of ``sd`` ending in ``_<number>``:
    one pass over the keys, however many parameters look them up."""
    out: dict[str, list[str]] = {}
    for key in sd:
        match = _NUMBERED.fullmatch(key) if isinstance(key, str) else None
        if match:
            out.setdefault(match[1], []).append(key)
    return out


def _integral(t: torch.Tensor) -> bool:
    return not (t.is_floating_point() or t.is_complex())


def _paddle_size(t: torch.Tensor) -> str:
    return f"paddle.Size({list(t.shape)})"


def _paddle_dtype(t: torch.Tensor) -> str:
    return str(t.dtype).replace("torch.", "paddle.")


class Optimizer(EngineOptimizer):
    r"""Base class of the Paddle optimizers (``paddle.optimizer.Optimizer``).

    Subclasses set ``rule`` (or override ``_step_group``), ``_accumulators`` (Paddle's state
    names) and ``_rule_hyper`` (Paddle's hyperparameter names to the rule's). A step is

    .. math::
        g \leftarrow \mathrm{clip}(g), \qquad g \leftarrow g + R(p), \qquad
        p \leftarrow \mathrm{rule}(p, g;\ \gamma \cdot s_p)

    with :math:`R` the tensor's regularizer (group or ``ParamAttr``) or the optimizer's
    ``weight_decay``, and :math:`s_p` its learning-rate scale.

    Args:
        learning_rate: a float, or an :class:`~polyoptim.paddle.lr.LRScheduler` read at every
            step. (Like Paddle, an ``int`` is refused.)
        parameters: tensors, ``(name, tensor)`` pairs, or group dicts
            ``{'params': [...], 'learning_rate': scale, 'weight_decay': ..., ...}``.
        weight_decay: a float (``L2Decay``), ``L1Decay``/``L2Decay``, or None.
        grad_clip: ``ClipGradByValue``/``ClipGradByNorm``/``ClipGradByGlobalNorm`` or None.
        name: prefixes the accumulator names in ``state_dict``.

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> lin = torch.nn.Linear(3, 2)
        >>> opt = P.SGD(
        ...     learning_rate=0.1,
        ...     parameters=[{"params": [lin.weight]}, {"params": [lin.bias], "learning_rate": 0.5}],
        ...     weight_decay=0.01,
        ... )
        >>> lin(torch.ones(4, 3)).sum().backward(); opt.step(); opt.clear_grad()
    """

    #: Paddle's accumulators of this optimizer, in Paddle's creation order.
    _accumulators: ClassVar[tuple[Acc, ...]] = ()
    #: whether this optimizer supports ``multi_precision``
    _multi_precision: bool = False
    #: Paddle's attribute (present on every optimizer; PaddleClas tests ``hasattr`` on it):
    #: the ``use_multi_tensor`` argument of Adam and Momentum, None elsewhere
    _use_multi_tensor: bool | None = None

    def __init__(
        self,
        learning_rate: float | LRScheduler,
        parameters: ParamsArg | None = None,
        weight_decay: float | WeightDecayRegularizer | torch.Tensor | None = None,
        grad_clip: ClipGradBase | None = None,
        name: str | None = None,
        *,
        _defaults: dict[str, Any] | None = None,
    ) -> None:
        if parameters is None:
            raise AttributeError(
                "parameters argument given to the Optimizer should not be None in dygraph mode."
            )
        if isinstance(parameters, torch.Tensor):
            raise TypeError(
                "`parameters` argument given to the optimizer should be an iterable of paddle "
                f"Tensors, but got argument type is `{type(parameters)}`."
            )
        if isinstance(parameters, dict):
            raise TypeError(
                "`parameters` argument should not get dict type, if parameter groups is needed, "
                "please set `parameters` as list of dict"
            )
        if not isinstance(learning_rate, (float, LRScheduler)):
            raise TypeError(
                f"learning rate should be float or LRScheduler, got {type(learning_rate)} here"
            )
        if grad_clip is not None and not isinstance(grad_clip, ClipGradBase):
            raise TypeError("'grad_clip' should be an instance of GradientClipBase's derived class")
        params = list(parameters)
        self._grouped = bool(params) and isinstance(params[0], dict)
        if self._grouped:
            for group in params:
                assert "params" in group, (
                    "params should be set in parameters if parameter groups are optimized in "
                    "different options"
                )
            params = [dict(group) for group in params]
        self.regularization = self._read_weight_decay(weight_decay)
        self._grad_clip = grad_clip
        self._learning_rate: float | LRScheduler = learning_rate
        self._name = name
        self._rows: dict[torch.Tensor, torch.Tensor] = {}
        self._only: set[int] | None = None
        defaults = {
            "learning_rate": 1.0,
            "weight_decay": self.regularization,
            "grad_clip": grad_clip,
            **(_defaults or {}),
        }
        super().__init__(params, defaults)
        self._name_parameters()
        self.add_transform(self._clip_transform())
        for transform in self._decay_transforms():
            self.add_transform(transform)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("transforms", None)  # closures over self: rebuilt on unpickling
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.transforms = [self._clip_transform(), *self._decay_transforms()]

    # -- construction helpers -------------------------------------------------------------------
    def _read_weight_decay(self, weight_decay: Any) -> WeightDecayRegularizer | None:
        """The optimizer-level regularizer (``L2Decay`` for numbers)."""
        return as_regularizer(weight_decay)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group with Paddle's group rules (``_add_param_group``), also to an optimizer
        built from a plain list of tensors: the group's ``learning_rate`` (default 1) is a scale
        of the optimizer's learning rate and replaces its tensors' ``ParamAttr`` scales; its
        ``weight_decay`` (default: the optimizer's) replaces their ``ParamAttr`` regularizers;
        its ``grad_clip`` (default: the optimizer's) clips its gradients on their own; its other
        keys override the defaults. The plain-list group keeps the plain-list rules."""
        params = param_group["params"]
        if isinstance(params, set):
            raise TypeError(
                "optimizer parameters should be in ordered collections,but received set, "
                "please use list instead."
            )
        if "weight_decay" in param_group:
            param_group = dict(param_group)
            param_group["weight_decay"] = self._read_group_weight_decay(param_group["weight_decay"])
        super().add_param_group(param_group)
        if hasattr(self, "_param_names"):
            self._name_parameters()

    def _read_group_weight_decay(self, weight_decay: Any) -> Any:
        return as_regularizer(weight_decay)

    def _group_rules(self, group: dict[str, Any]) -> bool:
        """Whether ``group`` follows Paddle's group rules (a group dict, given to the
        constructor or added later) rather than the plain-list rules (the one group of an
        optimizer built from a plain list of tensors)."""
        return self._grouped or group is not self.param_groups[0]

    def _name_parameters(self) -> None:
        names: dict[torch.Tensor, str] = {}
        taken: set[str] = set()
        i = 0
        for group in self.param_groups:
            given = group.get("param_names")
            for j, p in enumerate(group["params"]):
                name = given[j] if given is not None else param_attr(p).name
                if name is None:
                    name = f"param_{i}"
                if name in taken:
                    raise ValueError(f"two parameters are both named {name!r}")
                taken.add(name)
                names[p] = name
                i += 1
        self._param_names = names

    def param_name(self, p: torch.Tensor) -> str:
        """The name that keys ``p``'s state (see the module docstring)."""
        return self._param_names[p]

    def _clip_transform(self) -> GradTransform:
        """Each group's ``grad_clip`` (the optimizer's by default) on that group's gradients."""

        def transform(groups, params, grads):
            for i, group in enumerate(groups):
                clip = group.get("grad_clip") if self._group_rules(group) else self._grad_clip
                if clip is not None and params[i]:
                    sub_params, sub_grads = [params[i]], [grads[i]]
                    clip.transform()([group], sub_params, sub_grads)
                    grads[i] = sub_grads[0]

        return transform

    def _decay_transforms(self) -> list[GradTransform]:
        """The regularization stage (subclasses reorder it, e.g. Momentum's ``rescale_grad``)."""
        return [self._regularize_transform()]

    def _regularize_transform(
        self, which: Callable[[WeightDecayRegularizer], bool] | None = None
    ) -> GradTransform:
        """Add each tensor's regularizer term (those ``which`` accepts) to its gradient."""

        def transform(groups, params, grads):
            plan: dict[int, tuple[WeightDecayRegularizer, set[int]]] = {}
            for group, ps in zip(groups, params):
                for p in ps:
                    reg = self._regularizer_of(p, group)
                    if reg is None or (which is not None and not which(reg)):
                        continue
                    plan.setdefault(id(reg), (reg, set()))[1].add(id(p))
            for reg, ids in plan.values():
                reg.transform(lambda p, g, ids=ids: id(p) in ids)(groups, params, grads)

        return transform

    def _regularizer_of(self, p: torch.Tensor, group: dict[str, Any]) -> Any:
        """Paddle's precedence: in a group dict the group's ``weight_decay`` (default: the
        optimizer's); in a plain list, the tensor's ``ParamAttr`` regularizer, else the
        optimizer's."""
        if self._group_rules(group):
            reg = group.get("weight_decay")
        else:
            reg = param_attr(p).regularizer
        return reg if reg is not None else self.regularization

    # -- learning rate --------------------------------------------------------------------------
    def get_lr(self) -> float:
        """The current learning rate: the float, or ``scheduler()``."""
        if isinstance(self._learning_rate, LRScheduler):
            return self._learning_rate()
        return self._learning_rate

    def set_lr(self, value: float) -> None:
        """Set a float learning rate (refused while a scheduler is attached).

        Raises:
            TypeError: ``value`` is not a number.
            RuntimeError: the learning rate is an ``LRScheduler``.
        """
        if not isinstance(value, (int, float)):
            raise TypeError(
                "The type of 'value' in optimizer.set_lr must be float, but received "
                f"{type(value)}."
            )
        if isinstance(self._learning_rate, LRScheduler):
            raise RuntimeError(
                "optimizer's learning rate can't be LRScheduler when invoke this API, because "
                "this will lead to conflict."
            )
        self._learning_rate = float(value)

    def set_lr_scheduler(self, scheduler: LRScheduler) -> None:
        """Attach (or replace) the scheduler the learning rate is read from."""
        if not isinstance(scheduler, LRScheduler):
            raise TypeError(
                "The type of 'scheduler' in optimizer.set_lr_scheduler must be LRScheduler, but "
                f"received {type(scheduler)}."
            )
        self._learning_rate = scheduler

    def _lr_dtype(self) -> torch.dtype:
        """Paddle keeps the global learning rate as a 0-d tensor of the first parameter's dtype
        (float32 for half precision)."""
        first = self.param_groups[0]["params"][0]
        return torch.float64 if first.dtype == torch.float64 else torch.float32

    def _round(self, value: float) -> float:
        return float(np.float64(value) if self._lr_dtype() == torch.float64 else np.float32(value))

    def _lr_scale(self, p: torch.Tensor, group: dict[str, Any]) -> float:
        """The tensor's learning-rate scale: its group dict's, else (plain list) its
        ParamAttr's."""
        if self._group_rules(group):
            return float(group.get("learning_rate", 1.0))
        return param_attr(p).learning_rate

    # -- the step -------------------------------------------------------------------------------
    def hyper(self, group: dict[str, Any]) -> dict[str, Any]:
        """The group's hyperparameters for this step: this step's (rounded) learning rate plus
        the rule's names for the group's Paddle hyperparameters."""
        hp = self._raw(group)
        hp["lr"] = self._round(self.get_lr())
        hp["master_weights"] = bool(self._multi_precision)
        hp.update(self._rounded(self._rule_hyper(hp)))
        return hp

    @staticmethod
    def _raw(group: dict[str, Any]) -> dict[str, Any]:
        """The group's Paddle hyperparameters (no tensors)."""
        return {k: v for k, v in group.items() if k not in ("params", "param_names")}

    def _rounded(self, values: dict[str, Any]) -> dict[str, Any]:
        """Float hyperparameters rounded as Paddle's kernels see them (float32 attributes, or
        float64 for float64 parameters): ``1 - beta2`` then matches Paddle's to the bit."""
        return {k: self._round(v) if type(v) is float else v for k, v in values.items()}

    def _rule_hyper(self, hp: dict[str, Any]) -> dict[str, Any]:
        """Map Paddle's hyperparameter names to the rule's (subclasses)."""
        return {}

    def _param_hyper(self, p: torch.Tensor, hp: dict[str, Any]) -> dict[str, Any]:
        """Per-tensor overrides of the hyperparameters (AdamW's decay switch, ...)."""
        return {}

    def _gather(self, group: dict[str, Any]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        params, grads = [], []
        for p in group["params"]:
            # an integer tensor cannot require grad in torch; with a gradient it is stepped, and
            # refused as Paddle's kernel refuses it
            if p.grad is None or not (p.requires_grad or _integral(p)):
                continue
            if self._only is not None and id(p) not in self._only:
                continue
            g = p.grad
            if g.is_sparse:
                self._check_sparse(p, group)
                g = g.coalesce()
                self._rows[p] = g.indices()[0]
                g = g.to_dense()
            params.append(p)
            grads.append(g)
        return params, grads

    #: arguments Paddle's kernel call checks by type at each step (the constructor takes
    #: anything): ``{name: (position in the kernel call, "double" or "bool")}``; the value is
    #: the group's, or the optimizer's attribute of that name
    _kernel_args: ClassVar[dict[str, tuple[int, str]]] = {}

    def _kernel_name(self) -> str:
        return next(
            k.__name__.lower() for k in type(self).__mro__ if k.__module__.startswith(__package__)
        )

    def _check_kernel_args(self) -> None:
        """Refuse, before anything changes, what Paddle's kernel call refuses at the step."""
        for group in self.param_groups:
            # Paddle calls the regularizer it was given (the optimizer's or the group's; a
            # number here is a decoupled coefficient, AdamW's)
            for reg in (self.regularization, group.get("weight_decay")):
                if not isinstance(
                    reg, (WeightDecayRegularizer, int, float, torch.Tensor, type(None))
                ):
                    raise TypeError(f"'{type(reg).__name__}' object is not callable")
            if self._group_rules(group) and group.get("learning_rate", 1.0) is None:
                raise TypeError(  # the scale times the rate, in Paddle's Tensor.__mul__
                    "(InvalidType) __mul__(): argument (position 1) must be int, float, bool or "
                    "Tensor, but got NoneType"
                )
            for name, (position, kind) in self._kernel_args.items():
                value = group[name] if name in group else getattr(self, name, None)
                if kind == "bool":
                    ok = value is None or isinstance(value, bool)  # an optional bool
                else:
                    ok = isinstance(value, (int, float, np.number)) or (
                        isinstance(value, torch.Tensor) and value.numel() == 1
                    )
                if not ok:
                    raise TypeError(
                        f"(InvalidType) {self._kernel_name()}_(): argument (position {position}) "
                        f"must be {kind}, but got {type(value).__name__}"
                    )

    #: the dtypes Paddle's CPU kernel of this optimizer lists when it meets another one
    _kernel_dtypes: ClassVar[str] = "float64, float32"

    def _refuse_dtypes(self, group: dict[str, Any], params: Sequence[torch.Tensor]) -> None:
        """Paddle's error for an integer or bool parameter: its kernel has no such dtype."""
        p = next(p for p in params if _integral(p))
        dtype = str(p.dtype).removeprefix("torch.")
        place = "CPU" if p.device.type == "cpu" else "GPU"
        kernel = self._kernel_name()
        raise RuntimeError(
            f"(NotFound) The kernel with key ({place}, Undefined(AnyLayout), {dtype}) of kernel "
            f"`{kernel}` is not registered. Selected wrong DataType `{dtype}`. Paddle support "
            f"following DataTypes: {self._kernel_dtypes}."
        )

    def _check_sparse(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        """Refuse sparse gradients where Paddle does (Adam with weight decay)."""

    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Update the parameters once from their gradients.

        Args:
            closure: optional; re-evaluates the loss (Paddle's ``step()`` takes none).
        """
        self._check_kernel_args()
        self._rows = {}
        try:
            return super().step(closure)
        finally:
            self._rows = {}

    def _step_group(
        self, hp: dict[str, Any], params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]
    ) -> None:
        """Split the group by per-tensor learning rate and overrides, then run the rule."""
        buckets: dict[tuple, tuple[list, list]] = defaultdict(lambda: ([], []))
        lr = hp["lr"]
        group = self._group_of(params[0])
        for p, g in zip(params, grads):
            scale = self._lr_scale(p, group)
            extra = self._param_hyper(p, hp)
            key = (scale, tuple(sorted(extra.items())))
            buckets[key][0].append(p)
            buckets[key][1].append(g)
        for (scale, extra), (ps, gs) in buckets.items():
            lr_p = lr if scale == 1.0 else self._round(lr * self._round(scale))
            sub = {**hp, **dict(extra), "lr": lr_p}
            if extra:
                raw = {**self._raw(group), **dict(extra)}
                sub.update(self._rounded(self._rule_hyper(raw)))
            self._run(sub, ps, gs)

    def _group_of(self, p: torch.Tensor) -> dict[str, Any]:
        for group in self.param_groups:
            if any(q is p for q in group["params"]):
                return group
        raise KeyError("not a parameter of this optimizer")

    def _uses_master(self, p: torch.Tensor) -> bool:
        """Whether ``p`` is stepped through an fp32 master copy (``multi_precision``)."""
        return bool(self._multi_precision) and p.dtype in _LOW_PRECISION

    def _slot(
        self, hp: dict[str, Any], p: torch.Tensor
    ) -> tuple[dict[str, Any], bool, torch.Tensor]:
        """``(state, fresh, target)`` for a rule run by hand: ``target`` is ``p`` or its fp32
        master copy (kept in the state as ``master_param``, with fp32 buffers)."""
        fresh = self._init_state(p, hp)
        state = self.state[p]
        if mw.wants_master(hp, p):
            mw.ensure_master_state(self.rule, hp, p, state, fresh)
            return state, fresh, state[mw.MASTER_KEY]
        return state, fresh, p

    def _run(
        self, hp: dict[str, Any], params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]
    ) -> None:
        """Run the rule: dense gradients through the engine's kernels, row-sparse ones in
        ``lazy_mode`` on their rows only."""
        dense_p, dense_g = [], []
        for p, g in zip(params, grads):
            rows = self._rows.get(p)
            if rows is not None and hp.get("lazy_mode"):
                self._update_rows(hp, p, g, rows)
            else:
                dense_p.append(p)
                dense_g.append(g)
        if dense_p:
            for p in dense_p:
                if mw.wants_master(hp, p) and not self.state.get(p):
                    # a rule without state (SGD) would not keep the master copy: give it a slot
                    probe: dict[str, Any] = {}
                    self.rule.init_state(p, hp, probe)
                    if not probe:
                        mw.ensure_master_state(self.rule, hp, p, self.state[p], True)
            self._update(hp, dense_p, dense_g)

    def _update(
        self, hp: dict[str, Any], params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]
    ) -> None:
        """One element-wise update (the engine's per-group path: kernels, master weights)."""
        if self.rule is None:
            raise NotImplementedError(
                'Class "Optimizer" cannot be used directly as an optimizer, please use its '
                'subclasses such as "Adam"'
            )
        super()._step_group(hp, params, grads)

    def _update_rows(
        self, hp: dict[str, Any], p: torch.Tensor, g: torch.Tensor, rows: torch.Tensor
    ) -> None:
        """The rule on the rows present in a sparse gradient only (``lazy_mode``)."""
        rule = self.rule
        assert rule is not None
        state, fresh, target = self._slot(hp, p)
        scalars = rule.prepare(hp, state, fresh)
        bufs = [state[b.name] if b.when(hp) else None for b in rule.buffers]
        g_rows = g[rows].to(target.dtype)
        out = rule.update(
            TensorOps,
            target[rows],
            g_rows,
            *[b[rows] if b is not None else None for b in bufs],
            **scalars,
        )
        target.detach().index_copy_(0, rows, out[0].to(target.dtype))
        for buf, new in zip(bufs, out[1:]):
            if buf is not None:
                buf.index_copy_(0, rows, new.to(buf.dtype))
        if target is not p:
            p.detach().copy_(target)

    # -- Paddle's other methods -----------------------------------------------------------------
    def clear_grad(self, set_to_zero: bool = True) -> None:
        """Clear the gradients: write zeros (``set_to_zero=True``) or set them to None."""
        for group in self.param_groups:
            for p in group["params"]:
                if not p.requires_grad or p.grad is None:
                    continue
                if set_to_zero:
                    if p.grad.is_sparse:
                        p.grad = None
                    else:
                        p.grad.detach_()
                        p.grad.zero_()
                else:
                    p.grad = None

    def clear_gradients(self, set_to_zero: bool = True) -> None:
        """Paddle's alias of :meth:`clear_grad`."""
        self.clear_grad(set_to_zero)

    def _resolve(self, items: Iterable[Any] | None) -> list[torch.Tensor] | None:
        """Tensors or names (as :meth:`param_name` gives them) → this optimizer's tensors."""
        if items is None:
            return None
        by_name = {n: p for p, n in self._param_names.items()}
        out = []
        for item in items:
            if isinstance(item, str):
                if item not in by_name:
                    raise ValueError(f"no parameter named {item!r} in this optimizer")
                out.append(by_name[item])
            else:
                out.append(item)
        return out

    @torch.no_grad()
    def minimize(
        self,
        loss: torch.Tensor,
        startup_program: Any = None,
        parameters: Sequence[Any] | None = None,
        no_grad_set: Iterable[Any] | None = None,
    ) -> tuple[list, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Update the parameters to minimize ``loss``.

        As in Paddle's dynamic graph, the gradients are those already computed
        (``loss.backward()`` first); if none of the chosen parameters has a gradient yet,
        ``loss.backward()`` is called here.

        Args:
            loss: the loss tensor.
            startup_program: ignored (static graphs only).
            parameters: tensors or names to update (default: all of the optimizer's).
            no_grad_set: tensors or names to leave alone.

        Returns:
            ``(optimize_ops, params_grads)``: an empty list (there are no graph operators)
            and the ``(param, grad)`` pairs used, after clipping and regularization.
        """
        if not isinstance(loss, torch.Tensor):
            raise AssertionError("The loss should be an Tensor.")
        chosen = self._resolve(parameters)
        if chosen is None:
            chosen = [p for g in self.param_groups for p in g["params"]]
        excluded = {id(p) for p in (self._resolve(no_grad_set) or [])}
        chosen = [p for p in chosen if id(p) not in excluded]
        if all(p.grad is None for p in chosen):
            with torch.enable_grad():
                loss.backward()
        self._only = {id(p) for p in chosen}
        seen: list[tuple[torch.Tensor, torch.Tensor]] = []

        def record(groups, params, grads):
            for ps, gs in zip(params, grads):
                seen.extend(zip(ps, gs))

        self.transforms.append(record)
        try:
            self.step()
        finally:
            self.transforms.remove(record)
            self._only = None
        return [], seen

    def append_regularization_ops(
        self,
        parameters_and_grads: Sequence[tuple[torch.Tensor, torch.Tensor | None]],
        regularization: WeightDecayRegularizer | float | None = None,
    ) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Add regularization terms to gradients: each tensor's own regularizer (its
        ``ParamAttr``'s) if it has one, else ``regularization``.

        Returns:
            New ``(param, grad)`` pairs; the inputs are not modified.
        """
        fallback = as_regularizer(regularization)
        out = []
        for p, g in parameters_and_grads:
            reg = param_attr(p).regularizer or fallback
            if g is None or reg is None:
                out.append((p, g))
            else:
                out.append((p, g + reg(p, g)))
        return out

    # -- state_dict with Paddle's names ---------------------------------------------------------
    def _owner_name(self, p: torch.Tensor) -> str:
        """The name Paddle gives the tensor that owns the accumulators (the master copy's for
        ``multi_precision``)."""
        name = self.param_name(p)
        return f"{name}_fp32_master_0" if self._uses_master(p) else name

    def _acc_key(self, owner: str, acc: Acc, k: int = 0) -> str:
        prefix = f"{self._name}_" if self._name is not None else ""
        return f"{owner}_{prefix}{acc.name}_{k}"

    def _all_params(self) -> list[tuple[torch.Tensor, dict[str, Any]]]:
        return [(p, group) for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """The optimizer's state under Paddle's names.

        Returns:
            ``{'{param}_{acc}_0': Tensor, ..., 'master_weights': {param: fp32 Tensor},
            'LR_Scheduler': scheduler.state_dict()}`` (the last two only when they exist),
            accumulator by accumulator in Paddle's order. ``polyoptim.paddle.save`` writes it
            as a ``.pdopt`` file Paddle can read.
        """
        sd: dict[str, Any] = {}
        for acc in self._accumulators:
            for p, _ in self._all_params():
                st = self.state.get(p)
                if not st or acc.key not in st:
                    continue
                value = st[acc.key]
                if acc.per_element:
                    dtype = torch.float32 if self._uses_master(p) else p.dtype
                    value = torch.full(p.shape, float(value), dtype=dtype)
                sd[self._acc_key(self._owner_name(p), acc)] = paddle_layout(
                    p, value, to_paddle=True
                )
        masters = {}
        for p, _ in self._all_params():
            if self.state.get(p) and mw.MASTER_KEY in self.state[p]:
                master = self.state[p][mw.MASTER_KEY]
                master.paddle_name = self._owner_name(p)  # its name in a saved file
                masters[self.param_name(p)] = paddle_layout(p, master, to_paddle=True)
        if masters:
            sd["master_weights"] = masters
        if isinstance(self._learning_rate, LRScheduler):
            sd["LR_Scheduler"] = self._learning_rate.state_dict()
        return sd

    def _find_key(
        self, sd: dict[str, Any], owner: str, acc: Acc, numbered: dict[str, list[str]]
    ) -> str | None:
        """``sd``'s key for ``acc`` of ``owner``: the exact one, else ``{name}_{any number}``
        (looked up in ``numbered``, :func:`_numbered_keys` of ``sd``)."""
        exact = self._acc_key(owner, acc)
        if exact in sd:
            return exact
        found = numbered.get(self._acc_key(owner, acc, 0)[:-1], [])
        if len(found) > 1:
            raise ValueError(f"ambiguous state for {owner}: {sorted(found)}")
        return found[0] if found else None

    def set_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state from :meth:`state_dict`, from Paddle's ``opt.state_dict()`` or from
        ``polyoptim.paddle.load('x.pdopt')``. Everything is checked before anything changes.

        Accumulator names are matched per parameter name; the ``_k`` suffix may be any number
        (Paddle's process-global counter).

        Raises:
            AssertionError: a scheduler is attached but ``LR_Scheduler`` is missing, or a
                parameter has some of its accumulators but not all (Paddle's error).
            ValueError/TypeError: a value has the wrong shape or type.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        sched = self._learning_rate if isinstance(self._learning_rate, LRScheduler) else None
        lr_state = state_dict.get("LR_Scheduler")
        if sched is not None:
            if not isinstance(sched, LambdaDecay):
                assert lr_state is not None, (
                    "LR_Scheduler state must be included in the state dict except LambdaDecay"
                )
            if lr_state:
                sched._check_state_dict(lr_state)
        masters = state_dict.get("master_weights") or {}
        if not isinstance(masters, dict):
            raise TypeError("master_weights must be a dict of {param name: Tensor}")
        plan = self._plan_state(state_dict, masters)
        # everything checked: commit
        if sched is not None and lr_state:
            sched.set_state_dict(lr_state)
        for p, state in plan:
            self.state[p] = state

    load_state_dict = set_state_dict  # type: ignore[assignment]

    def _plan_state(
        self, sd: dict[str, Any], masters: dict[str, Any]
    ) -> list[tuple[torch.Tensor, dict[str, Any]]]:
        rule = self.rule
        plan = []
        numbered = _numbered_keys(sd)
        for p, group in self._all_params():
            owner = self._owner_name(p)
            name = self.param_name(p)
            found = {acc: self._find_key(sd, owner, acc, numbered) for acc in self._accumulators}
            master = masters.get(name) if self._uses_master(p) else None
            if not any(found.values()) and master is None:
                continue
            if rule is None:
                raise TypeError(f"{type(self).__name__} has no per-parameter state to load")
            hp = self.hyper(group)
            extra = self._param_hyper(p, hp)
            hp.update(extra)
            hp.update(self._rounded(self._rule_hyper({**self._raw(group), **extra})))
            new: dict[str, Any] = {}
            rule.init_state(p, hp, new)
            if mw.wants_master(hp, p):
                mw.ensure_master_state(rule, hp, p, new, True)
                if master is not None:
                    value = paddle_layout(p, _to_tensor(master), to_paddle=False)
                    if tuple(value.shape) != tuple(p.shape):
                        raise ValueError(
                            f"master weight {name} has shape {list(value.shape)}, expected "
                            f"{list(p.shape)}"
                        )
                    new[mw.MASTER_KEY] = value.to(device=p.device, dtype=torch.float32).clone()
                elif self.state.get(p) and mw.MASTER_KEY in self.state[p]:
                    new[mw.MASTER_KEY] = self.state[p][mw.MASTER_KEY]
            for acc, key in found.items():
                if acc.key not in new:
                    continue
                if key is None:
                    raise AssertionError(f"optimizer Tensor {self._acc_key(owner, acc)} not found")
                value = paddle_layout(p, _to_tensor(sd[key]), to_paddle=False)
                like = new[acc.key]
                if acc.per_element:
                    if tuple(value.shape) not in (tuple(p.shape), (1,), ()):
                        raise ValueError(
                            f"{key} has shape {list(value.shape)}, expected {list(p.shape)}"
                        )
                    flat = value.reshape(-1)
                    if flat.numel() and not bool((flat == flat[0]).all()):
                        raise ValueError(f"{key} holds different values per element")
                    like.fill_(float(flat[0]) if flat.numel() else 0.0)
                    continue
                var = self._acc_key(owner, acc)
                if tuple(value.shape) != tuple(like.shape):
                    raise AssertionError(  # Paddle's set_state_dict check, word for word
                        f"Variable Shape not match, Variable [ {var} ] need tensor with shape "
                        f"{_paddle_size(like)} but load set tensor with shape {_paddle_size(value)}"
                    )
                # Paddle refuses any other dtype; between floating dtypes polyoptim casts (its
                # low-precision state has the parameter's dtype where Paddle keeps float32)
                if _integral(value) != _integral(like) or value.is_complex() != like.is_complex():
                    raise AssertionError(
                        f"Variable dtype not match, Variable [ {var} ] need tensor with dtype "
                        f"{_paddle_dtype(like)}  but load tensor with dtype {_paddle_dtype(value)}"
                    )
                new[acc.key] = value.to(device=like.device, dtype=like.dtype).clone()
            plan.append((p, new))
        return plan
