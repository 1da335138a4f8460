"""What a kernel may touch: plain memory, and the local shards of distributed tensors.

An element-wise rule is per element with per-tensor scalars, so a step over a ``DTensor``
(FSDP2's sharded parameters, tensor parallelism) is the same rule run on each rank's local
shard: nothing crosses ranks. :func:`local_step_args` swaps every ``DTensor`` among the
parameters, gradients and state for its local tensor before a kernel runs, and puts the state
the kernel created or replaced back as ``DTensor``\\ s afterwards, so ``state_dict`` and
``torch.distributed.checkpoint`` see what they see with ``torch.optim``.

:func:`plain_memory` is the test the fused kernels apply before taking a tensor's address: a
tensor subclass with its own ``__torch_dispatch__`` (``DTensor``, the fake and functional tensors
of ``torch.compile``, ...) has no memory of its own behind ``data_ptr()`` -- a raw pointer to it
is a crash, never a result.

Example:
    >>> import torch
    >>> plain_memory([torch.zeros(2), torch.nn.Parameter(torch.ones(2))])
    True
    >>> from torch._subclasses.fake_tensor import FakeTensorMode
    >>> with FakeTensorMode() as mode:
    ...     fake = torch.zeros(2)
    >>> plain_memory([fake])
    False
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping, Sequence
from typing import Any

import torch

__all__ = ["is_dtensor", "local_step_args", "plain_memory"]

_PLAIN_DISPATCH = torch.Tensor.__torch_dispatch__


def plain_memory(tensors: Iterable[torch.Tensor]) -> bool:
    """Whether every tensor is an ordinary tensor (or ``Parameter``, or a subclass that only
    overrides ``__torch_function__``) whose ``data_ptr()`` addresses its elements."""
    for cls in set(map(type, tensors)):
        if getattr(cls, "__torch_dispatch__", _PLAIN_DISPATCH) is not _PLAIN_DISPATCH:
            return False
    return True


try:  # torch.distributed is absent from some builds
    from torch.distributed.tensor import DTensor as _DTensor
except ImportError:  # pragma: no cover - such builds have no DTensor either
    _DTensor = None  # type: ignore[assignment,misc]


def is_dtensor(t: Any) -> bool:
    """Whether ``t`` is a ``torch.distributed.tensor.DTensor``."""
    return _DTensor is not None and isinstance(t, _DTensor)


def _local(t: torch.Tensor) -> torch.Tensor:
    # the shard itself, not a new view each step: the fused kernel recognises the tensors of
    # the last step by identity, and in-place writes must land in the DTensor's storage
    return t._local_tensor  # type: ignore[attr-defined]


Finish = Callable[[], None]


def _nothing() -> None:
    return None


def local_step_args(
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[MutableMapping[str, Any]],
    shaped: Iterable[str] = (),
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[MutableMapping[str, Any]], Finish]:
    """The step's tensors with every ``DTensor`` replaced by its local shard.

    Args:
        params, grads: the tensors of the step.
        states: each parameter's state.
        shaped: state keys that hold parameter-shaped tensors (the rule's buffers, the master
            copy): created by the kernel on a local shard, they are stored as ``DTensor``\\ s
            laid out as the parameter.

    Returns:
        ``(params, grads, states, finish)``; call ``finish()`` after the kernel: it writes the
        state entries the kernel added or replaced back into the real states. When no tensor is
        a ``DTensor`` the inputs come back as they are.

    Raises:
        ValueError: a gradient or state tensor is laid out differently from its parameter in a
            way a per-shard step cannot follow (a different mesh).
    """
    if _DTensor is None or not any(issubclass(c, _DTensor) for c in set(map(type, params))):
        return list(params), list(grads), list(states), _nothing
    shaped = set(shaped)
    lp: list[torch.Tensor] = []
    lg: list[torch.Tensor] = []
    ls: list[MutableMapping[str, Any]] = []
    pending: list[tuple[torch.Tensor, MutableMapping[str, Any], dict[str, Any], dict]] = []
    for p, g, st in zip(params, grads, states):
        if not isinstance(p, _DTensor):
            lp.append(p)
            lg.append(g)
            ls.append(st)
            continue
        if isinstance(g, _DTensor):
            if g.device_mesh != p.device_mesh:
                raise ValueError(
                    "a gradient is a DTensor on another device mesh than its parameter; "
                    "polyoptim steps each rank's shard and cannot follow it"
                )
            if g.placements != p.placements:  # e.g. a Partial gradient left unreduced
                g = g.redistribute(p.device_mesh, p.placements)
            g = _local(g)
        lp.append(_local(p))
        lg.append(g)
        view: dict[str, Any] = {}
        for k, v in st.items():
            if isinstance(v, _DTensor):
                if v.device_mesh != p.device_mesh or v.placements != p.placements:
                    raise ValueError(
                        f"optimizer state {k!r} is a DTensor laid out as "
                        f"{v.placements} while its parameter is laid out as {p.placements}; "
                        "load it with the parameter's placements"
                    )
                view[k] = _local(v)
            else:
                view[k] = v
        ls.append(view)
        pending.append((p, st, view, dict(view)))

    def finish() -> None:
        for p, st, view, before in pending:
            for k, v in view.items():
                if k in before and before[k] is v:
                    continue
                if isinstance(v, torch.Tensor) and (isinstance(st.get(k), _DTensor) or k in shaped):
                    v = _DTensor.from_local(
                        v,
                        p.device_mesh,
                        p.placements,
                        run_check=False,
                        shape=p.shape,
                        stride=p.stride(),
                    )
                st[k] = v

    return lp, lg, ls, finish
