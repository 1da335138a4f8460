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
        assert (
            torch.equal(a, b)
            or (a.isnan() == b.isnan()).all()
            and torch.equal(a.nan_to_num(), b.nan_to_num())
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


# -- buckets whose tensors take different branches of the update ------------------------------
def _stepped_unevenly(mod, name: str, foreach: bool, dtype=torch.float64, **kw):
    """Two parameters, the second without a gradient for the first steps: its state is created
    later, so in one bucket the tensors are at different step counts (RAdam: rectification on
    for one, off for the other; SGD: the first momentum step for one only)."""
    gen = torch.Generator().manual_seed(0)
    ps = [torch.randn(6, generator=gen, dtype=dtype) for _ in range(2)]
    opt = getattr(mod, name)(ps, foreach=foreach, **kw)
    for step in range(9):
        for j, p in enumerate(ps):
            p.grad = torch.randn(6, generator=gen, dtype=dtype) if j == 0 or step >= 6 else None
        opt.step()
    return ps


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize(
    "name,kw", [("RAdam", {}), ("SGD", {"lr": 0.1, "momentum": 0.9}), ("NAdam", {})]
)
def test_bucket_of_tensors_at_different_steps_matches_torch(name, kw, foreach) -> None:
    """Was: foreach RAdam raised ``TypeError: expected Tensor as element 0 in argument 1, but
    got TensorList`` (torch's own test_foreach_matches_forloop finds it), and foreach SGD gave
    the older parameter a first-step momentum buffer."""
    want = _stepped_unevenly(torch.optim, name, foreach, **kw)
    got = _stepped_unevenly(polyoptim, name, foreach, **kw)
    for a, b in zip(want, got):
        torch.testing.assert_close(b, a)


@pytest.mark.parametrize("name,kw", [("RAdam", {}), ("SGD", {"lr": 0.1, "momentum": 0.9})])
def test_reference_foreach_splits_buckets_too(name, kw, monkeypatch) -> None:
    monkeypatch.setattr(eager, "LEAN", False)
    want = _stepped_unevenly(torch.optim, name, True, **kw)
    got = _stepped_unevenly(polyoptim, name, True, **kw)
    for a, b in zip(want, got):
        torch.testing.assert_close(b, a)


# -- memory: no parameter-sized temporaries beyond torch's --------------------------------------
class _Allocations(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts tensors of at least ``numel`` elements that ops create (outputs that are not one
    of their inputs' storage: in-place and ``out=`` results are not allocations)."""

    def __init__(self, numel: int) -> None:
        super().__init__()
        self.numel, self.count = numel, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        flat_in, _ = torch.utils._pytree.tree_flatten((args, kwargs))
        seen = {
            t.untyped_storage().data_ptr()
            for t in flat_in
            if isinstance(t, torch.Tensor) and t.layout == torch.strided
        }
        flat_out, _ = torch.utils._pytree.tree_flatten(out)
        for t in flat_out:
            if (
                isinstance(t, torch.Tensor)
                and t.numel() >= self.numel
                and t.untyped_storage().data_ptr() not in seen
            ):
                self.count += 1
        return out


MEMORY_CASES = [
    ("Adam", {}),
    ("Adam", {"amsgrad": True, "weight_decay": 0.1}),
    ("AdamW", {}),
    ("Adam", {"maximize": True, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.1}),
    ("Adagrad", {}),
    ("Adadelta", {}),
    ("Adamax", {}),
    ("ASGD", {}),
    ("NAdam", {}),
    ("NAdam", {"decoupled_weight_decay": True, "weight_decay": 0.1}),
    ("RAdam", {}),
    ("RMSprop", {}),
    ("RMSprop", {"momentum": 0.9, "centered": True}),
    ("Rprop", {}),
]
SIZE = 4096


def _allocations(mod, name: str, kw: dict, foreach: bool) -> int:
    gen = torch.Generator().manual_seed(0)
    ps = [torch.randn(SIZE, generator=gen) for _ in range(3)]
    opt = getattr(mod, name)(ps, foreach=foreach, **kw)
    for _ in range(3):  # state exists, rectification on (RAdam), past the first steps
        for p in ps:
            p.grad = torch.randn(SIZE, generator=gen)
        opt.step()
    for p in ps:
        p.grad = torch.randn(SIZE, generator=gen)
    with _Allocations(SIZE) as count:
        opt.step()
    return count.count


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "forloop"])
@pytest.mark.parametrize("name,kw", MEMORY_CASES, ids=lambda x: str(x))
def test_no_parameter_sized_allocation_beyond_torch(name, kw, foreach) -> None:
    """An allocation count, not a timing: the step allocates at most as many parameter-sized
    tensors as torch's own implementation of the same path."""
    theirs = _allocations(torch.optim, name, kw, foreach)
    ours = _allocations(polyoptim, name, kw, foreach)
    if name == "SGD" and kw.get("nesterov") and foreach:
        # torch's foreach Nesterov step adds the buffers into the gradients in place (so
        # p.grad changes: test_torch_foreach_nesterov_writes_grads); polyoptim never writes a
        # gradient, and takes one temporary per tensor instead
        theirs += 3
    assert ours <= theirs, (ours, theirs)


def test_torch_foreach_nesterov_writes_grads() -> None:
    """Why the allowance above: torch's step changes p.grad there, polyoptim's does not."""
    changed = []
    for mod in (torch.optim, polyoptim):
        p = torch.ones(4)
        opt = mod.SGD([p], lr=0.1, momentum=0.9, nesterov=True, foreach=True)
        p.grad = torch.ones(4)
        opt.step()
        changed.append(not torch.equal(p.grad, torch.ones(4)))
    assert changed == [True, False]


def test_reference_evaluation_allocates_more(monkeypatch) -> None:
    """What the lean programs replace: the rule evaluated on tensors allocates every value."""
    theirs = _allocations(torch.optim, "Adam", {}, False)
    monkeypatch.setattr(eager, "LEAN", False)
    assert _allocations(polyoptim, "Adam", {}, False) > theirs


def test_bench_reports_non_fused_paths_against_torch(tmp_path, monkeypatch) -> None:
    """Plumbing only (benchmarks are never timed tests): ``polyoptim bench`` times polyoptim's
    foreach and for-loop paths with torch's in the same rounds and reports their ratios and
    peak memory."""
    from polyoptim import bench

    monkeypatch.setitem(bench.SIZES, "t", (3, 1000))
    monkeypatch.setattr(bench, "ROOF_ELEMENTS", 100_000)
    monkeypatch.setattr(bench, "fresh_process_first_call", lambda: None)
    paths = ("torch_forloop", "torch_foreach", "poly_forloop", "poly_foreach")
    report = bench.run_bench(["sgd"], ["t"], repeats=3, paths=paths)
    (row,) = report["results"]
    assert set(row["ms"]) == set(paths)
    assert set(row["nonfused"]) == {"foreach", "forloop"}
    assert all(v > 0 for v in row["nonfused"].values())
    bench.write_outputs(report, tmp_path)
    md = (tmp_path / "bench.md").read_text()
    assert "| sgd | (t) | " in md and "MB polyoptim foreach" in md
