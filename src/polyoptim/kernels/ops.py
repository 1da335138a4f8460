"""The ``ops`` namespaces a rule's update is written against.

A rule uses Python's arithmetic operators plus these functions. ``TensorOps`` runs them on whole
tensors (the eager kernel), ``ListOps`` on :class:`TensorList` (the foreach kernel).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch


class TensorOps:
    """Element-wise functions over whole tensors (torch ops; any device and dtype)."""

    sqrt = staticmethod(torch.sqrt)
    abs = staticmethod(torch.abs)
    sign = staticmethod(torch.sign)

    @staticmethod
    def lerp(a: torch.Tensor, b: torch.Tensor, w: Any) -> torch.Tensor:
        """``a + w (b - a)``, rounded as ``torch.lerp``."""
        return torch.lerp(a, b, w)

    @staticmethod
    def add(x: torch.Tensor, y: Any, alpha: Any) -> torch.Tensor:
        """``x + alpha·y``, rounded as torch's ``add(..., alpha=)`` (a fused multiply-add)."""
        return torch.add(x, y, alpha=alpha)

    @staticmethod
    def addcmul(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, value: Any) -> torch.Tensor:
        """``x + value·a·b`` in one rounding where torch fuses it (its ``addcmul``)."""
        return torch.addcmul(x, a, b, value=value)

    @staticmethod
    def addcdiv(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, value: Any) -> torch.Tensor:
        """``x + value·(a/b)``, rounded as torch's ``addcdiv``."""
        return torch.addcdiv(x, a, b, value=value)

    @staticmethod
    def maximum(a: torch.Tensor, b: Any) -> torch.Tensor:
        if isinstance(b, torch.Tensor):
            return torch.maximum(a, b)
        return torch.clamp_min(a, b)

    @staticmethod
    def minimum(a: torch.Tensor, b: Any) -> torch.Tensor:
        if isinstance(b, torch.Tensor):
            return torch.minimum(a, b)
        return torch.clamp_max(a, b)

    @staticmethod
    def clamp(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        return torch.clamp(x, lo, hi)

    @staticmethod
    def where(cond: torch.Tensor, a: Any, b: Any) -> torch.Tensor:
        return torch.where(cond, a, b)

    @staticmethod
    def select(flag: bool, a: Any, b: Any) -> Any:
        """Pick by a per-tensor host flag (not per element)."""
        return a if flag else b


class ScalarList(list):
    """One host scalar per tensor of a bucket; arithmetic is element-wise."""

    def _map(self, other: Any, fn: Callable[[Any, Any], Any]) -> ScalarList:
        if isinstance(other, ScalarList):
            return ScalarList(fn(a, b) for a, b in zip(self, other))
        return ScalarList(fn(a, other) for a in self)

    def __add__(self, o):  # type: ignore[override]
        return self._map(o, lambda a, b: a + b)

    def __radd__(self, o):
        return self._map(o, lambda a, b: b + a)

    def __sub__(self, o):
        return self._map(o, lambda a, b: a - b)

    def __rsub__(self, o):
        return self._map(o, lambda a, b: b - a)

    def __mul__(self, o):  # type: ignore[override]
        return self._map(o, lambda a, b: a * b)

    def __rmul__(self, o):  # type: ignore[override]
        return self._map(o, lambda a, b: b * a)

    def __truediv__(self, o):
        return self._map(o, lambda a, b: a / b)

    def __rtruediv__(self, o):
        return self._map(o, lambda a, b: b / a)

    def __neg__(self):
        return ScalarList(-a for a in self)

    def __pow__(self, o):
        return self._map(o, lambda a, b: a**b)


def _is_scalar(x: Any) -> bool:
    return isinstance(x, numbers.Number) or (isinstance(x, torch.Tensor) and x.dim() == 0)


class TensorList:
    """A bucket of same-device, same-dtype tensors; operators map to ``torch._foreach_*``."""

    __slots__ = ("ts",)

    def __init__(self, ts: Sequence[torch.Tensor]):
        self.ts = list(ts)

    def _binary(self, other: Any, foreach: Callable, single: Callable) -> TensorList:
        if isinstance(other, TensorList):
            return TensorList(foreach(self.ts, other.ts))
        if isinstance(other, ScalarList):
            return TensorList(foreach(self.ts, list(other)))
        if _is_scalar(other):
            return TensorList(foreach(self.ts, other))
        return TensorList([single(t, other) for t in self.ts])

    def _each(self, other: Any, fn: Callable) -> TensorList:
        if isinstance(other, TensorList):
            return TensorList([fn(a, b) for a, b in zip(self.ts, other.ts)])
        if isinstance(other, ScalarList):
            return TensorList([fn(a, b) for a, b in zip(self.ts, other)])
        return TensorList([fn(a, other) for a in self.ts])

    def __add__(self, o):
        return self._binary(o, torch._foreach_add, torch.add)

    __radd__ = __add__

    def __sub__(self, o):
        return self._binary(o, torch._foreach_sub, torch.sub)

    def __rsub__(self, o):
        return self._each(o, lambda a, b: b - a)

    def __mul__(self, o):
        return self._binary(o, torch._foreach_mul, torch.mul)

    __rmul__ = __mul__

    def __truediv__(self, o):
        return self._binary(o, torch._foreach_div, torch.div)

    def __rtruediv__(self, o):
        return self._each(o, lambda a, b: b / a)

    def __neg__(self):
        return TensorList(torch._foreach_neg(self.ts))

    def __gt__(self, o):
        return self._each(o, lambda a, b: a > b)

    def __lt__(self, o):
        return self._each(o, lambda a, b: a < b)

    def __ge__(self, o):
        return self._each(o, lambda a, b: a >= b)

    def __le__(self, o):
        return self._each(o, lambda a, b: a <= b)

    def __pow__(self, o):
        return self._each(o, lambda a, b: a**b)


def _zip_apply(fn: Callable, *args: Any) -> TensorList:
    """Apply a per-tensor function across lists, scalar lists and broadcast scalars."""
    n = next(
        len(a.ts) if isinstance(a, TensorList) else len(a)
        for a in args
        if isinstance(a, (TensorList, ScalarList))
    )
    cols = [
        a.ts if isinstance(a, TensorList) else (a if isinstance(a, ScalarList) else [a] * n)
        for a in args
    ]
    return TensorList([fn(*row) for row in zip(*cols)])


class ListOps:
    """Element-wise functions over :class:`TensorList` buckets (the foreach kernel)."""

    @staticmethod
    def sqrt(x: TensorList) -> TensorList:
        return TensorList(torch._foreach_sqrt(x.ts))

    @staticmethod
    def abs(x: TensorList) -> TensorList:
        return TensorList(torch._foreach_abs(x.ts))

    @staticmethod
    def sign(x: TensorList) -> TensorList:
        return TensorList(torch._foreach_sign(x.ts))

    @staticmethod
    def lerp(a: TensorList, b: TensorList, w: Any) -> TensorList:
        if _is_scalar(w) and not isinstance(w, torch.Tensor):
            return TensorList(torch._foreach_lerp(a.ts, b.ts, w))
        return _zip_apply(torch.lerp, a, b, w)

    @staticmethod
    def add(x: TensorList, y: TensorList, alpha: Any) -> TensorList:
        if _is_scalar(alpha) and not isinstance(alpha, torch.Tensor):
            return TensorList(torch._foreach_add(x.ts, y.ts, alpha=alpha))
        return _zip_apply(lambda x_, y_, a: torch.add(x_, y_, alpha=a), x, y, alpha)

    @staticmethod
    def addcmul(x: TensorList, a: TensorList, b: TensorList, value: Any) -> TensorList:
        if _is_scalar(value) and not isinstance(value, torch.Tensor):
            return TensorList(torch._foreach_addcmul(x.ts, a.ts, b.ts, value=value))
        return _zip_apply(lambda x_, a_, b_, v: torch.addcmul(x_, a_, b_, value=v), x, a, b, value)

    @staticmethod
    def addcdiv(x: TensorList, a: TensorList, b: TensorList, value: Any) -> TensorList:
        if _is_scalar(value) and not isinstance(value, torch.Tensor):
            return TensorList(torch._foreach_addcdiv(x.ts, a.ts, b.ts, value=value))
        return _zip_apply(lambda x_, a_, b_, v: torch.addcdiv(x_, a_, b_, value=v), x, a, b, value)

    @staticmethod
    def maximum(a: TensorList, b: Any) -> TensorList:
        if isinstance(b, TensorList):
            return TensorList(torch._foreach_maximum(a.ts, b.ts))
        return _zip_apply(TensorOps.maximum, a, b)

    @staticmethod
    def minimum(a: TensorList, b: Any) -> TensorList:
        if isinstance(b, TensorList):
            return TensorList(torch._foreach_minimum(a.ts, b.ts))
        return _zip_apply(TensorOps.minimum, a, b)

    @staticmethod
    def clamp(x: TensorList, lo: Any, hi: Any) -> TensorList:
        return _zip_apply(torch.clamp, x, lo, hi)

    @staticmethod
    def where(cond: TensorList, a: Any, b: Any) -> TensorList:
        return _zip_apply(torch.where, cond, a, b)

    @staticmethod
    def select(flag: Any, a: Any, b: Any) -> Any:
        if not isinstance(flag, ScalarList):
            return a if flag else b
        return _zip_apply(lambda f, x, y: x if f else y, flag, a, b)
