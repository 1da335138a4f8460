"""A hostile or broken checkpoint given to a load path -- Paddle's ``set_state_dict`` (Adam with a
scheduler, LBFGS), MindSpore's ``load_checkpoint(net=...)`` / ``load_param_into_net`` -- either
loads or raises, and when it raises, parameters, optimizer state, scheduler and settings are
exactly as they were."""

from __future__ import annotations

import io
import os
import tempfile

import hostile_files as H
import numpy as np
import pytest
import torch
from bounded import read_within_bounds
from hypothesis import HealthCheck, given, settings

from polyoptim import mindspore as nn
from polyoptim import paddle as P
from polyoptim.interop import paddle_pickle as pp
from polyoptim.interop.errors import CheckpointFormatError

#: what a load path may raise for a bad checkpoint: the reader's error, or the dialect's own
REFUSALS = (CheckpointFormatError, ValueError, TypeError, AssertionError, RuntimeError)
PDOPT = {n: d for n, d in H.golden(H.PADDLE_FILES, (".pdopt",)).items() if "adam" in n}
CKPT = {n: d for n, d in H.golden(H.MINDSPORE_FILES, (".ckpt",)).items() if "adam" in n}


def snapshot(*objs) -> list:
    """Deep copies of tensors, dicts, lists and plain attributes, to compare afterwards."""

    def copy(x):
        if isinstance(x, torch.Tensor):
            return x.detach().clone()
        if isinstance(x, dict):
            return {k: copy(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(copy(v) for v in x)
        return x

    return [copy(o) for o in objs]


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return a == b or (a != a and b != b)


# -- Paddle ------------------------------------------------------------------------------------
def paddle_adam():
    w = torch.nn.Parameter(torch.randn(3, 2))
    b = torch.nn.Parameter(torch.randn(2))
    sched = P.lr.StepDecay(learning_rate=0.1, step_size=1, gamma=0.5)
    opt = P.Adam(learning_rate=sched, parameters=[("linear_0.w_0", w), ("linear_0.b_0", b)])
    w.grad, b.grad = torch.ones(3, 2), torch.ones(2)
    opt.step()
    sched.step()
    return opt, sched, [w, b]


def paddle_view(opt, sched, params) -> list:
    return snapshot(opt.state_dict(), sched.state_dict(), vars(sched), params)


def paddle_load_into(data: bytes, label: str) -> None:
    """``opt.set_state_dict(P.load(file))``: loads, or raises and changes nothing."""
    opt, sched, params = paddle_adam()
    before = paddle_view(opt, sched, params)

    def load():
        try:
            opt.set_state_dict(P.load(io.BytesIO(data)))
        except REFUSALS as exc:
            if isinstance(exc, CheckpointFormatError):
                raise
            return exc
        return None

    out = read_within_bounds(load, len(data), label)
    if out.error is not None or out.value is not None:
        assert same(paddle_view(opt, sched, params), before), f"{label}: changed by a failed load"


def test_paddle_real_files_load() -> None:
    for name, data in PDOPT.items():
        opt, sched, params = paddle_adam()
        opt.set_state_dict(P.load(io.BytesIO(data)))
        assert sched.last_epoch == 2, name


@pytest.mark.parametrize(
    "obj",
    [
        {"LR_Scheduler": {"last_epoch": 5, "last_lr": np.array([1.0, 2.0])}},  # .item() fails
        {"linear_0.w_0_moment1_0": np.zeros((2, 3), np.float32), "LR_Scheduler": {}},
        {"linear_0.w_0_moment1_0": np.zeros((3, 2), np.float32), "LR_Scheduler": {
            "last_epoch": 1, "last_lr": 0.1}},  # moment1 without moment2 and the pow accs
        {"linear_0.w_0_moment1_0": "not a tensor", "LR_Scheduler": {"last_epoch": 1,
                                                                    "last_lr": 0.1}},
        {"master_weights": [1, 2], "LR_Scheduler": {"last_epoch": 1, "last_lr": 0.1}},
        {"linear_0.w_0_moment1_0": np.array(["a", "b"]), "LR_Scheduler": {}},
    ],
    ids=["scheduler-value", "shape", "partial-accumulators", "type", "masters", "str-array"],
)  # fmt: skip
def test_paddle_bad_state_changes_nothing(obj) -> None:
    buf = io.BytesIO()
    pp.dump(obj, buf)
    paddle_load_into(buf.getvalue(), "bad-state")


def test_paddle_scheduler_state_is_all_or_nothing() -> None:
    """A scheduler state whose second value fails used to set the first one."""
    opt, sched, params = paddle_adam()
    with pytest.raises(ValueError):
        opt.set_state_dict({"LR_Scheduler": {"last_epoch": 7, "last_lr": np.array([1.0, 2.0])}})
    assert sched.last_epoch == 1


@pytest.mark.parametrize(
    "state",
    [
        {"d": [[np.zeros(8, np.float32)]]},  # nested lists: LBFGS keeps flat lists
        {"old_dirs": [np.zeros(8, np.float32)] * 101},  # more than history_size
        {"d": np.zeros(7, np.float32)},  # not one element, not as many as the parameters
        {"n_iter": 3, "d": "x"},
    ],
    ids=["nested", "history", "numel", "type"],
)
def test_paddle_lbfgs_bad_state_changes_nothing(state) -> None:
    w = torch.nn.Parameter(torch.zeros(8))
    opt = P.LBFGS(parameters=[w], history_size=100)
    opt.lbfgs_state = {"n_iter": 1, "d": torch.ones(8)}
    with pytest.raises((TypeError, ValueError)):
        opt.set_state_dict({"state": state})
    assert same(opt.lbfgs_state, {"n_iter": 1, "d": torch.ones(8)})


def test_paddle_lbfgs_shared_history_is_not_multiplied() -> None:
    """A file whose history is 30 levels of lists holding the level below twice (2**30 paths)
    hung LBFGS.set_state_dict; a list of 10 000 references to one array made 10 000 copies."""
    w = torch.nn.Parameter(torch.zeros(8))
    opt = P.LBFGS(parameters=[w])
    dag = H.pk(b"}" + H.u("state") + b"}" + H.u("d") + H.dag_ops(30) + b"ss")
    state = read_within_bounds(lambda: P.load(io.BytesIO(dag)), len(dag), "lbfgs-dag").value
    out = read_within_bounds(lambda: _refusal(opt.set_state_dict, state), len(dag), "lbfgs-dag")
    assert isinstance(out.value, TypeError) and opt.lbfgs_state == {}
    many = {"state": {"old_dirs": [np.zeros(8, np.float32)] * 10_000}}
    assert isinstance(_refusal(opt.set_state_dict, many), ValueError)


def _refusal(fn, *args):
    try:
        fn(*args)
    except REFUSALS as exc:
        return exc
    return None


# -- MindSpore -----------------------------------------------------------------------------
def ms_adam():
    w = torch.nn.Parameter(torch.randn(3, 2))
    b = torch.nn.Parameter(torch.randn(2))
    opt = nn.Adam([("fc.weight", w), ("fc.bias", b)], learning_rate=0.01)
    opt((torch.ones(3, 2), torch.ones(2)))
    return opt


def ms_view(opt) -> list:
    return snapshot(
        opt.global_step,
        [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups],
        dict(opt.defaults),
        {id(p): dict(s) for p, s in opt.state.items()},
        list(opt.parameters),
    )


def ms_load_into(data: bytes, label: str) -> None:
    """``nn.load_checkpoint(file, net=opt)``: loads, or raises and changes nothing."""
    opt = ms_adam()
    before = ms_view(opt)
    fd, path = tempfile.mkstemp(suffix=".ckpt")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    try:
        out = read_within_bounds(
            lambda: _refusal_or_format(nn.load_checkpoint, path, opt), len(data), label
        )
    finally:
        os.remove(path)
    if out.error is not None or out.value is not None:
        assert same(ms_view(opt), before), f"{label}: changed by a failed load"


def _refusal_or_format(load, path, opt):
    try:
        load(path, net=opt)
    except CheckpointFormatError:
        raise
    except REFUSALS as exc:
        return exc
    return None


def test_ms_real_files_load() -> None:
    opt = ms_adam()
    nn.load_checkpoint(os.path.join(H.MINDSPORE_FILES, "adam_2steps.ckpt"), net=opt)
    assert opt.global_step == 2


STEP3 = ("global_step", [1], "Int32", b"\x03\0\0\0")


@pytest.mark.parametrize(
    "data",
    [
        H.ckpt(STEP3, ("fc.bias", [2], "Bool", b"\1\7")),
        H.ckpt(STEP3, ("fc.bias", [3], "Float32", b"1" * 12)),
        H.ckpt(STEP3, ("fc.bias", [2], "str", b"\0" * 8)),
        H.ckpt(("global_step", [0, 2**62], "Int32", b"")),
        H.ckpt(STEP3, ("note", [0], "str", b"\0\0\x11\0")),
    ],
    ids=["bool7", "shape", "str-param", "dims", "utf32"],
)  # fmt: skip
def test_ms_hostile_files_change_nothing(data: bytes) -> None:
    ms_load_into(data, "ms-hostile")


def test_ms_a_refused_setting_puts_everything_back(monkeypatch) -> None:
    """A value the optimizer refuses while loading (here: ``momentum``) used to leave
    ``global_step``, the learning rate and the parameters already overwritten."""
    w = torch.nn.Parameter(torch.ones(2))
    src = nn.Momentum([("w", w)], learning_rate=0.5, momentum=0.8)
    src((torch.ones(2),))
    fd, path = tempfile.mkstemp(suffix=".ckpt")
    os.close(fd)
    try:
        nn.save_checkpoint(src, path)
        loaded = nn.load_checkpoint(path)
    finally:
        os.remove(path)
    v = torch.nn.Parameter(torch.full((2,), 7.0))
    opt = nn.Momentum([("w", v)], learning_rate=0.1, momentum=0.9)
    before = ms_view(opt)

    def refuse(**hyper):
        raise ValueError(f"refused {hyper}")

    monkeypatch.setattr(opt, "_configure", refuse)
    with pytest.raises(ValueError, match="refused"):
        nn.load_param_into_net(opt, loaded)
    assert same(ms_view(opt), before)
    assert v.tolist() == [7.0, 7.0] and opt.global_step == 0


# -- property tests: mutated real files through the load paths --------------------------------
def _fuzz(strategy, load, examples: int):
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(strategy)
    def run(data: bytes) -> None:
        load(data, "fuzz")

    return run


test_paddle_mutated_files = _fuzz(H.mutated(PDOPT), paddle_load_into, 60)
test_ms_mutated_files = _fuzz(H.mutated(CKPT), ms_load_into, 60)
test_paddle_mutated_files_long = pytest.mark.slow(_fuzz(H.mutated(PDOPT), paddle_load_into, 1500))
test_ms_mutated_files_long = pytest.mark.slow(_fuzz(H.mutated(CKPT), ms_load_into, 1500))


def test_paddle_numbered_keys_are_indexed_once() -> None:
    """Accumulators saved under another ``_<k>`` suffix are found through one index of the
    keys: a file of 50 000 numbered keys used to be scanned once per parameter and
    accumulator (300 parameters: 60 million regex matches)."""
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(300)]
    opt = P.Adam(0.1, parameters=[(f"p{k}", p) for k, p in enumerate(params)])
    for p in params:
        p.grad = torch.ones(1)
    opt.step()
    saved = {key[:-1] + "5": v.numpy() for key, v in opt.state_dict().items()}  # _0 -> _5
    saved.update({f"junk_{k}": 0 for k in range(50_000)})
    buf = io.BytesIO()
    pp.dump(saved, buf)
    data = buf.getvalue()
    fresh = P.Adam(0.1, parameters=[(f"p{k}", p) for k, p in enumerate(params)])
    out = read_within_bounds(
        lambda: fresh.set_state_dict(P.load(io.BytesIO(data))), len(data), "numbered"
    )
    assert out.error is None
    assert same(fresh.state_dict(), opt.state_dict())
