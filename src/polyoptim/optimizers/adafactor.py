"""Adafactor with torch.optim's signature, state layout and numbers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..kernels.local import is_dtensor
from ..rules.adafactor import (
    clipped_update,
    factored_shapes,
    factored_variance,
    full_variance,
    step_scalars,
)
from ._common import ParamsT, fill_defaults, to_scalar
from .base import TorchOptimizer


def _scalar_dtype() -> torch.dtype:
    """torch keeps Adafactor's ``step`` in float64 when that is the default dtype."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


class Adafactor(TorchOptimizer):
    r"""Adafactor: Adam-like steps with factored second moments and relative step sizes.

    For a gradient :math:`G_t` (negated when maximizing) of a parameter with two or more
    dimensions, the second moment is kept as row and column means :math:`R_t, C_t` over the
    last two dimensions; vectors keep a full :math:`V_t`:

    .. math::
        \begin{aligned}
        & \hat\beta_{2,t} = 1 - t^{\tau}, \quad
          \rho_t = \min(\gamma, 1/\sqrt t), \quad
          \alpha_t = \max(\epsilon_2, \mathrm{RMS}(\theta_{t-1}))\,\rho_t \\
        & \theta_{t-1} \leftarrow \theta_{t-1}(1 - \gamma\lambda) \\
        & R_t = \hat\beta_{2,t} R_{t-1} + (1-\hat\beta_{2,t})\,\mathrm{mean}_{-1}(G_t^2), \quad
          C_t = \hat\beta_{2,t} C_{t-1} + (1-\hat\beta_{2,t})\,\mathrm{mean}_{-2}(G_t^2) \\
        & \hat V_t = \frac{R_t C_t}{\max(\mathrm{mean}(R_t), \epsilon_1)}
          \quad\text{(vectors: } \hat V_t = V_t = \hat\beta_{2,t} V_{t-1}
          + (1-\hat\beta_{2,t}) G_t^2) \\
        & U_t = \frac{G_t}{\max(\sqrt{\hat V_t}, \epsilon_1)}, \quad
          \theta_t = \theta_{t-1} - \frac{\alpha_t}{\max(1, \mathrm{RMS}(U_t)/d)}\,U_t
        \end{aligned}

    State per parameter: ``step`` and either ``row_var``/``col_var`` or ``variance``.

    Args:
        params: tensors, ``(name, tensor)`` pairs or param-group dicts.
        lr: :math:`\gamma`, the cap on the relative step size and the weight-decay scale.
        beta2_decay: :math:`\tau \le 0`, the decay exponent of :math:`1-\hat\beta_{2,t}`.
        eps: :math:`(\epsilon_1, \epsilon_2)`; :math:`\epsilon_1` ``None`` means the machine
            epsilon of the (first) parameter's dtype.
        d: clipping threshold :math:`d \ge 1` on the update's RMS.
        weight_decay: decoupled weight decay :math:`\lambda`.
        foreach: torch's multi-tensor flag (off by default); the update is then scaled and
            added in two roundings, as torch's foreach path does.
        maximize: maximize the objective.

    Complex parameters and sparse gradients are refused at step time.

    Example:
        >>> import torch, polyoptim
        >>> model = torch.nn.Linear(8, 4)
        >>> opt = polyoptim.Adafactor(model.parameters(), lr=1e-2)
        >>> model(torch.randn(2, 8)).pow(2).mean().backward(); opt.step()
        >>> sorted(opt.state[model.weight])
        ['col_var', 'row_var', 'step']
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        beta2_decay: float = -0.8,
        eps: tuple[float | None, float] = (None, 1e-3),
        d: float = 1.0,
        weight_decay: float = 0.0,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
    ) -> None:
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not lr >= 0.0:
            raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
        if not beta2_decay <= 0.0:
            raise ValueError(f"beta2_decay should be <= 0 but is: {beta2_decay}")
        if eps[0] is not None and not eps[0] >= 0.0:
            raise ValueError(f"epsilon1 should be >= 0 but is: {eps[0]}")
        if not eps[1] >= 0.0:
            raise ValueError(f"epsilon2 should be >= 0 but is: {eps[1]}")
        if not d >= 1.0:
            raise ValueError(f"Clipping threshold d should be >= 1 but is: {d}")
        if not weight_decay >= 0.0:
            raise ValueError(f"weight_decay should be >= 0 but is: {weight_decay}")
        defaults = dict(
            lr=lr,
            beta2_decay=beta2_decay,
            eps=eps,
            d=d,
            weight_decay=weight_decay,
            foreach=foreach,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        fill_defaults(self, foreach=None)
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state.get(p, {})
                if st and not torch.is_tensor(st["step"]):
                    st["step"] = torch.tensor(float(st["step"]), dtype=_scalar_dtype())

    def _check_grad(self, p: Tensor, group: dict[str, Any]) -> None:
        if torch.is_complex(p):
            raise RuntimeError("Adafactor does not support complex parameters")
        super()._check_grad(p, group)

    def _init_param_state(self, p: Tensor, grad: Tensor) -> dict[str, Any]:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.tensor(0.0, dtype=_scalar_dtype())
            if grad.dim() > 1:
                rows, cols = factored_shapes(grad)
                state["row_var"] = grad.new_zeros(rows)
                state["col_var"] = grad.new_zeros(cols)
            else:
                state["variance"] = torch.zeros_like(grad, memory_format=torch.preserve_format)
        return state

    def _step_group(
        self, group: dict[str, Any], params: Sequence[Tensor], grads: Sequence[Tensor]
    ) -> None:
        for p in params:
            if is_dtensor(p) and p.dim() > 1:
                # the factored moment reduces a gradient over its rows and its columns, in place:
                # across shards that needs collectives this rule does not make (torch's
                # Adafactor fails on the same tensors, inside the update)
                raise RuntimeError(
                    "Adafactor does not support DTensor parameters of 2 or more dimensions "
                    f"(got one of shape {tuple(p.shape)} laid out as {p.placements}): its "
                    "factored second moment needs the whole gradient; use full_tensor() "
                    "parameters or an element-wise optimizer such as AdamW"
                )
        states = [self._init_param_state(p, g) for p, g in zip(params, grads)]
        lr = to_scalar(group["lr"])
        eps1, eps2 = group["eps"]
        if eps1 is None:
            # torch resolves it once, from the first parameter, for the whole group
            eps1 = torch.finfo(params[0].dtype).eps
        wd = group["weight_decay"]
        for p, grad, state in zip(params, grads, states):
            if group["maximize"]:
                grad = -grad
            state["step"] += 1
            weight, alpha = step_scalars(p, state["step"].item(), lr, group["beta2_decay"], eps2)
            if wd != 0:
                p.mul_(1 - lr * wd)
            if grad.dim() > 1:
                estimate = factored_variance(grad, state["row_var"], state["col_var"], weight, eps1)
            else:
                estimate = full_variance(grad, state["variance"], weight)
            update, clip = clipped_update(estimate, grad, eps1, group["d"])
            scale = -alpha / clip
            if group["foreach"]:
                p.add_(update.mul_(scale))
            else:
                p.add_(update, alpha=scale)
