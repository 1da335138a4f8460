"""Paddle's ``LBFGS`` (a port of torch's), with Paddle's state names and line-search budget.

The quasi-Newton machinery is polyoptim's (:mod:`polyoptim.optimizers.lbfgs` for the two-loop
recursion, :func:`polyoptim.rules.line_search.strong_wolfe`); what differs from torch is kept
here:

* the strong-Wolfe search may always use up to 25 evaluations (torch 2.13 caps it by what is
  left of ``max_eval``);
* the stopping tests run in Paddle's order (the outcome is the same; the counters too);
* ``state_dict()`` is ``{'state': {'func_evals', 'n_iter', 'd', 'alpha', 'old_yk', 'old_sk',
  'ro', 'H_diag', 'prev_flat_grad', 'prev_loss', 'al'}}``;
* ``weight_decay`` and ``grad_clip`` are accepted and ignored, as Paddle's ``LBFGS.step``
  ignores them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from .. import graph_step
from ..optimizers.lbfgs import _FlatParams, _Memory
from ..rules.line_search import strong_wolfe
from .base import Optimizer, ParamsArg
from .clip import ClipGradBase
from .regularizer import WeightDecayRegularizer

#: Paddle's state names for the fields of the shared L-BFGS memory
_NAMES = {
    "d": "d",
    "alpha": "t",
    "old_yk": "old_dirs",
    "old_sk": "old_stps",
    "ro": "ro",
    "H_diag": "H_diag",
    "prev_flat_grad": "prev_flat_grad",
    "prev_loss": "prev_loss",
}


def _float(loss: Any) -> float:
    return float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)


class LBFGS(Optimizer):
    r"""Limited-memory BFGS with an optional strong-Wolfe line search.

    Each ``step(closure)`` runs up to ``max_iter`` iterations on the flattened parameters
    :math:`x`: :math:`d = -H g` by the two-loop recursion over the last ``history_size``
    pairs :math:`(s_i, y_i)` with :math:`y_i^\top s_i > 10^{-10}`,
    :math:`H_0 = \frac{y^\top s}{y^\top y} I`, then :math:`x \leftarrow x + t d` with
    :math:`t = \gamma \min(1, 1/\lVert g\rVert_1)` on the very first iteration, :math:`\gamma`
    after, or a strong-Wolfe step. It stops at ``max_iter`` iterations, ``max_eval`` closure
    calls, :math:`\lVert g\rVert_\infty \le` ``tolerance_grad``, or a step/loss change below
    ``tolerance_change``.

    Args:
        learning_rate: :math:`\gamma` (default 1.0).
        max_iter: iterations per ``step`` (default 20).
        max_eval: closure calls per ``step`` (default ``max_iter * 5 // 4``).
        tolerance_grad: first-order optimality tolerance.
        tolerance_change: tolerance on parameter and loss changes.
        history_size: pairs kept (default 100).
        line_search_fn: None or ``'strong_wolfe'``.
        parameters: tensors or ``(name, tensor)`` pairs.
        weight_decay: accepted and ignored (as Paddle).
        grad_clip: accepted and ignored (as Paddle).
        name: unused.

    Example:
        >>> import torch
        >>> from polyoptim import paddle as P
        >>> w = torch.nn.Parameter(torch.tensor([1.5, -0.5]))
        >>> opt = P.LBFGS(parameters=[w], line_search_fn="strong_wolfe")
        >>> def closure():
        ...     opt.clear_grad()
        ...     loss = (w - 3).pow(2).sum()
        ...     loss.backward()
        ...     return loss
        >>> _ = opt.step(closure)
        >>> torch.allclose(w.detach(), torch.tensor([3.0, 3.0]))
        True
    """

    def __init__(
        self,
        learning_rate: float = 1.0,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
        parameters: ParamsArg | None = None,
        weight_decay: float | WeightDecayRegularizer | None = None,
        grad_clip: ClipGradBase | None = None,
        name: str | None = None,
    ) -> None:
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_eval = max_eval
        self.tolerance_grad = tolerance_grad
        self.tolerance_change = tolerance_change
        self.history_size = history_size
        self.line_search_fn = line_search_fn
        if isinstance(parameters, torch.Tensor):
            raise TypeError(
                "parameters argument given to the optimizer should be an iterable of Tensors "
                f"or dicts, but got {type(parameters)}"
            )
        super().__init__(1.0, parameters, weight_decay, grad_clip, name)
        #: the history, Paddle's ``LBFGS.state`` (one dict for all parameters)
        self.lbfgs_state: dict[str, Any] = {}

    @property
    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _refuse_integral(self) -> None:
        """Paddle's errors for an integer or bool parameter, before anything changes: ``abs``
        of the flat gradient has no bool kernel; an integer parameter fails the first update's
        type promotion."""
        for p in self._params:
            if p.is_floating_point() or p.is_complex():
                continue
            dtype = str(p.dtype).removeprefix("torch.")
            if p.dtype == torch.bool:
                raise RuntimeError(
                    "(NotFound) The kernel with key (CPU, Undefined(AnyLayout), bool) of kernel "
                    "`abs` is not registered. Selected wrong DataType `bool`. Paddle support "
                    "following DataTypes: int32, int64, float64, complex128, float32, complex64."
                )
            raise TypeError(
                "(InvalidType) Type promotion only support calculations between floating-point "
                "numbers and between complex and real numbers. But got different data type x: "
                f"{dtype}, y: float32."
            )

    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        """Run up to ``max_iter`` iterations.

        Args:
            closure: clears the gradients, recomputes the loss, calls ``backward`` and returns
                the loss. Required.

        Returns:
            The loss at the start of the step.
        """
        if torch.compiler.is_compiling():
            return graph_step.eager_closure_step(self, closure)
        closure = torch.enable_grad()(closure)
        lr = self.learning_rate
        tol_grad, tol_change = self.tolerance_grad, self.tolerance_change
        flat = _FlatParams(self._params)
        orig_loss = closure()
        self._refuse_integral()
        state = self.lbfgs_state
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        loss = _float(orig_loss)
        evals = 1
        state["func_evals"] += 1
        flat_grad = flat.grad()
        if flat_grad.abs().max() <= tol_grad:
            return orig_loss

        mem = _Memory(**{torch_key: state.get(key) for key, torch_key in _NAMES.items()})
        n_iter = 0
        while n_iter < self.max_iter:
            n_iter += 1
            state["n_iter"] += 1
            first = state["n_iter"] == 1
            if first:
                mem.reset(flat_grad)
                mem.H_diag = torch.tensor(1.0, dtype=flat_grad.dtype)
            else:
                mem.remember(flat_grad, self.history_size)
                al = state.setdefault("al", [None] * self.history_size)
                mem.d = mem.direction(flat_grad, al)
            if mem.prev_flat_grad is None:
                mem.prev_flat_grad = flat_grad.clone(memory_format=torch.contiguous_format)
            else:
                mem.prev_flat_grad.copy_(flat_grad)
            mem.prev_loss = loss
            d = mem.d
            assert d is not None
            mem.t = min(1.0, 1.0 / flat_grad.abs().sum()) * lr if first else lr
            gtd = flat_grad.dot(d)
            if gtd > -tol_change:
                break

            used = 0
            if self.line_search_fn is not None:
                if self.line_search_fn != "strong_wolfe":
                    raise RuntimeError("only 'strong_wolfe' is supported")
                origin = flat.snapshot()
                loss, flat_grad, mem.t, used = strong_wolfe(
                    functools.partial(flat.probe, closure, origin, direction=d),
                    mem.t,
                    d,
                    loss,
                    flat_grad,
                    gtd,
                    max_ls=25,  # Paddle's budget (torch 2.13 caps it by max_eval)
                )
                flat.axpy(mem.t, d)
                converged = bool(flat_grad.abs().max() <= tol_grad)
            else:
                flat.axpy(mem.t, d)
                converged = False
                if n_iter != self.max_iter:
                    loss = _float(closure())
                    flat_grad = flat.grad()
                    converged = bool(flat_grad.abs().max() <= tol_grad)
                    used = 1
            evals += used
            state["func_evals"] += used
            # Paddle's order of the stopping tests
            if converged:
                break
            if (d * mem.t).abs().max() <= tol_change:
                break
            if abs(loss - mem.prev_loss) < tol_change:
                break
            if evals >= self.max_eval:
                break
            if n_iter == self.max_iter:
                break

        for key, torch_key in _NAMES.items():
            state[key] = getattr(mem, torch_key)
        return orig_loss

    def minimize(
        self,
        loss: Any,
        startup_program: Any = None,
        parameters: Any = None,
        no_grad_set: Any = None,
    ) -> Any:
        """Not supported (as in Paddle): call ``step(closure)``."""
        raise NotImplementedError(
            "LBFGS optimizer does not use this way to minimize loss. Please refer 'Examples' of "
            "LBFGS() for usage."
        )

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """``{'state': {...}}`` with Paddle's keys (see the module docstring)."""
        return {"state": dict(self.lbfgs_state)}

    def set_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the history saved by :meth:`state_dict` (Paddle's or polyoptim's).

        Every value is checked before anything changes: numbers, ``None``, tensors (or arrays)
        of one element or of as many as the parameters hold, and flat lists of those no longer
        than ``history_size`` -- so a file cannot make the history larger than a real one.
        """
        if not isinstance(state_dict, dict) or not isinstance(state_dict.get("state"), dict):
            raise TypeError("an LBFGS state_dict is {'state': {...}}")
        from .base import _to_tensor

        size = sum(p.numel() for p in self._params)

        def one(key: Any, v: Any) -> Any:
            if v is None or isinstance(v, (int, float)):
                return v
            t = _to_tensor(v)
            if t.numel() not in (1, size):
                raise ValueError(
                    f"LBFGS state {key!r} holds a tensor of {t.numel()} elements; the parameters "
                    f"hold {size}"
                )
            return t.clone()

        def convert(key: Any, v: Any) -> Any:
            if not isinstance(v, list):
                return one(key, v)
            if len(v) > self.history_size:
                raise ValueError(
                    f"LBFGS state {key!r} has {len(v)} entries, more than history_size="
                    f"{self.history_size}"
                )
            return [one(key, x) for x in v]

        self.lbfgs_state = {k: convert(k, v) for k, v in state_dict["state"].items()}

    load_state_dict = set_state_dict  # type: ignore[assignment]
