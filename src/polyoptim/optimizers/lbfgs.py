"""L-BFGS with torch.optim's signature, state layout and numbers."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from .. import graph_step
from ..rules.line_search import strong_wolfe
from ._common import ParamsT, check_lr, to_scalar
from .base import TorchOptimizer, replay_in_torch


class _FlatParams:
    """A list of parameters seen as one flat real vector (complex ones as (re, im) pairs)."""

    def __init__(self, params: Sequence[Tensor]) -> None:
        self.params = list(params)

    def grad(self) -> Tensor:
        """The gradients, concatenated; a missing gradient counts as zeros."""
        parts = []
        for p in self.params:
            if p.grad is None:
                g = torch.zeros(p.numel(), dtype=p.dtype, device=p.device)
            elif p.grad.is_sparse:
                g = p.grad.to_dense().reshape(-1)
            else:
                g = p.grad.reshape(-1)
            parts.append(torch.view_as_real(g).reshape(-1) if g.is_complex() else g)
        return torch.cat(parts, 0)

    def axpy(self, step: Any, direction: Tensor) -> None:
        """``params += step * direction``."""
        offset = 0
        for p in self.params:
            real = torch.view_as_real(p) if p.is_complex() else p
            n = real.numel()
            real.add_(direction[offset : offset + n].view_as(real), alpha=step)
            offset += n

    def snapshot(self) -> list[Tensor]:
        return [p.clone(memory_format=torch.contiguous_format) for p in self.params]

    def restore(self, snapshot: Sequence[Tensor]) -> None:
        for p, saved in zip(self.params, snapshot):
            p.copy_(saved)

    def probe(
        self, closure: Callable[[], Any], origin: Sequence[Tensor], t: Any, direction: Tensor
    ) -> tuple[float, Tensor]:
        """Loss and flat gradient at ``origin + t * direction``; the parameters are put back."""
        self.axpy(t, direction)
        loss = float(closure())
        grad = self.grad()
        self.restore(origin)
        return loss, grad


@dataclass
class _Memory:
    """What one ``step`` hands to the next, under torch's state keys (in torch's order)."""

    d: Tensor | None = None
    t: Any = None
    old_dirs: list[Tensor] | None = None
    old_stps: list[Tensor] | None = None
    ro: list[Tensor] | None = None
    H_diag: Any = None  # torch's state key
    prev_flat_grad: Tensor | None = None
    prev_loss: float | None = None

    @classmethod
    def load(cls, state: dict[str, Any]) -> _Memory:
        return cls(**{f.name: state.get(f.name) for f in fields(cls)})

    def store(self, state: dict[str, Any]) -> None:
        for f in fields(self):
            state[f.name] = getattr(self, f.name)

    def reset(self, flat_grad: Tensor) -> None:
        """Start over with steepest descent and an empty curvature history."""
        self.d = flat_grad.neg()
        self.old_dirs, self.old_stps, self.ro = [], [], []
        self.H_diag = 1

    def remember(self, flat_grad: Tensor, history_size: int) -> None:
        """Add the last step's curvature pair, if it keeps the approximation positive definite."""
        assert self.old_dirs is not None and self.old_stps is not None and self.ro is not None
        y = flat_grad.sub(self.prev_flat_grad)
        s = self.d.mul(self.t)
        ys = y.dot(s)
        if ys > 1e-10:
            if len(self.old_dirs) == history_size:
                for pairs in (self.old_dirs, self.old_stps, self.ro):
                    pairs.pop(0)
            self.old_dirs.append(y)
            self.old_stps.append(s)
            self.ro.append(1.0 / ys)
            self.H_diag = ys / y.dot(y)

    def direction(self, flat_grad: Tensor, al: list[Any]) -> Tensor:
        """The two-loop recursion: ``-H g`` with H the L-BFGS inverse-Hessian estimate."""
        assert self.old_dirs is not None and self.old_stps is not None and self.ro is not None
        ys, ss, ro = self.old_dirs, self.old_stps, self.ro
        q = flat_grad.neg()
        for i in reversed(range(len(ys))):
            al[i] = ss[i].dot(q) * ro[i]
            q.add_(ys[i], alpha=-al[i])
        r = torch.mul(q, self.H_diag)
        for i in range(len(ys)):
            r.add_(ss[i], alpha=al[i] - ys[i].dot(r) * ro[i])
        return r


class LBFGS(TorchOptimizer):
    r"""Limited-memory BFGS, after minFunc, optionally with a strong-Wolfe line search.

    Each ``step(closure)`` runs up to ``max_iter`` quasi-Newton iterations on the whole
    parameter vector :math:`x`:

    .. math::
        \begin{aligned}
        & d_k = -H_k g_k, \qquad H_k \text{ from the last } m \text{ pairs }
          s_i = x_{i+1}-x_i,\; y_i = g_{i+1}-g_i \text{ with } y_i^\top s_i > 10^{-10} \\
        & H_k^0 = \frac{y_{k-1}^\top s_{k-1}}{y_{k-1}^\top y_{k-1}} I, \qquad
          x_{k+1} = x_k + t_k d_k \\
        & t_k = \gamma \min\!\big(1, 1/\lVert g_0\rVert_1\big) \text{ on the first iteration,}
          \; \gamma \text{ afterwards, or a strong-Wolfe step}
        \end{aligned}

    It stops at ``max_iter`` iterations, ``max_eval`` closure calls, when
    :math:`\lVert g\rVert_\infty \le` ``tolerance_grad``, or when the step or the change of
    loss falls under ``tolerance_change``. The curvature history lives in the state of the
    first parameter (keys ``func_evals``, ``n_iter``, ``al``, ``d``, ``t``, ``old_dirs``,
    ``old_stps``, ``ro``, ``H_diag``, ``prev_flat_grad``, ``prev_loss``), as in torch.

    Only one parameter group is supported, and all parameters must be on one device. Memory:
    about ``param_bytes * (history_size + 1)`` extra.

    Args:
        params: tensors or ``(name, tensor)`` pairs (one group).
        lr: learning rate :math:`\gamma` (float or 1-element Tensor).
        max_iter: iterations per ``step``.
        max_eval: closure evaluations per ``step`` (default ``max_iter * 5 // 4``).
        tolerance_grad: first-order optimality tolerance.
        tolerance_change: tolerance on the change of loss and parameters.
        history_size: number of curvature pairs :math:`m` kept.
        line_search_fn: ``None`` (fixed step) or ``"strong_wolfe"``.

    Example:
        >>> import torch, polyoptim
        >>> w = torch.nn.Parameter(torch.tensor([1.5, -0.5]))
        >>> opt = polyoptim.LBFGS([w], line_search_fn="strong_wolfe")
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = (w - 3).pow(2).sum()
        ...     loss.backward()
        ...     return loss
        >>> _ = opt.step(closure)
        >>> torch.allclose(w.detach(), torch.tensor([3.0, 3.0]))
        True
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ) -> None:
        check_lr(lr)
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(
            lr=lr,
            max_iter=max_iter,
            max_eval=max_eval,
            tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change,
            history_size=history_size,
            line_search_fn=line_search_fn,
        )
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")

    @property
    def _params(self) -> list[Tensor]:
        # a property, not an attribute, so copies and unpickled optimizers keep working
        return self.param_groups[0]["params"]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        """Run up to ``max_iter`` L-BFGS iterations.

        Args:
            closure: re-evaluates the model (zeroing and recomputing gradients) and returns the
                loss. Required.
        """
        if torch.compiler.is_compiling():
            return graph_step.eager_closure_step(self, closure)
        if len(self.param_groups) != 1:
            raise AssertionError(
                f"Expected exactly one param_group, but got {len(self.param_groups)}"
            )
        closure = torch.enable_grad()(closure)
        group = self.param_groups[0]
        lr = to_scalar(group["lr"])
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        flat = _FlatParams(self._params)

        orig_loss = closure()
        if not all(p.is_floating_point() or p.is_complex() for p in self._params):
            # torch's error for an integer parameter, before anything changes (see base.py)
            replay_in_torch(self, group, self._params, lambda: orig_loss, whole=True)
        # the history is global; it sits on the first parameter so load_state_dict casts it
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        loss = float(orig_loss)
        evals = 1
        state["func_evals"] += 1
        flat_grad = flat.grad()
        converged = flat_grad.abs().max() <= tolerance_grad
        if converged:
            return orig_loss

        mem = _Memory.load(state)
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            first = state["n_iter"] == 1

            if first:
                mem.reset(flat_grad)
            else:
                mem.remember(flat_grad, group["history_size"])
                al = state.setdefault("al", [None] * group["history_size"])
                mem.d = mem.direction(flat_grad, al)
            if mem.prev_flat_grad is None:
                mem.prev_flat_grad = flat_grad.clone(memory_format=torch.contiguous_format)
            else:
                mem.prev_flat_grad.copy_(flat_grad)
            mem.prev_loss = loss
            d = mem.d
            assert d is not None

            # the very first step is scaled down so its length is at most lr
            mem.t = min(1.0, 1.0 / flat_grad.abs().sum()) * lr if first else lr
            gtd = flat_grad.dot(d)
            if gtd > -tolerance_change:
                break  # not a descent direction (to tolerance)

            used = 0
            if group["line_search_fn"] is not None:
                if group["line_search_fn"] != "strong_wolfe":
                    raise RuntimeError("only 'strong_wolfe' is supported")
                origin = flat.snapshot()
                loss, flat_grad, mem.t, used = strong_wolfe(
                    functools.partial(flat.probe, closure, origin, direction=d),
                    mem.t,
                    d,
                    loss,
                    flat_grad,
                    gtd,
                    max_ls=max_eval - evals,
                )
                flat.axpy(mem.t, d)
                converged = flat_grad.abs().max() <= tolerance_grad
            else:
                flat.axpy(mem.t, d)
                # the last iteration skips the re-evaluation: in a stochastic setting it
                # would only cost a closure call
                if n_iter != max_iter:
                    loss = float(closure())
                    flat_grad = flat.grad()
                    converged = flat_grad.abs().max() <= tolerance_grad
                    used = 1
            evals += used
            state["func_evals"] += used

            if n_iter == max_iter or evals >= max_eval or converged:
                break
            if d.mul(mem.t).abs().max() <= tolerance_change:
                break
            if abs(loss - mem.prev_loss) < tolerance_change:
                break

        mem.store(state)
        return orig_loss
