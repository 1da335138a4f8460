"""polyoptim == torch.optim on every configuration of torch's own optimizer database.

Same initial parameters, same gradients, 10 steps: parameters after every step, every state
tensor and the param_groups at the end must agree within the dtype's tolerance; where torch
raises, polyoptim must raise the same exception type with the same message.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch_cases import Case, cases, clone_kwargs, grads_for, make_params

import polyoptim

STEPS = 10
ELEMENTWISE = cases(lambda cls: getattr(cls, "rule", None) is not None)


def _relerr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    if a.is_complex():
        a, b = torch.view_as_real(a), torch.view_as_real(b)
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / a.abs().max().clamp_min(1e-12)).item() if a.numel() else 0.0


def _run(factory, case: Case, params):
    """Build and step an optimizer; return (optimizer, exception)."""
    try:
        opt = factory(params, **clone_kwargs(case.kwargs))
    except Exception as e:  # noqa: BLE001 - the exception itself is compared
        return None, e
    return opt, None


def assert_same_error(expected: BaseException, got: BaseException | None) -> None:
    assert got is not None, f"torch raised {expected!r}, polyoptim did not"
    assert type(got) is type(expected), (type(got), type(expected), got, expected)
    assert str(got) == str(expected)


def assert_state_equal(sa: dict, sb: dict) -> float:
    worst = 0.0
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for i in sa["state"]:
        assert list(sa["state"][i]) == list(sb["state"][i]), "state keys or their order differ"
        for k, va in sa["state"][i].items():
            vb = sb["state"][i][k]
            if isinstance(va, torch.Tensor):
                assert va.dtype == vb.dtype and va.shape == vb.shape and va.device == vb.device
                torch.testing.assert_close(vb, va)
                worst = max(worst, _relerr(va, vb))
            else:
                assert va == vb
    return worst


@pytest.mark.parametrize("case", ELEMENTWISE, ids=lambda c: c.id)
def test_matches_torch(case: Case, record_property) -> None:
    init = make_params(case)
    pa = [p.clone() for p in init]
    pb = [p.clone() for p in init]
    ta, ea = _run(getattr(torch.optim, case.name), case, pa)
    tb, eb = _run(getattr(polyoptim, case.name), case, pb)
    if ea is not None:
        return assert_same_error(ea, eb)
    assert eb is None, eb
    worst = 0.0
    for step in range(STEPS):
        gs = grads_for(init, step)
        for p, g in zip(pa, gs):
            p.grad = g.clone()
        for p, g in zip(pb, gs):
            p.grad = g.clone()
        try:
            ta.step()
        except Exception as e:  # noqa: BLE001
            with pytest.raises(type(e)) as info:
                tb.step()
            assert str(info.value) == str(e)
            return
        tb.step()
        for a, b in zip(pa, pb):
            torch.testing.assert_close(b, a)
            worst = max(worst, _relerr(a, b))
    worst = max(worst, assert_state_equal(ta.state_dict(), tb.state_dict()))
    record_property("parity_relerr", worst)  # summed up at the end of the run (conftest.py)


def test_every_database_optimizer_is_covered() -> None:
    assert {c.name for c in ELEMENTWISE} >= {
        "SGD",
        "Adam",
        "AdamW",
        "Adamax",
        "Adagrad",
        "Adadelta",
        "ASGD",
        "NAdam",
        "RAdam",
        "RMSprop",
        "Rprop",
    }
    assert len(ELEMENTWISE) > 300


@pytest.mark.parametrize("name", sorted({c.name for c in ELEMENTWISE}))
def test_error_inputs(name: str) -> None:
    """Every ErrorOptimizerInput of torch's database: same exception type and message."""
    info = next(c.info for c in ELEMENTWISE if c.name == name)
    for dtype in (torch.float32, torch.float64):
        for err in info.optim_error_inputs_func(device="cpu", dtype=dtype):
            oi = err.optimizer_error_input
            for cls in (getattr(torch.optim, name), getattr(polyoptim, name)):
                params = oi.params
                if isinstance(params, torch.Tensor):
                    params = params.clone()
                expect = pytest.warns if issubclass(err.error_type, Warning) else pytest.raises
                with expect(err.error_type, match=err.error_regex):
                    opt = cls(params, **oi.kwargs)
                    if str(err.error_on).endswith("STEP_ERROR"):
                        opt.step()


def test_error_messages_identical() -> None:
    """Construction errors beyond torch's database: messages are character-for-character."""
    bad = [
        ("SGD", dict(lr=-1.0)),
        ("SGD", dict(lr=0.1, nesterov=True)),
        ("SGD", dict(lr=0.1, fused=True, foreach=True)),
        ("SGD", dict(lr=0.1, fused=True, differentiable=True)),
        ("Adam", dict(eps=-1.0)),
        ("Adam", dict(betas=(0.9, 1.0))),
        ("Adam", dict(betas=(torch.tensor([0.9, 0.8]), torch.tensor(0.9)))),
        ("Adagrad", dict(initial_accumulator_value=-1.0)),
        ("Adagrad", dict(eps=-1.0)),
        ("RMSprop", dict(alpha=-1.0)),
        ("RMSprop", dict(eps=-1.0)),
        ("Rprop", dict(etas=(0.5, 0.9))),
        ("NAdam", dict(betas=(0.9, 1.5))),
        ("Adadelta", dict(eps=-1.0)),
    ]
    for name, kw in bad:
        errors = []
        for mod in (torch.optim, polyoptim):
            with pytest.raises(Exception) as info:
                getattr(mod, name)([torch.zeros(2)], **kw)
            errors.append(info.value)
        assert type(errors[0]) is type(errors[1]) and str(errors[0]) == str(errors[1]), (name, kw)


def test_fused_rejects_integer_params_like_torch() -> None:
    for mod in (torch.optim, polyoptim):
        p = torch.zeros(3, dtype=torch.int64)
        p.grad = torch.zeros(3, dtype=torch.int64)
        with pytest.raises(RuntimeError, match=re.escape("`fused=True` requires all the params")):
            mod.Adam([p], fused=True).step()


CAPTURABLE = ["Adam", "AdamW", "NAdam", "RAdam", "Adamax", "Adadelta", "RMSprop", "Rprop", "ASGD"]


@pytest.mark.parametrize("name", CAPTURABLE)
def test_capturable_on_cpu_refused_like_torch(name: str) -> None:
    errors = []
    for mod in (torch.optim, polyoptim):
        p = torch.randn(3)
        p.grad = torch.randn(3)
        with pytest.raises(AssertionError) as info:
            getattr(mod, name)([p], capturable=True).step()
        errors.append(str(info.value))
    assert errors[0] == errors[1]


def test_tensor_betas_and_lr_like_torch() -> None:
    results = []
    for mod in (torch.optim, polyoptim):
        p = torch.ones(3)
        opt = mod.Adam([p], lr=torch.tensor(0.01), betas=(torch.tensor([0.8]), torch.tensor(0.9)))
        for i in range(4):
            p.grad = torch.arange(3.0) + i
            opt.step()
        results.append((p, opt.state_dict()))
    torch.testing.assert_close(results[1][0], results[0][0])
    assert str(results[1][1]["param_groups"]) == str(results[0][1]["param_groups"])


@pytest.mark.parametrize("name", ["SGD", "Adam", "Adagrad", "RMSprop", "Adadelta", "Rprop"])
def test_nan_hyperparameters_treated_like_torch(name: str) -> None:
    """torch refuses a NaN lr where it writes ``not 0.0 <= lr`` and lets it pass in SGD."""
    outcomes = []
    for mod in (torch.optim, polyoptim):
        try:
            getattr(mod, name)([torch.zeros(1)], lr=float("nan"))
            outcomes.append("accepted")
        except ValueError as e:
            outcomes.append(str(e))
    assert outcomes[0] == outcomes[1]
