"""polyoptim under torch.distributed on the CPU (gloo, 2 processes, 127.0.0.1): DDP,
ZeroRedundancyOptimizer and multi-process accelerate give torch.optim's numbers
(docs/compatibility.md).

Each worker trains the same model twice on the same per-rank batches -- once with a polyoptim
optimizer (the default path: the fused kernel), once with torch.optim's -- and writes what it got.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from distributed import spawn
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.nn.parallel import DistributedDataParallel as DDP

import polyoptim

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available"),
]

STEPS = 6


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.Tanh(), torch.nn.Linear(64, 4))


def batch(step: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 * step + rank)  # each rank its own data
    return torch.randn(8, 16, generator=g), torch.randn(8, 4, generator=g)


def optim_class(lib: str, name: str) -> type:
    return getattr(polyoptim if lib == "polyoptim" else torch.optim, name)


def train(net: torch.nn.Module, opt: torch.optim.Optimizer, rank: int, steps: range) -> None:
    for step in steps:
        x, y = batch(step, rank)
        opt.zero_grad()
        F.mse_loss(net(x), y).backward()
        opt.step()


def params(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


# -- DistributedDataParallel ----------------------------------------------------------------------
def ddp_worker(rank: int, world: int, out: Path, name: str, kw: dict, bucket_view: bool) -> None:
    got = {}
    for lib in ("polyoptim", "torch"):
        net = DDP(model(), gradient_as_bucket_view=bucket_view)
        opt = optim_class(lib, name)(net.parameters(), **kw)
        train(net, opt, rank, range(STEPS))
        got[lib] = params(net)
    torch.save(got, out / f"ddp-{rank}.pt")


@pytest.mark.parametrize(
    "name, kw, bucket_view",
    [
        ("Adam", dict(lr=1e-2, weight_decay=0.01), False),
        ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True), True),  # gradients are bucket views
    ],
)
def test_ddp_matches_torch_optim(tmp_path, name, kw, bucket_view):
    spawn(ddp_worker, tmp_path, name, kw, bucket_view)
    r0, r1 = (torch.load(tmp_path / f"ddp-{r}.pt") for r in range(2))
    for a, b in zip(r0["polyoptim"], r1["polyoptim"]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # the replicas stay identical
    for a, b in zip(r0["polyoptim"], r0["torch"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


# -- ZeroRedundancyOptimizer ----------------------------------------------------------------------
def zero_worker(rank: int, world: int, out: Path, bucket_view: bool) -> None:
    got: dict = {}
    kw = dict(lr=1e-2, weight_decay=0.01)
    for lib in ("polyoptim", "torch"):
        net = DDP(model())
        opt = ZeroRedundancyOptimizer(
            net.parameters(),
            optimizer_class=optim_class(lib, "AdamW"),
            parameters_as_bucket_view=bucket_view,
            **kw,
        )
        train(net, opt, rank, range(STEPS))
        got[lib] = params(net)
        if lib == "polyoptim":
            # the consolidated state dict restores a new ZeRO, which then trains on identically
            opt.consolidate_state_dict(to=0)
            if rank == 0:
                torch.save(opt.state_dict(), out / "zero-state.pt")
            dist.barrier()
            twin = DDP(model())
            twin.load_state_dict(net.state_dict())
            opt2 = ZeroRedundancyOptimizer(
                twin.parameters(),
                optimizer_class=polyoptim.AdamW,
                parameters_as_bucket_view=bucket_view,
                **kw,
            )
            opt2.load_state_dict(torch.load(out / "zero-state.pt"))
            train(net, opt, rank, range(STEPS, STEPS + 3))
            train(twin, opt2, rank, range(STEPS, STEPS + 3))
            got["continued"], got["resumed"] = params(net), params(twin)
    try:  # overlapping the step with DDP's all-reduce needs a torch functional optimizer
        ZeroRedundancyOptimizer(
            DDP(model()).parameters(), optimizer_class=polyoptim.AdamW, overlap_with_ddp=True
        )
    except ValueError as e:
        got["overlap_error"] = str(e)
    torch.save(got, out / f"zero-{rank}.pt")


@pytest.mark.parametrize("bucket_view", [False, True])
def test_zero_redundancy_optimizer_matches_torch_optim(tmp_path, bucket_view):
    spawn(zero_worker, tmp_path, bucket_view)
    r0, r1 = (torch.load(tmp_path / f"zero-{r}.pt") for r in range(2))
    for a, b in zip(r0["polyoptim"], r1["polyoptim"]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(r0["polyoptim"], r0["torch"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for r in (r0, r1):
        for a, b in zip(r["continued"], r["resumed"]):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert "requires using a functional optimizer" in r["overlap_error"]


# -- accelerate, 2 processes ----------------------------------------------------------------------
def accelerate_worker(rank: int, world: int, out: Path) -> None:
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)  # finds the torchrun environment and joins a gloo group
    got: dict = {"processes": acc.num_processes, "type": str(acc.distributed_type)}
    for lib in ("polyoptim", "torch"):
        m = model()
        net, opt = acc.prepare(m, optim_class(lib, "AdamW")(m.parameters(), lr=1e-2))
        for step in range(STEPS):
            x, y = batch(step, rank)
            opt.zero_grad()
            acc.backward(F.mse_loss(net(x), y))
            opt.step()
        got[lib] = params(net)
    torch.save(got, out / f"accelerate-{rank}.pt")


def test_accelerate_on_two_processes_matches_torch_optim(tmp_path):
    pytest.importorskip("accelerate", reason="accelerate is not installed (the compat extra)")
    spawn(accelerate_worker, tmp_path, init=False)
    r0, r1 = (torch.load(tmp_path / f"accelerate-{r}.pt") for r in range(2))
    assert r0["processes"] == 2 and "MULTI_CPU" in r0["type"]
    for a, b in zip(r0["polyoptim"], r1["polyoptim"]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(r0["polyoptim"], r0["torch"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
