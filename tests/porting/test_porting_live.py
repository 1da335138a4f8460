"""Live porting checks against the real frameworks (``make parity``; skipped without
``.venv-paddle`` / ``.venv-mindspore``):

* the porting fixtures regenerate from the real frameworks as committed;
* the other direction of the checkpoint interchange: files polyoptim writes from an adopted
  torch model after 5 steps (``paddle.save(opt.state_dict())``; ``save_checkpoint(train_net)``)
  load into the real framework, which then finishes the run where its own uninterrupted run
  ended.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import numpy as np
import pytest
import torch
from project_setups import MINDSPORE_SETUPS, PADDLE_SETUPS
from test_mindspore_porting import build as ms_build
from test_mindspore_porting import load as ms_load
from test_paddle_porting import GOLDEN as PADDLE_GOLDEN
from test_paddle_porting import build as paddle_build
from test_paddle_porting import load as paddle_load
from test_paddle_porting import set_grads

from polyoptim import mindspore as ms
from polyoptim import paddle

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
PYTHON = {
    "paddle": os.path.join(ROOT, ".venv-paddle", "bin", "python"),
    "mindspore": os.path.join(ROOT, ".venv-mindspore", "bin", "python"),
}
pytestmark = pytest.mark.live


def _needs(framework: str) -> None:
    if not os.path.exists(PYTHON[framework]):
        pytest.skip(f"no .venv-{framework}")


def _run(framework: str, code: str) -> str:
    r = subprocess.run(
        [PYTHON[framework], "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r.stdout


@pytest.mark.parametrize("framework", ["paddle", "mindspore"])
def test_fixtures_regenerate(framework: str, tmp_path) -> None:
    _needs(framework)
    script = os.path.join(ROOT, "tools", f"porting_golden_{framework}.py")
    r = subprocess.run(
        [PYTHON[framework], script, "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    committed = os.path.join(ROOT, "tests", "golden", "porting", framework)
    for name in sorted(os.listdir(committed)):
        if name.endswith(".npz"):
            with np.load(os.path.join(committed, name)) as a, np.load(tmp_path / name) as b:
                assert sorted(a.files) == sorted(b.files), name
                for key in a.files:
                    if key != "meta":
                        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, err_msg=key)


@pytest.mark.parametrize("setup", sorted(PADDLE_SETUPS))
def test_paddle_resumes_from_polyoptim(setup: str, tmp_path) -> None:
    _needs("paddle")
    meta, arrays = paddle_load(setup)
    model, entries = paddle_build(arrays)
    opt, sched = PADDLE_SETUPS[setup](paddle, model, meta["steps"])
    for k in range(1, meta["mid"] + 1):
        set_grads(entries, arrays, k)
        opt.step()
        opt.clear_grad()
        sched.step()
    pdopt = str(tmp_path / "ours.pdopt")
    paddle.save(opt.state_dict(), pdopt)
    out = _run(
        "paddle",
        f"""
        import sys, json, numpy as np, paddle
        sys.path.insert(0, "tools")
        import porting_golden_paddle as G
        from project_setups import PADDLE_SETUPS
        from paddle.utils import unique_name
        z = np.load({os.path.join(PADDLE_GOLDEN, setup + ".npz")!r})
        mid, steps = {meta["mid"]}, {meta["steps"]}
        with unique_name.guard():
            with unique_name.guard():
                net = G.Net()
            named = dict(net.named_parameters())
            for n, p in named.items():
                p.set_value(z["p%d/%s" % (mid, n)])
            opt, sched = PADDLE_SETUPS[{setup!r}](paddle, net, steps)
            opt.set_state_dict(paddle.load({pdopt!r}))
            for k in range(mid + 1, steps + 1):
                loss = sum((named[key[len("g%d/" % k):]] * paddle.to_tensor(z[key])).sum()
                           for key in z.files if key.startswith("g%d/" % k))
                loss.backward(); opt.step(); opt.clear_grad(); sched.step()
            err = max(float(np.abs(p.numpy() - z["p%d/%s" % (steps, n)]).max()
                            / max(np.abs(z["p%d/%s" % (steps, n)]).max(), 1e-12))
                      for n, p in named.items())
        print(json.dumps(err))
        """,
    )
    assert json.loads(out.strip().splitlines()[-1]) < 1e-5


@pytest.mark.parametrize("setup", sorted(MINDSPORE_SETUPS))
def test_mindspore_resumes_from_polyoptim(setup: str, tmp_path) -> None:
    _needs("mindspore")
    meta, arrays = ms_load(setup)
    net, opt, train = ms_build(meta, arrays)
    for k in range(1, meta["mid"] + 1):
        train(*[torch.from_numpy(arrays[f"g{k}/{w.name}"]) for w in net.trainable_params()])
    ckpt = str(tmp_path / "ours.ckpt")
    ms.save_checkpoint(train, ckpt)
    golden = os.path.join(ROOT, "tests", "golden", "porting", "mindspore", setup + ".npz")
    out = _run(
        "mindspore",
        f"""
        import sys, json, numpy as np, mindspore as ms
        from mindspore import Tensor, amp, nn
        sys.path.insert(0, "tools")
        import porting_golden_mindspore as G
        from project_setups import MINDSPORE_SETUPS
        ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
        z = np.load({golden!r})
        mid, steps = {meta["mid"]}, {meta["steps"]}
        net = G.Net()
        opt, manager = MINDSPORE_SETUPS[{setup!r}](nn, amp, net, steps)
        if {setup!r} == "mindspore_resnet":
            train = nn.TrainOneStepCell(G.Probe(net), opt, sens=manager.get_loss_scale())
        else:
            train = nn.TrainOneStepWithLossScaleCell(
                G.Probe(net), opt, scale_sense=manager.get_update_cell())
            train.get_overflow_status = G._overflow_status
        ms.load_checkpoint({ckpt!r}, net=train)
        for k in range(mid + 1, steps + 1):
            train(*[Tensor(z["g%d/%s" % (k, w.name)]) for w in net.trainable_params()])
        err = max(float(np.abs(p.asnumpy() - z["p%d/%s" % (steps, n)]).max()
                        / max(np.abs(z["p%d/%s" % (steps, n)]).max(), 1e-12))
                  for n, p in net.parameters_and_names())
        print(json.dumps(err))
        """,
    )
    assert json.loads(out.strip().splitlines()[-1]) < 1e-5
