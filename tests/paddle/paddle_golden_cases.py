"""Rebuild the Paddle golden cases (tests/golden/paddle) with the polyoptim Paddle dialect.

The fixtures were written by tools/paddle_golden.py from the real Paddle 3.3.1; this module turns
a case's ``meta`` back into polyoptim objects and replays its gradients. Shared by the golden
tests and the live comparison.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from golden_format import grads, lrs, params, state, trajectory  # tools/ (see tests/conftest.py)

from polyoptim import paddle as P

GOLDEN = os.path.join(os.path.dirname(__file__), os.pardir, "golden", "paddle")

#: the lambdas the fixtures describe by their source text (never evaluated from the file)
LAMBDAS = {
    "lambda name: not name.endswith('.b_0')": lambda name: not name.endswith(".b_0"),
    "lambda param: param.name.endswith('.b_0')": None,  # needs the optimizer: see _exclude
    "lambda epoch: 0.95 ** epoch": lambda epoch: 0.95**epoch,
    "lambda epoch: 0.9 if epoch % 2 else 1.0": lambda epoch: 0.9 if epoch % 2 else 1.0,
    "lambda x: 1.0 / (1.0 + 0.05 * x)": lambda x: 1.0 / (1.0 + 0.05 * x),
    "lambda param: 0.5": lambda param: 0.5,
}

_CLASSES = {
    "L1Decay": P.L1Decay,
    "L2Decay": P.L2Decay,
    "ClipGradByValue": P.ClipGradByValue,
    "ClipGradByNorm": P.ClipGradByNorm,
    "ClipGradByGlobalNorm": P.ClipGradByGlobalNorm,
}


def relerr(actual: Any, expected: Any) -> float:
    """``max|a - e| / max|e|`` over a tensor (the worst relative error of the tests)."""
    a = np.asarray(actual.detach().cpu() if isinstance(actual, torch.Tensor) else actual)
    e = np.asarray(expected)
    a = a.astype(np.float64).reshape(e.shape)
    e = e.astype(np.float64)
    scale = max(float(np.abs(e).max()) if e.size else 0.0, 1e-12)
    return float(np.abs(a - e).max() / scale) if e.size else 0.0


class Decoder:
    """Turns the meta JSON encoding back into polyoptim objects."""

    def __init__(self, named: dict[str, torch.Tensor]) -> None:
        self.named = named
        self.names = {id(p): n for n, p in named.items()}

    def __call__(self, x: Any) -> Any:
        if isinstance(x, list):
            return [self(v) for v in x]
        if not isinstance(x, dict):
            return x
        if "__param__" in x:
            return self.named[x["__param__"]]
        if "__lambda__" in x:
            src = x["__lambda__"]
            if src == "lambda param: param.name.endswith('.b_0')":
                return lambda p: self.names[id(p)].endswith(".b_0")
            return LAMBDAS[src]
        if "__class__" in x:
            cls, args = x["__class__"], {k: self(v) for k, v in x["args"].items()}
            if cls == "Tensor":
                return torch.tensor(args["data"], dtype=getattr(torch, args["dtype"]))
            if cls in _CLASSES:
                return _CLASSES[cls](**args)
            return getattr(P.lr, cls)(**args)
        return {k: self(v) for k, v in x.items()}


def build(case: dict) -> tuple[Any, list[torch.Tensor], Any]:
    """``(optimizer, params, scheduler or None)`` for an optimizer/sparse/lbfgs case."""
    meta = case["meta"]
    dtype = getattr(torch, meta.get("dtype", "float32"))
    tensors = [torch.nn.Parameter(torch.tensor(a).to(dtype)) for a in params(case)]
    named = dict(zip([p["name"] for p in meta["params"]], tensors))
    decode = Decoder(named)
    for spec in meta["params"]:
        attr = decode(spec["attr"])
        if attr:
            P.set_param_attr(named[spec["name"]], **attr)
    kwargs = decode(meta["kwargs"])
    parameters = []
    for item in meta["parameters"]:
        if "__param__" in item:
            parameters.append((item["__param__"], named[item["__param__"]]))
        else:
            group = decode({k: v for k, v in item.items() if k != "params"})
            group["params"] = [(q["__param__"], named[q["__param__"]]) for q in item["params"]]
            parameters.append(group)
    cls = getattr(P, meta["optimizer"])
    opt = cls(parameters=parameters, **kwargs)
    sched = kwargs.get("learning_rate")
    return opt, tensors, sched if isinstance(sched, P.lr.LRScheduler) else None


def sparse_grad(case: dict, k: int) -> torch.Tensor:
    """The SelectedRows gradient of step k as a torch sparse COO tensor."""
    a = case["arrays"]
    rows = torch.tensor(a[f"rows{k}_0"])
    dense = torch.tensor(a[f"g{k}_0"])
    return torch.sparse_coo_tensor(rows[None], dense[rows], dense.shape, check_invariants=True)


def replay(case: dict, opt: Any, tensors: list[torch.Tensor], sched: Any) -> dict[str, float]:
    """Run the case's steps; return the worst relative errors of params and lrs."""
    meta = case["meta"]
    worst = {"param": 0.0, "lr": 0.0}
    recorded_lrs = lrs(case)
    for k in range(1, meta["steps"] + 1):
        worst["lr"] = max(
            worst["lr"],
            abs(opt.get_lr() - float(recorded_lrs[k])) / max(abs(float(recorded_lrs[k])), 1e-30),
        )
        if meta["kind"] == "sparse":
            tensors[0].grad = sparse_grad(case, k)
        else:
            for p, g in zip(tensors, grads(case, k)):
                p.grad = torch.tensor(g).to(p.dtype)
        opt.step()
        opt.clear_grad()
        if sched is not None:
            sched.step()
        for p, ref in zip(tensors, trajectory(case, k)):
            worst["param"] = max(worst["param"], relerr(p.float(), ref))
    return worst


def compare_state(case: dict, sd: dict[str, Any], skip=()) -> float:
    """Worst relative error between ``sd`` and the recorded final state (same keys)."""
    expected = state(case)
    flat: dict[str, Any] = {}

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(f"{prefix}/{k}" if prefix else str(k), x)
        elif isinstance(v, (list, tuple)) and any(isinstance(x, torch.Tensor) for x in v):
            for i, x in enumerate(v):
                walk(f"{prefix}/{i}", x)
        elif isinstance(v, torch.Tensor):
            flat[prefix] = v

    walk("", sd)
    tensor_keys = {k for k in flat if k not in skip}
    assert tensor_keys == {k for k in expected if k not in skip}, sorted(
        tensor_keys ^ set(expected)
    )
    return max((relerr(flat[k].float(), expected[k]) for k in tensor_keys), default=0.0)


# -- the checks shared by the golden tests and the live comparison -------------------------------
#: how a case deviates on purpose: Paddle's CPU kernel contradicts its documented rule there
#: (docs/paddle.md, "Differences from Paddle's CPU kernels"); the check states how the documented
#: rule is mapped onto the CPU numbers
DOCUMENTED = {
    "momentum_rescale_grad": "rescale_grad: the CPU kernel ignores it",
    "adam_sparse_lazy": "sparse Adam: the CPU kernel corrects with beta^(t+1)",
    "adam_sparse_nonlazy": "sparse Adam: the CPU kernel corrects with beta^(t+1)",
    "sgd_bf16_multi_precision": "bf16 SGD: the CPU kernel ignores the master weights",
}

KERNELS = ("default", "eager", "foreach")


def set_kernel(opt: Any, kernel: str) -> None:
    """Pin the kernel the engine runs: its default, the for-loop, or the multi-tensor one."""
    for group in opt.param_groups:
        if kernel == "eager":
            group["foreach"], group["fused"] = False, False
        elif kernel == "foreach":
            group["foreach"], group["fused"] = True, None


def check_optimizer_case(case: dict, kernel: str = "default") -> dict[str, float]:
    """Replay an optimizer or sparse case; returns the worst relative errors of parameters
    (every step), learning rates and final state."""
    name = case["name"]
    meta = case["meta"]
    skip: tuple = ()
    if name == "sgd_bf16_multi_precision":
        # the CPU kernel is plain bf16 SGD: polyoptim without master weights is that kernel
        # (its recorded master_weights never moved from the initial values)
        meta = {**meta, "kwargs": {**meta["kwargs"], "multi_precision": False}}
        case = {**case, "meta": meta}
        skip = tuple(k for k in state(case) if k.startswith("master_weights/"))
    opt, tensors, sched = build(case)
    set_kernel(opt, kernel)
    if name == "momentum_rescale_grad":
        # documented rule g <- rescale_grad * g; the CPU run saw g: feed g / rescale_grad
        r = meta["kwargs"]["rescale_grad"]
        a = dict(case["arrays"])
        for k in range(1, meta["steps"] + 1):
            for j in range(len(tensors)):
                a[f"g{k}_{j}"] = (a[f"g{k}_{j}"] / np.float32(r)).astype(np.float32)
        case = {**case, "arrays": a}
    if name.startswith("adam_sparse"):
        # the documented rule with the pows one step ahead reproduces the CPU kernel's beta^(t+1)
        n = meta["params"][0]["name"]
        shape = tuple(meta["params"][0]["shape"])
        b1, b2 = np.float32(0.9), np.float32(0.999)
        opt.set_state_dict(
            {
                f"{n}_moment1_0": np.zeros(shape, np.float32),
                f"{n}_moment2_0": np.zeros(shape, np.float32),
                f"{n}_beta1_pow_acc_0": np.array([b1 * b1], np.float32),
                f"{n}_beta2_pow_acc_0": np.array([b2 * b2], np.float32),
            }
        )
        skip = (f"{n}_beta1_pow_acc_0", f"{n}_beta2_pow_acc_0")
    worst = replay(case, opt, tensors, sched)
    sd = opt.state_dict()
    pows = 0.0
    for key in (k for k in skip if "pow_acc" in k):  # one factor of beta ahead (above)
        beta = np.float32(0.9 if "beta1" in key else 0.999)
        pows = max(pows, relerr(sd[key].float(), state(case)[key] * beta))
    worst["state"] = max(pows, compare_state(case, sd, skip=skip))
    return worst


def lbfgs_closure(case: dict, opt: Any, tensors: list[torch.Tensor], counter: list[int]) -> Any:
    a = case["arrays"]
    A, b = torch.tensor(a["A"]), torch.tensor(a["b"])

    def closure() -> torch.Tensor:
        counter[0] += 1
        opt.clear_grad()
        x = torch.cat([tensors[0].flatten(), tensors[1]])
        r = A @ x - b
        loss = 0.5 * (r * r).sum()
        loss.backward()
        return loss

    return closure


def check_lbfgs_case(case: dict) -> dict[str, Any]:
    """Replay an LBFGS case: per-step parameter errors, losses and closure-call counts."""
    a = case["arrays"]
    opt, tensors, _ = build(case)
    counter = [0]
    closure = lbfgs_closure(case, opt, tensors, counter)
    out: dict[str, Any] = {"param": [], "loss": [], "evals": [], "expected_evals": []}
    for k in range(1, case["meta"]["steps"] + 1):
        counter[0] = 0
        loss = float(opt.step(closure).detach())
        out["param"].append(max(relerr(p, r) for p, r in zip(tensors, trajectory(case, k))))
        out["loss"].append(abs(loss - float(a[f"loss{k}"])) / abs(float(a[f"loss{k}"])))
        out["evals"].append(counter[0])
        out["expected_evals"].append(int(a[f"nevals{k}"]))
    out["opt"] = opt
    return out
