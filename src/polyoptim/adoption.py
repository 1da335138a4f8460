"""Give torch tensors and modules another framework's attribute surface, in place.

The porting dialects (:func:`polyoptim.paddle.adopt`, :func:`polyoptim.mindspore.adopt`) need a
torch parameter to answer ``p.name`` with the name Paddle or MindSpore would give it. torch's
``Tensor.name`` is a read-only slot of the C base class, so no instance attribute can shadow it;
a *subclass* can. This module swaps an object's ``__class__`` for a cached subclass that puts a
dialect's mixin in front of the object's own class -- the technique ``torch.distributed.fsdp``'s
``fully_shard`` uses on modules. Nothing else about the object changes: same storage, same
``requires_grad``, same autograd identity, same ``state_dict`` keys.

The subclasses keep what they add through ``copy.deepcopy`` and pickling (``torch.save`` of a
parameter or of a whole module), and unpickle to the same adopted class.

Example:
    >>> import torch
    >>> class Named:
    ...     __slots__ = ()
    ...     @property
    ...     def name(self):
    ...         return self.__dict__.get("my_name")
    >>> p = torch.nn.Parameter(torch.ones(2))
    >>> p = adopt_object(p, Named, "Named")
    >>> p.__dict__["my_name"] = "w"; p.name, isinstance(p, torch.nn.Parameter)
    ('w', True)
"""

from __future__ import annotations

import copy
from typing import Any

import torch

__all__ = ["adopt_object", "adopted_base", "is_adopted"]

#: (mixin, original class) -> the adopted class
_CLASSES: dict[tuple[type, type], type] = {}
#: marks a class made here; its value is (mixin, original class)
_ORIGIN = "_polyoptim_adopted_from"


def _rebuild_object(mixin: type, label: str, base: type, payload: Any, state: dict) -> Any:
    """Unpickle an adopted object: rebuild the original, restore its ``__dict__``, re-adopt."""
    if isinstance(payload, tuple):  # a tensor: its original reducer and arguments
        fn, args = payload
        obj = fn(*args)
    else:
        obj = base.__new__(base)
    if isinstance(obj, torch.nn.Module):
        obj.__setstate__(state)
    else:
        obj.__dict__.update(state)
    return adopt_object(obj, mixin, label)


class _AdoptedTensorBase:
    """What every adopted tensor class adds: deepcopy and pickling keep the class and the
    instance attributes (torch's ``Parameter.__deepcopy__`` drops the attributes)."""

    __slots__ = ()

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        if id(self) in memo:
            return memo[id(self)]
        mixin, base = getattr(type(self), _ORIGIN)
        cls = type(self)
        self.__class__ = base
        try:
            result = copy.deepcopy(self, {})
        finally:
            self.__class__ = cls
        result.__dict__.update(copy.deepcopy(dict(self.__dict__), memo))
        result = adopt_object(result, mixin, cls.__name__)
        memo[id(self)] = result
        return result

    def __reduce_ex__(self, protocol: int) -> Any:
        mixin, base = getattr(type(self), _ORIGIN)
        state = dict(self.__dict__)
        cls = type(self)
        self.__class__ = base
        try:
            fn, args = base.__reduce_ex__(self, protocol)[:2]
        finally:
            self.__class__ = cls
        return (_rebuild_object, (mixin, cls.__name__, base, (fn, args), state))


class _AdoptedModuleBase:
    """What every adopted module class adds: pickling keeps the adopted class."""

    def __reduce_ex__(self, protocol: int) -> Any:
        mixin, base = getattr(type(self), _ORIGIN)
        return (
            _rebuild_object,
            (mixin, type(self).__name__, base, None, self.__getstate__()),  # type: ignore[attr-defined]
        )


def adopted_base(cls: type) -> type:
    """The original class of an adopted class (``cls`` itself otherwise)."""
    origin = getattr(cls, _ORIGIN, None)
    return origin[1] if origin is not None and _ORIGIN in cls.__dict__ else cls


def is_adopted(obj: Any, mixin: type) -> bool:
    """Whether ``obj``'s class puts ``mixin`` in front (``obj`` was adopted with it)."""
    return isinstance(obj, mixin)


def adopt_object(obj: Any, mixin: type, label: str) -> Any:
    """Swap ``obj``'s class for ``mixin`` + its class (cached per pair); returns ``obj``.

    Args:
        obj: a tensor (parameter or buffer) or a ``torch.nn.Module``.
        mixin: a class with ``__slots__ = ()`` holding the added properties and methods.
        label: prefix of the new class's name for tensors (``"Paddle"`` gives
            ``PaddleParameter``); modules keep their class name, so ``repr`` is unchanged.

    An object already adopted with ``mixin`` is returned as it is.
    """
    if isinstance(obj, mixin):
        return obj
    base = type(obj)
    key = (mixin, base)
    cls = _CLASSES.get(key)
    if cls is None:
        if isinstance(obj, torch.Tensor):
            name = label if label.endswith(base.__name__) else f"{label}{base.__name__}"
            extra: tuple[type, ...] = (_AdoptedTensorBase,)
            body: dict[str, Any] = {"__slots__": ()}
            if base is torch.Tensor:
                # a plain tensor subclass would return itself from every op; keep ops plain
                body["__torch_function__"] = torch._C._disabled_torch_function_impl
        else:
            name = base.__name__
            extra = (_AdoptedModuleBase,)
            body = {}
        body[_ORIGIN] = (mixin, base)
        body["__module__"] = mixin.__module__
        body["__qualname__"] = name
        cls = type(name, (mixin, *extra, base), body)
        _CLASSES[key] = cls
    obj.__class__ = cls
    return obj
