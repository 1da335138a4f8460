"""Learning-rate schedules and dynamic_lr lists against the real MindSpore 2.10.0."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ms_golden_cases import all_cases, load, relerr

from polyoptim import mindspore as nn

SCHEDULES = all_cases("schedule")
DYNAMIC = all_cases("dynamic_lr")


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_matches_mindspore(name, record_property):
    case = load(name)
    meta = case["meta"]
    sched = getattr(nn, meta["schedule"])(**meta["kwargs"])
    lo, hi = meta["global_steps"]
    worst = 0.0
    for s in range(lo, hi + 1):
        got = sched(torch.tensor([s], dtype=torch.int32))
        assert got.dtype == torch.float32
        worst = max(worst, relerr(got.reshape(()), case["arrays"][f"lr{s}"]))
    record_property("mindspore_schedule_relerr", worst)
    assert worst <= 1e-6


@pytest.mark.parametrize("name", DYNAMIC)
def test_dynamic_lr_matches_mindspore(name):
    meta = load(name)["meta"]
    got = getattr(nn, meta["function"])(**meta["kwargs"])
    assert isinstance(got, list)
    assert got == meta["returned"]  # the same float64 arithmetic: equal to the last bit


def test_schedule_takes_ints_and_steps_an_optimizer():
    sched = nn.WarmUpLR(0.1, 4)
    assert float(sched(2)) == pytest.approx(0.05)
    w = torch.nn.Parameter(torch.zeros(1))
    opt = nn.SGD([w], learning_rate=sched)
    seen = []
    for _ in range(6):
        seen.append(float(opt.get_lr()))
        opt((torch.ones(1),))
    np.testing.assert_allclose(seen, [0.0, 0.025, 0.05, 0.075, 0.1, 0.1], rtol=1e-6)
    assert float(w.detach()) == pytest.approx(-sum(seen), rel=1e-6)


def test_user_schedule_subclass():
    class Halving(nn.LearningRateSchedule):
        def __init__(self, lr):
            super().__init__()
            self.lr = lr

        def construct(self, global_step):
            return self.lr * 0.5 ** global_step.to(torch.float32)

    w = torch.nn.Parameter(torch.zeros(1))
    opt = nn.Momentum([w], Halving(0.4), 0.0)
    for _ in range(3):
        opt((torch.ones(1),))
    assert float(w.detach()) == pytest.approx(-(0.4 + 0.2 + 0.1), rel=1e-6)
    assert opt.get_lr_parameter(w).lr == 0.4


@pytest.mark.parametrize(
    "make, exc",
    [
        (lambda: nn.ExponentialDecayLR(0.1, 0.9, 0), ValueError),
        (lambda: nn.ExponentialDecayLR(0.1, 0.9, 2.0), TypeError),
        (lambda: nn.ExponentialDecayLR(1, 0.9, 2), TypeError),
        (lambda: nn.NaturalExpDecayLR(0.1, -0.1, 2), ValueError),
        (lambda: nn.InverseDecayLR(0.1, 0.5, 2, is_stair=1), TypeError),
        (lambda: nn.CosineDecayLR(0.1, 0.05, 10), ValueError),
        (lambda: nn.CosineDecayLR(0, 0.05, 10), TypeError),
        (lambda: nn.PolynomialDecayLR(0.1, 0, 10, 1.0), TypeError),
        (lambda: nn.PolynomialDecayLR(0.1, 0.01, 10, -1.0), ValueError),
        (lambda: nn.WarmUpLR(1, 10), TypeError),
        (lambda: nn.WarmUpLR(0.1, 0), ValueError),
        (lambda: nn.piecewise_constant_lr([2, 1], [0.1, 0.2]), ValueError),
        (lambda: nn.piecewise_constant_lr([2], [0.1, 0.2]), ValueError),
        (lambda: nn.exponential_decay_lr(0.1, 0.9, 0, 1, 1), ValueError),
        (lambda: nn.cosine_decay_lr(0.2, 0.1, 10, 1, 1), ValueError),
        (lambda: nn.polynomial_decay_lr(0.1, 1, 10, 1, 1, 1.0), TypeError),
        (lambda: nn.warmup_lr(1, 10, 1, 1), TypeError),
    ],
)
def test_schedule_validation(make, exc):
    with pytest.raises(exc):
        make()


def test_lr_list_past_its_end_is_refused_without_a_change():
    w = torch.nn.Parameter(torch.ones(2))
    opt = nn.SGD([w], learning_rate=[0.1, 0.2])
    opt((torch.ones(2),))
    opt((torch.ones(2),))
    before = w.detach().clone()
    with pytest.raises(RuntimeError, match="past its end"):
        opt((torch.ones(2),))
    assert torch.equal(w.detach(), before) and opt.global_step == 2
