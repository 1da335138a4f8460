"""The Paddle dialect's API: arguments and their errors, methods, groups and ParamAttr, names in
``state_dict``, loading state safely, and the options the golden fixtures do not cover."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from kernel_calls import count_kernel_calls

import polyoptim
from polyoptim import paddle as P
from polyoptim.kernels import cpu_fused

# Paddle's messages, copied from paddle 3.3.1 (the live test checks them against Paddle itself)
ERRORS = [
    (lambda: P.SGD(0.1, parameters=None), AttributeError,
     "parameters argument given to the Optimizer should not be None in dygraph mode."),
    (lambda: P.SGD(0.1, parameters=torch.ones(2)), TypeError,
     "`parameters` argument given to the optimizer should be an iterable of paddle Tensors"),
    (lambda: P.SGD(0.1, parameters={"params": []}), TypeError,
     "`parameters` argument should not get dict type"),
    (lambda: P.SGD(1, parameters=[torch.nn.Parameter(torch.ones(1))]), TypeError,
     "learning rate should be float or LRScheduler, got <class 'int'> here"),
    (lambda: P.SGD(0.1, parameters=[torch.nn.Parameter(torch.ones(1))], grad_clip=1.0),
     TypeError, "'grad_clip' should be an instance of GradientClipBase's derived class"),
    (lambda: P.Adam(0.1, beta1=1.0, parameters=[torch.nn.Parameter(torch.ones(1))]),
     ValueError, "Invalid value of beta1, expect beta1 in [0,1)."),
    (lambda: P.Adam(0.1, beta2=-0.1, parameters=[torch.nn.Parameter(torch.ones(1))]),
     ValueError, "Invalid value of beta2, expect beta2 in [0,1)."),
    (lambda: P.Adamax(0.1, epsilon=-1.0, parameters=[torch.nn.Parameter(torch.ones(1))]),
     ValueError, "Invalid value of epsilon, expect epsilon >= 0."),
    (lambda: P.AdamW(0.1, weight_decay=P.L1Decay(0.1),
                     parameters=[torch.nn.Parameter(torch.ones(1))]),
     TypeError, "weight_decay should be int, float or Tensor."),
    (lambda: P.NAdam(-0.1, parameters=[torch.nn.Parameter(torch.ones(1))]), ValueError,
     "Invalid learning rate: -0.1, expect learning_rate >= 0."),
    (lambda: P.NAdam(momentum_decay=-1.0, parameters=[torch.nn.Parameter(torch.ones(1))]),
     ValueError, "Invalid momentum_decay value: -1.0, expect momentum_decay >= 0."),
    (lambda: P.RAdam(beta1=1.5, parameters=[torch.nn.Parameter(torch.ones(1))]), ValueError,
     "Invalid beta1: 1.5, expect 0. <= beta1 < 1.0."),
    (lambda: P.RMSProp(0.1, epsilon=-1.0, parameters=[torch.nn.Parameter(torch.ones(1))]),
     ValueError, "Invalid value of epsilon, expect epsilon >= 0."),
    (lambda: P.RMSProp(0.1, momentum=-1.0, parameters=[torch.nn.Parameter(torch.ones(1))]),
     ValueError, "Invalid value of momentum, expect momentum >= 0."),
    (lambda: P.ASGD(0.1, batch_num=0, parameters=[torch.nn.Parameter(torch.ones(1))]),
     ValueError, "batch_num should be greater than 0"),
    (lambda: P.Rprop(0.1, learning_rate_range=(0.2, 1.0),
                     parameters=[torch.nn.Parameter(torch.ones(1))]),
     ValueError, "'0.0 < learning_rate_range[0] <= learning_rate <= learning_rate_range[1]' "
     "must be true"),
    (lambda: P.Rprop(0.1, etas=(1.5, 1.2), parameters=[torch.nn.Parameter(torch.ones(1))]),
     ValueError, "'0.0 < etas[0] < 1.0 < etas[1]' must be true"),
    (lambda: P.lr.StepDecay(0.1, step_size=1.5), TypeError,
     "The type of 'step_size' must be 'int', but received <class 'float'>."),
    (lambda: P.lr.MultiStepDecay(0.1, milestones=[3, 2]), ValueError,
     "The elements of milestones must be incremented"),
    (lambda: P.lr.ReduceOnPlateau(0.1, mode="up"), ValueError, "mode: up is unknown!"),
    (lambda: P.lr.OneCycleLR(0.1, total_steps=10, phase_pct=1), TypeError,
     "'phase_pct' must be 'float', but received <class 'int'>"),
    (lambda: P.lr.CosineAnnealingWarmRestarts(0.1, T_0=0), ValueError,
     "Expected positive integer T_0, but got 0"),
]  # fmt: skip


@pytest.mark.parametrize("i", range(len(ERRORS)))
def test_errors(i: int) -> None:
    make, exc, message = ERRORS[i]
    with pytest.raises(exc, match=re.escape(message)):
        make()


def _w(*shape, value=1.0):
    return torch.nn.Parameter(torch.full(shape or (3,), value))


# -- methods -----------------------------------------------------------------------------------
def test_get_set_lr_and_scheduler() -> None:
    w = _w()
    opt = P.SGD(0.1, parameters=[w])
    assert opt.get_lr() == 0.1
    opt.set_lr(0.5)
    assert opt.get_lr() == 0.5
    with pytest.raises(TypeError, match="must be float"):
        opt.set_lr("0.1")
    sched = P.lr.MultiStepDecay(learning_rate=0.5, milestones=[2, 4, 6], gamma=0.8)
    opt.set_lr_scheduler(sched)
    assert opt.get_lr() == 0.5
    with pytest.raises(RuntimeError, match="can't be LRScheduler"):
        opt.set_lr(0.1)
    with pytest.raises(TypeError, match="must be LRScheduler"):
        opt.set_lr_scheduler(0.1)
    for _ in range(2):
        sched.step()
    assert opt.get_lr() == pytest.approx(0.4)
    w.grad = torch.ones(3)
    opt.step()  # the optimizer reads the scheduler at every step: lr 0.4 (rounded to float32)
    assert torch.allclose(w.detach(), torch.full((3,), 1 - np.float32(0.4)))


def test_clear_grad() -> None:
    w = _w()
    opt = P.SGD(0.1, parameters=[w])
    w.grad = torch.ones(3)
    opt.clear_grad()
    assert torch.equal(w.grad, torch.zeros(3))
    opt.clear_grad(set_to_zero=False)
    assert w.grad is None
    w.grad = torch.ones(3)
    opt.clear_gradients()
    assert torch.equal(w.grad, torch.zeros(3))
    assert isinstance(opt, torch.optim.Optimizer) and isinstance(opt, polyoptim.Optimizer)


def test_minimize() -> None:
    w, b = _w(), _w(value=2.0)
    opt = P.SGD(0.1, parameters=[("w", w), ("b", b)], weight_decay=P.L2Decay(1.0))
    loss = (w * 2).sum() + b.sum()
    ops, params_grads = opt.minimize(loss)  # no gradients yet: minimize runs backward
    assert ops == []
    assert [p for p, _ in params_grads] == [w, b]
    assert torch.allclose(params_grads[0][1], torch.full((3,), 3.0))  # 2 + L2 1.0 * w
    assert torch.allclose(w.detach(), torch.full((3,), 1 - 0.3))
    opt.clear_grad()
    loss = (w * 2).sum() + b.sum()
    loss.backward()  # Paddle's usual order: backward, then minimize uses these gradients
    _, params_grads = opt.minimize(loss, parameters=["b"])
    assert [p for p, _ in params_grads] == [b]
    assert torch.allclose(w.detach(), torch.full((3,), 0.7))
    opt.clear_grad()
    ((w * 2).sum() + b.sum()).backward()
    _, params_grads = opt.minimize(loss, no_grad_set={w})
    assert [p for p, _ in params_grads] == [b]


def test_append_regularization_ops() -> None:
    w, b = _w(value=2.0), _w(value=-1.0)
    P.set_param_attr(b, regularizer=P.L1Decay(0.5))
    opt = P.SGD(0.1, parameters=[w, b])
    g = torch.ones(3)
    out = opt.append_regularization_ops([(w, g), (b, g), (w, None)], P.L2Decay(0.1))
    assert torch.allclose(out[0][1], torch.full((3,), 1.2))
    assert torch.allclose(out[1][1], torch.full((3,), 0.5))  # b's own L1 wins
    assert out[2][1] is None
    assert torch.equal(g, torch.ones(3))


def test_base_optimizer_cannot_step() -> None:
    w = _w()
    opt = P.Optimizer(0.1, parameters=[w])
    w.grad = torch.ones(3)
    with pytest.raises(NotImplementedError, match="cannot be used directly"):
        opt.step()


def test_lbfgs_minimize_is_refused() -> None:
    opt = P.LBFGS(parameters=[_w()])
    with pytest.raises(NotImplementedError, match="does not use this way"):
        opt.minimize(torch.ones(()))


# -- names in state_dict -----------------------------------------------------------------------
def _stepped(opt, *params):
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    return opt.state_dict()


def test_state_names() -> None:
    a, b, c = _w(), _w(), _w()
    P.ParamAttr(name="fc.w_0").apply(b)
    sd = _stepped(P.Momentum(0.1, parameters=[a, b, c]), a, b, c)
    assert list(sd) == ["param_0_velocity_0", "fc.w_0_velocity_0", "param_2_velocity_0"]
    lin = torch.nn.Linear(2, 2)
    opt = P.Adam(0.1, parameters=lin.named_parameters(), amsgrad=True, name="opt")
    sd = _stepped(opt, lin.weight, lin.bias)
    assert list(sd) == [
        "weight_opt_moment1_0", "bias_opt_moment1_0", "weight_opt_moment2_0",
        "bias_opt_moment2_0", "weight_opt_moment2_max_0", "bias_opt_moment2_max_0",
        "weight_opt_beta1_pow_acc_0", "bias_opt_beta1_pow_acc_0", "weight_opt_beta2_pow_acc_0",
        "bias_opt_beta2_pow_acc_0",
    ]  # fmt: skip
    assert sd["weight_opt_beta1_pow_acc_0"].shape == (1,)
    assert float(sd["weight_opt_beta1_pow_acc_0"]) == pytest.approx(0.81)  # beta^(t+1)
    sched = P.lr.StepDecay(0.1, step_size=2)
    sd = _stepped(P.NAdam(sched, parameters=[a]), a)
    assert list(sd) == [
        "param_0_momentum_decay_pow_0", "param_0_beta2_pow_0", "param_0_mu_product_0",
        "param_0_moment1_0", "param_0_moment2_0", "LR_Scheduler",
    ]  # fmt: skip
    assert sd["param_0_beta2_pow_0"].shape == a.shape  # per element, as Paddle stores it
    assert sd["LR_Scheduler"] == {"last_epoch": 0, "last_lr": 0.1}
    with pytest.raises(ValueError, match="both named"):
        P.SGD(0.1, parameters=[("x", a), ("x", b)])


def _adam_pair():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(4, 3))
    opt = P.Adam(P.lr.ExponentialDecay(0.1, 0.9), parameters=[("w", w)])
    return w, opt


def _train(w, opt, steps, seed=1):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        w.grad = torch.randn(w.shape, generator=gen)
        opt.step()
        opt.clear_grad()
        opt._learning_rate.step()


def test_set_state_dict_resumes_and_accepts_any_suffix() -> None:
    w_ref, opt_ref = _adam_pair()
    _train(w_ref, opt_ref, 3)
    _train(w_ref, opt_ref, 2, seed=2)
    w, opt = _adam_pair()
    _train(w, opt, 3)
    sd = {re.sub(r"_0$", "_7", k): v for k, v in opt.state_dict().items()}
    numpy_sd = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in sd.items()}
    w2, opt2 = _adam_pair()
    with torch.no_grad():
        w2.copy_(w)
    opt2.set_state_dict(numpy_sd)
    _train(w2, opt2, 2, seed=2)
    assert torch.equal(w2, w_ref)
    assert opt2.load_state_dict == opt2.set_state_dict


def test_set_state_dict_checks_before_changing_anything() -> None:
    w, opt = _adam_pair()
    _train(w, opt, 2)
    before = {
        k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in opt.state_dict().items()
    }
    good = opt.state_dict()

    def unchanged():
        after = opt.state_dict()
        assert after["LR_Scheduler"] == before["LR_Scheduler"]
        assert all(torch.equal(after[k], v) for k, v in before.items() if k != "LR_Scheduler")

    missing = {k: v for k, v in good.items() if "moment2" not in k}
    missing["LR_Scheduler"] = {"last_epoch": 9, "last_lr": 9.0}
    with pytest.raises(AssertionError, match="w_moment2_0 not found"):
        opt.set_state_dict(missing)
    unchanged()
    shaped = dict(
        good, w_moment1_0=torch.zeros(3, 4), LR_Scheduler={"last_epoch": 9, "last_lr": 9.0}
    )
    with pytest.raises(AssertionError, match="Variable Shape not match"):  # Paddle's error
        opt.set_state_dict(shaped)
    unchanged()
    with pytest.raises(AssertionError, match="LR_Scheduler state must be included"):
        opt.set_state_dict({k: v for k, v in good.items() if k != "LR_Scheduler"})
    unchanged()
    with pytest.raises(RuntimeError, match="Can't find \\[ last_lr \\]"):
        opt.set_state_dict(dict(good, LR_Scheduler={"last_epoch": 3}))
    unchanged()
    with pytest.raises(TypeError):
        opt.set_state_dict(dict(good, w_moment1_0="not a tensor"))
    unchanged()


def test_per_element_state_must_be_uniform() -> None:
    a = _w()
    opt = P.RAdam(0.1, parameters=[a])
    sd = _stepped(opt, a)
    sd["param_0_rho_0"] = torch.tensor([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="different values per element"):
        opt.set_state_dict(sd)


# -- groups and ParamAttr ----------------------------------------------------------------------
def test_group_keys_override_defaults() -> None:
    a, b = _w(), _w()
    opt = P.Momentum(
        0.1, momentum=0.9, parameters=[{"params": [a], "momentum": 0.0, "use_nesterov": True},
                                       {"params": [b]}],
    )  # fmt: skip
    for _ in range(2):
        _stepped(opt, a, b)
    assert torch.allclose(a.detach(), torch.full((3,), 1 - 0.2))  # plain SGD
    assert torch.allclose(b.detach(), torch.full((3,), 1 - 0.1 - 0.19))
    with pytest.raises(ValueError, match="more than one parameter group"):
        P.SGD(0.1, parameters=[{"params": [a]}, {"params": [a]}])
    with pytest.raises(TypeError, match="ordered collections"):
        P.SGD(0.1, parameters=[{"params": {a}}])


def test_group_grad_clip_is_per_group() -> None:
    """With groups, each group's global norm is its own (Paddle clips group by group)."""
    a, b = _w(value=0.0), _w(value=0.0)
    clip = P.ClipGradByGlobalNorm(1.0)
    opt = P.SGD(1.0, parameters=[{"params": [a]}, {"params": [b]}], grad_clip=clip)
    a.grad = torch.full((3,), 3.0)
    b.grad = torch.full((3,), 4.0)
    opt.step()
    norm = 1 / np.sqrt(3)
    assert torch.allclose(a.detach(), torch.full((3,), -norm))
    assert torch.allclose(b.detach(), torch.full((3,), -norm))


def _attr_params():
    """a (no ParamAttr), b and c (ParamAttr: lr scale 3, L1Decay(0.5))."""
    a, b, c = _w(), _w(value=2.0), _w(value=-1.0)
    for p in (b, c):
        P.set_param_attr(p, learning_rate=3.0, regularizer=P.L1Decay(0.5))
    return a, b, c


_GROUPS = ({"learning_rate": 0.5, "weight_decay": 0.2}, {})
_GRADS = (3.0, 4.0, -2.0)


def _run_groups(make, added: bool) -> list[torch.Tensor]:
    """3 steps with gradients (3, 4, -2) on a, b, c; b and c in groups given to the
    constructor after ``a``'s, or added later to an optimizer built from a plain list."""
    a, b, c = _attr_params()
    groups = [{"params": [p], **kw} for p, kw in zip((b, c), _GROUPS)]
    if added:
        opt = make([a])
        for group in groups:
            opt.add_param_group(group)
    else:
        opt = make([{"params": [a]}, *groups])
    for _ in range(3):
        for p, g in zip((a, b, c), _GRADS):
            p.grad = torch.full((3,), g)
        opt.step()
    return [p.detach().clone() for p in (a, b, c)]


def test_add_param_group_follows_paddle_group_rules() -> None:
    """A group added to an optimizer built from a plain list follows Paddle's group rules
    (``_add_param_group``): its ``learning_rate`` scale and ``weight_decay`` (default: the
    optimizer's) replace its tensors' ParamAttr, and its ``grad_clip`` sees its own gradients
    only -- exactly as if the group had been given to the constructor."""
    clip = P.ClipGradByGlobalNorm(5.0)
    for make in (
        lambda ps: P.SGD(0.1, parameters=ps, weight_decay=0.1, grad_clip=clip),
        lambda ps: P.Adam(0.1, parameters=ps, weight_decay=P.L2Decay(0.1), grad_clip=clip),
        lambda ps: P.RMSProp(0.1, parameters=ps, weight_decay=0.1, momentum=0.9),
        lambda ps: P.AdamW(0.1, parameters=ps, weight_decay=0.1, grad_clip=clip),
    ):
        added, given = _run_groups(make, True), _run_groups(make, False)
        for x, y in zip(added[1:], given[1:]):
            assert torch.equal(x, y)
    # closed form for SGD: each tensor's own norm is below 5 except b's (4·√3), clipped alone
    a, b, c = _run_groups(lambda ps: P.SGD(0.1, parameters=ps, weight_decay=0.1, grad_clip=clip),
                          True)  # fmt: skip
    wa, wb, wc = 1.0, 2.0, -1.0
    sb = 5.0 / float(np.sqrt(3 * 16.0))
    for _ in range(3):
        wb = wb - np.float32(0.1 * 0.5) * (4.0 * sb + 0.2 * wb)  # group: scale 0.5, L2 0.2
        wc = wc - 0.1 * (-2.0 + 0.1 * wc)  # group defaults: scale 1, the optimizer's L2 0.1
    assert torch.allclose(b, torch.full((3,), wb)) and torch.allclose(c, torch.full((3,), wc))
    # the plain-list tensor keeps the plain-list rules (here: no ParamAttr, optimizer's L2 0.1;
    # the optimizer's clip on the plain-list group's own norm, 3·√3 > 5)
    sa = 5.0 / float(np.sqrt(3 * 9.0))
    for _ in range(3):
        wa = wa - 0.1 * (3.0 * sa + 0.1 * wa)
    assert torch.allclose(a, torch.full((3,), wa))
    # ... and keeps its ParamAttr: scale 3 and L1Decay(0.5) instead of the optimizer's decay
    a, b = _attr_params()[1], _w()
    opt = P.SGD(0.1, parameters=[a], weight_decay=0.1)
    opt.add_param_group({"params": [b]})
    _stepped(opt, a, b)
    assert torch.allclose(a.detach(), torch.full((3,), 2.0 - 0.3 * (1.0 + 0.5)))
    assert torch.allclose(b.detach(), torch.full((3,), 1.0 - 0.1 * (1.0 + 0.1)))
    assert opt.state_dict() == {}  # SGD keeps no state
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(TypeError, match="ordered collections"):
        opt.add_param_group({"params": {_w()}})


def test_need_clip_and_clip_call() -> None:
    a, b = _w(), _w()
    P.set_param_attr(b, need_clip=False)
    clip = P.ClipGradByNorm(1.0)
    out = clip([(a, torch.full((3,), 2.0)), (b, torch.full((3,), 2.0)), (a, None)])
    assert len(out) == 2
    assert torch.allclose(out[0][1].norm(), torch.tensor(1.0))
    assert torch.equal(out[1][1], torch.full((3,), 2.0))
    assert "clip_norm=1.0" in str(clip)
    with pytest.raises(AssertionError):
        P.ClipGradByValue(-1.0)


def test_param_attr_trainable_and_named() -> None:
    w = _w()
    P.ParamAttr(name="frozen", trainable=False).apply(w)
    assert not w.requires_grad
    assert P.param_attr(w).name == "frozen"
    P.set_param_attr(w, learning_rate=3, regularizer=0.5)
    assert P.param_attr(w).learning_rate == 3.0
    assert isinstance(P.param_attr(w).regularizer, P.L2Decay)
    assert P.param_attr(_w()).learning_rate == 1.0


# -- options -----------------------------------------------------------------------------------
def test_weight_decay_forms_agree() -> None:
    """weight_decay as float, int, L2Decay and a one-element Tensor are the same L2 decay."""
    results = []
    for wd in (0.5, P.L2Decay(0.5), torch.tensor([0.5]), torch.tensor(0.5)):
        w = _w()
        _stepped(P.Adam(0.1, parameters=[w], weight_decay=wd), w)
        results.append(w.detach().clone())
    assert all(torch.equal(r, results[0]) for r in results)
    w = _w()
    _stepped(P.SGD(1.0, parameters=[w], weight_decay=1), w)
    assert torch.allclose(w.detach(), torch.full((3,), -1.0))


def test_adamw_lr_ratio_scales_lr_and_decay() -> None:
    """lr_ratio (refused by Paddle on CPU) scales the learning rate of the decay and the
    update: AdamW(lr, ratio r) equals AdamW(lr * r)."""
    w1, w2 = _w(), _w()
    o1 = P.AdamW(0.1, parameters=[w1], weight_decay=0.1, lr_ratio=lambda p: 0.5)
    o2 = P.AdamW(0.05, parameters=[w2], weight_decay=0.1)
    for _ in range(3):
        _stepped(o1, w1)
        _stepped(o2, w2)
    assert torch.allclose(w1, w2, rtol=1e-6)


def test_multi_precision_adam_bf16() -> None:
    w = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
    opt = P.Adam(1e-4, parameters=[("w", w)], multi_precision=True)
    for g in opt.param_groups:
        g["fused"] = False  # the eager kernel (pins what is tested here)
    for _ in range(3):
        _stepped(opt, w)
    sd = opt.state_dict()
    master = sd["master_weights"]["w"]
    assert master.dtype == torch.float32
    assert master[0].item() == pytest.approx(1 - 3e-4, rel=1e-3)  # small steps kept in fp32
    assert torch.equal(w.detach(), master.to(torch.bfloat16))
    assert sd["w_fp32_master_0_moment1_0"].dtype == torch.float32


def test_use_multi_tensor_runs_the_foreach_kernel() -> None:
    a, b = _w(), _w()
    opt = P.Adam(0.1, parameters=[a, b], use_multi_tensor=True)
    assert all(g["foreach"] for g in opt.param_groups)
    ref = _w()
    ref_opt = P.Adam(0.1, parameters=[ref])
    _stepped(opt, a, b)
    _stepped(ref_opt, ref)
    assert torch.allclose(a, ref) and torch.allclose(b, ref)


@pytest.mark.skipif(not cpu_fused.available(), reason="needs Numba")
@pytest.mark.parametrize(
    "make",
    [
        lambda ps: P.Adam(0.1, parameters=ps),
        lambda ps: P.Momentum(0.1, parameters=ps),
        lambda ps: P.AdamW(0.1, parameters=ps),
        lambda ps: P.ASGD(0.1, batch_num=2, parameters=ps),
    ],
    ids=["Adam", "Momentum", "AdamW", "ASGD"],
)
def test_without_use_multi_tensor_the_engine_picks_the_fused_kernel(make) -> None:
    """``use_multi_tensor=False`` (the default) does not ask for torch's for-loop, and ASGD's
    row of the gradient table is no reason to step by hand: like every other element-wise
    optimizer of the dialect, the CPU step launches the fused kernel when Numba is there."""
    a, b = _w(), _w()
    opt = make([a, b])
    with count_kernel_calls() as calls:
        _stepped(opt, a, b)
    assert calls["launch"]


def test_lazy_mode_touches_only_present_rows() -> None:
    emb_lazy = torch.nn.Embedding(5, 2, sparse=True)
    emb_dense = torch.nn.Embedding(5, 2, sparse=True)
    emb_dense.load_state_dict(emb_lazy.state_dict())
    lazy = P.Adam(0.1, parameters=emb_lazy.parameters(), lazy_mode=True)
    dense = P.Adam(0.1, parameters=emb_dense.parameters(), lazy_mode=False)
    start = emb_lazy.weight.detach().clone()
    for ids in ([1, 3], [1], [3, 4]):
        for emb, opt in ((emb_lazy, lazy), (emb_dense, dense)):
            emb(torch.tensor(ids)).sum().backward()
            opt.step()
            opt.clear_grad()
    assert torch.equal(emb_lazy.weight[[0, 2]], start[[0, 2]])  # never looked up: untouched
    assert torch.equal(emb_dense.weight[[0, 2]], start[[0, 2]])  # zero moments: no move
    assert not torch.allclose(emb_lazy.weight[1], emb_dense.weight[1])  # lazy skipped step 3
    assert not torch.allclose(emb_lazy.weight[3], emb_dense.weight[3])  # lazy skipped step 2
    with pytest.raises(RuntimeError, match="don't support weight_decay with sparse"):
        o = P.Adam(0.1, parameters=emb_lazy.parameters(), weight_decay=0.1)
        emb_lazy(torch.tensor([1])).sum().backward()
        o.step()


def test_tensor_betas_and_epsilon() -> None:
    w1, w2 = _w(), _w()
    o1 = P.Adam(0.1, beta1=torch.tensor([0.8]), beta2=torch.tensor([0.99]),
                epsilon=torch.tensor([1e-3]), parameters=[w1])  # fmt: skip
    o2 = P.Adam(0.1, beta1=0.8, beta2=0.99, epsilon=1e-3, parameters=[w2])
    _stepped(o1, w1)
    _stepped(o2, w2)
    # the pows start at 0.9/0.999 for Tensor betas (Paddle's quirk), so the steps differ
    assert float(o1.state_dict()["param_0_beta1_pow_acc_0"]) == pytest.approx(0.9 * 0.8)
    assert float(o2.state_dict()["param_0_beta1_pow_acc_0"]) == pytest.approx(0.8 * 0.8)
    assert not torch.allclose(w1, w2)


def test_rescale_grad_is_applied_before_l2() -> None:
    w1, w2 = _w(value=2.0), _w(value=2.0)
    o1 = P.Momentum(0.1, parameters=[w1], rescale_grad=0.5, weight_decay=0.1)
    o2 = P.Momentum(0.1, parameters=[w2], weight_decay=0.1)
    w1.grad = torch.full((3,), 2.0)
    w2.grad = torch.full((3,), 1.0)
    o1.step()
    o2.step()
    assert torch.equal(w1, w2)  # (2 * 0.5) + 0.1 * p, not (2 + 0.1 * p) * 0.5


def test_copy_and_pickle_keep_paddle_semantics() -> None:
    import copy
    import pickle

    lin = torch.nn.Linear(3, 2)
    opt = P.Adam(
        P.lr.StepDecay(0.1, 1), parameters=lin.named_parameters(), weight_decay=0.1,
        grad_clip=P.ClipGradByGlobalNorm(1.0),
    )  # fmt: skip
    lin(torch.ones(1, 3)).sum().backward()
    opt.step()
    for other in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert len(other.transforms) == 2 and other.get_lr() == 0.1
        assert list(other.state_dict()) == list(opt.state_dict())
        for p in other.param_groups[0]["params"]:
            p.grad = torch.ones_like(p)
        other.step()
