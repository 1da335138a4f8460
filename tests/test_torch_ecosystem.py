"""The torch ecosystem on polyoptim optimizers: schedulers, SWA, GradScaler, hooks, state_dicts."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

import polyoptim

CONFIGS = [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, foreach=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, foreach=True)),
    ("Adam", dict(lr=0.01, fused=True)),
    ("AdamW", dict(lr=0.01)),
    ("Adamax", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01, decoupled_weight_decay=True, weight_decay=0.1)),
    ("RAdam", dict(lr=0.01)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("Adadelta", dict()),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ("Rprop", dict()),
    ("ASGD", dict(t0=2)),
]


def model_pair(seed: int = 0):
    torch.manual_seed(seed)
    a = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    return a, copy.deepcopy(a)


def batch(step: int):
    g = torch.Generator().manual_seed(step)
    return torch.randn(16, 4, generator=g), torch.randn(16, 2, generator=g)


def train_step(model, opt, step: int, scaler=None):
    x, y = batch(step)
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    if scaler is None:
        loss.backward()
        opt.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    return loss.item()


def assert_models_equal(a, b):
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pb, pa)


@pytest.mark.parametrize(("name", "kw"), CONFIGS, ids=lambda x: str(x))
def test_state_dict_cross_loads_both_ways(name, kw):
    """torch → polyoptim and polyoptim → torch, mid-training; training continues identically."""
    ma, mb = model_pair()
    ta, pb = (
        getattr(torch.optim, name)(ma.parameters(), **kw),
        getattr(polyoptim, name)(mb.parameters(), **kw),
    )
    for s in range(5):
        train_step(ma, ta, s)
        train_step(mb, pb, s)
    # swap: a polyoptim optimizer continues torch's run, a torch optimizer continues ours
    pa2 = getattr(polyoptim, name)(ma.parameters(), **kw)
    pa2.load_state_dict(copy.deepcopy(ta.state_dict()))
    tb2 = getattr(torch.optim, name)(mb.parameters(), **kw)
    tb2.load_state_dict(copy.deepcopy(pb.state_dict()))
    assert pa2.state_dict()["param_groups"] == ta.state_dict()["param_groups"]
    for s in range(5, 10):
        train_step(ma, pa2, s)
        train_step(mb, tb2, s)
    assert_models_equal(ma, mb)


def test_state_dict_saved_with_torch_save_round_trips(tmp_path):
    ma, mb = model_pair()
    opt = polyoptim.Adam(ma.parameters(), lr=0.01)
    for s in range(3):
        train_step(ma, opt, s)
    torch.save(opt.state_dict(), tmp_path / "opt.pt")
    torch_opt = torch.optim.Adam(ma.parameters(), lr=0.01)
    torch_opt.load_state_dict(torch.load(tmp_path / "opt.pt"))
    ref = copy.deepcopy(torch_opt.state_dict())
    assert ref["state"][0]["step"].item() == 3.0


def test_failed_load_state_dict_changes_nothing():
    m, _ = model_pair()
    opt = polyoptim.Adam(m.parameters(), lr=0.01)
    train_step(m, opt, 0)
    before = copy.deepcopy(opt.state_dict())
    bad = copy.deepcopy(before)
    bad["param_groups"][0]["params"] = bad["param_groups"][0]["params"][:-1]
    with pytest.raises(ValueError, match="doesn't match the size"):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for i in before["state"]:
        for k in before["state"][i]:
            torch.testing.assert_close(after["state"][i][k], before["state"][i][k])


SCHEDULERS = [
    ("StepLR", lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5)),
    ("MultiStepLR", lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [2, 5], 0.3)),
    ("ConstantLR", lambda o: torch.optim.lr_scheduler.ConstantLR(o, factor=0.5, total_iters=3)),
    ("LinearLR", lambda o: torch.optim.lr_scheduler.LinearLR(o, 0.2, 1.0, 4)),
    ("ExponentialLR", lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.8)),
    ("PolynomialLR", lambda o: torch.optim.lr_scheduler.PolynomialLR(o, 6, 2.0)),
    ("CosineAnnealingLR", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 5, 1e-4)),
    ("LambdaLR", lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 1 / (e + 1))),
    ("MultiplicativeLR", lambda o: torch.optim.lr_scheduler.MultiplicativeLR(o, lambda e: 0.9)),
    (
        "CosineAnnealingWarmRestarts",
        lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2),
    ),
    ("CyclicLR", lambda o: torch.optim.lr_scheduler.CyclicLR(o, 0.001, 0.1, step_size_up=3)),
    ("OneCycleLR", lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 0.1, total_steps=12)),
    (
        "SequentialLR",
        lambda o: torch.optim.lr_scheduler.SequentialLR(
            o,
            [
                torch.optim.lr_scheduler.LinearLR(o, 0.1, 1.0, 3),
                torch.optim.lr_scheduler.ExponentialLR(o, 0.9),
            ],
            milestones=[3],
        ),
    ),
    (
        "ChainedScheduler",
        lambda o: torch.optim.lr_scheduler.ChainedScheduler(
            [
                torch.optim.lr_scheduler.ConstantLR(o, 0.5, total_iters=2),
                torch.optim.lr_scheduler.ExponentialLR(o, 0.9),
            ]
        ),
    ),
]


@pytest.mark.parametrize(("sched_name", "make"), SCHEDULERS, ids=[s[0] for s in SCHEDULERS])
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_torch_lr_schedulers_drive_polyoptim(sched_name, make, opt_name):
    kw = dict(lr=0.05, momentum=0.9) if opt_name == "SGD" else dict(lr=0.05)
    ma, mb = model_pair()
    ta = getattr(torch.optim, opt_name)(ma.parameters(), **kw)
    pb = getattr(polyoptim, opt_name)(mb.parameters(), **kw)
    sa, sb = make(ta), make(pb)
    for s in range(12):
        train_step(ma, ta, s)
        train_step(mb, pb, s)
        sa.step()
        sb.step()
        assert sb.get_last_lr() == sa.get_last_lr()
    assert_models_equal(ma, mb)
    assert sb.state_dict().keys() == sa.state_dict().keys()


def test_reduce_lr_on_plateau():
    ma, mb = model_pair()
    ta, pb = torch.optim.SGD(ma.parameters(), lr=0.1), polyoptim.SGD(mb.parameters(), lr=0.1)
    sa = torch.optim.lr_scheduler.ReduceLROnPlateau(ta, patience=1, factor=0.5)
    sb = torch.optim.lr_scheduler.ReduceLROnPlateau(pb, patience=1, factor=0.5)
    for s, metric in enumerate([1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5]):
        train_step(ma, ta, s)
        train_step(mb, pb, s)
        sa.step(metric)
        sb.step(metric)
    assert pb.param_groups[0]["lr"] == ta.param_groups[0]["lr"] < 0.1
    assert_models_equal(ma, mb)


def test_swa_utils():
    ma, mb = model_pair()
    ta, pb = torch.optim.SGD(ma.parameters(), lr=0.1), polyoptim.SGD(mb.parameters(), lr=0.1)
    swa_a, swa_b = torch.optim.swa_utils.AveragedModel(ma), torch.optim.swa_utils.AveragedModel(mb)
    sa = torch.optim.swa_utils.SWALR(ta, swa_lr=0.05, anneal_epochs=3)
    sb = torch.optim.swa_utils.SWALR(pb, swa_lr=0.05, anneal_epochs=3)
    for s in range(8):
        train_step(ma, ta, s)
        train_step(mb, pb, s)
        swa_a.update_parameters(ma)
        swa_b.update_parameters(mb)
        sa.step()
        sb.step()
    assert_models_equal(swa_a, swa_b)
    assert pb.param_groups[0]["lr"] == ta.param_groups[0]["lr"]


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("Adam", dict(lr=0.01, fused=True)),
        ("AdamW", dict(lr=0.01, fused=True)),
        ("SGD", dict(lr=0.1, momentum=0.9, fused=True)),
        ("Adagrad", dict(lr=0.1, fused=True)),
        ("Adam", dict(lr=0.01)),
        ("RMSprop", dict(lr=0.01)),
    ],
    ids=str,
)
def test_grad_scaler(name, kw):
    """GradScaler unscales (inside the step for fused optimizers) and skips inf steps."""
    ma, mb = model_pair()
    ta = getattr(torch.optim, name)(ma.parameters(), **kw)
    pb = getattr(polyoptim, name)(mb.parameters(), **kw)
    assert getattr(pb, "_step_supports_amp_scaling", False) == bool(kw.get("fused"))
    sc_a = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    sc_b = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for s in range(6):
        if s == 3:  # poison one step: both must skip it and back off the scale
            for m in (ma, mb):
                m[0].weight.register_hook(lambda g: g * float("inf")).remove()
            x, y = batch(s)
            for m, o, sc in ((ma, ta, sc_a), (mb, pb, sc_b)):
                o.zero_grad()
                loss = torch.nn.functional.mse_loss(m(x), y)
                sc.scale(loss).backward()
                m[0].weight.grad[0, 0] = float("inf")
                sc.step(o)
                sc.update()
            continue
        train_step(ma, ta, s, sc_a)
        train_step(mb, pb, s, sc_b)
    assert sc_b.get_scale() == sc_a.get_scale() < 2.0**10
    assert_models_equal(ma, mb)
    for pa_, pb_ in zip(ma.parameters(), mb.parameters()):
        torch.testing.assert_close(pb_.grad, pa_.grad)


def test_hooks_run_in_torch_order():
    calls = []
    m, _ = model_pair()
    opt = polyoptim.SGD(m.parameters(), lr=0.1)
    handles = [
        polyoptim.register_optimizer_step_pre_hook(lambda o, a, k: calls.append("global-pre")),
        polyoptim.register_optimizer_step_post_hook(lambda o, a, k: calls.append("global-post")),
        opt.register_step_pre_hook(lambda o, a, k: calls.append("pre")),
        opt.register_step_post_hook(lambda o, a, k: calls.append("post")),
        opt.register_state_dict_pre_hook(lambda o: calls.append("sd-pre")),
        opt.register_state_dict_post_hook(lambda o, sd: {**sd, "extra": 1}),
        opt.register_load_state_dict_pre_hook(lambda o, sd: calls.append("load-pre")),
        opt.register_load_state_dict_post_hook(lambda o: calls.append("load-post")),
    ]
    try:
        train_step(m, opt, 0)
        sd = opt.state_dict()
        assert sd["extra"] == 1
        del sd["extra"]
        opt.load_state_dict(sd)
    finally:
        for h in handles:
            h.remove()
    assert calls == ["global-pre", "pre", "post", "global-post", "sd-pre", "load-pre", "load-post"]


def test_step_pre_hook_can_replace_arguments():
    w = torch.nn.Parameter(torch.ones(2))
    opt = polyoptim.SGD([w], lr=1.0)
    seen = []

    def closure():
        seen.append(1)
        return torch.tensor(0.0)

    opt.register_step_pre_hook(lambda o, a, k: (a, {"closure": closure}))
    w.grad = torch.ones(2)
    opt.step()
    assert seen == [1]
    torch.testing.assert_close(w.detach(), torch.zeros(2))


def test_named_parameters_and_param_names_in_state_dict():
    ma, mb = model_pair()
    ta = torch.optim.AdamW(ma.named_parameters(), lr=0.01)
    pb = polyoptim.AdamW(mb.named_parameters(), lr=0.01)
    train_step(ma, ta, 0)
    train_step(mb, pb, 0)
    assert pb.state_dict()["param_groups"] == ta.state_dict()["param_groups"]
    assert pb.state_dict()["param_groups"][0]["param_names"] == [
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
    ]


def test_param_groups_add_param_group_and_zero_grad():
    ma, mb = model_pair()
    groups = lambda m: [  # noqa: E731
        {"params": m[0].parameters(), "lr": 0.1},
        {"params": m[2].weight, "momentum": 0.5},
    ]
    ta = torch.optim.SGD(groups(ma), lr=0.01, momentum=0.9)
    pb = polyoptim.SGD(groups(mb), lr=0.01, momentum=0.9)
    ta.add_param_group({"params": [ma[2].bias], "lr": 0.3})
    pb.add_param_group({"params": [mb[2].bias], "lr": 0.3})
    for s in range(4):
        train_step(ma, ta, s)
        train_step(mb, pb, s)
    assert pb.state_dict()["param_groups"] == ta.state_dict()["param_groups"]
    assert_models_equal(ma, mb)
    pb.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in mb.parameters())
    pb.zero_grad()
    assert all(p.grad is None for p in mb.parameters())


def test_pickle_and_deepcopy_keep_training_identical():
    ma, mb = model_pair()
    opt = polyoptim.RMSprop(ma.parameters(), lr=0.01, momentum=0.9)
    train_step(ma, opt, 0)
    clone = pickle.loads(pickle.dumps(opt))
    assert isinstance(clone, polyoptim.RMSprop)
    assert clone.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    assert copy.deepcopy(opt).defaults == opt.defaults


def test_isinstance_and_names():
    for name in [
        "SGD",
        "Adam",
        "AdamW",
        "Adamax",
        "NAdam",
        "RAdam",
        "Adagrad",
        "Adadelta",
        "RMSprop",
        "Rprop",
        "ASGD",
    ]:
        cls = getattr(polyoptim, name)
        assert cls.__name__ == name
        assert issubclass(cls, torch.optim.Optimizer)
        assert issubclass(cls, polyoptim.Optimizer)


def test_closure_is_evaluated_with_grad_enabled():
    w = torch.nn.Parameter(torch.tensor([2.0]))
    opt = polyoptim.SGD([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w**2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 4.0
    torch.testing.assert_close(w.detach(), torch.tensor([1.6]))


@pytest.mark.parametrize(("name", "kw"), CONFIGS[::2] + CONFIGS[1:2], ids=str)
def test_unpickling_an_old_optimizer_fills_flags_like_torch(name, kw):
    """An optimizer pickled by an older version lacks newer flags and keeps ``step`` (and
    friends) as numbers: __setstate__ repairs it exactly as torch's does."""
    results = []
    for mod, model in zip((torch.optim, polyoptim), model_pair()):
        opt = getattr(mod, name)(model.parameters(), **kw)
        train_step(model, opt, 0)
        old = opt.__getstate__()
        for group in old["param_groups"]:
            for flag in (
                "foreach",
                "maximize",
                "differentiable",
                "capturable",
                "fused",
                "amsgrad",
                "decoupled_weight_decay",
                "nesterov",
                "centered",
            ):
                group.pop(flag, None)
        for st in old["state"].values():
            for k in ("step", "eta", "mu", "mu_product"):
                if k in st:
                    st[k] = float(st[k])
        opt.__setstate__(old)
        results.append(opt)
    ta, pb = results

    def flags(o):
        return [{k: v for k, v in g.items() if k != "params"} for g in o.param_groups]

    assert flags(pb) == flags(ta)
    for sa, sb in zip(ta.state.values(), pb.state.values()):
        assert list(sa) == list(sb)
        for k in sa:
            assert type(sa[k]) is type(sb[k])
            if torch.is_tensor(sa[k]):
                assert sa[k].dtype == sb[k].dtype
                torch.testing.assert_close(sb[k], sa[k])
