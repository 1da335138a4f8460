"""Integer and bool parameters: refused with torch's own error, and before anything changes.

torch.optim raises when its first kernel op meets an integer parameter; which op that is (and so
the exception type and message) depends on the algorithm, the path (for-loop, foreach, fused),
the hyperparameters and the dtype. Every torch-dialect optimizer, on every path it has, is
compared here with ``torch.optim`` itself. torch's for-loop updates the floating parameters that
come before the integer one; polyoptim changes nothing -- no parameter, no state.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

import polyoptim

#: one of each kind: signed, unsigned with and without full kernel support, bool
INT_DTYPES = [torch.int64, torch.int32, torch.uint8, torch.uint16, torch.bool]
PATHS = {
    "default": {},
    "foreach": {"foreach": True},
    "for-loop": {"foreach": False},
    "fused": {"fused": True},
}
#: the configurations whose first failing op differs from the plain one
CONFIGS = {
    "SGD": [{}, {"momentum": 0.9}, {"weight_decay": 0.1}, {"maximize": True}],
    "Adam": [{}, {"amsgrad": True}, {"weight_decay": 0.1}],
    "AdamW": [{}, {"weight_decay": 0.0}],
    "Adamax": [{}],
    "NAdam": [{}, {"decoupled_weight_decay": True, "weight_decay": 0.1}],
    "RAdam": [{}],
    "Adagrad": [{}],
    "Adadelta": [{}],
    "RMSprop": [{}, {"centered": True, "momentum": 0.5}],
    "Rprop": [{}],
    "ASGD": [{}],
    "Adafactor": [{}],
    "Muon": [{}],
    "SparseAdam": [{}],
    "LBFGS": [{}, {"line_search_fn": "strong_wolfe"}],
}
CASES = [
    pytest.param(name, config, path, dtype, id=f"{name}-{i}-{path}-{str(dtype)[6:]}")
    for name, configs in CONFIGS.items()
    for i, config in enumerate(configs)
    for path in PATHS
    for dtype in INT_DTYPES
]


def _outcome(module, name, config, path, dtype, mixed):
    """What stepping a (float, integer) or (integer) group does: the exception, if any, and
    whether it changed the parameters or the state."""
    ints = torch.tensor([[5, 3]]).to(dtype)
    floats = torch.ones(1, 2)
    params = [floats, ints] if mixed else [ints]
    ints.grad = torch.tensor([[1, 2]]).to(dtype)
    floats.grad = torch.full((1, 2), 0.5)
    try:
        opt = getattr(module, name)(params, **config, **PATHS[path])
    except Exception as e:  # noqa: BLE001 - an argument refusal is an outcome too
        return ("ctor", type(e).__name__, str(e)), False
    before = [p.clone() for p in params], copy.deepcopy(opt.state_dict())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt.step((lambda: torch.tensor(1.0)) if name == "LBFGS" else None)
    except Exception as e:  # noqa: BLE001
        changed = any(not torch.equal(a, b) for a, b in zip(before[0], params))
        changed |= _flat(opt.state_dict()) != _flat(before[1])
        return ("step", type(e).__name__, str(e)), changed
    return ("ok", [p.tolist() for p in params]), None


def _flat(sd):
    return repr(
        {
            k: {n: (v.tolist() if torch.is_tensor(v) else v) for n, v in st.items()}
            for k, st in sd["state"].items()
        }
    )


@pytest.mark.parametrize("mixed", [False, True], ids=["alone", "after-float"])
@pytest.mark.parametrize(("name", "config", "path", "dtype"), CASES)
def test_integer_params_refused_as_torch_refuses(name, config, path, dtype, mixed):
    expected, _ = _outcome(torch.optim, name, config, path, dtype, mixed)
    got, changed = _outcome(polyoptim, name, config, path, dtype, mixed)
    assert got == expected
    assert not changed, "a refused step changed parameters or state"


def test_refused_step_keeps_existing_state():
    """An optimizer that has stepped before keeps its state exactly when a later step is
    refused for an integer parameter added since."""
    w = torch.nn.Parameter(torch.randn(4))
    opt = polyoptim.Adam([w], lr=0.1)
    w.grad = torch.randn(4)
    opt.step()
    counter = torch.zeros(3, dtype=torch.int64)
    counter.grad = torch.ones(3, dtype=torch.int64)
    opt.add_param_group({"params": [counter]})
    w.grad = torch.randn(4)
    before = copy.deepcopy(opt.state_dict()), w.detach().clone()
    with pytest.raises(NotImplementedError, match="lerp_kernel_scalar"):
        opt.step()
    assert _flat(opt.state_dict()) == _flat(before[0])
    assert torch.equal(w.detach(), before[1])
    assert torch.equal(counter, torch.zeros(3, dtype=torch.int64))


def test_replay_runs_no_global_hooks():
    """torch's class is replayed to find its error; the global step hooks do not see it."""
    seen = []
    handle = polyoptim.register_optimizer_step_pre_hook(lambda o, a, k: seen.append(type(o)))
    try:
        p = torch.tensor([1, 2])
        p.grad = torch.tensor([1, 1])
        opt = polyoptim.RMSprop([p])
        with pytest.raises(RuntimeError, match="can't be cast to the desired output type Long"):
            opt.step()
    finally:
        handle.remove()
    assert seen == [polyoptim.RMSprop]
