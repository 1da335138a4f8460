"""LBFGS, Adafactor, Muon and SparseAdam against torch.optim itself.

Driven by torch's own optimizer database (``optim_db``): every configuration it lists, both
float dtypes, identical gradients (or the same closure for LBFGS) over many steps; params,
every state value and the param groups must agree, torch's error inputs must raise the same
errors, and state dicts must load both ways mid-training.
"""

from __future__ import annotations

import copy
import inspect
import math
import pickle
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch.testing._internal.common_optimizers import (
    OptimizerErrorEnum,
    _get_optim_inputs_including_global_cliquey_kwargs,
    optim_db,
)

from polyoptim.optimizers.adafactor import Adafactor
from polyoptim.optimizers.lbfgs import LBFGS
from polyoptim.optimizers.muon import Muon
from polyoptim.optimizers.sparse_adam import SparseAdam

OURS: dict[str, type[torch.optim.Optimizer]] = {
    "Adafactor": Adafactor,
    "LBFGS": LBFGS,
    "Muon": Muon,
    "SparseAdam": SparseAdam,
}
INFO = {i.optim_cls.__name__: i for i in optim_db if i.optim_cls.__name__ in OURS}
DTYPES = [torch.float32, torch.float64]
STEPS = 12
SWAP_AT = 6  # state dicts are exchanged after this many steps


def configs(name: str) -> list[tuple[str, dict[str, Any]]]:
    """torch's configurations for ``name`` (plus the foreach variants torch skips on CPU)."""
    info = INFO[name]
    out = []
    for oi in _get_optim_inputs_including_global_cliquey_kwargs("cpu", torch.float32, info):
        out.append((oi.desc, oi.kwargs))
        if "foreach" in info.supported_impls:
            out.append((oi.desc + " & foreach", {**oi.kwargs, "foreach": True}))
    return out


CASES = [
    pytest.param(name, dtype, kwargs, id=f"{name}-{str(dtype)[6:]}-{desc}")
    for name in OURS
    for dtype in DTYPES
    for desc, kwargs in configs(name)
]


# -- comparison ---------------------------------------------------------------------------------
def assert_same_value(ours: Any, theirs: Any, where: str) -> None:
    assert type(ours) is type(theirs), f"{where}: {type(ours)} vs {type(theirs)}"
    if isinstance(theirs, torch.Tensor):
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, where
        torch.testing.assert_close(ours, theirs, equal_nan=True, msg=lambda m: f"{where}: {m}")
    elif isinstance(theirs, dict):
        assert list(ours) == list(theirs), f"{where}: keys {list(ours)} vs {list(theirs)}"
        for k in theirs:
            assert_same_value(ours[k], theirs[k], f"{where}[{k!r}]")
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same_value(a, b, f"{where}[{i}]")
    elif isinstance(theirs, float):
        assert math.isclose(ours, theirs, rel_tol=1e-6, abs_tol=1e-12), f"{where}: {ours} {theirs}"
    else:
        assert ours == theirs, f"{where}: {ours!r} vs {theirs!r}"


def assert_same(ours: torch.optim.Optimizer, theirs: torch.optim.Optimizer) -> None:
    """Params, state (keys, order, values) and param groups agree."""
    for g_o, g_t in zip(ours.param_groups, theirs.param_groups):
        for p_o, p_t in zip(g_o["params"], g_t["params"]):
            torch.testing.assert_close(p_o, p_t, equal_nan=True)
    assert_same_value(ours.state_dict(), theirs.state_dict(), "state_dict")


# -- problems -------------------------------------------------------------------------------------
def make_params(name: str, dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shapes = {
        "Adafactor": [(4, 3), (5,), (2, 3, 4), (), (1, 6)],
        "Muon": [(4, 3), (3, 5), (6, 6), (1, 4)],
        "SparseAdam": [(10, 3), (7,), (6, 2, 2)],
        "LBFGS": [(4, 3), (5,)],
    }[name]
    return [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]


def group_spec(name: str, params: list[torch.Tensor]) -> list[Any]:
    """Two groups (the second with its own lr), except for single-group LBFGS."""
    if name == "LBFGS":
        return params
    return [{"params": params[:-1]}, {"params": params[-1:], "lr": 0.003}]


def sparse_grad(p: torch.Tensor, gen: torch.Generator, step: int) -> torch.Tensor:
    """A COO gradient over p's first dim: repeated rows (uncoalesced), sometimes empty."""
    nnz = 0 if step == 4 else 5
    rows = torch.randint(0, p.shape[0], (1, nnz), generator=gen)
    values = torch.randn((nnz, *p.shape[1:]), generator=gen, dtype=p.dtype)
    return torch.sparse_coo_tensor(rows, values, p.shape, check_invariants=True)


def set_grads(name: str, pairs: list[tuple[torch.Tensor, torch.Tensor]], step: int) -> None:
    gen = torch.Generator().manual_seed(1000 + step)
    for i, (a, b) in enumerate(pairs):
        if i == 1 and step % 4 == 3:  # a parameter without a gradient on some steps
            a.grad = b.grad = None
            continue
        if name == "SparseAdam":
            g = sparse_grad(a, gen, step)
        else:
            g = torch.randn(a.shape, generator=gen, dtype=a.dtype)
        a.grad, b.grad = g.clone(), g.clone()


def lbfgs_closure(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> Callable[[], Any]:
    """L2-regularized logistic regression: smooth, strongly convex, not quadratic."""
    gen = torch.Generator().manual_seed(7)
    dtype = params[0].dtype
    x = torch.randn(16, 12, generator=gen, dtype=dtype)
    z = torch.randn(16, 5, generator=gen, dtype=dtype)
    y = (torch.randn(16, generator=gen) > 0).to(dtype)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        w, v = params
        logits = x @ w.reshape(-1)[:12] + z @ v + (w**3).sum() * 0.01
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        loss = loss + 0.05 * (w.pow(2).sum() + v.pow(2).sum())
        loss.backward()
        return loss

    return closure


class Pair:
    """An optimizer of ours and torch's, over separate but identical parameters."""

    def __init__(self, name: str, dtype: torch.dtype, kwargs: dict[str, Any]) -> None:
        self.name, self.kwargs = name, kwargs
        init = make_params(name, dtype)
        self.ours_p = [t.clone().requires_grad_() for t in init]
        self.theirs_p = [t.clone().requires_grad_() for t in init]
        self.ours = self.build(OURS[name], self.ours_p)
        self.theirs = self.build(INFO[name].optim_cls, self.theirs_p)

    def build(self, cls: type, params: list[torch.Tensor]) -> torch.optim.Optimizer:
        return cls(group_spec(self.name, params), **copy.deepcopy(self.kwargs))

    def step(self, k: int) -> None:
        if self.name == "LBFGS":
            l_o = self.ours.step(lbfgs_closure(self.ours, self.ours_p))
            l_t = self.theirs.step(lbfgs_closure(self.theirs, self.theirs_p))
            torch.testing.assert_close(l_o, l_t)
            return
        set_grads(self.name, list(zip(self.ours_p, self.theirs_p)), k)
        self.ours.step()
        self.theirs.step()

    def swap_state_dicts(self) -> None:
        """Fresh optimizers of each kind, each loaded with the other kind's state dict."""
        sd_o = copy.deepcopy(self.ours.state_dict())
        sd_t = copy.deepcopy(self.theirs.state_dict())
        self.ours = self.build(OURS[self.name], self.ours_p)
        self.ours.load_state_dict(sd_t)
        self.theirs = self.build(INFO[self.name].optim_cls, self.theirs_p)
        self.theirs.load_state_dict(sd_o)


@pytest.mark.parametrize("name, dtype, kwargs", CASES)
def test_matches_torch(name: str, dtype: torch.dtype, kwargs: dict[str, Any]) -> None:
    pair = Pair(name, dtype, kwargs)
    for k in range(STEPS):
        pair.step(k)
        assert_same(pair.ours, pair.theirs)
        if k + 1 == SWAP_AT:
            pair.swap_state_dicts()
            assert_same(pair.ours, pair.theirs)
    assert pair.ours.state, "the run must have created state"
    if name == "LBFGS":
        assert pair.ours.state[pair.ours_p[0]]["n_iter"] > STEPS  # it did iterate


# -- errors ---------------------------------------------------------------------------------------
ERROR_CASES = [
    pytest.param(name, i, id=f"{name}-{e.optimizer_error_input.desc}")
    for name in OURS
    for i, e in enumerate(INFO[name].optim_error_inputs_func(device="cpu", dtype=torch.float32))
]


def _raise_like(cls: type, error_input: Any) -> BaseException | None:
    oi = error_input.optimizer_error_input
    try:
        if error_input.error_on == OptimizerErrorEnum.STEP_ERROR:
            opt = cls(oi.params, **oi.kwargs)
            opt.step((lambda: 0.0) if cls.__name__ == "LBFGS" else None)
        else:
            cls(oi.params, **oi.kwargs)
    except Exception as e:  # the exception is the result
        return e
    return None


@pytest.mark.parametrize("name, index", ERROR_CASES)
def test_error_inputs(name: str, index: int) -> None:
    def fresh() -> Any:  # the inputs hold tensors a step may touch: one copy per optimizer
        return INFO[name].optim_error_inputs_func(device="cpu", dtype=torch.float32)[index]

    ei = fresh()
    if issubclass(ei.error_type, Warning):
        for cls in (OURS[name], INFO[name].optim_cls):
            oi = fresh().optimizer_error_input
            with pytest.warns(ei.error_type, match=ei.error_regex):
                cls(oi.params, **oi.kwargs)
        return
    ours, theirs = _raise_like(OURS[name], fresh()), _raise_like(INFO[name].optim_cls, fresh())
    assert isinstance(theirs, ei.error_type)
    assert type(ours) is type(theirs), repr(ours)
    assert str(ours) == str(theirs)
    with pytest.raises(ei.error_type, match=ei.error_regex):
        raise ours


def _p(*shape: int, **kw: Any) -> torch.Tensor:
    p = torch.randn(*shape, **kw)
    p.grad = torch.randn_like(p)
    return p


def _sparse_p() -> torch.Tensor:
    p = torch.randn(4, 2)
    p.grad = torch.randn(4, 2).to_sparse()
    return p


EXTRA_ERRORS: list[tuple[str, Callable[[], list[Any]], dict[str, Any], bool]] = [
    # (optimizer, params factory, kwargs, raised at step)
    ("Adafactor", lambda: [_p(2, 3)], dict(lr=-1.0), False),
    ("Adafactor", lambda: [_p(2, 3)], dict(eps=(None, -1.0)), False),
    ("Adafactor", lambda: [_p(2, 3)], dict(weight_decay=-0.5), False),
    ("Adafactor", lambda: [_p(2, 3)], dict(lr=torch.tensor([0.1, 0.2])), False),
    ("Adafactor", lambda: [_sparse_p()], {}, True),
    ("Muon", lambda: [_p(2, 3)], dict(lr=-1.0), False),
    ("Muon", lambda: [_p(2, 3)], dict(momentum=-0.1), False),
    ("Muon", lambda: [_p(2, 3)], dict(weight_decay=-0.1), False),
    ("Muon", lambda: [_p(3)], {}, False),
    ("Muon", lambda: [_p(2, 3)], dict(ns_steps=100), True),
    ("Muon", lambda: [_p(2, 3)], dict(ns_coefficients=(1.0, 2.0)), True),
    ("Muon", lambda: [_sparse_p()], {}, True),
    ("LBFGS", lambda: [_p(3)], dict(lr=-1.0), False),
    ("LBFGS", lambda: [{"params": [_p(3)]}, {"params": [_p(2)]}], {}, False),
    ("LBFGS", lambda: [_p(3)], dict(line_search_fn="armijo"), True),
    ("SparseAdam", lambda: [_p(3)], dict(lr=0.0), False),
    ("SparseAdam", lambda: [_p(3)], dict(eps=0.0), False),
    ("SparseAdam", lambda: [_p(3)], dict(betas=(0.9, 1.0)), False),
    ("SparseAdam", lambda: [_p(3)], {}, True),  # dense gradient
]


@pytest.mark.parametrize(
    "name, params, kwargs, at_step",
    [pytest.param(*c, id=f"{c[0]}-{i}") for i, c in enumerate(EXTRA_ERRORS)],
)
def test_more_errors(
    name: str, params: Callable[[], list[Any]], kwargs: dict[str, Any], at_step: bool
) -> None:
    def attempt(cls: type) -> BaseException:
        with pytest.raises(Exception) as info:
            opt = cls(params(), **kwargs)
            assert at_step, "construction should have failed"
            opt.step((lambda: torch.tensor(1.0)) if name == "LBFGS" else None)
        return info.value

    ours, theirs = attempt(OURS[name]), attempt(INFO[name].optim_cls)
    assert type(ours) is type(theirs)
    assert str(ours) == str(theirs)


def test_step_time_shape_errors() -> None:
    for cls in (Muon, torch.optim.Muon):  # a non-2-D parameter slipped in later
        opt = cls([_p(2, 3)])
        opt.add_param_group({"params": [_p(2, 2, 2)]})
        with pytest.raises(ValueError, match="Param gradient must be a 2D matrix"):
            opt.step()
    for cls in (LBFGS, torch.optim.LBFGS):
        opt = cls([_p(3)])
        with pytest.raises(TypeError, match="closure"):
            opt.step()
        opt.add_param_group({"params": [_p(2)]})
        with pytest.raises(AssertionError, match="Expected exactly one param_group, but got 2"):
            opt.step(lambda: torch.tensor(0.0))


# -- surface --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(OURS))
def test_signature_and_defaults(name: str) -> None:
    ours, theirs = OURS[name], INFO[name].optim_cls
    assert ours.__name__ == theirs.__name__
    for meth in ("__init__", "step"):
        s_o = inspect.signature(getattr(ours, meth)).parameters
        s_t = inspect.signature(getattr(theirs, meth)).parameters
        assert [(p.name, p.kind, p.default) for p in s_o.values()] == [
            (p.name, p.kind, p.default) for p in s_t.values()
        ]
    params = make_params(name, torch.float32)[:1]
    assert list(ours(params).defaults.items()) == list(theirs(params).defaults.items())


@pytest.mark.parametrize("name", ["Adafactor", "Muon", "SparseAdam"])
def test_named_parameters(name: str) -> None:
    pair = Pair(name, torch.float32, {})
    for opt, ps in ((pair.ours, pair.ours_p), (pair.theirs, pair.theirs_p)):
        opt.param_groups.clear()
        opt.add_param_group({"params": [(f"w{i}", p) for i, p in enumerate(ps)]})
    for k in range(3):
        pair.step(k)
    names = [f"w{i}" for i in range(len(pair.ours_p))]
    assert pair.ours.state_dict()["param_groups"][0]["param_names"] == names
    assert_same(pair.ours, pair.theirs)


def rosenbrock_run(cls: type, dtype: torch.dtype, kwargs: dict[str, Any]) -> Any:
    x = torch.tensor([-1.5, 2.0, 0.5, -0.3], dtype=dtype, requires_grad=True)
    opt = cls([x], **kwargs)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (100 * (x[1::2] - x[::2] ** 2) ** 2 + (1 - x[::2]) ** 2).sum()
        loss.backward()
        return loss

    losses = [opt.step(closure) for _ in range(10)]
    return opt, losses


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(line_search_fn="strong_wolfe"),
        dict(line_search_fn="strong_wolfe", history_size=2, max_iter=7),
        dict(line_search_fn="strong_wolfe", max_iter=6, max_eval=8, lr=3.0),
        dict(line_search_fn="strong_wolfe", max_eval=1),
        dict(lr=1e-3, history_size=3, max_iter=5),
    ],
    ids=str,
)
def test_lbfgs_rosenbrock(dtype: torch.dtype, kwargs: dict[str, Any]) -> None:
    """A hard, curved objective: line-search zooms, history shifts, evaluation limits."""
    (ours, l_o), (theirs, l_t) = (
        rosenbrock_run(c, dtype, kwargs) for c in (LBFGS, torch.optim.LBFGS)
    )
    torch.testing.assert_close(l_o, l_t)
    assert_same(ours, theirs)


def test_lbfgs_converged_and_sparse() -> None:
    """Already optimal: one evaluation and no history; sparse gradients are densified."""
    for kwargs in (dict(tolerance_grad=1e3), dict(line_search_fn="strong_wolfe")):
        runs = []
        for cls in (LBFGS, torch.optim.LBFGS):
            torch.manual_seed(0)
            emb = torch.nn.Embedding(6, 2, sparse=True)
            opt = cls(emb.parameters(), **kwargs)

            def closure(emb: Any = emb, opt: Any = opt) -> torch.Tensor:
                opt.zero_grad()
                loss = (emb(torch.tensor([0, 2, 2])) - 1).pow(2).sum()
                loss.backward()
                return loss

            for _ in range(3):
                opt.step(closure)
            runs.append(opt)
        assert_same(*runs)


@pytest.mark.parametrize("name", ["Adafactor", "SparseAdam", "Muon"])
def test_pickle_roundtrip_matches_torch(name: str) -> None:
    """Unpickling (torch's ``__setstate__``) gives equal optimizers; Adafactor also converts
    a numeric ``step`` of an old checkpoint to a tensor."""
    pair = Pair(name, torch.float32, {})
    for k in range(2):
        pair.step(k)
    for opt in (pair.ours, pair.theirs):
        for st_ in opt.state.values():
            if name == "Adafactor":
                st_["step"] = float(st_["step"])
    ours, theirs = (pickle.loads(pickle.dumps(o)) for o in (pair.ours, pair.theirs))
    assert_same(ours, theirs)
    if name == "Adafactor":
        assert all(torch.is_tensor(s["step"]) for s in ours.state.values())


def test_lbfgs_complex_params() -> None:
    target = torch.tensor([1 + 2j, -0.5j, 3.0], dtype=torch.complex128)
    results = []
    for cls in (LBFGS, torch.optim.LBFGS):
        z = torch.zeros(3, dtype=torch.complex128, requires_grad=True)
        w = torch.ones(2, dtype=torch.float64, requires_grad=True)  # w never gets a gradient
        opt = cls([z, w], line_search_fn="strong_wolfe", history_size=4)

        def closure(opt: torch.optim.Optimizer = opt, z: torch.Tensor = z) -> torch.Tensor:
            opt.zero_grad()
            loss = (z - target).abs().pow(2).sum() + (z.real**4).sum() * 0.1
            loss.backward()
            return loss

        for _ in range(3):
            opt.step(closure)
        results.append(opt)
    assert_same(*results)


def test_lbfgs_copy_and_pickle() -> None:
    w = torch.nn.Parameter(torch.tensor([1.5, -0.5]))
    opt = LBFGS([w], max_iter=3)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (w - 3).pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    for clone in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        (p,) = clone.param_groups[0]["params"]
        assert clone.state[p]["n_iter"] == opt.state[w]["n_iter"]
        p.grad = torch.ones_like(p)
        clone.step(lambda: torch.tensor(0.0))  # the copy still knows its parameters


def test_sparse_adam_embedding() -> None:
    """Lazy updates: rows not looked up keep their values and moments."""
    torch.manual_seed(0)
    emb = torch.nn.Embedding(8, 3, sparse=True)
    ref = copy.deepcopy(emb)
    ours, theirs = (
        SparseAdam(emb.parameters(), lr=0.05),
        torch.optim.SparseAdam(ref.parameters(), lr=0.05),
    )
    untouched = emb.weight[7].detach().clone()
    for _ in range(5):
        idx = torch.randint(0, 7, (4,))
        for m, o in ((emb, ours), (ref, theirs)):
            o.zero_grad()
            m(idx).pow(2).sum().backward()
            o.step()
        assert_same(ours, theirs)
    assert torch.equal(emb.weight[7], untouched)
    assert torch.equal(ours.state[emb.weight]["exp_avg"][7], torch.zeros(3))


DIMS = st.integers(1, 5)
SHAPES = st.lists(st.lists(DIMS, min_size=0, max_size=3).map(tuple), min_size=1, max_size=3)
FLOAT_DTYPES = st.sampled_from(DTYPES)


def test_adafactor_step_dtype_follows_default_dtype() -> None:
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        pair = Pair("Adafactor", torch.float32, {})
        pair.step(0)
        assert_same(pair.ours, pair.theirs)
        assert pair.ours.state[pair.ours_p[0]]["step"].dtype == torch.float64
    finally:
        torch.set_default_dtype(old)


def test_muon_bfloat16() -> None:
    """bfloat16 parameters: equal to torch with Nesterov. Without it torch normalizes the
    momentum buffer in place (``bfloat16()`` of a bfloat16 tensor is the tensor itself); we
    keep the documented buffer, the exponential average of the gradients."""
    for nesterov in (True, False):
        runs = []
        for cls in (Muon, torch.optim.Muon):
            torch.manual_seed(0)
            p = torch.randn(4, 3, dtype=torch.bfloat16, requires_grad=True)
            opt = cls([p], nesterov=nesterov, momentum=0.9)
            p.grad = torch.randn_like(p) * 5
            opt.step()
            runs.append(opt)
        if nesterov:
            assert_same(*runs)
        else:
            (p,) = runs[0].param_groups[0]["params"]
            assert torch.equal(runs[0].state[p]["momentum_buffer"], p.grad * (1 - 0.9))


# -- the line search on its own ----------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 4),
    t0=st.floats(1e-3, 50.0),
    c2=st.floats(0.1, 0.95),
    tolerance_change=st.sampled_from([1e-9, 1e-4, 1e-2]),
    max_ls=st.integers(0, 25),
    wiggle=st.floats(0.0, 3.0),
    dtype=FLOAT_DTYPES,
    seed=st.integers(0, 2**16),
)
@example(  # a zoom trial moved inwards from the bracket's upper end
    n=1,
    t0=8.072005191869476,
    c2=0.5211365371687462,
    tolerance_change=1e-09,
    max_ls=20,
    wiggle=2.5889252332864245,
    dtype=torch.float64,
    seed=18044,
)
def test_strong_wolfe_property(n, t0, c2, tolerance_change, max_ls, wiggle, dtype, seed):
    from torch.optim.lbfgs import _strong_wolfe  # the reference, in tests only

    from polyoptim.rules.line_search import strong_wolfe

    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, generator=gen, dtype=dtype)
    k = torch.rand(n, generator=gen, dtype=dtype) * 4

    def f_and_g(x: torch.Tensor) -> tuple[float, torch.Tensor]:
        x = x.detach().requires_grad_()
        with torch.enable_grad():
            loss = (0.5 * x**2 + wiggle * torch.cos(k * x) + 0.05 * x**4).sum()
            loss.backward()
        return float(loss.detach()), x.grad

    f0, g0 = f_and_g(x0)
    d = -g0 + 0.3 * torch.randn(n, generator=gen, dtype=dtype)
    gtd = g0.dot(d)
    if gtd >= 0:
        d, gtd = -d, -gtd
    ours = strong_wolfe(
        lambda t: f_and_g(x0 + t * d),
        t0,
        d,
        f0,
        g0,
        gtd,
        c2=c2,
        tolerance_change=tolerance_change,
        max_ls=max_ls,
    )
    theirs = _strong_wolfe(
        lambda x, t, d: f_and_g(x + t * d),
        x0,
        t0,
        d,
        f0,
        g0,
        gtd,
        c2=c2,
        tolerance_change=tolerance_change,
        max_ls=max_ls,
    )
    assert_same_value(list(ours), list(theirs), "strong_wolfe")


# -- properties -----------------------------------------------------------------------------------
def _run_pair(
    ours: Any, theirs: Any, shapes: list[tuple[int, ...]], dtype: Any, steps: int, seed: int
):
    gen = torch.Generator().manual_seed(seed)
    init = [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]
    a = [t.clone().requires_grad_() for t in init]
    b = [t.clone().requires_grad_() for t in init]
    o_a, o_b = ours(a), theirs(b)
    for _ in range(steps):
        for x, y in zip(a, b):
            g = torch.randn(x.shape, generator=gen, dtype=dtype) * 3
            x.grad, y.grad = g.clone(), g.clone()
        o_a.step()
        o_b.step()
    assert_same(o_a, o_b)


@settings(max_examples=20, deadline=None)
@given(
    shapes=SHAPES,
    dtype=FLOAT_DTYPES,
    lr=st.floats(1e-4, 1.0),
    tensor_lr=st.booleans(),
    beta2_decay=st.floats(-1.5, 0.0),
    eps1=st.one_of(st.none(), st.floats(0.0, 1e-2)),
    eps2=st.floats(0.0, 1e-1),
    d=st.floats(1.0, 3.0),
    weight_decay=st.floats(0.0, 0.5),
    maximize=st.booleans(),
    foreach=st.sampled_from([None, False, True]),
    seed=st.integers(0, 2**16),
)
def test_adafactor_property(
    shapes, dtype, lr, tensor_lr, beta2_decay, eps1, eps2, d, weight_decay, maximize, foreach, seed
):
    kw = dict(
        lr=torch.tensor(lr) if tensor_lr else lr,
        beta2_decay=beta2_decay,
        eps=(eps1, eps2),
        d=d,
        weight_decay=weight_decay,
        maximize=maximize,
        foreach=foreach,
    )
    _run_pair(
        lambda p: Adafactor(p, **kw),
        lambda p: torch.optim.Adafactor(p, **kw),
        shapes,
        dtype,
        4,
        seed,
    )


@settings(max_examples=20, deadline=None)
@given(
    shapes=st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6)), min_size=1, max_size=3),
    dtype=FLOAT_DTYPES,
    lr=st.floats(1e-4, 0.5),
    weight_decay=st.floats(0.0, 0.5),
    momentum=st.floats(0.0, 0.99),
    nesterov=st.booleans(),
    ns_steps=st.integers(0, 7),
    coefficients=st.one_of(
        st.just((3.4445, -4.7750, 2.0315)),
        # near the defaults: far from them the iteration diverges (to NaN in both)
        st.tuples(st.floats(3.0, 3.8), st.floats(-5.2, -4.3), st.floats(1.8, 2.2)),
    ),
    eps=st.floats(1e-9, 1e-3),
    adjust_lr_fn=st.sampled_from([None, "original", "match_rms_adamw"]),
    seed=st.integers(0, 2**16),
)
def test_muon_property(
    shapes,
    dtype,
    lr,
    weight_decay,
    momentum,
    nesterov,
    ns_steps,
    coefficients,
    eps,
    adjust_lr_fn,
    seed,
):
    kw = dict(
        lr=lr,
        weight_decay=weight_decay,
        momentum=momentum,
        nesterov=nesterov,
        ns_coefficients=coefficients,
        eps=eps,
        ns_steps=ns_steps,
        adjust_lr_fn=adjust_lr_fn,
    )
    _run_pair(lambda p: Muon(p, **kw), lambda p: torch.optim.Muon(p, **kw), shapes, dtype, 4, seed)
