"""Record a rule's element-wise update as an expression graph, for code generation.

A rule's ``update(ops, p, g, *buffers, **scalars)`` is plain Python over operators and ``ops``
functions. Called with symbolic stand-ins -- :class:`Elem` for the per-element values,
:class:`Scalar` for the per-tensor host scalars -- it builds a small graph of what it computes,
which :mod:`polyoptim.kernels.codegen` turns into one compiled loop. No algorithm is written a
second time: whatever rule is traced, its kernel follows.

Host-level control flow inside ``update`` is allowed and is *specialised on*:

* ``None`` scalars and buffers and ``bool`` scalars are passed as themselves, so ``if amsgrad:``
  or ``if buf is not None:`` simply take one branch; they are part of the kernel's key.
* A comparison or truth test of a numeric scalar (``if weight_decay != 0:``) takes the branch
  its traced value gives and records a :class:`Guard`; the kernel is reused only for scalars
  that pass the same guards.

Data-dependent control flow (``if g > 0:`` on an element), ``float(scalar)`` and anything else
a compiled loop cannot express raise :class:`TraceError`; the caller then runs the eager kernel.

Example:
    >>> from polyoptim.rules import adam
    >>> g = trace(adam.update, (True, True, False),
    ...           dict(beta1=0.9, beta2=0.999, eps=1e-8, step_size=1e-3, bc2_sqrt=0.1,
    ...                amsgrad=False))
    >>> sorted(g.outputs)
    ['b0', 'b1', 'p']
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Elem",
    "Graph",
    "Guard",
    "Mask",
    "Node",
    "Scalar",
    "TraceError",
    "TraceOps",
    "UNKNOWN",
    "trace",
]


class TraceError(Exception):
    """The update does something the fused kernel cannot compile."""


class _Unknown:
    """The value of a scalar known only on the device (a ``capturable`` step's bias
    corrections): it may flow into the update, but no host decision may depend on it."""

    def __repr__(self) -> str:
        return "UNKNOWN"


#: pass as a scalar's value to :func:`trace` for a per-tensor value computed on the device
UNKNOWN = _Unknown()


@dataclass(eq=False)
class Node:
    """One operation of the graph.

    Attributes:
        op: ``load`` (an array slot), ``scalar`` (a host scalar by name), ``const``, or an
            operation (``add``, ``mul``, ``lerp``, ``gt``, ...).
        args: operand nodes, or the slot/scalar name, or the constant.
        kind: ``elem`` (a float per element), ``mask`` (a bool per element) or ``scalar``
            (one float64 per tensor, computed on the host's terms).
        value: for a scalar node, its value for the traced tensor.
    """

    op: str
    args: tuple
    kind: str
    value: Any = None


@dataclass(frozen=True)
class Guard:
    """A host-level decision the trace took: ``op(left, right)`` evaluated to ``result``."""

    op: str
    left: Node
    right: Node | None
    result: bool


@dataclass
class Graph:
    """A traced update: the new value of each written slot and the decisions taken.

    Attributes:
        outputs: slot (``p``, ``b0``, ``b1``, ...) -> node of its new value; slots returned
            unchanged or as ``None`` are left out.
        guards: decisions on numeric scalars the trace depends on.
    """

    outputs: dict[str, Node]
    guards: list[Guard] = field(default_factory=list)
    #: compiled kernels of this graph, by dtype configuration (filled by the fused backend)
    compiled: dict = field(default_factory=dict, repr=False)

    def scalar_names(self) -> list[str]:
        """Names of the host scalars the outputs use, in first-use order."""
        seen: dict[str, None] = {}
        for node in walk(list(self.outputs.values())):
            if node.op == "scalar":
                seen.setdefault(node.args[0], None)
        return list(seen)

    def slots_read(self) -> set[str]:
        """Array slots the outputs read."""
        return {n.args[0] for n in walk(list(self.outputs.values())) if n.op == "load"}

    def admits(self, scalars: Mapping[str, Any]) -> bool:
        """True when ``scalars`` take the same host-level decisions as the traced ones."""
        try:
            return all(
                _COMPARE[gd.op](
                    evaluate(gd.left, scalars),
                    evaluate(gd.right, scalars) if gd.right is not None else None,
                )
                == gd.result
                for gd in self.guards
            )
        except (KeyError, TypeError, ValueError):
            return False


def walk(roots: Sequence[Node]) -> list[Node]:
    """Every node reachable from ``roots``, operands before their users."""
    order: list[Node] = []
    seen: set[int] = set()
    stack: list[tuple[Node, bool]] = [(r, False) for r in reversed(roots)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in seen:
            continue
        if expanded:
            seen.add(id(node))
            order.append(node)
            continue
        stack.append((node, True))
        for a in reversed(node.args):
            if isinstance(a, Node) and id(a) not in seen:
                stack.append((a, False))
    return order


# -- host-side evaluation of scalar expressions (guards, traced values) ---------------------------
_SCALAR_FN: dict[str, Callable[..., float]] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
    "pow": operator.pow,
    "neg": operator.neg,
    "sqrt": math.sqrt,
    "abs": abs,
    "maximum": max,
    "minimum": min,
    "clamp": lambda x, lo, hi: min(max(x, lo), hi),
}

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "eq": operator.eq,
    "ne": operator.ne,
    "truth": lambda a, _: bool(a),
}


def evaluate(node: Node, scalars: Mapping[str, Any]) -> float:
    """The value of a scalar node for concrete host scalars (Python float arithmetic)."""
    if node.op == "const":
        return node.args[0]
    if node.op == "scalar":
        return float(scalars[node.args[0]])
    return _apply(node.op, *(evaluate(a, scalars) for a in node.args))


def _apply(op: str, *values: float) -> float:
    """Python's arithmetic; errors (1/0, sqrt(-1), a complex power) give NaN, the same for the
    traced value and for a later guard check, so the two always agree."""
    try:
        return float(_SCALAR_FN[op](*values))
    except (ZeroDivisionError, OverflowError, ValueError, TypeError):
        return math.nan


# -- the symbolic values --------------------------------------------------------------------------
class _Value:
    """Operators shared by the traced kinds; the result's kind follows the operands'."""

    node: Node

    def _bin(self, other: Any, op: str, swap: bool = False) -> Any:
        a, b = (_lift(other), self.node) if swap else (self.node, _lift(other))
        return _make(op, a, b)

    def __add__(self, o):
        return self._bin(o, "add")

    def __radd__(self, o):
        return self._bin(o, "add", True)

    def __sub__(self, o):
        return self._bin(o, "sub")

    def __rsub__(self, o):
        return self._bin(o, "sub", True)

    def __mul__(self, o):
        return self._bin(o, "mul")

    def __rmul__(self, o):
        return self._bin(o, "mul", True)

    def __truediv__(self, o):
        return self._bin(o, "div")

    def __rtruediv__(self, o):
        return self._bin(o, "div", True)

    def __pow__(self, o):
        return self._bin(o, "pow")

    def __rpow__(self, o):
        return self._bin(o, "pow", True)

    def __neg__(self):
        return _make("neg", self.node)

    def __pos__(self):
        return self

    def __float__(self):
        raise TraceError("a traced value was converted to a Python float")

    __int__ = __index__ = __float__

    def __hash__(self) -> int:
        return id(self)


class Elem(_Value):
    """A per-element float inside the loop (a parameter, gradient or buffer value)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def _cmp(self, other: Any, op: str) -> Mask:
        return Mask(Node(op, (self.node, _lift(other)), "mask"))

    def __lt__(self, o):
        return self._cmp(o, "lt")

    def __le__(self, o):
        return self._cmp(o, "le")

    def __gt__(self, o):
        return self._cmp(o, "gt")

    def __ge__(self, o):
        return self._cmp(o, "ge")

    def __eq__(self, o):  # type: ignore[override]
        return self._cmp(o, "eq")

    def __ne__(self, o):  # type: ignore[override]
        return self._cmp(o, "ne")

    def __bool__(self):
        raise TraceError("data-dependent control flow on a per-element value")

    def __hash__(self) -> int:
        return id(self)


class Mask:
    """A per-element bool (the result of an element comparison), for ``ops.where``."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def __and__(self, o):
        return Mask(Node("and", (self.node, _mask(o)), "mask"))

    __rand__ = __and__

    def __or__(self, o):
        return Mask(Node("or", (self.node, _mask(o)), "mask"))

    __ror__ = __or__

    def __invert__(self):
        return Mask(Node("not", (self.node,), "mask"))

    def __bool__(self):
        raise TraceError("data-dependent control flow on a per-element condition")

    def __hash__(self) -> int:
        return id(self)


class Scalar(_Value):
    """A per-tensor host scalar (or an expression of them); computed in float64 like Python
    floats. ``value`` is its value for the traced tensor; comparisons take that branch and
    record a guard."""

    def __init__(self, node: Node, value: float | None) -> None:
        self.node = node
        self.value = value  # None: known only on the device

    def _guard(self, other: Any, op: str) -> bool:
        right = _lift(other)
        if right.kind != "scalar":
            raise TraceError("a host scalar compared with a per-element value")
        if self.value is None or _value_of(right) is None:
            raise TraceError("a host decision on a value known only on the device")
        result = bool(_COMPARE[op](self.value, _value_of(right)))
        _GUARDS.append(Guard(op, self.node, right, result))
        return result

    def __lt__(self, o):
        return self._guard(o, "lt")

    def __le__(self, o):
        return self._guard(o, "le")

    def __gt__(self, o):
        return self._guard(o, "gt")

    def __ge__(self, o):
        return self._guard(o, "ge")

    def __eq__(self, o):  # type: ignore[override]
        return self._guard(o, "eq")

    def __ne__(self, o):  # type: ignore[override]
        return self._guard(o, "ne")

    def __bool__(self):
        if self.value is None:
            raise TraceError("a host decision on a value known only on the device")
        result = bool(self.value)
        _GUARDS.append(Guard("truth", self.node, None, result))
        return result

    def __hash__(self) -> int:
        return id(self)


_GUARDS: list[Guard] = []  # the guards of the trace in progress (tracing is not reentrant)


def _const(x: Any) -> Node:
    return Node("const", (float(x),), "scalar")


def _lift(x: Any) -> Node:
    """The node of a traced value or a Python number."""
    if isinstance(x, (_Value, Mask)):
        return x.node
    if isinstance(x, bool | numbers.Real):
        return _const(x)
    raise TraceError(f"cannot use {type(x).__name__} in a fused update")


def _mask(x: Any) -> Node:
    if isinstance(x, Mask):
        return x.node
    raise TraceError("a per-element condition combined with a non-condition")


def _value_of(node: Node) -> float:
    return node.args[0] if node.op == "const" else node.value


def _make(op: str, *args: Node) -> Any:
    """A new value: per element if any operand is, else a host scalar with its value."""
    if any(a.kind == "mask" for a in args):
        raise TraceError(f"arithmetic ({op}) on a per-element condition")
    if any(a.kind == "elem" for a in args):
        return Elem(Node(op, args, "elem"))
    values = [_value_of(a) for a in args]
    value = None if any(v is None for v in values) else _apply(op, *values)
    node = Node(op, args, "scalar", value)
    return Scalar(node, node.value)


def _fma(a: Node, b: Node, c: Node) -> Any:
    """``a·b + c``: one rounding per element; on host scalars, Python's two."""
    if all(n.kind == "scalar" for n in (a, b, c)):
        return _make("add", _make("mul", a, b).node, c)
    return _make("fma", a, b, c)


class TraceOps:
    """The ``ops`` namespace a traced update runs against (mirrors ``kernels.ops.TensorOps``)."""

    @staticmethod
    def sqrt(x: Any) -> Any:
        return _make("sqrt", _lift(x))

    @staticmethod
    def abs(x: Any) -> Any:
        return _make("abs", _lift(x))

    @staticmethod
    def sign(x: Any) -> Any:
        node = _lift(x)
        if node.kind != "elem":
            raise TraceError("ops.sign of a host scalar")
        return Elem(Node("sign", (node,), "elem"))

    @staticmethod
    def lerp(a: Any, b: Any, w: Any) -> Any:
        args = (_lift(a), _lift(b), _lift(w))
        if all(n.kind == "scalar" for n in args):
            raise TraceError("ops.lerp of host scalars")
        return _make("lerp", *args)

    @staticmethod
    def add(x: Any, y: Any, alpha: Any) -> Any:
        """``x + alpha·y`` with one rounding, as torch's vectorized ``add(x, y, alpha=)``."""
        return _fma(_lift(alpha), _lift(y), _lift(x))

    @staticmethod
    def addcmul(x: Any, a: Any, b: Any, value: Any) -> Any:
        """``x + (value·a)·b``, the last multiply-add fused, as torch's ``addcmul``."""
        return _fma(_lift(value * a), _lift(b), _lift(x))

    @staticmethod
    def addcdiv(x: Any, a: Any, b: Any, value: Any) -> Any:
        """``x + (value·a)/b``, as torch's ``addcdiv`` (not fused)."""
        return x + (value * a) / b

    @staticmethod
    def maximum(a: Any, b: Any) -> Any:
        return _make("maximum", _lift(a), _lift(b))

    @staticmethod
    def minimum(a: Any, b: Any) -> Any:
        return _make("minimum", _lift(a), _lift(b))

    @staticmethod
    def clamp(x: Any, lo: Any, hi: Any) -> Any:
        return _make("clamp", _lift(x), _lift(lo), _lift(hi))

    @staticmethod
    def where(cond: Any, a: Any, b: Any) -> Elem:
        c = _mask(cond)
        na, nb = _lift(a), _lift(b)
        return Elem(Node("where", (c, na, nb), "elem"))

    @staticmethod
    def select(flag: Any, a: Any, b: Any) -> Any:
        """A per-tensor host decision: decided here (and guarded if numeric) -- or, for a flag
        known only on the device, taken in the kernel (both sides computed)."""
        if isinstance(flag, Mask | Elem):
            raise TraceError("ops.select takes a host flag, not a per-element value")
        if isinstance(flag, Scalar) and flag.value is None:
            na, nb = _lift(a), _lift(b)
            if na.kind != "elem" and nb.kind != "elem":
                raise TraceError("ops.select of two host scalars by a device flag")
            chosen = Node("ne", (flag.node, _const(0)), "mask")
            return Elem(Node("where", (chosen, na, nb), "elem"))
        return a if flag else b


def scalar_signature(scalars: Mapping[str, Any]) -> tuple | None:
    """The part of a kernel's key that the scalars fix: which are ``None``, which are bools
    (and their values), which are numbers. ``None`` if a scalar cannot enter a kernel."""
    sig = []
    for name, v in scalars.items():
        if type(v) is float or type(v) is int:
            sig.append((name, "num"))
        elif v is None:
            sig.append((name, "none"))
        elif v is UNKNOWN:
            sig.append((name, "device"))
        elif isinstance(v, bool):
            sig.append((name, v))
        elif isinstance(v, numbers.Real):
            sig.append((name, "num"))
        else:
            return None
    return tuple(sig)


def trace(
    update: Callable[..., tuple],
    active: Sequence[bool],
    scalars: Mapping[str, Any],
    ops: type[TraceOps] = TraceOps,
) -> Graph:
    """Run ``update`` on symbolic values and return what it computes.

    Args:
        update: a rule's ``update(ops, p, g, *buffers, **scalars)``.
        active: for each buffer of the rule, whether this configuration has it.
        scalars: one tensor's host scalars (numbers, bools or None); numbers become symbolic,
            bools and None are passed as they are; :data:`UNKNOWN` marks a number computed on
            the device (symbolic, and no guard may depend on it).
        ops: the ``ops`` namespace the update runs against (a subclass may record some
            functions as nodes of their own: :class:`polyoptim.kernels.lean.TorchTraceOps`).

    Returns:
        The graph: new values of ``p`` (slot ``p``) and the buffers (``b0``, ``b1``, ...),
        reading slots ``p``, ``g``, ``b<i>``.

    Raises:
        TraceError: the update cannot be compiled into a loop.
    """
    sym: dict[str, Any] = {}
    for name, v in scalars.items():
        if v is None or isinstance(v, bool):
            sym[name] = v
        elif v is UNKNOWN:
            sym[name] = Scalar(Node("scalar", (name,), "scalar", None), None)  # type: ignore[arg-type]
        elif isinstance(v, numbers.Real):
            sym[name] = Scalar(Node("scalar", (name,), "scalar", float(v)), float(v))
        else:
            raise TraceError(f"scalar {name!r} is a {type(v).__name__}")
    leaves = {"p": Node("load", ("p",), "elem"), "g": Node("load", ("g",), "elem")}
    bufs = []
    for i, on in enumerate(active):
        leaves[f"b{i}"] = Node("load", (f"b{i}",), "elem")
        bufs.append(Elem(leaves[f"b{i}"]) if on else None)
    _GUARDS.clear()
    try:
        out = update(ops, Elem(leaves["p"]), Elem(leaves["g"]), *bufs, **sym)
    except TraceError:
        raise
    except Exception as e:  # anything the symbolic values do not support
        raise TraceError(f"{type(e).__name__}: {e}") from e
    finally:
        guards = list(_GUARDS)
        _GUARDS.clear()
    if not isinstance(out, tuple) or len(out) != 1 + len(active):
        raise TraceError("update must return (p, *buffers)")
    outputs: dict[str, Node] = {}
    for slot, value in zip(["p"] + [f"b{i}" for i in range(len(active))], out):
        if value is None:
            continue
        node = _lift(value)
        if node.kind == "mask":
            raise TraceError(f"{slot} would be assigned a condition")
        if node is leaves[slot]:
            continue  # unchanged: no store
        if slot != "p" and not active[int(slot[1:])]:
            raise TraceError(f"update returned a value for the inactive buffer {slot}")
        outputs[slot] = node if node.kind == "elem" else Node("splat", (node,), "elem")
    return Graph(outputs, guards)
