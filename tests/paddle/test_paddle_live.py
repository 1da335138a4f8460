"""Live comparison with the real PaddlePaddle 3.3.1 (``make parity``; skipped without
``.venv-paddle``, made by tools/paddle_env.sh).

It reruns tools/paddle_golden.py into a temporary folder and checks polyoptim against those
fresh results exactly as the golden tests check the committed ones; then it lets Paddle read
a checkpoint written by polyoptim and continue from it, and compares error messages.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import numpy as np
import pytest
import torch
from golden_format import load_case
from paddle_golden_cases import check_lbfgs_case, check_optimizer_case
from test_paddle_golden import LBFGS_CASES, OPTIMIZER_CASES, SCHEDULER_CASES, TOL

from polyoptim import paddle as P

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
PADDLE_PY = os.path.join(ROOT, ".venv-paddle", "bin", "python")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not os.path.exists(PADDLE_PY), reason="no .venv-paddle (tools/paddle_env.sh)"
    ),
]


def run_paddle(code: str, timeout: int = 600) -> str:
    r = subprocess.run(
        [PADDLE_PY, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("paddle_golden"))
    r = subprocess.run(
        [PADDLE_PY, os.path.join(ROOT, "tools", "paddle_golden.py"), "--out", out],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return out


def _case(folder: str, name: str) -> dict:
    return load_case(os.path.join(folder, name + ".npz"))


@pytest.mark.parametrize("name", OPTIMIZER_CASES)
def test_live_optimizer_case(fresh: str, name: str, record_property) -> None:
    case = _case(fresh, name)
    worst = check_optimizer_case(case, "eager")
    record_property("paddle_live_relerr", max(worst.values()))
    assert worst["param"] <= TOL and worst["state"] <= TOL and worst["lr"] == 0.0, worst


@pytest.mark.parametrize("name", SCHEDULER_CASES)
def test_live_scheduler_case(fresh: str, name: str) -> None:
    from paddle_golden_cases import Decoder

    case = _case(fresh, name)
    sched = Decoder({})(case["meta"]["scheduler"])
    for k in range(1, case["meta"]["steps"] + 1):
        assert sched() == pytest.approx(float(case["arrays"][f"lr{k}"]), rel=1e-12, abs=0)
        metric = case["arrays"].get(f"metric{k}")
        sched.step(float(metric)) if metric is not None else sched.step()


@pytest.mark.parametrize("name", LBFGS_CASES)
def test_live_lbfgs_case(fresh: str, name: str) -> None:
    out = check_lbfgs_case(_case(fresh, name))
    assert max(out["param"][:3]) <= TOL and max(out["param"]) <= 1e-3


def test_paddle_resumes_from_a_polyoptim_checkpoint(tmp_path) -> None:
    """polyoptim trains 3 Adam steps and saves; Paddle loads the files, takes a 4th step; so
    does polyoptim. The parameters agree."""
    rng = np.random.default_rng(0)
    w0 = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
    grads = [rng.standard_normal((3, 2)).astype(np.float32) for _ in range(4)]
    w = torch.nn.Parameter(torch.tensor(w0))
    sched = P.lr.StepDecay(0.1, step_size=2, gamma=0.5)
    opt = P.Adam(sched, parameters=[("linear_0.w_0", w)], weight_decay=0.01)
    for g in grads[:3]:
        w.grad = torch.tensor(g)
        opt.step()
        opt.clear_grad()
        sched.step()
    P.save(opt.state_dict(), str(tmp_path / "opt.pdopt"))
    P.save({"w": w.detach()}, str(tmp_path / "w.pdparams"))
    np.save(tmp_path / "g.npy", grads[3])
    w.grad = torch.tensor(grads[3])
    opt.step()
    out = run_paddle(f"""
        import numpy as np, paddle
        from paddle.utils import unique_name
        d = {str(tmp_path)!r}
        with unique_name.guard():
            sd = paddle.load(d + "/opt.pdopt")
            w0 = paddle.load(d + "/w.pdparams")["w"].numpy()
            p = paddle.create_parameter([3, 2], "float32", attr=paddle.ParamAttr(
                name="linear_0.w_0", initializer=paddle.nn.initializer.Assign(w0)))
            sched = paddle.optimizer.lr.StepDecay(0.1, step_size=2, gamma=0.5)
            opt = paddle.optimizer.Adam(sched, parameters=[p], weight_decay=0.01)
            opt.set_state_dict(sd)
            (p * paddle.to_tensor(np.load(d + "/g.npy"))).sum().backward()
            opt.step()
            print(repr(p.numpy().tolist()))
    """)
    got = np.array(eval(out.strip().splitlines()[-1]), dtype=np.float32)  # noqa: S307 (our own output)
    assert np.abs(got - w.detach().numpy()).max() <= 1e-6 * np.abs(got).max()


def test_error_messages_match_paddle() -> None:
    out = run_paddle("""
        import json, paddle
        p = paddle.create_parameter([1], "float32")
        O, L1, Step = paddle.optimizer, paddle.regularizer.L1Decay, paddle.optimizer.lr.StepDecay
        cases = {
            "lr_int": lambda: paddle.optimizer.SGD(1, parameters=[p]),
            "none": lambda: paddle.optimizer.SGD(0.1, parameters=None),
            "beta1": lambda: paddle.optimizer.Adam(0.1, beta1=1.0, parameters=[p]),
            "nadam_lr": lambda: paddle.optimizer.NAdam(-0.1, parameters=[p]),
            "adamw_wd": lambda: O.AdamW(0.1, weight_decay=L1(0.1), parameters=[p]),
            "rprop": lambda: paddle.optimizer.Rprop(0.1, etas=(1.5, 1.2), parameters=[p]),
            "rms": lambda: paddle.optimizer.RMSProp(0.1, momentum=-1.0, parameters=[p]),
            "set_lr": lambda: O.SGD(Step(0.1, 1), parameters=[p]).set_lr(0.1),
        }
        out = {}
        for k, f in cases.items():
            try:
                f()
            except Exception as e:
                out[k] = [type(e).__name__, str(e)]
        print(json.dumps(out))
    """)
    paddle_errors = json.loads(out.strip().splitlines()[-1])
    w = torch.nn.Parameter(torch.ones(1))
    ours = {
        "lr_int": lambda: P.SGD(1, parameters=[w]),
        "none": lambda: P.SGD(0.1, parameters=None),
        "beta1": lambda: P.Adam(0.1, beta1=1.0, parameters=[w]),
        "nadam_lr": lambda: P.NAdam(-0.1, parameters=[w]),
        "adamw_wd": lambda: P.AdamW(0.1, weight_decay=P.L1Decay(0.1), parameters=[w]),
        "rprop": lambda: P.Rprop(0.1, etas=(1.5, 1.2), parameters=[w]),
        "rms": lambda: P.RMSProp(0.1, momentum=-1.0, parameters=[w]),
        "set_lr": lambda: P.SGD(P.lr.StepDecay(0.1, 1), parameters=[w]).set_lr(0.1),
    }
    for key, make in ours.items():
        with pytest.raises(Exception) as info:
            make()
        kind, message = paddle_errors[key]
        assert type(info.value).__name__ == kind, key
        assert str(info.value).replace("paddle Tensors", "") == message.replace(
            "paddle Tensors", ""
        ).replace("paddle.Tensor", "torch.Tensor"), key


def test_paddle_reads_polyoptim_files_like_its_own(tmp_path) -> None:
    t = torch.arange(6, dtype=torch.float32).reshape(3, 2)
    for proto in (2, 3, 4):
        P.save({"a": t, "LR_Scheduler": {"last_epoch": 1, "last_lr": 0.5}},
               str(tmp_path / f"x{proto}.pdopt"), protocol=proto)  # fmt: skip
    P.save({"master_weights": {"w": t}, "m": t}, str(tmp_path / "nested.pdopt"))
    out = run_paddle(f"""
        import json, paddle
        d = {str(tmp_path)!r}
        res = {{}}
        for n in ("x2", "x3", "x4", "nested"):
            sd = paddle.load(d + "/" + n + ".pdopt")
            res[n] = {{k: (v.numpy().tolist() if hasattr(v, "numpy") else
                          {{kk: vv.numpy().tolist() for kk, vv in v.items()}}
                          if k == "master_weights" else v) for k, v in sd.items()}}
        print(json.dumps(res))
    """)
    res = json.loads(out.strip().splitlines()[-1])
    for n in ("x2", "x3", "x4"):
        assert res[n] == {"a": t.tolist(), "LR_Scheduler": {"last_epoch": 1, "last_lr": 0.5}}
    assert res["nested"] == {"master_weights": {"w": t.tolist()}, "m": t.tolist()}


def test_added_group_follows_paddle_group_rules() -> None:
    """Paddle's ``_add_param_group``: the added groups' ``learning_rate`` and ``weight_decay``
    replace their tensors' ParamAttr, and each group is clipped on its own. polyoptim's
    ``add_param_group`` on an optimizer built from a plain list gives the same numbers.

    Paddle's own call fails on a plain-list optimizer, so Paddle's starts from one group dict.
    Optimizers that replace ``_default_dict`` after construction (all but SGD and AdamW) fill
    neither ``weight_decay`` nor ``grad_clip`` into a later group (KeyError), so the second
    group names them there: ``None`` means the optimizer's in both frameworks."""
    configs = {
        "SGD": "weight_decay=0.1, grad_clip=clip",
        "Momentum": "momentum=0.9, weight_decay=0.1, grad_clip=clip",
        "Adam": "weight_decay=0.1, grad_clip=clip",
        "AdamW": "weight_decay=0.1, grad_clip=clip",
        "RMSProp": "momentum=0.9, centered=True, weight_decay=0.1, grad_clip=clip",
    }
    full = ("SGD", "AdamW")  # their _default_dict fills both keys
    out = run_paddle(f"""
        import json, paddle
        configs, full = {configs!r}, {full!r}
        res = {{}}
        for name, kwargs in configs.items():
            const = paddle.nn.initializer.Constant
            a = paddle.create_parameter([3], "float32", default_initializer=const(1.0))
            bc = [paddle.create_parameter([3], "float32", default_initializer=const(v),
                      attr=paddle.ParamAttr(learning_rate=3.0,
                                            regularizer=paddle.regularizer.L1Decay(0.5)))
                  for v in (2.0, -1.0)]
            clip = paddle.nn.ClipGradByGlobalNorm(5.0)
            opt = eval("paddle.optimizer." + name + "(0.1, parameters=[{{'params': [a]}}], "
                       + kwargs + ")")
            extra = {{}} if name in full else {{"weight_decay": None, "grad_clip": clip}}
            opt._add_param_group({{"params": [bc[0]], "learning_rate": 0.5,
                                   "weight_decay": 0.2, "grad_clip": clip}})
            opt._add_param_group({{"params": [bc[1]], **extra}})
            for _ in range(3):
                loss = (a * 3.0).sum() + (bc[0] * 4.0).sum() + (bc[1] * -2.0).sum()
                loss.backward()
                opt.step()
                opt.clear_grad()
            res[name] = [p.numpy().tolist() for p in (a, *bc)]
        print(json.dumps(res))
    """)
    expected = json.loads(out.strip().splitlines()[-1])
    for name, kwargs in configs.items():
        a = torch.nn.Parameter(torch.ones(3))
        b, c = (torch.nn.Parameter(torch.full((3,), v)) for v in (2.0, -1.0))
        for p in (b, c):
            P.set_param_attr(p, learning_rate=3.0, regularizer=P.L1Decay(0.5))
        clip = P.ClipGradByGlobalNorm(5.0)
        opt = eval(f"P.{name}(0.1, parameters=[a], {kwargs})")  # noqa: S307 (our own text)
        opt.add_param_group({"params": [b], "learning_rate": 0.5, "weight_decay": 0.2})
        opt.add_param_group({"params": [c]})  # the defaults: the optimizer's decay and clip
        for _ in range(3):
            for p, g in zip((a, b, c), (3.0, 4.0, -2.0)):
                p.grad = torch.full((3,), g)
            opt.step()
        for p, ref in zip((a, b, c), expected[name]):
            np.testing.assert_allclose(p.detach().numpy(), ref, rtol=1e-6, err_msg=name)
        assert clip is opt.param_groups[2]["grad_clip"]
