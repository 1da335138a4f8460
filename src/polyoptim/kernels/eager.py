"""The non-fused kernels: a rule run with torch ops, one tensor at a time or one bucket at a time.

Both accept any device and dtype. Complex parameters are updated through their real views, as
torch does, so a rule only ever sees real numbers.

Each first tries the rule's lean program (:mod:`polyoptim.kernels.lean`: the update traced once
into in-place torch ops writing straight into the state buffers and the parameter, bit-identical
with evaluating the rule). What the program cannot express -- autograd through the step
(``differentiable=True``), scalars that are tensors, arrays of mixed dtypes, a rule that does not
trace -- runs the reference way: ``rule.update`` evaluated on tensors (``TensorOps``) or buckets
(``ListOps``), its new values copied back.
"""

from __future__ import annotations

import operator
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..rules.base import Rule
from .lean import Program, program_for, run_program_foreach
from .ops import ListOps, ScalarList, TensorList, TensorOps

#: run the lean programs where they apply (``POLYOPTIM_LEAN=0``: always the reference way)
LEAN = os.environ.get("POLYOPTIM_LEAN", "1") != "0"

_DTYPE = operator.attrgetter("dtype")
_DEVICE = operator.attrgetter("device")
_LAYOUT = operator.attrgetter("layout")


def _real(t: torch.Tensor | None) -> torch.Tensor | None:
    if t is not None and torch.is_complex(t):
        return torch.view_as_real(t)
    return t


def _buffers(rule: Rule, hp: Mapping[str, Any], state: Mapping[str, Any]) -> list:
    return [_real(state[b.name]) if b.when(hp) else None for b in rule.buffers]


def _lean_wanted(hp: Mapping[str, Any]) -> bool:
    """In-place programs break autograd through the step: not with ``differentiable=True``."""
    return LEAN and not hp.get("differentiable") and not torch.is_grad_enabled()


class _Programs:
    """Programs for a run of tensors whose scalars mostly repeat (one step count per group):
    the last scalars and their program are remembered."""

    __slots__ = ("rule", "active", "last", "prog")

    def __init__(self, rule: Rule, active: tuple[bool, ...]) -> None:
        self.rule, self.active, self.last, self.prog = rule, active, None, None

    def __call__(self, sc: Mapping[str, Any]) -> Program | None:
        if self.prog is not None:
            try:
                same = sc == self.last
            except (RuntimeError, TypeError, ValueError):  # tensors among the scalars
                same = False
            if same is True:
                return self.prog
        prog = program_for(self.rule, self.active, sc)
        self.last, self.prog = sc, prog
        return prog


def _same_kind(arrays: Sequence[torch.Tensor | None]) -> bool:
    """One dtype and device, dense layout: every intermediate value has the arrays' dtype, so
    computing it in place rounds it as the reference kernel does."""
    ts = [t for t in arrays if t is not None]
    dt, dev = ts[0].dtype, ts[0].device
    return all(t.dtype == dt and t.device == dev and t.layout == torch.strided for t in ts)


def run_single(
    rule: Rule,
    hp: Mapping[str, Any],
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[Mapping[str, Any]],
    scalars: Sequence[Mapping[str, Any]],
) -> None:
    """Apply ``rule`` to each tensor in turn (torch's for-loop path)."""
    active = tuple(b.when(hp) for b in rule.buffers)
    programs = _Programs(rule, active) if _lean_wanted(hp) else None
    for p, g, st, sc in zip(params, grads, states, scalars):
        pv, gv, bufs = _real(p), _real(g), _buffers(rule, hp, st)
        prog = programs(sc) if programs is not None else None
        if prog is not None and _same_kind([pv, gv, *bufs]):
            prog.single(pv, gv, *bufs, sc)  # type: ignore[misc]
            continue
        _single_reference(rule, pv, gv, bufs, sc)


def _single_reference(
    rule: Rule,
    p: torch.Tensor,
    g: torch.Tensor,
    bufs: Sequence[torch.Tensor | None],
    sc: Mapping[str, Any],
) -> None:
    """``rule.update`` on one tensor (real views), the new values copied back."""
    out = rule.update(TensorOps, p, g, *bufs, **sc)
    p.copy_(out[0])
    for buf, new in zip(bufs, out[1:]):
        if buf is not None:
            buf.copy_(new)


def _column(values: list[Any]) -> Any:
    """One value for the whole bucket when all agree, else one per tensor."""
    first = values[0]
    if isinstance(first, torch.Tensor) or any(v != first for v in values[1:]):
        return ScalarList(values)
    return first


def _host_shape(sc: Mapping[str, Any]) -> tuple:
    """What a rule's update branches on in Python: which scalars are None, the bool flags."""
    return tuple(v if v is None or isinstance(v, bool) else 0 for v in sc.values())


def _uniform_bucket(cols: Sequence[Sequence[torch.Tensor]]) -> bool:
    """Every column of the bucket has the parameters' dtype and device and a dense layout."""
    dt, dev, n = cols[0][0].dtype, cols[0][0].device, len(cols[0])
    for col in cols:
        if (
            list(map(_DTYPE, col)).count(dt) != n
            or list(map(_DEVICE, col)).count(dev) != n
            or list(map(_LAYOUT, col)).count(torch.strided) != n
        ):
            return False
    return True


def run_foreach(
    rule: Rule,
    hp: Mapping[str, Any],
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[Mapping[str, Any]],
    scalars: Sequence[Mapping[str, Any]],
) -> None:
    """Apply ``rule`` to buckets of same-device, same-dtype tensors with ``torch._foreach_*``.

    Tensors of a bucket that take different branches of the update (RAdam's rectification
    off for some, on for others; SGD's first momentum step for new parameters only) run as
    separate sub-buckets."""
    buckets: dict[tuple, list[int]] = defaultdict(list)
    for i, p in enumerate(params):
        buckets[(p.device, p.dtype)].append(i)
    active = [b.when(hp) for b in rule.buffers]
    names = [b.name for b, on in zip(rule.buffers, active) if on]
    lean = _lean_wanted(hp)
    programs = _Programs(rule, tuple(active))
    for idx in buckets.values():
        rest = idx
        if lean:
            rest = []
            by_prog: dict[int, tuple[Program, list[int]]] = {}
            cols = [[params[i] for i in idx], [grads[i] for i in idx]]
            cols += [[states[i][nm] for i in idx] for nm in names]
            if _uniform_bucket(cols):
                for i in idx:
                    prog = programs(scalars[i])
                    if prog is None:
                        rest.append(i)
                    else:
                        by_prog.setdefault(id(prog), (prog, []))[1].append(i)
            else:
                rest = idx
            for prog, sub in by_prog.values():
                arrays = {"p": [_real(params[i]) for i in sub], "g": [_real(grads[i]) for i in sub]}
                for j, on in enumerate(active):
                    if on:
                        arrays[f"b{j}"] = [_real(states[i][rule.buffers[j].name]) for i in sub]
                run_program_foreach(prog, arrays, [scalars[i] for i in sub])
        by_shape: dict[tuple, list[int]] = defaultdict(list)
        for i in rest:
            by_shape[_host_shape(scalars[i])].append(i)
        for sub in by_shape.values():
            _foreach_reference(rule, active, params, grads, states, scalars, sub)


def _foreach_reference(
    rule: Rule,
    active: Sequence[bool],
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[Mapping[str, Any]],
    scalars: Sequence[Mapping[str, Any]],
    idx: Sequence[int],
) -> None:
    """``rule.update`` on :class:`TensorList` buckets, the new values copied back."""
    ps = TensorList([_real(params[i]) for i in idx])
    gs = TensorList([_real(grads[i]) for i in idx])
    bufs = [
        TensorList([_real(states[i][b.name]) for i in idx]) if on else None
        for b, on in zip(rule.buffers, active)
    ]
    sc = {k: _column([scalars[i][k] for i in idx]) for k in scalars[idx[0]]}
    out = rule.update(ListOps, ps, gs, *bufs, **sc)
    torch._foreach_copy_(ps.ts, out[0].ts)
    for buf, new in zip(bufs, out[1:]):
        if buf is not None:
            torch._foreach_copy_(buf.ts, new.ts)
