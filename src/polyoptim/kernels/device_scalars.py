"""Host scalars computed on the device: a rule's own ``prepare``, run once for all tensors.

A ``capturable`` step (or a fused step given ``GradScaler``'s ``found_inf`` tensor) must not
synchronise with the host: the step counters live on the device and the bias corrections that
depend on them must be computed there, so the step can be captured in a CUDA graph and replayed.
No second copy of each rule's host arithmetic is written for this: the rule's ``prepare`` runs
once with every host-state key bound to :class:`Lanes` -- a vector holding that key's value for
every tensor of the step, on the device -- so each ``step += 1``, ``beta1 ** step`` or
``lr / (1 - ...)`` is one device operation over all tensors at once.

Lanes follow the types of what they stand for: a host-state lane is a float32 tensor (torch's
``step``), arithmetic with Python numbers keeps its dtype as a 0-d tensor's would, and
:func:`~polyoptim.rules.base.as_float` (the rule's ``float(...)``) turns it into a float64 lane
that behaves as a Python float. A decision on a lane (``if rho_t > 5``) would need the value on
the host: it raises :class:`HostSync`, and the caller computes the scalars on the host instead.

Example:
    >>> import torch
    >>> from polyoptim.rules.adam import adam
    >>> states = [{"step": torch.tensor(float(s))} for s in (0, 4)]
    >>> hp = {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False}
    >>> sc, new = prepare_on_device(adam, hp, states, False)
    >>> [round(x, 6) for x in sc["step_size"].t.tolist()], new["step"].tolist()
    ([1.0, 0.244194], [1.0, 5.0])
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

import torch

from ..rules.base import Rule

__all__ = ["HostSync", "Lanes", "evaluate_lanes", "prepare_on_device"]


class HostSync(Exception):
    """The computation needs a device value on the host (a branch on it)."""


class Lanes:
    """One scalar per tensor of a step, as a 1-D tensor on the device.

    Args:
        t: the values.
        pyfloat: the lanes stand for Python floats (float64 arithmetic, and a Python scalar's
            rounding where they meet a tensor-like lane), not for 0-d tensors.
    """

    __slots__ = ("t", "pyfloat")

    def __init__(self, t: torch.Tensor, pyfloat: bool = False) -> None:
        self.t, self.pyfloat = t, pyfloat

    # -- conversions the rules use --------------------------------------------------------------
    def as_float(self) -> Lanes:
        """``float(x)``: the values as float64 lanes standing for Python floats."""
        return Lanes(self.t.to(torch.float64), True)

    def item(self) -> Lanes:
        return self

    def reshape(self, *shape: Any) -> Lanes:
        return self

    def __getitem__(self, i: Any) -> Lanes:
        return self

    def sqrt(self) -> Lanes:
        return Lanes(self.t.sqrt(), self.pyfloat)

    def __float__(self) -> float:
        raise HostSync("float() of a device value")

    def __bool__(self) -> bool:
        raise HostSync("a branch on a device value")

    # -- decisions per tensor, on the device ----------------------------------------------------
    def _compare(self, other: Any, fn: Callable[[Any, Any], torch.Tensor]) -> Lanes:
        """A comparison: 1.0/0.0 lanes, usable by :meth:`choose` (``if`` on them raises)."""
        a, b, _ = self._operand(other)
        if a is NotImplemented:
            return NotImplemented
        return Lanes(fn(a, b).to(torch.float64), True)

    def __lt__(self, o):
        return self._compare(o, torch.lt)

    def __le__(self, o):
        return self._compare(o, torch.le)

    def __gt__(self, o):
        return self._compare(o, torch.gt)

    def __ge__(self, o):
        return self._compare(o, torch.ge)

    def __eq__(self, o):  # type: ignore[override]
        return self._compare(o, torch.eq)

    def __ne__(self, o):  # type: ignore[override]
        return self._compare(o, torch.ne)

    __hash__ = None  # type: ignore[assignment]

    def choose(self, a: Any, b: Any) -> Lanes:
        """``a`` where these lanes are true, else ``b`` (``a if self else b`` per tensor)."""
        x = a if isinstance(a, Lanes) else Lanes(torch.full_like(self.t, float(a)), True)
        y = b if isinstance(b, Lanes) else Lanes(torch.full_like(self.t, float(b)), True)
        xt, yt, pyfloat = x._operand(y)
        return Lanes(torch.where(self.t != 0, xt, yt), pyfloat)

    def assign(self, value: Any) -> None:
        """``copy_`` of a new value into the host-state tensor these lanes stand for (rounded
        to its dtype)."""
        new = value.t if isinstance(value, Lanes) else torch.full_like(self.t, float(value))
        self.t = new.to(self.t.dtype)

    # -- arithmetic -----------------------------------------------------------------------------
    def _operand(self, other: Any) -> tuple[torch.Tensor, Any, bool]:
        """This lane's tensor, the other operand as torch should see it, and whether the result
        stands for Python floats."""
        if isinstance(other, Lanes):
            if self.pyfloat == other.pyfloat:
                return self.t, other.t, self.pyfloat
            # a Python float meeting a tensor is rounded to the tensor's type, as torch does
            if self.pyfloat:
                return self.t.to(other.t.dtype), other.t, False
            return self.t, other.t.to(self.t.dtype), False
        if isinstance(other, bool | numbers.Real):
            return self.t, float(other), self.pyfloat
        return NotImplemented, None, False  # type: ignore[return-value]

    def _binary(self, other: Any, fn: Callable[[Any, Any], torch.Tensor], swap: bool) -> Any:
        a, b, pyfloat = self._operand(other)
        if a is NotImplemented:
            return NotImplemented
        return Lanes(fn(b, a) if swap else fn(a, b), pyfloat)

    def __add__(self, o):
        return self._binary(o, torch.add, False)

    def __radd__(self, o):
        return self._binary(o, torch.add, True)

    def __sub__(self, o):
        return self._binary(o, torch.sub, False)

    def __rsub__(self, o):
        return self._binary(o, _rsub, True)

    def __mul__(self, o):
        return self._binary(o, torch.mul, False)

    def __rmul__(self, o):
        return self._binary(o, torch.mul, True)

    def __truediv__(self, o):
        return self._binary(o, torch.div, False)

    def __rtruediv__(self, o):
        a, b, pyfloat = self._operand(o)
        if a is NotImplemented:
            return NotImplemented
        if isinstance(b, torch.Tensor) or pyfloat:
            return Lanes(
                torch.full_like(a, b) / a if not isinstance(b, torch.Tensor) else b / a, pyfloat
            )
        return Lanes(a.reciprocal() * b, False)  # torch's ``number / tensor``

    def __pow__(self, o):
        return self._binary(o, torch.pow, False)

    def __rpow__(self, o):
        return self._binary(o, _rpow, True)

    def __neg__(self):
        return Lanes(-self.t, self.pyfloat)

    def __iadd__(self, o):
        """In place, as ``step += 1`` on a tensor (keeps the dtype)."""
        self.t = self.t.add(o.t if isinstance(o, Lanes) else o).to(self.t.dtype)
        return self

    def __imul__(self, o):
        """In place, as ``mu_product *= mu`` on a float32 tensor: ``mu`` (a Python float) is
        rounded to float32 first."""
        other = o.t.to(self.t.dtype) if isinstance(o, Lanes) else o
        self.t = self.t.mul(other).to(self.t.dtype)
        return self


def _rsub(b: Any, a: torch.Tensor) -> torch.Tensor:
    return torch.sub(b, a) if isinstance(b, torch.Tensor) else torch.rsub(a, b)


def _rpow(b: Any, a: torch.Tensor) -> torch.Tensor:
    return torch.pow(b, a)


class _State(dict):
    """A state whose host-state keys are lanes (buffers are not read by ``prepare``)."""


def prepare_on_device(
    rule: Rule,
    hp: Mapping[str, Any],
    states: Sequence[MutableMapping[str, Any]],
    fresh: bool,
    found_inf: torch.Tensor | None = None,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """Run ``rule.prepare`` once for every state, on the device.

    Args:
        rule: the element-wise rule.
        hp: the group's hyperparameters for this step.
        states: each tensor's state; each host-state key must hold a one-element tensor, all
            of one dtype and device.
        fresh: whether the states were created this step (the same for all).
        found_inf: ``GradScaler``'s flag: where it is not zero, the host state is left as it
            was (the step is skipped on the device).

    Returns:
        The scalars (Python values shared by all tensors, or float64 :class:`Lanes` with one
        value per tensor) and each host-state key's new values (1-D tensors), written back into
        the states already -- or None when ``prepare`` needs a device value on the host (then
        nothing was written).
    """
    keys = list(rule.host_state)
    old: dict[str, torch.Tensor] = {}
    for k in keys:
        values = [st.get(k) for st in states]
        if not all(isinstance(v, torch.Tensor) and v.numel() == 1 for v in values):
            return None
        first = values[0]
        if any(v.dtype != first.dtype or v.device != first.device for v in values):
            return None
        old[k] = torch.stack([v.reshape(()) for v in values])
    proxy = _State({k: Lanes(v.clone()) for k, v in old.items()})
    try:
        sc = rule.prepare(hp, proxy, fresh)
    except (HostSync, RuntimeError, TypeError, AttributeError):
        # a host branch; lanes on different devices; a tensor method lanes lack (``mul_``)
        return None  # (nothing was written: the lanes are copies)
    new: dict[str, torch.Tensor] = {}
    for k in keys:
        lane = proxy[k]
        if not isinstance(lane, Lanes):
            return None
        value = lane.t.to(old[k].dtype)
        if found_inf is not None:
            value = torch.where(found_inf.to(value.device) != 0, old[k], value)
        new[k] = value
        dst = [st[k] for st in states]
        torch._foreach_copy_(dst, [x.view(d.shape) for x, d in zip(value.unbind(0), dst)])
    return {k: (v.as_float() if isinstance(v, Lanes) else v) for k, v in sc.items()}, new


_FN: dict[str, Callable[..., torch.Tensor]] = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
    "pow": torch.pow,
    "neg": torch.neg,
    "sqrt": torch.sqrt,
    "abs": torch.abs,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "clamp": lambda x, lo, hi: torch.minimum(torch.maximum(x, lo), hi),
}


def evaluate_lanes(node: Any, scalars: Mapping[str, Any], n: int, device: torch.device) -> Any:
    """The float64 values (one per tensor) of a traced scalar expression, for scalars that may
    be :class:`Lanes`: Python's float arithmetic, done on the device."""
    if node.op == "const":
        return torch.full((n,), node.args[0], dtype=torch.float64, device=device)
    if node.op == "scalar":
        v = scalars[node.args[0]]
        if isinstance(v, Lanes):
            return v.t.to(torch.float64)
        return torch.full((n,), float(v), dtype=torch.float64, device=device)
    args = [evaluate_lanes(a, scalars, n, device) for a in node.args]
    return _FN[node.op](*args)
