"""Run in 2 spawned processes (gloo, loopback) by ``test_fsdp2.py``: optimizers over FSDP2's
DTensor parameters, compared with torch.optim on the same sharded model, or with the same
optimizer on an unsharded copy of the model (the Paddle and MindSpore dialects)."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch_cases import ELEMENTWISE_NAMES, torch_has_fused

PATHS = {"default": {}, "foreach": {"foreach": True}, "forloop": {"foreach": False}}
EXTRA = {"SGD": {"momentum": 0.9}, "RMSprop": {"momentum": 0.5, "centered": True}}
STEPS = 3


def _model(mesh: Any | None, hidden: int = 7) -> torch.nn.Module:
    from torch.distributed.fsdp import fully_shard

    torch.manual_seed(0)
    # 7 and 5 rows: shards of unequal size (one rank holds more), as real models have
    m = torch.nn.Sequential(
        torch.nn.Linear(6, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 6 - hidden % 2)
    )
    if mesh is not None:
        fully_shard(m, mesh=mesh)
    return m


def _train(m: torch.nn.Module, opt: Any, steps: int = STEPS, closure: bool = False) -> None:
    for i in range(steps):
        # the same batch on every rank: FSDP's averaged gradient is then the unsharded one
        x = torch.randn(4, 6, generator=torch.Generator().manual_seed(i))

        def loss_fn(x: torch.Tensor = x) -> torch.Tensor:
            opt.zero_grad()
            loss = m(x).pow(2).sum()
            loss.backward()
            return loss

        if closure:
            opt.step(loss_fn)
        else:
            loss_fn()
            opt.step()


def _flat(m: torch.nn.Module) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    ts = [p.full_tensor() if isinstance(p, DTensor) else p for p in m.parameters()]
    return torch.cat([t.detach().flatten() for t in ts])


def _compare(make_ref: Callable, make_ours: Callable, mesh: Any, ref_sharded: bool) -> float:
    a, b = _model(mesh if ref_sharded else None), _model(mesh)
    _train(a, make_ref(list(a.parameters())))
    opt = make_ours(list(b.parameters()))
    _train(b, opt)
    if opt.state:
        from torch.distributed.tensor import DTensor

        for st in opt.state.values():
            for k, v in st.items():
                if isinstance(v, torch.Tensor) and v.numel() > 1 and not isinstance(v, DTensor):
                    raise AssertionError(f"state {k!r} of a DTensor parameter is not a DTensor")
    return float((_flat(a) - _flat(b)).abs().max())


def _cases() -> dict[str, tuple[Callable, Callable, bool]]:
    import polyoptim
    from polyoptim import mindspore as M
    from polyoptim import paddle as P

    cases: dict[str, tuple[Callable, Callable, bool]] = {}
    for name in ELEMENTWISE_NAMES:
        kw = {"lr": 0.01, **EXTRA.get(name, {})}
        theirs = getattr(torch.optim, name)
        ours = getattr(polyoptim, name)
        for path, flags in {**PATHS, "fused": {"fused": True}}.items():
            if path == "fused" and not torch_has_fused(name):
                continue

            def ref(ps, theirs=theirs, kw=kw, flags=flags):
                flags = {} if "fused" in flags else flags  # torch fuses only some on CPU
                return theirs(ps, **kw, **flags)

            cases[f"torch.{name}.{path}"] = (
                ref,
                lambda ps, ours=ours, kw=kw, flags=flags: ours(ps, **kw, **flags),
                # torch's Rprop cannot step a DTensor (a masked index_put_ has no sharding
                # strategy): compare with it on the unsharded model
                name != "Rprop",
            )
    cases["torch.Muon"] = (
        lambda ps: torch.optim.Muon([p for p in ps if p.dim() == 2], lr=0.01),
        lambda ps: polyoptim.Muon([p for p in ps if p.dim() == 2], lr=0.01),
        True,
    )
    for label, make in {
        "paddle.Adam": lambda ps: P.Adam(parameters=ps, learning_rate=0.01),
        "paddle.AdamW": lambda ps: P.AdamW(parameters=ps, learning_rate=0.01),
        "paddle.Momentum": lambda ps: P.Momentum(parameters=ps, weight_decay=0.01),
        "paddle.Lamb": lambda ps: P.Lamb(parameters=ps, learning_rate=0.01),
        "mindspore.Adam": lambda ps: M.Adam(ps, learning_rate=0.01),
        "mindspore.Momentum": lambda ps: M.Momentum(ps, 0.01, 0.9, weight_decay=0.01),
        "mindspore.RMSProp": lambda ps: M.RMSProp(ps, learning_rate=0.01),
        "mindspore.Lamb": lambda ps: M.Lamb(ps, learning_rate=0.01, weight_decay=0.01),
        "paddle.ClipGradByGlobalNorm": lambda ps: P.SGD(
            parameters=ps, learning_rate=0.1, grad_clip=P.ClipGradByGlobalNorm(0.05)
        ),
        "paddle.ClipGradByNorm": lambda ps: P.SGD(
            parameters=ps, learning_rate=0.1, grad_clip=P.ClipGradByNorm(0.05)
        ),
    }.items():
        cases[label] = (make, make, False)
    return cases


def _lbfgs(mesh: Any) -> dict[str, Any]:
    """LBFGS works on flat views of all gradients: as torch's, it steps evenly sharded
    parameters and fails as torch's fails on uneven shards."""
    import polyoptim

    out: dict[str, Any] = {}
    a, b = _model(mesh, hidden=8), _model(mesh, hidden=8)
    _train(a, torch.optim.LBFGS(a.parameters()), closure=True)
    _train(b, polyoptim.LBFGS(b.parameters()), closure=True)
    out["torch.LBFGS"] = float((_flat(a) - _flat(b)).abs().max())
    errors = []
    for lib in (torch.optim, polyoptim):
        m = _model(mesh)
        try:
            _train(m, lib.LBFGS(m.parameters()), closure=True)
            errors.append("stepped")
        except RuntimeError as e:
            errors.append(str(e).splitlines()[0])
    out["lbfgs.uneven"] = errors
    return out


def _dcp(mesh: Any, full: bool) -> float:
    """Save the optimizer state through ``torch.distributed.checkpoint.state_dict`` after 2
    steps, load it into a fresh optimizer and model, take 2 more steps: the result must be the
    uninterrupted 4-step run's."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    import polyoptim

    opts = StateDictOptions(full_state_dict=full)
    straight = _model(mesh)
    _train(straight, polyoptim.Adam(straight.parameters(), lr=0.01), steps=4)
    m = _model(mesh)
    opt = polyoptim.Adam(m.parameters(), lr=0.01)
    _train(m, opt, steps=2)
    msd, osd = get_model_state_dict(m, options=opts), get_optimizer_state_dict(m, opt, options=opts)
    m2 = _model(mesh)
    opt2 = polyoptim.Adam(m2.parameters(), lr=0.01)
    set_model_state_dict(m2, msd, options=opts)
    set_optimizer_state_dict(m2, opt2, osd, options=opts)
    for i in range(2, 4):  # the batches the straight run saw next
        x = torch.randn(4, 6, generator=torch.Generator().manual_seed(i))
        opt2.zero_grad()
        m2(x).pow(2).sum().backward()
        opt2.step()
    return float((_flat(straight) - _flat(m2)).abs().max())


def run(rank: int, world: int, port: int, queue: Any) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from torch.distributed.device_mesh import init_device_mesh

        mesh = init_device_mesh("cpu", (world,))
        results: dict[str, Any] = {}
        for label, (ref, ours, sharded) in _cases().items():
            try:
                results[label] = _compare(ref, ours, mesh, sharded)
            except Exception:
                results[label] = traceback.format_exc()
        try:
            results.update(_lbfgs(mesh))
        except Exception:
            results["torch.LBFGS"] = traceback.format_exc()
        for full in (False, True):
            try:
                results[f"dcp.full={full}"] = _dcp(mesh, full)
            except Exception:
                results[f"dcp.full={full}"] = traceback.format_exc()
        import polyoptim

        m = _model(mesh)
        try:
            _train(m, polyoptim.Adafactor(m.parameters()))
            results["adafactor"] = "stepped"
        except Exception as e:
            results["adafactor"] = f"{type(e).__name__}: {e}"
        if rank == 0:
            queue.put(results)
    finally:
        dist.destroy_process_group()
