"""Sparse-gradient paths of SGD and Adagrad (torch accepts ``torch.sparse_coo`` gradients there).

Row-sparse updates touch only the stored indices; they are whole-tensor operations on the
coalesced gradient rather than element-wise rules, so they live apart from the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def sparse_sgd_step(
    opt: Any, group: dict[str, Any], params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]
) -> None:
    """SGD where some gradients are sparse: the momentum buffer starts as a copy of the
    (sparse) first gradient, as in torch."""
    lr, momentum = float(group["lr"]), group["momentum"]
    dampening, nesterov, wd = group["dampening"], group["nesterov"], group["weight_decay"]
    for p, g in zip(params, grads):
        g = -g if group["maximize"] else g
        if wd != 0:
            g = g.add(p, alpha=wd)
        if momentum != 0:
            state = opt.state[p]
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = g.detach().clone()
                state["momentum_buffer"] = buf
            else:
                buf.mul_(momentum).add_(g, alpha=1 - dampening)
            g = g.add(buf, alpha=momentum) if nesterov else buf
        p.add_(g, alpha=-lr)


def _like(grad: torch.Tensor, indices: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """A sparse tensor with ``grad``'s indices and size and new values."""
    if indices.dim() == 0 or values.dim() == 0:
        return torch.empty_like(grad)
    return torch.sparse_coo_tensor(indices, values, grad.size())


def sparse_adagrad_update(
    p: torch.Tensor, g: torch.Tensor, state_sum: torch.Tensor, *, clr: float, eps: float
) -> None:
    """Adagrad on the stored entries of a sparse gradient only."""
    g = g.coalesce()  # the update is non-linear, so indices must be unique
    idx, vals = g._indices(), g._values()
    state_sum.add_(_like(g, idx, vals.pow(2)))
    std_vals = state_sum.sparse_mask(g)._values().sqrt_().add_(eps)
    p.add_(_like(g, idx, vals / std_vals), alpha=-clr)
