"""Turn a traced update (:mod:`polyoptim.kernels.trace`) into the source of a Triton kernel.

The Triton twin of :mod:`polyoptim.kernels.codegen`: the same graph, the same order of
operations, the same compute types; only the target differs. The generated ``kernel`` is a
multi-tensor apply, as torch's CUDA ``multi_tensor_apply`` is: one program per chunk of at most
``CHUNK`` elements of one tensor, found through a chunk table.

``kernel(addrs, numels, chunk_t, chunk_o, srow, scal, gscale, found, NS, NK, CHUNK, BLOCK)``:

* ``chunk_t[pid]``, ``chunk_o[pid]``: the tensor and element offset of program ``pid``'s chunk;
* ``addrs[t * NS + j]``: tensor ``t``'s address of array slot ``j`` (an int64, cast to a typed
  pointer in the kernel), so thousands of tensors of a bucket are one launch;
* ``numels[t]``: its element count; ``srow[t]``: its row of ``scal``;
* ``scal[row * NK + j]``: the float64 value of the ``j``-th host-scalar expression the update
  feeds to an element operation (``1 - beta1``, ``-step_size``, ...), computed where the eager
  kernel computes it -- on the host in Python floats, or on the device for ``capturable`` steps
  -- and rounded to the compute type in the kernel, as torch rounds a Python scalar operand;
* ``gscale``/``found``: ``GradScaler``'s scale and inf flag (device scalars, read in the kernel:
  no host synchronisation); with ``found != 0`` nothing is stored.

Each array is loaded once and stored once per element. bfloat16 and float16 arrays are widened to
float32 on load and rounded once (to nearest-even) on store.

Example:
    >>> from polyoptim.rules.sgd import sgd
    >>> from polyoptim.kernels.trace import trace
    >>> g = trace(sgd.update, (False,), sgd.prepare({"lr": 0.1, "momentum": 0.0,
    ...     "dampening": 0.0, "nesterov": False, "weight_decay": 0.0, "maximize": False}, {}, True))
    >>> src = generate(g, {"p": "f32", "g": "f32"})
    >>> src.slots, len(src.scalars)
    (('p', 'g'), 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .trace import Graph, Node, walk

__all__ = ["TritonSource", "generate"]

#: storage type of a slot -> Triton element type of its pointer
_POINTER = {"f32": "tl.float32", "f64": "tl.float64", "bf16": "tl.uint16", "f16": "tl.float16"}
_CT = {"f32": "tl.float32", "f64": "tl.float64"}
_BINARY = {"add": "+", "sub": "-", "mul": "*"}
_COMPARE = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
_CALL = {
    "div": "o.div",
    "sqrt": "o.sqrt",
    "abs": "tl.abs",
    "sign": "o.sign",
    "lerp": "o.lerp",
    "fma": "tl.fma",
    "maximum": "o.maximum",
    "minimum": "o.minimum",
    "clamp": "o.clamp",
    "where": "tl.where",
    "pow": "o.pow_",
}


@dataclass(frozen=True)
class TritonSource:
    """A generated Triton kernel module.

    Attributes:
        text: the module's Python source.
        slots: array slots in ``addrs`` column order (``p``, ``g``, ``b0``, ..., ``m``).
        scalars: the host-scalar expressions (graph nodes) in ``scal`` column order.
        written: the slots the kernel stores to.
    """

    text: str
    slots: tuple[str, ...]
    scalars: tuple[Node, ...]
    written: tuple[str, ...]


def generate(
    graph: Graph,
    dtypes: Mapping[str, str],
    *,
    master: bool = False,
    unscale: bool = False,
    found_inf: bool = False,
    aligned: bool = False,
    header: str = "",
) -> TritonSource:
    """The Triton source of the kernel for one traced update and one dtype configuration.

    Args:
        graph: the traced update.
        dtypes: storage type (``f32``, ``f64``, ``bf16``, ``f16``) of every slot the graph reads
            or writes (``p``, ``g``, ``b<i>``); ``m`` (the float32 master copy) when ``master``.
        master: ``p`` is read from and written to the master copy ``m``, and also written,
            rounded, to the parameter ``p``.
        unscale: divide the gradient by ``*gscale`` first and store the unscaled gradient back.
        found_inf: store nothing when ``*found`` is not zero (``GradScaler`` found inf/NaN).
        aligned: every array starts on a 16-byte boundary: the full blocks tell the compiler
            so, and it can use vector loads and stores (128 bits per thread).
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

    pro: list[str] = []  # per program: pointers, scalars
    loop: list[str] = []  # per block of elements
    names: dict[int, str] = {}
    scalars: list[Node] = []

    def operand(node: Node) -> str:
        """An element operation's operand: a value of the loop, or a host-scalar expression
        (one ``scal`` column, rounded once to the compute type per program)."""
        if node.kind != "scalar":
            return names[id(node)]
        if id(node) not in names:
            j = len(scalars)
            scalars.append(node)
            names[id(node)] = f"k{j}"
            pro.append(f"k{j} = tl.load(scal + row * NK + {j}).to({CT})")
        return names[id(node)]

    def load(slot: str) -> str:
        src = "m" if (slot == "p" and master) else slot
        return _widen(f"tl.load(q_{src} + j{_MASK})", dtypes[src], ct)

    def store(slot: str, value: str) -> str:
        return f"tl.store(q_{slot} + j, {value}{_MASK})"

    for j, s in enumerate(slots):
        pro.append(f"x_{s} = tl.load(base + {j}).to(tl.pointer_type({_POINTER[dtypes[s]]}))")
    if unscale:
        pro.append(f"GS = tl.load(gscale).to({CT})")
        loop.append(f"gu = o.div({load('g')}, GS)")
        loop.append(store("g", _narrow("gu", dtypes["g"], ct)))
        reread = (
            "gu" if dtypes["g"] == ct else _widen(_narrow("gu", dtypes["g"], ct), dtypes["g"], ct)
        )
        loop.append(f"ld_g = {reread}")
    for k, node in enumerate(walk(list(graph.outputs.values()))):
        if node.kind == "scalar":
            continue  # computed on the host (or the device) into ``scal``
        nm = f"v{k}"
        op, args = node.op, node.args
        if op == "load":
            expr = "ld_g" if (args[0] == "g" and unscale) else load(args[0])
        elif op == "splat":
            expr = f"{operand(args[0])} + tl.zeros([BLOCK], {CT})"
        elif op in _BINARY:
            expr = f"{operand(args[0])} {_BINARY[op]} {operand(args[1])}"
        elif op == "neg":
            expr = f"-{operand(args[0])}"
        elif op in _CALL:
            expr = f"{_CALL[op]}({', '.join(operand(a) for a in args)})"
        elif op in _COMPARE:
            expr = f"{operand(args[0])} {_COMPARE[op]} {operand(args[1])}"
        elif op == "and":
            expr = f"{operand(args[0])} & {operand(args[1])}"
        elif op == "or":
            expr = f"{operand(args[0])} | {operand(args[1])}"
        elif op == "not":
            expr = f"~{operand(args[0])}"
        else:  # pragma: no cover - trace only builds the ops above
            raise ValueError(f"element op {op}")
        names[id(node)] = nm
        loop.append(f"{nm} = {expr}")
    for slot, node in graph.outputs.items():
        value = operand(node)
        if slot == "p" and master:
            loop.append(store("m", _narrow(value, "f32", ct)))
        loop.append(store(slot, _narrow(value, dtypes[slot], ct)))

    def block(masked: bool) -> list[str]:
        """One block of elements from ``start``: the pointers to it, then the update."""
        hint = "tl.multiple_of(x_{0} + start, 16)" if aligned and not masked else "x_{0} + start"
        lines = [f"q_{s} = {hint.format(s)}" for s in slots]
        lines += ["live = j < hi - start"] if masked else []
        mask = ", mask=live" if masked else ""
        return [f"        {line.replace(_MASK, mask)}" for line in lines + loop]

    text = "\n".join(
        [
            f'"""Generated by polyoptim.kernels.triton_codegen; do not edit. {header}"""',
            "import triton",
            "import triton.language as tl",
            "",
            "from polyoptim.kernels import triton_ops as o",
            "",
            "",
            "@triton.jit",
            "def kernel(addrs, numels, chunk_t, chunk_o, srow, scal, gscale, found,",
            "           NS: tl.constexpr, NK: tl.constexpr, CHUNK: tl.constexpr,",
            "           BLOCK: tl.constexpr):",
            "    pid = tl.program_id(0)",
            "    t = tl.load(chunk_t + pid).to(tl.int64)",
            "    lo = tl.load(chunk_o + pid)",
            "    hi = tl.minimum(lo + CHUNK, tl.load(numels + t))",
            "    row = tl.load(srow + t).to(tl.int64)",
            "    base = addrs + t * NS",
            # inf/nan found: an empty range, nothing stored
            *(["    hi = tl.where(tl.load(found) == 0, hi, lo)"] if found_inf else []),
            *(f"    {line}" for line in pro),
            "    j = tl.arange(0, BLOCK)",
            "    full = lo + (hi - lo) // BLOCK * BLOCK",
            "    for start in range(lo, full, BLOCK):  # whole blocks: no mask",
            *block(masked=False),
            "    for start in range(full, hi, BLOCK):  # the last, partial block (if any)",
            *block(masked=True),
            "",
        ]
    )
    stored = written | ({"m"} if master and "p" in graph.outputs else set())
    return TritonSource(text, tuple(slots), tuple(scalars), tuple(s for s in slots if s in stored))


#: where a load or store takes its mask (the partial block) or none (the whole blocks)
_MASK = "\x00mask"


def _slot_key(slot: str) -> int:
    return int(slot[1:])


def _widen(expr: str, storage: str, ct: str) -> str:
    """A loaded value as the compute type."""
    if storage == "bf16":
        expr, storage = f"o.bf16_load({expr})", "f32"
    return expr if storage == ct else f"{expr}.to({_CT[ct]})"


def _narrow(expr: str, storage: str, ct: str) -> str:
    """A compute-type value as stored (rounded to nearest-even)."""
    if storage == ct:
        return expr
    if storage == "bf16":
        return f"o.bf16_store({expr})" if ct == "f32" else f"o.bf16_store({expr}.to(tl.float32))"
    if storage == "f16":
        return f"{expr}.to(tl.float16)"
    return f"{expr}.to({_CT[storage]})"
