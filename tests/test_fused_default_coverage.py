"""Every element-wise optimizer of every dialect launches the fused CPU kernel by default.

Found by walking each dialect's public classes, so an optimizer added later is covered (or must
be named below as one the kernel cannot take). Two defaults were once missed this way: Paddle's
``use_multi_tensor=False`` asked for torch's for-loop by name, and Paddle's ASGD stepped each
tensor by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from kernel_calls import count_kernel_calls

import polyoptim
from polyoptim import mindspore as ms
from polyoptim import paddle as pd
from polyoptim.kernels import cpu_fused

pytestmark = pytest.mark.skipif(not cpu_fused.available(), reason="needs Numba")

#: not element-wise: whole-tensor norms or factored moments, line searches, matrix iterations
NOT_ELEMENTWISE = {
    "torch": {"Adafactor", "LBFGS", "Muon", "SparseAdam"},
    "paddle": {"Lamb", "LBFGS"},
    "mindspore": {"AdaFactor", "Lamb"},
}


def _params() -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(6, generator=gen)) for _ in range(3)]


def _grads(n: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(6, generator=gen) for _ in range(n)]


def _grad_stepper(opt_of: Callable[[list[torch.nn.Parameter]], Any]) -> Any:
    """A step of ``opt_of(params)`` after setting fresh ``.grad``s (torch's and Paddle's way);
    ``step.params`` are the parameters it steps."""
    ps = _params()
    opt = opt_of(ps)

    def step() -> None:
        for p, g in zip(ps, _grads(len(ps))):
            p.grad = g
        opt.step()

    step.params = ps  # type: ignore[attr-defined]
    return step


def _torch_step(cls: type) -> Callable[[], None]:
    return _grad_stepper(lambda ps: cls(ps, lr=0.01))


def _paddle_step(cls: type) -> Callable[[], None]:
    return _grad_stepper(lambda ps: cls(learning_rate=0.01, parameters=ps))


def _mindspore_step(cls: type) -> Any:
    ps = _params()
    if cls is ms.LARS:
        opt = cls(ms.SGD(ps, learning_rate=0.01))
    else:
        opt = cls(ps, learning_rate=0.01, **({"momentum": 0.9} if cls is ms.Momentum else {}))

    def step() -> None:
        opt(tuple(_grads(len(ps))))

    step.params = ps  # type: ignore[attr-defined]
    return step


def _classes() -> list[tuple[str, str, Callable[[type], Callable[[], None]], type]]:
    found = []
    for name in polyoptim.__all__:
        cls = getattr(polyoptim, name)
        base = polyoptim.Optimizer
        if isinstance(cls, type) and issubclass(cls, base) and cls is not base:
            found.append(("torch", name, _torch_step, cls))
    for name in dir(pd.optimizer):
        cls = getattr(pd.optimizer, name)
        base = pd.optimizer.Optimizer
        if isinstance(cls, type) and issubclass(cls, base) and cls is not base:
            found.append(("paddle", name, _paddle_step, cls))
    for name in dir(ms):
        cls = getattr(ms, name)
        if isinstance(cls, type) and issubclass(cls, ms.Optimizer) and cls is not ms.Optimizer:
            found.append(("mindspore", name, _mindspore_step, cls))
    return found


CLASSES = _classes()


def test_every_dialect_was_walked():
    dialects = {d for d, *_ in CLASSES}
    assert dialects == {"torch", "paddle", "mindspore"}
    for dialect, names in NOT_ELEMENTWISE.items():
        assert names <= {n for d, n, *_ in CLASSES if d == dialect}  # no stale exclusion


@pytest.mark.parametrize(
    "dialect, name, make, cls",
    [c for c in CLASSES if c[1] not in NOT_ELEMENTWISE[c[0]]],
    ids=[f"{c[0]}-{c[1]}" for c in CLASSES if c[1] not in NOT_ELEMENTWISE[c[0]]],
)
def test_default_step_launches_the_fused_kernel(dialect, name, make, cls):
    step = make(cls)
    with count_kernel_calls() as calls:
        step()
        step()
    assert calls["launch"] and not calls["eager"]
