"""The reference kernels: a rule run with torch ops, one tensor at a time or one bucket at a time.

Both accept any device and dtype. Complex parameters are updated through their real views, as
torch does, so a rule only ever sees real numbers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..rules.base import Rule
from .ops import ListOps, ScalarList, TensorList, TensorOps


def _real(t: torch.Tensor | None) -> torch.Tensor | None:
    if t is not None and torch.is_complex(t):
        return torch.view_as_real(t)
    return t


def _buffers(rule: Rule, hp: Mapping[str, Any], state: Mapping[str, Any]) -> list:
    return [_real(state[b.name]) if b.when(hp) else None for b in rule.buffers]


def run_single(
    rule: Rule,
    hp: Mapping[str, Any],
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[Mapping[str, Any]],
    scalars: Sequence[Mapping[str, Any]],
) -> None:
    """Apply ``rule`` to each tensor in turn (torch's for-loop path)."""
    for p, g, st, sc in zip(params, grads, states, scalars):
        pv, bufs = _real(p), _buffers(rule, hp, st)
        out = rule.update(TensorOps, pv, _real(g), *bufs, **sc)
        pv.copy_(out[0])
        for buf, new in zip(bufs, out[1:]):
            if buf is not None:
                buf.copy_(new)


def _column(values: list[Any]) -> Any:
    """One value for the whole bucket when all agree, else one per tensor."""
    first = values[0]
    if isinstance(first, torch.Tensor) or any(v != first for v in values[1:]):
        return ScalarList(values)
    return first


def run_foreach(
    rule: Rule,
    hp: Mapping[str, Any],
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[Mapping[str, Any]],
    scalars: Sequence[Mapping[str, Any]],
) -> None:
    """Apply ``rule`` to buckets of same-device, same-dtype tensors with ``torch._foreach_*``."""
    buckets: dict[tuple, list[int]] = defaultdict(list)
    for i, p in enumerate(params):
        buckets[(p.device, p.dtype)].append(i)
    active = [b.when(hp) for b in rule.buffers]
    for idx in buckets.values():
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
