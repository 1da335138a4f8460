"""polyoptim in the training frameworks (docs/compatibility.md): Hugging Face ``Trainer``,
Lightning, accelerate and timm's schedulers drive polyoptim optimizers with torch.optim's
numbers, and resume from their own checkpoints exactly.

The frameworks are the ``compat`` extra (``make parity`` installs it, and timm without its
torchvision requirement); each test skips, saying so, when its framework is missing. The
Trainer and Lightning tests are ``slow`` (their imports alone take seconds).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import polyoptim

MISSING = "not installed (pip install 'polyoptim[compat]'; `make parity` does)"


def need(module: str):
    return pytest.importorskip(module, reason=f"{module} {MISSING}")


def data(n: int = 48) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    return TensorDataset(x, x @ torch.randn(8, 1, generator=g) + 0.1)


def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))


def params(m: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in m.parameters()]


def assert_same(a: list[torch.Tensor], b: list[torch.Tensor], exact: bool = False) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if exact:
            torch.testing.assert_close(x, y, rtol=0, atol=0)
        else:
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


# -- Hugging Face Trainer -------------------------------------------------------------------------
class Regressor(torch.nn.Module):
    """A model as the Trainer expects one: keyword inputs in, ``{"loss": ...}`` out."""

    def __init__(self) -> None:
        super().__init__()
        self.net = net()

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net(x)
        return {"loss": F.mse_loss(out, labels), "logits": out}


class Rows(torch.utils.data.Dataset):
    def __init__(self) -> None:
        self.data = data()

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x, y = self.data[i]
        return {"x": x, "labels": y}


def hf_trainer(tmp_path, optimizer_cls: type, max_steps: int = 12, save_steps: int = 0, **kw):
    transformers = need("transformers")
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        max_steps=max_steps,
        learning_rate=1e-2,
        weight_decay=0.1,
        warmup_steps=2,
        lr_scheduler_type="linear",
        use_cpu=True,
        report_to="none",
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
    )
    return transformers.Trainer(
        model=Regressor(),
        args=args,
        train_dataset=Rows(),
        optimizer_cls_and_kwargs=(optimizer_cls, dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8)),
        **kw,
    )


@pytest.mark.slow  # importing transformers takes seconds
def test_hf_trainer_matches_torch_optim(tmp_path):
    ours = hf_trainer(tmp_path / "ours", polyoptim.AdamW)
    ours.train()
    ref = hf_trainer(tmp_path / "ref", torch.optim.AdamW)
    ref.train()
    assert isinstance(ours.optimizer.optimizer, polyoptim.AdamW)  # accelerate wraps it
    # the Trainer's decay / no-decay groups and its linear warmup schedule reached the optimizer
    assert [g["weight_decay"] for g in ours.optimizer.param_groups] == [0.1, 0.0]
    assert_same(params(ours.model), params(ref.model))


@pytest.mark.slow
def test_hf_trainer_resumes_from_its_checkpoint(tmp_path):
    whole = hf_trainer(tmp_path / "whole", polyoptim.AdamW, save_steps=6)
    whole.train()
    resumed = hf_trainer(tmp_path / "whole", polyoptim.AdamW)
    resumed.train(resume_from_checkpoint=str(tmp_path / "whole" / "checkpoint-6"))
    assert_same(params(resumed.model), params(whole.model), exact=True)


# -- Lightning ------------------------------------------------------------------------------------
def lightning_module(make_opt, scheduler: bool = True):
    L = need("lightning.pytorch")

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = net()

        def training_step(self, batch, _):
            x, y = batch
            return F.mse_loss(self.net(x), y)

        def configure_optimizers(self):
            opt = make_opt(self.parameters())
            if not scheduler:
                return opt
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
            return {"optimizer": opt, "lr_scheduler": sched}

    return Module()


def lightning_fit(module, max_epochs: int, tmp_path, ckpt_path=None):
    L = need("lightning.pytorch")
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, DataLoader(data(), batch_size=8), ckpt_path=ckpt_path)
    return trainer


@pytest.mark.slow  # importing lightning takes seconds
@pytest.mark.parametrize(
    "name, kw",
    [("Adam", dict(lr=1e-2, weight_decay=0.01)), ("LBFGS", dict(lr=0.5, max_iter=4))],
)
def test_lightning_matches_torch_optim(tmp_path, name, kw):
    """A scheduler-driven Adam, and LBFGS (Lightning passes its closure to ``step``)."""
    got = []
    for lib in (polyoptim, torch.optim):
        m = lightning_module(lambda ps, lib=lib: getattr(lib, name)(ps, **kw), name == "Adam")
        lightning_fit(m, 3, tmp_path)
        got.append(params(m))
    assert_same(*got)


@pytest.mark.slow
def test_lightning_resumes_from_its_checkpoint(tmp_path):
    def make(ps):
        return polyoptim.Adam(ps, lr=1e-2)

    whole = lightning_module(make)
    lightning_fit(whole, 4, tmp_path)
    first = lightning_module(make)
    trainer = lightning_fit(first, 2, tmp_path)
    trainer.save_checkpoint(tmp_path / "half.ckpt")
    resumed = lightning_module(make)
    lightning_fit(resumed, 4, tmp_path, ckpt_path=str(tmp_path / "half.ckpt"))
    assert_same(params(resumed), params(whole), exact=True)


# -- accelerate -----------------------------------------------------------------------------------
def accelerate_run(make_opt, tmp_path, save_at: int | None = None, load: bool = False):
    accelerate = need("accelerate")
    accelerate.state.AcceleratorState._reset_state(True)  # one Accelerator per run
    acc = accelerate.Accelerator(cpu=True, gradient_accumulation_steps=2)
    model = net()
    opt = make_opt(model.parameters())
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=4)
    loader = DataLoader(data(), batch_size=4)
    model, opt, loader, sched = acc.prepare(model, opt, loader, sched)
    if load:
        acc.load_state(str(tmp_path / "state"))
    for epoch in range(1 if load else 0, 2):  # the checkpoint is taken after epoch 0
        for x, y in loader:
            with acc.accumulate(model):
                acc.backward(F.mse_loss(model(x), y))
                if acc.sync_gradients:
                    acc.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                opt.zero_grad()
        if save_at == epoch:
            acc.save_state(str(tmp_path / "state"))
    return acc, opt, params(model)


def test_accelerate_matches_torch_optim(tmp_path):
    acc, opt, ours = accelerate_run(lambda ps: polyoptim.AdamW(ps, lr=1e-2), tmp_path)
    assert isinstance(opt.optimizer, polyoptim.AdamW)
    _, _, ref = accelerate_run(lambda ps: torch.optim.AdamW(ps, lr=1e-2), tmp_path)
    assert_same(ours, ref)


def test_accelerate_save_and_load_state(tmp_path):
    def make(ps):
        return polyoptim.AdamW(ps, lr=1e-2)

    _, _, whole = accelerate_run(make, tmp_path, save_at=0)
    _, _, resumed = accelerate_run(make, tmp_path, load=True)
    assert_same(resumed, whole, exact=True)


# -- timm schedulers ------------------------------------------------------------------------------
@pytest.fixture
def timm_scheduler(monkeypatch):
    """``timm.scheduler``. Its modules need only torch, but ``import timm`` imports torchvision,
    which PyPI has no wheel of for the CPU build of torch 2.13; then the package is loaded
    without running ``timm/__init__.py``."""
    try:
        return importlib.import_module("timm.scheduler")
    except Exception:  # no torchvision (ImportError), or one built for another torch
        pass
    spec = importlib.util.find_spec("timm") if "timm" not in sys.modules else None
    locations = spec.submodule_search_locations if spec is not None else None
    if not locations:
        pytest.skip(f"timm {MISSING}")
    for name in [m for m in sys.modules if m == "timm" or m.startswith("timm.")]:
        monkeypatch.delitem(sys.modules, name)  # what the failed import left
    pkg = types.ModuleType("timm")
    pkg.__path__ = list(locations)
    monkeypatch.setitem(sys.modules, "timm", pkg)
    return importlib.import_module("timm.scheduler")


def test_timm_schedulers_drive_polyoptim(timm_scheduler):
    def run(lib):
        model = net()
        opt = lib.SGD(model.parameters(), lr=0.1, momentum=0.9)
        cosine = timm_scheduler.CosineLRScheduler(
            opt, t_initial=5, warmup_t=2, warmup_lr_init=0.01, lr_min=1e-3
        )
        lrs, updates = [], 0
        for epoch in range(5):
            for x, y in DataLoader(data(), batch_size=16):
                opt.zero_grad()
                F.mse_loss(model(x), y).backward()
                opt.step()
                updates += 1
                cosine.step_update(updates)
            cosine.step(epoch + 1)
            lrs.append(opt.param_groups[0]["lr"])
        return lrs, params(model), cosine.state_dict()

    lrs, ours, state = run(polyoptim)
    ref_lrs, ref, ref_state = run(torch.optim)
    assert lrs == ref_lrs and len(set(lrs)) == len(lrs)  # the schedule moved polyoptim's lr
    assert state == ref_state
    assert_same(ours, ref)


def test_timm_scheduler_factory_and_plateau(timm_scheduler):
    model = net()
    opt = polyoptim.AdamW(model.parameters(), lr=1e-2)
    sched, epochs = timm_scheduler.create_scheduler_v2(
        opt, sched="step", num_epochs=6, decay_epochs=2, decay_rate=0.5
    )
    seen = []
    for epoch in range(epochs):
        seen.append(opt.param_groups[0]["lr"])
        sched.step(epoch + 1)
    assert seen == [1e-2, 1e-2, 5e-3, 5e-3, 2.5e-3, 2.5e-3]
    plateau = timm_scheduler.PlateauLRScheduler(opt, decay_rate=0.1, patience_t=0, mode="min")
    lr = opt.param_groups[0]["lr"]
    plateau.step(1, metric=1.0)
    plateau.step(2, metric=1.0)  # no improvement: decay
    assert opt.param_groups[0]["lr"] == pytest.approx(lr * 0.1)
