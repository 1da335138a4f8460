"""Paddle checkpoint files: reading real ``paddle.save`` output without Paddle, refusing files
that would run code, writing files Paddle can read, and resuming training from them."""

from __future__ import annotations

import io
import json
import os
import pickle

import numpy as np
import pytest
import torch

from polyoptim import paddle as P
from polyoptim.interop import paddle_pickle as pp
from polyoptim.interop import safe_unpickle as su

CKPT = os.path.join(os.path.dirname(__file__), os.pardir, "golden", "paddle", "checkpoints")
with open(os.path.join(CKPT, "index.json"), encoding="utf-8") as _f:
    INDEX = json.load(_f)["files"]
READABLE = sorted(f for f, e in INDEX.items() if "paddle_load" in e)


def describe(x):
    """The description tools/paddle_golden.py recorded for what ``paddle.load`` returned."""
    if isinstance(x, torch.Tensor):
        a = x.float().numpy() if x.dtype == torch.bfloat16 else x.numpy()
        return {"__type__": "Tensor", "dtype": str(a.dtype), "shape": list(a.shape),
                "values": a.tolist()}  # fmt: skip
    if isinstance(x, np.ndarray):
        return {"__type__": "ndarray", "dtype": str(x.dtype), "shape": list(x.shape),
                "values": x.tolist()}  # fmt: skip
    if isinstance(x, dict):
        return {str(k): describe(v) for k, v in x.items()}
    if isinstance(x, tuple):
        return {"__type__": "tuple", "items": [describe(v) for v in x]}
    if isinstance(x, list):
        return [describe(v) for v in x]
    return x


def path(name: str) -> str:
    return os.path.join(CKPT, name)


@pytest.mark.parametrize("name", READABLE)
def test_load_matches_paddle_load(name: str) -> None:
    entry = INDEX[name]
    assert describe(P.load(path(name))) == entry["paddle_load"]
    numpy_view = P.load(path(name), return_numpy=True)
    expected = entry["paddle_load_return_numpy"]
    # with return_numpy Paddle gives ndarrays: compare values, not the Tensor/ndarray label
    strip = json.dumps(expected, sort_keys=True).replace('"Tensor"', '"ndarray"')
    got = json.dumps(describe(numpy_view), sort_keys=True).replace('"Tensor"', '"ndarray"')
    assert got == strip
    with open(path(name), "rb") as f:
        assert describe(pp.load(f)) == entry["plain_pickle_load"]


def test_names_are_kept() -> None:
    sd = P.load(path("linear.pdparams"))
    assert sd["weight"].paddle_name == "linear_0.w_0"
    table = P.load(path("linear.pdparams"), keep_name_table=True)[pp.NAME_TABLE]
    assert table == {"weight": "linear_0.w_0", "bias": "linear_0.b_0"}
    nested = P.load(path("nested_tensors.pdopt"))
    assert nested["master_weights"]["linear_0.w_0"].paddle_name == "linear_0.w_0_fp32_master_0"


@pytest.mark.parametrize("proto", [2, 3, 4])
def test_protocols_give_the_same_state(proto: int) -> None:
    ref = P.load(path("adam_stepdecay.pdopt"))
    got = P.load(path(f"adam_stepdecay_protocol{proto}.pdopt"))
    assert got.keys() == ref.keys()
    for k, v in ref.items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(got[k], v)
        else:
            assert got[k] == v
    assert INDEX[f"adam_stepdecay_protocol{proto}.pdopt"]["pickle_protocol"] == proto


# -- refusing hostile or broken files ----------------------------------------------------------
def _opt_with_state():
    lin = torch.nn.Linear(3, 2)
    opt = P.Adam(0.1, parameters=lin.named_parameters())
    lin(torch.ones(1, 3)).sum().backward()
    opt.step()
    return opt, {k: v.clone() for k, v in opt.state_dict().items()}


def test_malicious_file_is_refused_without_running_it(monkeypatch) -> None:
    called = []
    monkeypatch.setattr(os, "system", lambda *a: called.append(a) or 0)
    opt, before = _opt_with_state()
    with pytest.raises(pp.UnsafeCheckpointError, match="posix.system"):
        opt.set_state_dict(P.load(path("malicious.pdopt")))
    assert called == []
    after = opt.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert isinstance(pp.UnsafeCheckpointError("x"), ValueError)


def test_truncated_file_is_an_error() -> None:
    opt, before = _opt_with_state()
    with pytest.raises(pp.CheckpointFormatError, match="truncated"):
        opt.set_state_dict(P.load(path("truncated.pdopt")))
    after = opt.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())


def _evil(reduce_to) -> bytes:
    class Evil:
        def __reduce__(self):
            return reduce_to

    return pickle.dumps({"linear_0.w_0_moment1_0": Evil()}, protocol=4)


@pytest.mark.parametrize(
    "payload",
    [
        _evil((eval, ("__import__('os').system('true')",))),
        _evil((eval, ("data", {"data": 1}))),
        _evil((getattr, ("text", "upper"))),
        _evil((os.system, ("true",))),
        _evil((torch.load, ("x",))),
        _evil((np.memmap, ("/dev/zero",))),
        _evil((np.ndarray.__new__, (np.memmap, (0,)))),
        pickle.dumps(np.array([1, "a"], dtype=object), protocol=4),
    ],
    ids=[
        "eval-code",
        "eval-not-array",
        "getattr",
        "os.system",
        "torch.load",
        "memmap",
        "ndarray-subclass",
        "object-array",
    ],  # fmt: skip
)
def test_hostile_pickles_are_refused(payload: bytes) -> None:
    with pytest.raises(pp.UnsafeCheckpointError):
        P.load(io.BytesIO(payload))


def test_persistent_ids_are_refused() -> None:
    buf = io.BytesIO()

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return "x" if isinstance(obj, str) and obj == "ref" else None

    Pickler(buf, protocol=4).dump({"a": "ref"})
    with pytest.raises(pp.UnsafeCheckpointError, match="persistent"):
        P.load(io.BytesIO(buf.getvalue()))


@pytest.mark.parametrize(
    "data",
    [b"", b"not a pickle at all", pickle.dumps({"a": 1}, protocol=0), b"\x80\x04\x95garbage"],
    ids=["empty", "text", "protocol-0", "garbage"],
)
def test_malformed_files_are_errors(data: bytes) -> None:
    with pytest.raises(pp.CheckpointFormatError):
        P.load(io.BytesIO(data))


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError):
        P.load(path("no_such_file.pdopt"))


def test_unpickler_never_imports_anything_else() -> None:
    """Every global of every real checkpoint is on the allow-list; the malicious one is not."""
    for name, entry in INDEX.items():
        for module, attr in entry["pickle_globals"]:
            if name == "malicious.pdopt":
                assert (module, attr) == ("posix", "system")
            elif module != "<incomplete>":
                su.resolve_global(module, attr)
    with pytest.raises(pp.UnsafeCheckpointError, match="posix.system"):
        su.resolve_global("posix", "system")


# -- writing files Paddle reads ----------------------------------------------------------------
@pytest.mark.parametrize("proto", [2, 3, 4])
def test_save_writes_paddle_layout(proto: int) -> None:
    opt, _ = _opt_with_state()
    sd = opt.state_dict()
    buf = io.BytesIO()
    P.save(sd, buf, protocol=proto)
    raw = pp.loads(buf.getvalue())
    assert raw[pp.NAME_TABLE] == {k: k for k in sd if k != "LR_Scheduler"}
    assert all(isinstance(raw[k], np.ndarray) for k in raw[pp.NAME_TABLE])
    buf.seek(0)
    back = P.load(buf)
    for k, v in sd.items():
        assert torch.equal(back[k], v)
    assert pp._protocol(buf.getvalue()) == proto


def test_save_with_master_weights_is_generic_and_round_trips() -> None:
    w = torch.nn.Parameter(torch.randn(3, 2).to(torch.bfloat16))
    opt = P.Adam(0.1, parameters=[("linear_0.w_0", w)], multi_precision=True)
    for g in opt.param_groups:
        g["fused"] = False
    w.grad = torch.ones_like(w)
    opt.step()
    sd = opt.state_dict()
    assert "linear_0.w_0_fp32_master_0_moment1_0" in sd
    buf = io.BytesIO()
    P.save(sd, buf)
    raw = pp.loads(buf.getvalue())
    assert raw["master_weights"]["linear_0.w_0"][0] == "linear_0.w_0_fp32_master_0"
    assert pp.NAME_TABLE not in raw  # the generic form, as paddle.save writes it
    buf.seek(0)
    back = P.load(buf)
    assert torch.equal(back["master_weights"]["linear_0.w_0"], sd["master_weights"]["linear_0.w_0"])
    w2 = torch.nn.Parameter(w.detach().clone())
    opt2 = P.Adam(0.1, parameters=[("linear_0.w_0", w2)], multi_precision=True)
    opt2.set_state_dict(back)
    for key, value in opt2.state_dict().items():
        if key != "master_weights":
            assert torch.equal(value, sd[key]), key


def test_bfloat16_tensors_round_trip() -> None:
    t = torch.randn(4).to(torch.bfloat16)
    buf = io.BytesIO()
    P.save({"x": t}, buf)
    buf.seek(0)
    assert pp.loads(buf.getvalue())["x"].dtype == np.uint16
    assert torch.equal(P.load(buf)["x"], t)


def test_big_arrays_are_split_under_protocol_2_and_3(monkeypatch) -> None:
    monkeypatch.setattr(pp, "MAX_ARRAY_BYTES", 40)  # 10 float32s per slice
    x = torch.arange(25, dtype=torch.float32).reshape(5, 5)
    for proto in (2, 3):
        buf = io.BytesIO()
        P.save({"x": x, "y": torch.ones(2)}, buf, protocol=proto)
        raw = pp.loads(buf.getvalue())
        assert sorted(k for k in raw if k.startswith("x@@.")) == ["x@@.0", "x@@.1", "x@@.2"]
        assert raw[pp.BIG_PARAM_INFO]["x"]["OriginShape"] == (5, 5)
        buf.seek(0)
        assert torch.equal(P.load(buf)["x"], x)
    buf = io.BytesIO()
    P.save({"x": x}, buf, protocol=4)
    assert pp.BIG_PARAM_INFO not in pp.loads(buf.getvalue())


def test_save_errors() -> None:
    with pytest.raises(ValueError, match="protocol"):
        P.save({"x": torch.ones(1)}, io.BytesIO(), protocol=5)
    with pytest.raises(ValueError, match="filename is empty"):
        P.save({"x": torch.ones(1)}, "some/dir/")


# -- resuming a Paddle run ---------------------------------------------------------------------
RECIPE = INDEX["adam_stepdecay.pdopt"]["recipe"]


def _recipe_run(steps: int, resume_from: dict | None = None):
    w = torch.nn.Parameter(torch.tensor(RECIPE["init"]["linear_0.w_0"]))
    b = torch.nn.Parameter(torch.tensor(RECIPE["init"]["linear_0.b_0"]))
    sched = P.lr.StepDecay(learning_rate=0.1, step_size=1, gamma=0.5)
    opt = P.Adam(learning_rate=sched, parameters=[("linear_0.w_0", w), ("linear_0.b_0", b)])
    grads = RECIPE["grads"] + [RECIPE["grads"][0]]  # a third step reuses the first gradients
    start = 0
    if resume_from is not None:
        opt.set_state_dict(resume_from)
        params = P.load(os.path.join(CKPT, "linear.pdparams"))
        with torch.no_grad():
            w.copy_(params["weight"])
            b.copy_(params["bias"])
        start = 2
    for gw, gb in grads[start:steps]:
        w.grad, b.grad = torch.tensor(gw), torch.tensor(gb)
        opt.step()
        opt.clear_grad()
        sched.step()
    return opt, sched, w, b


def test_two_steps_reproduce_the_paddle_checkpoint() -> None:
    opt, sched, w, b = _recipe_run(2)
    ref = P.load(path("adam_stepdecay.pdopt"))
    sd = opt.state_dict()
    assert sd.keys() == ref.keys()
    assert sd["LR_Scheduler"] == ref["LR_Scheduler"] == {"last_epoch": 2, "last_lr": 0.025}
    for k, v in ref.items():
        if isinstance(v, torch.Tensor):
            assert torch.allclose(sd[k], v, rtol=1e-6, atol=1e-9), k
    params = P.load(path("linear.pdparams"))
    assert torch.allclose(w.detach(), params["weight"], rtol=1e-6, atol=1e-7)
    assert torch.allclose(b.detach(), params["bias"], rtol=1e-6, atol=1e-7)


def test_resuming_from_the_paddle_checkpoint_continues_the_run() -> None:
    _, _, w_ref, b_ref = _recipe_run(3)
    opt, sched, w, b = _recipe_run(3, resume_from=P.load(path("adam_stepdecay.pdopt")))
    assert sched.last_epoch == 3
    assert torch.allclose(w.detach(), w_ref.detach(), rtol=1e-6, atol=1e-7)
    assert torch.allclose(b.detach(), b_ref.detach(), rtol=1e-6, atol=1e-7)


def test_bf16_master_weights_checkpoint_loads() -> None:
    w = torch.nn.Parameter(torch.zeros(3, 2, dtype=torch.bfloat16))
    opt = P.SGD(0.1, parameters=[("linear_0.w_0", w)], multi_precision=True)
    opt.set_state_dict(P.load(path("sgd_bf16_master_weights.pdopt")))
    master = opt.state_dict()["master_weights"]["linear_0.w_0"]
    expected = INDEX["sgd_bf16_master_weights.pdopt"]["paddle_load"]["master_weights"]
    assert master.tolist() == expected["linear_0.w_0"]["values"]
