"""Which polyoptim path equals which torch path, as docs/torch.md and the README say.

* ``foreach=False`` (one tensor at a time) equals torch's default CPU path, its for-loop, bit
  for bit.
* The default CPU path (the fused kernel) equals torch's ``fused=True`` bit for bit for
  Adam, AdamW and Adagrad; for SGD with momentum it equals torch's for-loop bit for bit (torch's
  own fused SGD rounds differently from its for-loop); for the algorithms torch has no fused
  kernel for, it differs from torch's for-loop by float rounding only.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

import polyoptim

SHAPES = [(64, 33), (33,), (7, 5, 3), (1000,)]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("numba") is None, reason="the default fused path needs Numba"
)


def _run(cls, steps: int = 10, **kw) -> list[torch.Tensor]:
    torch.manual_seed(1)
    ps = [torch.nn.Parameter(torch.randn(s)) for s in SHAPES]
    opt = cls(ps, **kw)
    gen = torch.Generator().manual_seed(2)
    for _ in range(steps):
        for p in ps:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
    return [p.detach() for p in ps]


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


FUSED_IN_TORCH = [
    ("Adam", {"lr": 1e-2}),
    ("Adam", {"lr": 1e-2, "amsgrad": True, "weight_decay": 0.01}),
    ("AdamW", {"lr": 1e-2, "weight_decay": 0.1}),
    ("Adagrad", {"lr": 0.1, "weight_decay": 0.01}),
]
FOR_LOOP_ONLY = [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
    ("NAdam", {"lr": 1e-2}),
    ("RAdam", {"lr": 1e-2}),
    ("RMSprop", {"lr": 1e-2, "momentum": 0.5, "centered": True}),
    ("Adadelta", {"lr": 1.0}),
    ("Adamax", {"lr": 1e-2}),
    ("Rprop", {"lr": 1e-2}),
    ("ASGD", {"lr": 1e-2}),
]


@pytest.mark.parametrize(("name", "kw"), FUSED_IN_TORCH)
def test_default_path_equals_torch_fused_bit_for_bit(name, kw):
    ours = _run(getattr(polyoptim, name), **kw)
    assert _same(ours, _run(getattr(torch.optim, name), fused=True, **kw))


@pytest.mark.parametrize(("name", "kw"), FUSED_IN_TORCH + FOR_LOOP_ONLY)
def test_foreach_false_equals_torch_default_for_loop_bit_for_bit(name, kw):
    ours = _run(getattr(polyoptim, name), foreach=False, **kw)
    assert _same(ours, _run(getattr(torch.optim, name), **kw))


@pytest.mark.parametrize(("name", "kw"), FUSED_IN_TORCH + FOR_LOOP_ONLY)
def test_default_path_is_within_float_rounding_of_torch_for_loop(name, kw):
    ours = _run(getattr(polyoptim, name), **kw)
    ref = _run(getattr(torch.optim, name), **kw)
    for x, y in zip(ours, ref):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)


def test_sgd_momentum_default_equals_torch_for_loop_not_torch_fused():
    kw = {"lr": 0.1, "momentum": 0.9}
    ours = _run(polyoptim.SGD, **kw)
    assert _same(ours, _run(torch.optim.SGD, **kw))
    assert not _same(_run(torch.optim.SGD, fused=True, **kw), _run(torch.optim.SGD, **kw))
