"""The lean non-fused kernels (``kernels/lean.py``): bit-identical with the reference way of
running a rule, on every configuration of torch's optimizer database; no parameter-sized
allocation beyond torch's own; buckets whose tensors take different branches."""

from __future__ import annotations

import pytest
import torch
from torch_cases import Case, cases, clone_kwargs, grads_for, make_params

import polyoptim
from polyoptim.kernels import eager

ELEMENTWISE = cases(lambda cls: getattr(cls, "rule", None) is not None)
NON_FUSED = [
    c for c in ELEMENTWISE if not c.kwargs.get("fused") and not c.kwargs.get("differentiable")
]


def _trajectory(case: Case, lean: bool, monkeypatch) -> list[torch.Tensor] | None:
    monkeypatch.setattr(eager, "LEAN", lean)
    kwargs = clone_kwargs(case.kwargs)
    kwargs.setdefault("foreach", False)  # the for-loop, not the CPU default (fused)
    params = [p.clone() for p in make_params(case)]
    try:
        opt = getattr(polyoptim, case.name)(params, **kwargs)
    except Exception:  # noqa: BLE001 - an error input; test_torch_parity compares those
        return None
    out = []
    for step in range(6):
        for p, g in zip(params, grads_for(params, step)):
            p.grad = g
        opt.step()
        out += [p.detach().clone() for p in params]
    for st in opt.state.values():
        out += [v.clone() for v in st.values() if isinstance(v, torch.Tensor)]
    return out


@pytest.mark.parametrize("case", NON_FUSED, ids=lambda c: c.id)
def test_lean_equals_reference_bit_for_bit(case: Case, monkeypatch) -> None:
    ref = _trajectory(case, False, monkeypatch)
    got = _trajectory(case, True, monkeypatch)
    if ref is None:
        return
    assert got is not None and len(got) == len(ref)
    for a, b in zip(ref, got):
        assert a.dtype == b.dtype
        assert torch.equal(a, b) or (a.isnan() == b.isnan()).all() and torch.equal(
            a.nan_to_num(), b.nan_to_num()
        ), (a, b)


def test_lean_programs_run_without_reference_fallback(monkeypatch) -> None:
    """The bit-for-bit test above would pass trivially if the lean path never ran: every
    plain configuration (no tensor hyperparameters) runs only lean programs."""
    calls = []
    monkeypatch.setattr(eager, "_single_reference", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(eager, "_foreach_reference", lambda *a, **k: calls.append(a))
    ran = 0
    for case in NON_FUSED:
        if any(isinstance(v, torch.Tensor) for v in case.kwargs.values()):
            continue
        calls.clear()
        if _trajectory(case, True, monkeypatch) is not None:
            assert not calls, case.id
            ran += 1
    assert ran > 150
