"""The fused CPU kernel: every element-wise rule as one parallel pass over memory (Numba).

For each group step:

1. **host scalars** -- ``rule.prepare`` is called once per *distinct host state* rather than once
   per tensor: tensors whose host state (``step``, ``mu_product``, ...) is equal get the same
   scalars, and the representative's new host state is copied to the others in one
   ``torch._foreach_copy_``. (This relies on the rule convention that ``prepare`` reads only the
   group's hyperparameters, ``fresh`` and the rule's ``host_state``.)
2. **kernel** -- the rule's ``update`` is traced (:mod:`~polyoptim.kernels.trace`) for the
   configuration at hand (flags, which buffers exist, dtypes), turned into Numba source
   (:mod:`~polyoptim.kernels.codegen`), written under the cache directory and compiled with
   ``cache=True``: the first use compiles (about a second), later uses -- in this process or a
   new one -- load the compiled code.
3. **launch** -- one call per (dtype configuration) bucket: the addresses of every parameter,
   gradient and buffer go into a small table, each tensor's scalars into a row of another, and
   one ``prange`` loop runs over fixed-size chunks of all tensors. Each array is read once and
   written once; nothing parameter-sized is allocated.

``GradScaler``'s ``grad_scale`` is applied inside the pass (the unscaled gradient is written
back, as torch's fused kernels do); its ``found_inf`` skips the step before this is called.
Tensors the kernel cannot take (not on the CPU, sparse or strided gradients, a rule that does
not trace) run through the eager kernel with the same numbers.

Environment:
    POLYOPTIM_FUSED: ``0`` never selects this kernel (``fused=True`` then runs eagerly).
    POLYOPTIM_CACHE_DIR: where generated kernels and their compiled code are kept (default
        ``$XDG_CACHE_HOME/polyoptim`` or ``~/.cache/polyoptim``; a temporary directory if that
        is not writable). ``NUMBA_CACHE_DIR``, if set, moves Numba's part of the cache.

Example:
    >>> import torch, polyoptim
    >>> w = torch.nn.Parameter(torch.ones(3))
    >>> opt = polyoptim.Adam([w], lr=0.1, fused=True)   # or the CPU default with Numba installed
    >>> w.grad = torch.ones(3); opt.step()
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.autograd.graph import increment_version

from ..rules.base import Rule
from . import master as mw
from .codegen import KernelSource, generate
from .compiler import available, cache_dir, compile_log, load
from .eager import run_single
from .trace import Graph, TraceError, scalar_signature, trace

__all__ = [
    "available",
    "cache_dir",
    "compile_log",
    "fused_step",
    "run_prepared",
]

#: code of each dtype the kernel takes; complex runs on its real view (``_STORAGE``)
_CODE = {
    torch.float32: "f32",
    torch.float64: "f64",
    torch.bfloat16: "bf16",
    torch.float16: "f16",
    torch.complex64: "c64",
    torch.complex128: "c128",
}
_STORAGE = {"c64": "f32", "c128": "f64"}
#: elements per work row: big enough to amortise the row, small enough to balance two threads
CHUNK = 1 << 15

_lock = threading.RLock()
_graphs: dict[tuple, list[Graph] | None] = {}  # (update, active, signature) -> traces


# -- from a rule to a compiled kernel -------------------------------------------------------------
def _graph_for(
    rule: Rule, active: tuple[bool, ...], scalars: Mapping[str, Any], sig: tuple
) -> Graph | None:
    """The traced update for these scalars (from the cache when guards allow), or None when the
    rule cannot be fused in this configuration."""
    key = (rule.update, active, sig)
    graphs = _graphs.get(key, [])
    if graphs is None:
        return None
    for g in graphs:
        if not g.guards or g.admits(scalars):
            return g
    with _lock:
        try:
            g = trace(rule.update, active, scalars)
        except TraceError:
            _graphs[key] = None
            return None
        _graphs.setdefault(key, []).append(g)  # type: ignore[union-attr]
    return g


class _Kernel:
    """A compiled kernel and the column orders of its address and scalar tables."""

    __slots__ = ("fn", "slots", "scalars", "written")

    def __init__(self, fn: Any, src: KernelSource) -> None:
        self.fn, self.slots, self.scalars, self.written = fn, src.slots, src.scalars, src.written


def _kernel_for(
    rule: Rule, graph: Graph, active: tuple[bool, ...], codes: tuple, master: bool, unscale: bool
) -> _Kernel:
    """The compiled kernel of a traced update for one dtype configuration."""
    key = (codes, master, unscale)
    kern = graph.compiled.get(key)
    if kern is None:
        slots = ["p", "g", *(f"b{i}" for i, on in enumerate(active) if on)]
        dtypes = dict(zip(slots + (["m"] if master else []), codes))
        header = f"{rule.name} {'/'.join(codes)}" + " master" * master + " unscale" * unscale
        src = generate(graph, dtypes, master=master, unscale=unscale, header=header)
        kern = graph.compiled[key] = _Kernel(load(src, header), src)
    return kern


# -- host scalars ---------------------------------------------------------------------------------
def _host_values(states: Sequence[Mapping[str, Any]], key: str) -> list[Any]:
    """Every state's value under ``key``, comparable: one-element tensors read as numbers;
    anything else is treated as unique (its tensor gets a ``prepare`` call of its own)."""
    values = [st.get(key) for st in states]
    if all(isinstance(v, torch.Tensor) and v.numel() == 1 for v in values):
        return list(map(torch.Tensor.item, values))
    return [_comparable(v) for v in values]


def _comparable(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.item() if v.numel() == 1 else object()
    return v if isinstance(v, int | float | bool | str | type(None)) else object()


def _prepare_all(
    rule: Rule,
    hp: Mapping[str, Any],
    states: Sequence[MutableMapping[str, Any]],
    fresh: list[bool],
) -> tuple[list[dict[str, Any]], list[int]]:
    """Host scalars for every tensor, as distinct rows and each tensor's row index.

    Tensors with equal host state (and the same ``fresh``) share one ``rule.prepare`` call; the
    representative's new host state is then copied to the others.
    """
    n = len(states)
    if n <= 1:
        return [rule.prepare(hp, st, f) for st, f in zip(states, fresh)], [0] * n
    keys = list(rule.host_state)
    sig = list(zip(fresh, *(_host_values(states, k) for k in keys)))
    try:
        if sig.count(sig[0]) == n:
            groups = [list(range(n))]
        else:
            by: dict[tuple, list[int]] = defaultdict(list)
            for i, key in enumerate(sig):
                by[key].append(i)
            groups = list(by.values())
    except TypeError:  # an unhashable host value: one call per tensor
        groups = [[i] for i in range(n)]
    rows, srow = [], [0] * n
    for r, idx in enumerate(groups):
        rows.append(rule.prepare(hp, states[idx[0]], fresh[idx[0]]))
        if len(idx) > 1:
            _broadcast_host_state([states[i] for i in idx], keys)
        for i in idx:
            srow[i] = r
    return rows, srow


def _broadcast_host_state(states: Sequence[MutableMapping[str, Any]], keys: list[str]) -> None:
    """Give every state the representative's (``states[0]``) new host state."""
    for k in keys:
        rep = states[0].get(k)
        others = [st.get(k) for st in states[1:]]
        if isinstance(rep, torch.Tensor) and all(
            isinstance(o, torch.Tensor) and o.shape == rep.shape for o in others
        ):
            torch._foreach_copy_(others, [rep] * len(others))
        else:
            for st in states[1:]:
                st[k] = rep.clone() if isinstance(rep, torch.Tensor) else rep


def _plain(sc: Mapping[str, Any]) -> tuple[dict[str, Any], tuple] | None:
    """The scalars as Python numbers/bools/None (1-element tensors read once) and their
    signature (:func:`~polyoptim.kernels.trace.scalar_signature`), or None if one cannot enter
    a kernel (a tensor that needs grad, a sequence, ...)."""
    out = {}
    for k, v in sc.items():
        if type(v) is not float:
            if isinstance(v, torch.Tensor):
                if v.numel() != 1 or v.requires_grad or v.is_complex():
                    return None
                v = v.item()
            elif isinstance(v, np.generic):
                v = v.item()
        out[k] = v
    sig = scalar_signature(out)
    return None if sig is None else (out, sig)


# -- the layout a tensor must have ----------------------------------------------------------------
def _dense(t: torch.Tensor, like: torch.Tensor) -> bool:
    """``t`` can be walked as flat memory in step with ``like``: same number of elements and
    both contiguous, or the same strides with no gaps or overlaps (channels-last, ...)."""
    if t.numel() != like.numel():
        return False
    if t.is_contiguous() and like.is_contiguous():
        return True
    if t.stride() != like.stride() or t.shape != like.shape:
        return False
    expect = 1
    for size, stride in sorted(zip(t.shape, t.stride()), key=lambda x: x[1]):
        if size != 1 and stride != expect:
            return False
        expect *= size
    return True


def _codes(p: torch.Tensor, arrays: Sequence[torch.Tensor]) -> tuple[str, ...] | None:
    """The storage codes of a parameter and its other arrays (gradient, buffers, master), or
    None if the kernel cannot take them."""
    code = _CODE.get(p.dtype)
    if code is None or not p.is_cpu or not _dense(p, p):
        return None
    codes = [code]
    for a in arrays:
        c = _CODE.get(a.dtype)
        if (
            c is None
            or not a.is_cpu
            or a.layout != torch.strided
            or (c[0] == "c") != (code[0] == "c")
            or not _dense(a, p)
        ):
            return None
        codes.append(c)
    return tuple(codes)


_T = torch.Tensor


def _uniform(columns: Sequence[Sequence[torch.Tensor]]) -> tuple[tuple[str, ...], list[int]] | None:
    """The fast check of a whole bucket, column by column (a column: the parameters, the
    gradients, one buffer, ...): one dtype per column, all on the CPU, contiguous and of the
    parameters' sizes. Returns the codes and the sizes, or None (then check tensor by tensor)."""
    n = len(columns[0])
    sizes = list(map(_T.numel, columns[0]))
    codes = []
    for j, col in enumerate(columns):
        dts = [t.dtype for t in col]
        code = _CODE.get(dts[0])
        if code is None or dts.count(dts[0]) != n:
            return None
        if j and (code[0] == "c") != (codes[0][0] == "c"):
            return None
        if not all([t.is_cpu for t in col]):
            return None
        if j == 1 and [t.layout for t in col].count(torch.strided) != n:
            return None  # sparse gradients
        if not all(map(_T.is_contiguous, col)):
            return None
        if j and list(map(_T.numel, col)) != sizes:
            return None
        codes.append(code)
    if codes[0][0] == "c":
        sizes = [2 * s for s in sizes]  # complex runs on the real view
    return tuple(codes), sizes


# -- the step -------------------------------------------------------------------------------------
_ROWS: dict[tuple[int, ...], np.ndarray] = {}


def _rows(sizes: Sequence[int]) -> np.ndarray:
    """Work rows ``(tensor, lo, hi)``: every tensor cut into chunks of at most ``CHUNK``
    (remembered for the last few bucket shapes: a training loop repeats the same one)."""
    key = tuple(sizes)
    rows = _ROWS.get(key)
    if rows is None:
        sz = np.asarray(sizes, np.int64)
        nch = -(-sz // CHUNK)
        t = np.repeat(np.arange(len(sz), dtype=np.int64), nch)
        start = np.repeat(np.cumsum(nch) - nch, nch)
        lo = (np.arange(len(t), dtype=np.int64) - start) * CHUNK
        hi = np.minimum(lo + CHUNK, sz[t])
        rows = np.ascontiguousarray(np.stack([t, lo, hi], axis=1))
        if len(_ROWS) >= 16:
            _ROWS.pop(next(iter(_ROWS)))
        _ROWS[key] = rows
    return rows


_threads_set = threading.local()


def _threads() -> None:
    """Use as many threads as torch does (``torch.set_num_threads`` limits both). Numba's
    setting is per calling thread; it is only touched when torch's changes."""
    n = torch.get_num_threads()
    if getattr(_threads_set, "n", None) != n:
        import numba

        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
        _threads_set.n = n


def _launch(
    kern: Any,
    columns: list[list[torch.Tensor]],
    sizes: list[int],
    srow: list[int],
    scal: np.ndarray,
    gscale: float,
) -> None:
    """One kernel call over every tensor of a bucket."""
    n = len(sizes)
    addrs = np.empty((n, len(columns)), np.int64)
    for j, col in enumerate(columns):
        addrs[:, j] = np.fromiter(map(_T.data_ptr, col), np.int64, n)
    _threads()
    kern(_rows(sizes), addrs, np.asarray(srow, np.int64), scal, gscale)


def fused_step(
    rule: Rule,
    hp: Mapping[str, Any],
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[MutableMapping[str, Any]],
    fresh: Sequence[bool],
    *,
    grad_scale: torch.Tensor | None = None,
) -> None:
    """One group's step: host scalars, then one fused pass per dtype bucket.

    Args:
        rule: the element-wise rule.
        hp: the group's hyperparameters for this step.
        params, grads: the tensors to update and their gradients.
        states: each parameter's state (buffers created already).
        fresh: per parameter, whether its state was created this step.
        grad_scale: ``GradScaler``'s scale: gradients are divided by it inside the pass and
            the unscaled gradients are written back.
    """
    for i, p in enumerate(params):
        if mw.wants_master(hp, p):
            mw.ensure_master_state(rule, hp, p, states[i], fresh[i])
    rows, srow = _prepare_all(rule, hp, states, list(fresh))
    _run(rule, hp, params, grads, states, rows, srow, grad_scale)


def run_prepared(
    rule: Rule,
    hp: Mapping[str, Any],
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[MutableMapping[str, Any]],
    scalars: Sequence[Mapping[str, Any]],
) -> None:
    """The fused kernel with the eager kernels' signature (host scalars already prepared, one
    dict per tensor). :func:`fused_step` is faster for many tensors."""
    _run(rule, hp, params, grads, states, list(scalars), list(range(len(params))), None)


def _run(
    rule: Rule,
    hp: Mapping[str, Any],
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[MutableMapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    srow: Sequence[int],
    grad_scale: torch.Tensor | None,
) -> None:
    """Bucket the tensors by kernel and dtypes, launch each bucket, run the rest eagerly."""
    active = tuple(b.when(hp) for b in rule.buffers)
    names = [b.name for b, on in zip(rule.buffers, active) if on]
    pairs = [_plain(sc) for sc in rows]
    plain = [None if ps is None else ps[0] for ps in pairs]
    graphs = [None if ps is None else _graph_for(rule, active, *ps) for ps in pairs]
    masters = [mw.wants_master(hp, p) for p in params] if hp.get("master_weights") else None
    if masters is not None and not any(masters):
        masters = None

    def columns_of(idx: Sequence[int], master: bool) -> list[list[torch.Tensor]]:
        cols = [[params[i] for i in idx], [grads[i] for i in idx]]
        cols += [[states[i][nm] for i in idx] for nm in names]
        if master:
            cols.append([states[i][mw.MASTER_KEY] for i in idx])
        return cols

    # (graph, codes, master) -> (tensor indices, columns, sizes)
    buckets: dict[tuple, Any] = {}
    eager: list[int] = []
    everyone = list(range(len(params)))
    fast = None
    if len(rows) == 1 and graphs[0] is not None and not masters:
        # the common case: one set of scalars, one dtype per column -- checked column-wise
        cols = columns_of(everyone, False)
        fast = _uniform(cols)
        if fast is not None:
            buckets[(0, fast[0], False)] = (everyone, cols, fast[1])
    if fast is None:
        split: dict[tuple, list[int]] = defaultdict(list)
        for i, (p, g, st) in enumerate(zip(params, grads, states)):
            r = srow[i]
            master = bool(masters and masters[i])
            arrays = [g, *(st[nm] for nm in names)]
            if master:
                arrays.append(st[mw.MASTER_KEY])
            codes = _codes(p, arrays) if graphs[r] is not None else None
            if codes is None:
                eager.append(i)
            else:
                split[(id(graphs[r]), codes, master)].append(i)
        for key, idx in split.items():
            sizes = [params[i].numel() for i in idx]
            if key[1][0][0] == "c":
                sizes = [2 * n for n in sizes]
            buckets[key] = (idx, columns_of(idx, key[2]), sizes)

    unscale = grad_scale is not None
    gscale = float(grad_scale) if unscale else 1.0
    for (_, codes, master), (idx, cols, sizes) in buckets.items():
        graph = graphs[srow[idx[0]]]
        assert graph is not None
        codes = tuple(_STORAGE.get(c, c) for c in codes)
        kern = _kernel_for(rule, graph, active, codes, master, unscale)
        used = sorted({srow[i] for i in idx})  # the scalar rows this bucket reads, renumbered
        renum = {r: k for k, r in enumerate(used)}
        scal = np.array(
            [[float(plain[r][s]) for s in kern.scalars] or [0.0] for r in used],  # type: ignore[index]
            np.float64,
        )
        # the kernel takes only the arrays its update touches, in its own slot order
        slot_of = ["p", "g", *(f"b{i}" for i, on in enumerate(active) if on), "m"]
        by_slot = dict(zip(slot_of, cols))
        local = [0] * len(idx) if len(used) == 1 else [renum[srow[i]] for i in idx]
        _launch(kern.fn, [by_slot[s] for s in kern.slots], sizes, local, scal, gscale)
        # the pass wrote through raw pointers: tell autograd, as an in-place op would (the
        # parameters and gradients; the optimizer's own buffers are in no autograd graph)
        increment_version([t for s in ("p", "g") if s in kern.written for t in by_slot[s]])
        if unscale:
            for i in idx:  # a transform replaced the gradient: p.grad gets the unscaled one too
                pg = params[i].grad
                if pg is not None and pg is not grads[i]:
                    pg.copy_(grads[i])

    if eager:
        _eager(rule, hp, eager, params, grads, states, [rows[srow[i]] for i in eager], grad_scale)


def _eager(
    rule: Rule,
    hp: Mapping[str, Any],
    idx: Sequence[int],
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[MutableMapping[str, Any]],
    scalars: Sequence[Mapping[str, Any]],
    grad_scale: torch.Tensor | None,
) -> None:
    """The tensors the fused kernel cannot take, through the eager kernel."""
    ps = [params[i] for i in idx]
    gs = [grads[i] for i in idx]
    if grad_scale is not None:
        gs = [g / grad_scale.to(g.device) for g in gs]
        for p, g in zip(ps, gs):
            if p.grad is not None:
                p.grad.copy_(g)
    mw.run_on_master(run_single, rule, hp, ps, gs, [states[i] for i in idx], scalars)
