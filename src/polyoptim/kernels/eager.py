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
from itertools import repeat
from typing import Any

import torch

from ..rules.base import Rule
from .lean import Program, program_for, run_program_foreach
from .ops import ListOps, ScalarList, TensorList, TensorOps

#: run the lean programs where they apply (``POLYOPTIM_LEAN=0``: always the reference way)
LEAN = os.environ.get("POLYOPTIM_LEAN", "1") != "0"

_DTYPE = operator.attrgetter("dtype")
_LAYOUT = operator.attrgetter("layout")
_STRIDED = torch.strided


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
    the last scalars, their program and its host values are remembered."""

    __slots__ = ("rule", "active", "last", "entry")

    def __init__(self, rule: Rule, active: tuple[bool, ...]) -> None:
        self.rule, self.active = rule, active
        self.last: Any = None
        self.entry: tuple[Program, tuple] | None = None

    def __call__(self, sc: Mapping[str, Any]) -> tuple[Program, tuple] | None:
        """The program for ``sc`` and its host values, or None (the reference way)."""
        if sc is self.last:
            return self.entry
        if self.entry is not None:
            try:
                same = sc == self.last
            except (RuntimeError, TypeError, ValueError):  # tensors among the scalars
                same = False
            if same is True:
                self.last = sc
                return self.entry
        prog = program_for(self.rule, self.active, sc)
        self.last = sc
        self.entry = None if prog is None else (prog, prog.scalars_fn(sc))  # type: ignore[misc]
        return self.entry


def _same_kind(p: torch.Tensor, g: torch.Tensor, bufs: Sequence[torch.Tensor | None]) -> bool:
    """One dtype, dense gradient: every intermediate value has the arrays' dtype, so computing
    it in place rounds it as the reference kernel does. (Mixed devices fail either way.)"""
    dt = p.dtype
    if g.dtype != dt or g.layout != _STRIDED:
        return False
    return not any(b is not None and b.dtype != dt for b in bufs)


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
    names = [b.name if on else None for b, on in zip(rule.buffers, active)]
    if not params:
        return
    cols = [
        list(map(operator.itemgetter(nm), states)) if nm is not None else repeat(None)
        for nm in names
    ]
    if not _lean_wanted(hp):
        for p, g, sc, *bufs in zip(params, grads, scalars, *cols):
            _single_reference(rule, _real(p), _real(g), list(map(_real, bufs)), sc)
        return
    programs = _Programs(rule, active)
    # the usual group: one dtype everywhere (checked column-wise, in C), else tensor by tensor
    uniform = _uniform_bucket([params, grads, *(c for c in cols if isinstance(c, list))])
    cplx = uniform and params[0].is_complex()
    last: Any = None
    run: Any = None
    values: tuple = ()
    for p, g, sc, *bufs in zip(params, grads, scalars, *cols):
        if sc is not last:  # a new row of host scalars (tensors of a group share one)
            last, entry = sc, programs(sc)
            run, values = (None, ()) if entry is None else (entry[0].single, entry[1])
        if run is not None and (uniform or _same_kind(p, g, bufs)):
            if cplx or (not uniform and p.is_complex()):
                p, g, bufs = _real(p), _real(g), list(map(_real, bufs))
            run(p, g, *bufs, *values)
        else:
            _single_reference(rule, _real(p), _real(g), list(map(_real, bufs)), sc)


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
    """Every column has the parameters' dtype and a dense layout (see :func:`_same_kind`)."""
    dt, n = cols[0][0].dtype, len(cols[0])
    for col in cols:
        if list(map(_DTYPE, col)).count(dt) != n or list(map(_LAYOUT, col)).count(_STRIDED) != n:
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
            rest = _foreach_lean(rule, active, names, programs, params, grads, states, scalars, idx)
        by_shape: dict[tuple, list[int]] = defaultdict(list)
        for i in rest:
            by_shape[_host_shape(scalars[i])].append(i)
        for sub in by_shape.values():
            _foreach_reference(rule, active, params, grads, states, scalars, sub)


def _foreach_lean(
    rule: Rule,
    active: Sequence[bool],
    names: Sequence[str],
    programs: _Programs,
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[Mapping[str, Any]],
    scalars: Sequence[Mapping[str, Any]],
    idx: list[int],
) -> list[int]:
    """Run the bucket's lean programs (one per group of tensors sharing one); returns the
    indices left to the reference way."""
    n = len(idx)
    whole = n == len(params)
    ps = list(params) if whole else [params[i] for i in idx]
    gs = list(grads) if whole else [grads[i] for i in idx]
    sts = states if whole else [states[i] for i in idx]
    bufs = [list(map(operator.itemgetter(nm), sts)) for nm in names]
    if not _uniform_bucket([ps, gs, *bufs]):
        return idx
    scs = list(scalars) if whole else [scalars[i] for i in idx]
    try:
        one = scs.count(scs[0]) == n
    except (RuntimeError, TypeError, ValueError):  # tensors among the scalars
        return idx
    if one:  # the usual step: every tensor at the same step count
        entry = programs(scs[0])
        parts = [] if entry is None else [(entry[0], range(n))]
        rest = [] if entry is not None else list(range(n))
    else:
        by_prog: dict[int, tuple[Program, list[int]]] = {}
        rest = []
        for k, sc in enumerate(scs):
            entry = programs(sc)
            if entry is None:
                rest.append(k)
            else:
                by_prog.setdefault(id(entry[0]), (entry[0], []))[1].append(k)
        parts = list(by_prog.values())
    cplx = ps[0].is_complex()
    slots = ["p", "g", *(f"b{j}" for j, on in enumerate(active) if on)]
    for prog, sub in parts:
        whole_part = len(sub) == n
        arrays = {
            slot: col if whole_part else [col[k] for k in sub]
            for slot, col in zip(slots, [ps, gs, *bufs])
        }
        if cplx:
            arrays = {k: list(map(torch.view_as_real, v)) for k, v in arrays.items()}
        run_program_foreach(prog, arrays, scs if whole_part else [scs[k] for k in sub])
    return [idx[k] for k in rest]


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
