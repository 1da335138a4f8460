r"""Adafactor's math for one tensor (torch's variant of Shazeer & Stern, 2018).

Not element-wise: the second moment of a matrix (or of the last two dimensions of a larger
tensor) is kept as a row factor :math:`R` and a column factor :math:`C` of mean squared
gradients, and the update is clipped by its own RMS. ``eps1`` guards the variance estimate
(torch applies it there, not inside the factors), ``eps2`` floors the parameter scale.

Every expression keeps torch's order of operations and operand types so results agree to the
last bit; the per-tensor scalars are Python floats computed on the host, as in torch.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor


def step_scalars(
    p: Tensor, step: float, lr: Any, beta2_decay: float, eps2: float
) -> tuple[float, Any]:
    r"""``(1 - beta2_t, alpha_t)``: the second-moment weight :math:`t^{\tau}` and the step
    scale :math:`\max(\epsilon_2, \mathrm{RMS}(\theta))\,\min(\gamma, 1/\sqrt t)`.

    ``p`` must be the parameter before weight decay.
    """
    rho = min(lr, 1 / (step**0.5))
    rms = p.norm(2).item() / (p.numel() ** 0.5)
    return step**beta2_decay, max(eps2, rms) * rho


def factored_shapes(grad: Tensor) -> tuple[list[int], list[int]]:
    """Shapes of the row factor (last dim reduced) and column factor (second-to-last)."""
    rows, cols = list(grad.shape), list(grad.shape)
    rows[-1] = 1
    cols[-2] = 1
    return rows, cols


def factored_variance(
    grad: Tensor, row_var: Tensor, col_var: Tensor, weight: float, eps1: float
) -> Tensor:
    r"""Update :math:`R, C` in place and return :math:`\hat V = R C / \max(\bar R, \epsilon_1)`."""
    # mean of g^2 along a dim, via the norm so no gradient-sized g*g is materialized
    row_var.lerp_(grad.norm(dim=-1, keepdim=True).square_().div_(grad.size(-1)), weight)
    col_var.lerp_(grad.norm(dim=-2, keepdim=True).square_().div_(grad.size(-2)), weight)
    estimate = row_var @ col_var
    return estimate.div_(row_var.mean(dim=-2, keepdim=True).clamp_(min=eps1))


def full_variance(grad: Tensor, variance: Tensor, weight: float) -> Tensor:
    r"""Update the unfactored second moment in place and return a copy of it."""
    variance.lerp_(grad * grad, weight)
    return variance.clone()  # the update below works in place on the estimate


def clipped_update(estimate: Tensor, grad: Tensor, eps1: float, d: float) -> tuple[Tensor, float]:
    r"""``(U, c)`` with :math:`U = g / \max(\sqrt{\hat V}, \epsilon_1)` (in ``estimate``'s
    storage) and the clipping divisor :math:`c = \max(1, \mathrm{RMS}(U)/d)`."""
    # clamping the variance at eps1^2 before the rsqrt is the max with eps1 after it
    update = estimate.clamp_(min=eps1 * eps1).rsqrt_().mul_(grad)
    return update, max(1.0, update.norm(2).item() / ((update.numel() ** 0.5) * d))
