"""polyoptim's optimizers in timm's optimizer registry.

timm builds optimizers by *name* (``timm.optim.create_optimizer_v2(model, "adamw", ...)``),
so a class cannot be passed to it (``opt=polyoptim.AdamW`` fails inside timm with
``AttributeError: type object 'AdamW' has no attribute 'lower'``). :func:`register_timm` adds
polyoptim's names to timm's registry instead; timm's parameter groups (no weight decay for
biases and norm weights, layer decay) then apply as for timm's own optimizers.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import torch

from .factory import _lookup, create_optimizer, list_optimizers

__all__ = ["TIMM_PREFIX", "register_timm"]

TIMM_PREFIX = "polyoptim."


class _DialectBuilder:
    """Stands in timm's registry for a Paddle or MindSpore class: timm calls it as it calls a
    torch optimizer class, ``builder(param_groups, lr=..., weight_decay=..., **kwargs)``, and
    it builds the dialect's optimizer through :func:`polyoptim.create_optimizer`, which puts
    timm's torch-style groups (``weight_decay``, ``lr_scale``) in the dialect's terms."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cls = _lookup(name)[1]
        self.__doc__ = self.cls.__doc__

    def __call__(self, params: Any, **kwargs: Any) -> torch.optim.Optimizer:
        return create_optimizer(params, self.name, **kwargs)

    def __repr__(self) -> str:
        return f"polyoptim builder for {self.cls.__module__}.{self.cls.__qualname__}"


def _default_registry() -> Any:
    from timm.optim import _optim_factory

    return _optim_factory.default_registry


def register_timm(registry: Any = None, *, replace_torch: bool = False) -> list[str]:
    """Register every polyoptim optimizer in timm's optimizer registry.

    Each name of :func:`polyoptim.list_optimizers` is registered as ``"polyoptim." + name``
    (``"polyoptim.adamw"``, ``"polyoptim.paddle.momentum"``, ``"polyoptim.mindspore.lamb"``).
    timm splits names at ``_``, so the names use dots. The torch dialect's classes are
    registered as they are (they take torch's arguments); a Paddle or MindSpore class is
    registered through a builder that translates timm's ``lr``, ``weight_decay`` and groups
    into the dialect's arguments, as :func:`polyoptim.create_optimizer` does. As for timm's own
    entries, timm passes ``momentum=0.9`` to an optimizer that takes a ``momentum`` unless
    told otherwise, and drops ``eps``/``betas`` for one that does not take them.

    Args:
        registry: a ``timm.optim.OptimizerRegistry``; default: timm's global one (what
            ``create_optimizer_v2`` uses).
        replace_torch: also point timm's own entries whose class is a ``torch.optim`` class
            (``"adam"``, ``"adamw"``, ``"sgd"``, ``"momentum"``, ``"nadam"``, ``"radamw"``, ...)
            at polyoptim's class of the same name, keeping their defaults (``"sgd"``'s
            ``nesterov=True``, ``"radamw"``'s ``decoupled_weight_decay=True``).

    Returns:
        The names registered or replaced.

    Raises:
        ImportError: timm is not installed.

    Example (needs timm)::

        import polyoptim, timm.optim
        polyoptim.register_timm()
        opt = timm.optim.create_optimizer_v2(model, "polyoptim.adamw", lr=1e-3,
                                             weight_decay=0.05)      # polyoptim.AdamW
        opt = timm.optim.create_optimizer_v2(model, "polyoptim.paddle.momentum", lr=0.1)
    """
    from timm.optim import OptimInfo

    if registry is None:
        registry = _default_registry()
    done = []
    for name in list_optimizers():
        cls = _lookup(name)[1]
        signature = inspect.signature(cls).parameters
        opt_class: Any = cls if "." not in name else _DialectBuilder(name)
        summary = (inspect.getdoc(cls) or "").split("\n", 1)[0]
        registry.register(
            OptimInfo(
                name=TIMM_PREFIX + name,
                opt_class=opt_class,
                description=f"polyoptim: {summary}",
                has_eps="eps" in signature,
                has_momentum="momentum" in signature,
                has_betas="betas" in signature,
            )
        )
        done.append(TIMM_PREFIX + name)
    if replace_torch:
        done += _replace_torch_entries(registry)
    return done


def _replace_torch_entries(registry: Any) -> list[str]:
    """Point timm's entries for ``torch.optim`` classes at polyoptim's, aliases included."""
    import polyoptim

    entries = {name: registry.get_optimizer_info(name) for name in registry.list_optimizers()}
    replaced = []
    for name, info in entries.items():
        cls = info.opt_class
        if (
            name == info.name.lower()
            and isinstance(cls, type)
            and cls.__module__.startswith("torch.optim")
            and cls.__name__ in polyoptim.__all__
        ):
            registry.register(dataclasses.replace(info, opt_class=getattr(polyoptim, cls.__name__)))
            replaced.append(name)
    for name, info in entries.items():  # an alias holds the entry it was made from
        if name != info.name.lower() and info.name.lower() in replaced:
            registry.register_alias(name, info.name)
            replaced.append(name)
    return replaced
