"""The fused Triton kernel: every element-wise rule as one pass over memory on a GPU.

The GPU twin of :mod:`polyoptim.kernels.cpu_fused`, with the same entry points and numbers. For
each group step:

1. **host scalars** -- as on the CPU, ``rule.prepare`` once per distinct host state
   (:mod:`~polyoptim.kernels.host_state`); or, for a ``capturable`` step or one given
   ``GradScaler``'s ``found_inf``, on the device (:mod:`~polyoptim.kernels.device_scalars`):
   the rule's own ``prepare`` over all tensors at once, with no host synchronisation, so the
   step can be captured in a CUDA graph.
2. **kernel** -- the rule's ``update`` is traced (:mod:`~polyoptim.kernels.trace`, the same
   graphs the CPU kernel uses), turned into a Triton kernel
   (:mod:`~polyoptim.kernels.triton_codegen`), written under the cache directory and imported.
3. **launch** -- one launch per (dtype configuration) bucket, as torch's multi-tensor apply: a
   chunk table (per chunk, its tensor and offset), a table of every tensor's array addresses
   (int64, cast to typed pointers in the kernel) and a table of host-scalar values; thousands of
   small tensors cost one launch. ``grad_scale`` and ``found_inf`` are read by the kernel.

Tensors the kernel cannot take (sparse or strided gradients, a rule that does not trace, arrays
on another device) run through the eager kernel with the same numbers.

Without a GPU the same kernels run in Triton's interpreter on CPU tensors (slowly, but exactly
the generated code): with ``POLYOPTIM_KERNEL=triton`` the dispatcher sends every fused step
here, whatever the device, which is how the tests check the Triton kernels on a CPU machine.

Environment:
    POLYOPTIM_FUSED: ``0`` never selects a fused kernel.
    POLYOPTIM_KERNEL: ``triton`` runs every fused step with this kernel (``numba``: the CPU
        kernel only).
    TRITON_INTERPRET: ``1`` runs the kernels in Triton's interpreter on any device (CPU
        tensors always are).

Example:
    >>> import torch
    >>> from polyoptim.rules.sgd import sgd
    >>> p, g = torch.ones(3), torch.ones(3)
    >>> hp = {"lr": 0.5, "momentum": 0.0, "dampening": 0.0, "nesterov": False,
    ...       "weight_decay": 0.0, "maximize": False}
    >>> fused_step(sgd, hp, [p], [g], [{}], [True])   # Triton's interpreter on the CPU
    >>> p
    tensor([0.5000, 0.5000, 0.5000])
"""

from __future__ import annotations

import hashlib
import importlib.util
import operator
import os
import sys
import threading
from collections import defaultdict
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch.autograd.graph import increment_version

from ..rules.base import Rule
from . import master as mw
from .compiler import _publish, cache_dir
from .cpu_fused import _STORAGE, _codes, _eager, _graph_for, _plain, _uniform_layout
from .device_scalars import Lanes, evaluate_lanes, prepare_on_device
from .host_state import prepare_all
from .trace import UNKNOWN, Graph, evaluate, scalar_signature
from .triton_codegen import TritonSource, generate

__all__ = ["available", "compile_log", "fused_step", "run_prepared"]

#: elements per chunk (one program); a program walks its chunk in blocks of ``BLOCK``
CHUNK = 1 << 16
BLOCK = 1024
#: the interpreter runs every block in Python: smaller blocks waste less on small tensors
INTERPRETER_BLOCK = 128

_lock = threading.RLock()
_kernels: dict[tuple[str, bool], Any] = {}
_compile_log: list[dict[str, Any]] = []
_TRITON_OK: bool | None = None


def available() -> bool:
    """True when Triton can be imported and ``POLYOPTIM_FUSED`` is not ``0``."""
    global _TRITON_OK
    flag = os.environ.get("POLYOPTIM_FUSED")
    if flag is not None and flag.strip().lower() in ("0", "false", "no", "off"):
        return False
    if _TRITON_OK is None:
        try:
            import triton  # noqa: F401
            import triton.language  # noqa: F401
        except Exception:  # missing or broken: the eager paths run
            _TRITON_OK = False
        else:
            _TRITON_OK = True
    return _TRITON_OK


def interpreted(device: torch.device) -> bool:
    """Whether kernels for tensors on ``device`` run in Triton's interpreter (CPU tensors, or
    ``TRITON_INTERPRET=1``)."""
    return device.type == "cpu" or os.environ.get("TRITON_INTERPRET", "0") == "1"


def compile_log() -> list[dict[str, Any]]:
    """One entry per kernel this process generated: ``name``, ``module``, ``interpreted``."""
    return list(_compile_log)


# -- from a traced update to a loaded kernel ------------------------------------------------------
def _fingerprint() -> str:
    here = Path(__file__).with_name
    h = hashlib.sha256()
    for name in ("triton_ops.py", "triton_codegen.py"):
        h.update(here(name).read_bytes())
    return h.hexdigest()[:16]


class _Kernel:
    """A loaded kernel and its column orders (``order``: each address column's index in the
    bucket's columns ``p``, ``g``, the active buffers, ``m``)."""

    __slots__ = ("fn", "slots", "scalars", "written", "order", "touched")

    def __init__(self, fn: Any, src: TritonSource, columns: list[str]) -> None:
        self.fn, self.slots, self.scalars, self.written = fn, src.slots, src.scalars, src.written
        self.order = tuple(columns.index(s) for s in src.slots)
        self.touched = tuple(j for j, s in enumerate(("p", "g")) if s in src.written)


def _load(src: TritonSource, header: str, interpret: bool) -> Any:
    """Import (writing it first if new) the module of ``src``; its ``kernel``, wrapped for
    Triton's interpreter when ``interpret``."""
    text = f"# polyoptim triton kernel, ops {_fingerprint()}\n{src.text}"
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    fn = _kernels.get((digest, interpret))
    if fn is not None:
        return fn
    with _lock:
        # the interpreter needs its own copy of the module: the kernel's ``o.*`` calls must
        # reach interpreted functions too
        name = f"polyoptim_triton_{digest}" + "_interpreted" * interpret
        module = sys.modules.get(name)
        if module is None:
            path = cache_dir() / f"polyoptim_triton_{digest}.py"
            if not path.exists():
                _publish(path, text)
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        assert isinstance(module, ModuleType)
        fn = module.kernel
        if interpret:
            from triton.runtime.interpreter import InterpretedFunction

            if not isinstance(fn, InterpretedFunction):
                fn = InterpretedFunction(fn.fn)
            # always: under TRITON_INTERPRET=1 the module's kernel is interpreted already, but
            # its ``o.pow_`` would still call libdevice, which the interpreter lacks
            module.o = _interpreted_ops()  # type: ignore[attr-defined]
        _kernels[(digest, interpret)] = fn
        _compile_log.append(dict(name=header, module=name, interpreted=interpret))
    return fn


_INTERPRETED_OPS: Any = None


def _interpreted_ops() -> Any:
    """:mod:`triton_ops` with every function wrapped for Triton's interpreter."""
    global _INTERPRETED_OPS
    if _INTERPRETED_OPS is None:
        from types import SimpleNamespace

        from triton.runtime.interpreter import InterpretedFunction
        from triton.runtime.jit import JITFunction

        from . import triton_ops

        # (under TRITON_INTERPRET=1 ``triton.jit`` made them interpreted functions already)
        jitted = (JITFunction, InterpretedFunction)
        _INTERPRETED_OPS = SimpleNamespace(
            **{
                k: InterpretedFunction(f.fn)
                for k, f in vars(triton_ops).items()
                if isinstance(f, jitted)
            }
        )
        _INTERPRETED_OPS.pow_ = _INTERPRETED_OPS.pow_portable  # no libdevice there
    return _INTERPRETED_OPS


def _kernel_for(
    rule: Rule,
    graph: Graph,
    active: tuple[bool, ...],
    codes: tuple[str, ...],
    master: bool,
    unscale: bool,
    found: bool,
    interpret: bool,
    aligned: bool,
) -> _Kernel:
    """The loaded kernel of a traced update for one dtype configuration."""
    key = ("triton", codes, master, unscale, found, interpret, aligned)
    kern = graph.compiled.get(key)
    if kern is None:
        slots = ["p", "g", *(f"b{i}" for i, on in enumerate(active) if on)]
        dtypes = dict(zip(slots + (["m"] if master else []), codes))
        header = f"{rule.name} {'/'.join(codes)}" + " master" * master + " unscale" * unscale
        header += " found_inf" * found + " aligned" * aligned
        src = generate(
            graph,
            dtypes,
            master=master,
            unscale=unscale,
            found_inf=found,
            aligned=aligned,
            header=header,
        )
        kern = graph.compiled[key] = _Kernel(_load(src, header, interpret), src, [*slots, "m"])
    return kern


# -- tables ---------------------------------------------------------------------------------------
_CHUNKS: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def chunk_table(
    sizes: Sequence[int], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The chunk table of a bucket: per chunk its tensor (int32) and first element (int64),
    and per tensor its element count (int64) -- on ``device``, remembered for the last few
    bucket shapes (a training loop repeats the same one, and a captured step must not copy)."""
    key = (tuple(sizes), device)
    got = _CHUNKS.get(key)
    if got is None:
        sz = np.asarray(sizes, np.int64)
        nch = -(-sz // CHUNK)
        t = np.repeat(np.arange(len(sz), dtype=np.int32), nch)
        start = np.repeat(np.cumsum(nch) - nch, nch)
        off = (np.arange(len(t), dtype=np.int64) - start) * CHUNK
        got = (
            torch.from_numpy(t).to(device),
            torch.from_numpy(off).to(device),
            torch.from_numpy(sz).to(device),
        )
        if len(_CHUNKS) >= 16:
            _CHUNKS.pop(next(iter(_CHUNKS)))
        _CHUNKS[key] = got
    return got


def _address_table(
    columns: list[list[torch.Tensor]], device: torch.device, cache: dict[str, Any] | None
) -> torch.Tensor:
    """The ``(tensor, column)`` table of data addresses, flat, on ``device`` (the same tensors
    next step reuse the table already there)."""
    ptrs = tuple(tuple(t.data_ptr() for t in col) for col in columns)
    tables = cache.setdefault("triton_addrs", {}) if cache is not None else {}
    got = tables.get(ptrs)
    if got is None:
        flat = np.array(ptrs, np.int64).T.reshape(-1)
        got = torch.from_numpy(flat.copy()).to(device)
        if len(tables) >= 8:
            tables.clear()
        tables[ptrs] = got
    return got


# -- the step -------------------------------------------------------------------------------------
def _launch(
    kern: Any, grid: tuple[int], *args: Any, block: int, interpret: bool, **meta: Any
) -> None:
    """One kernel launch over every chunk of a bucket. On a GPU the compiler does not contract
    ``a*b + c`` into fused multiply-adds the rule did not ask for: the numbers are the ones the
    interpreter checks."""
    if interpret:
        with np.errstate(all="ignore"):  # the interpreter computes masked-off lanes too
            kern[grid](*args, CHUNK=CHUNK, BLOCK=block, **meta)
    else:
        kern[grid](*args, CHUNK=CHUNK, BLOCK=block, enable_fp_fusion=False, **meta)


def fused_step(
    rule: Rule,
    hp: Mapping[str, Any],
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[MutableMapping[str, Any]],
    fresh: Sequence[bool],
    *,
    grad_scale: torch.Tensor | None = None,
    found_inf: torch.Tensor | None = None,
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
        found_inf: ``GradScaler``'s inf flag: where it is not zero the step changes nothing
            (parameters, buffers, gradients, host state), decided on the device.
        cache: a dict the caller keeps for these tensors from step to step (tables found in
            one step are reused in the next while the same tensors come back).

    With ``capturable=True`` in ``hp``, or with ``found_inf``, the host scalars are computed
    on the device (no host synchronisation) when the rule's ``prepare`` allows it.
    """
    mw.ensure_masters(rule, hp, params, states, fresh)
    if (hp.get("capturable") or found_inf is not None) and len(set(fresh)) <= 1:
        got = prepare_on_device(rule, hp, states, bool(fresh and fresh[0]), found_inf)
        if got is not None:
            _run(
                rule,
                hp,
                params,
                grads,
                states,
                [got[0]],
                [0] * len(params),
                grad_scale,
                found_inf,
                cache,
            )
            return
    if found_inf is not None and float(found_inf) != 0.0:
        return  # the scalars are computed on the host: decide there (one synchronisation)
    rows, srow = prepare_all(rule, hp, states, list(fresh), cache)
    _run(rule, hp, params, grads, states, rows, srow, grad_scale, None, cache)


def run_prepared(
    rule: Rule,
    hp: Mapping[str, Any],
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[MutableMapping[str, Any]],
    scalars: Sequence[Mapping[str, Any]],
) -> None:
    """The fused kernel with the eager kernels' signature (host scalars already prepared, one
    dict per tensor)."""
    _run(rule, hp, params, grads, states, list(scalars), list(range(len(params))), None, None)


def _signature(sc: Mapping[str, Any]) -> tuple[dict[str, Any], tuple] | None:
    """:func:`cpu_fused._plain` for scalars that may hold device lanes (traced as unknown)."""
    if not any(isinstance(v, Lanes) for v in sc.values()):
        return _plain(sc)
    plain = {k: (UNKNOWN if isinstance(v, Lanes) else v) for k, v in sc.items()}
    rest = _plain({k: v for k, v in plain.items() if v is not UNKNOWN})
    if rest is None:
        return None
    plain.update(rest[0])
    sig = scalar_signature(plain)
    return None if sig is None else (plain, sig)


def _run(
    rule: Rule,
    hp: Mapping[str, Any],
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[MutableMapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    srow: Sequence[int],
    grad_scale: torch.Tensor | None,
    found_inf: torch.Tensor | None,
    cache: dict[str, Any] | None = None,
) -> None:
    """Bucket the tensors by kernel and dtypes, launch each bucket, run the rest eagerly."""
    if not params:
        return
    active = tuple(b.when(hp) for b in rule.buffers)
    names = [b.name for b, on in zip(rule.buffers, active) if on]
    pairs = [_signature(sc) for sc in rows]
    plain = [None if ps is None else ps[0] for ps in pairs]
    graphs = [None if ps is None else _graph_for(rule, active, *ps) for ps in pairs]
    on_device = any(isinstance(v, Lanes) for sc in rows for v in sc.values())
    masters = [mw.wants_master(hp, p) for p in params]
    device = params[0].device

    # (graph, codes, master) -> (tensor indices, columns, layout or None)
    buckets: dict[tuple, tuple[Sequence[int], list[list[torch.Tensor]], Any]] = {}
    eager: list[int] = []
    layout = None
    if len(rows) == 1 and graphs[0] is not None and not any(masters):
        # the common case, checked column-wise and only where a column changed (as on the CPU)
        cols = [list(params), list(grads)]
        cols += [list(map(operator.itemgetter(nm), states)) for nm in names]
        layout = _uniform_layout(cols, cache, device)
        if layout is not None:
            buckets[(0, layout.codes, False)] = (range(len(params)), cols, layout)
    if layout is None:
        split: dict[tuple, list[int]] = defaultdict(list)
        for i, (p, g, st) in enumerate(zip(params, grads, states)):
            r = srow[i]
            arrays = [g, *(st[nm] for nm in names)]
            if masters[i]:
                arrays.append(st[mw.MASTER_KEY])
            codes = _codes(p, arrays, device) if graphs[r] is not None else None
            if codes is None:
                eager.append(i)
            else:
                split[(id(graphs[r]), codes, masters[i])].append(i)
        for key, idx in split.items():
            cols = [[params[i] for i in idx], [grads[i] for i in idx]]
            cols += [[states[i][nm] for i in idx] for nm in names]
            if key[2]:
                cols.append([states[i][mw.MASTER_KEY] for i in idx])
            buckets[key] = (idx, cols, None)

    interpret = interpreted(device)
    block = INTERPRETER_BLOCK if interpret else BLOCK
    unscale = grad_scale is not None
    found = found_inf is not None
    for (_, codes, master), (idx, cols, lay) in buckets.items():
        graph = graphs[srow[idx[0]]]
        assert graph is not None
        storage = tuple(_STORAGE.get(c, c) for c in codes)
        if lay is not None:
            sizes, kept = lay.sizes, lay.backend
            aligned = kept.get("aligned")
            if aligned is None:
                aligned = kept["aligned"] = not (lay.table & 15).any()
        else:
            sizes = [params[i].numel() * (2 if codes[0][0] == "c" else 1) for i in idx]
            aligned = not any(t.data_ptr() & 15 for col in cols for t in col)
        kern = _kernel_for(rule, graph, active, storage, master, unscale, found, interpret, aligned)
        if on_device:  # one row per tensor, computed on the device
            sc = rows[0]
            scal = torch.stack(
                [evaluate_lanes(node, sc, len(params), device) for node in kern.scalars]
                or [torch.zeros(len(params), dtype=torch.float64, device=device)],
                1,
            )
            scal = scal[torch.tensor(idx, device=device)] if len(idx) != len(params) else scal
            srows = _index_column(len(idx), device, per_tensor=True)
        else:
            used = sorted({srow[i] for i in idx})
            table = [[evaluate(node, plain[r]) for node in kern.scalars] or [0.0] for r in used]  # type: ignore[arg-type]
            scal = torch.tensor(table, dtype=torch.float64).to(device)
            if len(used) == 1:
                srows = _index_column(len(idx), device, per_tensor=False)
            else:
                renum = {r: k for k, r in enumerate(used)}
                srows = torch.tensor([renum[srow[i]] for i in idx], dtype=torch.int32).to(device)
        if lay is not None:
            addrs = lay.backend.get(kern.order)
            if addrs is None:
                flat = lay.table_for(kern.order).reshape(-1)
                addrs = lay.backend[kern.order] = torch.from_numpy(flat.copy()).to(device)
        else:
            addrs = _address_table([cols[j] for j in kern.order], device, cache)
        chunk_t, chunk_o, numels = chunk_table(sizes, device)
        nchunks = int(chunk_t.numel())
        if nchunks:
            _launch(
                kern.fn,
                (nchunks,),
                addrs,
                numels,
                chunk_t,
                chunk_o,
                srows,
                scal,
                grad_scale if unscale else scal,
                found_inf if found else scal,
                block=block,
                interpret=interpret,
                NS=len(kern.slots),
                NK=max(1, len(kern.scalars)),
            )
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
        if found and float(found_inf) != 0.0:  # type: ignore[arg-type]
            return
        scalars = [_host_scalars(rows[srow[i]], i) for i in eager]
        _eager(rule, hp, eager, params, grads, states, scalars, grad_scale)


_INDEX: dict[tuple, torch.Tensor] = {}


def _index_column(n: int, device: torch.device, per_tensor: bool) -> torch.Tensor:
    """Each tensor's row of the scalar table: its own (``per_tensor``) or row 0 for all
    (int32, on ``device``; remembered, as the same bucket comes back every step)."""
    key = (n, device, per_tensor)
    col = _INDEX.get(key)
    if col is None:
        col = (
            torch.arange(n, dtype=torch.int32) if per_tensor else torch.zeros(n, dtype=torch.int32)
        )
        col = _INDEX[key] = col.to(device)
        if len(_INDEX) > 32:
            _INDEX.pop(next(iter(_INDEX)))
    return col


def _host_scalars(sc: Mapping[str, Any], i: int) -> Mapping[str, Any]:
    """Tensor ``i``'s scalars as Python values (reading device lanes: the eager fallback)."""
    if not any(isinstance(v, Lanes) for v in sc.values()):
        return sc
    return {k: (float(v.t[i]) if isinstance(v, Lanes) else v) for k, v in sc.items()}
