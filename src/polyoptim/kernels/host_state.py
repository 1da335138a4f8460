"""Host state of the fused step: one ``rule.prepare`` call per distinct host state.

A rule's host state (``step``, ``mu_product``, ``beta1_pow_acc``, ...) lives in every
parameter's state, one small tensor per parameter and key, as torch keeps it. In a training loop
all of them hold the same value, so the fused step prepares the host scalars once, for a
representative, and copies its new host state to the others.

Reading and writing thousands of tiny tensors is most of the host time of a step over many
parameters (each is an ``item()`` or a copy of its own, on memory the step's pass over the
parameters has just evicted from the caches). Two things keep it down:

* **recognition** -- the last step remembers which tensors it wrote and their version counters
  (which every in-place write moves). When every state still holds exactly those tensors,
  untouched, their values are known to be the representative's: nothing is read.
* **packing** -- host-state tensors created by the fused step itself (a first step) are views
  into one shared ``(n, ...)`` tensor per key, so that writing them all is one copy and their
  shared version counter is one read. (Only new tensors are packed: a tensor that came from
  elsewhere, a loaded checkpoint say, may be referenced by its owner and must stay itself.)

This relies on the rule convention that ``prepare`` reads only the group's hyperparameters,
``fresh`` and the rule's ``host_state``.

Example:
    >>> import torch
    >>> from polyoptim.rules.adam import adam
    >>> from polyoptim.kernels.host_state import prepare_all
    >>> hp = {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
    ...       "amsgrad": False, "maximize": False}
    >>> states = [{"step": torch.tensor(0.0)} for _ in range(3)]
    >>> rows, srow = prepare_all(adam, hp, states, [True] * 3, cache={})
    >>> srow, [float(st["step"]) for st in states]
    ([0, 0, 0], [1.0, 1.0, 1.0])
    >>> states[2]["step"]._base is states[0]["step"]._base   # packed: one tensor behind them
    True
"""

from __future__ import annotations

import itertools
import operator
from collections import defaultdict
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import torch

from ..rules.base import Rule

__all__ = ["prepare_all"]

_T = torch.Tensor
_get = operator.methodcaller  # ``map(_get("get", key), states)``: each state's value, in C
_SHAPE = operator.attrgetter("shape")
_VERSION = operator.attrgetter("_version")
#: host-state tensors up to this many elements are packed (they are scalars, or Paddle's [1])
_PACK_NUMEL = 16


def prepare_all(
    rule: Rule,
    hp: Mapping[str, Any],
    states: Sequence[MutableMapping[str, Any]],
    fresh: list[bool],
    cache: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], list[int]]:
    """Host scalars for every tensor, as distinct rows and each tensor's row index.

    Args:
        rule: the element-wise rule.
        hp: the group's hyperparameters for this step.
        states: each parameter's state.
        fresh: per state, whether it was created this step.
        cache: a dict the caller keeps between steps for these states; with it, a step skips
            reading the host state the last step wrote, and packs the host state of new states.

    Returns:
        The distinct rows of host scalars (``rule.prepare``'s results), and per state the index
        of its row. Tensors with equal host state (and the same ``fresh``) share one row.
    """
    n = len(states)
    if n <= 1:
        return [rule.prepare(hp, st, f) for st, f in zip(states, fresh)], [0] * n
    keys = list(rule.host_state)
    if keys and cache is not None and not any(fresh) and _kept(states, keys, cache):
        rows = [rule.prepare(hp, states[0], False)]
        _copy_from_first(cache["host_state"])  # to the tensors it wrote last step: no lookups
        return rows, [0] * n
    # a rule without host state (SGD) differs only by ``fresh``
    sig = list(zip(fresh, *(_host_values(states, k) for k in keys))) if keys else fresh
    try:
        if sig.count(sig[0]) == n:
            groups: list[Sequence[int]] = [range(n)]
        else:
            by: dict[Any, list[int]] = defaultdict(list)
            for i, key in enumerate(sig):
                by[key].append(i)
            groups = list(by.values())
    except TypeError:  # an unhashable host value: one call per tensor
        groups = [[i] for i in range(n)]
    if len(groups) == 1:  # the usual step: one row, read by every tensor
        rows = [rule.prepare(hp, states[0], fresh[0])]
        if keys:
            _broadcast(states, keys, cache, pack=fresh[0] and cache is not None)
        return rows, [0] * n
    rows, srow = [], [0] * n
    for r, idx in enumerate(groups):
        rows.append(rule.prepare(hp, states[idx[0]], fresh[idx[0]]))
        if len(idx) > 1:
            _broadcast([states[i] for i in idx], keys)
        for i in idx:
            srow[i] = r
    return rows, srow


# -- reading ---------------------------------------------------------------------------------------
def _host_values(states: Sequence[Mapping[str, Any]], key: str) -> list[Any]:
    """Every state's value under ``key``, comparable: one-element tensors read as numbers;
    anything else is treated as unique (its tensor gets a ``prepare`` call of its own)."""
    values = list(map(_get("get", key), states))
    if _all_tensors(values) and list(map(_T.numel, values)).count(1) == len(values):
        return list(map(_T.item, values))
    return [_comparable(v) for v in values]


def _all_tensors(values: list[Any]) -> bool:
    return all(map(isinstance, values, itertools.repeat(torch.Tensor)))


def _comparable(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.item() if v.numel() == 1 else object()
    return v if isinstance(v, int | float | bool | str | type(None)) else object()


# -- writing ---------------------------------------------------------------------------------------
class _Written:
    """One key's host-state tensors as a broadcast left them (``tensors[0]``: the
    representative's), and what recognises them next step: each one's version counter, or
    for packed ones the shared counter of ``base``, whose rows they are (``tail``: rows 1..)."""

    __slots__ = ("tensors", "versions", "base", "tail")

    def __init__(self, tensors: list[torch.Tensor], base: torch.Tensor | None = None) -> None:
        self.tensors, self.base = tensors, base
        self.tail = None if base is None else base[1:]
        self.versions: list[int] = []

    def record(self) -> None:
        """Remember the version counters as they are now (after this step's writes)."""
        self.versions = (
            [self.base._version] if self.base is not None else list(map(_VERSION, self.tensors))
        )

    def same_tensors(self, now: list[Any]) -> bool:
        """Whether ``now`` are these very tensors (all of them, in order)."""
        return len(now) == len(self.tensors) and all(map(operator.is_, now, self.tensors))

    def untouched(self, now: list[Any]) -> bool:
        """Whether ``now`` are these very tensors, not written since :meth:`record`."""
        if not self.same_tensors(now):
            return False
        if self.base is not None:
            return self.base._version == self.versions[0]
        return list(map(_VERSION, now)) == self.versions


def _broadcast(
    states: Sequence[MutableMapping[str, Any]],
    keys: list[str],
    cache: dict[str, Any] | None = None,
    pack: bool = False,
) -> None:
    """Give every state the representative's (``states[0]``) new host state; with ``cache``,
    remember which tensors now hold it (see :func:`_kept`); with ``pack`` (the states are new,
    nobody else holds their tensors), each key's tensors become rows of one shared tensor."""
    old = {id(w.tensors[0]): w for w in (cache or {}).get("host_state") or ()}
    written: list[_Written] = []
    for k in keys:
        rep = states[0].get(k)
        others = list(map(_get("get", k), itertools.islice(states, 1, None)))
        if not (
            isinstance(rep, torch.Tensor)
            and _all_tensors(others)
            and list(map(_SHAPE, others)).count(rep.shape) == len(others)
        ):
            for st in states[1:]:
                st[k] = rep.clone() if isinstance(rep, torch.Tensor) else rep
            continue
        tensors = [rep, *others]
        w = old.get(id(rep))
        if w is not None and w.base is not None and w.same_tensors(tensors):
            written.append(w)  # still the rows of the tensor packed earlier
        elif pack and _packable(rep, others):
            written.append(_pack(states, k, rep))
        else:
            written.append(_Written(tensors))
    _copy_from_first(written)
    if cache is not None:
        # a key whose values are not same-shaped tensors cannot be recognised next step
        cache["host_state"] = written if len(written) == len(keys) else None


def _packable(rep: torch.Tensor, others: list[torch.Tensor]) -> bool:
    if rep.numel() > _PACK_NUMEL or rep.requires_grad:
        return False
    dtype, device = rep.dtype, rep.device
    return all(t.dtype == dtype and t.device == device and not t.requires_grad for t in others)


def _pack(states: Sequence[MutableMapping[str, Any]], key: str, rep: torch.Tensor) -> _Written:
    """Replace every state's ``key`` by a row of one new tensor holding ``rep``'s value."""
    base = torch.empty((len(states), *rep.shape), dtype=rep.dtype, device=rep.device)
    base.copy_(rep)
    rows = list(base.unbind(0))
    for st, row in zip(states, rows):
        st[key] = row
    return _Written(rows, base)


def _kept(states: Sequence[MutableMapping[str, Any]], keys: list[str], cache: dict) -> bool:
    """Whether every state still holds, under every host-state key, the very tensor the last
    step's :func:`_broadcast` wrote, untouched since: then all of them are equal, and reading
    each one's value (an ``item()`` per tensor and key) can be skipped."""
    kept = cache.get("host_state")
    if not kept or len(kept) != len(keys) or len(kept[0].tensors) != len(states):
        return False
    return all(w.untouched(list(map(_get("get", k), states))) for k, w in zip(keys, kept))


def _copy_from_first(written: list[_Written]) -> None:
    """Copy each key's first tensor into the rest (one copy per packed key, one
    ``_foreach_copy_`` for all the others) and record the version counters after it."""
    dst: list[torch.Tensor] = []
    src: list[torch.Tensor] = []
    for w in written:
        if w.tail is not None:
            w.tail.copy_(w.tensors[0])
        else:
            dst += w.tensors[1:]
            src += [w.tensors[0]] * (len(w.tensors) - 1)
    if dst:
        torch._foreach_copy_(dst, src)
    for w in written:
        w.record()
