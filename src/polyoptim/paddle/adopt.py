"""``polyoptim.paddle.adopt(model)``: a torch module with Paddle's parameter surface.

Paddle training code reads attributes a torch parameter lacks: ``p.name`` (PaddleNLP's
``decay_params = [p.name for n, p in model.named_parameters() if ...]`` fed to
``apply_decay_param_fun``), ``p.trainable`` (PaddleDetection freezes with it),
``p.stop_gradient``, ``p.optimize_attr["learning_rate"]``, ``p.regularizer``, ``p.need_clip``.
:func:`adopt` gives every parameter of a torch module those attributes, in place, without
changing its values, its torch behaviour or its ``state_dict``:

* ``p.name`` is the name Paddle gives the same layer's parameter: ``{layer}_{i}.w_{k}`` /
  ``.b_{k}``, where ``layer`` is the snake-cased Paddle class name (``linear``,
  ``batch_norm2d``, ``conv2d``, ``layer_norm``, ``embedding``), ``i`` counts the layers of that
  kind built so far in the process (every module counts, containers included, in construction
  order, as Paddle's ``unique_name`` does) and ``k`` counts the layer's weights (``w``: weights,
  BatchNorm's mean and variance) and biases (``b``) separately. A process that builds one model
  gives ``linear_0.w_0``, ``linear_0.b_0``, ``batch_norm1d_0.w_0``, ... as Paddle does;
  :func:`unique_name_guard` restarts the numbering, as ``paddle.utils.unique_name.guard()``;
* ``p.trainable`` and ``p.stop_gradient`` are views of ``requires_grad``;
* ``p.optimize_attr``, ``p.regularizer``, ``p.need_clip`` are views of the tensor's
  :class:`~polyoptim.paddle.ParamAttr`, which the Paddle optimizers read;
* the module's ``parameters()`` returns a list, as Paddle's does (so
  ``sum([m.parameters() for m in models], [])`` works) that ``next()`` still walks as torch's
  generator; ``set_state_dict`` loads a Paddle ``.pdparams`` state (Paddle's key names and its
  ``[in, out]`` Linear layout); ``clear_gradients()`` clears them.

The Paddle optimizers then need no hand edits: they key their state (``.pdopt`` files) by these
names and pass them to ``apply_decay_param_fun``; a Linear weight's accumulators are saved and
loaded in Paddle's ``[in, out]`` layout, so ``.pdopt`` files interchange with Paddle.

Example:
    >>> import torch
    >>> from polyoptim import paddle as P
    >>> with P.unique_name_guard():
    ...     net = P.adopt(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8)))
    >>> [p.name for p in net.parameters()]
    ['linear_0.w_0', 'linear_0.b_0', 'batch_norm1d_0.w_0', 'batch_norm1d_0.b_0']
    >>> net[0].bias.trainable = False; net[0].bias.requires_grad
    False
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch

from ..adoption import adopt_object, adopted_base
from .param_attr import ParamAttr, param_attr, set_param_attr
from .regularizer import WeightDecayRegularizer, as_regularizer

__all__ = ["adopt", "paddle_layout", "unique_name_guard"]

#: torch classes whose Paddle counterpart is spelled differently (the rest snake-case alike:
#: ``BatchNorm1d``/``BatchNorm1D`` -> ``batch_norm1d``, ``Conv2d``/``Conv2D`` -> ``conv2d``)
_PADDLE_CLASS = {
    "MultiheadAttention": "MultiHeadAttention",
    "ConvTranspose1d": "Conv1DTranspose",
    "ConvTranspose2d": "Conv2DTranspose",
    "ConvTranspose3d": "Conv3DTranspose",
    "Module": "Layer",
    "ModuleList": "LayerList",
    "ModuleDict": "LayerDict",
    "ParameterList": "ParameterList",
}
#: torch buffers Paddle keeps as (non-trainable) parameters, and their Paddle attribute names
_BUFFERS_AS_PARAMS = {"running_mean": "_mean", "running_var": "_variance"}


def _snake(name: str) -> str:
    """Paddle's class-name to layer-name rule (``BatchNorm2D`` -> ``batch_norm2d``)."""
    s = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", s).lower()


class _UniqueNames:
    """Paddle's process-wide ``unique_name`` generator: ``key_0``, ``key_1``, ..."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)

    def generate(self, key: str) -> str:
        n = self.counts[key]
        self.counts[key] += 1
        return f"{key}_{n}"


_names = _UniqueNames()


@contextmanager
def unique_name_guard() -> Iterator[None]:
    """Number layers from 0 inside the block (``paddle.utils.unique_name.guard()``).

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> with P.unique_name_guard():
        ...     P.adopt(torch.nn.Linear(2, 2)).weight.name
        'linear_0.w_0'
    """
    global _names
    saved, _names = _names, _UniqueNames()
    try:
        yield
    finally:
        _names = saved


class _OptimizeAttr(dict):
    """``p.optimize_attr``: ``{'learning_rate': scale}``; writing the key sets the tensor's
    learning-rate scale (Paddle code does ``p.optimize_attr['learning_rate'] *= mult``)."""

    def __init__(self, tensor: torch.Tensor) -> None:
        super().__init__(learning_rate=param_attr(tensor).learning_rate)
        self._tensor = tensor

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        if key == "learning_rate":
            set_param_attr(self._tensor, learning_rate=float(value))


class PaddleParameterMixin:
    """Paddle's parameter attributes on a torch tensor (see the module docstring)."""

    __slots__ = ()

    @property
    def name(self) -> str | None:  # type: ignore[override]
        """Paddle's unique name (``linear_0.w_0``); settable."""
        return param_attr(self).name  # type: ignore[arg-type]

    @name.setter
    def name(self, value: str) -> None:
        set_param_attr(self, name=value)  # type: ignore[arg-type]

    @property
    def trainable(self) -> bool:
        """Whether the optimizer updates it (``requires_grad``)."""
        return bool(self.requires_grad)  # type: ignore[attr-defined]

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self.requires_grad_(bool(value))  # type: ignore[attr-defined]

    @property
    def stop_gradient(self) -> bool:
        """``not requires_grad``, as in Paddle."""
        return not self.requires_grad  # type: ignore[attr-defined]

    @stop_gradient.setter
    def stop_gradient(self, value: bool) -> None:
        self.requires_grad_(not value)  # type: ignore[attr-defined]

    @property
    def optimize_attr(self) -> dict[str, float]:
        """``{'learning_rate': scale}`` (the learning-rate scale of its ``ParamAttr``)."""
        return _OptimizeAttr(self)  # type: ignore[arg-type]

    @optimize_attr.setter
    def optimize_attr(self, value: Mapping[str, Any]) -> None:
        set_param_attr(self, learning_rate=float(value.get("learning_rate", 1.0)))  # type: ignore[arg-type]

    @property
    def regularizer(self) -> WeightDecayRegularizer | None:
        """Its own regularizer (wins over the optimizer's ``weight_decay``), or None."""
        return param_attr(self).regularizer  # type: ignore[arg-type]

    @regularizer.setter
    def regularizer(self, value: WeightDecayRegularizer | float | None) -> None:
        set_param_attr(self, regularizer=as_regularizer(value))  # type: ignore[arg-type]

    @property
    def need_clip(self) -> bool:
        """Whether gradient clipping applies to it."""
        return param_attr(self).need_clip  # type: ignore[arg-type]

    @need_clip.setter
    def need_clip(self, value: bool) -> None:
        set_param_attr(self, need_clip=bool(value))  # type: ignore[arg-type]

    @property
    def persistable(self) -> bool:
        """Parameters are saved with the model (always True)."""
        return True

    @property
    def paddle_transposed(self) -> bool:
        """Whether Paddle stores this tensor transposed (a Linear weight: ``[in, out]``)."""
        return bool(self.__dict__.get("_paddle_transposed", False))


class _ParamList(list):
    """Paddle's ``parameters()`` list, which ``next()`` also walks like torch's generator."""

    def __next__(self) -> torch.Tensor:
        it = self.__dict__.get("_it")
        if it is None:
            it = self.__dict__["_it"] = iter(list(self))
        return next(it)


class PaddleLayerMixin:
    """Paddle's ``Layer`` methods a training script calls on the model."""

    def parameters(self, include_sublayers: bool = True, recurse: bool | None = None) -> Any:
        """All parameters, as a list (Paddle's return type) that ``next()`` also walks."""
        deep = include_sublayers if recurse is None else recurse
        return _ParamList(torch.nn.Module.parameters(self, recurse=deep))  # type: ignore[arg-type]

    def clear_gradients(self, set_to_zero: bool = True) -> None:
        """Zero (or drop) every parameter's gradient."""
        self.zero_grad(set_to_none=not set_to_zero)  # type: ignore[attr-defined]

    def set_state_dict(self, state_dict: Mapping[str, Any], use_structured_name: bool = True):
        """Load a Paddle state dict (``paddle.load('model.pdparams')``): Paddle's keys
        (``bn._mean``) and layout (Linear weights ``[in, out]``), or a torch state dict.

        Returns:
            ``(missing_keys, unexpected_keys)`` in Paddle's names, as Paddle returns them.

        Raises:
            ValueError: a shape that fits neither layout (nothing is loaded).
        """
        return _set_state_dict(self, state_dict, use_structured_name)  # type: ignore[arg-type]

    set_dict = set_state_dict
    load_dict = set_state_dict


def paddle_layout(p: torch.Tensor, value: torch.Tensor, *, to_paddle: bool) -> torch.Tensor:
    """``value``, a tensor shaped like ``p`` in one framework's layout, in Paddle's layout
    (``to_paddle=True``) or in torch's. Only adopted Linear weights differ: Paddle stores them
    ``[in, out]``, so their 2-D values are transposed; anything else is returned as it is."""
    if isinstance(p, PaddleParameterMixin) and p.paddle_transposed and value.dim() == 2:
        return value.t()
    return value


def _paddle_entries(module: torch.nn.Module) -> dict[str, tuple[str, torch.Tensor]]:
    """``{paddle structured key: (torch state_dict key, tensor)}``."""
    out = {}
    for mod_name, mod in module.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        for leaf, p in mod._parameters.items():
            if p is not None:
                out[prefix + leaf] = (prefix + leaf, p)
        for leaf, b in mod._buffers.items():
            if b is not None and leaf in _BUFFERS_AS_PARAMS:
                out[prefix + _BUFFERS_AS_PARAMS[leaf]] = (prefix + leaf, b)
    return out


def _set_state_dict(module: torch.nn.Module, sd: Mapping[str, Any], structured: bool):
    from .checkpoint import to_tensor

    entries = _paddle_entries(module)
    torch_keys = {tk: (tk, t) for tk, t in entries.values()}
    if not structured:  # keyed by unique names
        entries = {getattr(v[1], "name", None) or k: v for k, v in entries.items()}
    plan = []
    for key, raw in sd.items():
        target = entries.get(key) or torch_keys.get(key)
        if target is None:
            continue
        value = raw if isinstance(raw, torch.Tensor) else to_tensor(raw)
        value = paddle_layout(target[1], value, to_paddle=False)
        if tuple(value.shape) != tuple(target[1].shape):
            raise ValueError(
                f"{key} receives a shape {list(value.shape)}, but the expected shape is "
                f"{list(target[1].shape)}."
            )
        plan.append((target[1], value))
    with torch.no_grad():
        for t, v in plan:
            t.copy_(v.to(dtype=t.dtype, device=t.device))
    used = set(sd)
    missing = [k for k, (tk, _) in entries.items() if k not in used and tk not in used]
    unexpected = [k for k in sd if k not in entries and k not in torch_keys]
    return missing, unexpected


def _paddle_class(module: torch.nn.Module) -> str:
    name = adopted_base(type(module)).__name__
    return _PADDLE_CLASS.get(name, name)


#: containers built from modules built before them (numbered after their children, as in Paddle)
_BUILT_FROM_CHILDREN = (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)


def _construction_order(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Modules in the order a Paddle script would build them: a layer before the sublayers its
    ``__init__`` creates, but a ``Sequential``/``LayerList`` after the layers passed to it."""
    out: list[torch.nn.Module] = []
    seen: set[int] = set()

    def visit(m: torch.nn.Module) -> None:
        if id(m) in seen:
            return
        seen.add(id(m))
        late = isinstance(m, _BUILT_FROM_CHILDREN)
        if not late:
            out.append(m)
        for child in m.children():
            visit(child)
        if late:
            out.append(m)

    visit(model)
    return out


def adopt(model: torch.nn.Module) -> torch.nn.Module:
    """Give ``model`` and its parameters Paddle's attributes, in place (see the module
    docstring); returns ``model``. Adopting again changes nothing: names stay.

    Args:
        model: any ``torch.nn.Module``.

    Raises:
        TypeError: ``model`` is not a ``torch.nn.Module``.

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> with P.unique_name_guard():
        ...     net = P.adopt(torch.nn.Linear(2, 3))
        >>> [p.name for p in net.parameters()], net.weight.trainable
        (['linear_0.w_0', 'linear_0.b_0'], True)
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"adopt expects a torch.nn.Module, got {type(model).__name__}")
    for module in _construction_order(model):
        if not isinstance(module, PaddleLayerMixin):
            full = _names.generate(_snake(_paddle_class(module)))
            module.__dict__["_paddle_full_name"] = full
        full = module.__dict__["_paddle_full_name"]
        counters: dict[str, int] = defaultdict(int)
        own = [(leaf, p) for leaf, p in module._parameters.items() if p is not None]
        own += [
            (leaf, b)
            for leaf, b in module._buffers.items()
            if b is not None and leaf in _BUFFERS_AS_PARAMS
        ]
        for leaf, t in own:
            kind = "b" if leaf == "bias" else "w"
            unique = f"{full}.{kind}_{counters[kind]}"
            counters[kind] += 1
            if not isinstance(t, torch.nn.Parameter):
                continue  # BatchNorm statistics: numbered as Paddle does, stay torch buffers
            if not isinstance(t, PaddleParameterMixin):
                attr = param_attr(t)
                if attr.name is None:
                    ParamAttr(**{**attr.__dict__, "name": unique}).apply(t)
                adopt_object(t, PaddleParameterMixin, "Paddle")
                if isinstance(module, torch.nn.Linear) and leaf == "weight":
                    t.__dict__["_paddle_transposed"] = True
        adopt_object(module, PaddleLayerMixin, "")
    return model
