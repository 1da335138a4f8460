"""polyoptim.register_timm against timm's real registry and ``create_optimizer_v2``.

Runs where timm is installed. timm's package ``__init__`` imports its models and data
modules, which need torchvision; PyPI's torchvision does not load beside a CPU-only torch
wheel (``operator torchvision::nms does not exist``). timm's optimizer code itself needs
only ``timm.models.group_parameters`` and ``timm.layers.use_reentrant_ckpt``. So where
``import timm.optim`` fails for want of torchvision, the fixture loads ``timm.optim`` and
those two modules from timm's own files, without running the three package ``__init__``
files that pull in torchvision: everything under test is timm's shipped code.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch

import polyoptim
from polyoptim import mindspore as ms
from polyoptim import paddle as pd


def _timm_modules() -> list[str]:
    return [m for m in sys.modules if m == "timm" or m.startswith("timm.")]


def _timm_optim_without_torchvision(root: Path) -> types.ModuleType:
    """timm.optim from timm's files, with shells for the packages ``timm``, ``timm.layers``
    and ``timm.models`` holding the two names timm.optim imports from them."""
    for name in ("timm", "timm.layers", "timm.models"):
        shell = types.ModuleType(name)
        shell.__path__ = [str(root.joinpath(*name.split(".")[1:]))]
        sys.modules[name] = shell
    config = importlib.import_module("timm.layers.config")
    sys.modules["timm.layers"].use_reentrant_ckpt = config.use_reentrant_ckpt
    manipulate = importlib.import_module("timm.models._manipulate")
    sys.modules["timm.models"].group_parameters = manipulate.group_parameters
    return importlib.import_module("timm.optim")


@pytest.fixture(scope="module")
def timm_optim():
    spec = importlib.util.find_spec("timm")
    if spec is None:
        pytest.skip("timm is not installed")
    before = set(_timm_modules())
    try:
        module = importlib.import_module("timm.optim")
    except (ImportError, RuntimeError) as exc:
        if "torchvision" not in str(exc) and "nms" not in str(exc):
            raise
        for name in set(_timm_modules()) - before:  # what the failed import left
            del sys.modules[name]
        module = _timm_optim_without_torchvision(Path(spec.origin).parent)
    yield module
    for name in set(_timm_modules()) - before:
        del sys.modules[name]


@pytest.fixture
def registry(timm_optim):
    """A registry holding timm's defaults, so the test leaves timm's global one untouched."""
    from timm.optim import _optim_factory

    fresh = copy.copy(_optim_factory.default_registry)
    fresh._optimizers = dict(fresh._optimizers)  # names and aliases, as timm registered them
    fresh._foreach_defaults = set(fresh._foreach_defaults)
    return fresh


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))


def _names(model, group):
    ids = {id(p) for p in group["params"]}
    return [n for n, p in model.named_parameters() if id(p) in ids]


def test_every_polyoptim_name_is_registered(registry):
    names = polyoptim.register_timm(registry)
    assert names == [f"polyoptim.{n}" for n in polyoptim.list_optimizers()]
    assert set(names) <= set(registry.list_optimizers())
    info = registry.get_optimizer_info("polyoptim.adamw")
    assert info.opt_class is polyoptim.AdamW and info.has_betas and info.has_eps


def test_create_optimizer_v2_builds_polyoptim_adamw_with_timms_groups(registry):
    polyoptim.register_timm(registry)
    model = _model()
    opt = registry.create_optimizer(model, "polyoptim.adamw", lr=1e-3, weight_decay=0.05)
    assert type(opt) is polyoptim.AdamW
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 0.05]
    assert [len(g["params"]) for g in opt.param_groups] == [4, 2]  # biases, norm | weights
    ours = polyoptim.create_optimizer(_model(), "adamw", lr=1e-3, weight_decay=0.05)
    assert [len(g["params"]) for g in ours.param_groups] == [4, 2]  # the same convention


def test_the_global_registry_serves_create_optimizer_v2(timm_optim):
    from timm.optim import _optim_factory

    saved = dict(_optim_factory.default_registry._optimizers)
    try:
        polyoptim.register_timm()
        opt = timm_optim.create_optimizer_v2(_model(), "polyoptim.nadam", lr=1e-3)
        assert type(opt) is polyoptim.NAdam
    finally:
        _optim_factory.default_registry._optimizers.clear()
        _optim_factory.default_registry._optimizers.update(saved)


def test_dialect_optimizers_get_timms_groups_in_their_own_terms(registry):
    polyoptim.register_timm(registry)
    model = _model()
    opt = registry.create_optimizer(model, "polyoptim.paddle.momentum", lr=0.1, weight_decay=0.5)
    assert type(opt) is pd.Momentum
    assert opt.param_groups[0]["momentum"] == 0.9  # timm's momentum default (Paddle's too)
    before = model[2].weight.detach().clone(), model[2].bias.detach().clone()
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    torch.testing.assert_close(model[2].weight, before[0] - 0.1 * (1 + 0.5 * before[0]))
    torch.testing.assert_close(model[2].bias, before[1] - 0.1)

    opt = registry.create_optimizer(_model(), "polyoptim.mindspore.lamb", lr=0.01, weight_decay=0.1)
    assert type(opt) is ms.Lamb
    assert [g["weight_decay"] for g in opt.param_groups] == pytest.approx([0.0, 0.1])

    model = _model()
    model.pretrained_cfg = {"classifier": "2"}  # timm's layer grouping: trunk, then head "2"
    opt = registry.create_optimizer(model, "polyoptim.paddle.sgd", lr=0.1, layer_decay=0.5)
    assert type(opt) is pd.SGD  # timm's lr_scale became Paddle's group learning_rate scale
    scales = {n: g["learning_rate"] for g in opt.param_groups for n in _names(model, g)}
    assert scales == {
        "0.weight": 0.5,
        "0.bias": 0.5,
        "1.weight": 0.5,
        "1.bias": 0.5,
        "2.weight": 1.0,
        "2.bias": 1.0,
    }


def test_replace_torch_points_timms_own_names_at_polyoptim(registry):
    done = polyoptim.register_timm(registry, replace_torch=True)
    assert {"adam", "adamw", "sgd", "momentum", "nadam", "radamw", "rmsprop"} <= set(done)
    opt = registry.create_optimizer(_model(), "sgd", lr=0.1, weight_decay=1e-4)
    assert type(opt) is polyoptim.SGD
    assert opt.param_groups[0]["nesterov"] is True  # timm's "sgd" defaults are kept
    opt = registry.create_optimizer(_model(), "radamw", lr=1e-3)
    assert type(opt) is polyoptim.RAdam and opt.param_groups[0]["decoupled_weight_decay"]
    assert "nesterov" in done  # timm's alias of "sgd" follows it
    assert registry.get_optimizer_info("nesterov").opt_class is polyoptim.SGD


def test_a_class_in_place_of_a_name_fails_in_timm_and_works_in_polyoptim(timm_optim):
    with pytest.raises(AttributeError, match="has no attribute 'lower'"):
        timm_optim.create_optimizer_v2(_model(), opt=polyoptim.AdamW, lr=1e-3)
    opt = polyoptim.create_optimizer(_model(), polyoptim.AdamW, lr=1e-3, weight_decay=0.05)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 0.05]
