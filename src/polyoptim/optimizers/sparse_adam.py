"""SparseAdam with torch.optim's signature, state layout and numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ._common import ParamsT, check_betas, check_lr, check_min, to_scalar
from .base import TorchOptimizer


def lazy_adam_update(
    p: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    step: int,
    *,
    lr: Any,
    beta1: float,
    beta2: float,
    eps: float,
) -> None:
    """Adam on the entries a sparse COO gradient stores; every other entry is left untouched
    (moments included)."""
    grad = grad.coalesce()  # the update is not linear in the gradient: indices must be unique
    values = grad.values()
    if values.numel() == 0:
        return
    at = tuple(grad.indices())  # advanced index of the stored entries (over sparse dims)

    m_old, v_old = exp_avg[at], exp_avg_sq[at]
    m_delta = values.sub(m_old).mul_(1 - beta1)
    exp_avg.index_put_(at, m_delta, accumulate=True)
    v_delta = values.pow(2).sub_(v_old).mul_(1 - beta2)
    exp_avg_sq.index_put_(at, v_delta, accumulate=True)

    # recomputing the new moments from the deltas saves reading the buffers back
    m_new = m_delta.add_(m_old)
    denom = v_delta.add_(v_old).sqrt_().add_(eps)
    step_size = lr * math.sqrt(1 - beta2**step) / (1 - beta1**step)
    p.index_put_(at, -step_size * m_new.div_(denom), accumulate=True)


class SparseAdam(TorchOptimizer):
    r"""Lazy Adam for sparse gradients (``nn.Embedding(sparse=True)`` and the like).

    Only the entries a sparse gradient stores are updated, in the moments as in the parameter;
    a stored entry counts as present even when its value is zero. With :math:`S` those entries:

    .. math::
        \begin{aligned}
        & m_S \leftarrow \beta_1 m_S + (1-\beta_1) g_S, \qquad
          v_S \leftarrow \beta_2 v_S + (1-\beta_2) g_S^2 \\
        & \theta_S \leftarrow \theta_S - \gamma\,\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\,
          \frac{m_S}{\sqrt{v_S} + \epsilon}
        \end{aligned}

    where :math:`t` counts the steps on which the parameter had a gradient. State per
    parameter: ``step`` (a Python int, as in torch), ``exp_avg``, ``exp_avg_sq``.

    Args:
        params: dense, real tensors, ``(name, tensor)`` pairs or param-group dicts.
        lr: learning rate :math:`\gamma > 0` (float or 1-element Tensor).
        betas: :math:`(\beta_1, \beta_2)`.
        eps: :math:`\epsilon > 0`.
        maximize: maximize the objective.

    Dense gradients are refused at step time (use :class:`Adam`).

    Example:
        >>> import torch, polyoptim
        >>> emb = torch.nn.Embedding(10, 3, sparse=True)
        >>> opt = polyoptim.SparseAdam(emb.parameters(), lr=1e-2)
        >>> emb(torch.tensor([1, 4])).sum().backward(); opt.step()
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        maximize: bool = False,
    ) -> None:
        check_lr(lr, strict=True)
        check_min("epsilon", eps, strict=True)
        check_betas(betas)
        defaults = dict(lr=lr, betas=betas, eps=eps, maximize=maximize)
        super().__init__(params, defaults)
        sparse, complex_ = [], []
        for i, group in enumerate(self.param_groups):
            for j, p in enumerate(group["params"]):
                if p.is_sparse:
                    sparse.append([i, j])
                if p.is_complex():
                    complex_.append([i, j])
        if sparse:
            raise ValueError(
                f"Sparse params at indices {sparse}: SparseAdam requires dense parameter tensors"
            )
        if complex_:
            raise ValueError(
                f"Complex params at indices {complex_}: SparseAdam does not support complex "
                "parameters"
            )

    def _check_grad(self, p: Tensor, group: dict[str, Any]) -> None:
        if not p.grad.is_sparse:
            raise RuntimeError(
                "SparseAdam does not support dense gradients, please consider Adam instead"
            )

    def _step_group(
        self, group: dict[str, Any], params: Sequence[Tensor], grads: Sequence[Tensor]
    ) -> None:
        states = []
        for p in params:
            state = self.state[p]
            if len(state) == 0:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            # counted even when the gradient stores nothing, as torch does
            state["step"] += 1
            states.append(state)
        beta1, beta2 = group["betas"]
        lr = to_scalar(group["lr"])
        for p, grad, state in zip(params, grads, states):
            lazy_adam_update(
                p,
                -grad if group.get("maximize", False) else grad,
                state["exp_avg"],
                state["exp_avg_sq"],
                state["step"],
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                eps=group["eps"],
            )
