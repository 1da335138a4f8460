"""Golden fixtures for the porting kit from the real MindSpore 2.10.0 (CPU, PyNative).

    .venv-mindspore/bin/python tools/porting_golden_mindspore.py

Writes tests/golden/porting/mindspore/:

* ``<setup>.npz`` for every set-up of tools/project_setups.py (MINDSPORE_SETUPS), run on
  :class:`Net` from fixed numpy values: the training cell is fed a probe loss
  ``sum_j sum(w_j * G_j)`` over ``net.trainable_params()``, so the gradients are exactly the
  recorded ``G`` (times the loss scale); ResNet's set-up through ``TrainOneStepCell(sens=
  loss_scale)``, BERT's through ``TrainOneStepWithLossScaleCell`` and DynamicLossScaleManager's
  update cell, with infs in the gradients of some steps. Recorded: every parameter's name,
  the parameters after every step, the loss/overflow/scale outputs, and the names and values
  of ``save_checkpoint(train_net)`` at the end;
* ``<setup>_mid.ckpt``: ``save_checkpoint(train_net)`` after ``MID`` steps (the resume test);
* ``loss_scale.npz``: DynamicLossScaleManager.update_loss_scale and DynamicLossScaleUpdateCell
  over a fixed overflow pattern; ``nn.ClipByNorm`` and ``ops.clip_by_global_norm`` outputs.

Layout of a case: a 0-d ``meta`` JSON string and arrays ``init/<name>``, ``g<k>/<name>``,
``p<k>/<name>``, ``ckpt/<name>``. Never imports torch or polyoptim.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")

import mindspore as ms  # noqa: E402
from mindspore import Tensor, amp, nn, ops  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from project_setups import MINDSPORE_SETUPS  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
OUT = os.path.join(ROOT, "tests", "golden", "porting", "mindspore")
STEPS = 10
MID = 5
SEED = 20261204
INF_STEPS = {"mindspore_bert": [2, 3, 7]}


class Net(nn.Cell):
    """The porting test network: Dense, LayerNorm, BatchNorm, Dense."""

    def __init__(self):
        super().__init__()
        self.dense1 = nn.Dense(6, 8)
        self.layernorm = nn.LayerNorm((8,))
        self.bn1 = nn.BatchNorm1d(8)
        self.fc = nn.Dense(8, 3)

    def construct(self, x):
        return self.fc(self.bn1(self.layernorm(self.dense1(x))))


class Probe(nn.Cell):
    """Loss whose gradients are exactly the inputs: ``sum_j sum(w_j * g_j)``."""

    def __init__(self, net):
        super().__init__(auto_prefix=False)
        self.net = net

    def construct(self, *gs):
        loss = 0.0
        for w, g in zip(self.net.trainable_params(), gs):
            loss = loss + (w * g).sum()
        return loss


def _overflow_status(status, grads):
    return Tensor(any(not bool(ops.isfinite(g).all().asnumpy()) for g in grads))


def build_net(rng):
    net = Net()
    init = {}
    for name, p in net.parameters_and_names():
        value = rng.standard_normal(p.shape).astype(np.float32) * 0.5
        if "moving_variance" in name:
            value = np.abs(value) + 0.5
        p.set_data(Tensor(value))
        init[name] = value
    return net, init


def run_setup(name, setup):
    rng = np.random.default_rng(SEED)
    net, init = build_net(rng)
    opt, manager = setup(nn, amp, net, STEPS)
    if name == "mindspore_resnet":
        train = nn.TrainOneStepCell(Probe(net), opt, sens=manager.get_loss_scale())
    else:
        train = nn.TrainOneStepWithLossScaleCell(
            Probe(net), opt, scale_sense=manager.get_update_cell()
        )
        # MindSpore's overflow checks are device kernels (FloatStatus, NPU status) with no CPU
        # implementation; stand in the same test (any inf or nan in the gradients) with
        # ops.isfinite -- the only part of the cell replaced here
        train.get_overflow_status = _overflow_status
    train.set_train()
    arrays = {f"init/{n}": v for n, v in init.items()}
    meta = {
        "setup": name,
        "steps": STEPS,
        "mid": MID,
        "params": [
            {"name": p.name, "walk": n, "requires_grad": bool(p.requires_grad)}
            for n, p in net.parameters_and_names()
        ],
        "trainable": [p.name for p in net.trainable_params()],
        "outputs": [],
    }
    weights = net.trainable_params()
    for k in range(1, STEPS + 1):
        gs = []
        for w in weights:
            g = rng.standard_normal(w.shape).astype(np.float32)
            if k in INF_STEPS.get(name, []) and w.name == "fc.weight":
                g[0, 1] = np.inf
            gs.append(g)
            arrays[f"g{k}/{w.name}"] = g
        out = train(*[Tensor(g) for g in gs])
        if isinstance(out, tuple):
            loss, cond, scale = out
            meta["outputs"].append([bool(cond.asnumpy()), float(scale.asnumpy())])
        for n, p in net.parameters_and_names():
            arrays[f"p{k}/{n}"] = p.asnumpy().copy()
        if k == MID:
            ms.save_checkpoint(train, os.path.join(OUT, f"{name}_mid.ckpt"))
    final = os.path.join(OUT, f"_{name}_final.ckpt")
    ms.save_checkpoint(train, final)
    saved = ms.load_checkpoint(final)
    os.remove(final)
    meta["ckpt_names"] = list(saved)
    for key, value in saved.items():
        arrays[f"ckpt/{key}"] = value.asnumpy().copy()
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(os.path.join(OUT, f"{name}.npz"), **arrays)
    print(name, len(arrays), "arrays", meta["outputs"])


def run_loss_scale():
    pattern = [False, False, True, False, False, False, False, True, True, False, False, False]
    arrays = {}
    manager = amp.DynamicLossScaleManager(init_loss_scale=2.0**10, scale_factor=2, scale_window=3)
    scales = []
    for over in pattern:
        manager.update_loss_scale(over)
        scales.append(manager.get_loss_scale())
    arrays["manager_scales"] = np.array(scales, dtype=np.float64)
    cell = nn.DynamicLossScaleUpdateCell(loss_scale_value=2.0**10, scale_factor=2, scale_window=3)
    scale = ms.Parameter(Tensor(2.0**10, ms.float32), name="scale")
    cell_scales = []
    for over in pattern:
        cell(scale, Tensor(over))
        cell_scales.append(float(scale.asnumpy()))
    arrays["cell_scales"] = np.array(cell_scales, dtype=np.float64)
    rng = np.random.default_rng(SEED + 2)
    xs = [rng.standard_normal(s).astype(np.float32) for s in ([3, 4], [5], [2, 2, 2])]
    for i, x in enumerate(xs):
        arrays[f"clip_x{i}"] = x
        arrays[f"clip_by_norm{i}"] = nn.ClipByNorm()(Tensor(x), Tensor(1.5, ms.float32)).asnumpy()
        arrays[f"clip_by_norm_axis{i}"] = nn.ClipByNorm(axis=0)(
            Tensor(x), Tensor(0.5, ms.float32)
        ).asnumpy()
    for c in (0.5, 100.0):
        out = ops.clip_by_global_norm(tuple(Tensor(x) for x in xs), c)
        for i, o in enumerate(out):
            arrays[f"global{c}_{i}"] = o.asnumpy()
    meta = {"pattern": pattern}
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(os.path.join(OUT, "loss_scale.npz"), **arrays)
    print("loss_scale", scales, cell_scales)


class Block(nn.Cell):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, has_bias=True)
        self.bn1 = nn.BatchNorm2d(4)


class Zoo(nn.Cell):
    """Many layer kinds, nested containers included, for the name table."""

    def __init__(self):
        super().__init__()
        self.layer1 = nn.SequentialCell([Block(), Block()])
        self.emb = nn.Embedding(10, 4)
        self.gn = nn.GroupNorm(2, 4)
        self.ln = nn.LayerNorm((4,))
        self.heads = nn.CellList([nn.Dense(4, 2), nn.Dense(4, 2, has_bias=False)])
        self.bn = nn.BatchNorm1d(4)


def run_names():
    """MindSpore names of every parameter of :class:`Zoo`, and its trainable ones."""
    zoo = Zoo()
    table = {
        "parameters_and_names": [
            [n, p.name, bool(p.requires_grad)] for n, p in zoo.parameters_and_names()
        ],
        "trainable": [p.name for p in zoo.trainable_params()],
        "layer1_walk": [n for n, _ in zoo.layer1.parameters_and_names()],
    }
    with open(os.path.join(OUT, "names.json"), "w", encoding="utf-8") as f:
        json.dump(table, f, indent=1)
    print("names", len(table["parameters_and_names"]))


def main():
    global OUT
    if len(sys.argv) > 2 and sys.argv[1] == "--out":  # the live test writes a fresh copy
        OUT = sys.argv[2]
    os.makedirs(OUT, exist_ok=True)
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    for name, setup in MINDSPORE_SETUPS.items():
        run_setup(name, setup)
    run_loss_scale()
    run_names()


if __name__ == "__main__":
    main()
