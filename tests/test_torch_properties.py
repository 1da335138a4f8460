"""Property tests: random shapes, dtypes and hyperparameters; polyoptim == torch.optim."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import polyoptim

shapes = st.lists(st.integers(1, 6), min_size=0, max_size=3).map(tuple)
dtypes = st.sampled_from([torch.float32, torch.float64])
unit = st.floats(0.0, 0.99)
small = st.floats(1e-4, 0.5)
flags = st.booleans()


def hyper(name: str):
    """A strategy of valid keyword arguments for one optimizer."""
    common = dict(maximize=flags, foreach=flags)
    table = {
        "SGD": dict(lr=small, momentum=unit, weight_decay=small, **common),
        "Adam": dict(
            lr=small,
            betas=st.tuples(unit, unit),
            eps=small,
            weight_decay=small,
            amsgrad=flags,
            decoupled_weight_decay=flags,
            **common,
        ),
        "AdamW": dict(
            lr=small, betas=st.tuples(unit, unit), weight_decay=small, amsgrad=flags, **common
        ),
        "Adamax": dict(lr=small, betas=st.tuples(unit, unit), weight_decay=small, **common),
        "NAdam": dict(
            lr=small,
            betas=st.tuples(unit, unit),
            momentum_decay=small,
            decoupled_weight_decay=flags,
            weight_decay=small,
            **common,
        ),
        "RAdam": dict(
            lr=small,
            betas=st.tuples(unit, unit),
            decoupled_weight_decay=flags,
            weight_decay=small,
            **common,
        ),
        "Adagrad": dict(
            lr=small, lr_decay=small, weight_decay=small, initial_accumulator_value=small, **common
        ),
        "Adadelta": dict(lr=small, rho=unit, weight_decay=small, **common),
        "RMSprop": dict(
            lr=small, alpha=unit, momentum=unit, centered=flags, weight_decay=small, **common
        ),
        "Rprop": dict(lr=small, etas=st.tuples(st.floats(0.1, 0.9), st.floats(1.1, 2.0)), **common),
        "ASGD": dict(
            lr=small, lambd=small, alpha=unit, t0=st.integers(0, 5), weight_decay=small, **common
        ),
    }
    return st.fixed_dictionaries(table[name])


NAMES = [
    "SGD",
    "Adam",
    "AdamW",
    "Adamax",
    "NAdam",
    "RAdam",
    "Adagrad",
    "Adadelta",
    "RMSprop",
    "Rprop",
    "ASGD",
]


def run(cls, init, grads_per_step, kw):
    params = [p.clone() for p in init]
    opt = cls(params, **kw)
    for gs in grads_per_step:
        for p, gr in zip(params, gs):
            p.grad = gr.clone()
        opt.step()
    return params


@pytest.mark.parametrize("name", NAMES)
def test_random_configs_match_torch(name):
    """Within float tolerance of torch. Some random configurations are ill-conditioned (centered
    RMSprop with a tiny alpha takes the square root of a cancellation), and there one rounding
    step apart grows; the allowance then is how far torch's own float32 result is from the exact
    (float64) trajectory, and how far torch's for-loop and foreach paths are from each other."""

    @settings(max_examples=15, deadline=None)
    @given(
        kw=hyper(name),
        shape_list=st.lists(shapes, min_size=1, max_size=3),
        dtype=dtypes,
        seed=st.integers(0, 2**16),
    )
    def check(kw, shape_list, dtype, seed):
        g = torch.Generator().manual_seed(seed)
        init = [torch.randn(s, generator=g, dtype=dtype) for s in shape_list]
        steps = [[torch.randn(s, generator=g, dtype=dtype) for s in shape_list] for _ in range(6)]
        torch_cls = getattr(torch.optim, name)
        ref = run(torch_cls, init, steps, kw)
        other = run(torch_cls, init, steps, {**kw, "foreach": not kw["foreach"]})
        exact = run(
            torch_cls, [p.double() for p in init], [[x.double() for x in gs] for gs in steps], kw
        )
        got = run(getattr(polyoptim, name), init, steps, kw)
        for a, b, c, e in zip(ref, got, other, exact):
            spread = (
                max(
                    (a - c).abs().nan_to_num(0).max().item(),
                    (a.double() - e).abs().nan_to_num(0).max().item(),
                )
                if a.numel()
                else 0.0
            )
            torch.testing.assert_close(
                b,
                a,
                equal_nan=True,
                rtol=1e-5 if dtype == torch.float32 else 1e-9,
                atol=max(1e-6 if dtype == torch.float32 else 1e-12, 4 * spread),
            )

    check()
