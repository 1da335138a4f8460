"""polyoptim.create_optimizer: names of every dialect, timm's groups, layer decay, errors."""

from __future__ import annotations

import pytest
import torch

import polyoptim
from polyoptim import mindspore as ms
from polyoptim import paddle as pd
from polyoptim.factory import param_groups


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)
        self.norm = torch.nn.LayerNorm(4)

    def forward(self, x):
        return self.norm(torch.relu(self.fc(x)))


class Net(torch.nn.Module):
    """An embedding-like first layer, a ModuleList of blocks, a head; a token parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.token = torch.nn.Parameter(torch.randn(4))
        self.embed = torch.nn.Linear(3, 4)
        self.blocks = torch.nn.ModuleList([Block(), Block()])
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x):
        h = self.embed(x) + self.token
        for b in self.blocks:
            h = b(h)
        return self.head(h)


def _net(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net()


def _names(model, group):
    ids = {id(p) for p in group["params"]}
    return sorted(n for n, p in model.named_parameters() if id(p) in ids)


def _set_grads(model, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=gen)


# -- names ---------------------------------------------------------------------------------------


def _public_optimizers(module, base):
    """Every public torch.optim.Optimizer subclass of a dialect but its base class."""
    return {
        name
        for name in module.__all__
        if isinstance(getattr(module, name), type)
        and issubclass(getattr(module, name), torch.optim.Optimizer)
        and getattr(module, name) is not base
    }


def test_every_optimizer_of_every_dialect_has_a_name():
    torch_names = _public_optimizers(polyoptim, polyoptim.Optimizer)
    paddle_names = _public_optimizers(pd, pd.Optimizer)
    ms_names = _public_optimizers(ms, ms.Optimizer) - {"LARS"}  # LARS wraps an optimizer
    # at least the classes each dialect had when the factory was written
    assert len(torch_names) >= 15 and len(paddle_names) >= 14 and len(ms_names) >= 16
    assert set(polyoptim.list_optimizers("torch")) == {n.lower() for n in torch_names}
    assert set(polyoptim.list_optimizers("paddle")) == {f"paddle.{n.lower()}" for n in paddle_names}
    assert set(polyoptim.list_optimizers("mindspore")) == {
        f"mindspore.{n.lower()}" for n in ms_names
    }
    total = len(torch_names) + len(paddle_names) + len(ms_names)
    assert len(polyoptim.list_optimizers()) == total
    for name in polyoptim.list_optimizers():
        dialect, _, cls_name = name.rpartition(".")
        module = {"": polyoptim, "paddle": pd, "mindspore": ms}[dialect]
        assert polyoptim.get_optimizer_class(name).__name__.lower() == cls_name
        assert getattr(module, polyoptim.get_optimizer_class(name).__name__) is (
            polyoptim.get_optimizer_class(name)
        )


def test_names_are_case_insensitive_and_torch_prefix_is_accepted():
    assert polyoptim.get_optimizer_class("AdamW") is polyoptim.AdamW
    assert polyoptim.get_optimizer_class("torch.SGD") is polyoptim.SGD
    assert polyoptim.get_optimizer_class("Paddle.RMSProp") is pd.RMSProp
    assert polyoptim.get_optimizer_class("mindspore.AdamWeightDecay") is ms.AdamWeightDecay


def test_unknown_name_suggests_close_ones():
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamww'; did you mean 'adamw'"):
        polyoptim.create_optimizer(torch.nn.Linear(2, 2), "adamww")
    with pytest.raises(ValueError, match="dialect must be one of"):
        polyoptim.list_optimizers("jax")


def test_a_class_is_accepted_in_place_of_its_name():
    opt = polyoptim.create_optimizer(torch.nn.Linear(2, 2), pd.Momentum, lr=0.1)
    assert type(opt) is pd.Momentum
    with pytest.raises(ValueError, match="not an optimizer polyoptim builds"):
        polyoptim.create_optimizer(torch.nn.Linear(2, 2), torch.optim.AdamW)


# -- groups --------------------------------------------------------------------------------------


def test_biases_and_1d_parameters_get_no_weight_decay():
    model = _net()
    groups = param_groups(model, 0.05)
    assert [g["weight_decay"] for g in groups] == [0.0, 0.05]
    assert _names(model, groups[0]) == sorted(
        ["token", "embed.bias", "head.bias"]
        + [f"blocks.{i}.{m}" for i in (0, 1) for m in ("fc.bias", "norm.weight", "norm.bias")]
    )
    assert _names(model, groups[1]) == sorted(
        ["embed.weight", "head.weight", "blocks.0.fc.weight", "blocks.1.fc.weight"]
    )


def test_no_decay_1d_off_decays_everything():
    model = _net()
    (group,) = param_groups(model, 0.05, no_decay_1d=False)
    assert group["weight_decay"] == 0.05 and len(group["params"]) == len(list(model.parameters()))


def test_no_weight_decay_patterns_and_the_models_own_list():
    model = _net()
    model.no_weight_decay = lambda: {"head.*"}  # timm models declare these
    groups = param_groups(model, 0.1, no_decay_1d=False, no_weight_decay=["embed.weight"])
    assert _names(model, groups[0]) == ["embed.weight", "head.bias", "head.weight"]
    assert "embed.weight" not in _names(model, groups[1])


def test_frozen_parameters_are_left_out():
    model = _net()
    model.embed.requires_grad_(False)
    opt = polyoptim.create_optimizer(model, "adamw", lr=1e-3, weight_decay=0.05)
    grouped = {id(p) for g in opt.param_groups for p in g["params"]}
    assert id(model.embed.weight) not in grouped
    assert len(grouped) == len(list(model.parameters())) - 2


def test_layer_decay_scales_by_depth_from_the_head():
    model = _net()
    groups = param_groups(model, 0.05, layer_decay=0.5)
    by_name = {n: g["lr_scale"] for g in groups for n in _names(model, g)}
    # layers: token, embed, blocks.0, blocks.1, head -> scales 0.5^4 ... 0.5^0
    assert by_name["token"] == 0.5**4
    assert by_name["embed.weight"] == by_name["embed.bias"] == 0.5**3
    assert by_name["blocks.0.fc.weight"] == by_name["blocks.0.norm.bias"] == 0.5**2
    assert by_name["blocks.1.fc.weight"] == 0.5
    assert by_name["head.weight"] == by_name["head.bias"] == 1.0
    assert len(groups) == 9  # token has no decayed parameter
    custom = param_groups(model, 0.0, layer_decay=0.1, layer_of=lambda n: 1 if "head" in n else 0)
    assert [len(g["params"]) for g in custom] == [len(list(model.parameters())) - 2, 2]
    assert [g["lr_scale"] for g in custom] == pytest.approx([0.1, 1.0])


def test_layer_decay_arguments_are_checked():
    model = _net()
    with pytest.raises(ValueError, match=r"layer_decay must be in \(0, 1\]"):
        polyoptim.create_optimizer(model, "adamw", lr=1e-3, layer_decay=1.5)
    with pytest.raises(ValueError, match="layer_of is only used with layer_decay"):
        param_groups(model, 0.1, layer_of=lambda n: 0)
    with pytest.raises(ValueError, match=r"need a torch.nn.Module"):
        polyoptim.create_optimizer(model.parameters(), "adamw", lr=1e-3, layer_decay=0.5)
    with pytest.raises(ValueError, match="no default learning rate"):
        polyoptim.create_optimizer(model, "mindspore.lamb", layer_decay=0.5)


# -- torch dialect -------------------------------------------------------------------------------


def test_torch_adamw_with_groups_matches_torch_optim_built_by_hand():
    ours, ref = _net(), _net()
    opt = polyoptim.create_optimizer(ours, "adamw", lr=1e-2, weight_decay=0.1, betas=(0.8, 0.9))
    decay = [p for n, p in ref.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in ref.named_parameters() if p.ndim <= 1]
    torch_opt = torch.optim.AdamW(
        [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": 0.1}],
        lr=1e-2,
        betas=(0.8, 0.9),
    )
    for step in range(3):
        _set_grads(ours, step)
        _set_grads(ref, step)
        opt.step()
        torch_opt.step()
    for p, q in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(ours.token, ref.token)  # no decay: a pure Adam step


def test_torch_layer_decay_sets_absolute_group_lr_and_keeps_lr_scale():
    model = _net()
    opt = polyoptim.create_optimizer(model, "sgd", lr=0.1, layer_decay=0.5)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx(
        [0.1 * 0.5**k for k in (4, 3, 2, 1, 0)]
    )
    assert [g["lr_scale"] for g in opt.param_groups] == [0.5**k for k in (4, 3, 2, 1, 0)]
    before = model.head.weight.detach().clone(), model.embed.weight.detach().clone()
    _set_grads(model)
    opt.step()
    torch.testing.assert_close(model.head.weight, before[0] - 0.1 * model.head.weight.grad)
    torch.testing.assert_close(model.embed.weight, before[1] - 0.0125 * model.embed.weight.grad)


def test_class_defaults_are_kept_when_nothing_is_asked():
    model = _net()
    opt = polyoptim.create_optimizer(model, "adam")
    ref = polyoptim.Adam(model.parameters())
    assert len(opt.param_groups) == 1
    assert {k: v for k, v in opt.param_groups[0].items() if k != "params"} == {
        k: v for k, v in ref.param_groups[0].items() if k != "params"
    }
    # AdamW's default weight decay (0.01) is split like a given one
    opt = polyoptim.create_optimizer(model, "adamw", lr=1e-3)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 0.01]


def test_weight_decay_for_an_optimizer_without_one_is_refused():
    model = torch.nn.Linear(3, 2)
    for name in ("lbfgs", "sparseadam", "paddle.rprop"):
        with pytest.raises(ValueError, match=f"{name} takes no weight decay"):
            polyoptim.create_optimizer(model, name, weight_decay=0.1)
    assert type(polyoptim.create_optimizer(model, "lbfgs", lr=0.5)) is polyoptim.LBFGS


def test_plain_parameters_and_torch_style_groups_are_passed_on():
    model = _net()
    opt = polyoptim.create_optimizer(list(model.parameters()), "rmsprop", lr=0.01, momentum=0.5)
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["momentum"] == 0.5
    groups = [{"params": [model.head.weight], "weight_decay": 0.2}, {"params": [model.head.bias]}]
    opt = polyoptim.create_optimizer(groups, "paddle.lamb", lr=0.01)
    assert opt.param_groups[0]["lamb_weight_decay"] == 0.2
    assert opt.param_groups[1]["lamb_weight_decay"] == 0.01  # Paddle Lamb's default


# -- Paddle dialect ------------------------------------------------------------------------------


def test_paddle_layer_decay_is_a_group_learning_rate_scale():
    model = _net()
    opt = polyoptim.create_optimizer(model, "paddle.sgd", lr=0.1, layer_decay=0.5)
    assert type(opt) is pd.SGD
    assert [g["learning_rate"] for g in opt.param_groups] == [0.5**k for k in (4, 3, 2, 1, 0)]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _set_grads(model)
    opt.step()
    for name, scale in (("head.weight", 1.0), ("blocks.0.fc.weight", 0.25), ("token", 0.0625)):
        p = dict(model.named_parameters())[name]
        torch.testing.assert_close(p, before[name] - 0.1 * scale * p.grad)


def test_paddle_weight_decay_is_coupled_l2_on_the_decayed_group_only():
    model = _net()
    opt = polyoptim.create_optimizer(model, "paddle.momentum", lr=0.1, weight_decay=0.5)
    assert type(opt) is pd.Momentum and opt.param_groups[0]["momentum"] == 0.9  # Paddle's default
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _set_grads(model)
    opt.step()  # first Momentum step: v = g (+ 0.5 p), p -= lr v
    w, b = model.head.weight, model.head.bias
    torch.testing.assert_close(
        w, before["head.weight"] - 0.1 * (w.grad + 0.5 * before["head.weight"])
    )
    torch.testing.assert_close(b, before["head.bias"] - 0.1 * b.grad)


def test_paddle_lamb_weight_decay_goes_to_lamb_weight_decay():
    model = _net()
    opt = polyoptim.create_optimizer(model, "paddle.lamb", lr=0.01, weight_decay=0.3)
    assert [g["lamb_weight_decay"] for g in opt.param_groups] == [0.0, 0.3]


# -- MindSpore dialect ---------------------------------------------------------------------------


def test_mindspore_layer_decay_is_an_absolute_group_lr():
    model = _net()
    opt = polyoptim.create_optimizer(
        model, "mindspore.sgd", lr=0.1, weight_decay=0.01, layer_decay=0.5
    )
    assert type(opt) is ms.SGD
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _set_grads(model)
    opt.step()
    named = dict(model.named_parameters())
    for name, scale, wd in (
        ("head.weight", 1.0, 0.01),
        ("embed.weight", 0.125, 0.01),
        ("embed.bias", 0.125, 0.0),
        ("token", 0.0625, 0.0),
    ):
        p, p0 = named[name], before[name]
        torch.testing.assert_close(p, p0 - 0.1 * scale * (p.grad + wd * p0), rtol=1e-6, atol=1e-7)


def test_mindspore_lamb_by_name_steps():
    model = _net()
    opt = polyoptim.create_optimizer(model, "mindspore.lamb", lr=0.01, weight_decay=0.01)
    assert type(opt) is ms.Lamb
    assert [g["weight_decay"] for g in opt.param_groups] == pytest.approx([0.0, 0.01])
    before = model.head.weight.detach().clone()
    _set_grads(model)
    opt.step()
    assert not torch.equal(model.head.weight, before)
