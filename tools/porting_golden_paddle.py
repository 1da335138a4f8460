"""Golden fixtures for the porting kit from the real PaddlePaddle 3.3.1 (CPU).

    .venv-paddle/bin/python tools/porting_golden_paddle.py

Writes tests/golden/porting/paddle/:

* ``<setup>.npz`` for every set-up of tools/project_setups.py (PADDLE_SETUPS), run on
  :func:`build_net`'s model from fixed numpy values with injected gradients: the unique name,
  structured name and ``trainable`` of every parameter, the learning rate and every parameter
  after each step, the final ``opt.state_dict()``;
* ``<setup>_mid.pdparams`` / ``<setup>_mid.pdopt``: ``paddle.save`` of the model and the
  optimizer after ``MID`` steps (the resume test continues from them);
* ``grad_scaler.npz``: ``paddle.amp.GradScaler`` driving AdamW over steps with and without
  infs, through ``minimize`` and through ``step``/``update`` (Paddle refuses to enable the
  scaler on a CPU; this script lifts that device check only, the scaler's code runs as is).

Layout of a case: a 0-d ``meta`` JSON string and arrays ``init/<structured name>``,
``g<k>/<structured name>`` (gradient of step k, Paddle's layout), ``p<k>/<structured name>``,
``lr<k>`` and ``state/<key>``. Never imports torch or polyoptim.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")

import paddle  # noqa: E402
from paddle import nn  # noqa: E402
from paddle.utils import unique_name  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from project_setups import PADDLE_SETUPS  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
OUT = os.path.join(ROOT, "tests", "golden", "porting", "paddle")
STEPS = 10
MID = 5
SEED = 20261203


class Net(nn.Layer):
    """The porting test network: a free parameter, Linear, LayerNorm, a Sequential backbone
    with BatchNorm, a head."""

    def __init__(self):
        super().__init__()
        self.pos_embed = self.create_parameter(shape=[1, 8])
        self.embed = nn.Linear(6, 8)
        self.norm = nn.LayerNorm(8)
        self.backbone = nn.Sequential(
            nn.Linear(8, 8), nn.BatchNorm1D(8), nn.ReLU(), nn.Linear(8, 8)
        )
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.backbone(self.norm(self.embed(x) + self.pos_embed)))


def build_net(rng):
    with unique_name.guard():
        net = Net()
    init = {}
    for n, p in net.named_parameters():
        value = rng.standard_normal(p.shape).astype(np.float32) * 0.5
        if n.endswith("_variance"):
            value = np.abs(value) + 0.5
        p.set_value(value)
        init[n] = value
    return net, init


def run_setup(name, setup):
    rng = np.random.default_rng(SEED)
    net, init = build_net(rng)
    opt, sched = setup(paddle, net, STEPS)
    named = [(n, p) for n, p in net.named_parameters()]
    arrays = {f"init/{n}": v for n, v in init.items()}
    meta = {
        "setup": name,
        "steps": STEPS,
        "mid": MID,
        "params": [
            {"structured": n, "name": p.name, "shape": list(p.shape), "trainable": p.trainable}
            for n, p in named
        ],
    }
    for k in range(1, STEPS + 1):
        arrays[f"lr{k}"] = np.float64(opt.get_lr())
        grads = {}
        for n, p in named:
            if p.trainable:
                scale = 5.0 if k % 4 == 0 else 1.0  # some steps clip, some do not
                grads[n] = (rng.standard_normal(p.shape) * scale).astype(np.float32)
        loss = sum((p * paddle.to_tensor(grads[n])).sum() for n, p in named if n in grads)
        loss.backward()
        opt.step()
        opt.clear_grad()
        sched.step()
        for n, g in grads.items():
            arrays[f"g{k}/{n}"] = g
        for n, p in named:
            arrays[f"p{k}/{n}"] = p.numpy().copy()
        if k == MID:
            paddle.save(net.state_dict(), os.path.join(OUT, f"{name}_mid.pdparams"))
            paddle.save(opt.state_dict(), os.path.join(OUT, f"{name}_mid.pdopt"))
    for key, value in opt.state_dict().items():
        if key == "LR_Scheduler":
            meta["LR_Scheduler"] = {k: float(v) for k, v in value.items() if _num(v)}
        elif hasattr(value, "numpy"):
            arrays[f"state/{key}"] = value.numpy().copy()
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(os.path.join(OUT, f"{name}.npz"), **arrays)
    print(name, len(arrays), "arrays")


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _enable_scaler(scaler_cls, **kwargs):
    """Build a GradScaler on the CPU with Paddle's device check lifted (the check is the only
    thing patched: ``_dygraph_tracer()._expected_place`` answers "GPU" while it runs)."""
    from paddle.amp import grad_scaler

    real = grad_scaler._dygraph_tracer

    class _Place:
        def __init__(self, place):
            self._place = place

        def is_gpu_place(self):
            return True

        def __getattr__(self, item):
            return getattr(self._place, item)

    class _Tracer:
        def __init__(self, tracer):
            self._tracer = tracer
            self._expected_place = _Place(tracer._expected_place)

    grad_scaler._dygraph_tracer = lambda: _Tracer(real())
    try:
        return scaler_cls(**kwargs)
    finally:
        grad_scaler._dygraph_tracer = real


def run_scaler():
    from paddle.amp.auto_cast import amp_global_state

    rng = np.random.default_rng(SEED + 1)
    arrays = {}
    meta = {"steps": 10, "inf_steps": [3, 4, 9], "modes": ["minimize", "step_update"]}
    for mode in meta["modes"]:
        with unique_name.guard():
            lin = nn.Linear(4, 3)
        w0 = rng.standard_normal([4, 3]).astype(np.float32)
        b0 = rng.standard_normal([3]).astype(np.float32)
        lin.weight.set_value(w0)
        lin.bias.set_value(b0)
        arrays[f"{mode}/init/weight"], arrays[f"{mode}/init/bias"] = w0, b0
        opt = paddle.optimizer.AdamW(learning_rate=0.01, parameters=lin.parameters())
        scaler = _enable_scaler(
            paddle.amp.GradScaler,
            init_loss_scaling=1024.0,
            incr_every_n_steps=3,
            decr_every_n_nan_or_inf=1,
        )
        amp_global_state().amp_dtype = "float16"  # scale() keeps dynamic scaling on only then
        for k in range(1, meta["steps"] + 1):
            gw = rng.standard_normal([4, 3]).astype(np.float32)
            gb = rng.standard_normal([3]).astype(np.float32)
            if k in meta["inf_steps"]:
                gw[1, 2] = np.inf
            loss = (lin.weight * paddle.to_tensor(gw)).sum() + (
                lin.bias * paddle.to_tensor(gb)
            ).sum()
            scaled = scaler.scale(loss)
            scaled.backward()
            if mode == "minimize":
                scaler.minimize(opt, scaled)
            else:
                scaler.step(opt)
                scaler.update()
            opt.clear_grad()
            arrays[f"{mode}/g{k}/weight"], arrays[f"{mode}/g{k}/bias"] = gw, gb
            arrays[f"{mode}/p{k}/weight"] = lin.weight.numpy().copy()
            arrays[f"{mode}/p{k}/bias"] = lin.bias.numpy().copy()
            sd = scaler.state_dict()
            arrays[f"{mode}/scale{k}"] = np.asarray(sd["scale"], dtype=np.float32)
            arrays[f"{mode}/counts{k}"] = np.array([sd["incr_count"], sd["decr_count"]])
        amp_global_state().amp_dtype = "float32"
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(os.path.join(OUT, "grad_scaler.npz"), **arrays)
    print("grad_scaler", len(arrays), "arrays")


class Zoo(nn.Layer):
    """Many layer kinds, nested containers included, for the name table."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 4, 3)
        self.bn = nn.BatchNorm2D(4)
        self.emb = nn.Embedding(10, 4)
        self.blocks = nn.Sequential(
            nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)), nn.Linear(4, 4), nn.BatchNorm1D(4)
        )
        self.heads = nn.LayerList([nn.Linear(4, 2), nn.Linear(4, 2, bias_attr=False)])
        self.gn = nn.GroupNorm(2, 4)
        self.deconv = nn.Conv2DTranspose(4, 2, 3)
        self.prelu = nn.PReLU()


def run_names():
    """Unique names of every parameter (BatchNorm statistics included) of :class:`Zoo`."""
    with unique_name.guard():
        zoo = Zoo()
    table = [[n, p.name, list(p.shape)] for n, p in zoo.named_parameters()]
    with open(os.path.join(OUT, "names.json"), "w", encoding="utf-8") as f:
        json.dump(table, f, indent=1)
    print("names", len(table))


def main():
    global OUT
    if len(sys.argv) > 2 and sys.argv[1] == "--out":  # the live test writes a fresh copy
        OUT = sys.argv[2]
    os.makedirs(OUT, exist_ok=True)
    # Paddle's scaler prints float(scale) of its shape-[1] scale when it decreases it, which
    # numpy 2 refuses; read the single element instead (only that message uses it)
    paddle.Tensor.__float__ = lambda self: float(np.asarray(self).reshape(-1)[0])
    paddle.set_device("cpu")
    for name, setup in PADDLE_SETUPS.items():
        with unique_name.guard():  # as in a fresh process: accumulators end in _0
            run_setup(name, setup)
    run_scaler()
    run_names()


if __name__ == "__main__":
    main()
