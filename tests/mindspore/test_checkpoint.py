"""MindSpore ``.ckpt`` files: reading real MindSpore files, writing files MindSpore reads,
resuming training from them, and refusing malformed ones without changing anything."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from golden_format import n_steps, trajectory
from ms_golden_cases import GOLDEN, all_cases, build, load, relerr, replay, step_grads

from polyoptim import mindspore as nn
from polyoptim.interop import mindspore_ckpt as ckpt

CKPTS = os.path.join(GOLDEN, "checkpoints")
pytestmark = pytest.mark.skipif(
    not os.path.isfile(os.path.join(CKPTS, "index.json")), reason="checkpoint fixtures missing"
)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _index() -> dict:
    with open(os.path.join(CKPTS, "index.json"), encoding="utf-8") as f:
        return json.load(f)


def _records() -> list[dict]:
    return _index()["files"] if os.path.isfile(os.path.join(CKPTS, "index.json")) else []


def _compare(loaded: dict, expected: dict) -> None:
    """``loaded`` (from polyoptim) equals what ``mindspore.load_checkpoint`` returned."""
    assert list(loaded) == expected["names"]
    for e in expected["entries"]:
        got = loaded[e["name"]]
        if e["type"] == "str":
            assert got == e["value"]
            continue
        assert isinstance(got, torch.Tensor)
        assert list(got.shape) == e["shape"], e["name"]
        assert ckpt._TORCH_TO_MS[got.dtype] == e["dtype"], e["name"]
        if "bfloat16_bits" in e:
            bits = got.view(torch.uint16).numpy().astype(np.int64)
            assert bits.reshape(-1).tolist() == np.ravel(e["bfloat16_bits"]).tolist()
        elif "value_hex" in e:
            assert (
                got.numpy().astype(got.numpy().dtype.newbyteorder("<")).tobytes().hex()
                == (e["value_hex"])
            ), e["name"]
        elif "value" in e:
            np.testing.assert_array_equal(got.numpy(), np.asarray(e["value"]))


@pytest.mark.parametrize("rec", _records(), ids=lambda r: r["file"])
def test_load_checkpoint_as_mindspore_does(rec):
    path = os.path.join(CKPTS, rec["file"])
    for key, crc in (("load_checkpoint", False), ("load_checkpoint_crc_check", True)):
        if key not in rec:
            continue
        expected = rec[key]
        if expected["ok"]:
            _compare(nn.load_checkpoint(path, crc_check=crc), expected)
        else:
            with pytest.raises(ValueError, match="Failed to read the checkpoint file"):
                nn.load_checkpoint(path, crc_check=crc)


def test_writer_reproduces_mindspore_bytes(tmp_path):
    """Re-writing what was read gives MindSpore's own bytes (with and without CRC)."""
    for name, crc in (("adam_2steps.ckpt", False), ("adam_crc.ckpt", True)):
        original = _read(os.path.join(CKPTS, name))
        loaded = nn.load_checkpoint(os.path.join(CKPTS, name))
        out = tmp_path / name
        nn.save_checkpoint(loaded, str(out), crc_check=crc)
        assert out.read_bytes() == original


def test_writer_files_and_polyoptim_writer_agree(tmp_path):
    """polyoptim writes the same bytes as tools/mindspore_ckpt_writer.py, which MindSpore reads."""
    for name in ("polyoptim_writer.ckpt", "polyoptim_writer_crc.ckpt", "dtypes.ckpt"):
        path = os.path.join(CKPTS, name)
        loaded = nn.load_checkpoint(path)
        out = tmp_path / name
        nn.save_checkpoint(loaded, str(out), crc_check=name.endswith("_crc.ckpt"))
        assert out.read_bytes() == _read(path)


def test_save_appends_ckpt_suffix_and_append_dict(tmp_path):
    w = torch.nn.Parameter(torch.ones(2))
    opt = nn.Momentum([("w", w)], 0.1, 0.9)
    nn.save_checkpoint(opt, str(tmp_path / "m"), append_dict={"epoch_num": 3, "note": "hi"})
    loaded = nn.load_checkpoint(str(tmp_path / "m.ckpt"))
    assert list(loaded) == [
        "global_step",
        "learning_rate",
        "w",
        "momentum",
        "moments.w",
        "epoch_num",
        "note",
    ]
    assert loaded["epoch_num"].dtype == torch.int64 and loaded["note"] == "hi"
    only = nn.load_checkpoint(str(tmp_path / "m.ckpt"), specify_prefix="moment")
    assert list(only) == ["momentum", "moments.w"]
    rest = nn.load_checkpoint(str(tmp_path / "m.ckpt"), filter_prefix=["moment", "epoch"])
    assert "moments.w" not in rest and "epoch_num" not in rest


def test_saved_adam_matches_mindspore_checkpoint(tmp_path):
    """polyoptim's Adam after the two golden steps saves what MindSpore saved."""
    case = load("adam_base")
    opt, ps, names = build(case)
    for k in (1, 2):
        opt(step_grads(case, opt, names, k))
    nn.save_checkpoint(opt, str(tmp_path / "ours.ckpt"))
    ours = nn.load_checkpoint(str(tmp_path / "ours.ckpt"))
    theirs = nn.load_checkpoint(os.path.join(CKPTS, "adam_2steps.ckpt"))
    assert list(ours) == list(theirs)
    for name, value in theirs.items():
        assert ours[name].dtype == value.dtype and ours[name].shape == value.shape, name
        assert relerr(ours[name].double(), value.double().numpy()) <= 1e-6, name


def test_resume_from_mindspore_checkpoint():
    """Load MindSpore's Adam after 2 steps and continue: steps 3..12 equal MindSpore's."""
    case = load("adam_base")
    opt, ps, names = build(case)
    missing, unused = nn.load_param_into_net(
        opt, nn.load_checkpoint(os.path.join(CKPTS, "adam_2steps.ckpt"))
    )
    assert missing == [] and unused == []
    assert opt.global_step == 2
    for p, ref in zip(ps, trajectory(case, 2)):
        np.testing.assert_array_equal(p.detach().numpy(), ref)
    assert replay(case, opt, ps, names, first=3) <= 1e-5


OPTIMIZER_CASES = [
    c
    for c in all_cases("optimizer")
    if c.endswith(("_base", "_groups", "_lrlist", "_centered", "_momentum", "_amsgrad"))
    or c in ("adafactor_default", "adafactor_no_beta1", "asgd_t0", "sgd_plain", "sgd_dampening")
]


@pytest.mark.parametrize("name", OPTIMIZER_CASES)
def test_round_trip_resumes_exactly(name, tmp_path):
    """6 steps, save, load into a fresh optimizer, 6 more steps == 12 uninterrupted steps."""
    case = load(name)
    opt, ps, names = build(case)
    for k in range(1, 7):
        opt(step_grads(case, opt, names, k))
    path = str(tmp_path / "mid.ckpt")
    nn.save_checkpoint(opt, path, crc_check=True)
    fresh, fps, _ = build(case)
    missing, unused = nn.load_param_into_net(fresh, nn.load_checkpoint(path, crc_check=True))
    assert missing == [] and unused == []
    for k in range(7, n_steps(case) + 1):
        opt(step_grads(case, opt, names, k))
        fresh(step_grads(case, fresh, names, k))
    for a, b in zip(ps, fps):
        assert torch.equal(a, b), name


def test_split_tensors_are_joined(tmp_path, monkeypatch):
    """Tensors over the slice size are written as several same-tag values and read back whole."""
    monkeypatch.setattr(ckpt, "SLICE_BYTES", 16)
    big = torch.arange(30, dtype=torch.float32).reshape(5, 6)
    path = tmp_path / "split.ckpt"
    ckpt.write_checkpoint(path, [("big", big), ("b16", big.to(torch.bfloat16))], crc_check=True)
    data = path.read_bytes()
    assert data.count(b"\x0a\x03big") == 8  # 120 bytes in 16-byte slices
    loaded = nn.load_checkpoint(str(path), crc_check=True)
    assert torch.equal(loaded["big"], big) and torch.equal(loaded["b16"], big.to(torch.bfloat16))


# -- malformed files -----------------------------------------------------------------------------
def _adam():
    case = load("adam_base")
    opt, ps, names = build(case)
    for k in (1, 2, 3):
        opt(step_grads(case, opt, names, k))
    return opt


def _snapshot(opt):
    return {
        k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in opt.parameters_dict().items()
    }


def _unchanged(opt, snap):
    now = opt.parameters_dict()
    assert list(now) == list(snap)
    for k, v in snap.items():
        assert torch.equal(now[k], v), k


def _bad_files(tmp_path) -> dict[str, bytes]:
    good = _read(os.path.join(CKPTS, "adam_2steps.ckpt"))
    files = {
        "truncated": good[: len(good) * 2 // 3],
        "cut_in_varint": good[:1] + b"\xff",
        "garbage": b"\x00\x01\x02not a checkpoint",
        "pickle": b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00N.",
        "wrong_type": good.replace(b"Float32", b"Floa+32", 1),
        "short_content": good.replace(b"\x1a\x18\xb3", b"\x1a\x17\xb3", 1),
    }
    files["crc_corrupted"] = _read(os.path.join(CKPTS, "adam_crc_corrupted.ckpt"))
    return files


@pytest.mark.parametrize(
    "kind",
    [
        "truncated",
        "cut_in_varint",
        "garbage",
        "pickle",
        "wrong_type",
        "short_content",
        "crc_corrupted",
    ],
)
def test_malformed_files_are_refused_and_change_nothing(kind, tmp_path):
    data = _bad_files(tmp_path)[kind]
    path = tmp_path / f"{kind}.ckpt"
    path.write_bytes(data)
    opt = _adam()
    snap = _snapshot(opt)
    with pytest.raises(ValueError, match="Failed to read the checkpoint file"):
        nn.load_checkpoint(str(path), net=opt, crc_check=True)
    _unchanged(opt, snap)
    with pytest.raises(ckpt.CheckpointError):
        ckpt.decode(data, crc_check=True)


def test_shape_mismatch_is_refused_and_changes_nothing():
    opt = _adam()
    snap = _snapshot(opt)
    d = nn.load_checkpoint(os.path.join(CKPTS, "adam_2steps.ckpt"))
    d["moment2.fc.bias"] = torch.zeros(3)
    with pytest.raises(RuntimeError, match="should have the same shape"):
        nn.load_param_into_net(opt, d)
    _unchanged(opt, snap)


def test_missing_and_unused_names_are_reported():
    opt = _adam()
    d = nn.load_checkpoint(os.path.join(CKPTS, "adam_2steps.ckpt"))
    del d["moment1.fc.bias"]
    d["extra"] = torch.zeros(1)
    assert nn.load_param_into_net(opt, d) == (["moment1.fc.bias"], ["extra"])


def test_modules_load_by_name(tmp_path):
    model = torch.nn.Linear(2, 3)
    nn.save_checkpoint(model, str(tmp_path / "m.ckpt"))
    other = torch.nn.Linear(2, 3)
    assert nn.load_param_into_net(other, nn.load_checkpoint(str(tmp_path / "m.ckpt"))) == ([], [])
    assert torch.equal(other.weight, model.weight)


def test_unsupported_options():
    with pytest.raises(NotImplementedError):
        nn.load_checkpoint(os.path.join(CKPTS, "adam_2steps.ckpt"), dec_key=b"0" * 16)
    with pytest.raises(ValueError, match="does not exist"):
        nn.load_checkpoint(os.path.join(CKPTS, "nope.ckpt"))
