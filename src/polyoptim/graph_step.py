"""The optimizer step as one opaque operation, for ``torch.compile``.

When ``torch.compile`` traces a function that calls ``opt.step()``, it must not trace the step
itself: the host scalars of a rule (bias corrections, NAdam's momentum product, ...) are
Python floats read from step counters, the fused kernels take raw addresses that fake tensors do
not have, and the engine's per-step Python (learning-rate schedules, ``global_step``, the
kernels' caches) would become guards that fail every step. Instead, the traced step is one call
of the custom operator ``polyoptim::step``:

* its arguments are the optimizer's handle and every tensor the step may touch -- the
  parameters that have a gradient, those gradients, their state tensors -- all declared
  *mutated*, so the compiler orders it correctly against the code around it and never
  reorders a read of the state across it;
* its fake implementation does nothing (the step creates no tensors), so tracing never runs it;
* its real implementation runs the optimizer's ordinary eager step, which picks the kernel per
  device (the fused CPU kernel, the foreach or for-loop path, ...) as it always does.

The graph therefore holds no host scalar and has no graph break; a learning rate changed by a
scheduler between steps is read when the step runs and recompiles nothing.

State that does not exist yet is created by the first run (the optimizer's lazy state), after
which ``torch.compile`` recompiles once with the new state tensors among the operands.

Example:
    >>> import torch, polyoptim
    >>> w = torch.nn.Parameter(torch.ones(3))
    >>> opt = polyoptim.Adam([w], lr=0.1)
    >>> step = torch.compile(opt.step, fullgraph=True)
    >>> w.grad = torch.ones(3)
    >>> _ = step(); _ = step()
    >>> w.detach()
    tensor([0.8000, 0.8000, 0.8000])
"""

from __future__ import annotations

import contextlib
import itertools
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

__all__ = ["eager_closure_step", "handle_of", "in_graph_step", "operands", "register"]

_optimizers: dict[int, weakref.ReferenceType] = {}
_handles = itertools.count(1)


def register(optimizer: Any) -> int:
    """Give ``optimizer`` a new handle by which the operator finds it (on construction, and
    on unpickling or deep-copying: a copy is another optimizer)."""
    handle = next(_handles)
    optimizer.__dict__["_graph_handle"] = handle
    _optimizers[handle] = weakref.ref(optimizer, lambda _, h=handle: _optimizers.pop(h, None))
    return handle


def handle_of(optimizer: Any) -> int:
    """The handle of a registered optimizer."""
    return optimizer.__dict__["_graph_handle"]


@torch.library.custom_op("polyoptim::step", mutates_args=("params", "grads", "state"))
def _step(
    handle: int,
    kind: str,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    state: list[torch.Tensor],
    inputs: list[torch.Tensor],
) -> None:
    """Run the eager step of the optimizer ``handle`` names over exactly these tensors.

    Args:
        handle: the optimizer's handle (:func:`register`).
        kind: ``"step"`` -- ``opt.step()`` -- or ``"call"`` -- MindSpore's ``opt(gradients)``
            with the gradients in ``inputs``.
        params, grads, state: the parameters that have a gradient, their gradients and their
            state tensors, in the order :func:`operands` lists them.
        inputs: tensors the step reads and does not change.
    """
    ref = _optimizers.get(handle)
    opt = ref() if ref is not None else None
    if opt is None:
        raise RuntimeError(f"polyoptim::step: the optimizer of handle {handle} no longer exists")
    with torch.no_grad(), _bound(opt, kind, params, grads, state), _in_graph(opt):
        if kind == "call":
            opt._run(tuple(inputs))
        else:
            eager_step(opt)(opt)


@_step.register_fake
def _step_fake(handle, kind, params, grads, state, inputs) -> None:
    return None


def eager_step(opt: Any) -> Callable[..., Any]:
    """The class's ``step`` without torch's hook wrapper: the hooks ran in the traced code
    around the operator already."""
    step = type(opt).step
    return step.__wrapped__ if getattr(step, "hooked", False) else step


@torch._dynamo.disable
def eager_closure_step(opt: Any, closure: Callable[[], Any]) -> Any:
    """The step of an optimizer that calls its closure many times within one step (L-BFGS):
    outside the graph, in one piece. (A closure cannot enter an operator; traced piecewise,
    such a step breaks the graph at every host decision, as torch's LBFGS does.)"""
    return eager_step(opt)(opt, closure)


def operands(
    opt: Any, kind: str = "step"
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """The parameters a step may change (those with a gradient, or every one when the
    gradients are given as ``inputs``), their gradients, and their state tensors."""
    params, grads, state = [], [], []
    for group in opt.param_groups:
        for p in group["params"]:
            if kind == "step":
                if p.grad is None:
                    continue
                grads.append(p.grad)
            params.append(p)
            st = opt.state.get(p)
            if st:
                for v in st.values():
                    if isinstance(v, torch.Tensor):
                        state.append(v)
    return params, grads, state


def in_graph_step(
    opt: Any, closure: Callable[[], Any] | None, inputs: Sequence[torch.Tensor] = ()
) -> Any:
    """What a traced ``step`` does: evaluate the closure, then one ``polyoptim::step``."""
    loss = None
    if closure is not None:
        with torch.enable_grad():
            loss = closure()
    kind = "call" if inputs else "step"
    params, grads, state = operands(opt, kind)
    with torch.no_grad():
        torch.ops.polyoptim.step(handle_of(opt), kind, params, grads, state, list(inputs))
    return loss


@contextlib.contextmanager
def _in_graph(opt: Any) -> Iterator[None]:
    """Mark the eager step as run from the operator: the kernels then keep every state tensor
    a tensor of its own (no packing of host state into shared storage), as the compiled graph
    passes each as an operand of its own."""
    before = opt.__dict__.get("_from_graph", False)
    opt.__dict__["_from_graph"] = True
    try:
        yield
    finally:
        opt.__dict__["_from_graph"] = before


@contextlib.contextmanager
def _bound(
    opt: Any,
    kind: str,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    state: list[torch.Tensor],
) -> Iterator[None]:
    """Make the optimizer step the very tensors the operator was given.

    Usually they are the optimizer's own (the compiler updates them in place). Where the
    compiler handed over copies instead, the copies are swapped in for the step -- gradients
    and state entries by reference, parameters by their ``data`` -- and swapped out after, so
    the step's writes land in what the compiler copies back."""
    mine_p, mine_g, mine_s = operands(opt, kind)
    if len(mine_p) != len(params) or len(mine_s) != len(state):
        raise RuntimeError(
            "polyoptim::step: the optimizer's parameters or state changed since the step was "
            "compiled"
        )
    undo: list[Callable[[], None]] = []
    try:
        for p, mine, given in zip(mine_p, mine_g, grads):
            if given is not mine:
                p.grad = given
                undo.append(lambda p=p, mine=mine: setattr(p, "grad", mine))
        slots = [
            (st, k)
            for p in mine_p
            for st in [opt.state.get(p)]
            if st
            for k, v in st.items()
            if isinstance(v, torch.Tensor)
        ]
        for (st, k), given in zip(slots, state):
            mine = st[k]
            if given is not mine:
                st[k] = given
                undo.append(lambda st=st, k=k, mine=mine: st.__setitem__(k, mine))
        for p, given in zip(mine_p, params):
            if given is not p:
                data = p.data
                p.data = given
                undo.append(lambda p=p, data=data: setattr(p, "data", data))
        yield
    finally:
        for fn in reversed(undo):
            fn()
