"""``torch.compile`` over a function that calls ``opt.step()``: one opaque operation
(``polyoptim::step``), no graph break (``fullgraph=True`` compiles), eager's numbers, no
recompilation when the learning rate changes, and no fake tensor ever reaching a kernel."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch_cases import ELEMENTWISE_NAMES, torch_has_fused

import polyoptim
from polyoptim import mindspore as M
from polyoptim import paddle as P

EXTRA: dict[str, dict[str, Any]] = {
    "SGD": {"momentum": 0.9, "nesterov": True},
    "RMSprop": {"momentum": 0.5, "centered": True},
    "NAdam": {"decoupled_weight_decay": True, "weight_decay": 0.1},
    "Adam": {"amsgrad": True},
}
PATHS = {"default": {}, "foreach": {"foreach": True}, "forloop": {"foreach": False}}
#: a representative handful in the default run; every (algorithm, path) in `make parity`
QUICK = {("Adam", "default"), ("AdamW", "foreach"), ("NAdam", "default"), ("SGD", "forloop")}
QUICK |= {("RAdam", "foreach"), ("ASGD", "default"), ("Rprop", "default")}


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _twins(make: Callable[[list], Any]) -> tuple:
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(12, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    b = copy.deepcopy(a)
    return a, b, make(list(a.parameters())), make(list(b.parameters()))


def _backward(*models: torch.nn.Module, seed: int) -> None:
    x = torch.randn(5, 12, generator=torch.Generator().manual_seed(seed))
    for m in models:
        for p in m.parameters():
            p.grad = None
        m(x).pow(2).sum().backward()


def _assert_same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def _run(make: Callable[[list], Any], steps: int = 4, lr_decay: bool = True) -> None:
    """Compiled (``fullgraph=True``: a graph break fails) against eager, the learning rate
    halved between steps; after the first two steps nothing may recompile."""
    a, b, compiled_opt, eager_opt = _twins(make)
    step = torch.compile(compiled_opt.step, fullgraph=True)
    for i in range(steps):
        _backward(a, b, seed=i)
        if i == 2:  # state exists from here on: the graph must be final
            torch._dynamo.config.error_on_recompile = True
        try:
            step()
        finally:
            torch._dynamo.config.error_on_recompile = False
        eager_opt.step()
        if lr_decay:
            for opt in (compiled_opt, eager_opt):
                for g in opt.param_groups:
                    if isinstance(g.get("lr"), float):
                        g["lr"] *= 0.5
        _assert_same(a, b)


def _cases() -> list:
    out = []
    for name in ELEMENTWISE_NAMES:
        paths = dict(PATHS)
        if torch_has_fused(name):
            paths["fused"] = {"fused": True}
        for path, flags in paths.items():
            marks = () if (name, path) in QUICK else (pytest.mark.slow,)
            out.append(pytest.param(name, flags, id=f"{name}-{path}", marks=marks))
    return out


@pytest.mark.parametrize("name, flags", _cases())
def test_compiled_step_is_eager_step(name, flags):
    cls = getattr(polyoptim, name)
    _run(lambda ps: cls(ps, lr=0.01, **EXTRA.get(name, {}), **flags))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda ps: P.Adam(parameters=ps, learning_rate=0.01), id="paddle.Adam"),
        pytest.param(
            lambda ps: P.Lamb(parameters=ps, learning_rate=0.01), id="paddle.Lamb", marks=[]
        ),
        pytest.param(
            lambda ps: P.Momentum(
                parameters=ps, learning_rate=0.01, grad_clip=P.ClipGradByGlobalNorm(0.1)
            ),
            id="paddle.Momentum+clip",
        ),
        pytest.param(lambda ps: M.Adam(ps, learning_rate=0.01), id="mindspore.Adam"),
        pytest.param(
            lambda ps: M.Momentum(ps, 0.01, 0.9, weight_decay=0.01), id="mindspore.Momentum"
        ),
    ],
)
def test_dialects_compile_without_graph_breaks(make):
    _run(make, lr_decay=False)


def test_mindspore_call_with_gradients_compiles():
    """MindSpore's ``opt(gradients)``: the gradients enter the operation as inputs."""
    a, b, compiled_opt, eager_opt = _twins(lambda ps: M.Adam(ps, learning_rate=0.01))
    call = torch.compile(lambda gs: compiled_opt(gs), fullgraph=True)
    for i in range(3):
        _backward(a, b, seed=i)
        assert call(tuple(p.grad for p in a.parameters())) is True
        eager_opt(tuple(p.grad for p in b.parameters()))
        _assert_same(a, b)


def test_compile_after_eager_steps():
    """Eager steps pack the host state of many tensors into shared storage; a graph compiled
    afterwards still steps every tensor with eager's numbers."""
    a, b, compiled_opt, eager_opt = _twins(lambda ps: polyoptim.NAdam(ps, lr=0.01))
    for i in range(2):
        _backward(a, b, seed=i)
        compiled_opt.step()
        eager_opt.step()
    st = compiled_opt.state[next(a.parameters())]["step"]
    assert st._base is not None  # packed
    step = torch.compile(compiled_opt.step, fullgraph=True)
    for i in range(2, 5):
        _backward(a, b, seed=i)
        step()
        eager_opt.step()
        _assert_same(a, b)
    assert float(compiled_opt.state[next(a.parameters())]["step"]) == 5


def test_lbfgs_compiled_matches_eager():
    """L-BFGS calls its closure many times per step; it runs outside the graph in one piece."""
    torch.manual_seed(0)
    a = torch.nn.Linear(8, 1)
    b = copy.deepcopy(a)
    x = torch.randn(6, 8)
    oa, ob = polyoptim.LBFGS(a.parameters()), polyoptim.LBFGS(b.parameters())

    def closure(m, opt):
        def fn():
            opt.zero_grad()
            loss = m(x).pow(2).mean()
            loss.backward()
            return loss

        return fn

    step = torch.compile(oa.step)
    for _ in range(2):
        la, lb = step(closure(a, oa)), ob.step(closure(b, ob))
        assert float(la.detach()) == float(lb.detach())
    _assert_same(a, b)


def test_whole_training_step_compiled():
    """Forward, backward and step in one compiled function (the backward is traced apart by
    torch): the same training as eager."""
    a, b, compiled_opt, eager_opt = _twins(lambda ps: polyoptim.AdamW(ps, lr=0.01))

    @torch.compile
    def train_step(x):
        compiled_opt.zero_grad()
        loss = a(x).pow(2).sum()
        loss.backward()
        compiled_opt.step()
        return loss

    for i in range(3):
        x = torch.randn(5, 12, generator=torch.Generator().manual_seed(i))
        train_step(x)
        eager_opt.zero_grad()
        b(x).pow(2).sum().backward()
        eager_opt.step()
    _assert_same(a, b)


def test_fake_tensors_never_reach_the_fused_kernel():
    """Parameters that are fake tensors, or ``torch.func.functionalize``'s wrappers (no memory
    behind ``data_ptr()``), take the eager path
    instead of crashing the process; a subprocess, so that a crash fails this test only."""
    code = textwrap.dedent(
        """
        import torch, polyoptim
        from torch._subclasses.fake_tensor import FakeTensorMode
        with FakeTensorMode():
            w = torch.nn.Parameter(torch.ones(1000))
            w.grad = torch.ones(1000)
            for name in ("Adam", "SGD", "NAdam", "Rprop"):
                opt = getattr(polyoptim, name)([w], lr=0.1)
                opt.step()
                opt.step()

        def step(w, g):  # C++ functional wrappers: data_ptr() is 0
            w = torch.nn.Parameter(w)
            opt = polyoptim.Adam([w], lr=0.1)
            w.grad = g
            opt.step()
            return w.detach()

        out = torch.func.functionalize(step)(torch.ones(1000), torch.ones(1000))
        assert torch.allclose(out, torch.full((1000,), 0.9))
        print("stepped")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "stepped" in out.stdout
