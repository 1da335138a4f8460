"""Turn a traced update (:mod:`polyoptim.kernels.trace`) into the source of a Numba kernel.

The generated module has two functions:

* ``body(lo, hi, <one address per array>, <one float64 per host scalar>, gscale)`` -- the
  element loop over ``[lo, hi)`` of one tensor: load every array once, compute the update, store
  every changed array once. Host-scalar expressions (``1 - beta1``, ``-step_size``) are computed
  once per call in float64, as Python computes them, then rounded to the compute type where they
  meet an element -- exactly what torch does with a Python scalar operand.
* ``kernel(rows, addrs, srow, scal, gscale)`` -- one parallel loop over work rows
  ``(tensor, lo, hi)`` covering every tensor of a bucket, so a bucket of 2000 small tensors is one
  call; ``addrs[t]`` are tensor ``t``'s array addresses and ``scal[srow[t]]`` its scalars.

Numbers: each element operation is done in the compute type (float32, or float64 for float64
parameters) in the rule's order, so float32/float64 results equal the eager kernel's up to
torch's own vectorization choices (``lerp``'s fused multiply-add). bfloat16 and float16 arrays are
widened to float32 on load and rounded once on store (torch's fused kernels do the same).

The source is a pure function of its inputs, so its hash names the on-disk module and Numba's
cache: a new process, or a later run, loads the compiled kernel instead of compiling it again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .trace import Graph, Node, walk

__all__ = ["KernelSource", "generate"]

#: storage type of an array slot -> numpy type of its ``carray`` view
_ARRAY_TYPE = {"f32": "np.float32", "f64": "np.float64", "bf16": "np.uint16", "f16": "np.uint16"}
_CT = {"f32": "np.float32", "f64": "np.float64"}

_ELEM_BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
_COMPARE = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
_ELEM_CALL = {
    "sqrt": "o.sqrt",
    "abs": "o.abs_",
    "maximum": "o.maximum",
    "minimum": "o.minimum",
    "clamp": "o.clamp",
    "where": "o.where",
}


@dataclass(frozen=True)
class KernelSource:
    """A generated kernel module.

    Attributes:
        text: the module's Python source.
        slots: array slots in ``addrs`` column order (``p``, ``g``, ``b0``, ..., ``m``).
        scalars: host-scalar names in ``scal`` column order.
        written: the slots the kernel stores to.
        streamed: the slots it writes with streaming stores; the kernel needs each of them
            64-byte aligned (see :func:`polyoptim.kernels.numba_ops.stream_store`).
    """

    text: str
    slots: tuple[str, ...]
    scalars: tuple[str, ...]
    written: tuple[str, ...] = ()
    streamed: tuple[str, ...] = ()


def _float_literal(x: float) -> str:
    if math.isnan(x):
        return "np.nan"
    if math.isinf(x):
        return "np.inf" if x > 0 else "-np.inf"
    return repr(float(x))


def generate(
    graph: Graph,
    dtypes: Mapping[str, str],
    *,
    master: bool = False,
    unscale: bool = False,
    stream: bool = False,
    header: str = "",
) -> KernelSource:
    """The Numba source of the kernel for one traced update and one dtype configuration.

    Args:
        graph: the traced update.
        dtypes: storage type (``f32``, ``f64``, ``bf16``, ``f16``) of every slot the graph reads
            or writes (``p``, ``g``, ``b<i>``); ``m`` (the float32 master copy) when ``master``.
        master: ``p`` is read from and written to the master copy ``m``, and also written,
            rounded, to the parameter ``p``.
        unscale: divide the gradient by ``gscale`` first and store the unscaled gradient back
            (``GradScaler`` with a fused optimizer).
        stream: write the float32/float64 arrays the update writes without reading with
            streaming stores (they then must be 64-byte aligned).
        header: a line for the module docstring (what the kernel is for).

    Returns:
        The module source with its slot and scalar column orders.
    """
    ct = "f64" if dtypes["p"] == "f64" and not master else "f32"
    CT = _CT[ct]
    read = graph.slots_read() | ({"g"} if unscale else set())
    written = set(graph.outputs) | ({"g"} if unscale else set())
    order = ["p", "g"] + sorted((s for s in read | written if s.startswith("b")), key=_slot_key)
    slots = [s for s in order if s in read | written]
    if master:
        slots.append("m")
    scalars = graph.scalar_names()

    pro: list[str] = []  # per-call prologue (float64 host arithmetic, casts)
    loop: list[str] = []  # per-element body
    names: dict[int, str] = {}
    casts: dict[int, str] = {}

    def sname(node: Node) -> str:
        return names[id(node)]

    def cast(node: Node) -> str:
        """The compute-type value of an operand (a scalar is rounded once, in the prologue)."""
        if node.kind != "scalar":
            return names[id(node)]
        if id(node) not in casts:
            casts[id(node)] = f"c{len(casts)}"
            pro.append(f"{casts[id(node)]} = {CT}({names[id(node)]})")
        return casts[id(node)]

    def load(slot: str) -> str:
        src = "m" if (slot == "p" and master) else slot
        return _widen(f"x_{src}[i]", dtypes[src], ct)

    for j, name in enumerate(scalars):
        pro.append(f"s_{name} = s{j}")
    pro.append(f"ONE = {CT}(1)")
    if unscale:
        pro.append(f"GS = {CT}(gscale)")
        loop.append(f"gu = {load('g')} / GS")
        loop.append(f"x_g[i] = {_narrow('gu', dtypes['g'], ct)}")
        # use the gradient as stored, so the step sees what the eager path would
        reread = "gu" if dtypes["g"] == ct else _widen("x_g[i]", dtypes["g"], ct)
        loop.append(f"ld_g = {reread}")
    for k, node in enumerate(walk(list(graph.outputs.values()))):
        nm = f"v{k}"
        names[id(node)] = nm
        op, args = node.op, node.args
        if node.kind == "scalar":
            if op == "const":
                pro.append(f"{nm} = {_float_literal(args[0])}")
            elif op == "scalar":
                pro.append(f"{nm} = s_{args[0]}")
            elif op in _ELEM_BINARY:
                pro.append(f"{nm} = {sname(args[0])} {_ELEM_BINARY[op]} {sname(args[1])}")
            elif op == "pow":
                pro.append(f"{nm} = {sname(args[0])} ** {sname(args[1])}")
            elif op == "neg":
                pro.append(f"{nm} = -{sname(args[0])}")
            elif op == "sqrt":
                pro.append(f"{nm} = np.sqrt({sname(args[0])})")
            elif op == "abs":
                pro.append(f"{nm} = abs({sname(args[0])})")
            elif op in ("maximum", "minimum"):
                fn = "max" if op == "maximum" else "min"
                pro.append(f"{nm} = {fn}({sname(args[0])}, {sname(args[1])})")
            elif op == "clamp":
                x, lo, hi = (sname(a) for a in args)
                pro.append(f"{nm} = min(max({x}, {lo}), {hi})")
            else:  # pragma: no cover - trace only builds the ops above
                raise ValueError(f"scalar op {op}")
            continue
        if op == "load":
            slot = args[0]
            expr = "ld_g" if (slot == "g" and unscale) else load(slot)
        elif op == "splat":
            expr = cast(args[0])
        elif op in _ELEM_BINARY:
            expr = f"{cast(args[0])} {_ELEM_BINARY[op]} {cast(args[1])}"
        elif op == "pow":
            expr = f"{CT}(o.pow_({cast(args[0])}, {cast(args[1])}))"
        elif op == "neg":
            expr = f"-{cast(args[0])}"
        elif op == "sign":
            expr = f"o.sign({cast(args[0])}, ONE)"
        elif op == "fma":
            expr = f"o.fma({', '.join(cast(a) for a in args)})"
        elif op == "lerp":
            expr = f"o.lerp({', '.join(cast(a) for a in args)}, ONE)"
        elif op in _ELEM_CALL:
            expr = f"{_ELEM_CALL[op]}({', '.join(cast(a) for a in args)})"
        elif op in _COMPARE:
            expr = f"{cast(args[0])} {_COMPARE[op]} {cast(args[1])}"
        elif op == "and":
            expr = f"{cast(args[0])} and {cast(args[1])}"
        elif op == "or":
            expr = f"{cast(args[0])} or {cast(args[1])}"
        elif op == "not":
            expr = f"not {cast(args[0])}"
        else:  # pragma: no cover
            raise ValueError(f"element op {op}")
        loop.append(f"{nm} = {expr}")
    # an array written but never read goes out with streaming stores (no write-allocate read)
    streamed = {
        s for s in graph.outputs if stream and s not in read and dtypes[s] in ("f32", "f64")
    }
    for slot, node in graph.outputs.items():
        value = cast(node)
        if slot == "p" and master:
            loop.append(f"x_m[i] = {_narrow(value, 'f32', ct)}")
        stored = _narrow(value, dtypes[slot], ct)
        if slot in streamed:
            loop.append(f"o.stream_store(x_{slot}, i, {stored})")
        else:
            loop.append(f"x_{slot}[i] = {stored}")

    arrays = [f"    x_{s} = carray(o.vptr(a_{s}), hi, {_ARRAY_TYPE[dtypes[s]]})" for s in slots]
    body_args = ", ".join(["lo", "hi"] + [f"a_{s}" for s in slots])
    body_args += "".join(f", s{j}" for j in range(len(scalars))) + ", gscale"
    call_args = ", ".join(
        ["rows[r, 1]", "rows[r, 2]"]
        + [f"addrs[t, {j}]" for j in range(len(slots))]
        + [f"scal[k, {j}]" for j in range(len(scalars))]
        + ["gscale"]
    )
    text = "\n".join(
        [
            f'"""Generated by polyoptim.kernels.codegen; do not edit. {header}"""',
            "import numpy as np",
            "from numba import carray, njit, prange",
            "",
            "from polyoptim.kernels import numba_ops as o",
            "",
            '_JIT = dict(error_model="numpy", cache=True, nogil=True)',
            "",
            "",
            "@njit(**_JIT)",
            f"def body({body_args}):",
            *arrays,
            *(f"    {line}" for line in pro),
            "    for i in range(np.uint64(lo), np.uint64(hi)):",
            *(f"        {line}" for line in loop),
            *(["    o.store_fence()"] if streamed else []),
            "",
            "",
            "@njit(parallel=True, **_JIT)",
            "def kernel(rows, addrs, srow, scal, gscale):",
            "    for r in prange(rows.shape[0]):",
            "        t = rows[r, 0]",
            "        k = srow[t]",
            f"        body({call_args})",
            "",
        ]
    )
    stored = written | ({"m"} if master and "p" in graph.outputs else set())
    return KernelSource(
        text,
        tuple(slots),
        tuple(scalars),
        tuple(s for s in slots if s in stored),
        tuple(s for s in slots if s in streamed),
    )


def _slot_key(slot: str) -> int:
    return int(slot[1:])


def _widen(expr: str, storage: str, ct: str) -> str:
    """A stored value as the compute type."""
    if storage == "bf16":
        expr = f"o.bf16_load({expr})"
        storage = "f32"
    elif storage == "f16":
        expr = f"o.f16_load({expr})"
        storage = "f32"
    return expr if storage == ct else f"{_CT[ct]}({expr})"


def _narrow(expr: str, storage: str, ct: str) -> str:
    """A compute-type value as stored (rounded to nearest-even)."""
    if storage == ct:
        return expr
    if storage == "bf16":
        return f"o.bf16_store(np.float32({expr}))" if ct != "f32" else f"o.bf16_store({expr})"
    if storage == "f16":
        return f"o.f16_store(np.float32({expr}))" if ct != "f32" else f"o.f16_store({expr})"
    return f"{_CT[storage]}({expr})"


def slot_order(n_buffers: int) -> Sequence[str]:
    """Every slot name a rule with ``n_buffers`` buffers may use, in column order."""
    return ["p", "g", *(f"b{i}" for i in range(n_buffers)), "m"]
