"""polyoptim's MindSpore dialect against trajectories recorded from the real MindSpore 2.10.0.

Every optimizer case of tests/golden/mindspore is rebuilt from its meta and replayed with the
recorded gradients (``opt(grads)``, 12 steps): the parameters after every step, the learning rate
read before every step and the final state under MindSpore's names must agree within a relative
error of 1e-5 (float32). Where MindSpore's CPU kernel departs from its documented rule, polyoptim
implements the documented rule: those cases are checked against an independent numpy model of
the documented rule, and the fixture against a model of the quirk (docs/mindspore.md).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from golden_format import grads, lrs, n_steps, params, trajectory
from ms_golden_cases import (
    QUIRKS,
    all_cases,
    build,
    index,
    load,
    relerr,
    replay,
    state_errors,
    step_grads,
)

from polyoptim import mindspore as nn

TOL = 1e-5
CASES = all_cases("optimizer")
pytestmark = pytest.mark.skipif(not CASES, reason="tests/golden/mindspore is missing")


def _sparse(name: str) -> bool:
    return bool(load(name)["meta"]["sparse_grads"])


PLAIN = [c for c in CASES if c not in QUIRKS and not _sparse(c)] if CASES else []


@pytest.mark.parametrize("name", PLAIN)
def test_trajectory_lr_and_state(name, record_property):
    case = load(name)
    opt, ps, names = build(case)
    recorded = lrs(case)
    worst = lr_worst = 0.0
    for k in range(1, n_steps(case) + 1):
        if k in recorded:
            lr = opt.get_lr()
            got = np.array([float(x) for x in lr]) if isinstance(lr, tuple) else float(lr)
            if isinstance(lr, tuple):  # one per parameter, in the optimizer's order
                order = list(opt.parameters.names)
                got = np.array([got[order.index(n)] for n in names])
            lr_worst = max(lr_worst, relerr(np.asarray(got), recorded[k]))
        opt(step_grads(case, opt, names, k))
        for p, ref in zip(ps, trajectory(case, k)):
            worst = max(worst, relerr(p, ref))
    missing, extra, state_worst = state_errors(case, opt)
    record_property("mindspore_relerr", max(worst, state_worst))
    assert n_steps(case) >= 10
    assert worst <= TOL, f"parameters: worst relative error {worst:.3g}"
    assert lr_worst <= 1e-6, f"learning rate: worst relative error {lr_worst:.3g}"
    assert not missing, f"state MindSpore saved that polyoptim lacks: {missing}"
    assert not extra, f"state polyoptim saves that MindSpore does not: {extra}"
    assert state_worst <= TOL, f"state: worst relative error {state_worst:.3g}"


def test_every_case_is_covered():
    """Each recorded case is compared here, as a quirk or as a sparse case (test_sparse.py)."""
    sparse = [c for c in CASES if _sparse(c)]
    assert len(PLAIN) + len([q for q in QUIRKS if q in CASES]) + len(sparse) == len(CASES)
    assert len(PLAIN) >= 120


# -- documented rule vs CPU quirk ----------------------------------------------------------------
def _run_numpy(case, update, order=None):
    """Replay a case through a numpy model ``update(k, j, p, g) -> p`` (float32)."""
    ps = [a.astype(np.float32).copy() for a in params(case)]
    worst = 0.0
    for k in range(1, n_steps(case) + 1):
        for j, g in enumerate(grads(case, k)):
            ps[j] = update(k, j, ps[j], g.astype(np.float32))
        for p, ref in zip(ps, trajectory(case, k)):
            worst = max(worst, relerr(p, ref))
    return ps, worst


def _polyoptim_vs_model(case, model_update, **override):
    opt, ps, names = build(case, **override)
    f32 = np.float32
    model = [a.astype(f32).copy() for a in params(case)]
    worst = 0.0
    for k in range(1, n_steps(case) + 1):
        opt(step_grads(case, opt, names, k))
        for j, g in enumerate(grads(case, k)):
            model[j] = model_update(k, j, model[j], g.astype(f32))
        for p, m in zip(ps, model):
            worst = max(worst, relerr(p, m))
    return worst


def _decay(case, j, p, g):
    wd = case["meta"]["kwargs"].get("weight_decay", 0.0)
    name = case["meta"]["param_names"][j]
    if wd and "beta" not in name and "gamma" not in name:
        return g + np.float32(wd) * p
    return g


@pytest.mark.parametrize("name", [c for c in QUIRKS if c.startswith("momentum") and c in CASES])
def test_momentum_nesterov(name, record_property):
    case = load(name)
    lr, mu = np.float32(0.1), np.float32(0.9)
    moments: dict[int, np.ndarray] = {}

    def documented(k, j, p, g):
        g = _decay(case, j, p, g)
        v = moments.get(j, np.zeros_like(p)) * mu + g
        moments[j] = v
        return p - lr * g - lr * mu * v

    err = _polyoptim_vs_model(case, documented)
    record_property("mindspore_relerr", err)
    assert err <= TOL
    # the fixture is plain momentum: MindSpore's CPU kernel ignores use_nesterov
    opt, ps, names = build(case, use_nesterov=False)
    assert replay(case, opt, ps, names) <= TOL


def _ftrl_model(case, quirk: bool):
    kw = {"l1": 0.0, "l2": 0.0, "lr_power": -0.5, "initial_accum": 0.1}
    kw.update(case["meta"]["kwargs"])
    lr, l1, l2 = (np.float32(kw[k]) for k in ("learning_rate", "l1", "l2"))
    power = np.float32(-kw["lr_power"])
    acc: dict[int, np.ndarray] = {}
    lin: dict[int, np.ndarray] = {}

    def update(k, j, p, g):
        a = acc.get(j, np.full_like(p, kw["initial_accum"]))
        z = lin.get(j, np.zeros_like(p))
        a_new = a + g * g
        z = z + g - (a_new**power - a**power) / lr * p
        quad = a_new**power / lr + 2 * l2
        sign = np.ones_like(z) if quirk else np.sign(z)
        acc[j], lin[j] = a_new, z
        return np.where(np.abs(z) > l1, (sign * l1 - z) / quad, 0.0).astype(np.float32)

    return update


@pytest.mark.parametrize("name", [c for c in QUIRKS if c.startswith("ftrl") and c in CASES])
def test_ftrl_l1_sign(name, record_property):
    case = load(name)
    err = _polyoptim_vs_model(case, _ftrl_model(case, quirk=False))
    record_property("mindspore_relerr", err)
    assert err <= TOL
    _, quirk_err = _run_numpy(case, _ftrl_model(case, quirk=True))
    assert quirk_err <= TOL  # the fixture: +l1 whatever the sign


def _rmsprop_model(case, eps_outside=None):
    kw = {"decay": 0.9, "momentum": 0.0, "epsilon": 1e-10}
    kw.update(case["meta"]["kwargs"])
    lr, rho, mu, eps = (
        np.float32(kw[k]) for k in ("learning_rate", "decay", "momentum", "epsilon")
    )
    ms: dict[int, np.ndarray] = {}
    mom: dict[int, np.ndarray] = {}

    def update(k, j, p, g):
        s = ms.get(j, np.ones_like(p)) * rho + (1 - rho) * g * g
        denom = np.sqrt(s + eps)
        if eps_outside is not None:
            mask = eps_outside(p.size)
            denom = np.where(mask, np.sqrt(s) + eps, denom)
        m = mom.get(j, np.zeros_like(p)) * mu + lr * g / denom
        ms[j], mom[j] = s, m
        return p - m

    return update


@pytest.mark.parametrize("name", [c for c in QUIRKS if c.startswith("rmsprop") and c in CASES])
def test_rmsprop_eps_inside_root(name, record_property):
    case = load(name)
    err = _polyoptim_vs_model(case, _rmsprop_model(case))
    record_property("mindspore_relerr", err)
    assert err <= TOL

    # the fixture's first 5 steps: floor(n/8)*8 leading elements use sqrt(ms) + eps
    def blocks_of_8(n):
        return np.arange(n) < (n // 8) * 8

    model = _rmsprop_model(case, eps_outside=blocks_of_8)
    ps = [a.copy() for a in params(case)]
    for k in range(1, 6):
        for j, g in enumerate(grads(case, k)):
            ps[j] = model(k, j, ps[j], g)
        for p, ref in zip(ps, trajectory(case, k)):
            assert relerr(p, ref) <= TOL


@pytest.mark.skipif("adagrad_no_update_slots" not in CASES, reason="fixture missing")
def test_adagrad_update_slots_false(record_property):
    case = load("adagrad_no_update_slots")
    lr = np.float32(0.1)

    def frozen(k, j, p, g):
        return p - lr * g / np.sqrt(np.float32(0.1))

    err = _polyoptim_vs_model(case, frozen)
    record_property("mindspore_relerr", err)
    assert err <= TOL
    # the fixture: the CPU kernel accumulates anyway
    opt, ps, names = build(case, update_slots=True)
    assert replay(case, opt, ps, names) <= TOL


# -- refusals: where MindSpore refuses by documented validation, so does polyoptim -----------------
EXPECTED_REFUSALS = [r for r in index()["refused"] if r.get("expected_error")] if CASES else []


_SHAPES = {"fc.weight": (3, 2), "bn.gamma": (2,), "bn.beta": (2,), "fc.bias": (2,)}


@pytest.mark.parametrize("refusal", EXPECTED_REFUSALS, ids=lambda r: r["name"])
def test_documented_refusals(refusal):
    """Same exception type and message as MindSpore for its documented argument checks."""
    names = [n for n in _SHAPES if f"'{n}'" in repr(refusal["params"])]
    case = {
        "meta": {
            "param_names": names,
            "params": refusal["params"],
            "kwargs": refusal["kwargs"],
            "optimizer": refusal["optimizer"],
            "wrap": refusal.get("wrap"),
        },
        "arrays": {f"p{j}_init": np.zeros(_SHAPES[n], np.float32) for j, n in enumerate(names)},
    }
    with pytest.raises(Exception) as info:
        build(case)
    assert f"{type(info.value).__name__}: {info.value}" == refusal["error"]


def test_signatures_match_mindspore():
    """Every class's argument names and defaults are MindSpore's (index.json ``signatures``)."""
    import inspect

    sigs = index()["signatures"]
    checked = 0
    for name, expected in sigs.items():
        obj = getattr(nn, name, None)
        if obj is None or expected is None:
            continue
        fn = obj.__init__ if isinstance(obj, type) else obj
        got = {}
        for pname, p in inspect.signature(fn).parameters.items():
            if pname == "self":
                continue
            if p.kind is p.VAR_KEYWORD:
                got["**" + pname] = None
            else:
                got[pname] = "<required>" if p.default is p.empty else p.default
        exp = {k: (tuple(v) if isinstance(v, list) else v) for k, v in expected.items()}
        got = {k: (tuple(v) if isinstance(v, list) else v) for k, v in got.items()}
        if name == "LARS":
            exp.pop("lars_filter", None)
            got.pop("lars_filter", None)
        assert list(got) == list(exp), f"{name}: {list(got)} != {list(exp)}"
        for k, v in exp.items():
            if isinstance(v, float | int) and not isinstance(v, bool):
                assert got[k] == pytest.approx(v), f"{name}.{k}"
            else:
                assert got[k] == v, f"{name}.{k}"
        checked += 1
    assert checked >= 25


def test_lr_inputs_equal():
    """A Python list, a 1-D Tensor and the equivalent schedule give the same numbers."""
    a, b = load("momentum_lrlist"), load("momentum_lrtensor")
    for k in range(1, n_steps(a) + 1):
        for x, y in zip(trajectory(a, k), trajectory(b, k)):
            np.testing.assert_array_equal(x, y)
    opt, ps, names = build(a, learning_rate=torch.tensor(a["meta"]["kwargs"]["learning_rate"]))
    assert replay(a, opt, ps, names) <= TOL
