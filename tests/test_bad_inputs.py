"""Bad input in the Paddle and MindSpore dialects: what the real framework does, and nothing
changed by a refused call.

Each case of tools/bad_inputs.py (a constructor argument, a group key, ``set_lr``, a schedule
argument, an integer or bool parameter, a value arriving through ``set_state_dict`` or
``load_param_into_net``) is run on the dialect exactly as tools/bad_inputs_golden.py ran it on
the real Paddle 3.3.1 / MindSpore 2.10.0; the outcome -- the exception's type and message (the
framework's own text: C++ hints and stacks cut off) at the same stage, or that it ran -- must be
the recorded one. A call that raised must have left the parameters and the optimizer state as
they were. The ``live`` tests re-run the framework instead of reading the fixture.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from bad_inputs import Namespace, all_cases, mindspore_cases, paddle_cases, run, same

from polyoptim import mindspore as ms_dialect
from polyoptim import paddle as P

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
GOLDEN = os.path.join(ROOT, "tests", "golden")
VENVS = {"paddle": ".venv-paddle", "mindspore": ".venv-mindspore"}
_TORCH_DTYPE = {"float32": torch.float32, "int64": torch.int64, "int32": torch.int32}
_TORCH_DTYPE["bool"] = torch.bool


def _tensor(values, dtype="float32"):
    return torch.tensor(np.asarray(values, dtype=dtype))


def _param(values, dtype):
    t = _tensor(values, dtype)
    return torch.nn.Parameter(t) if t.is_floating_point() else t


def _text(x) -> str:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return repr(np.asarray(x).tolist()) if isinstance(x, np.ndarray) else repr(x)


def _flat(x):
    if isinstance(x, dict):
        return {k: _flat(v) for k, v in x.items()}
    return _text(x)


def paddle_namespace() -> Namespace:
    def param(name, values, dtype):
        p = _param(values, dtype)
        P.set_param_attr(p, name=name)
        return p

    def step(opt, params, grads):
        def closure():  # LBFGS re-evaluates; the others are stepped once
            for p, g in zip(params, grads):
                p.grad = _tensor(g, str(p.dtype).removeprefix("torch."))
            return torch.tensor(1.0)

        if isinstance(opt, P.LBFGS):
            opt.step(closure)
        else:
            closure()
            opt.step()

    def snapshot(opt, params):
        return [_text(p) for p in params], _flat(opt.state_dict())

    def load(opt, params, entries):
        sd = dict(opt.state_dict())
        for key, value in entries.items():
            if key == "LR_Scheduler":
                sd[key] = value
                continue
            name = next(k for k in sd if k.startswith(f"w_{key}_"))
            if value is None:
                del sd[name]
            else:
                sd[name] = value
        opt.set_state_dict(sd)

    return Namespace("paddle", P, P.lr, param, _tensor, step, snapshot, load)


def mindspore_namespace() -> Namespace:
    def step(opt, params, grads):
        opt(
            tuple(_tensor(g, str(p[1].dtype).removeprefix("torch.")) for p, g in zip(params, grads))
        )

    def snapshot(opt, params):
        return [_text(p[1]) for p in params], _flat(opt.parameters_dict())

    def load(opt, params, entries):
        ms_dialect.load_param_into_net(opt, dict(entries))

    return Namespace(
        "mindspore",
        ms_dialect,
        ms_dialect,
        lambda name, values, dtype: (name, _param(values, dtype)),
        _tensor,
        step,
        snapshot,
        load,
    )


NAMESPACES = {"paddle": paddle_namespace, "mindspore": mindspore_namespace}


@functools.cache
def _fixture(framework: str) -> dict:
    with open(os.path.join(GOLDEN, framework, "bad_inputs.json"), encoding="utf-8") as f:
        return json.load(f)


def _golden(framework: str) -> dict:
    return _fixture(framework)["cases"]


#: the hand-written cases and the grid over the framework's recorded signatures
CASES = {fw: all_cases(fw, _fixture(fw)["signatures"]) for fw in NAMESPACES}


_NO_LAMB = "MindSpore 2.10.0 has no CPU kernel for Lamb (it documents the rule; polyoptim runs it)"
_CPP = "Paddle fails inside a kernel it calls for this input; polyoptim refuses it or runs it"
#: where the dialect knowingly differs from the framework (docs/paddle.md, docs/mindspore.md)
DEVIATIONS = {
    "mindspore:Lamb.beta1=nan": _NO_LAMB,
    "mindspore:grid:Lamb.beta1=nan": _NO_LAMB,
    "mindspore:grid:Lamb.beta2=nan": _NO_LAMB,
    "mindspore:grid:Lamb.learning_rate=1": _NO_LAMB,
    "mindspore:grid:Lamb.weight_decay=1": _NO_LAMB,
    "mindspore:grid:AdamOffload.beta1=nan": (
        "MindSpore's AdamNoUpdateParam kernel refuses a NaN beta1 power at the step; the "
        "constructor takes NaN (as every MindSpore range check does), and so does polyoptim"
    ),
    "mindspore:Lamb.param_dtype=int64": _NO_LAMB,
    "mindspore:Lamb.param_dtype=int32": _NO_LAMB,
    **{
        f"mindspore:{c}.param_dtype={t}": (
            f"MindSpore's {c} is built from element-wise primitives that run on integer "
            "tensors; polyoptim refuses integer parameters in every optimizer"
        )
        for c, types in (("ASGD", ("int64", "int32")), ("Rprop", ("int64", "int32", "bool")))
        for t in types
    },
    "paddle:group.Adam.learning_rate='x'": _CPP + " (a str scale reaches adam_())",
    "paddle:Rprop.param_dtype=bool": _CPP + " (add_n, before rprop's own dtype check)",
    "paddle:set_state_dict.Adam(moment1='x')": _CPP + " (a str read as an array of length 1)",
}


def _params(framework):
    out = []
    for c in CASES[framework]:
        key = f"{framework}:{c.id}"
        marks = (
            [pytest.mark.xfail(reason=DEVIATIONS[key], strict=True)] if key in DEVIATIONS else []
        )
        out.append(pytest.param(framework, c, id=key, marks=marks))
    return out


def check(framework: str, case, expected: dict) -> None:
    got = run(case, NAMESPACES[framework]())
    assert same(expected, got), f"framework: {expected}\npolyoptim: {got}"
    assert not got.get("changed"), "the refused call changed parameters or state"


@pytest.mark.parametrize(("framework", "case"), _params("paddle") + _params("mindspore"))
def test_bad_input_as_framework(framework, case):
    check(framework, case, _golden(framework)[case.id])


def test_every_case_has_a_golden_outcome():
    """The fixture is current: it holds exactly the cases the list makes."""
    hand = {"paddle": paddle_cases(), "mindspore": mindspore_cases()}
    for framework, cases in CASES.items():
        assert sorted(c.id for c in cases) == sorted(_golden(framework)), framework
        assert {c.id for c in hand[framework]} <= set(_golden(framework))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
@pytest.mark.parametrize("framework", ["paddle", "mindspore"])
def test_integer_param_after_float_changes_nothing(framework, dtype):
    """A step over a float and an integer parameter is refused before the float one moves (the
    frameworks update tensor by tensor and fail half way)."""
    w = torch.nn.Parameter(torch.tensor([0.5, -1.0]))
    n = torch.tensor([5, 3]).to(dtype)
    w.grad, n.grad = torch.tensor([0.1, 0.2]), torch.tensor([1, 1]).to(dtype)
    if framework == "paddle":
        opt = P.Adam(learning_rate=0.1, parameters=[w, n])
        step = opt.step
    else:
        opt = ms_dialect.Adam([("w", w), ("n", n)], learning_rate=0.1)
        step = lambda: opt((w.grad, n.grad))  # noqa: E731
    state = repr({id(p): _flat(dict(st)) for p, st in opt.state.items()})
    with pytest.raises((RuntimeError, TypeError)):
        step()
    assert w.tolist() == [0.5, -1.0]
    assert repr({id(p): _flat(dict(st)) for p, st in opt.state.items()}) == state


def _live(framework: str) -> dict:
    python = os.path.join(ROOT, VENVS[framework], "bin", "python")
    if not os.path.exists(python):
        pytest.skip(f"no {VENVS[framework]}")
    out = os.path.join(ROOT, ".pytest-bad-inputs-" + framework + ".json")
    try:
        subprocess.run(
            [python, os.path.join(ROOT, "tools", "bad_inputs_golden.py"), framework, "--out", out],
            check=True,
            capture_output=True,
            timeout=1200,
            cwd=ROOT,
        )
        with open(out, encoding="utf-8") as f:
            return json.load(f)["cases"]
    finally:
        if os.path.exists(out):
            os.remove(out)


@pytest.mark.live
@pytest.mark.parametrize("framework", ["paddle", "mindspore"])
def test_bad_inputs_live(framework):
    """Re-run the framework now: its outcomes are the fixture's, and the dialect's are its."""
    fresh = _live(framework)
    assert fresh == _golden(framework)
    for case in CASES[framework]:
        if f"{framework}:{case.id}" not in DEVIATIONS:
            check(framework, case, fresh[case.id])


if __name__ == "__main__":  # the figures of the report: cases compared, cases matching
    for fw in sys.argv[1:] or ["paddle", "mindspore"]:
        gold = _golden(fw)
        ok = [c.id for c in CASES[fw] if same(gold[c.id], run(c, NAMESPACES[fw]()))]  # noqa: E501
        print(f"{fw}: {len(ok)} of {len(CASES[fw])} cases match the framework")
