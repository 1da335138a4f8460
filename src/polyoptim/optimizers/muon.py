"""Muon with torch.optim's signature, state layout and numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ._common import ParamsT, to_scalar
from .base import TorchOptimizer

# Keller Jordan's quintic coefficients and defaults (torch's too)
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
NS_EPS = 1e-7


def newton_schulz(
    m: Tensor, coefficients: tuple[float, float, float], steps: int, eps: float
) -> Tensor:
    r"""Approximately orthogonalize a matrix: :math:`U S' V^\top` for :math:`m = U S V^\top`,
    with :math:`S'` near the identity, by a quintic Newton--Schulz iteration in bfloat16.

    .. math::
        X_0 = \frac{m}{\max(\lVert m\rVert_F, \epsilon)}, \qquad
        A = X_k X_k^\top, \qquad X_{k+1} = a X_k + (b A + c A^2) X_k

    The iteration runs on the wide orientation (rows <= columns) so :math:`A` is the smaller
    Gram matrix.
    """
    if steps >= 100:
        raise ValueError("Number of steps must be less than 100 for computational efficiency")
    if m.dim() != 2:
        raise ValueError("Input tensor gradient must be a 2D matrix")
    if len(coefficients) != 3:
        raise ValueError("Coefficients must be a tuple of exactly 3 values")
    a, b, c = coefficients
    tall = m.size(0) > m.size(1)
    x = m.bfloat16()
    if tall:
        x = x.T
    # out of place: for bfloat16 input ``m.bfloat16()`` is ``m`` itself (the momentum buffer)
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


def lr_ratio(adjust_lr_fn: str | None, shape: torch.Size) -> float:
    """The shape-dependent learning-rate multiplier (keeps the update's RMS comparable)."""
    rows, cols = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return math.sqrt(max(1, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return 1.0


class Muon(TorchOptimizer):
    r"""Muon: momentum SGD whose update is orthogonalized by Newton--Schulz (2-D params only).

    .. math::
        \begin{aligned}
        & B_t = \mu B_{t-1} + (1-\mu) g_t, \qquad
          M_t = \begin{cases} (1-\mu) g_t + \mu B_t & \text{nesterov} \\
                              B_t & \text{otherwise} \end{cases} \\
        & O_t = \mathrm{NS}^{(a,b,c)}_k(M_t; \epsilon), \qquad
          \theta_t = \theta_{t-1}(1 - \gamma\lambda) - \gamma\, s(A, B)\, O_t
        \end{aligned}

    with :math:`\mathrm{NS}` the bfloat16 Newton--Schulz iteration of :func:`newton_schulz`
    and :math:`s(A, B)` for an :math:`A \times B` parameter :math:`\sqrt{\max(1, A/B)}`
    (``adjust_lr_fn=None`` or ``"original"``) or :math:`0.2\sqrt{\max(A, B)}`
    (``"match_rms_adamw"``). State per parameter: ``momentum_buffer``.

    Use it for the 2-D weights of hidden layers and another optimizer (AdamW) for biases,
    embeddings and the rest.

    Args:
        params: 2-D tensors, ``(name, tensor)`` pairs or param-group dicts.
        lr: learning rate :math:`\gamma`.
        weight_decay: decoupled weight decay :math:`\lambda`.
        momentum: :math:`\mu`.
        nesterov: use the Nesterov look-ahead :math:`M_t`.
        ns_coefficients: :math:`(a, b, c)` of the quintic iteration.
        eps: :math:`\epsilon`, floor of the Frobenius norm in the normalization.
        ns_steps: :math:`k`, Newton--Schulz iterations (fewer than 100).
        adjust_lr_fn: ``None``, ``"original"`` or ``"match_rms_adamw"``.

    Example:
        >>> import torch, polyoptim
        >>> w = torch.nn.Parameter(torch.randn(4, 3))
        >>> opt = polyoptim.Muon([w], lr=0.02)
        >>> w.sum().backward(); opt.step()
        >>> list(opt.state[w])
        ['momentum_buffer']
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
        eps: float = NS_EPS,
        ns_steps: int = NS_STEPS,
        adjust_lr_fn: str | None = None,
    ) -> None:
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not lr >= 0.0:
            raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
        if not momentum >= 0.0:
            raise ValueError(f"momentum should be >= 0 but is: {momentum}")
        if not weight_decay >= 0.0:
            raise ValueError(f"weight decay should be >= 0 but is: {weight_decay}")
        if adjust_lr_fn is not None and adjust_lr_fn not in ("original", "match_rms_adamw"):
            raise ValueError(f"Adjust learning rate function {adjust_lr_fn} is not supported")
        defaults = dict(
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            nesterov=nesterov,
            ns_coefficients=ns_coefficients,
            eps=eps,
            ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn,
        )
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError(
                        "Muon only supports 2D parameters whereas we found a parameter with "
                        f"size: {p.size()}"
                    )

    def _check_grad(self, p: Tensor, group: dict[str, Any]) -> None:
        if torch.is_complex(p):
            raise RuntimeError("Muon does not support complex parameters")
        super()._check_grad(p, group)

    def _step_group(
        self, group: dict[str, Any], params: Sequence[Tensor], grads: Sequence[Tensor]
    ) -> None:
        buffers = []
        for p, g in zip(params, grads):
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(g, memory_format=torch.preserve_format)
            buffers.append(state["momentum_buffer"])
        lr, mu = to_scalar(group["lr"]), group["momentum"]
        for p, g, buf in zip(params, grads, buffers):
            if g.ndim != 2:
                raise ValueError("Param gradient must be a 2D matrix")
            buf.lerp_(g, 1 - mu)
            m = g.lerp(buf, mu) if group["nesterov"] else buf
            o = newton_schulz(m, group["ns_coefficients"], group["ns_steps"], group["eps"])
            p.mul_(1 - lr * group["weight_decay"])
            p.add_(o, alpha=-(lr * lr_ratio(group["adjust_lr_fn"], p.shape)))
