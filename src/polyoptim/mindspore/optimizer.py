r"""MindSpore's ``nn.Optimizer`` base class on polyoptim's engine.

What the dialect adds to :class:`polyoptim.Optimizer` is MindSpore's *configuration*: the
argument forms and their checks, group semantics (absolute group ``lr``, ``order_params``),
the default no-decay filter, dynamic learning rates and weight decays indexed by the global
step, and the per-step gradient pipeline

.. math::
    g \leftarrow g + (\lambda \cdot s)\, p \ (\text{decay\_weight}) \;\rightarrow\;
    g \leftarrow g - \operatorname{mean}_{1..n-1}(g) \ (\text{gradients\_centralization}) \;
    \rightarrow\; g \leftarrow g / s \ (\text{scale\_grad}) \;\rightarrow\; \text{rule}

(:math:`s` the static loss scale; the net effect is :math:`g/s + \lambda p`). The update
math lives in :mod:`polyoptim.rules`; the pipeline is built on :mod:`polyoptim.transforms`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from .. import engine, graph_step
from ..transforms import sparse
from ..transforms.centralize import centralize
from ..transforms.decay import l2_regularize
from ..transforms.scale import scale
from . import _validator as V
from .learning_rate_schedule import LearningRateSchedule

__all__ = ["Optimizer", "ParameterTuple", "f32"]

_GROUP_KEYS = ["params", "lr", "weight_decay", "order_params", "grad_centralization"]


def f32(x: float) -> float:
    """``x`` rounded to float32 (MindSpore keeps hyperparameters in float32 tensors)."""
    return struct.unpack("f", struct.pack("f", float(x)))[0]


class ParameterTuple(tuple):
    """A tuple of parameters that knows their names (MindSpore's ``ParameterTuple``).

    ``clone(prefix, init)`` makes new tensors shaped like the parameters, named
    ``"<prefix>.<name>"``, as user optimizers do for their state::

        self.moments = self.parameters.clone(prefix="moments", init="zeros")

    Args:
        params: the tensors.
        names: one name per tensor.

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> model = torch.nn.Linear(3, 2)
        >>> opt = nn.Momentum(model.named_parameters(), learning_rate=0.1, momentum=0.9)
        >>> opt.parameters.names
        ('weight', 'bias')
        >>> moments = opt.parameters.clone(prefix="m", init="zeros")
        >>> moments.names, tuple(moments[0].shape)
        (('m.weight', 'm.bias'), (2, 3))
    """

    names: tuple[str, ...]

    def __new__(cls, params: Iterable[torch.Tensor], names: Iterable[str]) -> ParameterTuple:
        obj = super().__new__(cls, tuple(params))
        obj.names = tuple(names)
        if len(obj.names) != len(obj):
            raise ValueError("ParameterTuple needs one name per parameter")
        return obj

    def clone(self, prefix: str, init: str | float = "zeros") -> ParameterTuple:
        """New tensors like these parameters, filled by ``init`` (``"zeros"``, ``"ones"`` or a
        number), named ``prefix + "." + name``."""
        value = {"zeros": 0.0, "ones": 1.0}.get(init, init) if isinstance(init, str) else init
        if isinstance(value, str):
            raise ValueError(f"unknown init {init!r}: use 'zeros', 'ones' or a number")
        tensors = [torch.full_like(p.detach(), float(value)) for p in self]
        return ParameterTuple(tensors, [f"{prefix}.{n}" for n in self.names])


def _is_param(x: Any) -> bool:
    return isinstance(x, torch.Tensor) or (
        isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) and _is_param(x[1])
    )


def _split(x: Any) -> tuple[str | None, torch.Tensor]:
    if isinstance(x, tuple):
        return x[0], x[1]
    name = getattr(x, "name", None)
    return (name if isinstance(name, str) and name else None), x


def _parameters_base_check(parameters: Any, info: str) -> list:
    if parameters is None:
        raise ValueError(f"For 'Optimizer', the argument {info} can not be None.")
    if isinstance(parameters, torch.Tensor) or not isinstance(parameters, Iterable):
        raise TypeError(
            f"For 'Optimizer', the argument {info} must be Iterable type, "
            f"but got {type(parameters)}."
        )
    parameters = list(parameters)
    if not parameters:
        raise ValueError(f"For 'Optimizer', the argument {info} must not be empty.")
    return parameters


def _is_schedule(x: Any) -> bool:
    return isinstance(x, LearningRateSchedule) or (
        callable(x) and not isinstance(x, torch.Tensor | Iterable)
    )


#: the tensor types many MindSpore kernels list (every number type but bfloat16)
NUMBER_TYPES = (
    "Complex128", "Complex64", "Float16", "Float32", "Float64", "Int16", "Int32", "Int64", "Int8",
    "UInt16", "UInt32", "UInt64", "UInt8",
)  # fmt: skip


def primitive_type_error(
    prim: str, arg: str, types: Iterable[str], *, ref: bool = False, bare: Iterable[str] = ()
) -> str:
    """MindSpore's type-check message of a kernel primitive, as a template of ``{ms}`` (the
    parameter's MindSpore type): ``For primitive[Adam], the input argument[grad] must be a type
    of {...}, but got Tensor[Int64].`` (``Ref[...]`` for a parameter the kernel writes;
    ``bare``: scalar types listed before the tensor ones)."""
    listed = ", ".join([*bare, *(f"Tensor[{t}]" for t in types)])
    got = "Ref[Tensor[{ms}]]" if ref else "Tensor[{ms}]"
    return (
        f"For primitive[{prim}], the input argument[{arg}] must be a type of {{{{{listed}}}}}, "
        f"but got {got}."
    )


def unsupported_type(prim: str) -> str:
    """MindSpore's kernel-selection failure for an unsupported dtype."""
    return f"Select CPU operator[{prim}] fail! Unsupported data type!"


class Optimizer(engine.Optimizer):
    r"""Base class of the MindSpore-dialect optimizers, usable for user optimizers as in
    MindSpore.

    Args:
        learning_rate: a float or int (fixed), a 0-d Tensor (fixed), a 1-D Tensor or any
            Iterable (element ``i`` at global step ``i``), or a
            :class:`~polyoptim.mindspore.LearningRateSchedule` (or any callable) called with
            the global step.
        parameters: a list of tensors, of ``(name, tensor)`` pairs (``model.named_parameters()``;
            names feed the decay filter, LARS's filter and checkpoint names), or of group dicts
            with keys ``params``, ``lr`` (absolute; any kind above), ``weight_decay``,
            ``grad_centralization`` and ``order_params`` (alone in its dict: the order of all
            parameters).
        weight_decay: float :math:`\ge 0`, or a schedule called with the global step. Without
            groups, parameters whose names contain ``"beta"`` or ``"gamma"`` are not decayed.
        loss_scale: the static loss scale :math:`s > 0` the gradients carry.

    Attributes:
        parameters: the parameters, in MindSpore's order (a :class:`ParameterTuple`).
        global_step: steps taken (``global_step`` in checkpoints).

    A user optimizer overrides ``construct(gradients)`` and calls the helpers; it is then
    called as ``opt(grads)`` (gradients in ``opt.parameters`` order) or ``opt.step()`` (from
    ``.grad``), and the global step advances after each call::

        class MyMomentum(nn.Optimizer):
            def __init__(self, params, learning_rate, momentum=0.9):
                super().__init__(learning_rate, params)
                self.moments = self.parameters.clone(prefix="moments", init="zeros")
                self.momentum = momentum

            def construct(self, gradients):
                lr = self.get_lr()
                gradients = self.decay_weight(gradients)
                gradients = self.gradients_centralization(gradients)
                gradients = self.scale_grad(gradients)
                for p, m, g in zip(self.parameters, self.moments, gradients):
                    m.mul_(self.momentum).add_(g)
                    p.sub_(lr * m)
                return True

    Example:
        >>> import torch
        >>> from polyoptim import mindspore as nn
        >>> model = torch.nn.Linear(2, 1)
        >>> opt = nn.Momentum(model.named_parameters(), learning_rate=0.1, momentum=0.9)
        >>> grads = tuple(torch.ones_like(p) for p in opt.parameters)
        >>> _ = opt(grads); opt.global_step
        1
    """

    #: gradient pipeline stages before the rule, in order (subclasses narrow it)
    _pipeline: tuple[str, ...] = ("decay_weight", "gradients_centralization", "scale_grad")
    #: weight decay applied inside the rule (``hp["weight_decay"]``, per-parameter flag)
    _rule_decay: bool = False
    #: checkpoint names of per-parameter state: (MindSpore template, state key)
    _ckpt_slots: tuple[tuple[str, str], ...] = ()
    #: optimizer-wide scalars kept per parameter here: (name, state key, shape)
    _ckpt_globals: tuple[tuple[str, str, tuple[int, ...]], ...] = ()
    #: hyperparameters MindSpore keeps as Parameters: (name, group key)
    _ckpt_hypers: tuple[tuple[str, str], ...] = ()

    def __init__(
        self,
        learning_rate: Any,
        parameters: Any,
        weight_decay: Any = 0.0,
        loss_scale: float = 1.0,
    ) -> None:
        name = self.cls_name
        items = _parameters_base_check(parameters, "parameters")
        if not all(_is_param(x) for x in items) and not all(isinstance(x, dict) for x in items):
            raise TypeError(
                "For 'Optimizer', all elements of the argument 'parameters' must be 'Parameter' "
                "or 'dict', please check the 'parameters'."
            )
        if isinstance(loss_scale, int) and not isinstance(loss_scale, bool):
            loss_scale = float(loss_scale)
        V.check_value_type("loss_scale", loss_scale, [float], name)
        V.check_positive_float(loss_scale, "loss_scale", name)
        self.loss_scale = loss_scale
        self.dynamic_lr = False
        self.dynamic_weight_decay = False
        self.is_group = isinstance(items[0], dict)
        self.is_group_lr = False
        self.grad_centralization = False
        self._unique = True
        self._given: dict[torch.Tensor, Any] | None = None
        self._lr_cache: dict[int, float] | None = None
        lr = self._preprocess_lr(learning_rate)

        groups: list[dict[str, Any]] = []
        named: list[tuple[str | None, torch.Tensor]] = []
        order = None
        if self.is_group:
            order = self._parse_groups(items, lr, weight_decay, groups, named)
        else:
            wd = self._preprocess_weight_decay(weight_decay)
            named = [_split(x) for x in items]
            groups.append(
                {
                    "params": named,
                    "lr": lr,
                    "weight_decay": wd,
                    "grad_centralization": False,
                    "lr_name": "learning_rate",
                }
            )
        # every parameter gets a name (checkpoints and filters need one)
        taken = {n for n, _ in named if n}
        names: dict[int, str] = {}
        for i, (n, p) in enumerate(named):
            if not n:
                n = f"param{i}"
                while n in taken:
                    n += "_"
                taken.add(n)
            names[id(p)] = n
        for g in groups:
            g["params"] = [(names[id(p)], p) for _, p in g["params"]]
        params = [p for _, p in named]
        if order is not None:
            params = self._apply_order(order, params)
        super().__init__(groups, {})

        self.parameters = ParameterTuple(params, [names[id(p)] for p in params])
        self._parameters = self.parameters
        self._index = {p: i for i, p in enumerate(self.parameters)}
        self._group_of = {p: g for g in self.param_groups for p in g["params"]}
        if self.is_group:
            flags = []
            for p in self.parameters:
                wd = self._group_of[p]["weight_decay"]
                flags.append(callable(wd) or wd > 0)
            self.decay_flags = tuple(flags)
            self.exec_weight_decay = any(flags)
        else:
            self.decay_flags = tuple(
                "beta" not in n and "gamma" not in n for n in self.parameters.names
            )
            wd = self.param_groups[0]["weight_decay"]
            self.exec_weight_decay = callable(wd) or wd > 0
        self.grad_centralization_flags = tuple(
            bool(self._group_of[p]["grad_centralization"]) for p in self.parameters
        )
        self.need_scale = self.loss_scale != 1.0
        self.reciprocal_scale = f32(1.0 / self.loss_scale)
        self._target = "CPU" if self.parameters[0].device.type == "cpu" else "GPU"
        self.add_transform(self._pipeline_transform)

    @property
    def cls_name(self) -> str:
        return type(self).__name__

    # -- construction helpers -------------------------------------------------------------------
    def _configure(self, **hyper: Any) -> None:
        """Set optimizer-wide hyperparameters on every group (MindSpore groups cannot)."""
        self.defaults.update(hyper)
        for g in self.param_groups:
            g.update(hyper)

    def _preprocess_lr(self, lr: Any) -> Any:
        """float (fixed), 1-D float32 tensor (per step) or callable schedule."""
        if isinstance(lr, int | float):
            lr = float(lr)
            V.check_non_negative_float(lr, "learning rate", self.cls_name)
            return f32(lr)
        if isinstance(lr, torch.Tensor) and lr.dim() == 0:
            return f32(lr.item())
        if _is_schedule(lr):
            self.dynamic_lr = True
            return lr
        if isinstance(lr, torch.Tensor):
            if lr.dim() > 1:
                raise ValueError(
                    "For 'Optimizer', if 'learning_rate' is Tensor type, then the dimension of "
                    f"it should be 0 or 1, but got {lr.dim()}."
                )
            self.dynamic_lr = True
            return lr.detach().to("cpu", torch.float32).clone()
        # a str is an Iterable to MindSpore too: its characters go through float() ("x" fails)
        if isinstance(lr, Iterable) and not isinstance(lr, bytes | dict):
            self.dynamic_lr = True
            values = [float(v) for v in lr]
            return torch.tensor(values, dtype=torch.float32)
        raise TypeError(
            "For 'Optimizer', the argument 'learning_rate' must be int, float, Tensor, Iterable "
            f"or LearningRateSchedule, but got {type(lr)}."
        )

    def _preprocess_weight_decay(self, wd: Any) -> Any:
        if isinstance(wd, int | float) and not isinstance(wd, bool):
            wd = float(wd)
            V.check_non_negative_float(wd, "weight_decay", self.cls_name)
            return wd
        if callable(wd) and not isinstance(wd, torch.Tensor):
            self.dynamic_weight_decay = True
            return wd
        raise TypeError(
            "For 'Optimizer', the argument 'Weight_decay' must be int, float or Cell.but got "
            f"{type(wd)}"
        )

    def _parse_groups(self, items, lr, weight_decay, groups, named):
        for group in items:
            bad = [k for k in group if k not in _GROUP_KEYS]
            if bad:
                raise KeyError(
                    f"For 'Optimizer', the key in group params must be one of in {_GROUP_KEYS}, "
                    f"but got {bad}."
                )
        lengths = {lr.numel()} if isinstance(lr, torch.Tensor) else set()
        seen: set[int] = set()
        order = None
        for i, group in enumerate(items):
            if "order_params" in group:
                if len(group) > 1:
                    raise ValueError(
                        "For 'Optimizer', the order params dict in group parameters should only "
                        f"include the 'order_params' key, but got {group.keys()}."
                    )
                if not isinstance(group["order_params"], Iterable):
                    raise TypeError(
                        "For 'Optimizer', the value of 'order_params' in group parameters should "
                        f"be Iterable type, but got {type(group['order_params'])}."
                    )
                order = [_split(x)[1] for x in group["order_params"]]
                continue
            if "params" not in group:
                raise KeyError("params")  # MindSpore's own: a bare lookup
            members = _parameters_base_check(group["params"], "group `params`")
            for index, x in enumerate(members):
                if not _is_param(x):
                    raise TypeError(
                        "For 'Optimizer', the element in group parameters must be Parameter "
                        f"type, but got {type(x)} at index {index}."
                    )
            entry: dict[str, Any] = {"lr": lr, "lr_name": "learning_rate"}
            if "lr" in group:
                self.is_group_lr = True
                entry["lr"] = self._preprocess_lr(group["lr"])
                entry["lr_name"] = f"learning_rate_group_{i}"
                if isinstance(entry["lr"], torch.Tensor):
                    lengths.add(entry["lr"].numel())
                    if len(lengths) > 1:
                        raise ValueError(
                            "For 'Optimizer', the Tensor type dynamic learning rate in group must "
                            "be the same size as the argument 'learning_rate'."
                        )
            entry["weight_decay"] = self._preprocess_weight_decay(
                group.get("weight_decay", weight_decay)
            )
            gc = group.get("grad_centralization", False)
            if not isinstance(gc, bool):
                raise TypeError(
                    "For 'Optimizer', the 'gradients_centralization' must be bool type, "
                    f"but got {type(gc)}."
                )
            if "grad_centralization" in group:
                self.grad_centralization = gc
            pairs = [_split(x) for x in members]
            for n, p in pairs:
                if id(p) in seen:
                    raise RuntimeError(
                        f"For 'Optimizer', the {n or 'given'} parameter already exists, it does "
                        "not support repeated setting. Please check whether the optimizer "
                        "parameter has been set multiple times."
                    )
                seen.add(id(p))
            named.extend(pairs)
            groups.append({"params": pairs, **entry, "grad_centralization": gc})
        return order

    @staticmethod
    def _apply_order(order: list[torch.Tensor], params: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(order) != len(params):
            raise ValueError(
                "For 'Optimizer',the length of order parameters must be the same as the length "
                f"of group parameters, but got order parameters' length {len(order)}, group "
                f"parameters' length {len(params)}."
            )
        ids = {id(p) for p in params}
        if {id(p) for p in order} != ids:
            raise ValueError("For 'Optimizer', 'order_params' must list every grouped parameter.")
        return list(order)

    # -- MindSpore's public API -----------------------------------------------------------------
    @property
    def unique(self) -> bool:
        """Whether sparse gradients are de-duplicated (kept for compatibility)."""
        return self._unique

    @unique.setter
    def unique(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(
                f"For 'Optimizer', the property 'unique' must be bool, but got {type(value)}"
            )
        self._unique = value

    @property
    def target(self) -> str:
        """Where the update runs: ``"CPU"`` for host parameters, else ``"GPU"``."""
        return self._target

    @target.setter
    def target(self, value: str) -> None:
        raise NotImplementedError

    def _set_base_target(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(
                f"For 'Optimizer', the property 'target' must be string, but got {type(value)}"
            )
        if value not in ("CPU", "Ascend", "GPU"):
            raise ValueError(
                "For 'Optimizer', the property 'target' must be one of ['CPU', 'Ascend' ,'GPU'], "
                f"but got {value}"
            )
        if self._target == "CPU" and value in ("Ascend", "GPU"):
            raise ValueError(
                "For 'Optimizer', the property 'target' cannot be set to 'GPU' or 'Ascend' in "
                "the 'CPU' environment."
            )
        self._target = value

    def _step_tensor(self) -> torch.Tensor:
        return torch.tensor([self.global_step], dtype=torch.int32)

    def _resolve_lr(self, group: dict[str, Any]) -> float:
        lr = group["lr"]
        if isinstance(lr, int | float):
            if self.dynamic_lr and self.is_group_lr:
                # MindSpore wraps a fixed rate among dynamic ones in a cell computing
                # ``lr + 1.0 - 1.0`` in float32 (0.005 becomes 0.004999995)
                return f32(f32(f32(lr) + 1.0) - 1.0)
            return float(lr)
        if isinstance(lr, torch.Tensor):
            if lr.dim() == 0:
                return float(lr)
            if self.global_step >= lr.numel():
                raise RuntimeError(
                    f"For '{self.cls_name}', the learning-rate list has {lr.numel()} entries and "
                    f"global step {self.global_step} is past its end (MindSpore's Gather "
                    "refuses the index)."
                )
            return float(lr[self.global_step])
        value = lr(self._step_tensor())
        if isinstance(value, torch.Tensor):
            return float(value.to(torch.float32).reshape(()))
        return f32(value)

    def _resolve_wd(self, group: dict[str, Any]) -> float:
        """The group's weight decay this step, times the loss scale, in float32."""
        wd = group["weight_decay"]
        if callable(wd):
            value = wd(self._step_tensor())
            value = float(torch.as_tensor(value, dtype=torch.float32).reshape(()))
            return f32(value * self.loss_scale)
        return f32(wd * self.loss_scale)

    def get_lr(self) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """The learning rate of the coming step: a 0-d float32 tensor, or one per parameter
        (in ``parameters`` order) when groups set their own."""
        if self.is_group_lr:
            return tuple(
                torch.tensor(self._lr_of(self._group_of[p]), dtype=torch.float32)
                for p in self.parameters
            )
        return torch.tensor(self._lr_of(self.param_groups[0]), dtype=torch.float32)

    def _lr_of(self, group: dict[str, Any]) -> float:
        if self._lr_cache is not None and id(group) in self._lr_cache:
            return self._lr_cache[id(group)]
        return self._resolve_lr(group)

    def get_lr_parameter(self, param: Any) -> Any:
        """The learning rate of a parameter (or a list of them): a 0-d tensor for a fixed
        rate, the 1-D tensor for a per-step list, the schedule object for a schedule."""
        if isinstance(param, torch.Tensor):
            plist = [param]
        elif isinstance(param, list):
            plist = param
        else:
            raise TypeError(
                "For 'get_lr_parameter', the 'param' must be 'Parameter' or 'list' type, "
                f"but got {type(param)}."
            )
        out = []
        for p in plist:
            V.check_value_type("parameter", p, [torch.Tensor], self.cls_name)
            if p not in self._index:
                raise ValueError(
                    "For 'get_lr_parameter', the parameter is not in optimizer, please check "
                    "whether the argument 'param' is correct."
                )
            lr = self._group_of[p]["lr"]
            out.append(torch.tensor(lr, dtype=torch.float32) if isinstance(lr, float) else lr)
        return out if isinstance(param, list) else out[0]

    def get_weight_decay(self) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """The weight decay of the coming step (times the loss scale, as MindSpore stores it):
        a float32 tensor, or one per parameter when grouped."""
        if self.is_group:
            return tuple(
                torch.tensor(self._resolve_wd(self._group_of[p]), dtype=torch.float32)
                for p in self.parameters
            )
        return torch.tensor(self._resolve_wd(self.param_groups[0]), dtype=torch.float32)

    def flatten_gradients(self, gradients: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """MindSpore's contiguous-memory hook; parameters here are never flattened."""
        return tuple(gradients)

    def decay_weight(self, gradients: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        r""":math:`g \leftarrow g + (\lambda s) p` for the decayed parameters (the name filter,
        or groups with :math:`\lambda > 0`); ``gradients`` in ``parameters`` order."""
        return tuple(self._decay(list(self.parameters), list(gradients)))

    def gradients_centralization(
        self, gradients: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, ...]:
        r""":math:`g \leftarrow g - \operatorname{mean}_{1..n-1}(g)` for parameters of groups
        with ``grad_centralization=True``, where ``g.dim() >= 2`` and ``g.shape[1] % 16 == 0``."""
        return tuple(self._centralize(list(self.parameters), list(gradients)))

    def scale_grad(self, gradients: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        r""":math:`g \leftarrow g \cdot (1/s)` when the loss scale :math:`s \ne 1`."""
        return tuple(self._scale(list(self.parameters), list(gradients)))

    def broadcast_params(self, optim_result: Any) -> Any:
        """Parameter ``i`` is broadcast from rank ``i mod world_size`` (MindSpore's parallel
        optimizer layout); a no-op on one process."""
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            world = dist.get_world_size()
            for i, p in enumerate(self.parameters):
                dist.broadcast(p.data, src=i % world)
        return optim_result

    # -- the pipeline, as engine transforms -----------------------------------------------------
    def _apply(self, transform, params: list, grads: list, sparse_fn=None) -> list:
        """Run an engine transform on (params, grads) in ``parameters`` terms; row-sparse
        gradients go through ``sparse_fn(p, group, g)`` instead (MindSpore's ``RowTensor``
        semantics: entry by entry)."""
        out = list(grads)
        dense = [i for i, g in enumerate(out) if not (isinstance(g, torch.Tensor) and g.is_sparse)]
        if dense:
            nested = [[out[i]] for i in dense]
            groups = [self._group_of[params[i]] for i in dense]
            transform(groups, [[params[i]] for i in dense], nested)
            for i, n in zip(dense, nested):
                out[i] = n[0]
        if len(dense) != len(out):
            if sparse_fn is None:
                raise RuntimeError(f"{self.cls_name} does not support sparse gradients")
            for i, g in enumerate(out):
                if i not in set(dense):
                    out[i] = sparse_fn(params[i], self._group_of[params[i]], g)
        return out

    def _decay(self, params: list, grads: list) -> list:
        if not self.exec_weight_decay:
            return grads
        where = lambda p, group: self.decay_flags[self._index[p]]  # noqa: E731
        coeff = lambda p, group: self._resolve_wd(group)  # noqa: E731

        def on_rows(p, group, g):
            return sparse.sparse_l2(g, p, coeff(p, group)) if where(p, group) else g

        return self._apply(l2_regularize(coeff, where), params, grads, on_rows)

    def _centralize(self, params: list, grads: list) -> list:
        if not self.is_group:
            return grads
        where = lambda p, group: self.grad_centralization_flags[self._index[p]]  # noqa: E731

        def on_rows(p, group, g):
            return sparse.sparse_centralize(g, divisible=16) if where(p, group) else g

        return self._apply(
            centralize(min_ndim=2, divisible=16, where=where), params, grads, on_rows
        )

    def _scale(self, params: list, grads: list) -> list:
        if not self.need_scale:
            return grads
        return self._scale_by(self.reciprocal_scale, params, grads)

    def _scale_by(self, factor: float, params: list, grads: list) -> list:
        return self._apply(
            scale(factor), params, grads, lambda p, group, g: sparse.sparse_scale(g, factor)
        )

    _STAGES = {
        "decay_weight": "_decay",
        "gradients_centralization": "_centralize",
        "scale_grad": "_scale",
    }

    def _pipeline_transform(self, groups, params, grads) -> None:
        flat_p = [p for ps in params for p in ps]
        flat_g = [g for gs in grads for g in gs]
        for stage in self._pipeline:
            flat_g = getattr(self, self._STAGES[stage])(flat_p, flat_g)
        k = 0
        for gs in grads:
            for j in range(len(gs)):
                gs[j] = flat_g[k]
                k += 1

    # -- stepping -------------------------------------------------------------------------------
    def hyper(self, group: dict[str, Any]) -> dict[str, Any]:
        """The group with this step's learning rate and (unscaled by the loss scale where the
        rule applies it) weight decay resolved to numbers."""
        out = {**group, "lr": self._lr_of(group)}
        if self._rule_decay:
            out["weight_decay"] = self._resolve_wd(group)
        return out

    def _step_group(self, group, params, grads) -> None:
        if not self._rule_decay:
            self._update_group(group, params, grads)
            return
        # the rule decays only the flagged parameters
        on = [i for i, p in enumerate(params) if self.decay_flags[self._index[p]]]
        off = [i for i in range(len(params)) if i not in set(on)]
        for idx, wd in ((on, group["weight_decay"]), (off, 0.0)):
            if idx:
                sub = {**group, "weight_decay": wd}
                self._update_group(sub, [params[i] for i in idx], [grads[i] for i in idx])

    def _update_group(self, group, params, grads) -> None:
        """Run the algorithm on some of a group's parameters (the engine's rule by default;
        non-element-wise algorithms override this). Row-sparse gradients update only their
        rows when the optimizer is lazy, else they are summed into a dense gradient."""
        dense = [i for i, g in enumerate(grads) if not g.is_sparse]
        if len(dense) == len(grads):
            engine.Optimizer._step_group(self, group, params, grads)
            return
        if not self._lazy:
            grads = [g.to_dense() if g.is_sparse else g for g in grads]
            engine.Optimizer._step_group(self, group, params, grads)
            return
        if dense:
            engine.Optimizer._step_group(
                self, group, [params[i] for i in dense], [grads[i] for i in dense]
            )
        rule = self.rule
        assert rule is not None
        for p, g in zip(params, grads):
            if g.is_sparse:
                fresh = self._init_state(p, group)
                state = self.state.get(p, {})
                sparse.lazy_step(rule, group, p, g, state, rule.prepare(group, state, fresh))

    #: row-sparse gradients allowed (MindSpore: Adam, LazyAdam, FTRL)
    _sparse_ok: bool = False
    #: row-sparse gradients update only their rows
    _lazy: bool = False

    def _check_grad(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        if p.grad is not None and p.grad.is_sparse and not self._sparse_ok:
            raise RuntimeError(f"{self.cls_name} does not support sparse gradients")

    #: MindSpore's error for a parameter of integer or bool dtype ``{ms}`` (its kernel's type
    #: check; the classes whose text was recorded from MindSpore 2.10.0 set their own)
    _dtype_refusal: str = "For '{cls}', parameters of type Tensor[{ms}] are not supported."
    #: the same for a bool parameter, where MindSpore's kernel says something else
    _bool_refusal: str | None = None

    def _refuse_dtypes(self, group: dict[str, Any], params: Sequence[torch.Tensor]) -> None:
        """MindSpore's ``TypeError`` for integer and bool parameters, before anything changes."""
        p = next(p for p in params if not (p.is_floating_point() or p.is_complex()))
        name = str(p.dtype).removeprefix("torch.")  # int64 -> Int64, uint8 -> UInt8, bool -> Bool
        ms = "UInt" + name[4:] if name.startswith("uint") else name.capitalize()
        text = self._bool_refusal if p.dtype == torch.bool and self._bool_refusal else None
        raise TypeError((text or self._dtype_refusal).format(cls=self.cls_name, ms=ms))

    def _gather(self, group: dict[str, Any]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if self._given is None:
            return super()._gather(group)
        params, grads = [], []
        for p in group["params"]:
            g = self._given.get(p)
            if g is None:
                continue
            g = torch.as_tensor(g, device=p.device)
            if g.dtype != p.dtype:
                g = g.to(p.dtype)
            if g.is_sparse and not self._sparse_ok:
                raise RuntimeError(f"{self.cls_name} does not support sparse gradients")
            if g.shape != p.shape:
                name = self.parameters.names[self._index[p]]
                raise ValueError(
                    f"For '{self.cls_name}', the gradient of {name} has shape "
                    f"{tuple(g.shape)}, the parameter {tuple(p.shape)}."
                )
            params.append(p)
            grads.append(g.detach())
        return params, grads

    def _custom(self) -> bool:
        return type(self).construct is not Optimizer.construct

    def construct(self, gradients: Sequence[torch.Tensor]) -> Any:
        """One step from ``gradients`` (in ``parameters`` order). User optimizers override it;
        the built-in ones run the pipeline and their rule."""
        self._given = dict(zip(self.parameters, gradients))
        try:
            engine.Optimizer.step(self)
        finally:
            self._given = None
        return True

    def __call__(self, gradients: Sequence[torch.Tensor]) -> Any:
        """``opt(grads)``: one step from a tuple of gradients in ``parameters`` order."""
        gradients = tuple(gradients)
        if torch.compiler.is_compiling() and len(gradients) == len(self.parameters):
            graph_step.in_graph_step(self, None, gradients)
            return True  # what the built-in optimizers' construct returns
        if len(gradients) != len(self.parameters):
            raise ValueError(
                f"For '{self.cls_name}', expected {len(self.parameters)} gradients (one per "
                f"parameter), got {len(gradients)}."
            )
        return self._run(gradients)

    def _run(self, gradients: tuple) -> Any:
        self._lr_cache = {id(g): self._resolve_lr(g) for g in self.param_groups}
        try:
            if self._custom():
                with torch.no_grad():
                    result = self.construct(gradients)
                self.global_step += 1
                return result
            return self.construct(gradients)
        finally:
            self._lr_cache = None

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One step from the parameters' ``.grad`` (parameters without one are skipped by the
        built-in optimizers; a user ``construct`` receives zeros for them). Under
        ``torch.compile`` it is one opaque operation (:mod:`polyoptim.graph_step`)."""
        if torch.compiler.is_compiling():
            return graph_step.in_graph_step(self, closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self._custom():
            grads = tuple(
                p.grad if p.grad is not None else torch.zeros_like(p) for p in self.parameters
            )
        else:
            grads = tuple(p.grad for p in self.parameters)
        self._run(grads)
        return loss

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """torch's optimizer state dict, plus ``global_step`` (dynamic learning rates and
        weight decays are indexed by it)."""
        out = super().state_dict()
        out["global_step"] = self.global_step
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load :meth:`state_dict`'s output (``global_step`` included)."""
        state_dict = dict(state_dict)
        step = state_dict.pop("global_step", None)
        super().load_state_dict(state_dict)
        self._group_of = {p: g for g in self.param_groups for p in g["params"]}
        if step is not None:
            self.global_step = int(step)

    def _initial_state(self, p: torch.Tensor) -> dict[str, Any]:
        """The state ``p`` would get on its first step (MindSpore creates it at construction;
        checkpoints of an optimizer that has not stepped hold these values)."""
        state: dict[str, Any] = {}
        if self.rule is not None:
            group = self._group_of[p]
            lr = group["lr"]
            self.rule.init_state(p, {**group, "lr": lr if isinstance(lr, float) else 0.0}, state)
        return state

    def parameters_dict(self) -> dict[str, Any]:
        """Everything MindSpore would save for this optimizer, under MindSpore's names:
        ``global_step``, the learning rate(s), the parameters, then the optimizer state."""
        from .checkpoint import optimizer_entries

        return optimizer_entries(self)
