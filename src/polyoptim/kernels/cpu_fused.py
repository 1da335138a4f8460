"""The fused CPU kernel: every element-wise rule as one parallel pass over memory (Numba).

For each group step:

1. **host scalars** -- ``rule.prepare`` is called once per *distinct host state* rather than once
   per tensor (:mod:`~polyoptim.kernels.host_state`): tensors whose host state (``step``,
   ``mu_product``, ...) is equal get the same scalars, and the representative's new host state
   is copied to the others.
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

import math
import operator
import threading
from collections import defaultdict
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.autograd.graph import increment_version

from ..rules.base import Rule
from . import master as mw
from . import threads
from .codegen import KernelSource, generate
from .compiler import available, cache_dir, compile_log, load
from .eager import run_single
from .host_state import prepare_all
from .local import plain_memory
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
_T = torch.Tensor
_CPU = torch.device("cpu")
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
    """A compiled kernel and the column orders of its address and scalar tables.

    ``order``: for each address-table column, its index in the bucket's columns (``p``, ``g``,
    the active buffers, ``m``); ``touched``: the indices of ``p`` and ``g`` among them when the
    pass writes them (worked out once here rather than at every step); ``streamed``: the
    address-table columns written with streaming stores, which must be 64-byte aligned."""

    __slots__ = ("fn", "slots", "scalars", "written", "order", "touched", "streamed")

    def __init__(self, fn: Any, src: KernelSource, columns: list[str]) -> None:
        self.fn, self.slots, self.scalars, self.written = fn, src.slots, src.scalars, src.written
        self.order = tuple(columns.index(s) for s in src.slots)
        self.touched = tuple(j for j, s in enumerate(("p", "g")) if s in src.written)
        self.streamed = [j for j, s in enumerate(src.slots) if s in src.streamed]


def _kernel_for(
    rule: Rule,
    graph: Graph,
    active: tuple[bool, ...],
    codes: tuple,
    master: bool,
    unscale: bool,
    stream: bool = True,
) -> _Kernel:
    """The compiled kernel of a traced update for one dtype configuration (``stream``: write
    write-only arrays with streaming stores)."""
    key = (codes, master, unscale, stream)
    kern = graph.compiled.get(key)
    if kern is None:
        slots = ["p", "g", *(f"b{i}" for i, on in enumerate(active) if on)]
        dtypes = dict(zip(slots + (["m"] if master else []), codes))
        header = f"{rule.name} {'/'.join(codes)}" + " master" * master + " unscale" * unscale
        header += " unaligned" * (not stream)
        src = generate(graph, dtypes, master=master, unscale=unscale, stream=stream, header=header)
        kern = graph.compiled[key] = _Kernel(load(src, header), src, [*slots, "m"])
    return kern


# -- host scalars ---------------------------------------------------------------------------------
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


def _codes(
    p: torch.Tensor, arrays: Sequence[torch.Tensor], device: torch.device | None = None
) -> tuple[str, ...] | None:
    """The storage codes of a parameter and its other arrays (gradient, buffers, master), or
    None if the kernel cannot take them. All must be on ``device`` (default: the CPU)."""
    code = _CODE.get(p.dtype)
    if code is None or p.device != (device or _CPU) or not _dense(p, p):
        return None
    if not plain_memory([p, *arrays]):
        return None
    if any(t.numel() and not t.data_ptr() for t in (p, *arrays)):
        return None  # a wrapper with no memory of its own (torch.func.functionalize's)
    codes = [code]
    for a in arrays:
        c = _CODE.get(a.dtype)
        if (
            c is None
            or a.device != (device or _CPU)
            or a.layout != torch.strided
            or (c[0] == "c") != (code[0] == "c")
            or not _dense(a, p)
        ):
            return None
        codes.append(c)
    return tuple(codes)


def _column_code(
    col: Sequence[torch.Tensor],
    j: int,
    first: str | None,
    sizes: list[int] | None,
    device: torch.device | None = None,
) -> str | None:
    """The fast check of one column of a bucket (the parameters, the gradients, one buffer,
    ...): one dtype, all on ``device`` (default: the CPU), contiguous and of the parameters'
    ``sizes`` (column 0 gives them). Returns the column's code, or None (then check tensor by
    tensor)."""
    n = len(col)
    dts = [t.dtype for t in col]
    code = _CODE.get(dts[0])
    if code is None or dts.count(dts[0]) != n:
        return None
    if first is not None and (code[0] == "c") != (first[0] == "c"):
        return None
    if device is None:
        if not all([t.is_cpu for t in col]):
            return None
    elif [t.device for t in col].count(device) != n:
        return None
    if not plain_memory(col):
        return None
    if j == 1 and [t.layout for t in col].count(torch.strided) != n:
        return None  # sparse gradients
    if not all(map(_T.is_contiguous, col)):
        return None
    if sizes is not None and list(map(_T.numel, col)) != sizes:
        return None
    return code


class _Layout:
    """A uniform bucket as :func:`_uniform_layout` found it: each column's tensor identities and
    addresses, the codes and sizes, the address table and the work rows.

    A training loop steps the same parameters and buffers every time (and, unless
    ``zero_grad`` frees them, the same gradients), so the next step only has to recognise them:
    a column whose tensors have the same ``id`` and ``data_ptr`` as last time skips its dtype,
    device, layout and size checks. (No references are kept: holding last step's gradients
    would keep them alive through the next forward and backward.)
    """

    __slots__ = (
        "ids",
        "ptrs",
        "numels",
        "codes",
        "storage",
        "sizes",
        "table",
        "rows",
        "tables",
        "aligned",
        "backend",
    )

    def __init__(
        self,
        ids: list[list[int]],
        ptrs: list[list[int]],
        numels: list[int],
        codes: tuple[str, ...],
        sizes: list[int],
    ) -> None:
        self.ids, self.ptrs, self.numels, self.codes, self.sizes = ids, ptrs, numels, codes, sizes
        self.storage = tuple(_STORAGE.get(c, c) for c in codes)
        self.table = np.array(ptrs, np.int64).T.copy()  # (tensor, column), C order
        self.rows = _rows(sizes)
        #: the address table in a kernel's column order
        self.tables: dict[tuple[int, ...], np.ndarray] = {}
        self.aligned: dict[_Kernel, bool] = {}
        #: what another fused backend keeps for this layout (the Triton kernel's device tables)
        self.backend: dict[Any, Any] = {}

    def table_for(self, order: tuple[int, ...]) -> np.ndarray:
        t = self.tables.get(order)
        if t is None:
            t = self.tables[order] = np.ascontiguousarray(self.table[:, list(order)])
        return t

    def streamable(self, kern: _Kernel) -> bool:
        """:func:`_streamable`, worked out once per kernel for this layout."""
        ok = self.aligned.get(kern)
        if ok is None:
            ok = self.aligned[kern] = _streamable(kern, self.table_for(kern.order))
        return ok


def _uniform_layout(
    columns: Sequence[Sequence[torch.Tensor]],
    cache: dict[str, Any] | None,
    device: torch.device | None = None,
) -> _Layout | None:
    """The fast check of a whole bucket, column by column (:func:`_column_code`), with the
    result kept in ``cache`` (a scratch dict the engine keeps per group) and reused for every
    column that comes back unchanged (see :class:`_Layout`). None: check tensor by tensor.
    ``device``: where the tensors must be (default: the CPU)."""
    key = "layout" if device is None else f"layout-{device}"
    old: _Layout | None = cache.get(key) if cache is not None else None
    n = len(columns[0])
    if old is not None and (len(old.ids) != len(columns) or len(old.numels) != n):
        old = None
    # the parameters' sizes and contiguity are read every step: an in-place ``p.data = view``
    # keeps the tensor and its address but not its extent or order, and the pass walks memory
    numels = list(map(_T.numel, columns[0]))
    if old is not None and (numels != old.numels or not all(map(_T.is_contiguous, columns[0]))):
        old = None
    ids, ptrs, codes = [], [], []
    unchanged = old is not None
    for j, col in enumerate(columns):
        cid = list(map(id, col))
        ptr = None
        if old is not None and cid == old.ids[j]:
            try:
                ptr = list(map(_T.data_ptr, col))
            except RuntimeError:  # no storage: a sparse tensor that reused a freed one's id
                return None
            if ptr == old.ptrs[j]:
                ids.append(old.ids[j])
                ptrs.append(old.ptrs[j])
                codes.append(old.codes[j])
                continue
        unchanged = False
        code = _column_code(col, j, codes[0] if j else None, numels if j else None, device)
        if code is None:
            return None
        if ptr is None:
            ptr = list(map(_T.data_ptr, col))
        if 0 in ptr:  # no memory behind a tensor (torch.func.functionalize's wrappers, ...)
            return None
        ids.append(cid)
        ptrs.append(ptr)
        codes.append(code)
    if unchanged:
        return old  # every column came back: the same table and rows
    sizes = [2 * s for s in numels] if codes[0][0] == "c" else numels
    lay = _Layout(ids, ptrs, numels, tuple(codes), sizes)
    if cache is not None:
        cache[key] = lay
    return lay


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


def _address_table(columns: list[list[torch.Tensor]]) -> np.ndarray:
    """The ``(tensor, column)`` table of data addresses."""
    n = len(columns[0])
    table = np.empty((n, len(columns)), np.int64)
    for j, col in enumerate(columns):
        table[:, j] = np.fromiter(map(_T.data_ptr, col), np.int64, n)
    return table


def _streamable(kern: _Kernel, table: np.ndarray) -> bool:
    """Whether every array ``kern`` streams to starts on a 64-byte boundary (then so does each
    work row of it: rows start at multiples of ``CHUNK`` elements)."""
    return not (table[:, kern.streamed] & 63).any()


def _launch(
    kern: Any,
    sizes: list[int],
    srow: Sequence[int] | np.ndarray,
    scal: np.ndarray,
    gscale: float,
    table: np.ndarray,
    rows: np.ndarray | None = None,
) -> None:
    """One kernel call over every tensor of a bucket (``rows``: the work rows when a
    :class:`_Layout` has them already)."""
    rows = _rows(sizes) if rows is None else rows
    threads.launch(kern, rows, table, np.asarray(srow, np.int64), scal, gscale)


def fused_step(
    rule: Rule,
    hp: Mapping[str, Any],
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[MutableMapping[str, Any]],
    fresh: Sequence[bool],
    *,
    grad_scale: torch.Tensor | None = None,
    cache: dict[str, Any] | None = None,
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
        cache: a dict the caller keeps for these tensors from step to step (the engine keeps
            one per group); what the checks of one step found is reused in the next while the
            same tensors come back. Nothing in it is needed for correctness.
    """
    mw.ensure_masters(rule, hp, params, states, fresh)
    rows, srow = prepare_all(rule, hp, states, list(fresh), cache)
    _run(rule, hp, params, grads, states, rows, srow, grad_scale, cache)


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
    cache: dict[str, Any] | None = None,
) -> None:
    """Bucket the tensors by kernel and dtypes, launch each bucket, run the rest eagerly."""
    if not threads.fork_safe():  # a forked child of an OpenMP process: no parallel kernel
        with threads.one_torch_thread():
            everyone = range(len(params))
            _eager(rule, hp, everyone, params, grads, states, [rows[i] for i in srow], grad_scale)
        return
    active = tuple(b.when(hp) for b in rule.buffers)
    names = [b.name for b, on in zip(rule.buffers, active) if on]
    memo = _same_scalars(rows, active, cache)
    if memo is not None:  # the scalars of the last step again (a constant lr): same graph
        plain, graphs = [memo[2]], [memo[3]]
    else:
        pairs = [_plain(sc) for sc in rows]
        plain = [None if ps is None else ps[0] for ps in pairs]
        graphs = [None if ps is None else _graph_for(rule, active, *ps) for ps in pairs]
        if cache is not None and len(rows) == 1 and graphs[0] is not None:
            memo = _remember_scalars(rows[0], active, plain[0], graphs[0], cache)
    masters = [mw.wants_master(hp, p) for p in params] if hp.get("master_weights") else None
    if masters is not None and not any(masters):
        masters = None

    def columns_of(idx: Sequence[int], master: bool) -> list[list[torch.Tensor]]:
        cols = [[params[i] for i in idx], [grads[i] for i in idx]]
        cols += [[states[i][nm] for i in idx] for nm in names]
        if master:
            cols.append([states[i][mw.MASTER_KEY] for i in idx])
        return cols

    # (graph, codes, master) -> (tensor indices, columns, sizes, layout or None)
    buckets: dict[tuple, Any] = {}
    eager: list[int] = []
    everyone = range(len(params))
    layout = None
    if len(rows) == 1 and graphs[0] is not None and not masters:
        # the common case: one set of scalars, one dtype per column -- checked column-wise,
        # and only the columns that changed since the last step
        cols = [list(params), list(grads)]
        cols += [list(map(operator.itemgetter(nm), states)) for nm in names]
        layout = _uniform_layout(cols, cache)
        if layout is not None:
            buckets[(0, layout.codes, False)] = (everyone, cols, layout.sizes, layout)
    if layout is None:
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
            buckets[key] = (idx, columns_of(idx, key[2]), sizes, None)

    unscale = grad_scale is not None
    gscale = float(grad_scale) if unscale else 1.0
    for (_, codes, master), (idx, cols, sizes, lay) in buckets.items():
        graph = graphs[srow[idx[0]]]
        assert graph is not None
        codes = lay.storage if lay is not None else tuple(_STORAGE.get(c, c) for c in codes)
        kern = _kernel_for(rule, graph, active, codes, master, unscale)
        if len(rows) == 1:
            used, local = [0], _zeros(len(idx), cache)
        else:
            used = sorted({srow[i] for i in idx})  # the scalar rows this bucket reads, renumbered
            renum = {r: k for k, r in enumerate(used)}
            local = [0] * len(idx) if len(used) == 1 else [renum[srow[i]] for i in idx]
        if memo is not None and memo[4] is kern:
            scal = memo[5]
        else:
            scal = np.array(
                [[float(plain[r][s]) for s in kern.scalars] or [0.0] for r in used],  # type: ignore[index]
                np.float64,
            )
            if memo is not None:
                memo[4:] = [kern, scal]
        # the kernel takes only the arrays its update touches, in its own slot order (a
        # layout has every column's addresses already, and knows whether they are aligned)
        if lay is None:
            table = _address_table([cols[j] for j in kern.order])
            aligned = not kern.streamed or _streamable(kern, table)
        else:
            table = lay.table_for(kern.order)
            aligned = not kern.streamed or lay.streamable(kern)
        if not aligned:  # a view or a foreign buffer off the 64-byte grid: plain stores
            kern = _kernel_for(rule, graph, active, codes, master, unscale, stream=False)
        _launch(kern.fn, sizes, local, scal, gscale, table, None if lay is None else lay.rows)
        # the pass wrote through raw pointers: tell autograd, as an in-place op would (the
        # parameters and gradients; the optimizer's own buffers are in no autograd graph)
        touched = kern.touched
        if touched == (0, 1):
            increment_version(cols[0] + cols[1])
        elif touched:
            increment_version(cols[touched[0]])
        if unscale:
            for i in idx:  # a transform replaced the gradient: p.grad gets the unscaled one too
                pg = params[i].grad
                if pg is not None and pg is not grads[i]:
                    pg.copy_(grads[i])

    if eager:
        _eager(rule, hp, eager, params, grads, states, [rows[srow[i]] for i in eager], grad_scale)


_PLAIN = frozenset({float, int, bool, type(None)})


def _same_scalars(
    rows: Sequence[Mapping[str, Any]], active: tuple[bool, ...], cache: dict[str, Any] | None
) -> list[Any] | None:
    """The remembered ``[key, scalars, plain, graph, kernel, scalar table]`` when this step has
    one row of scalars equal to the last step's -- the same types, values and signs of zero.
    Only plain Python values are compared: a tensor lr may have changed in place while still
    comparing equal to itself."""
    memo = cache.get("scalars") if cache is not None else None
    if memo is None or len(rows) != 1:
        return None
    sc = rows[0]
    types = tuple(map(type, sc.values()))
    key = memo[0]
    if key[0] != active or types != key[1] or not _PLAIN.issuperset(types) or sc != memo[1]:
        return None
    for name, sign in key[2]:  # 0.0 == -0.0, but the kernel would see the other sign
        if math.copysign(1.0, sc[name]) != sign:
            return None
    return memo


def _remember_scalars(
    sc: Mapping[str, Any],
    active: tuple[bool, ...],
    plain: dict[str, Any] | None,
    graph: Graph,
    cache: dict[str, Any],
) -> list[Any] | None:
    types = tuple(map(type, sc.values()))
    if not _PLAIN.issuperset(types):
        cache.pop("scalars", None)
        return None
    zeros = tuple(
        (k, math.copysign(1.0, v)) for k, v in sc.items() if type(v) is float and v == 0.0
    )
    memo = cache["scalars"] = [(active, types, zeros), dict(sc), plain, graph, None, None]
    return memo


def _zeros(n: int, cache: dict[str, Any] | None) -> np.ndarray:
    """Every tensor reads scalar row 0 (kept in ``cache``: the same each step)."""
    z = cache.get("zeros") if cache is not None else None
    if z is None or len(z) != n:
        z = np.zeros(n, np.int64)
        if cache is not None:
            cache["zeros"] = z
    return z


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
