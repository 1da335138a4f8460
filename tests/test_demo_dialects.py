"""``polyoptim demo``'s dialect section: the set-ups as Paddle and MindSpore users write them
train the network, the checkpoint files the real frameworks wrote (package data) load into the
adopted model and optimizers, and the run resumed from them follows the dialect's own run."""

from __future__ import annotations

import math
from importlib import resources

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

import torch  # noqa: E402

from polyoptim import (
    demo_setups,  # noqa: E402
    paddle,  # noqa: E402
)
from polyoptim import mindspore as ms  # noqa: E402
from polyoptim.cli import main  # noqa: E402
from polyoptim.demo_dialects import DemoNet, run_dialects  # noqa: E402

DATA = resources.files("polyoptim") / "data"


def test_dialect_runs_train() -> None:
    results = run_dialects(epochs=2, progress=False)
    assert [r.name for r in results] == ["torch AdamW", "Paddle AdamW", "MindSpore Momentum"]
    for r in results:
        assert len(r.losses) == 3 and all(math.isfinite(v) for v in r.losses)
        assert r.losses[-1] < 0.3 * r.losses[0] and r.accuracy > 0.8, r
    # the Paddle set-up is torch's AdamW recipe in Paddle's words: the same curve
    torch_run, paddle_run, _ = results
    assert paddle_run.losses == pytest.approx(torch_run.losses, rel=1e-3)


def test_paddle_files_load_into_the_adopted_model() -> None:
    with paddle.unique_name_guard():
        model = paddle.adopt(DemoNet())
    opt, sched, _ = demo_setups.paddle_setup(paddle, model, 23, 20)
    state = paddle.load((DATA / "demo_paddle.pdparams").open("rb"))
    assert model.set_state_dict(state) == ([], [])
    assert torch.equal(model.fc1.weight.detach(), state["fc1.weight"].t())
    assert torch.equal(model.norm.running_var, state["norm._variance"])
    opt.set_state_dict(paddle.load((DATA / "demo_paddle.pdopt").open("rb")))
    assert sched.last_epoch == demo_setups.RESUME_EPOCH * 23
    assert len(opt.state) == 6  # every parameter's moments, under its Paddle name


def test_mindspore_file_loads_into_the_training_cell() -> None:
    net = ms.adopt(DemoNet())
    opt, cell = demo_setups.mindspore_setup(ms, ms.amp, net, 23, 20)
    train = ms.TrainOneStepWithLossScaleCell(
        ms.WithLossCell(net, torch.nn.CrossEntropyLoss()), opt, scale_sense=cell
    )
    with resources.as_file(DATA / "demo_mindspore.ckpt") as path:
        loaded = ms.load_checkpoint(str(path))
        missing, unused = ms.load_param_into_net(train, loaded)
    assert missing == [] and unused == []
    assert opt.global_step == int(loaded["global_step"][0]) > 0
    assert torch.equal(net.norm.running_mean, loaded["norm.moving_mean"])


@pytest.mark.slow
def test_resumed_runs_follow_the_dialect_runs() -> None:
    """20 epochs: the runs resumed from the real frameworks' files after 5 epochs end within
    1% of the dialect runs' final loss (the frameworks' forward and backward passes differ in
    rounding, and their BatchNorm statistics slightly)."""
    by_name = {r.name: r for r in run_dialects(progress=False)}
    for dialect, resumed in [
        ("Paddle AdamW", "Paddle AdamW, resumed from Paddle files"),
        ("MindSpore Momentum", "MindSpore Momentum, resumed from MindSpore .ckpt"),
    ]:
        full, again = by_name[dialect], by_name[resumed]
        assert all(math.isnan(v) for v in again.losses[: demo_setups.RESUME_EPOCH])
        assert again.final_loss == pytest.approx(full.final_loss, rel=1e-2)


def test_cli_dialect_section(tmp_path, capsys) -> None:
    out = tmp_path / "demo.png"
    argv = ["demo", "--optimizers", "Adam", "--epochs", "1", "--out", str(out), "--quiet"]
    assert main([*argv, "--dialect", "mindspore"]) == 0
    text = capsys.readouterr().out
    assert "MindSpore Momentum" in text and "Paddle AdamW" not in text
    assert (tmp_path / "demo-dialects.png").read_bytes()[:4] == b"\x89PNG"
