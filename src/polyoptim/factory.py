"""Build any optimizer of the three dialects by name, with timm's parameter-group conventions.

``create_optimizer(model, "adamw", lr=1e-3, weight_decay=0.05)`` is what timm's
``create_optimizer_v2`` does for timm's names, for every optimizer polyoptim has:

* the names are ``list_optimizers()``: the torch dialect's classes by their lower-case names
  (``"adamw"``, also ``"torch.adamw"``), Paddle's as ``"paddle.<name>"`` (``"paddle.momentum"``)
  and MindSpore's as ``"mindspore.<name>"`` (``"mindspore.lamb"``);
* given a ``torch.nn.Module``, biases and every parameter with fewer than two dimensions (norm
  weights, scalars) go to a group without weight decay (``no_decay_1d=False`` turns this off),
  as do the names the model's ``no_weight_decay()`` method or ``no_weight_decay`` list
  (shell-style patterns) name;
* ``layer_decay=d`` scales each layer's learning rate by ``d ** (last layer - layer)``;
* each dialect gets the groups in its own terms: a group's learning rate is absolute in the
  torch and MindSpore dialects and a scale of the base rate in Paddle's, and weight decay goes
  to the argument that holds it (Paddle's ``Lamb``: ``lamb_weight_decay``).

Everything else (``betas``, ``momentum``, ``grad_clip``, ``loss_scale``, ...) is passed to the
class unchanged, with the class's own defaults for what is not given.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["create_optimizer", "get_optimizer_class", "list_optimizers", "param_groups"]

_NO_DEFAULT = inspect.Parameter.empty


@dataclass(frozen=True)
class _Dialect:
    """How one dialect's constructors take parameters, learning rates and group rates."""

    prefix: str  # "" for torch
    params_keyword: str | None  # None: the first positional argument
    lr_keyword: str
    group_lr_key: str
    group_lr_is_scale: bool  # Paddle: a group's learning_rate multiplies the base rate


_TORCH = _Dialect("", None, "lr", "lr", False)
_PADDLE = _Dialect("paddle.", "parameters", "learning_rate", "learning_rate", True)
_MINDSPORE = _Dialect("mindspore.", None, "learning_rate", "lr", False)

# Classes of a dialect that are not optimizers one builds from parameters.
_NOT_BUILDABLE = {"Optimizer", "LARS"}  # base classes; MindSpore's LARS wraps an optimizer


def _dialect_classes() -> dict[str, tuple[type, _Dialect]]:
    import polyoptim
    from polyoptim import mindspore, paddle

    table: dict[str, tuple[type, _Dialect]] = {}
    for module, dialect in ((polyoptim, _TORCH), (paddle, _PADDLE), (mindspore, _MINDSPORE)):
        for name in module.__all__:
            cls = getattr(module, name)
            if (
                isinstance(cls, type)
                and issubclass(cls, torch.optim.Optimizer)
                and name not in _NOT_BUILDABLE
            ):
                table[dialect.prefix + name.lower()] = (cls, dialect)
    return table


_TABLE: dict[str, tuple[type, _Dialect]] | None = None


def _table() -> dict[str, tuple[type, _Dialect]]:
    global _TABLE
    if _TABLE is None:
        _TABLE = _dialect_classes()
    return _TABLE


def list_optimizers(dialect: str | None = None) -> list[str]:
    """The names :func:`create_optimizer` takes, sorted.

    Args:
        dialect: ``"torch"``, ``"paddle"`` or ``"mindspore"`` for one dialect's names; None
            for all of them.

    Returns:
        Lower-case names: ``"adam"`` for the torch dialect (``"torch.adam"`` is also
        accepted), ``"paddle.adam"``, ``"mindspore.adam"``.

    Example:
        >>> import polyoptim
        >>> "paddle.momentum" in polyoptim.list_optimizers("paddle")
        True
        >>> polyoptim.list_optimizers("torch")[:3]
        ['adadelta', 'adafactor', 'adagrad']
    """
    prefixes = {"torch": "", "paddle": "paddle.", "mindspore": "mindspore."}
    if dialect is not None and dialect not in prefixes:
        raise ValueError(f"dialect must be one of {sorted(prefixes)} or None, got {dialect!r}")
    names = sorted(_table())
    if dialect is None:
        return names
    if dialect == "torch":
        return [n for n in names if "." not in n]
    return [n for n in names if n.startswith(prefixes[dialect])]


def _lookup(name: str | type) -> tuple[str, type, _Dialect]:
    table = _table()
    if isinstance(name, type):
        for key, (cls, dialect) in table.items():
            if cls is name:
                return key, cls, dialect
        raise ValueError(
            f"{name.__module__}.{name.__qualname__} is not an optimizer polyoptim builds; "
            "see polyoptim.list_optimizers()"
        )
    if not isinstance(name, str):
        raise TypeError(f"name must be a str or a polyoptim optimizer class, got {name!r}")
    key = name.strip().lower()
    key = key.removeprefix("torch.")
    if key not in table:
        close = difflib.get_close_matches(key, table, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"unknown optimizer {name!r}{hint} (polyoptim.list_optimizers() names them all)"
        )
    cls, dialect = table[key]
    return key, cls, dialect


def get_optimizer_class(name: str) -> type:
    """The class behind a :func:`create_optimizer` name.

    Args:
        name: a name from :func:`list_optimizers`, case-insensitive.

    Returns:
        The optimizer class, e.g. :class:`polyoptim.paddle.Momentum` for ``"paddle.momentum"``.

    Raises:
        ValueError: the name is unknown (the message suggests close names).

    Example:
        >>> import polyoptim
        >>> polyoptim.get_optimizer_class("AdamW") is polyoptim.AdamW
        True
        >>> polyoptim.get_optimizer_class("mindspore.lamb").__module__
        'polyoptim.mindspore.lamb'
    """
    return _lookup(name)[1]


# -- parameter groups ---------------------------------------------------------------------------


def _layer_key(name: str) -> str:
    """The layer a parameter belongs to: the model's child that holds it, or, for a child that
    is a container (``blocks.3.attn.qkv.weight``), the numbered entry (``blocks.3``)."""
    parts = name.split(".")
    if len(parts) == 1:
        return name  # a parameter of the model itself (a class token, a position embedding)
    if len(parts) > 2 and parts[1].isdigit():
        return f"{parts[0]}.{parts[1]}"
    return parts[0]


def _model_no_weight_decay(model: torch.nn.Module) -> set[str]:
    attr = getattr(model, "no_weight_decay", None)
    if attr is None:
        return set()
    return set(attr() if callable(attr) else attr)


def param_groups(
    model: torch.nn.Module,
    weight_decay: float,
    *,
    no_decay_1d: bool = True,
    no_weight_decay: Iterable[str] = (),
    layer_decay: float | None = None,
    layer_of: Callable[[str], int] | None = None,
) -> list[dict[str, Any]]:
    """Split a model's trainable parameters into torch-style groups, timm's way.

    A parameter gets no weight decay when ``no_decay_1d`` and it is a bias (its name ends in
    ``.bias``) or has fewer than 2 dimensions, or when its name matches a pattern of
    ``no_weight_decay`` or of the model's own ``no_weight_decay()`` (shell-style, as
    :mod:`fnmatch`). With ``layer_decay = d`` and layers numbered :math:`0, \\dots, L-1`, layer
    :math:`i`'s groups carry ``lr_scale`` :math:`= d^{\\,L-1-i}` (the last layer, usually the
    head, keeps the base rate).

    Layers: by default, the model's child module that holds the parameter, and for a container
    child (``nn.Sequential``, ``nn.ModuleList``) its numbered entry, so ``embed``,
    ``blocks.0`` ... ``blocks.11``, ``head`` are 14 layers; a parameter of the model itself is a
    layer of its own. They are numbered in the order ``named_parameters()`` meets them.
    ``layer_of(name) -> int`` numbers them instead.

    Args:
        model: the module whose ``named_parameters()`` are grouped; frozen ones are left out.
        weight_decay: the coefficient of the decayed groups. 0 makes one group per layer.
        no_decay_1d: put biases and parameters with ``ndim <= 1`` in a group with
            ``weight_decay=0`` (default True).
        no_weight_decay: more names or patterns without weight decay.
        layer_decay: layer-wise learning-rate decay factor, or None (no ``lr_scale``).
        layer_of: numbers a parameter's layer from its name (0 first); only with
            ``layer_decay``.

    Returns:
        Groups ``{"params": [...], "weight_decay": wd}`` (plus ``"lr_scale"`` with
        ``layer_decay``), per layer, the no-decay group first; empty groups are left out.

    Example:
        >>> import torch
        >>> from polyoptim.factory import param_groups
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8))
        >>> [(len(g["params"]), g["weight_decay"]) for g in param_groups(model, 0.05)]
        [(3, 0.0), (1, 0.05)]
        >>> [g["lr_scale"] for g in param_groups(model, 0.0, layer_decay=0.5)]
        [0.5, 1.0]
    """
    if layer_of is not None and layer_decay is None:
        raise ValueError("layer_of is only used with layer_decay")
    if layer_decay is not None and not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
    patterns = [*no_weight_decay, *_model_no_weight_decay(model)]
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]

    layer_ids: dict[str, int] = {}
    if layer_decay is not None:
        if layer_of is not None:
            layer_ids = {n: int(layer_of(n)) for n, _ in named}
        else:
            order: dict[str, int] = {}
            for n, _ in named:
                layer_ids[n] = order.setdefault(_layer_key(n), len(order))
    last = max(layer_ids.values(), default=0)

    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for n, p in named:
        excluded = (no_decay_1d and (p.ndim <= 1 or n.endswith(".bias"))) or any(
            fnmatch.fnmatch(n, pat) for pat in patterns
        )
        decayed = bool(weight_decay) and not excluded
        layer = layer_ids.get(n, 0)
        group = groups.get((layer, decayed))
        if group is None:
            group = {"params": [], "weight_decay": weight_decay if decayed else 0.0}
            if layer_decay is not None:
                group["lr_scale"] = layer_decay ** (last - layer)
            groups[(layer, decayed)] = group
        group["params"].append(p)
    return [groups[key] for key in sorted(groups)]


# -- building -----------------------------------------------------------------------------------


def _decay_keyword(cls: type) -> str | None:
    params = inspect.signature(cls).parameters
    for key in ("weight_decay", "lamb_weight_decay"):
        if key in params:
            return key
    return None


def _default(cls: type, keyword: str) -> Any:
    return inspect.signature(cls).parameters[keyword].default


def _as_dialect_groups(
    groups: list[dict[str, Any]],
    key: str,
    dialect: _Dialect,
    decay_keyword: str | None,
    lr: Any,
) -> list[dict[str, Any]]:
    """Torch-style groups (``weight_decay``, ``lr_scale``) in a dialect's own terms."""
    out = []
    for group in groups:
        g = dict(group)
        if "weight_decay" in g and decay_keyword != "weight_decay":
            wd = g.pop("weight_decay")
            if decay_keyword is not None:
                g[decay_keyword] = wd
            elif wd:
                raise ValueError(f"{key} takes no weight decay, but a group asks for {wd}")
        scale = g.get("lr_scale") if dialect is _TORCH else g.pop("lr_scale", None)
        if scale is not None:
            if dialect.group_lr_is_scale:
                g[dialect.group_lr_key] = float(scale)
            else:
                g[dialect.group_lr_key] = _number(lr, key) * float(scale)
        out.append(g)
    return out


def _number(lr: Any, key: str) -> float:
    try:
        return float(lr)
    except (TypeError, ValueError):
        raise ValueError(
            f"layer_decay with {key} needs a number for lr, to scale per group; got {lr!r}"
        ) from None


def create_optimizer(
    model_or_params: torch.nn.Module | Iterable[Any],
    name: str | type,
    lr: Any = None,
    weight_decay: float | None = None,
    *,
    no_decay_1d: bool = True,
    no_weight_decay: Iterable[str] = (),
    layer_decay: float | None = None,
    layer_of: Callable[[str], int] | None = None,
    **kwargs: Any,
) -> torch.optim.Optimizer:
    """Build an optimizer of any dialect by name, with timm's weight-decay and layer-decay groups.

    Given a ``torch.nn.Module``, the trainable parameters are grouped by :func:`param_groups`:
    biases and parameters with fewer than 2 dimensions get no weight decay (switch off with
    ``no_decay_1d=False``), and with ``layer_decay = d`` layer :math:`i` of :math:`L` learns at
    :math:`\\text{lr}\\cdot d^{\\,L-1-i}`. The groups are then written in the dialect's terms
    (torch and MindSpore: a group ``lr`` of ``lr * scale``; Paddle: a group ``learning_rate``
    that is the scale). Given parameters or group dicts instead, they are passed on, with
    torch-style ``weight_decay``/``lr_scale`` group keys translated the same way.

    When the weight decay is 0 (given, or the class's default) and there is no layer decay,
    the class gets the plain list of trainable parameters: the result is the class called with
    the same arguments, defaults included.

    Args:
        model_or_params: a module, or what the class takes as parameters (tensors,
            ``(name, tensor)`` pairs for Paddle, group dicts).
        name: a name from :func:`list_optimizers` (``"adamw"``, ``"paddle.momentum"``,
            ``"mindspore.lamb"``; case-insensitive), or a polyoptim optimizer class.
        lr: the learning rate (``learning_rate`` for Paddle and MindSpore: a float, or one of
            the dialect's schedules); None keeps the class's default.
        weight_decay: the coefficient for decayed parameters (Paddle: an ``L2Decay``
            coefficient, decoupled for ``AdamW``; Paddle's ``Lamb``: ``lamb_weight_decay``);
            None keeps the class's default.
        no_decay_1d: no weight decay for biases and parameters with ``ndim <= 1`` (a module
            only; default True).
        no_weight_decay: more parameter names or shell-style patterns without weight decay (a
            module only).
        layer_decay: layer-wise learning-rate decay factor in (0, 1] (a module only).
        layer_of: ``name -> layer number`` for ``layer_decay`` (default: see
            :func:`param_groups`).
        **kwargs: the class's other arguments (``betas``, ``momentum``, ``grad_clip``, ...).

    Returns:
        The optimizer, an instance of :func:`get_optimizer_class` ``(name)``.

    Raises:
        ValueError: an unknown name, a weight decay for a class that takes none, a
            ``layer_decay`` outside (0, 1], or ``layer_decay`` with no number for the rate.

    Example:
        >>> import torch, polyoptim
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
        >>> opt = polyoptim.create_optimizer(model, "adamw", lr=1e-3, weight_decay=0.05)
        >>> [(len(g["params"]), g["weight_decay"]) for g in opt.param_groups]
        [(2, 0.0), (2, 0.05)]
        >>> opt = polyoptim.create_optimizer(model, "paddle.momentum", lr=0.1, layer_decay=0.5)
        >>> [g["learning_rate"] for g in opt.param_groups]   # Paddle: a scale of the base rate
        [0.5, 1.0]
        >>> opt = polyoptim.create_optimizer(model, "mindspore.lamb", lr=0.01, weight_decay=0.01)
        >>> type(opt).__module__, opt.param_groups[1]["weight_decay"]
        ('polyoptim.mindspore.lamb', 0.01)
    """
    key, cls, dialect = _lookup(name)
    decay_keyword = _decay_keyword(cls)
    if weight_decay is not None and decay_keyword is None and weight_decay != 0:
        raise ValueError(f"{key} takes no weight decay; got weight_decay={weight_decay}")
    effective_wd = weight_decay
    if effective_wd is None:
        default = _default(cls, decay_keyword) if decay_keyword else None
        effective_wd = 0.0 if default in (None, _NO_DEFAULT) else default
    if lr is None and layer_decay is not None and not dialect.group_lr_is_scale:
        lr = _default(cls, dialect.lr_keyword)
        if lr in (None, _NO_DEFAULT):
            raise ValueError(f"{key} has no default learning rate: pass lr= to use layer_decay")

    if isinstance(model_or_params, torch.nn.Module):
        module = model_or_params
        if not effective_wd and layer_decay is None:
            params: Any = [p for p in module.parameters() if p.requires_grad]
        else:
            params = param_groups(
                module,
                float(effective_wd),
                no_decay_1d=no_decay_1d,
                no_weight_decay=no_weight_decay,
                layer_decay=layer_decay,
                layer_of=layer_of,
            )
    else:
        if layer_decay is not None or layer_of is not None or tuple(no_weight_decay):
            raise ValueError(
                "layer_decay, layer_of and no_weight_decay need a torch.nn.Module "
                "(they read its parameter names)"
            )
        params = list(model_or_params)
    if params and all(isinstance(g, dict) for g in params):
        params = _as_dialect_groups(params, key, dialect, decay_keyword, lr)

    call = dict(kwargs)
    if lr is not None:
        call[dialect.lr_keyword] = lr
    if weight_decay is not None and decay_keyword is not None:
        call[decay_keyword] = weight_decay
    if dialect.params_keyword is None:
        return cls(params, **call)
    return cls(**{dialect.params_keyword: params}, **call)
