"""The lean non-fused kernels: a rule traced once into a program of in-place torch ops.

The reference kernels (:mod:`polyoptim.kernels.eager`) evaluate a rule's ``update`` on whole
tensors; since an update returns new values, every operation allocates and moves a
parameter-sized tensor that torch's hand-written in-place code does not. Here the update is
traced instead (:func:`polyoptim.kernels.trace.trace`, with :class:`TorchTraceOps` recording
torch's fused ops -- ``add(alpha=)``, ``addcmul``, ``addcdiv``, ``lerp`` -- as single nodes) and
turned into a short program:

* every node of the graph becomes the torch op the eager kernel would have called on it, so
  each value is rounded exactly as there (``s / t`` is torch's ``t.reciprocal() * s``, ``s - t``
  its ``rsub``, ...): results are bit-identical with the eager kernel;
* a liveness pass decides where each value lives: the state buffer or parameter it becomes
  (``exp_avg.lerp_(grad, 1 - β1)``), an operand that dies with it (``denom.add_(eps)``), or a
  temporary that is reused once dead; the gradient and unwritten buffers are never written;
* the for-loop program is generated Python source (one call per tensor, direct torch calls);
  the foreach program runs the same instructions with ``torch._foreach_*_`` over a bucket,
  per-tensor scalars (each tensor's own ``step``) passed as scalar lists.

A configuration the program cannot express -- a rule that does not trace (data-dependent
control flow), scalars that are tensors, arrays of mixed dtypes, sparse gradients, autograd
through the step (``differentiable=True``) -- is left to the eager kernel: :func:`program_for`
returns None.

Example:
    >>> import torch
    >>> from polyoptim.rules.sgd import sgd
    >>> sc = dict(lr=0.1, momentum=0.9, dampening=0.0, nesterov=False, first=False)
    >>> prog = program_for(sgd, (True,), sc)
    >>> print(prog.source)
    def run(x_p, x_g, x_b0, s_momentum, v3, v5):
        x_b0.mul_(s_momentum)
        x_b0.add_(x_g, alpha=v3)
        x_p.add_(x_b0, alpha=v5)
    <BLANKLINE>
    >>> prog.scalar_names, prog.scalars_fn(sc)   # 1 - dampening, -lr: once per distinct scalars
    (('s_momentum', 'v3', 'v5'), (0.9, 1.0, -0.1))
    >>> p, g, buf = torch.ones(2), torch.ones(2), torch.ones(2)
    >>> prog.single(p, g, buf, *prog.scalars_fn(sc)); p, buf
    (tensor([0.8100, 0.8100]), tensor([1.9000, 1.9000]))
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .ops import ScalarList
from .trace import Elem, Graph, Node, TraceError, TraceOps, _lift, scalar_signature, trace, walk

__all__ = ["Program", "TorchTraceOps", "program_for", "run_program_foreach"]


# -- tracing at the level of torch's ops ----------------------------------------------------------
def _fused(op: str, *args: Any) -> Elem:
    nodes = tuple(_lift(a) for a in args)
    return Elem(Node(op, nodes, "elem"))


class TorchTraceOps(TraceOps):
    """:class:`~polyoptim.kernels.trace.TraceOps` that keeps torch's fused ops whole.

    ``add(x, y, alpha)``, ``addcmul`` and ``addcdiv`` become one node each (``axpy``,
    ``addcmul``, ``addcdiv``) instead of their per-element decomposition, so the program calls
    the same torch op -- with its own rounding, which differs between devices -- as the eager
    kernel. On host scalars they are the scalar arithmetic of :class:`TraceOps`."""

    @staticmethod
    def add(x: Any, y: Any, alpha: Any) -> Any:
        if _lift(x).kind == "scalar" and _lift(y).kind == "scalar":
            return TraceOps.add(x, y, alpha)
        return _fused("axpy", x, y, alpha)

    @staticmethod
    def addcmul(x: Any, a: Any, b: Any, value: Any) -> Any:
        return _fused("addcmul", x, a, b, value)

    @staticmethod
    def addcdiv(x: Any, a: Any, b: Any, value: Any) -> Any:
        return _fused("addcdiv", x, a, b, value)


# -- from a graph to instructions -----------------------------------------------------------------
_SWAP = {"add": "add", "mul": "mul", "sub": "rsub", "div": "rdiv", "pow": "rpow"}
_MASK_OPS = {"lt", "le", "gt", "ge", "eq", "ne", "and", "or", "not"}
#: element ops whose two element operands may be exchanged without changing a bit
_COMMUTE = {"add", "mul", "maximum", "minimum"}
#: how many leading operands must be per-element, per op (the rest are host scalars or either)
_SHAPE: dict[str, str] = {
    # e: per element, s: host scalar, x: either, m: mask
    "add": "ex",
    "sub": "ex",
    "mul": "ex",
    "div": "ex",
    "rsub": "es",
    "rdiv": "es",
    "pow": "ex",
    "rpow": "es",
    "neg": "e",
    "abs": "e",
    "sign": "e",
    "sqrt": "e",
    "reciprocal": "e",
    "maximum": "ee",
    "minimum": "ee",
    "clamp_min": "es",
    "clamp_max": "es",
    "clamp": "ess",
    "lerp": "eex",
    "axpy": "exs",
    "addcmul": "eees",
    "addcdiv": "eees",
    "lt": "ex",
    "le": "ex",
    "gt": "ex",
    "ge": "ex",
    "eq": "ex",
    "ne": "ex",
    "and": "mm",
    "or": "mm",
    "not": "m",
    "where": "mxx",
}


def _resolve(node: Node) -> tuple[str, tuple[Node, ...]]:
    """The torch op a node stands for, with its operands in that op's order (a host scalar
    on the left of ``-``, ``/``, ``**`` becomes torch's reflected op, as the eager kernel's
    ``Tensor.__rsub__``/``__rtruediv__``/``__rpow__`` compute it)."""
    op, args = node.op, node.args
    if op == "div" and args[0].op == "const" and args[0].args[0] == 1.0:
        return "reciprocal", args[1:]  # torch's ``1 / t`` is ``t.reciprocal() * 1``: exact
    if op in _SWAP and args[0].kind == "scalar":
        return _SWAP[op], (args[1], args[0])
    if op in ("maximum", "minimum") and args[1].kind == "scalar":
        return ("clamp_min" if op == "maximum" else "clamp_max"), args
    if op not in _SHAPE:
        raise TraceError(f"no torch op for {op}")
    return op, args


def _check(op: str, args: Sequence[Node]) -> None:
    shape = _SHAPE[op]
    if len(shape) != len(args):
        raise TraceError(f"{op} with {len(args)} operands")
    for want, a in zip(shape, args):
        kind = {"elem": "e", "mask": "m", "scalar": "s"}[a.kind]
        if want != "x" and want != kind or (want == "x" and kind == "m"):
            raise TraceError(f"{op} cannot take a {a.kind} there")


@dataclass
class Instr:
    """One op of a program: ``dest ← op(*args)``.

    ``args`` are location names (per-element values) or scalar variable names; ``mode`` is
    ``new`` (allocate ``dest``), ``self`` (in place into the first operand, which is ``dest``)
    or ``out`` (write into ``dest``, an existing location)."""

    op: str
    args: tuple[str, ...]
    kinds: str
    dest: str
    mode: str


@dataclass
class Program:
    """A traced update as in-place torch ops.

    Attributes:
        graph: the trace it was made from (its guards say which scalars it serves).
        scalar_code: lines computing the host scalars the ops use (Python arithmetic).
        instrs: the ops, in order.
        copies: ``(slot, location)``: final copies of values that could not be computed in
            their own slot; ``fills``: ``(slot, scalar)`` outputs that are a host scalar.
        source: the for-loop function's Python source (:attr:`single`).
    """

    graph: Graph
    slots: tuple[str, ...]
    scalar_vars: tuple[str, ...]
    scalar_code: list[str]
    instrs: list[Instr]
    copies: list[tuple[str, str]]
    fills: list[tuple[str, str]]
    source: str = ""
    #: ``single(x_p, x_g, x_b0, ..., *scalars_fn(sc))``: the program on one tensor
    single: Callable[..., None] | None = field(default=None, repr=False)
    #: ``scalars_fn(sc)``: the host values the ops read (Python arithmetic), in the order of
    #: ``scalar_names``; ``consts``: the literals among the operands
    scalars_fn: Callable[..., tuple] | None = field(default=None, repr=False)
    scalar_names: tuple[str, ...] = ()
    consts: dict[str, float] = field(default_factory=dict)


def build(graph: Graph, n_buffers: int) -> Program:
    """Lay a traced graph out as a program (locations chosen by liveness).

    Raises:
        TraceError: a node has no torch op of the required form.
    """
    outputs = _common_subexpressions(graph.outputs)
    roots = list(outputs.values())
    nodes = walk(roots)
    scalar_nodes = [n for n in nodes if n.kind == "scalar"]
    order = [n for n in nodes if n.kind != "scalar" and n.op not in ("load", "splat")]
    slots = ("p", "g", *(f"b{i}" for i in range(n_buffers)))
    written = {s for s, n in outputs.items()}
    # outputs of each node (a value may be the new value of two slots: ASGD's p and ax)
    out_of: dict[int, list[str]] = {}
    for s, n in outputs.items():
        out_of.setdefault(id(n), []).append(s)
    # ancestors of each written slot's value: what may be computed in that slot's memory
    anc: dict[str, set[int]] = {s: {id(x) for x in walk([n])} for s, n in outputs.items()}

    resolved: dict[int, tuple[str, tuple[Node, ...]]] = {}
    for n in order:
        op, args = _resolve(n)
        _check(op, args)
        resolved[id(n)] = (op, args)
    end = len(order)
    last: dict[int, int] = {}
    consumers: dict[int, int] = {}
    for i, n in enumerate(order):
        for a in resolved[id(n)][1]:
            if a.kind != "scalar":
                last[id(a)] = i
                consumers[id(a)] = consumers.get(id(a), 0) + 1
    for n in roots:
        last[id(n)] = end  # an output lives to the end

    names: dict[int, str] = {}
    code: list[str] = []
    used_scalars: list[str] = []
    for k, n in enumerate(scalar_nodes):
        nm = f"v{k}"
        if n.op == "const" and math.isfinite(n.args[0]):
            nm = repr(n.args[0])  # a literal
        elif n.op == "const":
            code.append(f"{nm} = float({str(n.args[0])!r})")
        elif n.op == "scalar":
            nm = f"s_{n.args[0]}"
            used_scalars.append(n.args[0])
        else:
            code.append(f"{nm} = {_scalar_expr(n.op, [names[id(a)] for a in n.args])}")
        names[id(n)] = nm

    loc: dict[int, str] = {}
    occupant: dict[str, int | None] = {}
    for n in nodes:
        if n.op == "load":
            loc[id(n)] = f"x_{n.args[0]}"
            occupant[f"x_{n.args[0]}"] = id(n)
    free: dict[str, list[str]] = {"t": [], "k": []}
    count = {"t": 0, "k": 0}
    instrs: list[Instr] = []

    def alive_after(node_id: int | None, i: int) -> bool:
        return node_id is not None and last.get(node_id, -1) > i

    for i, n in enumerate(order):
        op, args = resolved[id(n)]
        pool = "k" if n.kind == "mask" else "t"
        elem_args = [a for a in args if a.kind != "scalar"]
        dest = None
        # 1. the slot this value becomes, once what it holds is no longer needed
        for s in out_of.get(id(n), []):
            x = f"x_{s}"
            if pool == "t" and not alive_after(occupant.get(x), i):
                dest = x
                break
        # 2. an operand dying here: a temporary, or a written slot this value flows into
        if dest is None:
            for a in elem_args:
                la = loc[id(a)]
                if a.kind != n.kind or alive_after(id(a), i):
                    continue
                if la.startswith("x_"):
                    # only a value on a chain into the slot's new value: one read elsewhere
                    # would keep the slot busy when its new value is due
                    s = la[2:]
                    if (
                        s not in written
                        or id(n) not in anc[s]
                        or occupant.get(la) != id(a)
                        or consumers.get(id(n), 0) > 1
                    ):
                        continue
                elif la[0] != pool:
                    continue
                if id(a) in out_of:
                    continue
                dest = la
                break
        # 3. a dead temporary, or a new one
        mode = "out"
        if dest is None:
            if free[pool]:
                dest = free[pool].pop()
            else:
                dest = f"{pool}{count[pool]}"
                count[pool] += 1
                mode = "new"
        if mode != "new":
            first = loc[id(args[0])] if args[0].kind != "scalar" else None
            if first == dest:
                mode = "self"
            elif (
                op in _COMMUTE
                and len(args) == 2
                and args[1].kind != "scalar"
                and loc[id(args[1])] == dest
            ):
                args = (args[1], args[0])
                mode = "self"
        kinds = "".join({"elem": "e", "mask": "m", "scalar": "s"}[a.kind] for a in args)
        ops = tuple(names[id(a)] if a.kind == "scalar" else loc[id(a)] for a in args)
        instrs.append(Instr(op, ops, kinds, dest, mode))
        loc[id(n)] = dest
        occupant[dest] = id(n)
        names[id(n)] = dest
        # temporaries whose value dies here are free for later values
        for a in {id(a): a for a in elem_args}.values():
            la = loc[id(a)]
            if last.get(id(a)) == i and la != dest and la[0] in "tk" and occupant.get(la) == id(a):
                free[la[0]].append(la)
                occupant[la] = None

    copies: list[tuple[str, str]] = []
    fills: list[tuple[str, str]] = []
    for s, n in outputs.items():
        if n.op == "splat":
            fills.append((f"x_{s}", names[id(n.args[0])]))
        elif loc[id(n)] != f"x_{s}":
            copies.append((f"x_{s}", loc[id(n)]))
    copies = _order_copies(copies)
    return Program(
        graph,
        slots,
        tuple(dict.fromkeys(used_scalars)),
        code,
        instrs,
        copies,
        fills,
    )


def _common_subexpressions(outputs: Mapping[str, Node]) -> dict[str, Node]:
    """The outputs with equal subexpressions merged (a rule that writes ``s < 0`` twice
    computes it once): same op on the same operands gives the same bits."""
    canon: dict[int, Node] = {}
    seen: dict[tuple, Node] = {}

    def key_of(a: Any) -> Any:
        if isinstance(a, Node):
            return ("node", id(canon[id(a)]))
        if isinstance(a, float):
            return ("float", repr(a))  # keeps -0.0 and 0.0, and NaN, apart
        return ("value", type(a).__name__, a)

    for n in walk(list(outputs.values())):
        args = tuple(canon[id(a)] if isinstance(a, Node) else a for a in n.args)
        key = (n.op, n.kind, tuple(map(key_of, n.args)))
        rep = seen.get(key)
        if rep is None:
            rep = seen[key] = n if args == n.args else Node(n.op, args, n.kind, n.value)
        canon[id(n)] = rep
    return {s: canon[id(n)] for s, n in outputs.items()}


def _order_copies(copies: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Final copies in an order where no slot is overwritten before it is copied from (a
    cycle -- slots exchanging values -- goes through a clone)."""
    pending = list(copies)
    done: list[tuple[str, str]] = []
    while pending:
        for k, (dst, src) in enumerate(pending):
            if not any(s == dst for _, s in pending if (_, s) != (dst, src)):
                done.append(pending.pop(k))
                break
        else:  # a cycle: read the first destination's value out first
            dst, src = pending[0]
            done.append(("t_swap", dst))
            pending = [(d, "t_swap" if s == dst else s) for d, s in pending]
    return done


_SCALAR_BIN = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}


def _scalar_expr(op: str, a: list[str]) -> str:
    """Host arithmetic, as the eager kernel does it with Python numbers."""
    if op in _SCALAR_BIN:
        return f"{a[0]} {_SCALAR_BIN[op]} {a[1]}"
    if op == "neg":
        return f"-{a[0]}"
    if op == "abs":
        return f"abs({a[0]})"
    if op == "sqrt":
        return f"_math.sqrt({a[0]})"
    if op == "maximum":
        return f"max({a[0]}, {a[1]})"
    if op == "minimum":
        return f"min({a[0]}, {a[1]})"
    if op == "clamp":
        return f"min(max({a[0]}, {a[1]}), {a[2]})"
    raise TraceError(f"host scalar op {op}")


# -- the for-loop program: Python source, one call per tensor -------------------------------------
_METHOD = {  # op -> in-place method, for ``self`` mode on a plain signature
    "add": "add_",
    "sub": "sub_",
    "mul": "mul_",
    "div": "div_",
    "pow": "pow_",
    "neg": "neg_",
    "abs": "abs_",
    "sign": "sign_",
    "sqrt": "sqrt_",
    "reciprocal": "reciprocal_",
    "clamp_min": "clamp_min_",
    "clamp_max": "clamp_max_",
    "clamp": "clamp_",
    "lerp": "lerp_",
}
_FUNC = {  # op -> torch function taking ``out=``
    "add": "torch.add",
    "sub": "torch.sub",
    "mul": "torch.mul",
    "div": "torch.div",
    "pow": "torch.pow",
    "neg": "torch.neg",
    "abs": "torch.abs",
    "sign": "torch.sign",
    "sqrt": "torch.sqrt",
    "reciprocal": "torch.reciprocal",
    "clamp_min": "torch.clamp_min",
    "clamp_max": "torch.clamp_max",
    "clamp": "torch.clamp",
    "lerp": "torch.lerp",
    "maximum": "torch.maximum",
    "minimum": "torch.minimum",
    "lt": "torch.lt",
    "le": "torch.le",
    "gt": "torch.gt",
    "ge": "torch.ge",
    "eq": "torch.eq",
    "ne": "torch.ne",
    "and": "torch.bitwise_and",
    "or": "torch.bitwise_or",
    "not": "torch.bitwise_not",
}


def _single_lines(ins: Instr) -> list[str]:
    op, a, d, mode = ins.op, ins.args, ins.dest, ins.mode
    if op in _FUNC:
        call = ", ".join(a)
        if mode == "self" and op in _METHOD:
            return [f"{a[0]}.{_METHOD[op]}({', '.join(a[1:])})"]
        if mode == "new":
            return [f"{d} = {_FUNC[op]}({call})"]
        return [f"{_FUNC[op]}({call}, out={d})"]
    if op in ("axpy", "addcmul", "addcdiv"):
        kw = "alpha" if op == "axpy" else "value"
        pos, val = ", ".join(a[1:-1]), a[-1]
        if mode == "self":
            meth = "add_" if op == "axpy" else f"{op}_"
            return [f"{a[0]}.{meth}({pos}, {kw}={val})"]
        fn = "torch.add" if op == "axpy" else f"torch.{op}"
        if mode == "new":
            return [f"{d} = {fn}({a[0]}, {pos}, {kw}={val})"]
        return [f"{fn}({a[0]}, {pos}, {kw}={val}, out={d})"]
    if op == "rsub":  # s - t, rounded once like torch.rsub: -(t - s)
        if mode == "new":
            return [f"{d} = torch.rsub({a[0]}, {a[1]})"]
        if mode == "self":
            return [f"{a[0]}.sub_({a[1]}).neg_()"]
        return [f"torch.sub({a[0]}, {a[1]}, out={d}).neg_()"]
    if op == "rdiv":  # s / t is torch's t.reciprocal() * s
        if mode == "new":
            return [f"{d} = {a[0]}.reciprocal().mul_({a[1]})"]
        if mode == "self":
            return [f"{a[0]}.reciprocal_().mul_({a[1]})"]
        return [f"torch.reciprocal({a[0]}, out={d}).mul_({a[1]})"]
    if op == "rpow":
        if mode == "new":
            return [f"{d} = torch.pow({a[1]}, {a[0]})"]
        return [f"torch.pow({a[1]}, {a[0]}, out={d})"]
    if op == "where":
        m, x, y = a
        kx, ky = ins.kinds[1], ins.kinds[2]
        if mode == "new":
            return [f"{d} = torch.where({m}, {x}, {y})"]
        if kx == "s" and ky == "s":
            return [f"{d}.copy_(torch.where({m}, {x}, {y}))"]
        if kx == "e" and ky == "e":
            return [f"torch.where({m}, {x}, {y}, out={d})"]
        if kx == "s":  # where(m, s, t): t with s filled in where m holds
            pre = [] if y == d else [f"{d}.copy_({y})"]
            return [*pre, f"{d}.masked_fill_({m}, {x})"]
        pre = [] if x == d else [f"{d}.copy_({x})"]
        return [*pre, f"{d}.masked_fill_(torch.bitwise_not({m}), {y})"]
    raise TraceError(f"no emission for {op}")  # pragma: no cover - _SHAPE lists them all


def _source(prog: Program) -> str:
    """The for-loop function: ``run(x_p, x_g, x_b0, ..., *host values)`` -- the host values
    (:attr:`Program.scalar_names`, from :attr:`Program.scalars_fn`) are computed once for
    every tensor sharing them, so a call per tensor is its torch ops only."""
    args = ", ".join([f"x_{s}" for s in prog.slots] + list(prog.scalar_names))
    body: list[str] = []
    for ins in prog.instrs:
        body += _single_lines(ins)
    for dst, src in prog.copies:
        body.append(f"{dst} = {src}.clone()" if dst == "t_swap" else f"{dst}.copy_({src})")
    for dst, val in prog.fills:
        body.append(f"{dst}.fill_({val})")
    return "\n".join([f"def run({args}):"] + [f"    {b}" for b in body or ["pass"]]) + "\n"


def _compile(prog: Program) -> None:
    used = {a for ins in prog.instrs for a, k in zip(ins.args, ins.kinds) if k == "s"}
    used |= {v for _, v in prog.fills}
    # host values the ops read: variables (computed by ``scalars_fn``) and literals
    prog.scalar_names = tuple(sorted(a for a in used if a.isidentifier()))
    prog.consts = {a: float(a) for a in used if not a.isidentifier()}
    env: dict[str, Any] = {"torch": torch, "_math": math}
    src = ["def scal(sc):"]
    src += [f"    s_{nm} = sc[{nm!r}]" for nm in prog.scalar_vars]
    src += [f"    {c}" for c in prog.scalar_code]
    names = prog.scalar_names
    src.append(f"    return ({', '.join(names)}{',' if names else ''})")
    exec(compile("\n".join(src) + "\n", "<polyoptim lean scalars>", "exec"), env)  # noqa: S102
    prog.scalars_fn = env["scal"]
    prog.source = _source(prog)
    exec(compile(prog.source, f"<polyoptim lean {id(prog):x}>", "exec"), env)  # noqa: S102
    prog.single = env["run"]


# -- the cache: one traced program per configuration ----------------------------------------------
_lock = threading.RLock()
_programs: dict[tuple, list[Program] | None] = {}


def program_for(rule: Any, active: tuple[bool, ...], scalars: Mapping[str, Any]) -> Program | None:
    """The program of ``rule`` for this configuration and these host scalars (traced and
    compiled on first use, then taken from the cache when the trace's guards admit the
    scalars), or None when the update cannot run as in-place ops (use the eager kernel).

    Args:
        rule: the element-wise rule.
        active: per buffer of the rule, whether this configuration has it.
        scalars: one tensor's host scalars (``rule.prepare``'s result).
    """
    sig = scalar_signature(scalars)
    if sig is None:
        return None
    key = (rule.update, active, sig)
    progs = _programs.get(key, [])
    if progs is None:
        return None
    for prog in progs:
        if not prog.graph.guards or prog.graph.admits(scalars):
            return prog
    with _lock:
        try:
            graph = trace(rule.update, active, scalars, ops=TorchTraceOps)
            prog = build(graph, len(active))
            _compile(prog)
        except TraceError:
            _programs[key] = None
            return None
        _programs.setdefault(key, []).append(prog)  # type: ignore[union-attr]
    return prog


# -- the foreach program: the same instructions over buckets --------------------------------------
def _col(x: Any, n: int) -> Sequence[Any]:
    return x if isinstance(x, (list, tuple)) else [x] * n


def _each(fn: Callable, args: Sequence[Any], n: int) -> list[Any]:
    return [fn(*row) for row in zip(*(_col(a, n) for a in args))]


def _fe(name: str) -> tuple[Callable, Callable]:
    return getattr(torch, f"_foreach_{name}"), getattr(torch, f"_foreach_{name}_")


_FOREACH_BIN = {k: _fe(k) for k in ("add", "sub", "mul", "div", "maximum", "minimum")}
_FOREACH_BIN["clamp_min"] = _fe("clamp_min")
_FOREACH_BIN["clamp_max"] = _fe("clamp_max")
_FOREACH_UN = {k: _fe(k) for k in ("neg", "abs", "sign", "sqrt", "reciprocal")}


def _foreach_step(ins: Instr, env: dict[str, Any], n: int) -> None:
    """Run one instruction over a bucket (``env``: location -> list of tensors, scalar name ->
    a number or a :class:`~polyoptim.kernels.ops.ScalarList`)."""
    op, mode, d = ins.op, ins.mode, ins.dest
    a = [env[x] for x in ins.args]
    if mode == "out" and d[0] in "tk":
        # a dead temporary: let it go and take a new one (no foreach op writes into a third
        # list; the peak is the same)
        del env[d]
        mode = "new"
    per_tensor_scalars = any(isinstance(v, ScalarList) for v in a)
    if mode == "out":  # a state buffer or the parameter: tensor by tensor, with out=
        _single_each(ins, a, env[d], n)
        return
    if op in _FOREACH_UN:
        new, inplace = _FOREACH_UN[op]
        if mode == "self":
            inplace(a[0])
        else:
            env[d] = new(a[0])
        return
    if op in _FOREACH_BIN and not (op.startswith("clamp") and per_tensor_scalars):
        new, inplace = _FOREACH_BIN[op]
        other = list(a[1]) if isinstance(a[1], ScalarList) else a[1]
        if mode == "self":
            inplace(a[0], other)
        else:
            env[d] = new(a[0], other)
        return
    if op == "lerp" and not isinstance(a[2], ScalarList):
        if mode == "self":
            torch._foreach_lerp_(*a)
        else:
            env[d] = torch._foreach_lerp(*a)
        return
    if op == "axpy" and not per_tensor_scalars and isinstance(a[1], (list, tuple)):
        if mode == "self":
            torch._foreach_add_(a[0], a[1], alpha=a[2])
        else:
            env[d] = torch._foreach_add(a[0], a[1], alpha=a[2])
        return
    if op in ("addcmul", "addcdiv"):
        val = list(a[3]) if isinstance(a[3], ScalarList) else a[3]
        new, inplace = _fe(op)
        if mode == "self":
            inplace(a[0], a[1], a[2], val)
        else:
            env[d] = new(a[0], a[1], a[2], val)
        return
    if op == "rdiv":
        s = list(a[1]) if isinstance(a[1], ScalarList) else a[1]
        if mode == "self":
            torch._foreach_reciprocal_(a[0])
            t = a[0]
        else:
            t = env[d] = torch._foreach_reciprocal(a[0])
        torch._foreach_mul_(t, s)
        return
    # no foreach form: tensor by tensor, with the for-loop program's own ops
    if mode == "self":
        _single_each(ins, a, a[0], n)
    else:
        env[d] = _single_each(ins, a, None, n)


_SINGLE_FN: dict[tuple[str, str, str], Callable] = {}


def _single_fn(ins: Instr, mode: str) -> Callable:
    """The for-loop program's code for one instruction, as a function of (operands..., dest)."""
    key = (ins.op, ins.kinds, mode)
    fn = _SINGLE_FN.get(key)
    if fn is None:
        names = tuple(f"a{j}" for j in range(len(ins.args)))
        first = names[0] if mode == "self" else "d"
        lines = _single_lines(Instr(ins.op, names, ins.kinds, first, mode))
        src = f"def f({', '.join(names)}, d):\n"
        src += "".join(f"    {ln}\n" for ln in lines)
        src += f"    return {first}\n"
        env: dict[str, Any] = {"torch": torch}
        exec(compile(src, "<polyoptim lean op>", "exec"), env)  # noqa: S102
        fn = _SINGLE_FN[key] = env["f"]
    return fn


def _single_each(ins: Instr, a: list[Any], dest: list[Any] | None, n: int) -> list[Any]:
    if dest is None:
        fn = _single_fn(ins, "new")
        return _each(lambda *row: fn(*row, None), a, n)
    mode = "self" if dest is a[0] else "out"
    fn = _single_fn(ins, mode)
    return _each(fn, [*a, dest], n)


def run_program_foreach(
    prog: Program,
    arrays: Mapping[str, list[torch.Tensor]],
    scalars: Sequence[Mapping[str, Any]],
) -> None:
    """Run a program over a bucket of tensors that share it.

    Args:
        prog: from :func:`program_for` (the same for every tensor of the bucket).
        arrays: slot (``p``, ``g``, ``b0``, ...) -> the bucket's tensors (real views).
        scalars: per tensor, its host scalars.
    """
    n = len(arrays["p"])
    assert prog.scalars_fn is not None and prog.single is not None
    names = prog.scalar_names
    first = scalars[0]
    if any("m" in ins.kinds or ins.op in _MASK_OPS for ins in prog.instrs):
        # per-element conditions (Rprop) have no foreach ops: tensor by tensor, the for-loop
        # program holds one tensor's temporaries at a time instead of a bucket's (as torch's
        # foreach Rprop does for its masks)
        same = scalars.count(first) == len(scalars)
        values = prog.scalars_fn(first) if same else None
        cols = [arrays[s] if s in arrays else [None] * n for s in prog.slots]
        for k, row in enumerate(zip(*cols)):
            prog.single(*row, *(values if same else prog.scalars_fn(scalars[k])))
        return
    if scalars.count(first) == len(scalars):  # one step count for the bucket: one evaluation
        values: Sequence[Any] = prog.scalars_fn(first)
    else:
        cols = zip(*map(prog.scalars_fn, scalars))
        values = [c[0] if c.count(c[0]) == n else ScalarList(c) for c in map(list, cols)]
    env: dict[str, Any] = {f"x_{s}": ts for s, ts in arrays.items()}
    env.update(prog.consts)
    env.update(zip(names, values))
    for ins in prog.instrs:
        _foreach_step(ins, env, n)
    for dst, src in prog.copies:
        if dst == "t_swap":
            env[dst] = torch._foreach_mul(env[src], 1)  # a copy
        else:
            torch._foreach_copy_(env[dst], env[src])
    for dst, val in prog.fills:
        for t, v in zip(env[dst], _col(env[val], n)):
            t.fill_(v)
