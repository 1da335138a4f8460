"""Rebuild the MindSpore golden cases (tests/golden/mindspore) with polyoptim's MindSpore dialect.

The fixtures were written by tools/mindspore_golden.py from the real MindSpore 2.10.0 (see the
README there); this module turns a case's ``meta`` back into polyoptim objects and replays its
gradients the MindSpore way, ``opt(grads)``. Shared by the golden tests and the live comparison.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch
from golden_format import grads, load_case, n_steps, params, state, trajectory

from polyoptim import mindspore as nn

GOLDEN = os.path.join(os.path.dirname(__file__), os.pardir, "golden", "mindspore")

#: the callables the fixtures describe by their source text (never evaluated from the file)
CALLABLES = {"lambda p: 'bias' not in p.name": lambda p: "bias" not in p.name}

#: documented rule implemented where MindSpore's CPU kernel differs (docs/mindspore.md)
QUIRKS = {
    "momentum_nesterov": "CPU ApplyMomentum ignores use_nesterov",
    "momentum_nesterov_wd": "CPU ApplyMomentum ignores use_nesterov",
    "ftrl_l1": "CPU ApplyFtrl uses +l1 whatever sign(linear)",
    "ftrl_l1_l2_power": "CPU ApplyFtrl uses +l1 whatever sign(linear)",
    "rmsprop_eps1_n19": "CPU ApplyRMSProp adds eps outside the root on blocks of 8",
    "rmsprop_eps1_n19_momentum": "CPU ApplyRMSProp adds eps outside the root on blocks of 8",
    "adagrad_no_update_slots": "CPU ApplyAdagrad ignores update_slots=False",
}


def relerr(actual: Any, expected: Any) -> float:
    """``max|a - e| / max|e|`` over a tensor (the worst relative error of the tests)."""
    a = np.asarray(actual.detach().cpu() if isinstance(actual, torch.Tensor) else actual)
    e = np.asarray(expected)
    if e.size == 0:
        return 0.0
    a = a.astype(np.float64).reshape(e.shape)
    e = e.astype(np.float64)
    return float(np.abs(a - e).max() / max(float(np.abs(e).max()), 1e-12))


def all_cases(kind: str = "optimizer") -> list[str]:
    """Names of the fixture cases of one kind (``optimizer``, ``schedule``, ``dynamic_lr``)."""
    if not os.path.isdir(GOLDEN):
        return []
    with open(os.path.join(GOLDEN, "index.json"), encoding="utf-8") as f:
        index = json.load(f)
    return sorted(c["name"] for c in index["cases"] if c["meta"]["kind"] == kind)


def index() -> dict:
    with open(os.path.join(GOLDEN, "index.json"), encoding="utf-8") as f:
        return json.load(f)


def load(name: str, folder: str = GOLDEN) -> dict:
    return load_case(os.path.join(folder, name + ".npz"))


def decode(x: Any) -> Any:
    """The meta JSON encoding back into polyoptim objects."""
    if isinstance(x, list):
        return [decode(v) for v in x]
    if not isinstance(x, dict):
        return x
    if "__callable__" in x:
        return CALLABLES[x["__callable__"]]
    if "__class__" in x:
        if x["__class__"] == "Tensor":
            return torch.tensor(x["value"], dtype=getattr(torch, x["dtype"]))
        return getattr(nn, x["__class__"])(**{k: decode(v) for k, v in x["args"].items()})
    return {k: decode(v) for k, v in x.items()}


_TUPLE_ARGS = ("etas", "step_sizes", "eps")


def build(case: dict, **override: Any) -> tuple[Any, list[torch.Tensor], list[str]]:
    """``(optimizer, params in param_names order, param_names)`` for an optimizer case."""
    meta = case["meta"]
    names = meta["param_names"]
    ps = [torch.nn.Parameter(torch.tensor(a)) for a in params(case)]
    byname = dict(zip(names, ps))
    if isinstance(meta["params"][0], dict):
        first: list = []
        for g in meta["params"]:
            first.append(
                {
                    k: [(n, byname[n]) for n in v] if k in ("params", "order_params") else decode(v)
                    for k, v in g.items()
                }
            )
    else:
        first = [(n, byname[n]) for n in meta["params"]]
    kwargs = {k: decode(v) for k, v in meta["kwargs"].items()}
    for k in _TUPLE_ARGS:
        if isinstance(kwargs.get(k), list):
            kwargs[k] = tuple(kwargs[k])
    kwargs.update(override)
    opt = getattr(nn, meta["optimizer"])(first, **kwargs)
    if meta.get("wrap"):
        wcls, wkw = meta["wrap"]
        opt = getattr(nn, wcls)(opt, **{k: decode(v) for k, v in wkw.items()})
    return opt, ps, names


def step_grads(case: dict, opt: Any, names: list[str], k: int) -> tuple[torch.Tensor, ...]:
    """Step ``k``'s gradients in the optimizer's parameter order."""
    by = dict(zip(names, grads(case, k)))
    return tuple(torch.tensor(by[n]) for n in opt.parameters.names)


def replay(
    case: dict,
    opt: Any,
    ps: list[torch.Tensor],
    names: list[str],
    first: int = 1,
    last: int | None = None,
) -> float:
    """Run steps ``first..last`` and return the worst relative error of the parameters."""
    worst = 0.0
    for k in range(first, (last or n_steps(case)) + 1):
        opt(step_grads(case, opt, names, k))
        for p, ref in zip(ps, trajectory(case, k)):
            worst = max(worst, relerr(p, ref))
    return worst


def state_errors(case: dict, opt: Any) -> tuple[list[str], list[str], float]:
    """``(missing, extra, worst)``: the names MindSpore saved that polyoptim lacks, the names
    polyoptim saves that MindSpore did not, and the worst relative error of the common ones
    (MindSpore's unnamed placeholder parameters, ``Parameter$<i>``, are not state)."""
    mine = opt.parameters_dict()
    theirs = {n: v for n, v in state(case).items() if not n.startswith("Parameter$")}
    missing = [n for n in theirs if n not in mine]
    extra = [n for n in mine if n not in theirs and n not in case["meta"]["param_names"]]
    worst = 0.0
    for name, value in theirs.items():
        if name in mine:
            worst = max(worst, relerr(mine[name].to(torch.float64), value))
    return missing, extra, worst
