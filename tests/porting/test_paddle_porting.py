"""Paddle projects' optimizer set-ups, unchanged, on an adopted torch model, against the real
Paddle 3.3.1 (tests/golden/porting/paddle, written by tools/porting_golden_paddle.py).

Each set-up in tools/project_setups.py runs here with ``paddle`` bound to ``polyoptim.paddle``
and there with the real ``paddle``; the models are the same network built in each framework
from the same values, and the steps get the same gradients. Parameters after every step, the
learning rates and the final ``state_dict`` (Paddle's keys, Paddle's layout) must agree within
1e-5; a run resumed from Paddle's own ``.pdparams``/``.pdopt`` after 5 steps must end where
Paddle ended.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from project_setups import PADDLE_SETUPS  # tools/ (see tests/conftest.py)

from polyoptim import paddle
from polyoptim.paddle.adopt import paddle_layout

GOLDEN = os.path.join(os.path.dirname(__file__), os.pardir, "golden", "porting", "paddle")
TOL = 1e-5


class Net(torch.nn.Module):
    """tools/porting_golden_paddle.py's network, written in torch."""

    def __init__(self) -> None:
        super().__init__()
        self.pos_embed = torch.nn.Parameter(torch.zeros(1, 8))
        self.embed = torch.nn.Linear(6, 8)
        self.norm = torch.nn.LayerNorm(8)
        self.backbone = torch.nn.Sequential(
            torch.nn.Linear(8, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 8)
        )
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(self.norm(self.embed(x) + self.pos_embed)))


def load(name: str) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(os.path.join(GOLDEN, name + ".npz"), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(str(arrays.pop("meta")[()])), arrays


def relerr(actual: torch.Tensor, expected: np.ndarray) -> float:
    a = actual.detach().double().numpy().reshape(expected.shape)
    e = expected.astype(np.float64)
    return float(np.abs(a - e).max() / max(float(np.abs(e).max()), 1e-12))


def torch_entries(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Paddle's structured names to the model's tensors (BatchNorm statistics included)."""
    out = dict(model.named_parameters())
    for n, b in model.named_buffers():
        leaf = n.rsplit(".", 1)[-1]
        if leaf in ("running_mean", "running_var"):
            out[n[: -len(leaf)] + {"running_mean": "_mean", "running_var": "_variance"}[leaf]] = b
    return out


def build(arrays: dict[str, np.ndarray]) -> tuple[Net, dict[str, torch.Tensor]]:
    with paddle.unique_name_guard():
        model = paddle.adopt(Net())
    entries = torch_entries(model)
    with torch.no_grad():
        for key, value in arrays.items():
            if key.startswith("init/"):
                t = entries[key[5:]]
                t.copy_(paddle_layout(t, torch.from_numpy(value), to_paddle=False))
    return model, entries


def set_grads(entries, arrays, k):
    for key, value in arrays.items():
        if key.startswith(f"g{k}/"):
            t = entries[key[len(f"g{k}/") :]]
            t.grad = paddle_layout(t, torch.from_numpy(value), to_paddle=False).clone()


def check_params(entries, arrays, k, where):
    for key, value in arrays.items():
        if key.startswith(f"p{k}/"):
            t = entries[key[len(f"p{k}/") :]]
            err = relerr(paddle_layout(t, t.detach(), to_paddle=True), value)
            assert err < TOL, f"{where}: {key} off by {err:.3g}"


@pytest.mark.parametrize("setup", sorted(PADDLE_SETUPS))
def test_setup_matches_paddle(setup: str) -> None:
    meta, arrays = load(setup)
    model, entries = build(arrays)
    # every parameter carries Paddle's unique name and trainable flag
    for info in meta["params"]:
        t = entries[info["structured"]]
        if isinstance(t, torch.nn.Parameter):
            assert t.name == info["name"]
            assert list(paddle_layout(t, t.detach(), to_paddle=True).shape) == info["shape"]
    opt, sched = PADDLE_SETUPS[setup](paddle, model, meta["steps"])
    for info in meta["params"]:
        t = entries[info["structured"]]
        if isinstance(t, torch.nn.Parameter):
            assert t.trainable == info["trainable"], info
    for k in range(1, meta["steps"] + 1):
        assert abs(opt.get_lr() - float(arrays[f"lr{k}"])) <= 1e-7 * max(1.0, opt.get_lr())
        set_grads(entries, arrays, k)
        opt.step()
        opt.clear_grad()
        sched.step()
        check_params(entries, arrays, k, f"{setup} step {k}")
    sd = opt.state_dict()
    expected = {k[6:]: v for k, v in arrays.items() if k.startswith("state/")}
    ours = {k: v for k, v in sd.items() if k != "LR_Scheduler"}
    assert sorted(ours) == sorted(expected)
    for key, value in expected.items():
        assert relerr(torch.as_tensor(ours[key]), value) < TOL, key
    for key, value in meta.get("LR_Scheduler", {}).items():
        assert float(sd["LR_Scheduler"][key]) == pytest.approx(value, rel=1e-6), key


@pytest.mark.parametrize("setup", sorted(PADDLE_SETUPS))
def test_resume_from_paddle_checkpoint(setup: str) -> None:
    """Load the model and optimizer files Paddle wrote after ``mid`` steps into a fresh
    adopted model and a fresh optimizer; the remaining steps end where Paddle ended."""
    meta, arrays = load(setup)
    model, entries = build(arrays)
    opt, sched = PADDLE_SETUPS[setup](paddle, model, meta["steps"])
    missing, unexpected = model.set_state_dict(
        paddle.load(os.path.join(GOLDEN, f"{setup}_mid.pdparams"))
    )
    assert missing == [] and unexpected == []
    opt.set_state_dict(paddle.load(os.path.join(GOLDEN, f"{setup}_mid.pdopt")))
    check_params(entries, arrays, meta["mid"], f"{setup} loaded")
    for k in range(meta["mid"] + 1, meta["steps"] + 1):
        assert abs(opt.get_lr() - float(arrays[f"lr{k}"])) <= 1e-7 * max(1.0, opt.get_lr())
        set_grads(entries, arrays, k)
        opt.step()
        opt.clear_grad()
        sched.step()
        check_params(entries, arrays, k, f"{setup} resumed step {k}")


@pytest.mark.parametrize("mode", ["minimize", "step_update"])
def test_grad_scaler_matches_paddle(mode: str) -> None:
    """GradScaler (1024, incr every 3 clean steps) over steps 3, 4 and 9 holding an inf:
    the skipped steps, the scale and its counters, and the parameters agree with Paddle."""
    meta, arrays = load("grad_scaler")
    with paddle.unique_name_guard():
        lin = paddle.adopt(torch.nn.Linear(4, 3))
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(arrays[f"{mode}/init/weight"]).t())
        lin.bias.copy_(torch.from_numpy(arrays[f"{mode}/init/bias"]))
    opt = paddle.AdamW(learning_rate=0.01, parameters=lin.parameters())
    scaler = paddle.amp.GradScaler(
        init_loss_scaling=1024.0, incr_every_n_steps=3, decr_every_n_nan_or_inf=1
    )
    for k in range(1, meta["steps"] + 1):
        gw = torch.from_numpy(arrays[f"{mode}/g{k}/weight"]).t()
        gb = torch.from_numpy(arrays[f"{mode}/g{k}/bias"])
        loss = (lin.weight * gw).sum() + (lin.bias * gb).sum()
        scaled = scaler.scale(loss)
        scaled.backward()
        if mode == "minimize":
            scaler.minimize(opt, scaled)
        else:
            scaler.step(opt)
            scaler.update()
        opt.clear_grad()
        sd = scaler.state_dict()
        assert float(sd["scale"][0]) == float(arrays[f"{mode}/scale{k}"][0]), k
        assert [sd["incr_count"], sd["decr_count"]] == list(arrays[f"{mode}/counts{k}"]), k
        assert relerr(lin.weight.t(), arrays[f"{mode}/p{k}/weight"]) < TOL, k
        assert relerr(lin.bias, arrays[f"{mode}/p{k}/bias"]) < TOL, k
