"""MindSpore model-zoo training set-ups, unchanged, on an adopted torch model, against the real
MindSpore 2.10.0 (tests/golden/porting/mindspore, written by tools/porting_golden_mindspore.py).

Each set-up of tools/project_setups.py runs here with ``nn`` bound to ``polyoptim.mindspore``
and ``amp`` to ``polyoptim.mindspore.amp``, and there with MindSpore's own. The training cells
get a probe loss whose gradients are exactly the recorded ones; the parameters after every
step (1e-5), the cells' ``(loss, overflow, scale)`` outputs, the names and values of
``save_checkpoint(train_net)``, and a run resumed from MindSpore's own ``.ckpt`` after 5 steps
must agree with MindSpore.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from project_setups import MINDSPORE_SETUPS  # tools/ (see tests/conftest.py)

from polyoptim import mindspore as nn

GOLDEN = os.path.join(os.path.dirname(__file__), os.pardir, "golden", "porting", "mindspore")
TOL = 1e-5


class Net(torch.nn.Module):
    """tools/porting_golden_mindspore.py's network, written in torch."""

    def __init__(self) -> None:
        super().__init__()
        self.dense1 = torch.nn.Linear(6, 8)
        self.layernorm = torch.nn.LayerNorm((8,))
        self.bn1 = torch.nn.BatchNorm1d(8)
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn1(self.layernorm(self.dense1(x))))


class Probe(torch.nn.Module):
    """``sum_j sum(w_j * g_j)`` over ``net.trainable_params()``: its gradients are the inputs."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, *gs: torch.Tensor) -> torch.Tensor:
        return sum((w * g).sum() for w, g in zip(self.net.trainable_params(), gs))


def load(name: str) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(os.path.join(GOLDEN, name + ".npz"), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(str(arrays.pop("meta")[()])), arrays


def relerr(actual: torch.Tensor, expected: np.ndarray) -> float:
    a = actual.detach().double().numpy().reshape(expected.shape)
    e = expected.astype(np.float64)
    return float(np.abs(a - e).max() / max(float(np.abs(e).max()), 1e-12))


def build(meta: dict, arrays: dict[str, np.ndarray]):
    net = nn.adopt(Net())
    init = {k[5:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("init/")}
    assert nn.load_param_into_net(net, init) == ([], [])
    opt, manager = MINDSPORE_SETUPS[meta["setup"]](nn, nn.amp, net, meta["steps"])
    if meta["setup"] == "mindspore_resnet":
        train = nn.TrainOneStepCell(Probe(net), opt, sens=manager.get_loss_scale())
    else:
        train = nn.TrainOneStepWithLossScaleCell(
            Probe(net), opt, scale_sense=manager.get_update_cell()
        )
    return net, opt, train


def run_steps(meta, arrays, net, train, first: int) -> None:
    walk = dict(net.parameters_and_names())
    for k in range(first, meta["steps"] + 1):
        gs = [torch.from_numpy(arrays[f"g{k}/{w.name}"]) for w in net.trainable_params()]
        out = train(*gs)
        if meta["outputs"]:
            _, cond, scale = out
            assert [bool(cond), float(scale)] == meta["outputs"][k - 1], k
        for key, value in arrays.items():
            if key.startswith(f"p{k}/"):
                err = relerr(walk[key[len(f"p{k}/") :]], value)
                assert err < TOL, f"step {k}: {key} off by {err:.3g}"


@pytest.mark.parametrize("setup", sorted(MINDSPORE_SETUPS))
def test_setup_matches_mindspore(setup: str, tmp_path) -> None:
    meta, arrays = load(setup)
    net, opt, train = build(meta, arrays)
    assert [p.name for p in net.trainable_params()] == meta["trainable"]
    assert [(n, p.name, p.requires_grad) for n, p in net.parameters_and_names()] == [
        (e["walk"], e["name"], e["requires_grad"]) for e in meta["params"]
    ]
    run_steps(meta, arrays, net, train, 1)
    path = tmp_path / "final.ckpt"
    nn.save_checkpoint(train, str(path))
    saved = nn.load_checkpoint(str(path))
    assert sorted(saved) == sorted(meta["ckpt_names"])
    for name in meta["ckpt_names"]:
        expected = arrays[f"ckpt/{name}"]
        assert relerr(saved[name].double(), expected) < TOL, name


@pytest.mark.parametrize("setup", sorted(MINDSPORE_SETUPS))
def test_resume_from_mindspore_checkpoint(setup: str) -> None:
    """``load_checkpoint(ckpt, net=train_net)`` with MindSpore's file after ``mid`` steps, then
    the remaining steps end where MindSpore ended (loss scale and its counters included)."""
    meta, arrays = load(setup)
    net, opt, train = build(meta, arrays)
    nn.load_checkpoint(os.path.join(GOLDEN, f"{setup}_mid.ckpt"), net=train)
    # global_step counts the optimizer's runs: the overflowing steps before mid are not among them
    assert opt.global_step == int(
        nn.load_checkpoint(os.path.join(GOLDEN, f"{setup}_mid.ckpt"))["global_step"][0]
    )
    run_steps(meta, arrays, net, train, meta["mid"] + 1)


def test_untrained_names_decay_filter_needs_adopt() -> None:
    """Without adoption the model zoo's filter sees torch names: BatchNorm's scale is called
    ``weight`` and lands in the decayed group; adopted, it is ``gamma`` and does not."""
    from project_setups import init_group_params

    net = Net()
    with pytest.raises(AttributeError):
        net.trainable_params()
    adopted = nn.adopt(Net())
    decayed = [p.name for p in init_group_params(adopted, 1e-4)[0]["params"]]
    assert decayed == ["dense1.weight", "fc.weight"]


def test_loss_scale_managers_and_clipping_match_mindspore() -> None:
    meta, arrays = load("loss_scale")
    manager = nn.amp.DynamicLossScaleManager(
        init_loss_scale=2.0**10, scale_factor=2, scale_window=3
    )
    scales = []
    for over in meta["pattern"]:
        manager.update_loss_scale(over)
        scales.append(manager.get_loss_scale())
    assert scales == list(arrays["manager_scales"])
    cell = nn.DynamicLossScaleUpdateCell(loss_scale_value=2.0**10, scale_factor=2, scale_window=3)
    scale = torch.tensor(2.0**10)
    cell_scales = []
    for over in meta["pattern"]:
        assert bool(cell(scale, torch.tensor(over))) == over
        cell_scales.append(float(scale))
    assert cell_scales == list(arrays["cell_scales"])
    xs = [torch.from_numpy(arrays[f"clip_x{i}"]) for i in range(3)]
    for i, x in enumerate(xs):
        assert relerr(nn.ClipByNorm()(x, 1.5), arrays[f"clip_by_norm{i}"]) < 1e-6
        # with an axis, MindSpore's CPU kernel pairs the norms with the wrong slices (see
        # docs/porting.md); polyoptim follows the documented rule, checked in closed form
        norm = x.double().pow(2).sum(0, keepdim=True).sqrt()
        closed = x.double() * 0.5 / torch.clamp(norm, min=0.5)
        assert relerr(nn.ClipByNorm(axis=0)(x, 0.5), closed.numpy()) < 1e-6
        if i == 0:  # the 2-D case shows the kernel's mix-up
            assert relerr(nn.ClipByNorm(axis=0)(x, 0.5), arrays["clip_by_norm_axis0"]) > 1e-2
    for c in (0.5, 100.0):
        for i, o in enumerate(nn.ops.clip_by_global_norm(tuple(xs), c)):
            assert relerr(o, arrays[f"global{c}_{i}"]) < 1e-6


def test_fixed_manager_defaults_and_errors() -> None:
    fixed = nn.amp.FixedLossScaleManager()
    assert fixed.get_loss_scale() == 128.0 and fixed.get_drop_overflow_update()
    assert isinstance(fixed.get_update_cell(), nn.FixedLossScaleUpdateCell)
    assert nn.amp.FixedLossScaleManager(8.0, drop_overflow_update=False).get_update_cell() is None
    dynamic = nn.amp.DynamicLossScaleManager()
    assert (dynamic.get_loss_scale(), dynamic.scale_factor, dynamic.scale_window) == (
        2**24,
        2,
        2000,
    )
    with pytest.raises(ValueError, match="loss_scale"):
        nn.amp.FixedLossScaleManager(0.5)
    with pytest.raises(ValueError, match="init_loss_scale"):
        nn.amp.DynamicLossScaleManager(init_loss_scale=0.5)
    with pytest.raises(ValueError, match="clip_norm"):
        nn.ops.clip_by_global_norm((torch.ones(2),), 0.0)
    net = nn.adopt(Net())
    opt = nn.Momentum(net.trainable_params(), 0.1, 0.9)
    with pytest.raises(ValueError, match="sens"):
        nn.TrainOneStepCell(nn.WithLossCell(net, torch.nn.MSELoss()), opt, sens=0)
    with pytest.raises(TypeError, match="scale_sense"):
        nn.TrainOneStepWithLossScaleCell(net, opt, scale_sense=2.0)
    with pytest.raises(ValueError, match="shape"):
        nn.TrainOneStepWithLossScaleCell(net, opt, scale_sense=torch.ones(2))


def test_overflow_skips_the_step_and_leaves_state() -> None:
    """A fixed scale with drop_overflow_update: a step whose gradients overflow changes
    nothing (parameters, optimizer state, global step)."""
    torch.manual_seed(0)
    net = nn.adopt(torch.nn.Linear(3, 2))
    opt = nn.Adam(net.trainable_params(), learning_rate=0.1)
    cell = nn.amp.FixedLossScaleManager(2.0**10).get_update_cell()
    train = nn.TrainOneStepWithLossScaleCell(Probe(net), opt, scale_sense=cell)
    train(torch.ones(2, 3), torch.ones(2))
    before = [p.detach().clone() for p in net.parameters()]
    state = {k: v.clone() for k, v in opt.state[net.weight].items() if torch.is_tensor(v)}
    _, overflow, scale = train(torch.full((2, 3), float("inf")), torch.ones(2))
    assert bool(overflow) and float(scale) == 2.0**10 and opt.global_step == 1
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert all(torch.equal(v, opt.state[net.weight][k]) for k, v in state.items())
