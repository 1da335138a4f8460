"""``polyoptim demo``'s dialect section: one network trained as a PyTorch user, a Paddle user and a
MindSpore user would write it, and resumed from checkpoint files the real Paddle and MindSpore
wrote.

The network is ``fc1 (64->128) -> norm (BatchNorm) -> ReLU -> fc2 (128->10)`` on the same
digits data, initial weights and minibatch order as the rest of the demo. Runs:

* ``torch AdamW``: ``torch.optim.AdamW`` with no-decay groups for biases and the norm, a
  ``LambdaLR`` warmup/linear-decay schedule, ``clip_grad_norm_(1.0)`` -- the torch baseline;
* ``Paddle AdamW``: :func:`polyoptim.demo_setups.paddle_setup` (PaddleNLP-style: name-based
  decay filter on ``p.name``, LambdaDecay, ClipGradByGlobalNorm, GradScaler) on the model after
  ``polyoptim.paddle.adopt``;
* ``MindSpore Momentum``: :func:`polyoptim.demo_setups.mindspore_setup` (model-zoo style:
  gamma/beta/bias filter on MindSpore names, lr list, dynamic loss scale,
  TrainOneStepWithLossScaleCell) after ``polyoptim.mindspore.adopt``;
* ``... resumed``: the same two set-ups, started from the files the real frameworks wrote after
  :data:`~polyoptim.demo_setups.RESUME_EPOCH` epochs of the same training (``paddle.save`` of
  the model and optimizer; MindSpore's ``save_checkpoint`` of the training cell), shipped in
  ``polyoptim/data``. Their curves start there and should lie on the dialect runs' curves.

Example:
    >>> from polyoptim.demo_dialects import run_dialects
    >>> results = run_dialects(["paddle"], epochs=1, progress=False)
    >>> [r.name for r in results]
    ['torch AdamW', 'Paddle AdamW']
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import numpy as np
import torch
from torch import nn

from . import demo_setups
from .demo import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DemoResult, _load_data, _threads

__all__ = ["DIALECTS", "DemoNet", "export_training_data", "run_dialects"]

DIALECTS = ("paddle", "mindspore")
HIDDEN = 128
#: package data written by tools/porting_demo_checkpoints.py with the real frameworks
DATA_FILES = {
    "paddle": ("demo_paddle.pdparams", "demo_paddle.pdopt"),
    "mindspore": ("demo_mindspore.ckpt",),
}


class DemoNet(nn.Module):
    """``fc1 -> norm -> ReLU -> fc2``; ``norm`` is a BatchNorm, so name-based decay filters
    (``"norm"``, ``gamma``/``beta``) have something to exclude."""

    def __init__(self, n_in: int = 64, hidden: int = HIDDEN, n_out: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.norm = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.norm(self.fc1(x))))


def _make_net(seed: int) -> DemoNet:
    torch.manual_seed(seed)
    return DemoNet()


def _orders(n: int, epochs: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randperm(n, generator=gen) for _ in range(epochs)]


def export_training_data(path: str, seed: int = 0, epochs: int = DEFAULT_EPOCHS) -> None:
    """Write what the checkpoint scripts need to train exactly as the demo does: the data,
    the initial weights (torch layout, ``state_dict`` keys) and every epoch's minibatch order.

    Used as ``python -c "from polyoptim.demo_dialects import export_training_data as e;
    e('demo_data.npz')"`` before tools/porting_demo_checkpoints.py.
    """
    x_train, y_train, x_test, y_test = _load_data()
    arrays = {
        "x_train": x_train.numpy(),
        "y_train": y_train.numpy(),
        "x_test": x_test.numpy(),
        "y_test": y_test.numpy(),
        "batch_size": np.array(DEFAULT_BATCH_SIZE),
        "resume_epoch": np.array(demo_setups.RESUME_EPOCH),
        "epochs": np.array(epochs),
    }
    for key, value in _make_net(seed).state_dict().items():
        arrays[f"init/{key}"] = value.numpy()
    for i, order in enumerate(_orders(x_train.shape[0], epochs, seed)):
        arrays[f"order{i}"] = order.numpy()
    np.savez_compressed(path, **arrays)


def _data_file(name: str) -> Any:
    return resources.files("polyoptim") / "data" / name


class _Run:
    """One training run: ``step(x, y)`` per minibatch, evaluated after each epoch; ``lr`` is
    its peak learning rate (for the table)."""

    def __init__(
        self, name: str, model: nn.Module, step: Callable[[Any, Any], None], lr: float
    ) -> None:
        self.name, self.model, self.step, self.lr = name, model, step, lr


def _torch_run(model: nn.Module, spe: int, epochs: int) -> _Run:
    decay = [p for n, p in model.named_parameters() if not any(k in n for k in ["bias", "norm"])]
    other = [p for n, p in model.named_parameters() if any(k in n for k in ["bias", "norm"])]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": other, "weight_decay": 0.0}], lr=3e-3
    )
    total, warmup = spe * epochs, spe
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
        ),
    )
    loss_fn = nn.CrossEntropyLoss()

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()

    return _Run("torch AdamW", model, step, 3e-3)


def _paddle_run(model: nn.Module, spe: int, epochs: int, resume: bool) -> _Run:
    from . import paddle

    with paddle.unique_name_guard():  # a fresh process's names, as in the Paddle files
        paddle.adopt(model)
    optimizer, lr_scheduler, scaler = demo_setups.paddle_setup(paddle, model, spe, epochs)
    name = "Paddle AdamW"
    if resume:
        pdparams, pdopt = (_data_file(f) for f in DATA_FILES["paddle"])
        model.set_state_dict(paddle.load(pdparams.open("rb")))
        optimizer.set_state_dict(paddle.load(pdopt.open("rb")))
        name += ", resumed from Paddle files"
    loss_fn = nn.CrossEntropyLoss()

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        loss = loss_fn(model(x), y)
        scaled = scaler.scale(loss)
        scaled.backward()
        scaler.minimize(optimizer, scaled)
        optimizer.clear_grad()
        lr_scheduler.step()

    return _Run(name, model, step, 3e-3)


def _mindspore_run(model: nn.Module, spe: int, epochs: int, resume: bool) -> _Run:
    from . import mindspore

    mindspore.adopt(model)
    opt, update_cell = demo_setups.mindspore_setup(mindspore, mindspore.amp, model, spe, epochs)
    loss_net = mindspore.WithLossCell(model, nn.CrossEntropyLoss())
    train_net = mindspore.TrainOneStepWithLossScaleCell(loss_net, opt, scale_sense=update_cell)
    name = "MindSpore Momentum"
    if resume:
        with resources.as_file(_data_file(DATA_FILES["mindspore"][0])) as path:
            mindspore.load_checkpoint(str(path), net=train_net)
        name += ", resumed from MindSpore .ckpt"
    train_net.set_train()

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        train_net(x, y)

    return _Run(name, model, step, max(demo_setups.mindspore_lr(spe, epochs)))


def run_dialects(
    dialects: Sequence[str] = DIALECTS,
    *,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    progress: bool = True,
    num_threads: int | None = None,
    resume: bool = True,
) -> list[DemoResult]:
    """Train :class:`DemoNet` as a torch, Paddle and MindSpore user would (module docstring).

    Args:
        dialects: which of ``"paddle"``, ``"mindspore"`` to run (the torch baseline always).
        epochs, batch_size, seed: as in :func:`polyoptim.demo.run_demo`.
        progress: a progress bar on stderr.
        num_threads: torch threads (default 1).
        resume: also run the resumed-from-checkpoint runs. The shipped files were written for
            the defaults (``seed=0``, 20 epochs -- the schedules span them -- and batches of
            64); with other settings these runs are skipped.

    Returns:
        One :class:`~polyoptim.demo.DemoResult` per run; a resumed run's ``losses`` are NaN
        before the epoch it starts from.

    Raises:
        ValueError: an unknown dialect name.
    """
    unknown = [d for d in dialects if d not in DIALECTS]
    if unknown:
        raise ValueError(f"unknown dialect {unknown[0]!r}; known: {', '.join(DIALECTS)}")
    x_train, y_train, x_test, y_test = _load_data()
    n = x_train.shape[0]
    spe = math.ceil(n / batch_size)
    orders = _orders(n, epochs, seed)
    start_at = demo_setups.RESUME_EPOCH
    can_resume = resume and seed == 0 and batch_size == DEFAULT_BATCH_SIZE and epochs > start_at
    plans: list[tuple[Callable[[nn.Module], _Run], int]] = [
        (lambda m: _torch_run(m, spe, epochs), 0)
    ]
    for d in dialects:
        builder = _paddle_run if d == "paddle" else _mindspore_run
        plans.append((lambda m, b=builder: b(m, spe, epochs, False), 0))
        if can_resume:
            plans.append((lambda m, b=builder: b(m, spe, epochs, True), start_at))
    loss_fn = nn.CrossEntropyLoss()

    from tqdm.auto import tqdm

    results = []
    with (
        torch.random.fork_rng(devices=[]),
        _threads(num_threads or 1),
        tqdm(total=len(plans), disable=not progress, unit="run", leave=False) as bar,
    ):
        for build, first_epoch in plans:
            begin = time.perf_counter()
            run = build(_make_net(seed))

            def evaluate(model: nn.Module = run.model) -> float:
                model.eval()
                with torch.no_grad():
                    value = float(loss_fn(model(x_train), y_train))
                model.train()
                return value

            losses = [math.nan] * first_epoch + [evaluate()]
            for epoch in range(first_epoch, epochs):
                for i in range(0, n, batch_size):
                    idx = orders[epoch][i : i + batch_size]
                    run.step(x_train[idx], y_train[idx])
                losses.append(evaluate())
            run.model.eval()
            with torch.no_grad():
                accuracy = float((run.model(x_test).argmax(1) == y_test).float().mean())
            results.append(
                DemoResult(
                    name=run.name,
                    losses=losses,
                    final_loss=losses[-1],
                    accuracy=accuracy,
                    seconds=time.perf_counter() - begin,
                    lr=run.lr,
                )
            )
            bar.update(1)
    return results
